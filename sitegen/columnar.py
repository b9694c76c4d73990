"""Traced parquet tables read straight into figure codes: no pandas, only the columns figures use.

:func:`read_traced` reads a long-shape parquet table row group by row group, keeping only the role
columns (experiment, run, step, param, value) and the bound columns (``lower``, ``upper``). Text and
number labels become integer codes in figure order (the order :func:`sitegen.traced.ordered_categorical`
gives the pandas path: numbers ascending, text in order of first appearance), steps and values
numpy arrays, so a figure (:mod:`sitegen.figures.reduce`) works on a few bytes per row. A table of
up to :data:`KEEP_ROWS` rows is kept that way, shared by every figure that reads it; a bigger one is
read again, row group by row group, for each pass, and is never whole in memory.

The parts of a run still training (:mod:`sitegen.live`) are read the same way, one part at a time:
:class:`PartCache` keeps each part's codes keyed by its file stamp, so an update reads only the new
part. Anything this reader does not handle (the wide shape, unusual column types, empty steps, parts
whose schemas differ) returns None, and the catalog reads the table with pandas as before, with the
same messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sitegen import traced as traced_mod
from sitegen.figures.reduce import Batch
from sitegen.traced import ROLES, Traced, order_labels

#: tables up to this many rows are kept as codes (about 20 bytes a row); bigger ones are streamed
KEEP_ROWS = 16_000_000
#: rows per batch when reading a file: small enough that a batch's temporaries stay small next to the
#: table's codes, big enough that numpy's and Arrow's per-call costs do not show (a 6M-row table read in
#: batches of 2**18 rows spent a fifth more CPU decoding, and its figure half again as much per batch)
BATCH_ROWS = 1 << 20
#: a streamed table's batches are smaller (read twice, each batch's decoded columns are all it holds)
STREAM_ROWS = 1 << 18
#: steps beyond this are not exact in float64, which the pandas path goes through
EXACT = 2 ** 53


class Unsupported(Exception):
    """A table this reader leaves to the pandas path."""


@dataclass
class Plan:
    """Which file column plays which role, and how each is read."""

    names: dict            # role -> column (experiment may be None: one row, "all")
    bounds: list           # bound columns present: "lower", "upper"
    numeric: dict          # "e"/"r" -> labels are numbers (sorted) rather than text (first appearance)

    @property
    def columns(self) -> list[str]:
        return [c for c in self.names.values() if c is not None] + self.bounds


def plan(schema, columns: dict[str, str]) -> Plan:
    """The reading plan for a table with this Arrow ``schema``, or Unsupported (the pandas path decides)."""
    import pyarrow as pa

    meta = schema.pandas_metadata or {}
    hidden = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    have = [n for n in schema.names if n not in hidden]
    if len(set(schema.names)) != len(schema.names) or any(r not in ROLES or c not in have for r, c in columns.items()):
        raise Unsupported("mapping")
    name = {role: columns.get(role, role) for role in ROLES}
    if name["param"] not in have or name["value"] not in have or name["run"] not in have:
        raise Unsupported("not the long shape")
    names = {"experiment": name["experiment"] if name["experiment"] in have else None, "run": name["run"],
             "param": name["param"], "value": name["value"], "step": name["step"] if name["step"] in have else None}
    roles = set(name.values())
    bounds = [c for c in ("lower", "upper") if c in have and c not in roles]

    def kind(col) -> str:
        t = schema.field(col).type
        if pa.types.is_dictionary(t):
            t = t.value_type if pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type) else None
            return "text" if t is not None else "other"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "text"
        if pa.types.is_signed_integer(t) or t in (pa.uint8(), pa.uint16(), pa.uint32()):
            return "int"
        if pa.types.is_floating(t):
            return "float"
        return "other"

    numeric = {}
    for key, role in (("e", "experiment"), ("r", "run")):
        col = names[role]
        k = kind(col) if col is not None else "text"
        if k == "other":
            raise Unsupported(role)
        numeric[key] = k in ("int", "float")
    if kind(names["param"]) != "text" or kind(names["value"]) not in ("int", "float") or \
            (names["step"] is not None and kind(names["step"]) != "int") or \
            any(kind(c) not in ("int", "float") for c in bounds):
        raise Unsupported("types")
    return Plan(names, bounds, numeric)


class _Labels:
    """One label column's distinct values across batches, in order of first appearance."""

    def __init__(self):
        self.index: dict = {}
        self.values: list = []

    def add(self, values: list, order: list[int]):
        """A batch's dictionary ``values`` met in ``order`` -> its local -> distinct value lookup (-1: none)."""
        import numpy as np

        to = np.full(len(values) + 1, -1, dtype=np.int64)
        for i in order:
            if i < 0:
                continue
            v = values[i]
            if v is None or v != v:  # a missing label, or NaN: pandas counts both as missing
                continue
            j = self.index.get(v)
            if j is None:
                j = self.index[v] = len(self.values)
                self.values.append(v)
            to[i] = j
        return to


#: an integer label column whose values span less than this is coded by counting, not hashing
SPAN = 1 << 20


def _local(column):
    """A column of one batch as (local codes, its dictionary as python values, the order its entries are
    first met in, or None when that order does not matter: numbers, whose figure order is ascending)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from sitegen.figures.reduce import first_seen

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_integer(column.type) and not column.null_count and len(column):
        x = column.to_numpy()
        lo, hi = int(x.min()), int(x.max())
        if hi - lo < SPAN:  # a small range (experiment sizes, seeds): count instead of hashing
            shifted = np.subtract(x, lo, dtype=np.int64)
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            lookup = np.cumsum(present) - 1
            values = (np.flatnonzero(present) + lo).tolist()
            return shifted, values, lookup
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    codes = column.indices
    if codes.null_count:
        codes = pc.fill_null(codes, -1)
    codes = np.asarray(codes.to_numpy(zero_copy_only=False))
    values = column.dictionary.to_pylist()
    found = first_seen(codes, len(values))
    return codes, values, sorted(found, key=found.__getitem__)


@dataclass
class Piece:
    """One batch after the first pass: its labels as indices into the table's distinct values (in order
    of first appearance; -1: missing), and what the table's summary needs."""

    local: dict            # "e"/"r"/"p" -> distinct-value indices (None: no experiment column)
    step: Any
    value: Any
    extra: dict
    rows: int
    bad: int               # NaN or infinite values
    runs: Any = None       # the rows repeat at every step (sitegen.figures.periodic.Runs): ``local`` holds the
                           # first ``runs.k`` rows' codes only, and ``step`` is None (``runs`` has the steps)
    bad_rows: Any = None   # the rows of ``bad``

    def luts(self, final: dict, via: dict | None = None) -> dict:
        """Per label column, the lookup from this piece's indices to figure codes: ``final`` maps the
        table's distinct values to codes; ``via`` (a part's own values -> the table's) goes first."""
        import numpy as np

        out = {}
        for key in ("e", "r", "p"):
            if self.local[key] is None:
                continue
            lut = np.append(final[key], -1)
            if via is not None:
                lut = np.append(lut[via[key][:-1]], -1)
            out[key] = lut.astype(np.int16 if len(final[key]) < 32_000 else np.int32)
        return out

    def batch(self, luts: dict) -> Batch:
        import numpy as np

        def codes_of(key, rows):
            if self.local[key] is None:
                return np.zeros(rows, dtype=np.int16)
            return luts[key][self.local[key]]
        value = self.value if self.value is not None else np.broadcast_to(np.nan, (self.rows,))  # an outline
        if self.runs is not None:
            first = {key: codes_of(key, self.runs.k) for key in ("e", "r", "p")}
            return _Repeating(first, value, self.extra, self.runs, self.bad_rows)
        codes = {key: codes_of(key, self.rows) for key in ("e", "r", "p")}
        return Batch(e=codes["e"], r=codes["r"], p=codes["p"], value=value, step=self.step, extra=self.extra)


class _Repeating(Batch):
    """A periodic batch whose codes and steps are spelled out row by row only when something asks for them:
    the figure's periodic paths (:mod:`sitegen.figures.periodic`) read the first step's codes
    (``memo["first"]``), the steps (``memo["runs"]``) and the rows not finite (``memo["bad"]``)."""

    def __init__(self, first: dict, value, extra: dict, runs, bad_rows):
        self.value, self.extra = value, extra
        self.memo = {"runs": runs, "first": first}
        if bad_rows is not None:
            self.memo["bad"] = bad_rows
        self._spelled: dict = {}

    def _column(self, name: str):
        import numpy as np

        got = self._spelled.get(name)
        if got is None:
            runs, rows = self.memo["runs"], len(self.value)
            if name == "step":
                got = np.repeat(runs.steps, runs.counts)
            else:  # row i has the codes of row i % k
                first = self.memo["first"][name]
                got = np.tile(first, -(-rows // len(first)))[:rows]
            self._spelled[name] = got
        return got

    e = property(lambda self: self._column("e"))
    r = property(lambda self: self._column("r"))
    p = property(lambda self: self._column("p"))
    step = property(lambda self: self._column("step"))


def _piece(table, plan: Plan, labels: dict) -> Piece:
    """The first pass over one batch (a pyarrow Table or RecordBatch)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    step = _steps(table, plan)
    cols = {key: table.column(plan.names[role]) for key, role in (("e", "experiment"), ("r", "run"), ("p", "param"))
            if plan.names[role] is not None}
    cols = {key: c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for key, c in cols.items()}
    runs = _repeats(step, cols)
    if step is not None:  # a periodic batch keeps its steps in ``runs`` only
        step = _narrow(step, runs)
    local = {"e": None, "r": None, "p": None}
    for key, column in cols.items():
        if runs is not None:  # the first k rows repeat: code them only (Piece.batch repeats them)
            column = column.slice(0, runs.k)
        codes, values, order = _local(column)
        to = labels[key].add(values, order if isinstance(order, list) else range(len(values)))
        small = np.int16 if len(labels[key].values) < 32_000 else np.int32
        if isinstance(order, list):
            local[key] = to.astype(small)[codes]
        else:  # order is a lookup from shifted integers to dictionary entries, all of them present
            local[key] = to[:-1].astype(small)[order][codes]

    def floats(col):
        arr = table.column(col)
        arr = pc.cast(arr, pa.float64())
        if arr.null_count:
            arr = pc.fill_null(arr, float("nan"))
        return np.asarray(arr.to_numpy(zero_copy_only=False) if not isinstance(arr, pa.ChunkedArray)
                          else arr.to_numpy())

    value = floats(plan.names["value"])
    finite = np.isfinite(value)
    bad = int(len(value) - np.count_nonzero(finite))
    extra = {c: floats(c) for c in plan.bounds}
    bad_rows = np.flatnonzero(~finite) if bad else np.zeros(0, dtype=np.intp)
    return Piece(local, step, value, extra, table.num_rows, bad, runs, bad_rows)


def _steps(table, plan: Plan):
    """The batch's steps as int64, or None without a step column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if plan.names["step"] is None:
        return None
    col = table.column(plan.names["step"])
    if col.null_count:
        raise Unsupported("empty steps")
    return np.asarray(pc.cast(col, pa.int64()).to_numpy(), dtype=np.int64)


def _narrow(step, runs):
    """The batch's steps as int32 (int64 when they need it); for a periodic batch (``runs``), None, and
    ``runs.steps`` narrowed instead (its steps are sorted: the first and last are the smallest and largest)."""
    import numpy as np

    if runs is not None:
        lo, hi = (int(runs.steps[0]), int(runs.steps[-1]))
    else:
        lo, hi = (int(step.min()), int(step.max())) if len(step) else (0, 0)
    if max(-lo, hi) > EXACT:
        raise Unsupported("steps beyond float64")
    if -2 ** 31 < lo and hi < 2 ** 31:  # half the memory; figures compare and sort them the same
        if runs is None:
            return step.astype(np.int32)
        runs.steps = runs.steps.astype(np.int32)
    return None if runs is not None else step


def _repeats(step, cols: dict):
    """The batch's :class:`~sitegen.figures.periodic.Runs` when its label columns (integers or dictionary
    indices, no nulls) repeat at every step, checked on the file's own values (equal values, equal codes);
    None otherwise (the figure may still find the codes repeat)."""
    import pyarrow as pa

    from sitegen.figures import periodic

    raw = []
    for c in cols.values():
        if c.null_count:
            return None
        if pa.types.is_dictionary(c.type):
            c = c.indices
        if not pa.types.is_integer(c.type):
            return None
        raw.append(c.to_numpy())
    return periodic.runs_of(step, tuple(raw))


def _finish(labels: dict, plan: Plan, shown: str, rows: int, bad: int, batches) -> Traced:
    """The table's summary (labels in figure order, notes) once every batch has been seen."""
    import numpy as np

    final, names = {}, {}
    for key in ("e", "r", "p"):
        values = labels[key].values
        numeric = plan.numeric.get(key, False)
        if key == "e" and plan.names["experiment"] is None:
            final[key], names[key] = np.zeros(1, dtype=np.int64), ["all"]
            continue
        cats, lookup = order_labels(values, numeric)
        final[key], names[key] = np.asarray(lookup[:-1], dtype=np.int64), cats
    notes = []
    if bad:
        notes.append(f"{bad} value(s) are NaN or infinite; the parameters they belong to are marked in figures")
    if rows > traced_mod.HUGE_ROWS:
        notes.append(f"huge table ({rows:,} rows); figures draw a downsampled view of it")
    made = batches(final)
    made, outline = made if isinstance(made, tuple) else (made, None)
    return Traced(None, shown, plan.names["step"] is not None, names["e"], names["r"], names["p"], "long", notes,
                  rows=rows, batches=made, bound_names=tuple(plan.bounds), outline=outline)


def read_traced(path: Path, shown: str, columns: dict[str, str]) -> Traced:
    """``path`` (parquet) as a :class:`Traced` without pandas; raises Unsupported for the pandas path."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)  # pre-buffering holds every row group read
    p = plan(pf.schema_arrow, columns)
    rows = pf.metadata.num_rows
    if rows == 0:
        raise Unsupported("empty")
    keep = rows <= KEEP_ROWS
    labels = {"e": _Labels(), "r": _Labels(), "p": _Labels()}
    pieces, bad = [], 0
    outlines: list | None = None if keep else []   # a streamed table whose batches all repeat: their patterns

    def scan():
        if keep and 0 < max(pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)) <= BATCH_ROWS:
            return _groups(pf, p.columns, BATCH_ROWS)
        size = BATCH_ROWS if keep else min(BATCH_ROWS, STREAM_ROWS)
        return _ahead(pf.iter_batches(batch_size=size, columns=p.columns, use_threads=True))

    for batch in scan():
        piece = _piece(batch, p, labels)
        bad += piece.bad
        if keep:
            pieces.append(piece)
        elif outlines is not None and piece.runs is None:
            outlines = None
        elif outlines is not None:
            outlines.append(Piece(piece.local, None, None, {}, piece.rows, 0, piece.runs))
    if keep:
        def batches(final):
            done = []
            pieces.reverse()
            while pieces:  # one piece at a time, so the table is never held twice
                piece = pieces.pop()
                done.append(piece.batch(piece.luts(final)))
            _release()
            return lambda: done
    else:
        def batches(final):
            def stream():  # the same batches again, with the lookups already settled
                again = {"e": _Labels(), "r": _Labels(), "p": _Labels()}
                for batch in scan():
                    piece = _piece(batch, p, again)
                    yield piece.batch(piece.luts(_remap(final, again, labels)))
            if outlines is None:
                return stream
            # what a figure's first pass (reduce.select) needs of a periodic batch is its pattern and
            # steps: kept from this pass, so a streamed table is read twice in all, not three times
            return stream, lambda: (o.batch(o.luts(final)) for o in outlines)
    return _finish(labels, p, shown, rows, bad, batches)


def _groups(pf, columns: list, size: int):
    """``pf``'s row groups (each at most ``size`` rows) as record batches, two decoded at a time beside the
    caller: Arrow's pool then works on one group's other columns while another's biggest column (the values)
    is still decoding, where one group at a time leaves a core waiting on that column."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="sitegen parquet reader") as pool:
        read = lambda i: pf.read_row_group(i, columns=columns, use_threads=True)  # noqa: E731
        ahead = [pool.submit(read, i) for i in range(min(2, pf.num_row_groups))]
        for i in range(pf.num_row_groups):
            table = ahead.pop(0).result()
            if i + 2 < pf.num_row_groups:
                ahead.append(pool.submit(read, i + 2))
            yield from table.to_batches(max_chunksize=size)
            del table


def _ahead(batches, depth: int = 2):
    """``batches``, decoded on a thread up to ``depth`` ahead of the caller (parquet decoding lets go of
    the GIL, so reading the next row group overlaps converting this one)."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    END = object()

    def work():
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        box.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            box.put(exc)
            return
        box.put(END)

    thread = threading.Thread(target=work, name="sitegen parquet reader", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _release() -> None:
    """Give the memory of decoded row groups back (Arrow's pool keeps it otherwise)."""
    import pyarrow as pa

    try:
        pa.default_memory_pool().release_unused()
    except AttributeError:  # pragma: no cover - older pyarrow
        pass


def _remap(final: dict, again: dict, labels: dict) -> dict:
    """``final`` (distinct value -> code, in the first pass's numbering) for the numbering of ``again``."""
    import numpy as np

    out = {}
    for key in final:
        index = labels[key].index
        out[key] = np.array([final[key][index[v]] for v in again[key].values], dtype=np.int64) \
            if again[key].values else np.zeros(0, dtype=np.int64)
    return out


class PartCache:
    """The parts of one running table, each read once (keyed by its file stamp), as a :class:`Traced`.

    An update with one new part reads that part only, and converts only the parts whose label
    lookups changed (a new experiment or run can move the others' codes); labels, codes and notes
    are worked out again from every part's small dictionaries, so a part rewritten or taken away
    changes the result exactly as a fresh read of all of them would.
    """

    def __init__(self):
        self.parts: dict[str, list] = {}   # part name -> [stamp, plan, piece, own labels, schema, luts, batch]

    def traced(self, parts: list, columns: dict[str, str], shown: str) -> Traced:
        """``parts``: (name, stamp, Arrow table) in the order they were written."""
        import numpy as np

        seen = {}
        for name, stamp, table in parts:
            hit = self.parts.get(name)
            if hit is None or hit[0] != stamp:
                p = plan(table.schema, columns)
                own = {"e": _Labels(), "r": _Labels(), "p": _Labels()}
                whole = table.unify_dictionaries().combine_chunks()
                hit = [stamp, p, _piece(whole, p, own), own, table.schema, None, None]
            seen[name] = hit
        self.parts = seen
        hits = [seen[name] for name, _, _ in parts]
        if not hits:
            raise Unsupported("no parts")
        first = hits[0]
        if any(not h[4].equals(first[4]) and not _same_columns(h[4], first[4]) for h in hits):
            raise Unsupported("parts differ")
        labels = {"e": _Labels(), "r": _Labels(), "p": _Labels()}
        vias = []
        for h in hits:  # each part's own distinct values, renumbered into the table's
            own = h[3]
            vias.append({key: labels[key].add(own[key].values, list(range(len(own[key].values))))
                         for key in ("e", "r", "p")})
        rows = sum(h[2].rows for h in hits)
        bad = sum(h[2].bad for h in hits)

        def batches(final):
            done = []
            for h, via in zip(hits, vias):
                luts = h[2].luts(final, via)
                if h[5] is None or any(not np.array_equal(luts[k], h[5][k]) for k in luts):
                    h[5], h[6] = luts, h[2].batch(luts)
                done.append(h[6])
            return lambda: done
        return _finish(labels, first[1], shown, rows, bad, batches)


def _same_columns(a, b) -> bool:
    """Two part schemas that read the same way (text dictionaries may differ in their values only)."""
    return a.names == b.names and all(str(x.type) == str(y.type) for x, y in zip(a, b))

