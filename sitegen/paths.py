"""Files a build may read: those inside the site's folder.

A post, a bundle's file, a data table or a template named by a path that leaves the site
(``../../secret.csv``, ``/etc/...``, or a symlink pointing out) would be published without a word;
the build refuses it with the path instead.
"""
from __future__ import annotations

import os
from pathlib import Path


def outside(root: Path | str, path: Path | str, folders: dict[str, str] | None = None) -> str | None:
    """Where ``path`` really leads if that is outside ``root`` (symlinks followed), else None.
    ``folders``: resolved folders kept between calls (see :func:`realpath_in`), for many paths in a few
    folders (a build loading its posts): each folder and the root resolved once, and the file only if
    it is a link, instead of walking all their components for each path."""
    if folders is None:
        real = os.path.realpath(path)
        site = os.path.realpath(root)
    else:
        real = realpath_in(os.fspath(path), folders)
        root = os.fspath(root)
        site = folders.get(root)
        if site is None:
            site = folders[root] = os.path.realpath(root)
    if real == site or real.startswith(site.rstrip(os.sep) + os.sep):
        return None
    return real


def confine(root: Path, relpath: str, path: Path, where: str, line: int | None) -> None:
    """Raise the error for a path written in a post that leads outside the site."""
    from sitegen.errors import SiteError

    real = outside(root, path)
    if real is not None:
        raise SiteError(where, line, f"'{relpath}' leads outside the site's folder (to {real}); a page may read "
                                     "only files inside the site: copy the file into data/")


def outside_message(shown: str, real: str, what: str = "file") -> str:
    return (f"{shown}: this {what} leads outside the site's folder (to {real}); a build reads only files "
            "inside the site: copy it in (e.g. into data/)")


def symlink_refused(root: Path, path: Path, shown: str, report, what: str = "file") -> bool:
    """Report a symlink of the site that leads out of it (True: leave the file out)."""
    real = outside(root, path)
    if real is not None:
        report.error(shown, None, outside_message("a symlink", real, what))
    return real is not None


def bundle_files(root: Path, post, report, is_markdown) -> list[tuple[str, Path]]:
    """The files beside a bundle post's ``index.md`` to publish with its page, as (path in the post's
    folder, file); a symlink leading out of the site and a file that would replace the page itself
    (``index.html``) are reported instead. None for a post that is not a bundle."""
    if not post.is_bundle:
        return []
    folder = post.source.parent
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or is_markdown(path.name) or path.name.startswith("."):
            continue
        rel, shown = path.relative_to(folder).as_posix(), str(path.relative_to(root))
        if symlink_refused(root, path, shown, report, "bundle file"):
            continue
        if rel == "index.html":
            report.error(shown, None, f"the post's page is /{post.folder}index.html, so this file of its folder "
                                      "would replace it; rename it or move it elsewhere")
            continue
        found.append((rel, path))
    return found


def realpath_in(path: str, folders: dict[str, str], plain: bool = False) -> str:
    """``str(Path(path).resolve())``, with each folder resolved once (posts share a few folders, and
    resolving walks every component of the path): only a file that is itself a link is resolved whole.
    ``plain``: the caller knows the file is no link (a folder listing said so), so it is not asked."""
    folder, name = os.path.split(path)
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    real = folders.get(folder)
    if real is None:
        real = folders[folder] = os.path.realpath(folder or ".")
    joined = os.path.join(real, name)
    # Asked of the resolved path: "a/missing/../link" names a link that "a/missing" hides from lstat.
    return os.path.realpath(joined) if not plain and os.path.islink(joined) else joined
