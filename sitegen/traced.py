"""Traced tables in the *long* shape, normalised in pandas: the pure half of the data catalog.

Traced data is normalised to the long shape, one row per value::

    experiment  run  step  param        value
    64          0    0     lengthscale  1.00
    64          0    10    lengthscale  0.84

``experiment`` is the row of a figure, ``run`` the dot, ``step`` (optional) the training step.
The *wide* shape that rows2prose users already have (one column per parameter, index columns such
as ``i_config`` and ``i_timestep``) is converted to long, so an existing notebook's dataframe works
unchanged. :mod:`sitegen.data` reads the files; :mod:`sitegen.columnar` reads big parquet tables
without pandas into the same :class:`Traced`.

Everything here is a pure function of a DataFrame (testable without disk); pandas is imported
inside functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sitegen.errors import closest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: the roles a traced table's columns play, in the order they are documented
ROLES = ("experiment", "run", "step", "param", "value")

#: index columns of the wide (rows2prose) shape, by role; the first present wins
WIDE_INDEX = {
    "experiment": ("experiment", "i_config", "i_experiment"),
    "run": ("run", "i_run", "i_trial", "i_seed", "i_repeat", "i_rep"),
    "step": ("step", "i_timestep", "i_step", "i_epoch"),
}

#: above this many rows a traced table is flagged as huge: figures downsample it, the author hears why
HUGE_ROWS = 5_000_000


@dataclass
class Traced:
    """A traced table in long form with the order of its rows and dots settled.

    ``frame`` holds the columns ``experiment``, ``run``, ``param`` (categorical strings, categories in
    figure order), ``value``
    (float64), ``step`` (int64, only when ``has_step``) and any extra columns of the file. A table read
    by :mod:`sitegen.columnar` has no frame but ``batches``: the same columns as integer codes.
    """

    frame: "pd.DataFrame | None"
    source: str                     # the file as shown in messages
    has_step: bool
    experiments: list[str]          # figure rows, top to bottom
    runs: list[str]                 # dots, in order
    params: list[str]               # in order of first appearance
    shape: str = "long"             # "long" or "wide" (converted)
    notes: list[str] = field(default_factory=list)  # warnings met while normalising

    #: rows when ``frame`` is None (a table read by :mod:`sitegen.columnar`)
    rows: int = 0
    #: when set, a callable giving the table as :class:`sitegen.figures.reduce.Batch` es in figure codes
    #: (each call may read the file again: a big table is streamed, never whole in memory)
    batches: Any = field(default=None, repr=False, compare=False)
    #: the bound columns (``lower``, ``upper``) a table read by :mod:`sitegen.columnar` has
    bound_names: tuple = ()
    #: when set, like ``batches`` but enough only for a figure's first pass (codes and steps, no values),
    #: without reading the file again: a streamed table whose batches all repeat step after step
    outline: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.frame) if self.frame is not None else self.rows


# -- normalisation (pure functions, testable without disk) ---------------------------------
def _have(df) -> str:
    names = [str(c) for c in df.columns]
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} columns)" if len(names) > 12 else "")
    return f"(have: {shown})"


def ordered_categorical(series) -> tuple[list[str], "pd.Categorical"]:
    """``series`` as a categorical of labels in figure order: numbers ascending (as 64, not 64.0),
    anything else in order of first appearance. Labels are made once per distinct value, because
    traced tables have millions of rows and few distinct experiments, runs and parameters."""
    import numpy as np
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):  # e.g. a parquet text column: work on its codes
        raw = series.cat.codes.to_numpy(dtype=np.int64)
        seen = pd.unique(raw[raw >= 0])  # first appearance
        remap = np.full(len(series.cat.categories) + 1, -1, dtype=np.int64)
        remap[seen] = np.arange(len(seen))
        codes = remap[raw]
        uniques = series.cat.categories[seen]
        numeric = pd.api.types.is_numeric_dtype(series.cat.categories) and \
            not pd.api.types.is_bool_dtype(series.cat.categories)
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    categories, lookup = order_labels(uniques, numeric)
    return categories, pd.Categorical.from_codes(lookup[codes], categories=categories)


def order_labels(uniques, numeric: bool) -> tuple[list[str], "Any"]:
    """Distinct values (in order of first appearance) -> (labels in figure order, lookup from each value's
    position to its label's, with -1 in a last extra slot for missing values)."""
    import numpy as np

    if numeric:
        order = np.argsort(np.asarray(uniques, dtype="float64"), kind="stable")
        names = [_label(uniques[i]) for i in order]
    else:
        order = np.arange(len(uniques))
        names = [str(u) for u in uniques]
    # several values may share a label (64 and 64.0 in an object column): keep the first
    categories = list(dict.fromkeys(names))
    position = {name: i for i, name in enumerate(categories)}
    lookup = np.empty(len(uniques) + 1, dtype=np.int64)
    lookup[-1] = -1
    for name, i in zip(names, order):
        lookup[i] = position[name]
    return categories, lookup


def _label(v) -> str:
    """A grouping value as shown to readers: 64 not 64.0, 0.001 not 0.0010000000000000002."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.6g}"


def _as_labels(series) -> "pd.Series":
    """Every value as its label; labels are computed once per distinct value (tables have millions of rows)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        names = [_label(u) for u in uniques]
    else:
        names = [str(u) for u in uniques]
    table = np.array(names + ["nan"], dtype=object)
    return pd.Series(table[codes], index=series.index, dtype=object).astype(str)


def to_traced(df: "pd.DataFrame", columns: dict[str, str] | None = None, source: str = "<table>") -> Traced:
    """Normalise ``df`` (long or wide) into :class:`Traced`; raises ``ValueError`` with a message for authors."""
    import numpy as np
    import pandas as pd

    columns = dict(columns or {})
    for role, col in columns.items():
        if role not in ROLES:
            near = closest(role, ROLES)
            raise ValueError(f"unknown column role '{role}' in the column mapping; roles are "
                             f"{', '.join(ROLES)}" + (f" (did you mean '{near[0]}'?)" if near else ""))
        if col not in df.columns:
            near = closest(col, [str(c) for c in df.columns])
            raise ValueError(f"column '{col}' (mapped to {role}) missing {_have(df)}"
                             + (f"; did you mean '{near[0]}'?" if near else ""))
    name = {role: columns.get(role, role) for role in ROLES}
    notes: list[str] = []

    long = name["param"] in df.columns and name["value"] in df.columns
    if not long and ("param" in columns or "value" in columns):
        missing = name["param"] if name["param"] not in df.columns else name["value"]
        raise ValueError(f"column '{missing}' missing {_have(df)}")

    if long:
        if name["run"] not in df.columns:
            near = closest(name["run"], [str(c) for c in df.columns])
            raise ValueError(f"column '{name['run']}' missing {_have(df)}"
                             + (f"; did you mean '{near[0]}'?" if near else "")
                             + "; map another column with `:columns: run=seed`")
        out = pd.DataFrame({
            "experiment": df[name["experiment"]] if name["experiment"] in df.columns else "all",
            "run": df[name["run"]],
            "param": df[name["param"]],
        })
        out["value"] = _numeric(df[name["value"]], name["value"])
        if name["step"] in df.columns:
            out["step"] = _steps(df[name["step"]], name["step"])
        extras = [c for c in df.columns if c not in set(name.values())]
        for c in extras:
            if str(c) not in out.columns:
                out[str(c)] = df[c]
        shape = "long"
    else:
        out, shape = _from_wide(df, columns), "wide"

    if len(out) == 0:
        raise ValueError("the table is empty (no rows)")
    # categorical columns in figure order: figures get row/dot/parameter indices without re-hashing strings
    exps, out["experiment"] = ordered_categorical(out["experiment"])
    runs, out["run"] = ordered_categorical(out["run"])
    params, param_codes = ordered_categorical(out["param"].astype(str) if not isinstance(
        out["param"].dtype, pd.CategoricalDtype) else out["param"])
    out["param"] = param_codes
    has_step = "step" in out.columns
    if has_step and out["step"].isna().any():
        raise ValueError("column 'step' has empty cells; every row needs its training step")
    bad = int((~np.isfinite(out["value"].to_numpy())).sum())
    if bad:
        notes_line = f"{bad} value(s) are NaN or infinite"
        notes.append(notes_line + "; the parameters they belong to are marked in figures")
    if len(out) > HUGE_ROWS:
        notes.append(f"huge table ({len(out):,} rows); figures draw a downsampled view of it")
    return Traced(out, source, has_step, exps, runs, params, shape, notes)


def _numeric(col, name: str):
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return col.astype("float64")
    if pd.api.types.is_numeric_dtype(col):
        return col.astype("float64")
    converted = pd.to_numeric(col, errors="coerce")
    broken = converted.isna() & col.notna() & ~col.astype(str).str.strip().str.lower().isin(
        ["nan", "inf", "-inf", "+inf", "infinity", "-infinity"])
    if broken.any():
        first = broken.to_numpy().nonzero()[0][0]
        raise ValueError(f"column '{name}' must hold numbers, but row {first + 1} holds "
                         f"{str(col.iloc[first])[:40]!r} (dtype {col.dtype})")
    special = col.astype(str).str.strip().str.lower()
    converted = converted.where(~special.isin(["inf", "+inf", "infinity"]), np.inf)
    converted = converted.where(~special.isin(["-inf", "-infinity"]), -np.inf)
    return converted.astype("float64")


def _steps(col, name: str):
    import numpy as np
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        converted = pd.to_numeric(col, errors="coerce")
        if converted.isna().any() and col.notna().any():
            first = converted.isna().to_numpy().nonzero()[0][0]
            raise ValueError(f"column '{name}' must hold integer training steps, but row {first + 1} holds "
                             f"{str(col.iloc[first])[:40]!r}")
        col = converted
    values = col.to_numpy(dtype="float64")
    finite = np.isfinite(values)
    if not finite.all():
        raise ValueError(f"column '{name}' must hold integer training steps; it has empty or infinite cells")
    if (values != np.round(values)).any():
        first = (values != np.round(values)).nonzero()[0][0]
        raise ValueError(f"column '{name}' must hold integer training steps, but row {first + 1} holds "
                         f"{values[first]!r}")
    return pd.Series(values.astype("int64"), index=col.index)


def _from_wide(df, columns: dict[str, str]):
    """One column per parameter (rows2prose) -> long. Index columns by role; the run defaults to the row's
    position within its (experiment, step) group, which is what rows2prose means by a row."""
    import pandas as pd

    index: dict[str, str] = {}
    for role, names in WIDE_INDEX.items():
        if role in columns:
            index[role] = columns[role]
            continue
        for n in names:
            if n in df.columns:
                index[role] = n
                break
    skip = set(index.values())
    params = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])
              and not pd.api.types.is_bool_dtype(df[c])]
    others = [c for c in df.columns if c not in skip and c not in params]
    if not params:
        raise ValueError(f"column 'param' missing {_have(df)}: a traced table needs `param` and `value` "
                         "columns (long form) or one numeric column per parameter (wide form)")
    base = pd.DataFrame(index=df.index)
    base["experiment"] = df[index["experiment"]] if "experiment" in index else "all"
    if "step" in index:
        base["step"] = _steps(df[index["step"]], index["step"])
    if "run" in index:
        base["run"] = df[index["run"]]
    else:
        keys = ["experiment"] + (["step"] if "step" in index else [])
        base["run"] = base.groupby(keys, sort=False).cumcount()
    for c in others:
        base[str(c)] = df[c]
    parts = []
    for p in params:
        part = base.copy()
        part["param"] = str(p)
        part["value"] = df[p].astype("float64")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
