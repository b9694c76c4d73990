"""HTTP: the preview's server and request handler.

Serves the output folder and nothing outside it (:func:`sitegen.serve.files.locate`), answers only
requests addressed to this machine (the Host check stops a page elsewhere that points a DNS name at
127.0.0.1 from reading the drafts), adds the reload client to every HTML response at request time
(it is never written into the output), and sends the production Content-Security-Policy so that a
page that would break online breaks here too. ``/__sitegen/`` holds the preview's own resources:
the reload client, its overlay style, the reload stream and a status summary.

One thread per connection, bounded: past :data:`MAX_CONNECTIONS` the connection idle the longest
(a keep-alive waiting for its next request, or one that never finished sending its first) is
closed to make room, so held-open connections cannot lock out the next request; the accept loop
itself never waits.
"""
from __future__ import annotations

import html
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from sitegen.stages import PACKAGE_DIR
from sitegen.serve import reload
from sitegen.serve.files import byte_range, content_type, inject, locate, request_path
from sitegen.serve.terminal import printable

if TYPE_CHECKING:
    from sitegen.serve.preview import PreviewServer

CLIENT_DIR: Path = PACKAGE_DIR / "static_preview"
INTERNAL = "/__sitegen/"
#: the preview's own files, served from CLIENT_DIR
CLIENT_FILES = ("reload.js", "reload-worker.js", "overlay.css")

#: open connections beyond this make room by closing the one idle the longest
MAX_CONNECTIONS = 256
#: an idle keep-alive connection is closed after this many seconds
REQUEST_TIMEOUT = 30

# The production policy (netlify.toml); the reload stream is same-origin, so it needs nothing more.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'; report-uri /__sitegen/csp")

IDLE, BUSY, STREAM = "idle", "busy", "stream"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sitegen-preview"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request would drown the rebuild messages; 404s are reported instead

    @property
    def preview(self) -> "PreviewServer":
        return self.server.preview

    # Between requests (and while a request line and its headers trickle in) the connection is idle,
    # and may be closed to make room for a new one.
    def handle_one_request(self):
        self.server.mark(self.connection, IDLE)
        super().handle_one_request()

    def parse_request(self):
        ok = super().parse_request()
        self.server.mark(self.connection, BUSY)
        return ok

    def do_GET(self):
        self._respond(head=False)

    def do_HEAD(self):
        self._respond(head=True)

    def _not_allowed(self):
        self._plain(405, "the preview only answers GET and HEAD\n", extra={"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def do_POST(self):
        if request_path(self.path)[0] != INTERNAL + "csp" or not self.preview.host_allowed(self.headers.get("Host")):
            self._not_allowed()
            return
        # The browser reports what the production policy would block, even what happened before
        # the reload client could listen (an inline script in a template): say it in the terminal.
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= 64 * 1024:
            self._plain(413, "too large\n")
            return
        try:
            report = json.loads(self.rfile.read(length) or b"{}").get("csp-report", {})
        except (ValueError, AttributeError):
            report = {}
        if isinstance(report, dict) and report:
            self.preview.policy_violation(report)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- responses ---------------------------------------------------------------------------
    def _common_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "strict-origin-when-cross-origin")

    def _plain(self, status: int, text: str, extra: dict | None = None, head: bool = False) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self._common_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_bytes(self, status: int, body: bytes, ctype: str, head: bool, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self._common_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _respond(self, head: bool) -> None:
        try:
            if not self.preview.host_allowed(self.headers.get("Host")):
                # A page elsewhere pointing a DNS name at 127.0.0.1 must not read the drafts.
                self._plain(403, "this preview only answers requests for localhost\n", head=head)
                return
            path = request_path(self.path)[0]
            if path.startswith(INTERNAL):
                self._internal(path[len(INTERNAL):], head)
                return
            kind, found = locate(self.preview.real_out, self.path)
            if kind == "redirect":
                self.send_response(301)
                self.send_header("Location", found)
                self.send_header("Content-Length", "0")
                self._common_headers()
                self.end_headers()
            elif kind == "file":
                self._file(found, head)
            else:
                self._missing(path, head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _html(self, data: bytes, status: int = 200) -> bytes:
        hub = self.preview.hub
        status_attr = f' data-status="{status}"' if status != 200 else ""
        tag = (f'<script src="{INTERNAL}reload.js" data-session="{hub.session}" data-build="{hub.build}"'
               f'{status_attr} defer></script>\n')
        return inject(data, tag.encode())

    def _file(self, path: str, head: bool) -> None:
        ctype = content_type(path)
        if ctype.startswith("text/html"):
            with open(path, "rb") as f:
                body = self._html(f.read())
            self._send_bytes(200, body, ctype, head)
            return
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            if etag in [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Cache-Control", "no-cache")
                self._common_headers()
                self.end_headers()
                return
            start, end, status = 0, st.st_size - 1, 200
            wanted = self.headers.get("Range")
            if wanted:
                span = byte_range(wanted, st.st_size)
                if span is None:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{st.st_size}")
                    self.send_header("Content-Length", "0")
                    self._common_headers()
                    self.end_headers()
                    return
                if span != (0, st.st_size - 1):
                    start, end, status = span[0], span[1], 206
            length = max(0, end - start + 1)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "no-cache")
            self._common_headers()
            self.end_headers()
            if head:
                return
            f.seek(start)
            left = length
            while left > 0:
                chunk = f.read(min(left, 256 * 1024))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _missing(self, path: str, head: bool) -> None:
        preview = self.preview
        if not path.endswith(("/favicon.ico", "/apple-touch-icon.png", "/apple-touch-icon-precomposed.png")):
            preview.say(f"404 {printable(path)}")
        page = os.path.join(preview.real_out, "404.html")
        if os.path.isfile(page):
            with open(page, "rb") as f:
                body = f.read()
        else:
            note = ("The first build failed, so there is nothing to show yet; the errors are listed "
                    "below and in the terminal." if preview.hub.problems else "No page here.")
            body = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                    f"<title>Not found</title>\n</head>\n<body>\n<h1>Not found: {html.escape(path)}</h1>\n"
                    f"<p>{note}</p>\n</body>\n</html>\n").encode()
        self._send_bytes(404, self._html(body, status=404), "text/html; charset=utf-8", head)

    def _internal(self, name: str, head: bool) -> None:
        if name == "events":
            self._events(head)
        elif name in CLIENT_FILES:
            data = (CLIENT_DIR / name).read_bytes()
            self._send_bytes(200, data, content_type(name), head, cache="no-cache")
        elif name == "status":
            preview = self.preview
            state = {"session": preview.hub.session, "build": preview.hub.build,
                     "ok": not any(p["level"] == "error" for p in preview.hub.problems),
                     "problems": preview.hub.problems, "building": preview.rebuilder.busy}
            self._send_bytes(200, json.dumps(state).encode(), "application/json", head)
        else:
            self._plain(404, "no such preview resource\n", head=head)

    def _events(self, head: bool) -> None:
        """The reload stream (:mod:`sitegen.serve.reload`), for this site's own pages only."""
        h, preview = self.headers, self.preview
        # A browser names the page's origin on a cross-origin request; a same-origin EventSource sends none.
        if not preview.origin_allowed(h.get("Origin"), h.get("Host")) or h.get("Sec-Fetch-Site") == "cross-site":
            self._plain(403, "the reload stream refuses other sites\n", head=head)
            return
        if len(preview.hub) >= preview.hub.limit:
            self._plain(503, "too many open reload streams; close some tabs and reload\n",
                        extra={"Retry-After": "5"}, head=head)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self._common_headers()
        self.end_headers()
        self.close_connection = True
        if head:
            return
        self.server.mark(self.connection, STREAM)
        self.connection.settimeout(10)  # a browser that stopped reading does not hold a send forever
        reload.stream(self.connection, preview.hub, lambda: preview.stopping)


class _Connection:
    __slots__ = ("state", "since", "evicted")

    def __init__(self):
        self.state, self.since, self.evicted = IDLE, time.monotonic(), False


class HTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS` of them (idle ones give way), and
    every connection can be cut on shutdown."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, preview: "PreviewServer", limit: int = MAX_CONNECTIONS):
        self.preview = preview
        self.limit = limit
        self._open: dict[socket.socket, _Connection] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, Handler, bind_and_activate=False)

    def process_request(self, request, client_address):
        with self._open_lock:
            if not self._make_room():
                refused = True
            else:
                refused = False
                self._open[request] = _Connection()
        if refused:  # every connection is answering a request or streaming: say so at once
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Retry-After: 1\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            threading.Thread(target=self._serve_one, args=(request, client_address),
                             name="sitegen-http", daemon=True).start()
        except RuntimeError:  # cannot start a thread: refuse this one
            self._done(request)

    def _make_room(self) -> bool:
        """Under the lock: True once one more connection fits, closing the longest-idle ones if needed."""
        excess = sum(not c.evicted for c in self._open.values()) - self.limit + 1
        if excess <= 0:
            return True
        idle = sorted(((c.since, id(s), s) for s, c in self._open.items() if not c.evicted and c.state == IDLE),
                      key=lambda t: t[:2])
        if len(idle) < excess:
            return False
        for _, _, s in idle[:excess]:
            self._open[s].evicted = True
            try:
                s.shutdown(socket.SHUT_RDWR)  # its thread sees the end of the stream and finishes
            except OSError:
                pass
        return True

    def mark(self, request, state: str) -> None:
        with self._open_lock:
            conn = self._open.get(request)
            if conn is not None and conn.state != state:
                conn.state, conn.since = state, time.monotonic()

    def _serve_one(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._done(request)

    def _done(self, request):
        with self._open_lock:
            self._open.pop(request, None)
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.preview.say(printable(f"internal error while answering a request: {type(exc).__name__}: {exc}"))

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def cut_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6
