"""Files a build may read: those inside the site's folder.

A post, a bundle's file, a data table or a template named by a path that leaves the site
(``../../secret.csv``, ``/etc/...``, or a symlink pointing out) would be published without a word;
the build refuses it with the path instead.
"""
from __future__ import annotations

import os
from pathlib import Path


def outside(root: Path | str, path: Path | str) -> str | None:
    """Where ``path`` really leads if that is outside ``root`` (symlinks followed), else None."""
    real = os.path.realpath(path)
    site = os.path.realpath(root)
    if real == site or real.startswith(site.rstrip(os.sep) + os.sep):
        return None
    return real


def outside_message(shown: str, real: str, what: str = "file") -> str:
    return (f"{shown}: this {what} leads outside the site's folder (to {real}); a build reads only files "
            "inside the site: copy it in (e.g. into data/)")
