"""``public/``: files served at the site's root exactly as they are.

``public/assets/plot.png`` is ``/assets/plot.png``, ``public/CNAME`` is ``/CNAME``. This is where a
Jekyll blog's ``assets/`` and ``images/``, ``favicon.ico``, ``CNAME``, ``.nojekyll``, Netlify's
``_redirects`` and ``_headers`` go: nothing is renamed, fingerprinted or processed, and links to
them are checked like links to pages. (``static/`` stays what templates use through ``asset()``:
stylesheets and scripts served under ``/static/``, fingerprinted for caching.)

A ``public/robots.txt`` replaces the generated one; any other file that would replace a generated
page is an error, so a stray ``public/index.html`` never hides the index.
"""
from __future__ import annotations

import os
from pathlib import Path

PUBLIC_DIR = "public"
#: generated files a public file may replace on purpose
OVERRIDABLE = frozenset({"robots.txt"})
#: never published: version control and desktop litter, editor swap and backup files
IGNORED_NAMES = frozenset({".git", ".hg", ".svn", ".DS_Store", "Thumbs.db", "desktop.ini", "__pycache__"})


def ignored(name: str) -> bool:
    return (name in IGNORED_NAMES or name.endswith(("~", ".swp", ".swo", ".tmp"))
            or name.startswith((".#", "#")))


def public_files(root: Path) -> dict[str, Path]:
    """Every file under ``root/public`` by its path in the site (``assets/x.png``), sorted.

    Hidden files are kept (``.nojekyll``, ``.well-known/``): they are published on purpose."""
    base = Path(root) / PUBLIC_DIR
    found: dict[str, Path] = {}
    if not base.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not ignored(d))
        for name in sorted(filenames):
            if ignored(name):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                found[path.relative_to(base).as_posix()] = path
    return found
