"""What every log reader shares: the long table it returns, run names from folders, errors.

A reader returns one row per logged scalar: ``experiment, run, step, param, value`` (``param`` is
the tag or metric name) plus extra columns such as ``wall_time`` or ``epoch``, the same long shape
a traced table has, so ``{chart}`` and ``{expression}`` read it as they read a parquet file.

``experiment`` and ``run`` come from the folders between the log root and each run's files
(``runs/lr-0.1/seed-2`` -> experiment ``lr-0.1``, run ``seed-2``), or from a pattern the caller
gives: ``"{0}"`` is the first folder below the root, ``"{-1}"`` the last, ``"{path}"`` all of them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from sitegen.errors import SiteError

#: columns every reader's table starts with, in this order
COLUMNS = ("experiment", "run", "step", "param", "value")


class LogError(SiteError):
    """A log that cannot be read: ``path: message`` (what is wrong, how to fix it)."""

    def __init__(self, path, message: str, line: int | None = None):
        super().__init__(str(path), line, message)


def need(package: str, extra: str, what: str, path) -> None:
    """Import ``package`` or fail with the install line for the extra that brings it."""
    import importlib

    try:
        importlib.import_module(package)
    except ImportError:
        raise LogError(path, f"reading {what} needs the '{package.split('.')[0]}' package, which is not "
                             f"installed; install it with: pip install 'sitegen[{extra}]'") from None


def run_labels(root: Path, folder: Path, experiment: str | None, run: str | None) -> tuple[str, str]:
    """(experiment, run) for the logs in ``folder`` below the log root ``root``."""
    try:
        parts = list(folder.relative_to(root).parts)
    except ValueError:
        parts = []
    if not parts:
        default = (root.parent.name or root.name, root.name)
    elif len(parts) == 1:
        default = (root.name, parts[0])
    else:
        default = ("/".join(parts[:-1]), parts[-1])
    return (_pattern(experiment, parts, root, "experiment") if experiment is not None else default[0],
            _pattern(run, parts, root, "run") if run is not None else default[1])


_FIELD = re.compile(r"\{(-?\d+|path)\}")


def _pattern(pattern: str, parts: list[str], root: Path, what: str) -> str:
    def field(m):
        key = m.group(1)
        if key == "path":
            return "/".join(parts) or root.name
        i = int(key)
        if not -len(parts) <= i < len(parts):
            raise LogError(root / "/".join(parts), f"the {what} pattern {pattern!r} asks for folder {{{key}}} but "
                                                   f"this run is {len(parts)} folder(s) below {root.name}/ "
                                                   f"({'/'.join(parts) or 'the root itself'})")
        return parts[i]
    return _FIELD.sub(field, pattern)


class Rows:
    """Columns gathered run by run, turned into one DataFrame at the end (strings made once)."""

    def __init__(self):
        self.blocks: list[tuple[str, str, np.ndarray, str, np.ndarray, dict]] = []

    def add(self, experiment: str, run: str, param: str, steps, values, **extras) -> None:
        steps = np.asarray(steps, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if len(steps):
            self.blocks.append((experiment, run, steps, param, values,
                                {k: np.asarray(v, dtype=np.float64) for k, v in extras.items()}))

    def __len__(self) -> int:
        return sum(len(b[2]) for b in self.blocks)

    def frame(self, path, what: str):
        """The long DataFrame; a log with no scalar at all is an error naming ``path``."""
        import pandas as pd

        if not self.blocks:
            raise LogError(path, f"no scalars found in this {what}; was anything logged "
                                 f"(add_scalar, self.log, logging_steps)?")
        lengths = np.array([len(b[2]) for b in self.blocks])
        idx = np.repeat(np.arange(len(self.blocks)), lengths)

        def labels(values: Iterable[str]):
            values = list(values)
            categories = list(dict.fromkeys(values))
            codes = np.array([categories.index(v) for v in values], dtype=np.int32) if len(categories) < 64 \
                else np.array(pd.Index(categories).get_indexer(values), dtype=np.int32)
            return pd.Categorical.from_codes(codes[idx], categories=categories)

        data = {
            "experiment": labels(b[0] for b in self.blocks),
            "run": labels(b[1] for b in self.blocks),
            "step": np.concatenate([b[2] for b in self.blocks]),
            "param": labels(b[3] for b in self.blocks),
            "value": np.concatenate([b[4] for b in self.blocks]),
        }
        extras = list(dict.fromkeys(k for b in self.blocks for k in b[5]))
        for name in extras:
            data[name] = np.concatenate([b[5].get(name, np.full(len(b[2]), np.nan)) for b in self.blocks])
        return pd.DataFrame(data)
