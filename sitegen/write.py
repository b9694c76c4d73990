"""The build's last stage: the site written to its output folder.

``sitegen build`` writes a fresh tree beside the output (:func:`start_tree`; post pages are written
into it by the workers as they are rendered) and swaps it in whole (:func:`write_swap`, see
:mod:`sitegen.output` for the promises). The preview writes in place, each changed file staged and
renamed (:func:`write_staged`). Either way a build that fails writes nothing a reader can see.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sitegen import output

#: how long the preview keeps a figure's old data file after a redraw replaced it (seconds)
STALE_DATA_GRACE = 30.0


def start_tree(out_dir: Path) -> Path:
    """A new, empty folder beside ``out_dir`` for the next site (leftovers of killed builds swept first)."""
    output.recover(out_dir)
    output.sweep(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    new = output.temp_name(out_dir, "new")
    new.mkdir()
    return new


def write_swap(pages, out_dir: Path, old_pages, build_id: str, new: Path | None = None):
    """Complete the new tree (unchanged files hard-linked from the current site), mark it, switch."""
    if new is None:
        new = start_tree(out_dir)
    written = []
    try:
        made_dirs = {str(new)}
        base, old_base = f"{new}/", f"{out_dir}/"
        for rel, page in pages.items():
            if page.written:  # a worker wrote it already
                written.append(rel)
                continue
            dest = base + rel
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
        (new / output.MARKER).write_bytes(output.marker_bytes(build_id))  # last: the tree is complete
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = output.switch(new, out_dir)
    if old is not None:
        output.remove_later(old)
    return written, sorted(set(old_pages) - set(pages))


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
