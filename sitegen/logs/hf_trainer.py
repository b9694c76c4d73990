"""Hugging Face ``Trainer`` logs: ``trainer_state.json`` and its ``log_history``.

Every entry of ``log_history`` is one logging event at ``step`` (``{"loss": 0.7, "learning_rate":
5e-05, "grad_norm": 1.2, "epoch": 0.5, "step": 10}``); each number in it but ``step`` and
``epoch`` becomes a row, ``epoch`` an extra column. A folder may hold a run's final
``trainer_state.json`` and its ``checkpoint-N/`` copies: the most advanced file of each run is read
(checkpoints hold the history up to their step). Only the standard library's JSON reader is used.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from sitegen.logs.common import LogError, Rows, run_labels

FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-\d+")


def state_files(root: Path) -> dict[Path, Path]:
    """The ``trainer_state.json`` to read for each run folder (checkpoints fold into their run)."""
    if root.is_file():
        return {root.parent: root}
    best: dict[Path, tuple[int, Path]] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if FILE not in files:
            continue
        path = Path(folder) / FILE
        run = path.parent.parent if _CHECKPOINT.fullmatch(path.parent.name) else path.parent
        try:
            rank = int(json.loads(path.read_text(encoding="utf-8")).get("global_step") or 0)
        except (OSError, ValueError, AttributeError):
            rank = -1   # read() reports what is wrong with it, if it is the one chosen
        if run == path.parent:
            rank += 1   # the run's own file wins over a checkpoint of the same step
        if run not in best or rank > best[run][0]:
            best[run] = (rank, path)
    return {run: path for run, (_, path) in sorted(best.items())}


def read(root: Path, shown: str, experiment: str | None = None, run: str | None = None):
    found = state_files(root)
    if not found:
        raise LogError(shown, f"no {FILE} in this folder or below it (Trainer writes it into each checkpoint "
                              "and with trainer.save_state())")
    base = root if root.is_dir() else root.parent
    rows = Rows()
    for folder, path in found.items():
        exp, name = run_labels(base, folder, experiment, run)
        where = str(Path(shown) / path.relative_to(base)) if root.is_dir() else shown
        read_state(path, where, rows, exp, name)
    return rows.frame(shown, "Trainer log")


def read_state(path: Path, shown: str, rows: Rows, experiment: str, run: str) -> None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogError(shown, f"not valid JSON ({exc})") from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise LogError(shown, "no 'log_history' list; is this a Hugging Face trainer_state.json?")
    series: dict[str, tuple[list, list, list]] = {}
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise LogError(shown, f"log_history[{i}] is not an object")
        step = entry.get("step")
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            raise LogError(shown, f"log_history[{i}] has no numeric 'step'")
        epoch = entry.get("epoch")
        epoch = float(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else math.nan
        for key, value in entry.items():
            if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            s = series.setdefault(key, ([], [], []))
            s[0].append(int(step))
            s[1].append(float(value))
            s[2].append(epoch)
    for key, (steps, values, epochs) in series.items():
        rows.add(experiment, run, key, steps, values, epoch=epochs)
