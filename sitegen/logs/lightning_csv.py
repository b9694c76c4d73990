"""Lightning ``CSVLogger`` folders: ``save_dir/NAME/version_N/metrics.csv``, one run per file.

Each ``metrics.csv`` has a ``step`` column, usually ``epoch``, and one column per logged metric,
empty where that metric was not logged on the row; every non-empty cell becomes one row of the
long table (``epoch`` rides along as an extra column). Read with pandas' CSV reader; no extra
package is needed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sitegen.logs.common import LogError, Rows, run_labels

FILE = "metrics.csv"


def metric_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if FILE in files:
            found.append(Path(folder) / FILE)
    return found


def read(root: Path, shown: str, experiment: str | None = None, run: str | None = None):
    files = metric_files(root)
    if not files:
        raise LogError(shown, f"no Lightning CSVLogger {FILE} in this folder or below it")
    base = root if root.is_dir() else root.parent
    rows = Rows()
    for path in files:
        exp, name = run_labels(base, path.parent, experiment, run)
        where = str(Path(shown) / path.relative_to(base)) if root.is_dir() else shown
        read_metrics(path, where, rows, exp, name)
    return rows.frame(shown, "Lightning CSV log")


def read_metrics(path: Path, shown: str, rows: Rows, experiment: str, run: str) -> None:
    """Add the metrics of one ``metrics.csv`` to ``rows``."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise LogError(shown, "the file is empty (no header); did the run log anything?") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogError(shown, f"not a readable CSV file ({detail})") from None
    if "step" not in df.columns:
        raise LogError(shown, f"no 'step' column (have: {', '.join(map(str, df.columns[:12]))}); "
                              "is this a Lightning CSVLogger metrics.csv?")
    steps = pd.to_numeric(df["step"], errors="coerce")
    if steps.isna().any():
        bad = int(np.flatnonzero(steps.isna().to_numpy())[0])
        raise LogError(shown, f"the step on row {bad + 1} is not a number ({df['step'].iloc[bad]!r})", line=bad + 2)
    steps = steps.to_numpy(dtype=np.int64)
    epoch = pd.to_numeric(df["epoch"], errors="coerce").to_numpy(dtype=np.float64) if "epoch" in df.columns else None
    for column in df.columns:
        if column in ("step", "epoch"):
            continue
        present = df[column].notna().to_numpy()
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values[present]).any():
            continue   # text (a file name, a flag): not a scalar to draw
        keep = present
        extras = {"epoch": epoch[keep]} if epoch is not None else {}
        rows.add(experiment, run, str(column), steps[keep], values[keep], **extras)
