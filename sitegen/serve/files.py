"""Requests to files: which file of the output folder a request names, its type, byte ranges.

Pure functions of their arguments (no server state), so each refusal rule is testable alone.
"""
from __future__ import annotations

import mimetypes
import os
import re
from urllib.parse import quote, unquote, urlsplit

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
    if not inside(real, out_dir):
        return missing
    if os.path.isdir(real):
        if not path.endswith("/"):
            location = "/" + "/".join(quote(s) for s in segments) + "/"
            return ("redirect", location + (f"?{query}" if query else ""))
        index = os.path.realpath(os.path.join(real, "index.html"))
        if inside(index, out_dir) and os.path.isfile(index):
            return ("file", index)
        return missing
    if os.path.isfile(real):
        return ("file", real)
    return missing


def request_path(target: str) -> tuple[str, str]:
    """The (still percent-encoded) path and query of a request target.

    ``//post`` is a path here, not a host: only an absolute ``http://host/path`` target has one.
    """
    if target.startswith("/"):
        path, _, query = target.partition("#")[0].partition("?")
        return path, query
    parts = urlsplit(target)
    return parts.path or "/", parts.query


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (both already absolute and normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def is_live_path(path: str) -> bool:
    """A file a running experiment streams (a part, or its run manifest, inside ``NAME.parts/``)."""
    return os.path.basename(os.path.dirname(path)).endswith(".parts")


def content_type(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def inject(page: bytes, tag: bytes) -> bytes:
    """The page with ``tag`` just before its last ``</body>`` (or at its end)."""
    at = page.lower().rfind(b"</body")
    if at < 0:
        return page + tag
    return page[:at] + tag + page[at:]


def byte_range(header: str, size: int) -> tuple[int, int] | None:
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
