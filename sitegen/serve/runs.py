"""Live runs: experiments still training while the preview shows their tables.

A trainer that dies writes nothing more, so no file event says so: the monitor looks at the
processes of the runs the pages show and redraws those pages once one has stopped. It also writes
``.sitegen-cache/serve.json`` (this server's URL and which pages read which data file), so that an
experiment started with ``--live`` can tell its user which page to open
(:func:`sitegen.live.preview_hint`).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sitegen.live import RUN_FILE, SERVE_FILE, read_run
from sitegen.serve.files import inside
from sitegen.serve.terminal import files, paint

if TYPE_CHECKING:
    from sitegen.serve.preview import PreviewServer

#: how often the preview checks that the trainers of the runs it shows still run (seconds)
RUN_CHECK_EVERY = 0.5


class RunMonitor:
    def __init__(self, preview: "PreviewServer"):
        self.preview = preview
        self.manifests: list[str] = []                # the run manifests the pages read
        self._states: dict[str, str | None] = {}      # run manifest -> state last seen
        self._serve_info: dict | None = None

    def start(self) -> None:
        threading.Thread(target=self._check, name="sitegen-runs", daemon=True).start()

    def _check(self) -> None:
        preview = self.preview
        while not preview.stopping:
            time.sleep(RUN_CHECK_EVERY)
            for manifest in self.manifests:
                if not os.path.exists(manifest):
                    self._states.pop(manifest, None)
                    continue
                run = read_run(Path(manifest).parent)
                state = run.state if run else None
                before = self._states.get(manifest)
                self._states[manifest] = state
                if state == "stopped" and before != "stopped":
                    preview.say(paint(f"{files(preview.root, [manifest])}: the experiment writing it stopped "
                                      f"before finishing (process {run.pid} is gone)", "33"))
                    preview.rebuilder.notify(manifest)

    def pages_changed(self, deps) -> None:
        """The files the pages read changed: keep the run manifests among them."""
        self.manifests = [d for d in deps if d.endswith(os.sep + RUN_FILE)]

    def write_serve_info(self) -> None:
        """Tell experiments started with --live where to point their user: this server's URL, and
        which pages read which data file."""
        preview = self.preview
        if preview.httpd is None or preview.stopping:
            return
        pages: dict[str, list[str]] = {}
        parsed_cache = preview.builder.cache.get("parsed", {})
        root = str(preview.root)
        for post in getattr(preview.builder, "last_posts", []):
            entry = parsed_cache.get(post.rel)
            parsed = entry[1] if isinstance(entry, tuple) else None
            for dep in getattr(parsed, "deps", ()) or ():
                if inside(dep, root) and not dep.endswith(os.sep + RUN_FILE):
                    rel = Path(dep).relative_to(root).as_posix()
                    if post.url not in pages.setdefault(rel, []):
                        pages[rel].append(post.url)
        info = {"url": preview.url, "pid": os.getpid(), "host": socket.gethostname(), "pages": pages}
        if info == self._serve_info:
            return
        self._serve_info = info
        path = Path(preview.cache_dir) / SERVE_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{SERVE_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # only a convenience for trainers

    def remove_serve_info(self) -> None:
        path = Path(self.preview.cache_dir) / SERVE_FILE
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError, AttributeError):
            pass
