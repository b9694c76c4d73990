"""The build's last stage: the site written to its output folder.

``sitegen build`` writes a new tree beside the output (:func:`start_tree`; post pages are written
into it by the workers as they are rendered) and swaps it in whole (:func:`write_swap`, see
:mod:`sitegen.output` for the promises). The preview writes in place, each changed file staged and
renamed (:func:`write_staged`). Either way a build that fails writes nothing a reader can see.

The tree a switch replaced is not deleted when the build keeps a cache: it waits in the cache folder
(:data:`SPARE`) with a record of what each of its files holds, and the next build brings it up to
date (the files that differ replaced, never written into: unchanged files are hard links shared with
the site being served) instead of making thousands of folders and links again. A spare whose marker
does not name the build its record describes is not used.
"""
from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from sitegen import output

#: how long the preview keeps a figure's old data file after a redraw replaced it (seconds)
STALE_DATA_GRACE = 30.0


#: the folder in the build cache where the previous site waits to become the next one
SPARE = "spare-site"


def start_tree(out_dir: Path, spare: dict | None = None) -> tuple[Path, dict | None]:
    """A folder beside ``out_dir`` for the next site (leftovers of killed builds swept first): the
    spare tree ``spare`` describes, taken out of the cache folder, or else a new, empty one. Returns
    the folder and, for a spare, what each of its files holds (``{rel: key}``)."""
    output.recover(out_dir)
    output.sweep(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    new = output.temp_name(out_dir, "new")
    if spare and spare.get("out_dir") == str(out_dir) and \
            output.read_marker(Path(spare["path"])).get("build") == spare.get("build"):
        try:
            made = os.lstat(os.path.join(spare["path"], output.MARKER)).st_mtime_ns  # (the tree's last write)
            os.rename(spare["path"], new)
            # From here it is a half-made tree like any other (never published: no marker), and a
            # build killed while bringing it up to date leaves it to the next build's sweep.
            os.unlink(new / output.MARKER)
            _remove_unrecorded(new, spare["pages"], made)
            return new, spare["pages"]
        except OSError:
            shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    return new, None


def write_swap(pages, out_dir: Path, old_pages, build_id: str, new: Path | None = None, spare_pages=None,
               keep=None, old_build: str | None = None):
    """Complete the new tree (unchanged files hard-linked from the current site; in a spare tree,
    only the files that differ replaced and those of no page removed), mark it, switch. ``keep``:
    where to keep the replaced site as the next build's spare (None: delete it); ``old_build``: the
    build that ``old_pages`` describes. Returns the files
    written, the files removed, and the record of the kept spare (or None)."""
    if new is None:
        new, spare_pages = start_tree(out_dir)
    written = []
    try:
        made_dirs = {str(new)}
        base, old_base = f"{new}/", f"{out_dir}/"
        for rel, page in pages.items():
            if page.written:  # a worker wrote it already
                written.append(rel)
                continue
            dest = base + rel
            if spare_pages is not None:
                if spare_pages.get(rel) == page.key:
                    if page.data is not None:
                        written.append(rel)
                    continue  # the spare's file is this one already
                if rel in spare_pages:
                    _unlink(dest)  # replaced, never written into: it may be the served site's file too
            parent = os.path.dirname(dest)
            if parent not in made_dirs:
                os.makedirs(parent, exist_ok=True)
                made_dirs.add(parent)
            if page.data is None:
                output.link_or_copy(old_base + rel, dest)
                continue
            with open(dest, "wb") as f:
                f.write(page.data)
            written.append(rel)
        if spare_pages is not None:
            _remove_stale(new, [rel for rel in spare_pages if rel not in pages])
        (new / output.MARKER).write_bytes(output.marker_bytes(build_id))  # last: the tree is complete
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = output.switch(new, out_dir)
    kept = None
    if old is not None:
        kept = _keep_spare(old, keep, out_dir, old_pages, old_build)
        if kept is None:
            output.remove_later(old)
    return written, sorted(set(old_pages) - set(pages)), kept


def _keep_spare(old: Path, keep: Path | None, out_dir: Path, old_pages, old_build) -> dict | None:
    """Move the replaced site into the cache folder for the next build, with what its files hold
    (``old_pages``: the cache's record of the site just replaced, checked against its marker)."""
    if keep is None or not old_pages:
        return None
    build = output.read_marker(old).get("build")
    if not build or build != old_build:
        return None
    try:
        keep.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(keep):
            stale = output.temp_name(out_dir, "old")
            os.rename(keep, stale)
            output.remove_later(stale)
        os.rename(old, keep)
    except OSError:  # another file system, a read-only cache: delete it as before
        return None
    return {"path": str(keep), "out_dir": str(out_dir), "build": build,
            "pages": {rel: entry[0] for rel, entry in old_pages.items()}}


#: how much older than the spare's marker a folder must look to be trusted unchanged since (nanoseconds):
#: file systems that keep whole seconds (ext3, FAT: two) would show a change made just after it as before
CLOCK_MARGIN = 3_000_000_000


def _remove_unrecorded(tree: Path, pages: dict, made: int | None = None) -> None:
    """Bring the spare ``tree`` to what its record ``pages`` says, by names: whatever it holds that
    the record does not name (a file put into the served site by hand, a link, a folder) goes, and a
    recorded file that is missing (deleted by hand) is marked unknown (its key None), so that it is
    written again, and removed with its empty folders if the new site has no such page.

    Adding or removing a name changes its folder's modification time: a folder last changed before
    ``made`` (the time the tree's build completed, its marker's; :data:`CLOCK_MARGIN` before it) holds
    what that build left there, and is not listed. A one-post rebuild of a 4,000-post site stats its
    4,000 folders instead of listing them (a quarter of the time). ``made`` None: every folder is listed."""
    base = str(tree)
    by_folder: dict[str, list[str]] = {}
    for rel in pages:
        by_folder.setdefault(rel.rpartition("/")[0], []).append(rel)
    folders = set(by_folder)
    for folder in list(folders):
        while folder:
            folder = folder.rpartition("/")[0]
            if folder in folders:
                break
            folders.add(folder)
    trusted_before = None if made is None else made - CLOCK_MARGIN
    for folder in sorted(folders):  # (a folder before the folders in it)
        path = f"{base}/{folder}" if folder else base
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and folder and stat.S_ISDIR(st.st_mode) and trusted_before is not None \
                and max(st.st_mtime_ns, st.st_ctime_ns) < trusted_before:
            continue
        if st is None or not stat.S_ISDIR(st.st_mode):  # gone (its folder was listed), or not a folder
            if st is not None:
                _unlink(path)
            inside = folder + "/"
            for rel in pages:
                if rel.startswith(inside):
                    pages[rel] = None
            continue
        seen = set()
        prefix = folder + "/" if folder else ""
        with os.scandir(path) as it:
            entries = list(it)
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if rel not in folders:
                    shutil.rmtree(entry.path, ignore_errors=True)
            elif rel in pages:  # a file, or a link (to a folder too), the record names
                seen.add(rel)
            else:
                _unlink(entry.path)
        for rel in by_folder.get(folder, ()):
            if rel not in seen:
                pages[rel] = None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_stale(tree: Path, rels: list[str]) -> None:
    """Files of the spare that no page of the new site has, and the folders they leave empty."""
    parents = set()
    for rel in rels:
        _unlink(f"{tree}/{rel}")
        parents.add(os.path.dirname(rel))
    for parent in sorted(parents, key=len, reverse=True):
        while parent:
            try:
                os.rmdir(f"{tree}/{parent}")
            except OSError:
                break  # not empty (or gone)
            parent = os.path.dirname(parent)


def write_staged(builder, pages, out_dir: Path, old_pages, build_id: str):
    """Write the changed files in place (the preview): each staged beside its destination, then all
    renamed, with a marker naming no build while the folder is half renamed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not builder._swept:
        output.sweep_staged(out_dir)  # what a killed write left half-staged
        builder._swept = True
    marker = out_dir / output.MARKER
    staged: list[tuple[Path, Path]] = []
    try:
        trusted = builder._hint is not None  # the previous build wrote them; nothing else touches them
        for rel, page in pages.items():
            if page.data is None and trusted:
                continue
            dest = out_dir / rel
            if page.data is None and dest.exists():
                continue
            if page.data is None:
                raise RuntimeError(f"missing unchanged output {rel}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
            tmp.write_bytes(page.data)
            staged.append((tmp, dest))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    # Half renamed, the folder matches no build: a marker naming none says so to the next one.
    replace_bytes(marker, output.marker_bytes("in-progress"))
    for tmp, dest in staged:
        os.replace(tmp, dest)
    removed = []
    unlinked = False
    now = time.monotonic()
    doomed = builder._doomed
    for rel in set(old_pages) - set(pages):
        if builder.preview and rel.endswith(".bin"):
            # An open tab may be fetching the figure data its page named a moment ago, while a
            # training run redraws the figure every quarter second: let the old data outlive it.
            doomed.setdefault(rel, now)
            removed.append(rel)
            continue
        try:
            (out_dir / rel).unlink()
            removed.append(rel)
            unlinked = True
        except FileNotFoundError:
            pass
    for rel, since in list(doomed.items()):
        if rel in pages:
            del doomed[rel]
        elif now - since > STALE_DATA_GRACE:
            del doomed[rel]
            (out_dir / rel).unlink(missing_ok=True)
    if unlinked:
        _prune_empty_dirs(out_dir)
    replace_bytes(marker, output.marker_bytes(build_id))
    return [str(dest.relative_to(out_dir)) for _, dest in staged], sorted(removed)


def replace_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        if not dirnames and not filenames and Path(dirpath) != root:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
