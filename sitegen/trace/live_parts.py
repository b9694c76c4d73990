"""Live parts: what a run writes while it trains, for the preview (format: :mod:`sitegen.live`).

:class:`_LiveParts` owns the ``.parts`` folder of a table being traced and the daemon thread that
writes numbered parquet parts and the ``_run.json`` manifest into it, each renamed into place, so
a reader never sees half a file, whenever the process is killed.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sitegen.live import PART, RUN_FILE, parts_dir
from sitegen.trace.table import _build_table, _write_parquet

#: Parts live until the final table replaces them and are read once each by the preview, so they
#: are written for speed more than size. For a part of 1.5M rows (500 steps of 60 models x 50
#: parameters, training values) zstd took 142 ms of CPU (7.0 MB), lz4 58 ms (9.3 MB), none 44 ms
#: (43 MB), lz4 with the float columns byte-stream-split 48 ms (6.5 MB, and the fastest to read).
_PART_COMPRESSION = "lz4"


def _part_options(schema) -> dict:
    """pyarrow.parquet.write_table options for a live part."""
    import pyarrow as pa

    return dict(
        compression=_PART_COMPRESSION,
        # Parquet's dictionary encoding only for columns that are dictionaries already (text):
        # hashing every value and step to look for repeats is most of the cost of the others.
        use_dictionary=[f.name for f in schema if pa.types.is_dictionary(f.type)],
        # Floats byte by byte: the exponent bytes repeat, so lz4 finds them (a third of the size).
        column_encoding={f.name: "BYTE_STREAM_SPLIT" for f in schema if pa.types.is_floating(f.type)},
        write_statistics=False,   # nobody filters a part by its row groups' min and max
    )


def _warm_up() -> None:
    """Write a tiny part to memory, on this thread, before the writer thread starts.

    pyarrow imports modules lazily (pandas among them, the first time an array has a mask), and
    a module that registers an exit hook cannot be imported once the interpreter is exiting, which
    is when a script that ends without ``write()`` has its last parts written. So every import the
    writer needs happens here first.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunk = {"experiment": np.zeros(1, np.int32), "run": np.zeros(1, np.int32), "step": np.zeros(1, np.int64),
             "params_per_model": np.ones(1, np.int64), "names": [[np.zeros(1, np.int32), 1]],
             "value": [np.zeros(1)], "extras": {"loss": np.zeros(1)}}
    table = _build_table([chunk], [None], [0], ["w"], dictionary=True)
    pq.write_table(table, pa.BufferOutputStream(), **_part_options(table.schema))


class _LiveParts:
    """The ``.parts`` folder of a table being traced, and the daemon thread that writes into it.

    The training thread hands over chunks (host numpy arrays, never changed afterwards) and the
    lengths of the append-only name and label lists at that moment; this thread builds the Arrow
    table, writes the part under a hidden name, renames it into place, then rewrites the manifest
    the same way. So at any moment the folder holds whole parts and a manifest that counts no part
    that is not there, whenever the process is killed.
    """

    def __init__(self, table: Path, experiments: list, runs: list, params: list[str]):
        self.table = table
        self.resolved = table.resolve()
        self.folder = parts_dir(table)
        self._lists = (experiments, runs, params)
        self.started = time.time()
        self.parts = 0
        self.rows = 0
        self.last_step: int | None = None
        self.failed: str | None = None   # why live writing stopped
        self.finished = False
        self.cpu_seconds = 0.0           # CPU time of the writer thread (time.thread_time)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        try:
            _warm_up()
            self._clear()
            self._write_manifest("running")   # the preview knows the run started before any rows
        except Exception as exc:  # noqa: BLE001 - whatever it is, training must not die of it
            self.fail(exc)
            return
        self._thread = threading.Thread(target=self._run, name=f"sitegen.trace live {table.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def accepting(self) -> bool:
        return self._thread is not None and self.failed is None

    def put(self, chunks: list[dict], sizes: tuple[int, int, int]) -> None:
        self._queue.put((chunks, sizes))

    def drain(self) -> None:
        """Wait until every part handed over so far is written (or writing has failed)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Wait for the queued parts, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join()

    def finish(self) -> None:
        """The final table is written: say so in the manifest, then take the parts away.

        The folder is renamed to a hidden name first, so a reader finds either the whole folder or
        none; each step is tried even if the one before failed, because a folder left behind would
        show its parts in the preview instead of the table.
        """
        self.close()
        self.finished = True
        try:
            self._write_manifest("finished")
        except Exception:  # noqa: BLE001 - removing the folder below says the same
            pass
        gone = self.folder.with_name(f".{self.folder.name}.{os.getpid()}.gone")
        try:
            os.replace(self.folder, gone)
            shutil.rmtree(gone)
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"sitegen.trace: could not remove {self.folder} after writing {self.table}: {exc}; "
                  f"delete it, or the preview shows its parts instead of the table", file=sys.stderr, flush=True)

    # -- on the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.failed is None:
                    start = time.thread_time()
                    try:
                        self._write_part(*item)
                    except Exception as exc:  # noqa: BLE001 - never let the trainer die of a part
                        self.fail(exc)
                    self.cpu_seconds += time.thread_time() - start
            finally:
                self._queue.task_done()

    def _write_part(self, chunks: list[dict], sizes: tuple[int, int, int]) -> None:
        experiments, runs, params = (names[:n] for names, n in zip(self._lists, sizes))
        table = _build_table(chunks, experiments, runs, params, dictionary=True)
        number = self.parts + 1
        _write_parquet(table, self.folder / f"part-{number:05d}.parquet", **_part_options(table.schema))
        self.parts = number
        self.rows += table.num_rows
        last = max(int(c["step"].max()) for c in chunks if len(c["step"]))
        self.last_step = last if self.last_step is None else max(self.last_step, last)
        self._write_manifest("running")

    # -- either thread (never both at once: the main thread waits for the writer first) -------------
    def _write_manifest(self, state: str) -> None:
        record = {"format": 1, "table": self.table.name, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": self.started, "updated": time.time(), "parts": self.parts, "rows": self.rows,
                  "last_step": self.last_step, "state": state}
        path = self.folder / RUN_FILE
        tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _clear(self) -> None:
        """Make the folder, and take away what an earlier run of the same table left there."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with os.scandir(self.folder) as entries:
            stale = [e.path for e in entries
                     if (PART.fullmatch(e.name) or e.name.startswith(".")) and e.is_file(follow_symlinks=False)]
        for path in stale:
            os.unlink(path)
        prefix = f".{self.folder.name}."
        for name in os.listdir(self.folder.parent):   # a folder an earlier finish() could not remove
            if name.startswith(prefix) and name.endswith(".gone"):
                shutil.rmtree(self.folder.parent / name, ignore_errors=True)

    def fail(self, exc: BaseException) -> None:
        if self.failed is not None:
            return
        self.failed = str(exc) or type(exc).__name__
        print(f"sitegen.trace: live parts for {self.table} stopped: {self.failed}; training goes on, "
              f"the final table is still written", file=sys.stderr, flush=True)
