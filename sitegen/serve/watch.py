"""The watcher: file-system events (watchdog) under the site's sources -> changed paths for the rebuilder.

Drops editor noise (swap files, ``.#`` locks, vim's ``4913`` probe, backups) and everything the
build itself writes; when the kernel drops events (too many at once), asks for a check of every file.
"""
from __future__ import annotations

import logging
import os
import threading
import traceback
import weakref
from typing import TYPE_CHECKING

from sitegen.stages import PACKAGE_DIR
from sitegen.serve.files import inside

if TYPE_CHECKING:
    from sitegen.serve.preview import PreviewServer

WATCHED_DIRS = ("content", "data", "templates", "static", "public")
#: a "changed path" meaning: events were lost, check every file
EVERYTHING = "\0everything"

_NOISE_SUFFIXES = (
    "~", ".swp", ".swo", ".swn", ".swx", ".tmp", ".temp", ".bak", ".orig", ".kate-swp", ".crswap",
    ".part", ".crdownload", "___jb_tmp___", "___jb_old___", ".sb-", ".DS_Store",
)


def is_editor_noise(name: str) -> bool:
    """Files editors and tools write beside the real one while saving; never worth a rebuild.

    Hidden files (``.post.md.swp``, emacs's ``.#post.md`` lock, gedit's ``.goutputstream-*``,
    the build's own ``.name.tmp123``), emacs autosaves ``#post.md#``, backups ``post.md~``,
    vim's write probe ``4913`` (and the other all-digit names it tries), JetBrains' safe-write
    files, temporary and partial downloads.
    """
    if not name or name.startswith(".") or name.isdigit():
        return True
    if name.startswith("#") and name.endswith("#"):
        return True
    if "___jb_" in name or name.startswith("~$"):
        return True
    return name.endswith(_NOISE_SUFFIXES) or ".sb-" in name


#: previews whose watchers are running, to be told when watchdog reports lost events
_LISTENING: "weakref.WeakSet[PreviewServer]" = weakref.WeakSet()


class _Overflow(logging.Handler):
    def emit(self, record):
        if "overflow" in record.getMessage().lower():
            for preview in list(_LISTENING):
                preview.say("too many file changes at once for the watcher; checking every file")
                preview.rebuilder.notify(EVERYTHING)


class Watcher:
    """watchdog events -> the rebuilder, minus editor noise and the build's own writes."""

    def __init__(self, preview: "PreviewServer"):
        self.preview = preview
        self.observer = None
        self.track_close = False
        self.watched: dict[str, bool] = {}  # folder -> recursive
        self._waiters: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                try:
                    watcher.event(event)
                except Exception:  # never let one odd event stop the observer thread
                    watcher.preview.say("internal error in the file watcher:\n" + traceback.format_exc())

        self.handler = Handler()
        self.observer = Observer()
        # inotify reports when a file written to is closed, so a save is known to be complete.
        self.track_close = type(self.observer).__name__ == "InotifyObserver"
        root = self.preview.root
        self.watch(str(root), recursive=False)
        for name in WATCHED_DIRS:
            if (root / name).is_dir():
                self.watch(str(root / name), recursive=True)
        for name in ("templates", "static"):  # the defaults, for whoever edits sitegen's theme
            if (PACKAGE_DIR / name).is_dir():
                self.watch(str(PACKAGE_DIR / name), recursive=True)
        self.observer.daemon = True
        self._listen_for_overflow()
        self.observer.start()

    def _listen_for_overflow(self) -> None:
        """The kernel drops file events when too many come at once (a `git checkout` of thousands of
        files); watchdog only logs that. Then no list of changed files can be trusted: check all."""
        _LISTENING.add(self.preview)
        for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
            logger = logging.getLogger(name)
            if not any(isinstance(h, _Overflow) for h in logger.handlers):
                logger.addHandler(_Overflow(logging.WARNING))
                logger.propagate = False

    def stop(self) -> None:
        _LISTENING.discard(self.preview)
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)

    def watch(self, folder: str, recursive: bool) -> None:
        with self._lock:
            if folder in self.watched and (self.watched[folder] or not recursive):
                return
            if self.observer is None:
                return
            try:
                self.observer.schedule(self.handler, folder, recursive=recursive)
                self.watched[folder] = recursive
            except OSError as exc:
                self.preview.say(f"cannot watch {folder}: {exc}")

    def covered(self, path: str) -> bool:
        parent = os.path.dirname(path)
        for folder, recursive in self.watched.items():
            if parent == folder or (recursive and inside(parent, folder)):
                return True
        return False

    def expect(self, path: str) -> threading.Event:
        """An event set once the watcher has seen ``path`` (tests use it to know events arrived)."""
        event = threading.Event()
        self._waiters[os.path.abspath(path)] = event
        return event

    def event(self, event) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        if event.is_directory and kind in ("modified", "closed", "attrib"):
            return
        paths = [os.fsdecode(event.src_path)]
        if kind == "moved":
            paths.append(os.fsdecode(event.dest_path))
        for i, path in enumerate(paths):
            waiter = self._waiters.pop(path, None)
            if waiter is not None:
                waiter.set()
            if not self.preview.relevant(path):
                continue
            if event.is_directory and os.path.dirname(path) == str(self.preview.root) \
                    and os.path.basename(path) in WATCHED_DIRS and os.path.isdir(path):
                self.watch(path, recursive=True)  # content/ (or data/ ...) appeared
            writing = None
            if self.track_close and not event.is_directory:
                if kind in ("created", "modified") and i == 0:
                    writing = True
                elif kind in ("closed", "deleted", "moved"):
                    writing = False
            self.preview.rebuilder.notify(path, writing)
