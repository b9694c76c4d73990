"""From a traced table to what a strip figure draws, in passes over batches of integer codes.

A :class:`~sitegen.traced.Traced` table reaches the figure as :class:`Batch` es: its experiment, run and
parameter columns as codes into the table's ordered lists, its steps and values as numpy arrays. A
small table is one batch (made from its pandas frame); a big parquet table is many (one per row
group, see :mod:`sitegen.columnar`), possibly read again from disk for each pass, so no pass ever
needs the whole table in memory. Two passes:

* :func:`select`: which parameters appear (in order of first appearance), which (experiment, run)
  pairs and which steps the placed parameters have;
* :func:`reduce`: the value each (parameter, experiment, run, frame) cell shows (the row with the
  latest step at or before the frame's step; of equal steps, the last row), the number of duplicate
  rows, the non-finite values and the first bound (``lower``/``upper`` column) of each parameter.

Both give exactly what sorting the whole table did before, without sorting it: rows written in step
order (what every tracer writes) need one scatter; batches that are not are sorted on their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sitegen.figures.counts import (BITMAP_BYTES, across, distinct, distinct_rows, distinct_sorted, distinct_values,
                                    first_order, first_seen, lut)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from sitegen.traced import Traced


@dataclass
class Batch:
    """Rows of a traced table as codes: ``e``, ``r``, ``p`` index the table's experiments, runs and
    parameters (-1: missing), ``value`` is float64, ``step`` int64 (None without steps), ``extra`` holds
    float64 ``lower``/``upper`` bound columns when the table has them."""

    e: "np.ndarray"
    r: "np.ndarray"
    p: "np.ndarray"
    value: "np.ndarray"
    step: "np.ndarray | None" = None
    extra: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict, repr=False, compare=False)   # per selection: its first pass

    def __len__(self) -> int:
        return len(self.value)


def batches_of(traced: "Traced") -> Callable[[], Iterable[Batch]]:
    """A callable giving ``traced`` as batches (each call may read the file again)."""
    if traced.batches is not None:
        return traced.batches
    cached = getattr(traced, "_frame_batch", None)
    if cached is None:
        cached = [frame_batch(traced)]
        object.__setattr__(traced, "_frame_batch", cached)
    return lambda: cached


def bound_names(traced: "Traced") -> list[str]:
    """The bound columns (``lower``, ``upper``) the table has."""
    have = traced.frame.columns if traced.frame is not None else traced.bound_names
    return [c for c in ("lower", "upper") if c in have]


def frame_batch(traced: "Traced") -> Batch:
    """A traced pandas frame (categorical experiment, run and param in figure order) as one batch."""
    import numpy as np
    import pandas as pd

    df = traced.frame
    extra = {}
    for name in ("lower", "upper"):
        if name in df.columns:
            col = df[name]
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                col = pd.to_numeric(col, errors="coerce")
            extra[name] = col.to_numpy(dtype="float64", na_value=np.nan)
    return Batch(e=df["experiment"].cat.codes.to_numpy(), r=df["run"].cat.codes.to_numpy(),
                 p=df["param"].cat.codes.to_numpy(), value=df["value"].to_numpy(dtype="float64"),
                 step=df["step"].to_numpy(dtype="int64") if traced.has_step else None, extra=extra)


@dataclass
class Rows:
    """Which rows a figure reads: experiments and runs (lookups from codes, None: all) and steps."""

    e_ok: Any = None
    r_ok: Any = None
    lo: int | None = None
    hi: int | None = None

    def key(self) -> tuple:
        return (None if self.e_ok is None else self.e_ok.tobytes(),
                None if self.r_ok is None else self.r_ok.tobytes(), self.lo, self.hi)

    def mask(self, b: Batch):
        """A boolean mask of ``b``'s rows to read, or None for all of them."""
        import numpy as np

        m = None
        for codes, ok in ((b.e, self.e_ok), (b.r, self.r_ok)):
            if ok is None:
                if len(codes) and codes.min() < 0:
                    m = codes >= 0 if m is None else m & (codes >= 0)
            else:
                m = ok[codes] if m is None else m & ok[codes]
        if b.step is not None:
            if self.lo is not None:
                m = b.step >= self.lo if m is None else m & (b.step >= self.lo)
            if self.hi is not None:
                m = b.step <= self.hi if m is None else m & (b.step <= self.hi)
        return None if m is None or m.all() else np.asarray(m, dtype=bool)


@dataclass
class Selection:
    rows: int = 0                                   # rows of the chosen experiments, runs and steps
    present: list[int] = field(default_factory=list)   # parameter codes, first appearance first
    pairs: Any = None                               # bool [experiments, runs]: has a placed parameter
    steps: Any = None                               # sorted distinct steps of the placed parameters


def select(batches: Iterable[Batch], rows: Rows, n_e: int, n_r: int, n_p: int, placed) -> Selection:
    """The first pass: ``placed`` is a lookup (:func:`lut`) from parameter codes to placeholders."""
    import numpy as np

    out = Selection(pairs=np.zeros((n_e, n_r), dtype=bool))
    order: dict[int, tuple[int, int]] = {}
    steps = []
    key = (rows.key(), placed.tobytes())
    for k, b in enumerate(batches):
        got = b.memo.get(key)
        if got is None:  # a batch kept between builds (a running table's old parts) is looked at once
            got = b.memo[key] = _select_one(b, rows, n_r, placed)
        count, present, pairs, distinct = got
        out.rows += count
        for i, code in enumerate(present):
            order.setdefault(code, (k, i))
        out.pairs.flat[pairs] = True
        if distinct is not None:
            steps.append(distinct)
    out.present = sorted(order, key=order.__getitem__)
    out.steps = np.unique(np.concatenate(steps)) if steps else np.zeros(0, dtype=np.int64)
    return out


def _select_one(b: Batch, rows: Rows, n_r: int, placed) -> tuple:
    """One batch's part of :func:`select`: (rows chosen, parameters in order of first appearance,
    flat (experiment, run) indices with a placed parameter, distinct steps of those)."""
    import numpy as np

    runs = runs_of(b)
    if runs is not None:
        return _select_periodic(b, runs, rows, n_r, placed)
    m = rows.mask(b)
    p = b.p if m is None else b.p[m]
    present = first_order(p)
    pp = placed[p] >= 0
    every = pp.all()
    e = b.e if m is None else b.e[m]
    r = b.r if m is None else b.r[m]
    if not every:
        e, r = e[pp], r[pp]
    seen = np.zeros((int(e.max()) + 1 if len(e) else 0, n_r), dtype=bool)
    seen[e, r] = True
    pairs = np.flatnonzero(seen)
    distinct = None
    if b.step is not None:
        s = b.step if m is None else b.step[m]
        distinct = distinct_sorted(s if every else s[pp])
    return len(p), present, pairs, distinct


def runs_of(b: Batch):
    """``b``'s :class:`~sitegen.figures.periodic.Runs` (None: its rows do not repeat step after step),
    worked out once per batch."""
    from sitegen.figures import periodic

    if "runs" not in b.memo:
        b.memo["runs"] = periodic.runs_of(b.step, (b.e, b.r, b.p))
    return b.memo["runs"]


def _pattern(b: Batch, runs, rows: Rows):
    """One full step's rows of a periodic batch, and which of them ``rows`` chooses (steps aside)."""
    import numpy as np

    from sitegen.figures import periodic

    got = b.memo.get(("pattern", rows.key()))   # the same for both passes
    if got is None:
        a, k = runs.anchor, runs.k
        first = periodic.first_codes(b, k)
        pat = Batch(e=np.roll(first["e"], -a), r=np.roll(first["r"], -a), p=np.roll(first["p"], -a),
                    value=b.value[a:a + k])
        m = Rows(rows.e_ok, rows.r_ok).mask(pat)
        ok = np.ones(len(runs.steps), dtype=bool)
        if rows.lo is not None:
            ok &= runs.steps >= rows.lo
        if rows.hi is not None:
            ok &= runs.steps <= rows.hi
        got = b.memo[("pattern", rows.key())] = (pat, np.ones(k, dtype=bool) if m is None else m, ok)
    pat, take, ok = got
    return pat, take.copy(), ok   # callers narrow ``take`` in place


def _select_periodic(b: Batch, runs, rows: Rows, n_r: int, placed) -> tuple:
    """:func:`_select_one` for a periodic batch: the first two chosen steps hold every pattern position."""
    import numpy as np

    pat, take, step_ok = _pattern(b, runs, rows)
    per = runs.per_step(take) * step_ok
    with_placed = (runs.per_step(take & (placed[pat.p] >= 0)) * step_ok) > 0
    at = runs.position(runs.rows(np.flatnonzero(per > 0)[:2]))
    at = at[take[at]]
    p = pat.p[at]
    pp = placed[p] >= 0
    e, r = pat.e[at][pp], pat.r[at][pp]
    seen = np.zeros((int(e.max()) + 1 if len(e) else 0, n_r), dtype=bool)
    seen[e, r] = True
    return int(per.sum()), first_order(p), np.flatnonzero(seen), runs.steps[with_placed]


def _prepare_periodic(b: Batch, runs, rows: Rows, placed, e_pos, r_pos, shape) -> _Prepared:
    """:func:`_prepare` for a periodic batch: the pattern's cells, the rows drawn at each step."""
    import numpy as np

    from sitegen.figures import periodic

    P, E, R = shape
    pat, take, step_ok = _pattern(b, runs, rows)
    p = placed[pat.p]
    take &= p >= 0
    e, r = e_pos[pat.e], r_pos[pat.r]
    drawn = take & (e >= 0) & (r >= 0)
    model = p.astype(np.int64 if P * E * R >= 2 ** 31 else np.int32)
    model *= E
    model += e
    model *= R
    model += r
    model[~drawn] = -1
    nonfinite = np.zeros(P, dtype=np.int64)
    bad = b.memo.get("bad")  # only the rows that are not finite are looked at (the reader may know them)
    bad = np.flatnonzero(~np.isfinite(b.value)) if bad is None else bad
    if len(bad):
        counted = step_ok[np.searchsorted(runs.starts, bad, side="right") - 1] & take[runs.position(bad)]
        if counted.any():
            nonfinite = np.bincount(placed[pat.p[runs.position(bad[counted])]], minlength=P)
    per = runs.per_step(drawn) * step_ok
    steps = np.flatnonzero(per > 0)
    prep = _Prepared(None, b.value, None, True, nonfinite, {}, periodic.duplicates(runs, model, per > 0),
                     runs=runs, pattern=model, per=per, once=distinct(model[drawn]) == int(drawn.sum()))
    if len(steps):
        ends = []
        for j in (steps[0], steps[-1]):
            m = model[runs.position(runs.rows([j]))]
            ends.append(distinct_values(m[m >= 0]))
        prep.first, prep.last = ends
        prep.low, prep.high = int(runs.steps[steps[0]]), int(runs.steps[steps[-1]])
    return prep


def _frames(s, ordered: bool, frame_steps, all_steps):
    """Each row's frame (the first frame at or after its step) and its step's rank among ``all_steps``.
    Rows in step order are looked up once per distinct step and repeated."""
    import numpy as np

    if ordered and len(s):
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        counts = np.diff(np.append(starts, len(s)))
        u = s[starts]
        f_u, rank_u = _frames(u, False, frame_steps, all_steps)
        return np.repeat(f_u, counts), np.repeat(rank_u, counts)
    if len(frame_steps) == 1:
        f = (s > frame_steps[0]).astype(np.int32)
    else:
        f = np.searchsorted(frame_steps, s, side="left").astype(np.int32)
    return f, np.searchsorted(all_steps, s).astype(np.int32)


@dataclass
class Reduced:
    dense: Any            # float64 [cells]: the value each cell shows (NaN: none)
    has: Any              # bool [cells]: a row landed in this cell
    duplicates: int       # rows with the same parameter, experiment, run and step as another
    nonfinite: Any        # int64 [placed parameters]: NaN or infinite values
    bounds: dict          # "lower"/"upper" -> float64 [placed parameters], the first one of each (NaN: none)


@dataclass
class _Prepared:
    """One batch's rows of a figure, with what does not depend on the frames (kept between redraws)."""

    model: Any            # (parameter, row, dot) index of each row
    value: Any
    step: Any             # None without steps
    ordered: bool         # steps never go down
    nonfinite: Any        # per placed parameter
    bounds: dict          # name -> the first bound of each placed parameter in this batch (NaN: none)
    duplicates: int       # rows with the same (parameter, row, dot, step) as an earlier row of this batch
    low: int = 0          # the batch's smallest and largest step
    high: int = 0
    first: Any = None     # the (parameter, row, dot) indices with a row at the smallest step, and the largest
    last: Any = None
    runs: Any = None      # a periodic batch (sitegen.figures.periodic.Runs): ``model`` is then None, and
    pattern: Any = None   # each pattern position's (parameter, row, dot) index (-1: not drawn)
    per: Any = None       # and the rows drawn at each step
    once: bool = False    # no (parameter, row, dot) index twice in the pattern

    @property
    def size(self) -> int:
        return len(self.model) if self.runs is None else int(self.per.sum())

    def arrays(self):
        """(model, step) of every row drawn (a periodic batch's are built from its pattern)."""
        import numpy as np

        if self.runs is None:
            return self.model, self.step
        steps = np.flatnonzero(self.per > 0)
        model = self.pattern[self.runs.position(self.runs.rows(steps))]
        s = np.repeat(self.runs.steps[steps], self.runs.counts[steps])
        ok = model >= 0
        return model[ok], s[ok]


def _prepare(b: Batch, rows: Rows, placed, e_pos, r_pos, shape, bound_names) -> _Prepared:
    import numpy as np

    P, E, R = shape
    runs = None if bound_names else runs_of(b)
    if runs is not None:
        return _prepare_periodic(b, runs, rows, placed, e_pos, r_pos, shape)
    m = rows.mask(b)
    p = placed[b.p if m is None else b.p[m]]
    pp = p >= 0
    if not pp.all():
        m = pp if m is None else np.flatnonzero(m)[pp]
        p = p[pp]
    take = (lambda a: a) if m is None else (lambda a: a[m])
    e, r, v = e_pos[take(b.e)], r_pos[take(b.r)], take(b.value)
    s = take(b.step) if b.step is not None else None
    bad = ~np.isfinite(v)
    nonfinite = np.bincount(p[bad], minlength=P) if bad.any() else np.zeros(P, dtype=np.int64)
    bounds = {}
    for name in bound_names:
        col = take(b.extra[name])
        first = np.full(P, np.nan)
        ok = np.flatnonzero(~np.isnan(col))
        if len(ok):
            for code, i in first_seen(p[ok], P).items():
                first[code] = col[ok[i]]
        bounds[name] = first
    keep = (e >= 0) & (r >= 0)
    if not keep.all():
        p, e, r, v = p[keep], e[keep], r[keep], v[keep]
        s = s[keep] if s is not None else None
    wide = np.int64 if P * E * R >= 2 ** 31 else np.int32
    model = p.astype(wide)
    model *= E
    model += e
    model *= R
    model += r
    ordered = s is None or len(s) < 2 or bool((s[1:] >= s[:-1]).all())
    first = last = None
    if s is None:
        distinct = len(np.unique(model))
    else:
        if ordered and len(s):  # steps in runs: each run's rank, without a search per row
            starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
            n_steps = len(starts)
            rank = np.repeat(np.arange(n_steps), np.diff(np.append(starts, len(s))))
        else:
            steps, rank = np.unique(s, return_inverse=True)
            n_steps = len(steps)
        if P * E * R * n_steps <= BITMAP_BYTES:
            bits = np.zeros(P * E * R * n_steps, dtype=bool)
            bits[model.astype(np.int64) * n_steps + rank] = True
            distinct = int(np.count_nonzero(bits))
        else:
            distinct = len(np.unique(model.astype(np.int64) * n_steps + rank))
        if len(s):  # the models at the batch's first and last step: a step split between batches
            first, last = np.unique(model[s == s.min()]), np.unique(model[s == s.max()])
    low, high = (int(s.min()), int(s.max())) if s is not None and len(s) else (0, 0)
    return _Prepared(model, v, s, ordered, nonfinite, bounds, len(model) - distinct, low, high, first, last)


def reduce(batches: Callable[[], Iterable[Batch]], rows: Rows, placed, e_pos, r_pos, shape: tuple[int, int, int],
           frame_steps, all_steps, bound_names: list[str]) -> Reduced:
    """The second pass: ``batches`` gives the table's batches (called again only in the rare case below);
    ``placed``, ``e_pos``, ``r_pos`` are lookups (:func:`lut`) from codes to the figure's parameter, row
    and dot positions; ``frame_steps`` the steps drawn (``[0]`` without steps).

    What does not depend on the frames is worked out once per batch and kept with it (a running
    table's old parts are not looked at again); per redraw, each row costs a frame lookup (once per
    distinct step) and one scatter."""
    import numpy as np

    P, E, R = shape
    F = len(frame_steps)
    cells = P * E * R * F
    best_step = pos = None   # made for the first batch that needs the checks below (a tracer's need none)
    early = []               # until then, the one-scatter path's (cells, steps), for best_step
    best_val = np.empty(cells)   # NaN where no row lands, once every batch is in
    has = np.zeros(cells, dtype=bool)
    wide = np.int64 if cells >= 2 ** 31 else np.int32
    nonfinite = np.zeros(P, dtype=np.int64)
    bounds = {name: np.full(P, np.nan) for name in bound_names}
    key = (rows.key(), placed.tobytes(), e_pos.tobytes(), r_pos.tobytes(), shape, tuple(bound_names))
    spans = []   # per batch with rows: (lowest step, highest step, duplicates within it, first, last)
    kept = dropped = 0
    top = np.iinfo(np.int64).min   # the latest step in best_step

    def prepared(b):
        prep = b.memo.get(key)
        if prep is None:
            prep = b.memo[key] = _prepare(b, rows, placed, e_pos, r_pos, shape, bound_names)
        return prep

    for b in batches():
        prep = prepared(b)
        nonfinite += prep.nonfinite
        for name in bound_names:
            todo = np.isnan(bounds[name])
            bounds[name][todo] = prep.bounds[name][todo]
        if prep.size:
            spans.append((prep.low, prep.high, prep.duplicates, prep.first, prep.last))
        if prep.runs is not None:  # a periodic batch: only the steps whose rows can win a frame
            got = _periodic_rows(prep, frame_steps, all_steps)
            if got is None:
                continue
            model, v, s, f, chosen, cut, single = got
            kept += chosen
            dropped += cut
        else:
            s, v, model = prep.step, prep.value, prep.model
            if s is None:
                f = np.zeros(len(model), dtype=np.int32)
            else:
                f, _ = _frames(s, prep.ordered, frame_steps, all_steps)
            keep = f < F
            if keep.all():
                keep = None
            else:  # rows after the last frame (none when the last frame is the last step)
                f, v, model, s = f[keep], v[keep], model[keep], (s[keep] if s is not None else None)
                dropped += 1
            kept += len(model)
        n = len(model)
        if not n:
            continue
        lin = model.astype(wide) * F
        lin += f
        if prep.runs is not None and single and prep.once and s[0] >= top:
            # each cell at most once, and later than every row before: the scatter below, without its checks
            best_val[lin], has[lin] = v, True
            if best_step is None:
                early.append((lin, s))
            else:
                best_step[lin] = s
            top = int(s[-1])
            continue
        if best_step is None:
            best_step = np.full(cells, np.iinfo(np.int64).min, dtype=np.int64)
            for at, st in early:
                best_step[at] = st
        if not prep.ordered:
            order = np.lexsort((s, lin))
            lin_s = lin[order]
            last = np.ones(n, dtype=bool)
            last[:-1] = lin_s[1:] != lin_s[:-1]
            idx, touched = order[last], lin_s[last]
        else:  # rows in step order: each cell's last row is its latest
            pos = np.full(cells, -1, dtype=wide) if pos is None else pos
            ar = np.arange(n, dtype=wide)
            pos[lin] = ar
            won = pos[lin]
            if not (won >= ar).all():  # numpy does not promise the last write wins: make sure
                pos[lin] = -1
                np.maximum.at(pos, lin, ar)
                won = pos[lin]
            last = won == ar   # each touched cell's own last row, once (no sort, no hash)
            touched, idx = lin[last], np.flatnonzero(last)
            pos[touched] = -1
        cand_s = s[idx] if s is not None else np.zeros(len(idx), dtype=np.int64)
        newer = cand_s >= best_step[touched]  # a later batch wins a tie: its rows come later
        won = touched[newer]
        best_step[won] = cand_s[newer]
        top = max(top, int(cand_s[newer].max())) if len(won) else top
        best_val[won] = v[idx[newer]]
        has[touched] = True
    # duplicates: batch by batch when no rows were dropped and the batches' steps follow each other
    # (what a tracer writes); otherwise over every row at once
    shared = across(spans) if not dropped else None
    if shared is not None:  # batches in step order (what a tracer writes): each one's, and a split step's
        duplicates = sum(d for _, _, d, _, _ in spans) + shared
    else:  # steps shared between batches: another pass over every row (only this pass keeps nothing)
        duplicates = kept - distinct_rows((prepared(b) for b in batches()), frame_steps, all_steps, P * E * R)
    if not has.all():
        best_val[~has] = np.nan
    return Reduced(dense=best_val, has=has, duplicates=duplicates, nonfinite=nonfinite, bounds=bounds)


def _periodic_rows(prep: _Prepared, frame_steps, all_steps):
    """A periodic batch's candidate rows (:func:`sitegen.figures.periodic.candidates`) as (model, value,
    step, frame, rows up to the last frame, 1 if rows after it were left out); None without rows."""
    import numpy as np

    from sitegen.figures import periodic

    runs = prep.runs
    steps = np.flatnonzero(prep.per > 0)
    if not len(steps):
        return None
    f, _ = _frames(runs.steps[steps], False, frame_steps, all_steps)
    inside = f < len(frame_steps)
    cut = 0 if inside.all() else 1
    steps, f = steps[inside], f[inside]
    chosen = int(prep.per[steps].sum())
    pick = periodic.candidates(f, runs.full[steps])
    steps, f = steps[pick], f[pick]
    start, first, count, single = periodic.winners(runs, steps, f)
    if len(count) and (first + count <= runs.k).all():  # a step's rows: consecutive positions of the pattern
        model = np.concatenate([prep.pattern[a:a + c] for a, c in zip(first.tolist(), count.tolist())])
        v = np.concatenate([prep.value[a:a + c] for a, c in zip(start.tolist(), count.tolist())])
    else:
        model = prep.pattern[periodic.spread(first, count) % runs.k]
        v = prep.value[periodic.spread(start, count)]
    f = np.repeat(f, count)
    s = np.repeat(runs.steps[steps], count)
    ok = model >= 0
    if not ok.all():
        model, v, f, s = model[ok], v[ok], f[ok], s[ok]
    return model, v, s, f, chosen, cut, single
