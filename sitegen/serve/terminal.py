"""What the preview says in the terminal: one timestamped line per event, coloured when it is a tty.

Text that comes from a request (a URL, a browser's report) is passed through :func:`printable`
first: raw escape bytes in it would otherwise reach the terminal and drive it (clear the screen,
retitle the window, hide what follows).
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, limit: int = 300) -> str:
    """``text`` with every control character written as an escape (``\\x1b``), at most ``limit`` characters."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "\u2026"
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def files(root: Path, paths, limit: int = 3) -> str:
    """Changed source files, relative to the site, the first few only."""
    shown = []
    for p in sorted(paths):
        try:
            shown.append(str(Path(p).relative_to(root)))
        except ValueError:
            shown.append(p)
    if len(shown) > limit:
        return ", ".join(shown[:limit]) + f" and {len(shown) - limit} more"
    return ", ".join(shown)


def files_out(written: list[str], removed: list[str], limit: int = 4) -> str:
    """What a build wrote and removed, pages first, ``/post/`` rather than ``/post/index.html``."""
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


def use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if use_colour() else text


def terminal_log():
    """A ``log(line)`` that prints with a time stamp; lines from several threads never interleave."""
    lock = threading.Lock()

    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with lock:
            print(f"{stamp} {line}", flush=True)

    return log
