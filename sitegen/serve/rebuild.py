"""The rebuilder: collects changed paths, waits until a burst of them is over, runs one build at a time.

An editor's save is often several events (a temporary file, a rename, a delete); a file opened for
writing is given time to be closed; a training run that rewrites its trace without pause still
redraws at a steady pace. Changes that arrive during a build wait for the next one, so two builds
never run at once. When nothing happens for a while, the build cache is saved to disk, off the
edit -> reload path.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from typing import TYPE_CHECKING

from sitegen.live import RUN_FILE
from sitegen.serve.files import is_live_path

if TYPE_CHECKING:
    from sitegen.serve.preview import PreviewServer

#: a burst of events is over once none came for this long (an editor's save takes a few ms)
QUIET = 0.015
#: a file that was opened for writing and not closed yet is given this long to be closed
SETTLE = 0.5
#: a file rewritten without pause (a training run streaming its trace) still rebuilds this often
MAX_WAIT = 2.0
#: a running experiment's new rows redraw its figures at most this often (seconds), however fast it writes
LIVE_EVERY = 0.25
#: the parse cache is written to disk once the preview has been idle this long
IDLE_SAVE = 5.0


class Rebuilder:
    """Collects changed paths, waits for a burst to end, and runs one build at a time."""

    SAVE = object()

    def __init__(self, preview: "PreviewServer", quiet: float = QUIET, settle: float = SETTLE,
                 max_wait: float = MAX_WAIT):
        self.preview = preview
        self.quiet, self.settle, self.max_wait = quiet, settle, max_wait
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._writing: set[str] = set()
        self._first = self._last = 0.0
        self._idle_since = time.monotonic()
        self._live_built = 0.0  # when the last build for a running experiment's rows started
        self._busy = False
        self._stopping = False
        self.dirty = False  # the builder's cache has news not yet on disk
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy or bool(self._pending)

    def notify(self, path: str, writing: bool | None = None) -> None:
        if is_live_path(path):  # a new part counts as its run's news: pages depend on the manifest
            path, writing = os.path.join(os.path.dirname(path), RUN_FILE), None
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending.add(path)
            self._last = now
            if writing is True:
                self._writing.add(path)
            elif writing is False:
                self._writing.discard(path)
            self._cond.notify_all()

    def has_pending(self) -> bool:
        with self._cond:
            return bool(self._pending)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="sitegen-rebuild", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no change is pending and no build runs (for tests and benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and not self._pending, timeout)

    def _take(self):
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                if not self._pending:
                    if self.dirty and now - self._idle_since >= IDLE_SAVE:
                        self._busy = True
                        return self.SAVE
                    self._cond.wait(IDLE_SAVE if self.dirty else None)
                    continue
                need = self.settle if self._writing else self.quiet
                quiet_for = now - self._last
                live = all(is_live_path(p) for p in self._pending)
                if live:  # a trainer writes parts on its own clock: redraw at a steady pace instead
                    wait = self._live_built + LIVE_EVERY - now
                    if wait <= 0:
                        need = 0.0
                    else:
                        self._cond.wait(wait)
                        continue
                if quiet_for >= need or now - self._first >= self.max_wait:
                    batch, self._pending = self._pending, set()
                    self._writing.clear()
                    self._busy = True
                    if live:
                        self._live_built = now
                    return batch
                self._cond.wait(min(need - quiet_for, self.max_wait - (now - self._first)))

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                if batch is self.SAVE:
                    self.preview.save_cache()
                else:
                    self.preview.rebuild(batch)
            except Exception:  # the rebuild reports its own errors; this is a bug of ours
                self.preview.say("internal error in the preview:\n" + traceback.format_exc())
            finally:
                with self._cond:
                    self._busy = False
                    self._idle_since = time.monotonic()
                    self._cond.notify_all()
