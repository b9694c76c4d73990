"""The data catalog: every table a build reads goes through here, once.

Essays point their directives at files under ``data/`` (parquet or CSV tables, JSON provenance
sidecars). A :class:`Catalog` lives for one build (and across rebuilds of the preview server); it
reads each file once, keyed by path, modification time and size, so ten figures over one table cost
one read, and an edited table is read again.

Traced tables are normalised to the *long* shape (one row per value) by :mod:`sitegen.traced`
(pandas) or, for parquet files, read straight into figure codes by :mod:`sitegen.columnar` (only the
columns a figure needs, in row groups, never the whole table in pandas).

pandas and pyarrow are imported inside functions: pages without data never pay for them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitegen.errors import SiteError, closest
from sitegen.paths import confine, outside
from sitegen.traced import (HUGE_ROWS, ROLES, WIDE_INDEX, Traced, _as_labels, _label,  # noqa: F401 (as before)
                            ordered_categorical, to_traced)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sitegen.context import PageContext
    from sitegen.live import RunState

#: above this many bytes on disk a file is flagged before it is read
HUGE_BYTES = 512 * 1024 * 1024


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
        #: running tables' parts as figure codes (sitegen.columnar.PartCache), per table and column mapping
        self._part_codes: dict[tuple, Any] = {}
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
        found = self._live_parts(relpath, line, ctx)
        if found is None:
            return None
        stamp, parts, path, shown = found
        key = str(path.resolve())
        hit = self._tables.get(key)
        if hit and hit[0] == stamp:
            return stamp, hit[1], path, shown
        import pyarrow as pa

        try:
            table = pa.concat_tables([t for _, _, t in parts], promote_options="permissive") \
                .unify_dictionaries().combine_chunks()
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise self._fail(ctx, line, shown, f"the parts of the running experiment do not fit together ({exc})") \
                from None
        df = self._to_pandas(table)
        self._tables[key] = (stamp, df)
        return stamp, df, path, shown

    def _live_parts(self, relpath: str, line, ctx):
        """(stamp, [(part name, its stamp, Arrow table)], path, shown) of a run still writing ``relpath``,
        each part read once; None when no run is (or outside the preview)."""
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
        parts, stamps = [], []
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
            parts.append((str(part), stamp, hit[1]))
        if not parts:
            if path.is_file() and run.state == "stopped":
                return None  # a run that died before its first rows: show the last finished table
            what = ("stopped before it wrote any rows" if run.state == "stopped"
                    else "has not written its first rows yet")
            raise LiveWaiting(ctx.path, line, f"{shown}: the experiment writing this table {what}")
        ctx.meta["runs"][key] = dataclasses.replace(run, parts=len(parts))  # what this drawing holds
        for name in list(self._parts):  # parts of runs that are over
            if not os.path.exists(name):
                del self._parts[name]
        return ("live", tuple(stamps)), parts, path, shown

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
    def _columnar(self, relpath: str, columns: dict, line, ctx) -> tuple[Traced, str] | None:
        """A traced parquet table (or a running one's parts) read without pandas (:mod:`sitegen.columnar`),
        cached like :meth:`table`; None when that reader leaves it to the pandas path."""
        from sitegen import columnar

        ckey = tuple(sorted(columns.items()))
        live = self._live_parts(relpath, line, ctx)
        if live is not None:
            stamp, parts, path, shown = live
            key = ("live", str(path.resolve()), ckey)
            hit = self._traced.get(key)
            if hit and hit[0] == stamp:
                return hit[1], shown
            cache = self._part_codes.setdefault(key, columnar.PartCache())
            try:
                traced = cache.traced(parts, columns, shown)
            except columnar.Unsupported:
                return None
            self._traced[key] = (stamp, traced)
            return traced, shown
        path, shown = self._locate(relpath, line, ctx)
        if _is_log(path) or path.suffix.lower() != ".parquet":
            return None
        key = (str(path.resolve()), ckey)
        stamp = self._stamp(path)
        hit = self._traced.get(key)
        fresh = not (hit and hit[0] == stamp)
        if fresh:
            try:
                traced = columnar.read_traced(path, shown, columns)
            except Exception:  # noqa: BLE001 - columnar.Unsupported, or a damaged file: the pandas path
                return None    # reads it and says what is wrong
            self.reads += 1
            self._traced[key] = (stamp, traced)
        else:
            traced = hit[1]
        if ctx is not None and not ctx.meta.get("live"):
            self._warn_unfinished(path, shown, line, ctx)
        if fresh and stamp[1] > HUGE_BYTES and ctx is not None:
            ctx.warn(line, f"{shown}: large file ({stamp[1] / 2**20:.0f} MiB); reading it may take a while "
                           "and figures drawn from it are downsampled")
        return traced, shown

    def traced(self, relpath: str, columns: dict[str, str] | None = None, line: int | None = None,
               ctx: "PageContext | None" = None) -> Traced:
        """The table in ``relpath`` as traced data (long form, checked), cached like :meth:`table`.

        ``columns`` maps a role (``experiment``, ``run``, ``step``, ``param``, ``value``) to the
        file's column name, for tables written with other names.
        """
        columns = dict(columns or {})
        lean = self._columnar(relpath, columns, line, ctx)
        if lean is not None:
            traced, shown = lean
        else:
            stamp, df, path, shown = self._source(relpath, line, ctx)
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
