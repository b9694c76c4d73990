"""JSON Lines logs: one JSON object a line, as many training scripts print them.

Two shapes are read. *Wide*: ``{"step": 10, "loss": 0.7, "lr": 0.001}``, every number but the step
becomes a row under its key (nested objects are joined with ``/``: ``{"train": {"loss": 1}}`` ->
``train/loss``); the step is the first of ``step``, ``global_step``, ``_step``, ``iteration``,
``iter`` present, else the line's position. *Long*: objects with ``param`` and ``value`` keys are
rows already. ``experiment`` and ``run`` keys, when present, label the rows; otherwise the file's
folder and name do. Standard library JSON only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from sitegen.logs.common import LogError, Rows, run_labels

SUFFIXES = (".jsonl", ".ndjson")
STEP_KEYS = ("step", "global_step", "_step", "iteration", "iter")
MAX_REPORTED = 10


def files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def read(root: Path, shown: str, experiment: str | None = None, run: str | None = None):
    found = files(root)
    if not found:
        raise LogError(shown, "no .jsonl files in this folder or below it")
    base = root if root.is_dir() else root.parent
    rows = Rows()
    for path in found:
        where = str(Path(shown) / path.relative_to(base)) if root.is_dir() else shown
        exp, name = run_labels(base, path.with_suffix(""), experiment, run)
        read_lines(path.read_bytes(), where, rows, exp, name)
    return rows.frame(shown, "JSON Lines log")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flatten(obj: dict, prefix: str, out: dict) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + "/", out)
        elif _number(value):
            out[name] = float(value)


def parse(data: bytes, shown: str) -> list[tuple[str | None, str | None, int, str, float]]:
    """``(experiment, run, step, param, value)`` for every number in the lines of ``data``.

    Every bad line is reported at once as ``path:line: message`` (the first ten, then a count).
    """
    out = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append((number, f"not valid JSON ({exc}); each line must be one JSON object"))
            continue
        if not isinstance(obj, dict):
            problems.append((number, f"a JSON {type(obj).__name__}, not an object; each line must be one "
                                     "JSON object such as {\"step\": 1, \"loss\": 0.5}"))
            continue
        experiment = _label(obj.get("experiment"))
        run = _label(obj.get("run"))
        step_key = next((k for k in STEP_KEYS if k in obj), None)
        if step_key is None:
            step = number - 1
        else:
            step = obj[step_key]
            if not _number(step) or not math.isfinite(step) or step != int(step):
                problems.append((number, f"'{step_key}' is {step!r}, not a whole number"))
                continue
            step = int(step)
        if "param" in obj and "value" in obj:
            value = obj["value"]
            if value is not None and not _number(value):
                problems.append((number, f"'value' is {value!r}, not a number"))
                continue
            out.append((experiment, run, step, str(obj["param"]), math.nan if value is None else float(value)))
            continue
        values: dict = {}
        _flatten({k: v for k, v in obj.items() if k not in (step_key, "experiment", "run")}, "", values)
        out.extend((experiment, run, step, k, v) for k, v in values.items())
    if problems:
        first, message = problems[0]
        more = f" (and {len(problems) - 1} more bad line(s): {', '.join(str(n) for n, _ in problems[1:MAX_REPORTED])}" \
               f"{', ...' if len(problems) > MAX_REPORTED else ''})" if len(problems) > 1 else ""
        raise LogError(shown, message + more, line=first)
    return out


def _label(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def read_lines(data: bytes, shown: str, rows: Rows, experiment: str, run: str) -> None:
    import numpy as np

    groups: dict[tuple[str, str, str], tuple[list, list]] = {}
    for e, r, step, param, value in parse(data, shown):
        g = groups.setdefault((e if e is not None else experiment, r if r is not None else run, param), ([], []))
        g[0].append(step)
        g[1].append(value)
    for (e, r, param), (steps, values) in groups.items():
        rows.add(e, r, param, np.asarray(steps, dtype=np.int64), values)
