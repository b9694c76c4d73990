"""The preview of one site: builds it, serves it, rebuilds on every save and tells the open tabs.

:class:`PreviewServer` ties the parts together, each in its own module:

* :mod:`~sitegen.serve.watch` turns file events into changed paths;
* :mod:`~sitegen.serve.rebuild` folds a burst of them into one incremental build at a time;
* :mod:`~sitegen.serve.http` serves the output folder and the preview's own resources;
* :mod:`~sitegen.serve.reload` streams what each build changed (or what went wrong) to the tabs;
* :mod:`~sitegen.serve.runs` watches experiments still training.

This module decides what a build's result means for the reader (reload, swap a stylesheet, swap
figures, show errors) and what the terminal is told.
"""
from __future__ import annotations

import errno
import inspect
import ipaddress
import os
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from sitegen.build import Builder
from sitegen.stages import CACHE_NAME, PACKAGE_DIR
from sitegen.config import CONFIG_NAME
from sitegen.errors import BuildError, Problem
from sitegen.serve.files import inside, is_live_path
from sitegen.serve.http import HTTPServer, HTTPServer6
from sitegen.serve.rebuild import QUIET, SETTLE, Rebuilder
from sitegen.serve.reload import Hub
from sitegen.serve.runs import RunMonitor
from sitegen.serve.terminal import duration, files, files_out, paint, printable, terminal_log
from sitegen.serve.watch import EVERYTHING, Watcher, is_editor_noise

#: while a run streams, the terminal gets one line about its redraws this often (seconds)
LIVE_SAY_EVERY = 10.0
#: more than this many changed files and the message says "everything" instead of listing them
LIST_LIMIT = 300
#: ports tried after the default one when it is taken
PORT_TRIES = 20


class PortInUse(Exception):
    pass


class PreviewServer:
    """The preview of one site. ``start()`` builds and serves in background threads; ``stop()`` ends it.

    ``port=0`` picks any free port (tests). ``log`` receives every line meant for the terminal.
    """

    def __init__(self, site: str | Path = ".", host: str = "127.0.0.1", port: int = 8000,
                 port_given: bool = False, out: str | Path | None = None, quiet: float = QUIET,
                 settle: float = SETTLE, log=None, watch: bool = True):
        self.root = Path(site).resolve()
        self.host = host
        self.port = port
        self.port_given = port_given
        self.out_dir = Path(out).resolve() if out else self.root / CACHE_NAME / "preview"
        self.real_out = os.path.realpath(self.out_dir)
        self.cache_dir = str(self.root / CACHE_NAME)
        self.log = log or terminal_log()
        self.watch_files = watch
        self.builder = Builder(self.root, out=self.out_dir, preview=True)
        if hasattr(self.builder, "autosave"):
            self.builder.autosave = False  # written when idle instead, off the edit -> reload path
        self._takes_changed = "changed" in inspect.signature(self.builder.build).parameters
        self.hub = Hub()
        self.rebuilder = Rebuilder(self, quiet=quiet, settle=settle)
        self.watcher = Watcher(self)
        self.runs = RunMonitor(self)
        self.httpd: HTTPServer | None = None
        self.stopping = False
        self.builds = 0                       # builds run, the first one included
        self.history: list[dict] = []         # the last builds: what changed, what came of it
        self._trust_hints = False             # False: the next build checks every file
        self._printed_warnings: set[str] = set()
        self._failed_before = False
        self._deps: set[str] = set()
        self._http_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.stop_requested = False
        self._policy_seen: set[str] = set()
        self._policy_lock = threading.Lock()
        self._live_said = 0.0

    # -- addresses -------------------------------------------------------------------------------
    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "localhost"
        return f"http://{host}:{self.port}/"

    def host_allowed(self, header: str | None) -> bool:
        if not self.loopback or not header:
            return True
        name = host_name(header)
        return is_loopback(name) or name == self.host.lower()

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if not origin:
            return True  # not a browser page (a script, a test client)
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if self.loopback:
            return is_loopback(parts.hostname or "")
        return bool(host) and parts.netloc.lower() == host.lower()

    # -- life cycle --------------------------------------------------------------------------------
    def bind(self) -> int:
        """Take the port (the next free one if it was not given explicitly). Raises PortInUse."""
        if self.httpd is not None:
            return self.port
        cls = HTTPServer6 if ":" in self.host else HTTPServer
        tries = 1 if self.port_given or self.port == 0 else PORT_TRIES
        first = self.port
        for port in range(first, first + tries):
            httpd = cls((self.host, port), self)
            try:
                httpd.server_bind()
                httpd.server_activate()
            except OSError as exc:
                httpd.server_close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                if exc.errno in (errno.EACCES, errno.EPERM):
                    raise PortInUse(f"cannot listen on port {port}: permission denied "
                                    "(ports below 1024 need privileges); use --port 8000 or another") from None
                raise PortInUse(f"cannot listen on {self.host}:{port}: {exc.strerror or exc}") from None
            self.httpd = httpd
            self.port = httpd.server_address[1]
            if port != first:
                self.say(f"port {first} is in use; serving on port {self.port} instead")
            return self.port
        if self.port_given:
            raise PortInUse(f"port {first} is already in use (another `sitegen serve`?); "
                            f"stop that server or choose another port with --port")
        raise PortInUse(f"ports {first}-{first + tries - 1} are all in use; choose one with --port")

    def start(self) -> "PreviewServer":
        self.bind()
        if self.watch_files:
            self.watcher.start()  # before the first build, so no save made during it is lost
        self.rebuild(None)
        self.rebuilder.start()
        self._http_thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                             name="sitegen-serve", daemon=True)
        self._http_thread.start()
        self.runs.start()
        self.runs.write_serve_info()
        return self

    def wait(self) -> None:
        """Block until :meth:`stop`, or until :attr:`stop_requested` is set (by a signal handler)."""
        while not self.stop_requested and not self._stopped.wait(0.2):
            pass

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.runs.remove_serve_info()
        self.watcher.stop()
        self.rebuilder.stop()
        self.hub.close_all()
        if self.httpd is not None:
            if self._http_thread is not None:
                self.httpd.shutdown()
            self.httpd.cut_connections()
            self.httpd.server_close()
            deadline = time.monotonic() + 2
            while self.httpd.open_connections and time.monotonic() < deadline:
                time.sleep(0.01)
        thread = self.rebuilder.thread
        if thread is not None:
            thread.join(timeout=1)
            if thread.is_alive():
                self.say("stopped in the middle of a rebuild; the next start checks every file")
            elif self.rebuilder.dirty:
                self.save_cache()
        self._stopped.set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_idle(self, timeout: float = 30) -> bool:
        return self.rebuilder.wait_idle(timeout)

    # -- what a change touches -----------------------------------------------------------------------
    def kind(self, path: str) -> str:
        """'post', 'data', 'template', 'static', 'config' or 'other' (by place, not by content)."""
        root = str(self.root)
        if inside(path, root) and path != root:
            rel = path[len(root) + 1:].split(os.sep)
            if len(rel) == 1:
                if rel[0] == CONFIG_NAME:
                    return "config"
                return {"content": "post", "data": "data", "templates": "template",
                        "static": "static", "public": "static"}.get(rel[0], "other")
            return {"content": "post", "data": "data", "templates": "template",
                    "static": "static", "public": "static"}.get(rel[0], "other")
        for name, kind in (("templates", "template"), ("static", "static")):
            folder = str(PACKAGE_DIR / name)
            if inside(path, folder):
                return kind
        return "other"

    def relevant(self, path: str) -> bool:
        if inside(path, self.real_out) or inside(path, str(self.out_dir)) or inside(path, self.cache_dir):
            return False
        name = os.path.basename(path)
        if is_editor_noise(name) or name in ("__pycache__", "node_modules"):
            return False
        kind = self.kind(path)
        if kind == "other":
            return path in self._deps or os.path.realpath(path) in self._deps
        root = str(self.root) if inside(path, str(self.root)) else str(PACKAGE_DIR)
        rel_parts = path[len(root) + 1:].split(os.sep)
        return not any(p.startswith(".") or p in ("__pycache__", "node_modules") for p in rel_parts)

    # -- building --------------------------------------------------------------------------------------
    def rebuild(self, changed: set[str] | None) -> None:
        """Build now. ``changed``: the paths that changed since the last build (None: check all)."""
        full = (changed is None or not self._trust_hints or EVERYTHING in changed
                or any(self.kind(p) == "config" for p in changed))
        if changed is not None:
            changed = changed - {EVERYTHING}
        kwargs = {"in_place": True}
        if self._takes_changed and not full:
            hint = set(changed)
            hint.update(os.path.realpath(p) for p in changed)
            kwargs["changed"] = hint
        t0 = time.perf_counter()
        self.builds += 1
        try:
            result = self.builder.build(**kwargs)
        except BuildError as exc:
            self._trust_hints = True
            seconds = time.perf_counter() - t0
            if changed is not None and self.rebuilder.has_pending():
                # Caught mid-save; the files changed again already. Only the next build counts.
                self._record(changed, None, exc.problems, seconds)
                return
            self._failed(changed, exc.problems, seconds)
            return
        except Exception as exc:  # a bug in sitegen: say so, keep serving the last good pages
            self._trust_hints = False
            seconds = time.perf_counter() - t0
            detail = traceback.format_exc()
            self.say(detail.rstrip())
            problem = Problem("sitegen", None, f"internal error: {type(exc).__name__}: {exc} "
                                              "(the preview keeps running; please report this with the traceback above)")
            self._failed(changed, [problem], seconds)
            return
        self._trust_hints = True
        self._succeeded(changed, result, time.perf_counter() - t0)
        if changed is None or result.parsed or result.removed:  # which pages read what can have changed
            self.runs.write_serve_info()
        if changed is None:
            # Thousands of cached posts would otherwise be traversed by every full garbage
            # collection, and one would land in the middle of the next edit's rebuild.
            import gc

            gc.collect()
            gc.freeze()

    def _record(self, changed, result, problems, seconds) -> dict:
        entry = {"changed": sorted(changed) if changed is not None else None,
                 "ok": result is not None, "seconds": seconds,
                 "written": list(result.written) if result is not None else [],
                 "removed": list(result.removed) if result is not None else [],
                 "parsed": list(result.parsed) if result is not None else [],
                 "problems": [str(p) for p in problems]}
        self.history.append(entry)
        del self.history[:-50]
        return entry

    def _succeeded(self, changed, result, seconds) -> None:
        self.rebuilder.dirty = True
        self._record(changed, result, result.problems, seconds)
        if result.parsed:
            self._update_deps(None if changed is None else result.parsed)
        written = ["/" + r.replace(os.sep, "/") for r in result.written]
        removed = ["/" + r.replace(os.sep, "/") for r in result.removed]
        css_only = bool(changed) and all(self.kind(p) == "static" and p.endswith(".css") and os.path.exists(p)
                                         for p in changed)
        data_only = bool(changed) and all(self.kind(p) == "data" for p in changed)
        message = {"type": "built", "css": [u for u in written if u.endswith(".css")], "cssOnly": css_only,
                   "dataOnly": data_only}
        if len(written) + len(removed) > LIST_LIMIT:
            message.update(all=True, written=[], removed=[])
        else:
            message.update(written=written, removed=removed)
        self.hub.publish(message, [problem_json(p) for p in result.problems], new_build=bool(written or removed))
        fixed = self._failed_before
        self._failed_before = False
        if changed is None:
            self.say(f"built {result.pages} files in {duration(seconds)} "
                     f"({len(result.parsed)} post(s) rendered, {len(result.written)} file(s) written)")
        elif all(is_live_path(p) for p in changed) and time.monotonic() - self._live_said < LIVE_SAY_EVERY:
            pass  # a training run redraws its figures several times a second: say so now and then
        else:
            if all(is_live_path(p) for p in changed):
                self._live_said = time.monotonic()
            what = files(self.root, changed)
            if written or removed:
                out = files_out(written, removed)
            else:
                out = "no page changed"
            prefix = paint("fixed", "32") + "; " if fixed else ""
            self.say(f"{what} -> {prefix}{out} ({duration(seconds)})")
        warnings = [str(p) for p in result.warnings]
        for line in warnings:
            if line not in self._printed_warnings:
                self.say("  " + paint(line, "33"))
        self._printed_warnings = set(warnings)

    def _failed(self, changed, problems, seconds) -> None:
        self._record(changed, None, problems, seconds)
        self._failed_before = True
        self.hub.publish({"type": "failed"}, [problem_json(p) for p in problems], new_build=False)
        errors = sum(1 for p in problems if p.level == "error")
        what = files(self.root, changed) + " -> " if changed else ""
        self.say(f"{what}{paint('build failed', '31')}: {errors} error(s); "
                 f"still serving the last good pages ({duration(seconds)})")
        for p in problems:
            self.say("  " + (paint(str(p), "31") if p.level == "error" else paint(str(p), "33")))
        self._printed_warnings = {str(p) for p in problems if p.level == "warning"}

    def _update_deps(self, posts: list[str] | None) -> None:
        """Remember every file a page read (``posts``: of those just parsed; None: of all), and
        watch the folders of those outside the usual ones."""
        parsed_cache = self.builder.cache.get("parsed", {})
        deps: set[str] = set()
        for rel in parsed_cache if posts is None else posts:
            entry = parsed_cache.get(rel)
            parsed = entry[1] if isinstance(entry, tuple) else entry
            deps.update(getattr(parsed, "deps", ()) or ())
        new = deps - self._deps
        self._deps = deps if posts is None else self._deps | deps
        self.runs.pages_changed(self._deps)
        if not self.watch_files or self.watcher.observer is None:
            return
        for dep in new:
            if not self.watcher.covered(dep):
                folder = os.path.dirname(dep)
                if os.path.isdir(folder) and not inside(folder, self.real_out):
                    self.watcher.watch(folder, recursive=False)

    def policy_violation(self, report: dict) -> None:
        page = urlsplit(str(report.get("document-uri", ""))).path or "?"
        blocked = str(report.get("blocked-uri", "") or "a resource")
        what = {"inline": "an inline script or style", "eval": "eval()"}.get(blocked, blocked)
        where = str(report.get("source-file", "") or "")
        if where and report.get("line-number"):
            where += f":{report['line-number']}"
        directive = str(report.get("effective-directive") or report.get("violated-directive") or "?")
        line = printable(f"{page}: the site's Content-Security-Policy ({directive}) blocks {what}"
                         + (f" at {where}" if where else "") + "; it would fail the same way once published", 600)
        with self._policy_lock:
            if line in self._policy_seen or len(self._policy_seen) > 200:
                return
            self._policy_seen.add(line)
        self.say(paint(line, "33"))

    def save_cache(self) -> None:
        saver = getattr(self.builder, "save_cache", None) or getattr(self.builder, "_save_cache", None)
        self.rebuilder.dirty = False
        if saver is not None:
            try:
                saver()
            except OSError as exc:
                self.say(f"could not save the build cache: {exc}")

    def say(self, line: str) -> None:
        self.log(line)


def is_loopback(host: str) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def problem_json(p: Problem) -> dict:
    return {"path": p.path, "line": p.line, "message": p.message, "level": p.level, "text": str(p)}
