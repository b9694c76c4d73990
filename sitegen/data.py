"""The data catalog: every table a build reads goes through here, once.

Essays point their directives at files under ``data/`` (parquet or CSV tables, JSON provenance
sidecars). A :class:`Catalog` lives for one build (and across rebuilds of the preview server); it
reads each file once, keyed by path, modification time and size, so ten figures over one table cost
one read, and an edited table is read again.

Traced data is normalised to the *long* shape, one row per value::

    experiment  run  step  param        value
    64          0    0     lengthscale  1.00
    64          0    10    lengthscale  0.84

``experiment`` is the row of a figure, ``run`` the dot, ``step`` (optional) the training step.
The *wide* shape that rows2prose users already have (one column per parameter, index columns such
as ``i_config`` and ``i_timestep``) is converted to long, so an existing notebook's dataframe works
unchanged.

pandas and pyarrow are imported inside functions: pages without data never pay for them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.errors import SiteError, closest
from sitegen.paths import confine, outside

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sitegen.context import PageContext
    from sitegen.live import RunState

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
#: above this many bytes on disk a file is flagged before it is read
HUGE_BYTES = 512 * 1024 * 1024


@dataclass
class Traced:
    """A traced table in long form with the order of its rows and dots settled.

    ``frame`` holds the columns ``experiment``, ``run``, ``param`` (categorical strings, categories in
    figure order), ``value``
    (float64), ``step`` (int64, only when ``has_step``) and any extra columns of the file.
    """

    frame: "pd.DataFrame"
    source: str                     # the file as shown in messages
    has_step: bool
    experiments: list[str]          # figure rows, top to bottom
    runs: list[str]                 # dots, in order
    params: list[str]               # in order of first appearance
    shape: str = "long"             # "long" or "wide" (converted)
    notes: list[str] = field(default_factory=list)  # warnings met while normalising

    def __len__(self) -> int:
        return len(self.frame)


def _is_log(path: Path) -> bool:
    """A log folder or file, read by :mod:`sitegen.logs` rather than as a table."""
    if path.is_dir():
        return True
    name = path.name
    return name.startswith("events.out.tfevents") or name == "trainer_state.json" or \
        path.suffix.lower() in (".jsonl", ".ndjson")


class LiveWaiting(SiteError):
    """A page reads a table whose experiment is running but has written no rows yet (preview only)."""


class Catalog:
    """Reads data files once per build and reports problems at the directive that asked.

    :meth:`for_root` gives the one catalog of a site in this process, so every page of a build
    (and every rebuild of the preview server) shares its cache; a changed file is read again
    because entries are keyed by modification time and size.
    """

    _shared: dict[str, "Catalog"] = {}

    @classmethod
    def for_root(cls, root: Path | str) -> "Catalog":
        key = str(Path(root).resolve())
        if key not in cls._shared:
            cls._shared[key] = cls(key)
        return cls._shared[key]

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._tables: dict[str, tuple[tuple[int, int], Any]] = {}
        self._traced: dict[tuple, tuple[tuple[int, int], Traced]] = {}
        self._json: dict[str, tuple[tuple[int, int], Any]] = {}
        #: the preview's view of runs still training: part file -> (stamp, Arrow table)
        self._parts: dict[str, tuple[tuple[int, int], Any]] = {}
        #: how many files were actually read (the tests use it to check the cache)
        self.reads = 0

    # -- locating files ----------------------------------------------------------------
    def _locate(self, relpath: str, line: int | None, ctx: "PageContext | None") -> tuple[Path, str]:
        relpath = (relpath or "").strip()
        where, at = (ctx.path, line) if ctx is not None else (relpath or "?", None)
        if not relpath:
            raise SiteError(where, at, "no data file given; name one, e.g. `:data: data/run.parquet`")
        path = ctx.resolve(relpath) if ctx is not None else (self.root / relpath)
        shown = ctx.display(path) if ctx is not None else relpath
        if ctx is not None:
            confine(ctx.root, relpath, path, where, at)
            ctx.depend(path)  # also when missing: creating it later must trigger a rebuild
        if not path.is_file() and not path.is_dir():  # a folder: a log folder (sitegen.logs)
            hint = ""
            folder = path.parent
            if folder.is_dir():
                near = closest(path.name, [p.name for p in folder.iterdir() if p.is_file()])
                if near:
                    hint = f"; did you mean {', '.join(repr(str(Path(relpath).parent / n)) for n in near)}?"
            raise SiteError(where, at, f"{shown}: no such file{hint}")
        return path, shown

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)

    def _fail(self, ctx, line, shown: str, message: str) -> SiteError:
        if ctx is not None:
            return SiteError(ctx.path, line, f"{shown}: {message}")
        return SiteError(shown, None, message)

    # -- raw tables --------------------------------------------------------------------
    def table(self, relpath: str, line: int | None = None, ctx: "PageContext | None" = None) -> "pd.DataFrame":
        """The table in ``relpath`` (``.parquet``, ``.csv`` or ``.tsv``), read at most once per change.

        In the preview (``ctx.meta["live"]``), a run still writing this table (see :mod:`sitegen.live`)
        is read from its parts instead: the figures show the training as far as it has got.
        Callers must treat the result as read-only (it is shared between figures).
        """
        return self._source(relpath, line, ctx)[1]

    def _source(self, relpath: str, line, ctx) -> tuple[tuple, "pd.DataFrame", Path, str]:
        """(stamp, table, path, shown): the stamp identifies what was read, for the caches above it."""
        live = self._live(relpath, line, ctx)
        if live is not None:
            return live
        path, shown = self._locate(relpath, line, ctx)
        if ctx is not None and not ctx.meta.get("live"):
            self._warn_unfinished(path, shown, line, ctx)
        key = str(path.resolve())
        stamp = self._log_stamp(path, shown, line, ctx) if _is_log(path) else self._stamp(path)
        hit = self._tables.get(key)
        if hit and hit[0] == stamp:
            return stamp, hit[1], path, shown
        if stamp[0] != "log" and stamp[1] > HUGE_BYTES and ctx is not None:
            ctx.warn(line, f"{shown}: large file ({stamp[1] / 2**20:.0f} MiB); reading it may take a while "
                           "and figures drawn from it are downsampled")
        df = self._read(path, shown, line, ctx)
        if len(df.columns) == 0 or len(df) == 0:
            raise self._fail(ctx, line, shown, "the table is empty (no rows); was the experiment run to the end?")
        self._tables[key] = (stamp, df)
        return stamp, df, path, shown

    # -- runs still training (the preview only) -------------------------------------------------------
    def _live(self, relpath: str, line, ctx):
        if ctx is None or not ctx.meta.get("live"):
            return None
        from sitegen.live import part_files

        relpath = (relpath or "").strip()
        if not relpath:
            return None
        path = ctx.resolve(relpath)
        if outside(ctx.root, path) is not None:
            return None  # refused with its message by _locate
        folder, run = self._run_beside(path, ctx)  # also when missing: a run that starts must redraw the page
        ctx.depend(path)  # the finished table replaces the parts
        if run is None or not run.live:
            return None
        shown = ctx.display(path)
        key = str(path.resolve())
        ctx.meta.setdefault("runs", {})[key] = run
        ctx.meta["read_live"] = True
        tables, stamps = [], []
        for part in part_files(folder):
            try:
                stamp = self._stamp(part)
            except OSError:
                continue  # the run finished and took its parts away meanwhile: the manifest said so
            hit = self._parts.get(str(part))
            if hit is None or hit[0] != stamp:
                try:
                    import pyarrow.parquet as pq

                    hit = (stamp, pq.read_table(part))
                except Exception as exc:  # parts are renamed into place whole; this one was damaged later
                    ctx.warn(line, f"{shown}: skipped {part.name} of the running experiment ({exc})")
                    continue
                self._parts[str(part)] = hit
            stamps.append((part.name, stamp))
            tables.append(hit[1])
        if not tables:
            if path.is_file() and run.state == "stopped":
                return None  # a run that died before its first rows: show the last finished table
            what = ("stopped before it wrote any rows" if run.state == "stopped"
                    else "has not written its first rows yet")
            raise LiveWaiting(ctx.path, line, f"{shown}: the experiment writing this table {what}")
        ctx.meta["runs"][key] = dataclasses.replace(run, parts=len(tables))  # what this drawing holds
        stamp = ("live", tuple(stamps))
        hit = self._tables.get(key)
        if hit and hit[0] == stamp:
            return stamp, hit[1], path, shown
        import pyarrow as pa

        try:
            table = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().combine_chunks()
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise self._fail(ctx, line, shown, f"the parts of the running experiment do not fit together ({exc})") \
                from None
        df = self._to_pandas(table)
        self._tables[key] = (stamp, df)
        for name in list(self._parts):  # parts of runs that are over
            if not os.path.exists(name):
                del self._parts[name]
        return stamp, df, path, shown

    @staticmethod
    def _run_beside(path: Path, ctx) -> tuple[Path, "RunState | None"]:
        """The ``.parts`` folder beside a table and the run its manifest describes; the page depends
        on the manifest."""
        from sitegen.live import RUN_FILE, parts_dir, read_run

        folder = parts_dir(path)
        ctx.depend(folder / RUN_FILE)
        return folder, read_run(folder)

    def _warn_unfinished(self, path: Path, shown: str, line, ctx) -> None:
        """The published build reads finished tables only; say so when a newer run of this one is
        still training, or stopped before it finished (its parts are beside the table)."""
        from sitegen.live import RUN_FILE, parts_dir

        if not (parts_dir(path) / RUN_FILE).is_file():
            return
        folder, run = self._run_beside(path, ctx)
        if run is None or not run.live:
            return
        at = f" at step {run.last_step:,}" if run.last_step is not None else ""
        what = "is still training" if run.state == "running" else f"stopped{at} before it finished"
        ctx.warn(line, f"{shown}: a newer run of this table {what} ({ctx.display(folder)}/); the build uses "
                       "the last finished table. Let the run finish, or run the experiment again")

    def run_of(self, relpath: str, ctx: "PageContext | None") -> "RunState | None":
        """The run still writing ``relpath`` that the last read of it in this page went to, if any."""
        if ctx is None or not ctx.meta.get("live"):
            return None
        return ctx.meta.get("runs", {}).get(str(ctx.resolve((relpath or "").strip()).resolve()))

    def _log_stamp(self, path: Path, shown: str, line, ctx) -> tuple:
        """A log folder or file changes when any file its reader reads changes; the page depends on each."""
        from sitegen import logs

        try:
            found = logs.files(path)
        except logs.LogError as exc:
            raise self._fail(ctx, line, exc.problem.path, exc.problem.message) from None
        stamps = []
        for f in found:
            if ctx is not None:
                ctx.depend(f)
            try:
                stamps.append((str(f), *self._stamp(f)))
            except OSError:
                continue
        return ("log", tuple(stamps))

    def _read(self, path: Path, shown: str, line, ctx) -> "pd.DataFrame":
        import pandas as pd

        self.reads += 1
        if _is_log(path):
            from sitegen import logs

            try:
                return logs.read(path, shown=shown)
            except logs.LogError as exc:
                raise self._fail(ctx, line, exc.problem.path, exc.problem.message) from None
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.compute as pc
                import pyarrow.parquet as pq

                return self._to_pandas(pq.read_table(path))
            if suffix in (".csv", ".tsv"):
                return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        except pd.errors.EmptyDataError:
            raise self._fail(ctx, line, shown, "the table is empty (no header, no rows)") from None
        except Exception as exc:  # pyarrow/pandas raise many types for a damaged file
            kind = "parquet" if suffix == ".parquet" else "CSV"
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise self._fail(ctx, line, shown, f"cannot read this {kind} file ({detail}); "
                                               "re-run the experiment that writes it") from None
        raise self._fail(ctx, line, shown, f"unsupported file type '{suffix}'; use .parquet or .csv")

    @staticmethod
    def _to_pandas(table) -> "pd.DataFrame":
        import pyarrow as pa
        import pyarrow.compute as pc

        for i, f in enumerate(table.schema):  # text columns (param, run names) arrive categorical:
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):  # cheap to group
                table = table.set_column(i, f.name, pc.dictionary_encode(table.column(i)))
        return table.to_pandas()

    def json(self, relpath: str, line: int | None = None, ctx: "PageContext | None" = None) -> Any:
        """A JSON file such as a provenance sidecar, parsed once per change."""
        path, shown = self._locate(relpath, line, ctx)
        key = str(path.resolve())
        stamp = self._stamp(path)
        hit = self._json.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
        self.reads += 1
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._fail(ctx, line, shown, f"not valid JSON ({exc})") from None
        except RecursionError:
            raise self._fail(ctx, line, shown, "JSON nested too deeply to read; flatten it") from None
        self._json[key] = (stamp, value)
        return value

    def text(self, relpath: str, line: int | None = None, ctx: "PageContext | None" = None) -> tuple[str, str]:
        """A text file (an expression template): ``(text, shown path)``."""
        path, shown = self._locate(relpath, line, ctx)
        try:
            return path.read_text(encoding="utf-8"), shown
        except UnicodeDecodeError:
            raise self._fail(ctx, line, shown, "not UTF-8 text; save the template as UTF-8") from None

    # -- traced tables -------------------------------------------------------------------
    def traced(self, relpath: str, columns: dict[str, str] | None = None, line: int | None = None,
               ctx: "PageContext | None" = None) -> Traced:
        """The table in ``relpath`` as traced data (long form, checked), cached like :meth:`table`.

        ``columns`` maps a role (``experiment``, ``run``, ``step``, ``param``, ``value``) to the
        file's column name, for tables written with other names.
        """
        stamp, df, path, shown = self._source(relpath, line, ctx)
        columns = dict(columns or {})
        key = (str(path.resolve()), tuple(sorted(columns.items())))
        hit = self._traced.get(key)
        if hit and hit[0] == stamp:
            traced = hit[1]
        else:
            try:
                traced = to_traced(df, columns, shown)
            except ValueError as exc:
                raise self._fail(ctx, line, shown, str(exc)) from None
            self._traced[key] = (stamp, traced)
        if ctx is not None:
            for note in traced.notes:
                ctx.warn(line, f"{shown}: {note}")
        return traced


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
    return categories, pd.Categorical.from_codes(lookup[codes], categories=categories)


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
