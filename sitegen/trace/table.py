"""From chunks on the host to an Arrow table, and an atomic parquet write.

A chunk (:func:`_chunk`) holds per-model columns as integer codes and float arrays; the table's
rows, and every string in it, are made once, inside Arrow, when the table is built
(:func:`_build_table`), never one python string per row. Both the final table and the live parts
are built here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class _Columns:
    """Per-model columns gathered from pending records: python ints for single records (cheap
    to append), sealed into numpy segments whenever a whole array arrives."""

    def __init__(self):
        self.segments: dict[str, list[np.ndarray]] = {"experiment": [], "run": [], "step": [], "p": []}
        self.ints: dict[str, list[int]] = {key: [] for key in self.segments}

    def add(self, experiment, run, step, p) -> None:
        ints = self.ints
        ints["experiment"].append(experiment)
        ints["run"].append(run)
        ints["step"].append(step)
        ints["p"].append(p)

    def add_arrays(self, **arrays) -> None:
        self.seal()
        for key, array in arrays.items():
            self.segments[key].append(array)

    def seal(self) -> None:
        for key, values in self.ints.items():
            if values:
                self.segments[key].append(np.asarray(values, dtype=np.int64))
                self.ints[key] = []

    def column(self, key: str, dtype) -> np.ndarray:
        self.seal()
        parts = self.segments[key]
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _chunk(pending: list, values: list[np.ndarray]) -> dict:
    """The pending records (the tracer's ``_Record`` and ``_Series``) as a chunk of per-model
    columns (rows are expanded later).

    Every record stands for B models (B = 1 for record()) with P parameters each. During
    training only the per-model columns are gathered; repeating them P times into rows, and
    widening values to float64, happen once, when the table is built (:func:`_rows`).
    """
    columns = _Columns()
    vals = []
    names_runs: list[list] = []        # [names codes, number of models] for consecutive equal names
    extra_names = list(dict.fromkeys(name for r in pending for name in r.extras))
    model_extra: dict[str, list] = {name: [] for name in extra_names}
    for r, v in zip(pending, values):
        p = len(r.names)
        if r.kind == "series":
            steps = len(r.steps)
            b = r.batch * steps
            columns.add_arrays(experiment=np.tile(r.experiment_codes, steps), run=np.tile(r.run_codes, steps),
                               step=np.repeat(np.asarray(r.steps, dtype=np.int64), r.batch),
                               p=np.full(b, p, dtype=np.int64))
            vals.append((v[:, :, :p] if r.extras else v).reshape(-1))
            for name in extra_names:
                model_extra[name].append(v[:, :, p + r.extras.index(name)].reshape(-1)
                                         if name in r.extras else np.full(b, np.nan))
        else:
            b = r.batch or 1
            n = p * b
            if r.batch is None:
                columns.add(r.experiment, r.run, r.step, p)
            else:
                for e, u in zip(r.experiment, r.run):
                    columns.add(e, u, r.step, p)
            vals.append(v[:n] if len(v) != n else v)
            for name in extra_names:
                if name in r.extras:
                    k = r.extras.index(name)
                    model_extra[name].append(v[n + k * b: n + (k + 1) * b])
                else:
                    model_extra[name].append(np.full(b, np.nan))
        if names_runs and names_runs[-1][0] is r.names:
            names_runs[-1][1] += b
        else:
            names_runs.append([r.names, b])
    return {
        "experiment": columns.column("experiment", np.int32),
        "run": columns.column("run", np.int32),
        "step": columns.column("step", np.int64),
        "params_per_model": columns.column("p", np.int64),
        "names": names_runs,
        "value": vals,                     # widened and joined in _rows()
        "extras": {name: np.concatenate(parts) for name, parts in model_extra.items()},
    }


class _Rows:
    """The chunks' columns, ready to become rows: per-model columns (experiment, run, step,
    extras) stay one value per model until :meth:`expand` repeats them once per parameter, so
    labels are looked up per model, not per row; ``param`` and ``value`` are per row already."""

    def __init__(self, chunks: list[dict]):
        def cat(key, dtype):
            parts = [c[key] for c in chunks]
            if not parts:
                return np.zeros(0, dtype)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        self.experiment = cat("experiment", np.int32)
        self.run = cat("run", np.int32)
        self.step = cat("step", np.int64)
        repeats = cat("params_per_model", np.int64)
        # Usually every model has the same parameters: repeating by one number is the fast path
        self.repeats = int(repeats[0]) if len(repeats) and (repeats == repeats[0]).all() else repeats
        runs: list[list] = []          # [names codes, number of models], consecutive equal merged
        for c in chunks:
            for names, models in c["names"]:
                if runs and runs[-1][0] is names:
                    runs[-1][1] += models
                else:
                    runs.append([names, models])
        params = [np.tile(names, models) for names, models in runs]
        self.param = (params[0] if len(params) == 1 else np.concatenate(params)) if params else np.zeros(0, np.int32)
        values = [v for c in chunks for v in c["value"]]
        # one pass: joined and widened to float64 together
        self.value = np.concatenate(values, dtype=np.float64, casting="same_kind") if values else np.zeros(0)
        names = list(dict.fromkeys(name for c in chunks for name in c["extras"]))
        self.extras = {name: np.concatenate([c["extras"].get(name, np.full(len(c["run"]), np.nan))
                                             for c in chunks]) for name in names}

    def expand(self, per_model: np.ndarray) -> np.ndarray:
        if isinstance(self.repeats, int):
            # a copy of a broadcast view: numpy lets other threads run meanwhile, np.repeat does not
            return np.broadcast_to(per_model[:, None], (len(per_model), self.repeats)).reshape(-1)
        return np.repeat(per_model, self.repeats)


def _label_column(labels: list, codes: np.ndarray, rows: _Rows, dictionary: bool = False):
    """Experiment or run labels for per-model ``codes``, one per row: int64 when all are ints,
    float64 when all are numbers, else strings (None stays missing)."""
    import pyarrow as pa

    if all(isinstance(x, int) and not isinstance(x, bool) for x in labels):
        return pa.array(rows.expand(np.asarray(labels, dtype=np.int64)[codes] if labels
                                    else codes.astype(np.int64)))
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in labels):
        return pa.array(rows.expand(np.asarray(labels, dtype=np.float64)[codes]))
    strings = [None if x is None else str(x) for x in labels]
    strings, codes = _present(strings, codes)
    return _string_column(strings, rows.expand(codes), dictionary)


def _present(strings: list, codes: np.ndarray) -> tuple[list, np.ndarray]:
    """Drop None from ``strings``; codes pointing at one become -1 (missing)."""
    if not any(x is None for x in strings):
        return strings, codes
    present = [i for i, x in enumerate(strings) if x is not None]
    remap = np.full(len(strings), -1, dtype=np.int32)
    remap[present] = np.arange(len(present), dtype=np.int32)
    return [strings[i] for i in present], remap[codes]


def _string_column(strings: list, codes: np.ndarray, dictionary: bool = False):
    """Text from codes into ``strings`` (None entries, and codes of -1, become missing values)."""
    import pyarrow as pa

    strings, codes = _present(strings, codes)
    codes = codes.astype(np.int32, copy=False)
    # a mask only when something is missing: building one is a pass over every row
    missing = codes < 0 if len(codes) and codes.min() < 0 else None
    indices = pa.array(codes, type=pa.int32(), mask=missing)
    column = pa.DictionaryArray.from_arrays(indices, pa.array(strings, type=pa.string()), safe=False)
    return column if dictionary else column.cast(pa.string())


def _build_table(chunks: list[dict], experiments: list, runs: list, params: list[str],
                 dictionary: bool = False):
    """An Arrow table from chunks: experiment, run, step, param, value, extra columns.

    Text columns are built from their integer codes inside Arrow, never one python string per
    row. With ``dictionary`` they stay dictionary-encoded (what parquet stores anyway, and
    what the site's data catalog groups by); otherwise they are cast to plain strings.
    """
    import pyarrow as pa

    rows = _Rows(chunks)
    columns = {
        "experiment": _label_column(experiments, rows.experiment, rows, dictionary),
        "run": _label_column(runs, rows.run, rows, dictionary),
        "step": pa.array(rows.expand(rows.step)),
        "param": _string_column(params, rows.param, dictionary),
        "value": pa.array(rows.value),
    }
    for name, values in rows.extras.items():
        columns[name] = pa.array(rows.expand(values))
    return pa.table(columns)


def _write_parquet(table, path: Path, **options) -> None:
    """Write under a hidden temporary name, then rename: a reader sees the whole file or none."""
    import pyarrow.parquet as pq

    options.setdefault("compression", "zstd")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, **options)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

