"""The reload channel: a stream of server-sent events from the preview to its open tabs.

The channel only ever speaks from server to browser (what a build changed, or what went wrong), so
it is a plain HTTP response that never ends: ``Content-Type: text/event-stream``, one
``data: {json}`` block per message, a ``: keep-alive`` comment now and then so that a vanished tab
is noticed. The browser's ``EventSource`` reads it (``static_preview/reload.js``); there is no
framing, masking or handshake to get wrong.

The :class:`Hub` holds what every tab should know (the build number, the current problems) and the
tabs to tell; a tab that connects first gets a ``hello`` with that state, so a message published
while its page loaded is never missed.
"""
from __future__ import annotations

import json
import secrets
import select
import socket
import threading

#: open reload streams beyond this are refused (browsers share one per server across tabs)
MAX_STREAMS = 128
#: a stream that carried nothing for this long gets a comment, so a vanished peer is noticed
PING_EVERY = 20
#: how long the browser waits before reconnecting a dropped stream (milliseconds)
RETRY_MS = 500

KEEP_ALIVE = b": keep-alive\n\n"


def event(message: dict) -> bytes:
    """One server-sent event carrying ``message`` (JSON never holds a raw newline)."""
    return b"data: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"


class Tab:
    """One open reload stream. Any thread may send; a failed send marks it gone."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()
        self.closed = False

    def send(self, data: bytes) -> bool:
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.closed = True
                return False

    def close(self) -> None:
        with self.lock:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Hub:
    """The state every tab should know (build number, current problems) and the tabs to tell."""

    def __init__(self, limit: int = MAX_STREAMS):
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
            return tab.send(f"retry: {RETRY_MS}\n\n".encode() + event(self.hello()))

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
            data = event({**message, "build": self.build, "structural": self.structural, "problems": problems})
            for tab in list(self._tabs):
                if not tab.send(data):
                    self._tabs.discard(tab)

    def close_all(self) -> None:
        with self._lock:
            tabs = list(self._tabs)
            self._tabs.clear()
        for tab in tabs:
            tab.close()


def stream(sock: socket.socket, hub: Hub, stopping) -> None:
    """Hold one tab's stream open (the response headers are sent) until it or the server goes away.

    The browser never sends anything on the stream: readable means it hung up (or broke the rules).
    ``stopping()`` says the server is shutting down.
    """
    tab = Tab(sock)
    if not hub.join(tab):
        tab.close()
        return
    try:
        while not tab.closed and not stopping():
            ready, _, _ = select.select([sock], [], [], PING_EVERY)
            if ready or not tab.send(KEEP_ALIVE):
                break
    except (OSError, ValueError):
        pass  # the tab went away without saying goodbye
    finally:
        hub.leave(tab)
        tab.close()
