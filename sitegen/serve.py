"""``sitegen serve``: build with drafts, serve the result, rebuild on every save, reload the tab.

One process, a few threads, each with one job:

* the **watcher** (watchdog) turns file-system events under ``content/``, ``data/``,
  ``templates/``, ``static/`` and the config into changed paths, and drops editor noise (swap
  files, ``.#`` locks, vim's ``4913`` probe, backups) and everything the build itself writes;
* the **rebuilder** waits until a burst of events has gone quiet (an editor's save is often a
  temporary file, a rename and a delete), then runs one incremental build; changes that arrive
  during a build wait for the next one, so two builds never run at once;
* the **HTTP server** serves the output folder and nothing outside it, adds the reload client to
  every HTML response at request time (it is never written into the output), and holds one
  WebSocket per open tab;
* the **hub** tells every tab what the last build changed, or what went wrong.

The preview builds into ``.sitegen-cache/preview/``, never into the site's real output folder,
so ``sitegen build`` output is not mixed with drafts; keeping it there makes a restart cheap.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import html
import inspect
import ipaddress
import json
import logging
import os
import re
import secrets
import select
import socket
import struct
import sys
import threading
import time
import traceback
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sitegen.build import CACHE_NAME, PACKAGE_DIR, Builder
from sitegen.config import CONFIG_NAME
from sitegen.errors import BuildError, Problem
from sitegen.live import RUN_FILE, SERVE_FILE, read_run

CLIENT_DIR = PACKAGE_DIR / "static_preview"
INTERNAL = "/__sitegen/"

#: a burst of events is over once none came for this long (an editor's save takes a few ms)
QUIET = 0.015
#: a file that was opened for writing and not closed yet is given this long to be closed
SETTLE = 0.5
#: a file rewritten without pause (a training run streaming its trace) still rebuilds this often
MAX_WAIT = 2.0
#: a running experiment's new rows redraw its figures at most this often (seconds), however fast it writes
LIVE_EVERY = 0.25
#: how often the preview checks that the trainers of the runs it shows still run (seconds)
RUN_CHECK_EVERY = 0.5
#: while a run streams, the terminal gets one line about its redraws this often (seconds)
LIVE_SAY_EVERY = 10.0
#: the parse cache is written to disk once the preview has been idle this long
IDLE_SAVE = 5.0
#: more concurrent connections than this are refused rather than given a thread each
MAX_CONNECTIONS = 256
#: open tabs (WebSockets) beyond this are refused
MAX_SOCKETS = 128
#: an idle keep-alive connection is closed after this many seconds
REQUEST_TIMEOUT = 30
#: a WebSocket that said nothing for this long is pinged, so a vanished peer is noticed
PING_EVERY = 20
#: more than this many changed files and the message says "everything" instead of listing them
LIST_LIMIT = 300
#: ports tried after the default one when it is taken
PORT_TRIES = 20

WATCHED_DIRS = ("content", "data", "templates", "static", "public")
#: a "changed path" meaning: events were lost, check every file
EVERYTHING = "\0everything"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The production policy (netlify.toml), plus the preview's own WebSocket.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'{ws}; font-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'; report-uri /__sitegen/csp")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".json": "application/json", ".map": "application/json",
    ".webmanifest": "application/manifest+json", ".ipynb": "application/x-ipynb+json",
    ".xml": "application/xml; charset=utf-8", ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8", ".tsv": "text/tab-separated-values; charset=utf-8",
    ".expr": "text/plain; charset=utf-8", ".py": "text/x-python; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet", ".arrow": "application/vnd.apache.arrow.file",
    ".feather": "application/vnd.apache.arrow.file", ".wasm": "application/wasm",
    ".bin": "application/octet-stream", ".npy": "application/octet-stream",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
    ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
    ".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm",
    ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".wav": "audio/wav", ".zip": "application/zip",
    ".gz": "application/gzip",
}

_NOISE_SUFFIXES = (
    "~", ".swp", ".swo", ".swn", ".swx", ".tmp", ".temp", ".bak", ".orig", ".kate-swp", ".crswap",
    ".part", ".crdownload", "___jb_tmp___", "___jb_old___", ".sb-", ".DS_Store",
)


def is_editor_noise(name: str) -> bool:
    """Files editors and tools write beside the real one while saving; never worth a rebuild.

    Hidden files (``.post.md.swp``, emacs's ``.#post.md`` lock, gedit's ``.goutputstream-*``,
    the build's own ``.name.tmp123``), emacs autosaves ``#post.md#``, backups ``post.md~``,
    vim's write probe ``4913`` (and the other all-digit names it tries), JetBrains' safe-write
    files, temporary and partial downloads.
    """
    if not name or name.startswith(".") or name.isdigit():
        return True
    if name.startswith("#") and name.endswith("#"):
        return True
    if "___jb_" in name or name.startswith("~$"):
        return True
    return name.endswith(_NOISE_SUFFIXES) or ".sb-" in name


# ---------------------------------------------------------------------------------------------
# Requests -> files

def locate(out_dir: str, target: str) -> tuple[str, str | None]:
    """What a request target names inside ``out_dir`` (a real path, symlinks resolved).

    Returns ``("file", path)``, ``("redirect", location)`` for a folder asked for without its
    trailing slash, or ``("missing", None)`` for anything else: files that do not exist, folders
    without ``index.html`` (no listings), ``..`` and ``.`` segments (also percent-encoded),
    hidden files, NUL bytes and backslashes, and symlinks that lead outside ``out_dir``.
    """
    missing = ("missing", None)
    raw, query = request_path(target)
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return missing
    if "\x00" in path or "\\" in path:
        return missing
    segments = [s for s in path.split("/") if s]
    for s in segments:
        if s in (".", "..") or (s.startswith(".") and s != ".well-known"):
            return missing
    real = os.path.realpath(os.path.join(out_dir, *segments))
    if not _inside(real, out_dir):
        return missing
    if os.path.isdir(real):
        if not path.endswith("/"):
            location = "/" + "/".join(quote(s) for s in segments) + "/"
            return ("redirect", location + (f"?{query}" if query else ""))
        index = os.path.realpath(os.path.join(real, "index.html"))
        if _inside(index, out_dir) and os.path.isfile(index):
            return ("file", index)
        return missing
    if os.path.isfile(real):
        return ("file", real)
    return missing


def is_live_path(path: str) -> bool:
    """A file a running experiment streams (a part, or its run manifest, inside ``NAME.parts/``)."""
    return os.path.basename(os.path.dirname(path)).endswith(".parts")


def request_path(target: str) -> tuple[str, str]:
    """The (still percent-encoded) path and query of a request target.

    ``//post`` is a path here, not a host: only an absolute ``http://host/path`` target has one.
    """
    if target.startswith("/"):
        path, _, query = target.partition("#")[0].partition("?")
        return path, query
    parts = urlsplit(target)
    return parts.path or "/", parts.query


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def content_type(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    import mimetypes

    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def inject(page: bytes, tag: bytes) -> bytes:
    """The page with ``tag`` just before its last ``</body>`` (or at its end)."""
    at = page.lower().rfind(b"</body")
    if at < 0:
        return page + tag
    return page[:at] + tag + page[at:]


# ---------------------------------------------------------------------------------------------
# WebSocket frames (RFC 6455, the small part a reload channel needs)

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
MAX_FRAME = 64 * 1024


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def ws_read(sock: socket.socket) -> tuple[int, bytes] | None:
    """One frame from a client: ``(opcode, payload)``, or None when the peer is gone or broke the rules."""
    head = _recv_exact(sock, 2)
    if head is None:
        return None
    opcode, masked, n = head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
    if n == 126:
        ext = _recv_exact(sock, 2)
        n = struct.unpack("!H", ext)[0] if ext else -1
    elif n == 127:
        ext = _recv_exact(sock, 8)
        n = struct.unpack("!Q", ext)[0] if ext else -1
    if n < 0 or n > MAX_FRAME or not masked:
        return None
    mask = _recv_exact(sock, 4)
    payload = _recv_exact(sock, n) if n else b""
    if mask is None or payload is None:
        return None
    if n:
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return opcode, payload


class Tab:
    """One connected browser tab. Any thread may send; a failed send marks it gone."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()
        self.closed = False

    def send(self, frame: bytes) -> bool:
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(frame)
                return True
            except OSError:
                self.closed = True
                return False

    def close(self, code: int = 1001) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                try:
                    self.sock.sendall(ws_frame(struct.pack("!H", code), OP_CLOSE))
                except OSError:
                    pass
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Hub:
    """The state every tab should know (build number, current problems) and the tabs to tell."""

    def __init__(self, limit: int = MAX_SOCKETS):
        self.session = secrets.token_hex(6)
        self.build = 0
        self.structural = 0  # the last build that changed more than data (a tab older than it reloads)
        self.problems: list[dict] = []
        self.limit = limit
        self._tabs: set[Tab] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tabs)

    def hello(self) -> dict:
        return {"type": "hello", "session": self.session, "build": self.build, "structural": self.structural,
                "problems": self.problems}

    def join(self, tab: Tab) -> bool:
        # Under the lock: a message published meanwhile is either in the hello or sent after it.
        with self._lock:
            if len(self._tabs) >= self.limit:
                return False
            self._tabs.add(tab)
            return tab.send(ws_frame(json.dumps(self.hello()).encode()))

    def leave(self, tab: Tab) -> None:
        with self._lock:
            self._tabs.discard(tab)

    def publish(self, message: dict, problems: list[dict], new_build: bool) -> None:
        with self._lock:
            if new_build:
                self.build += 1
                if not message.get("dataOnly"):
                    self.structural = self.build
            self.problems = problems
            message = {**message, "build": self.build, "problems": problems}
            frame = ws_frame(json.dumps(message).encode())
            tabs = list(self._tabs)
            for tab in tabs:
                if not tab.send(frame):
                    self._tabs.discard(tab)

    def close_all(self) -> None:
        with self._lock:
            tabs = list(self._tabs)
            self._tabs.clear()
        for tab in tabs:
            tab.close()


# ---------------------------------------------------------------------------------------------
# HTTP

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sitegen-preview"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request would drown the rebuild messages; 404s are reported instead

    @property
    def preview(self) -> "PreviewServer":
        return self.server.preview

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
        host = self.headers.get("Host", "")
        ws = f" ws://{host}" if re.fullmatch(r"[A-Za-z0-9.\-\[\]:]{1,255}", host) else ""
        self.send_header("Content-Security-Policy", CSP.format(ws=ws))
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
                span = _byte_range(wanted, st.st_size)
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
            preview.say(f"404 {path}")
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
        if name == "ws":
            self._websocket()
        elif name in ("reload.js", "overlay.css"):
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

    # -- the reload channel ---------------------------------------------------------------------
    def _websocket(self) -> None:
        h = self.headers
        key = h.get("Sec-WebSocket-Key", "")
        if h.get("Upgrade", "").lower() != "websocket" or "upgrade" not in h.get("Connection", "").lower() or not key:
            self._plain(400, "this address is the preview's WebSocket; connect with one\n")
            return
        if h.get("Sec-WebSocket-Version") != "13":
            self._plain(426, "WebSocket version 13 only\n", extra={"Sec-WebSocket-Version": "13"})
            return
        if not self.preview.origin_allowed(h.get("Origin"), h.get("Host")):
            self._plain(403, "WebSockets from other sites are refused\n")
            return
        preview = self.preview
        if len(preview.hub) >= preview.hub.limit:
            self._plain(503, "too many open tabs; close some and reload\n", extra={"Retry-After": "5"})
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(key))
        self.end_headers()
        self.close_connection = True
        sock = self.connection
        sock.settimeout(10)  # a half-sent frame or a client that stopped reading
        tab = Tab(sock)
        if not preview.hub.join(tab):
            tab.close(1013)
            return
        try:
            while not tab.closed and not preview.stopping:
                ready, _, _ = select.select([sock], [], [], PING_EVERY)
                if not ready:
                    if not tab.send(ws_frame(b"", OP_PING)):
                        break
                    continue
                frame = ws_read(sock)
                if frame is None:
                    break
                opcode, payload = frame
                if opcode == OP_CLOSE:
                    tab.close(1000)
                    break
                if opcode == OP_PING:
                    tab.send(ws_frame(payload, OP_PONG))
        except (OSError, ValueError):
            pass  # the tab went away without saying goodbye
        finally:
            preview.hub.leave(tab)
            tab.close()


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range as inclusive offsets; None if unsatisfiable. Several ranges: the whole file."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m:
        return (0, size - 1) if size else None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


class _HTTPServer(ThreadingHTTPServer):
    """A thread per connection, but bounded, and every connection can be cut on shutdown."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, preview: "PreviewServer"):
        self.preview = preview
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler, bind_and_activate=False)

    def process_request(self, request, client_address):
        if not self._slots.acquire(timeout=1.0):
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open.add(request)
        try:
            threading.Thread(target=self._serve_one, args=(request, client_address),
                             name="sitegen-http", daemon=True).start()
        except RuntimeError:  # cannot start a thread: refuse this one
            self._done(request)

    def _serve_one(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._done(request)

    def _done(self, request):
        with self._open_lock:
            self._open.discard(request)
        self.shutdown_request(request)
        self._slots.release()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.preview.say(f"internal error while answering a request: {type(exc).__name__}: {exc}")

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


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class PortInUse(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Rebuilds

class Rebuilder:
    """Collects changed paths, waits for a burst to end, and runs one build at a time."""

    SAVE = object()

    def __init__(self, preview: "PreviewServer", quiet: float = QUIET, settle: float = SETTLE,
                 max_wait: float = MAX_WAIT):
        self.preview = preview
        self.quiet, self.settle, self.max_wait = quiet, settle, max_wait
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._writing: set[str] = set()
        self._first = self._last = 0.0
        self._idle_since = time.monotonic()
        self._live_built = 0.0  # when the last build for a running experiment's rows started
        self._busy = False
        self._stopping = False
        self.dirty = False  # the builder's cache has news not yet on disk
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy or bool(self._pending)

    def notify(self, path: str, writing: bool | None = None) -> None:
        if is_live_path(path):  # a new part counts as its run's news: pages depend on the manifest
            path, writing = os.path.join(os.path.dirname(path), RUN_FILE), None
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending.add(path)
            self._last = now
            if writing is True:
                self._writing.add(path)
            elif writing is False:
                self._writing.discard(path)
            self._cond.notify_all()

    def has_pending(self) -> bool:
        with self._cond:
            return bool(self._pending)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="sitegen-rebuild", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no change is pending and no build runs (for tests and benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and not self._pending, timeout)

    def _take(self):
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                if not self._pending:
                    if self.dirty and now - self._idle_since >= IDLE_SAVE:
                        self._busy = True
                        return self.SAVE
                    self._cond.wait(IDLE_SAVE if self.dirty else None)
                    continue
                need = self.settle if self._writing else self.quiet
                quiet_for = now - self._last
                live = all(is_live_path(p) for p in self._pending)
                if live:  # a trainer writes parts on its own clock: redraw at a steady pace instead
                    wait = self._live_built + LIVE_EVERY - now
                    if wait <= 0:
                        need = 0.0
                    else:
                        self._cond.wait(wait)
                        continue
                if quiet_for >= need or now - self._first >= self.max_wait:
                    batch, self._pending = self._pending, set()
                    self._writing.clear()
                    self._busy = True
                    if live:
                        self._live_built = now
                    return batch
                self._cond.wait(min(need - quiet_for, self.max_wait - (now - self._first)))

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                if batch is self.SAVE:
                    self.preview.save_cache()
                else:
                    self.preview.rebuild(batch)
            except Exception:  # the rebuild reports its own errors; this is a bug of ours
                self.preview.say("internal error in the preview:\n" + traceback.format_exc())
            finally:
                with self._cond:
                    self._busy = False
                    self._idle_since = time.monotonic()
                    self._cond.notify_all()


#: previews whose watchers are running, to be told when watchdog reports lost events
_LISTENING: "weakref.WeakSet[PreviewServer]" = weakref.WeakSet()


class _Overflow(logging.Handler):
    def emit(self, record):
        if "overflow" in record.getMessage().lower():
            for preview in list(_LISTENING):
                preview.say("too many file changes at once for the watcher; checking every file")
                preview.rebuilder.notify(EVERYTHING)


class _Watcher:
    """watchdog events -> the rebuilder, minus editor noise and the build's own writes."""

    def __init__(self, preview: "PreviewServer"):
        self.preview = preview
        self.observer = None
        self.track_close = False
        self.watched: dict[str, bool] = {}  # folder -> recursive
        self._waiters: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                try:
                    watcher.event(event)
                except Exception:  # never let one odd event stop the observer thread
                    watcher.preview.say("internal error in the file watcher:\n" + traceback.format_exc())

        self.handler = Handler()
        self.observer = Observer()
        # inotify reports when a file written to is closed, so a save is known to be complete.
        self.track_close = type(self.observer).__name__ == "InotifyObserver"
        root = self.preview.root
        self.watch(str(root), recursive=False)
        for name in WATCHED_DIRS:
            if (root / name).is_dir():
                self.watch(str(root / name), recursive=True)
        for name in ("templates", "static"):  # the defaults, for whoever edits sitegen's theme
            if (PACKAGE_DIR / name).is_dir():
                self.watch(str(PACKAGE_DIR / name), recursive=True)
        self.observer.daemon = True
        self._listen_for_overflow()
        self.observer.start()

    def _listen_for_overflow(self) -> None:
        """The kernel drops file events when too many come at once (a `git checkout` of thousands of
        files); watchdog only logs that. Then no list of changed files can be trusted: check all."""
        _LISTENING.add(self.preview)
        for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
            logger = logging.getLogger(name)
            if not any(isinstance(h, _Overflow) for h in logger.handlers):
                logger.addHandler(_Overflow(logging.WARNING))
                logger.propagate = False

    def stop(self) -> None:
        _LISTENING.discard(self.preview)
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)

    def watch(self, folder: str, recursive: bool) -> None:
        with self._lock:
            if folder in self.watched and (self.watched[folder] or not recursive):
                return
            if self.observer is None:
                return
            try:
                self.observer.schedule(self.handler, folder, recursive=recursive)
                self.watched[folder] = recursive
            except OSError as exc:
                self.preview.say(f"cannot watch {folder}: {exc}")

    def covered(self, path: str) -> bool:
        parent = os.path.dirname(path)
        for folder, recursive in self.watched.items():
            if parent == folder or (recursive and _inside(parent, folder)):
                return True
        return False

    def expect(self, path: str) -> threading.Event:
        """An event set once the watcher has seen ``path`` (tests use it to know events arrived)."""
        event = threading.Event()
        self._waiters[os.path.abspath(path)] = event
        return event

    def event(self, event) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        if event.is_directory and kind in ("modified", "closed", "attrib"):
            return
        paths = [os.fsdecode(event.src_path)]
        if kind == "moved":
            paths.append(os.fsdecode(event.dest_path))
        for i, path in enumerate(paths):
            waiter = self._waiters.pop(path, None)
            if waiter is not None:
                waiter.set()
            if not self.preview.relevant(path):
                continue
            if event.is_directory and os.path.dirname(path) == str(self.preview.root) \
                    and os.path.basename(path) in WATCHED_DIRS and os.path.isdir(path):
                self.watch(path, recursive=True)  # content/ (or data/ ...) appeared
            writing = None
            if self.track_close and not event.is_directory:
                if kind in ("created", "modified") and i == 0:
                    writing = True
                elif kind in ("closed", "deleted", "moved"):
                    writing = False
            self.preview.rebuilder.notify(path, writing)


# ---------------------------------------------------------------------------------------------

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
        self.log = log or _terminal_log()
        self.watch_files = watch
        self.builder = Builder(self.root, out=self.out_dir, preview=True)
        if hasattr(self.builder, "autosave"):
            self.builder.autosave = False  # written when idle instead, off the edit -> reload path
        self._takes_changed = "changed" in inspect.signature(self.builder.build).parameters
        self.hub = Hub()
        self.rebuilder = Rebuilder(self, quiet=quiet, settle=settle)
        self.watcher = _Watcher(self)
        self.httpd: _HTTPServer | None = None
        self.stopping = False
        self.builds = 0                       # builds run, the first one included
        self.history: list[dict] = []         # the last builds: what changed, what came of it
        self._trust_hints = False             # False: the next build checks every file
        self._printed_warnings: set[str] = set()
        self._failed_before = False
        self._deps: set[str] = set()
        self._manifests: list[str] = []       # the run manifests among _deps (runs still training)
        self._http_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.stop_requested = False
        self._policy_seen: set[str] = set()
        self._policy_lock = threading.Lock()
        self._run_states: dict[str, str | None] = {}  # run manifest -> state last seen
        self._serve_info: dict | None = None
        self._live_said = 0.0

    # -- addresses -------------------------------------------------------------------------------
    @property
    def loopback(self) -> bool:
        return _is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "localhost"
        return f"http://{host}:{self.port}/"

    def host_allowed(self, header: str | None) -> bool:
        if not self.loopback or not header:
            return True
        name = _host_name(header)
        return _is_loopback(name) or name == self.host.lower()

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if not origin:
            return True  # not a browser page (a script, a test client)
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if self.loopback:
            return _is_loopback(parts.hostname or "")
        return bool(host) and parts.netloc.lower() == host.lower()

    # -- life cycle --------------------------------------------------------------------------------
    def bind(self) -> int:
        """Take the port (the next free one if it was not given explicitly). Raises PortInUse."""
        if self.httpd is not None:
            return self.port
        cls = _HTTPServer6 if ":" in self.host else _HTTPServer
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
        threading.Thread(target=self._check_runs, name="sitegen-runs", daemon=True).start()
        self._write_serve_info()
        return self

    def wait(self) -> None:
        """Block until :meth:`stop`, or until :attr:`stop_requested` is set (by a signal handler)."""
        while not self.stop_requested and not self._stopped.wait(0.2):
            pass

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self._remove_serve_info()
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
        if _inside(path, root) and path != root:
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
            if _inside(path, folder):
                return kind
        return "other"

    def relevant(self, path: str) -> bool:
        if _inside(path, self.real_out) or _inside(path, str(self.out_dir)) or _inside(path, self.cache_dir):
            return False
        name = os.path.basename(path)
        if is_editor_noise(name) or name in ("__pycache__", "node_modules"):
            return False
        kind = self.kind(path)
        if kind == "other":
            return path in self._deps or os.path.realpath(path) in self._deps
        root = str(self.root) if _inside(path, str(self.root)) else str(PACKAGE_DIR)
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
            self._write_serve_info()
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
        self.hub.publish(message, [_problem_json(p) for p in result.problems], new_build=bool(written or removed))
        fixed = self._failed_before
        self._failed_before = False
        if changed is None:
            self.say(f"built {result.pages} files in {_duration(seconds)} "
                     f"({len(result.parsed)} post(s) rendered, {len(result.written)} file(s) written)")
        elif all(is_live_path(p) for p in changed) and time.monotonic() - self._live_said < LIVE_SAY_EVERY:
            pass  # a training run redraws its figures several times a second: say so now and then
        else:
            if all(is_live_path(p) for p in changed):
                self._live_said = time.monotonic()
            what = _files(self.root, changed)
            if written or removed:
                out = _files_out(written, removed)
            else:
                out = "no page changed"
            prefix = _paint("fixed", "32") + "; " if fixed else ""
            self.say(f"{what} -> {prefix}{out} ({_duration(seconds)})")
        warnings = [str(p) for p in result.warnings]
        for line in warnings:
            if line not in self._printed_warnings:
                self.say("  " + _paint(line, "33"))
        self._printed_warnings = set(warnings)

    def _failed(self, changed, problems, seconds) -> None:
        self._record(changed, None, problems, seconds)
        self._failed_before = True
        self.hub.publish({"type": "failed"}, [_problem_json(p) for p in problems], new_build=False)
        errors = sum(1 for p in problems if p.level == "error")
        what = _files(self.root, changed) + " -> " if changed else ""
        self.say(f"{what}{_paint('build failed', '31')}: {errors} error(s); "
                 f"still serving the last good pages ({_duration(seconds)})")
        for p in problems:
            self.say("  " + (_paint(str(p), "31") if p.level == "error" else _paint(str(p), "33")))
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
        self._manifests = [d for d in self._deps if d.endswith(os.sep + RUN_FILE)]  # for _check_runs
        if not self.watch_files or self.watcher.observer is None:
            return
        for dep in new:
            if not self.watcher.covered(dep):
                folder = os.path.dirname(dep)
                if os.path.isdir(folder) and not _inside(folder, self.real_out):
                    self.watcher.watch(folder, recursive=False)

    # -- experiments that are still training ----------------------------------------------------------
    def _check_runs(self) -> None:
        """A trainer that dies writes nothing more, so no file event says so: look at the processes of
        the runs the pages show, and redraw those pages once one has stopped."""
        while not self.stopping:
            time.sleep(RUN_CHECK_EVERY)
            for manifest in self._manifests:
                if not os.path.exists(manifest):
                    self._run_states.pop(manifest, None)
                    continue
                run = read_run(Path(manifest).parent)
                state = run.state if run else None
                before = self._run_states.get(manifest)
                self._run_states[manifest] = state
                if state == "stopped" and before != "stopped":
                    self.say(_paint(f"{_files(self.root, [manifest])}: the experiment writing it stopped "
                                    f"before finishing (process {run.pid} is gone)", "33"))
                    self.rebuilder.notify(manifest)

    def _write_serve_info(self) -> None:
        """Tell experiments started with --live where to point their user (``sitegen.live.preview_hint``):
        this server's URL, and which pages read which data file."""
        if self.httpd is None or self.stopping:
            return
        pages: dict[str, list[str]] = {}
        parsed_cache = self.builder.cache.get("parsed", {})
        root = str(self.root)
        for post in getattr(self.builder, "last_posts", []):
            entry = parsed_cache.get(post.rel)
            parsed = entry[1] if isinstance(entry, tuple) else None
            for dep in getattr(parsed, "deps", ()) or ():
                if _inside(dep, root) and not dep.endswith(os.sep + RUN_FILE):
                    rel = Path(dep).relative_to(root).as_posix()
                    if post.url not in pages.setdefault(rel, []):
                        pages[rel].append(post.url)
        info = {"url": self.url, "pid": os.getpid(), "host": socket.gethostname(), "pages": pages}
        if info == self._serve_info:
            return
        self._serve_info = info
        path = Path(self.cache_dir) / SERVE_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{SERVE_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # only a convenience for trainers

    def _remove_serve_info(self) -> None:
        path = Path(self.cache_dir) / SERVE_FILE
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError, AttributeError):
            pass

    def policy_violation(self, report: dict) -> None:
        page = urlsplit(str(report.get("document-uri", ""))).path or "?"
        blocked = str(report.get("blocked-uri", "") or "a resource")
        what = {"inline": "an inline script or style", "eval": "eval()"}.get(blocked, blocked)
        where = str(report.get("source-file", "") or "")
        if where and report.get("line-number"):
            where += f":{report['line-number']}"
        directive = str(report.get("effective-directive") or report.get("violated-directive") or "?")
        line = (f"{page}: the site's Content-Security-Policy ({directive}) blocks {what}"
                + (f" at {where}" if where else "") + "; it would fail the same way once published")
        with self._policy_lock:
            if line in self._policy_seen or len(self._policy_seen) > 200:
                return
            self._policy_seen.add(line)
        self.say(_paint(line, "33"))

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


# ---------------------------------------------------------------------------------------------
# small helpers

def _is_loopback(host: str) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _problem_json(p: Problem) -> dict:
    return {"path": p.path, "line": p.line, "message": p.message, "level": p.level, "text": str(p)}


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _files(root: Path, paths, limit: int = 3) -> str:
    shown = []
    for p in sorted(paths):
        try:
            shown.append(str(Path(p).relative_to(root)))
        except ValueError:
            shown.append(p)
    if len(shown) > limit:
        return ", ".join(shown[:limit]) + f" and {len(shown) - limit} more"
    return ", ".join(shown)


def _files_out(written: list[str], removed: list[str], limit: int = 4) -> str:
    def short(url: str) -> str:
        return url[:-len("index.html")] if url.endswith("/index.html") else url

    parts = []
    if written:
        names = [short(u) for u in sorted(written, key=lambda u: not u.endswith(".html"))]  # pages first
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        parts.append(f"wrote {', '.join(names[:limit])}{more}")
    if removed:
        names = [short(u) for u in removed]
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        parts.append(f"removed {', '.join(names[:limit])}{more}")
    return "; ".join(parts)


def _use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if _use_colour() else text


def _terminal_log():
    lock = threading.Lock()

    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with lock:
            print(f"{stamp} {line}", flush=True)

    return log


# ---------------------------------------------------------------------------------------------

def serve(site: str | Path = ".", host: str = "127.0.0.1", port: int = 8000, port_given: bool = False,
          open_browser: bool = False) -> int:
    """``sitegen serve``: returns the exit code."""
    root = Path(site)
    if not root.is_dir():
        print(f"{site}: no such folder; give the folder of a site (one with content/ in it)", file=sys.stderr)
        return 2
    if not (root / "content").is_dir() and not (root / CONFIG_NAME).is_file():
        print(f"{site}: no content/ folder or {CONFIG_NAME} here; is this a site? "
              "(`sitegen init DIR` starts one)", file=sys.stderr)
    preview = PreviewServer(root, host=host, port=port, port_given=port_given)
    try:
        preview.bind()
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not preview.loopback:
        print(f"warning: listening on {host}: anyone who can reach this machine can read the preview, "
              "drafts included; use the default 127.0.0.1 unless you mean that", file=sys.stderr)
    _terminate_as_interrupt()
    try:
        preview.say("building the preview (drafts included)...")
        preview.start()
        watched = [f"{n}/" for n in WATCHED_DIRS if (preview.root / n).is_dir()] + [CONFIG_NAME]
        preview.say(f"serving {preview.url}  (watching {', '.join(watched)}; Ctrl-C stops)")
        if open_browser:
            import webbrowser

            threading.Thread(target=webbrowser.open, args=(preview.url,), daemon=True).start()
        _stop_on_signal(preview)
        preview.wait()
    except KeyboardInterrupt:
        pass
    finally:
        try:
            preview.stop()
        except KeyboardInterrupt:
            pass
        preview.say("stopped")
    return 0


def _stop_on_signal(preview: PreviewServer) -> None:
    """While serving, Ctrl-C (or SIGTERM) asks the preview to stop rather than raising wherever
    the main thread happens to be; a second one, while it stops, ends the process at once."""
    import signal

    def request_stop(signum, frame):
        if preview.stop_requested:
            os._exit(130)
        preview.stop_requested = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, request_stop)
        except (ValueError, OSError):
            pass


def _terminate_as_interrupt() -> None:
    """`kill` (SIGTERM) stops the preview as cleanly as Ctrl-C does."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):
        pass
