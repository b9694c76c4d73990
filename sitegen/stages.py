"""What the build's two stages share, so that neither imports the other.

:mod:`sitegen.build` runs the stages and writes the site; :mod:`sitegen.render` turns parsed posts
into pages. Both speak of output files (:class:`PageOut`), key the incremental cache with
:func:`digest`, and find the package's default templates and static files under
:data:`PACKAGE_DIR`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

#: the installed package: its default templates/ and static/ live here
PACKAGE_DIR = Path(__file__).resolve().parent
#: the site's cache folder (parse cache, the preview's output), beside content/
CACHE_NAME = ".sitegen-cache"


def digest(*parts) -> str:
    """A short content key for anything with a stable ``repr`` (strings, numbers, tuples, sorted lists)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


@dataclass
class PageOut:
    """One output file and what the link checker needs to know about it."""

    key: str
    data: bytes | None                       # None: unchanged, take it from the previous output
    links: list[tuple[str, int | None]] = field(default_factory=list)
    ids: frozenset = frozenset()
    source: str | None = None                # the post it came from, for messages
