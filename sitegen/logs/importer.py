"""``sitegen data import SOURCE NAME``: a log as ``data/NAME.parquet`` with a provenance record.

The record (``data/NAME.provenance.json``) says where the table came from: the log's path relative
to the site, every file read with its modification time and size, the reader and its version, and
the options. ``sitegen data`` (and the build's staleness warnings) compare those files with the
disk, so a log that grew since the import shows as stale, with the command that refreshes it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from pathlib import Path

from sitegen.logs import detect, files, read, reader_version
from sitegen.logs.common import LogError

IMPORT_KEY = "import"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def file_stamps(source: Path, kind: str, root: Path) -> dict[str, list[int]]:
    out = {}
    for f in files(source, kind):
        try:
            st = f.stat()
        except OSError:
            continue
        out[_rel(f, root)] = [st.st_mtime_ns, st.st_size]
    return out


def import_log(root: Path, source: str, name: str, *, reader: str | None = None,
               experiment: str | None = None, run: str | None = None) -> Path:
    """Read ``source`` (relative to the current folder or absolute) and write the table and record.

    Nothing is written when reading fails (:class:`LogError`).
    """
    root = Path(root)
    src = Path(source)
    if not src.is_absolute() and not src.exists() and (root / src).exists():
        src = root / src
    shown = source
    if not name or "/" in name or name.startswith(".") or name.endswith((".parquet", ".json")):
        raise LogError(name or "NAME", "NAME is the table's name without folder or suffix: "
                                       "`sitegen data import runs/ my_runs` writes data/my_runs.parquet")
    kind = reader or detect(src, shown)
    stamps = file_stamps(src, kind, root)
    frame = read(src, reader=kind, experiment=experiment, run=run, shown=shown)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    table = data / f"{name}.parquet"
    _atomic(table, lambda tmp: frame.to_parquet(tmp, index=False, compression="zstd"))
    command = ["sitegen", "data", "import", _rel(src, root), name]
    for flag, value in (("--reader", reader), ("--experiment", experiment), ("--run", run)):
        if value is not None:
            command += [flag, value]
    record = {
        IMPORT_KEY: {
            "source": _rel(src, root),
            "reader": kind,
            "reader_version": reader_version(kind),
            "options": {"experiment": experiment, "run": run},
            "files": stamps,
        },
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command),
        "outputs": [table.name],
        "results": {"rows": len(frame), "runs": int(frame.groupby(["experiment", "run"], observed=True).ngroups),
                    "params": sorted(map(str, frame["param"].unique()))},
    }
    _atomic(data / f"{name}.provenance.json",
            lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8"))
    return table


def staleness(record: dict, root: Path) -> str | None:
    """Why an imported table is out of date (its log's files changed, appeared or went), or None."""
    info = record.get(IMPORT_KEY) or {}
    source = Path(str(info.get("source", "")))
    if not source.is_absolute():
        source = root / source
    if not source.exists():
        return f"{info.get('source')} no longer exists"
    try:
        now = file_stamps(source, str(info.get("reader")), root)
    except LogError as exc:
        return f"{info.get('source')} cannot be read now ({exc.problem.message})"
    then = {k: list(v) for k, v in (info.get("files") or {}).items()}
    changed = [k for k in now if k in then and now[k] != then[k]]
    added = [k for k in now if k not in then]
    gone = [k for k in then if k not in now]
    if not (changed or added or gone):
        return None
    parts = [f"{len(x)} {what}" for x, what in ((changed, "changed"), (added, "new"), (gone, "gone")) if x]
    first = (changed or added or gone)[0]
    return f"{info.get('source')} changed since it was imported ({', '.join(parts)} file(s), e.g. {first})"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
