"""Logs researchers already keep, read as tables: TensorBoard, Lightning CSV, HF Trainer, MLflow, JSONL.

:func:`read` takes a log folder or file and returns the long table a traced parquet file holds
(``experiment, run, step, param, value`` plus extra columns), so directives, ``figure()`` and
``chart()`` draw it unchanged; ``sitegen data import`` writes it to ``data/NAME.parquet`` with a
provenance record (:mod:`sitegen.logs.importer`). Which reader applies is found from the files:

* ``events.out.tfevents.*`` files: :mod:`~sitegen.logs.tensorboard` (extra ``tensorboard``)
* ``metrics.csv`` files: :mod:`~sitegen.logs.lightning_csv` (Lightning ``CSVLogger``)
* ``trainer_state.json`` files: :mod:`~sitegen.logs.hf_trainer` (Hugging Face ``Trainer``)
* an ``mlruns/`` store: :mod:`~sitegen.logs.mlflow_runs` (extra ``mlflow``)
* ``.jsonl`` files: :mod:`~sitegen.logs.jsonl`

Nothing here imports torch or jax; the readers' own packages are imported only when used.
"""
from __future__ import annotations

import os
from pathlib import Path

from sitegen.logs.common import COLUMNS, LogError
from sitegen.logs import hf_trainer, jsonl, lightning_csv, mlflow_runs, tensorboard

__all__ = ["COLUMNS", "LogError", "READERS", "detect", "files", "read", "reader_version"]

READERS = ("tensorboard", "lightning", "hf-trainer", "mlflow", "jsonl")
_MODULES = {"tensorboard": tensorboard, "lightning": lightning_csv, "hf-trainer": hf_trainer,
            "mlflow": mlflow_runs, "jsonl": jsonl}


def is_log_file(path: Path) -> bool:
    """A single file one of the readers takes (the catalog reads other files as tables)."""
    name = path.name
    return (name.startswith(tensorboard.PREFIX) or name == hf_trainer.FILE
            or path.suffix.lower() in jsonl.SUFFIXES)


def detect(path: Path, shown: str | None = None) -> str:
    """The reader for a log file or folder, found from what it holds."""
    shown = shown or str(path)
    if path.is_file():
        if path.name.startswith(tensorboard.PREFIX):
            return "tensorboard"
        if path.name == hf_trainer.FILE:
            return "hf-trainer"
        if path.name == lightning_csv.FILE:
            return "lightning"
        if path.suffix.lower() in jsonl.SUFFIXES:
            return "jsonl"
        raise LogError(shown, f"not a log file sitegen reads ({tensorboard.PREFIX}.*, {hf_trainer.FILE}, "
                              f"{lightning_csv.FILE}, *.jsonl)")
    if not path.is_dir():
        raise LogError(shown, "no such file or folder")
    if mlflow_runs.is_store(path):
        return "mlflow"
    seen = {"tensorboard": False, "lightning": False, "hf-trainer": False, "jsonl": False}
    for _, dirs, names in os.walk(path):
        for name in names:
            if name.startswith(tensorboard.PREFIX):
                return "tensorboard"
            if name == lightning_csv.FILE:
                seen["lightning"] = True
            elif name == hf_trainer.FILE:
                seen["hf-trainer"] = True
            elif os.path.splitext(name)[1].lower() in jsonl.SUFFIXES:
                seen["jsonl"] = True
    for kind, present in seen.items():
        if present:
            return kind
    raise LogError(shown, "no logs found in this folder or below it: sitegen reads TensorBoard event files, "
                          "Lightning CSVLogger metrics.csv, Hugging Face trainer_state.json, an MLflow mlruns/ "
                          "folder and .jsonl files")


def read(path: str | Path, *, reader: str | None = None, experiment: str | None = None,
         run: str | None = None, shown: str | None = None):
    """The log at ``path`` as a long pandas DataFrame (text columns categorical).

    ``reader`` forces one of :data:`READERS`; ``experiment`` and ``run`` are fixed labels or
    patterns over the folders below ``path`` (``"{0}"``, ``"{-1}"``, ``"{path}"``). Problems raise
    :class:`LogError` (``path: message``).
    """
    path = Path(path)
    shown = shown or str(path)
    kind = reader or detect(path, shown)
    if kind not in _MODULES:
        raise LogError(shown, f"unknown reader {kind!r}; use one of {', '.join(READERS)}")
    return _MODULES[kind].read(path, shown, experiment=experiment, run=run)


def files(path: Path, kind: str | None = None) -> list[Path]:
    """The files a read of ``path`` depends on (to notice when the log changes)."""
    kind = kind or detect(path)
    if kind == "tensorboard":
        return [f for group in tensorboard.event_files(path).values() for f in group]
    if kind == "lightning":
        return lightning_csv.metric_files(path)
    if kind == "hf-trainer":
        return sorted(hf_trainer.state_files(path).values())
    if kind == "jsonl":
        return jsonl.files(path)
    found = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(Path(folder) / n for n in sorted(names))
    return found


def reader_version(kind: str) -> str:
    """What read it: the reader's library and version, and sitegen's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("sitegen")
    except PackageNotFoundError:
        ours = "unknown"
    library = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "lightning": "pandas",
               "hf-trainer": None, "jsonl": None}.get(kind)
    lib = ""
    if library:
        try:
            lib = f", {library} {version(library)}"
        except PackageNotFoundError:
            pass
    return f"sitegen.logs.{kind} (sitegen {ours}{lib})"
