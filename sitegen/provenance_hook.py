"""The build's one question to the data workflow: which tables used by pages are stale?"""
from __future__ import annotations

from pathlib import Path


def stale_data_warnings(root: Path, parsed_cache: dict, posts) -> list:
    used = set()
    for post in posts:
        entry = parsed_cache.get(post.rel)
        if entry:
            used.update(entry[1].deps)
    if not used:
        return []
    try:
        from sitegen.provenance import stale_warnings
    except ImportError:
        return []
    try:
        return list(stale_warnings(root, sorted(used)))
    except Exception:
        return []
