"""The output folder: which folder a build may own, and how a new site replaces the old one.

Two promises, both about the user's files:

* **The output folder is the build's, and only the build's.** A build replaces its output folder
  whole, so :func:`check` refuses a folder that is, holds or lies inside the site's sources
  (``content/``, ``data/``, ...), the site itself, ``/`` or the home folder, and an existing
  non-empty folder that sitegen did not write. Every folder a build writes holds a marker file,
  :data:`MARKER`; a folder without one is somebody else's.
* **The switch is atomic for a reader.** :func:`publish` writes the new site into a fresh hidden
  folder beside the output (unchanged files hard-linked from the current site, so a rebuild stays
  cheap), then swaps the two folders with one ``renameat2(RENAME_EXCHANGE)`` (Linux;
  ``renamex_np(RENAME_SWAP)`` on macOS). Killed at any moment, the output folder is wholly the
  old site or wholly the new one; whatever a killed build left beside it is swept by the next
  build (:func:`sweep`) and never published, since it is never inside the output folder.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from sitegen.errors import Problem

#: written into every output folder; its presence is what lets a build replace the folder
MARKER = ".sitegen-output"
#: the site's own folders, never an output nor inside one
SOURCES = ("content", "data", "templates", "static", "public", "experiments", ".git")
#: our temporary folders beside the output: ``.<name>.sitegen-new-<pid>-<n>`` / ``-old-``; and the
#: names older versions used (``.<name>.building-<pid>``, ``.<name>.old-<pid>``)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:sitegen-(?P<kind>new|old)-(?P<pid>\d+)-\d+|"
                   r"(?P<legacy>building|old)-(?P<lpid>\d+))$")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check(root: Path, out: Path, where: tuple[str, int | None], shown: str,
          known_outputs=()) -> list[Problem]:
    """Why ``out`` cannot be this site's output folder (empty: it can).

    ``where`` is what the message blames (``("sitegen.toml", line)`` or ``("--out", None)``),
    ``shown`` the folder as the user wrote it. ``known_outputs``: folders this site's build cache
    says it wrote to (outputs of versions before the marker existed are accepted through it).
    """
    path, line = where

    def problem(message: str) -> list[Problem]:
        return [Problem(path, line, message)]

    if not shown.strip():
        return problem("the output folder is empty; name a folder of its own for the built site, "
                       "e.g. output = \"_site\"")
    if "\x00" in shown:
        return problem("the output folder's name holds a NUL byte")
    real, site = _real(out), _real(root)
    fix = "; choose a folder of its own for the built site, e.g. \"_site\""
    if real == Path(real.anchor):
        return problem(f"output '{shown}' is the file system's root /: a build replaces its output folder "
                       f"whole{fix}")
    try:
        home = _real(Path.home())
    except (RuntimeError, KeyError):
        home = None
    if home is not None and _inside(home, real):
        what = "is your home folder" if real == home else f"holds your home folder {home}"
        return problem(f"output '{shown}' {what}: a build replaces its output folder whole{fix}")
    if _inside(site, real):
        what = "is the site's own folder" if real == site else f"holds the site's folder {site}"
        return problem(f"output '{shown}' {what}: building there would delete your posts and data{fix}")
    for name in SOURCES:
        source = _real(root / name)
        if _inside(real, source):
            what = "is" if real == source else "lies inside"
            return problem(f"output '{shown}' {what} the site's {name}/ folder: a build replaces its output "
                           f"folder whole, which would delete what is there{fix}")
    if os.path.lexists(real):
        if not real.is_dir():
            return problem(f"output '{shown}' is a file, not a folder{fix}")
        known = {str(_real(Path(k))) for k in known_outputs if k}
        if not (real / MARKER).is_file() and str(real) not in known and _non_empty(real):
            return problem(f"output '{shown}' already holds files that sitegen did not write (no {MARKER} "
                           "marker in it); a build replaces its output folder whole. Choose a new or empty "
                           "folder, or move that folder's files away yourself if it is an old build")
    return []


def _non_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return True


def read_marker(out: Path) -> dict:
    """What the marker in an output folder says (``{}`` if it has none or it is damaged)."""
    try:
        data = json.loads((out / MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def marker_bytes(build_id: str) -> bytes:
    return (json.dumps({"build": build_id, "written_by": "sitegen",
                        "note": "sitegen replaces this folder whole on every build; keep your files elsewhere"})
            + "\n").encode()


# ----------------------------------------------------------------------------------------------
# leftovers of killed builds

def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by somebody else
    return True


def sweep(out: Path) -> list[Path]:
    """Remove the temporary folders that builds of ``out`` left beside it when they were killed
    (a build still running keeps its own). Returns what was removed."""
    parent = out.parent
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or m.group("name") != out.name:
            continue
        if m.group("kind") == "old" or m.group("legacy") == "old":
            stale = True  # a replaced site: nobody needs it, even if its build still runs
        else:
            stale = not _alive(int(m.group("pid") or m.group("lpid")))
        if stale and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def sweep_staged(out: Path) -> None:
    """Inside a folder written in place (the preview): files a killed write left half-staged."""
    staged = re.compile(r"^\..+\.tmp\d+$")
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            if staged.match(name):
                try:
                    os.unlink(os.path.join(dirpath, name))
                except OSError:
                    pass


# ----------------------------------------------------------------------------------------------
# the switch

_counter = 0


def temp_name(out: Path, kind: str) -> Path:
    global _counter
    _counter += 1
    return out.with_name(f".{out.name}.sitegen-{kind}-{os.getpid()}-{time.monotonic_ns()}{_counter}")


def _exchange_call():
    """A function swapping two paths atomically, or None where the system has none."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        fn = libc.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b: fn(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        fn = libc.renamex_np
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rename_swap = 2
        return lambda a, b: fn(a, b, rename_swap)
    return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step. False where the system or file system cannot."""
    call = _exchange_call()
    if call is None:
        return False
    import ctypes

    if call(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a))


def switch(new: Path, out: Path) -> Path | None:
    """Make the finished tree ``new`` the output folder ``out``. Returns the path now holding the
    old site (to delete), or None if there was none."""
    if not os.path.lexists(out):
        os.rename(new, out)
        return None
    if exchange(new, out):
        old = temp_name(out, "old")
        os.rename(new, old)  # a unique name: a later build in this process reuses nothing
        return old
    # No atomic swap here (another OS, or a file system without it): two renames. A reader may
    # find no folder for a moment, and a build killed between them leaves the new site beside
    # the output, where the next build's recover() puts it in place.
    old = temp_name(out, "old")
    os.rename(out, old)
    os.rename(new, out)
    return old


def recover(out: Path) -> None:
    """After a build killed between the two renames of a non-atomic :func:`switch`: the output
    folder is missing and a complete new site (its marker written last) waits beside it."""
    if os.path.lexists(out):
        return
    candidates = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and m.group("name") == out.name and m.group("kind") == "new" and not _alive(int(m.group("pid"))):
            if os.path.isfile(os.path.join(entry.path, MARKER)):
                candidates.append(entry.path)
    if candidates:
        os.rename(max(candidates, key=os.path.getmtime), out)


def remove_later(path: Path) -> None:
    """Delete a replaced site without making the user wait: unlinking thousands of files can take
    seconds on a busy disk, and the new site is already in place."""
    if sys.platform != "win32" and shutil.which("rm"):
        import subprocess

        subprocess.Popen(["rm", "-rf", "--", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def link_or_copy(src: Path, dest: Path) -> None:
    """An unchanged file of the current site into the new tree: a hard link (both trees share it;
    nothing ever writes into an output file in place), a copy where links are not possible."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
