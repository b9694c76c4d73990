"""Runs that are still training: what a streaming tracer leaves on disk, read by the preview.

A :class:`sitegen.trace.Tracer` created with ``live="data/run.parquet"`` writes numbered parquet
parts of new rows into ``data/run.parts/`` while it trains, each under a hidden temporary name
renamed into place, and after each part a manifest, ``_run.json`` (also renamed into place). When
the script writes the final ``data/run.parquet`` the folder goes away. So:

* a folder with a manifest saying ``running`` is a run in progress, or one that died: the manifest
  names the process, and a process that no longer exists on this machine means the run *stopped*;
* every ``part-NNNNN.parquet`` file is whole (a killed writer leaves only a hidden temporary file).

Only the preview server reads parts (``sitegen build`` publishes finished tables only). This module
is light on purpose: experiments import :func:`preview_hint`, the builder imports the rest.
"""
from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

RUN_FILE = "_run.json"
PART = re.compile(r"part-(\d+)\.parquet")
#: where a running ``sitegen serve`` says what it serves, inside the site's cache folder
SERVE_FILE = "serve.json"


def parts_dir(table: str | Path) -> Path:
    """``data/run.parquet`` -> ``data/run.parts``."""
    table = Path(table)
    return table.with_name(table.stem + ".parts") if table.suffix else table.with_name(table.name + ".parts")


def part_files(folder: Path) -> list[Path]:
    """The complete parts in ``folder``, in the order they were written."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = sorted((int(m.group(1)), n) for n in names if (m := PART.fullmatch(n)))
    return [folder / n for _, n in found]


def process_alive(pid: int | None, host: str | None) -> bool | None:
    """True or False for a process on this machine; None when it runs elsewhere (cannot tell)."""
    if not pid:
        return None
    if host and host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, ValueError, OverflowError):
        return None
    return True


@dataclass(frozen=True)
class RunState:
    """What a run's manifest says, plus whether its process still runs.

    ``state``: ``running``, ``stopped`` (the process is gone but never finished the table) or
    ``finished``.
    """

    state: str
    pid: int | None = None
    host: str | None = None
    started: float | None = None
    updated: float | None = None
    parts: int = 0
    rows: int = 0
    last_step: int | None = None

    @property
    def live(self) -> bool:
        return self.state in ("running", "stopped")


def read_run(folder: Path) -> RunState | None:
    """The run in ``folder`` (a ``.parts`` folder), or None when there is none or it cannot be read."""
    try:
        record = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None

    def num(key, kind=float):
        v = record.get(key)
        try:
            return kind(v) if v is not None else None
        except (TypeError, ValueError):
            return None

    state = str(record.get("state") or "running")
    pid, host = num("pid", int), record.get("host")
    if state == "running" and process_alive(pid, host) is False:
        state = "stopped"
    return RunState(state=state, pid=pid, host=str(host) if host else None, started=num("started"),
                    updated=num("updated"), parts=num("parts", int) or 0, rows=num("rows", int) or 0,
                    last_step=num("last_step", int))


# -- telling a trainer where to look ------------------------------------------------------------------

def site_root(start: Path) -> Path | None:
    """The site a data file belongs to: the nearest folder up with sitegen.toml or content/."""
    for folder in [start, *start.parents]:
        if (folder / "sitegen.toml").is_file() or (folder / "content").is_dir():
            return folder
    return None


def preview_hint(table: str | Path) -> str:
    """One line for a trainer started with ``--live``: which preview URL shows ``table`` growing.

    A running ``sitegen serve`` writes ``.sitegen-cache/serve.json`` (its URL and which pages read
    which data file); without one, the line says how to start it.
    """
    table = Path(table).resolve()
    root = site_root(table.parent)
    if root is None:
        return (f"sitegen: streaming {table.name} into {parts_dir(table).name}/; "
                "run `sitegen serve` in the site that reads it to watch it train")
    try:
        rel = table.relative_to(root).as_posix()
    except ValueError:
        rel = str(table)
    info = {}
    try:
        info = json.loads((root / ".sitegen-cache" / SERVE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    base = str(info.get("url") or "http://127.0.0.1:8000/")
    pages = [p for p in (info.get("pages") or {}).get(rel, []) if isinstance(p, str)]
    running = bool(info) and process_alive(info.get("pid"), info.get("host")) is not False
    targets = ", ".join(base.rstrip("/") + p for p in pages) if pages else base
    if running:
        if pages:
            return f"sitegen: watch {rel} train live at {targets}"
        return (f"sitegen: streaming {rel}; no page of the preview at {base} reads it yet "
                f"(add a figure with ```{{expression}} {rel})")
    where = f" (in {root})" if Path.cwd().resolve() != root else ""
    return (f"sitegen: streaming {rel}; start `sitegen serve`{where} in another terminal and open "
            f"{targets} to watch it train")
