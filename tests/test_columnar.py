"""Big traced tables read without pandas (sitegen.columnar) and reduced in passes (sitegen.figures.reduce)
draw exactly what the pandas path draws: same HTML, same animation bytes, same warnings, for any table,
however it is split into batches or streamed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitegen import columnar
from sitegen.data import Catalog
from sitegen.figures import reduce, strips
from sitegen.figures.template import parse
from sitegen.traced import to_traced

TEMPLATE = parse("y = ⟦w⟧ * x + ⟦b⟧\nz = ⟦w⟧")


@st.composite
def tables(draw):
    n = draw(st.integers(1, 60))
    exp_kind = draw(st.sampled_from(["int", "float", "text", "none"]))
    exp_pool = {"int": [1024, 16, 64], "float": [0.5, 2.0, 1e-3], "text": ["b", "a", "c"], "none": [None]}[exp_kind]
    run_pool = draw(st.sampled_from([[0, 1, 2, 3], ["s1", "s0"], [3, 1], [5, -2]]))
    params = ["w", "b", "extra"]
    rows = {
        "experiment": draw(st.lists(st.sampled_from(exp_pool), min_size=n, max_size=n)),
        "run": draw(st.lists(st.sampled_from(run_pool), min_size=n, max_size=n)),
        "param": draw(st.lists(st.sampled_from(params), min_size=n, max_size=n)),
        "value": draw(st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([np.nan, np.inf, 0.05])),
                               min_size=n, max_size=n)),
    }
    steps = draw(st.sampled_from(["sorted", "any", "none"]))
    if steps != "none":
        s = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
        rows["step"] = sorted(s) if steps == "sorted" else s
    if draw(st.booleans()):
        rows["lower"] = draw(st.lists(st.sampled_from([np.nan, 0.05, -1.0]), min_size=n, max_size=n))
    if exp_kind == "none":
        del rows["experiment"]
    if exp_kind != "none" and draw(st.booleans()):  # a missing label now and then
        rows["experiment"][draw(st.integers(0, n - 1))] = None
    table = pa.table(rows)
    if draw(st.booleans()) and pa.types.is_integer(table.schema.field("run").type):  # a narrow integer type
        table = table.set_column(table.schema.get_field_index("run"), "run", table.column("run").cast(pa.int8()))
    if draw(st.booleans()):
        table = table.set_column(table.schema.get_field_index("param"), "param",
                                 table.column("param").dictionary_encode())
    return table


@st.composite
def options(draw):
    opts = strips.StripOptions(frames=draw(st.integers(2, 5)), animate=draw(st.booleans()),
                               warn_unplaced=draw(st.booleans()))
    if draw(st.booleans()):
        opts.steps = (draw(st.sampled_from([None, 1, 2])), draw(st.sampled_from([None, 4, 5])))
    if draw(st.booleans()):
        opts.max_runs = 1
    return opts


def drawn(fig):
    return fig.html, fig.island, fig.frames_blob, [(i.level, i.message, i.template_line) for i in fig.issues]


@st.composite
def traced_tables(draw):
    """Tables as tracers write them (every model and parameter at every step, in the same order), now and
    then disturbed: a row dropped or doubled, a step's rows in another order, a value not finite, a step
    missing for one model (sparse logging), a lower bound."""
    exps = draw(st.sampled_from([[16, 64], [64], ["b", "a"]]))
    runs = draw(st.sampled_from([[0, 1], [2], ["s1", "s0", "s2"]]))
    params = [p for p in draw(st.permutations(["w", "b", "extra"])) if p != "extra" or draw(st.booleans())]
    steps = sorted(set(draw(st.lists(st.integers(0, 30), min_size=1, max_size=12))))
    every = [(e, r, p) for e in exps for r in runs for p in params]
    rows = [(e, r, p, s) for s in steps for (e, r, p) in every]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["drop", "double", "swap", "sparse"]))
        i = draw(st.integers(0, len(rows) - 1))
        if kind == "drop" and len(rows) > 1:
            del rows[i]
        elif kind == "double":
            rows.insert(i, rows[i])
        elif kind == "swap" and i + 1 < len(rows):
            rows[i], rows[i + 1] = rows[i + 1], rows[i]
        elif kind == "sparse":
            e, r, _, s = rows[i]
            rows = [x for x in rows if not (x[0] == e and x[1] == r and x[3] == s)] or rows
    n = len(rows)
    values = draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))
    if draw(st.booleans()):
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf]))
    data = {"experiment": [x[0] for x in rows], "run": [x[1] for x in rows],
            "param": pa.array([x[2] for x in rows]).dictionary_encode(), "step": [x[3] for x in rows],
            "value": values}
    if draw(st.booleans()):
        data["lower"] = draw(st.lists(st.sampled_from([np.nan, 0.05, -1.0]), min_size=n, max_size=n))
    return pa.table(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.one_of(tables(), traced_tables()), opts=options(), batch=st.sampled_from([1, 3, 7, 40, 1 << 18]),
       stream=st.booleans(), periodic_rows=st.sampled_from([0, 10 ** 9]), groups=st.booleans())
def test_columnar_figure_is_the_pandas_figure(tmp_path, monkeypatch, table, opts, batch, stream, periodic_rows,
                                              groups):
    """``groups``: row groups no bigger than a batch, which a kept table reads group by group, two at once."""
    from sitegen.figures import periodic

    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=max(1, batch * (1 if groups else 2)))
    cold = to_traced(Catalog._to_pandas(pq.read_table(path)), {}, "t.parquet")
    monkeypatch.setattr(columnar, "BATCH_ROWS", batch)
    monkeypatch.setattr(periodic, "MIN_ROWS", periodic_rows)  # 0: every batch that repeats takes the short cut
    monkeypatch.setattr(columnar, "KEEP_ROWS", 0 if stream else 10 ** 9)
    try:
        lean = columnar.read_traced(path, "t.parquet", {})
    except columnar.Unsupported:  # only a label column with no value at all (Arrow's null type) is left to pandas
        assert any(pa.types.is_null(f.type) for f in table.schema)
        return
    assert lean.frame is None
    assert (lean.experiments, lean.runs, lean.params, lean.has_step, lean.notes, len(lean)) == \
        (cold.experiments, cold.runs, cold.params, cold.has_step, cold.notes, len(cold))
    assert drawn(strips.build(lean, TEMPLATE, opts)) == drawn(strips.build(cold, TEMPLATE, opts))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=traced_tables(), opts=options(), batch=st.sampled_from([5, 13, 40, 1 << 18]), stream=st.booleans())
def test_batches_that_repeat_each_step_draw_the_pandas_figure(tmp_path, monkeypatch, table, opts, batch, stream):
    """The periodic short cut (sitegen.figures.periodic) on every batch it can take."""
    from sitegen.figures import periodic

    if "lower" in table.column_names:
        table = table.drop_columns(["lower"])  # bounds take the row-by-row path
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=batch * 3)
    cold = to_traced(Catalog._to_pandas(pq.read_table(path)), {}, "t.parquet")
    monkeypatch.setattr(columnar, "BATCH_ROWS", batch)
    monkeypatch.setattr(columnar, "KEEP_ROWS", 0 if stream else 10 ** 9)
    monkeypatch.setattr(periodic, "MIN_ROWS", 0)
    lean = columnar.read_traced(path, "t.parquet", {})
    assert drawn(strips.build(lean, TEMPLATE, opts)) == drawn(strips.build(cold, TEMPLATE, opts))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opts=options(), batch=st.sampled_from([25, 50, 120]), seed=st.integers(0, 10 ** 6), nan=st.booleans())
def test_a_streamed_table_that_repeats_is_read_twice(tmp_path, monkeypatch, opts, batch, seed, nan):
    """Every batch repeats (12 rows a step, each batch at least two steps): the figure's first pass works
    on the outlines kept from reading the summary, and the figure is still the pandas path's."""
    from sitegen.figures import periodic

    rng = np.random.default_rng(seed)
    models = [(e, r, p) for e in (64, 16) for r in (0, 1, 2) for p in ("w", "b")]
    rows = [(e, r, p, s) for s in range(0, 20, 2) for (e, r, p) in models]
    value = rng.normal(size=len(rows))
    if nan:
        value[rng.integers(0, len(rows))] = np.nan
    table = pa.table({"experiment": [x[0] for x in rows], "run": [x[1] for x in rows],
                      "param": pa.array([x[2] for x in rows]).dictionary_encode(), "step": [x[3] for x in rows],
                      "value": value})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=batch)
    cold = to_traced(Catalog._to_pandas(pq.read_table(path)), {}, "t.parquet")
    monkeypatch.setattr(columnar, "BATCH_ROWS", batch)
    monkeypatch.setattr(columnar, "KEEP_ROWS", 0)
    monkeypatch.setattr(periodic, "MIN_ROWS", 0)
    lean = columnar.read_traced(path, "t.parquet", {})
    assert lean.outline is not None
    assert drawn(strips.build(lean, TEMPLATE, opts)) == drawn(strips.build(cold, TEMPLATE, opts))


def test_periodic_batches_are_recognised():
    """A tracer's rows repeat; a step with a row missing in the middle, or codes that change, do not."""
    from sitegen.figures import periodic

    e = np.tile(np.repeat(np.arange(2, dtype=np.int16), 3), 5)[2:-1]   # 6 rows a step, cut at both ends
    p = np.tile(np.arange(3, dtype=np.int16), 10)[2:-1]
    step = np.repeat(np.arange(5, dtype=np.int32), 6)[2:-1]
    runs = periodic.runs_of(step, (e, p), min_rows=0)
    assert runs.k == 6 and runs.counts.tolist() == [4, 6, 6, 6, 5] and runs.anchor == 4
    assert runs.per_step(np.ones(6, dtype=bool)).tolist() == [4, 6, 6, 6, 5]
    assert periodic.candidates(np.array([0, 0, 1, 1, 1]), runs.full).tolist() == [False, True, False, True, True]
    assert periodic.runs_of(np.delete(step, 9), (np.delete(e, 9), np.delete(p, 9)), min_rows=0) is None
    p2 = p.copy()
    p2[20] = 2 - p2[20] if p2[20] != 1 else 0
    assert periodic.runs_of(step, (e, p2), min_rows=0) is None
    assert periodic.runs_of(step[::-1].copy(), (e, p), min_rows=0) is None


def old_dense(frame: pd.DataFrame, placed, exps, runs, frame_steps):
    """The figure's cells as the pandas path computed them before the passes: sort the whole table."""
    sel = frame[frame["param"].isin(placed) & frame["experiment"].isin(exps) & frame["run"].isin(runs)]
    pos = lambda col, order: np.array([{n: i for i, n in enumerate(order)}[str(x)] for x in sel[col]], dtype=np.int64)
    P, E, R, F = len(placed), len(exps), len(runs), len(frame_steps)
    steps = sel["step"].to_numpy()
    f = np.searchsorted(frame_steps, steps, side="left")
    keep = f < F
    p, e, r, f, v, steps = (a[keep] for a in (pos("param", placed), pos("experiment", exps), pos("run", runs), f,
                                              sel["value"].to_numpy(), steps))
    lin = ((p * E + e) * R + r) * F + f
    order = np.lexsort((steps, lin))
    lin_s, steps_s = lin[order], steps[order]
    last = np.ones(len(lin_s), dtype=bool)
    last[:-1] = lin_s[1:] != lin_s[:-1]
    same = int(((lin_s[1:] == lin_s[:-1]) & (steps_s[1:] == steps_s[:-1])).sum())
    dense = np.full(P * E * R * F, np.nan)
    dense[lin_s[last]] = v[order][last]
    has = np.zeros(P * E * R * F, dtype=bool)
    has[lin_s[last]] = True
    return dense, has, same


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 200), seed=st.integers(0, 10 ** 6), split=st.integers(1, 50),
       layout=st.sampled_from(["any", "sorted", "tracer"]), periodic_rows=st.sampled_from([0, 10 ** 9]))
def test_reduce_matches_sorting_the_whole_table(monkeypatch, n, seed, split, layout, periodic_rows):
    from sitegen.figures import periodic

    monkeypatch.setattr(periodic, "MIN_ROWS", periodic_rows)
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, 9, n)
    frame = pd.DataFrame({"experiment": rng.choice(["a", "b"], n), "run": rng.choice(["0", "1", "2"], n),
                          "param": rng.choice(["w", "b"], n), "value": rng.normal(size=n),
                          "step": np.sort(steps) if layout == "sorted" else steps})
    if layout == "tracer":  # the same rows at every step (the periodic short cut), a few steps left out
        k = int(rng.integers(1, 7))
        frame = frame.iloc[np.tile(np.arange(min(k, n)), n // min(k, n) + 1)[:n]].reset_index(drop=True)
        frame["value"] = rng.normal(size=n)
        frame["step"] = np.cumsum(rng.integers(1, 3, n // min(k, n) + 1)).repeat(min(k, n))[:n]
    traced = to_traced(frame)
    whole = reduce.frame_batch(traced)
    parts = [reduce.Batch(e=whole.e[i:i + split], r=whole.r[i:i + split], p=whole.p[i:i + split],
                          value=whole.value[i:i + split], step=whole.step[i:i + split]) for i in range(0, n, split)]
    placed = [p for p in ("w", "b") if p in traced.params]
    all_steps = np.unique(traced.frame["step"].to_numpy())
    frame_steps = all_steps[np.unique(np.rint(np.linspace(0, len(all_steps) - 1, 4)).astype(int))]
    code = {name: i for i, name in enumerate(traced.params)}
    got = reduce.reduce(lambda: parts, reduce.Rows(), reduce.lut(len(traced.params), {code[p]: i for i, p in enumerate(placed)}),
                        reduce.lut(len(traced.experiments), None), reduce.lut(len(traced.runs), None),
                        (len(placed), len(traced.experiments), len(traced.runs)), frame_steps, all_steps, [])
    dense, has, same = old_dense(traced.frame, placed, traced.experiments, traced.runs, frame_steps)
    np.testing.assert_array_equal(got.dense, dense)
    np.testing.assert_array_equal(got.has, has)
    assert got.duplicates == same


@pytest.mark.parametrize("table", [
    pa.table({"config": [1, 2], "w": [0.1, 0.2]}),                                    # wide: pandas path
    pa.table({"run": [0], "param": ["w"], "value": ["x"]}),                           # text values
    pa.table({"run": [0, 1], "param": ["w", "w"], "value": [1.0, 2.0], "step": [0.5, 1.0]}),  # float steps
    pa.table({"run": [0], "param": pa.array([None], pa.string()), "value": [1.0]}).slice(0, 0),  # empty
])
def test_tables_the_columnar_reader_leaves_to_pandas(tmp_path, table):
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(columnar.Unsupported):
        columnar.read_traced(tmp_path / "t.parquet", "t.parquet", {})


def test_gzip_level_follows_the_animation_size(monkeypatch):
    """Level 9 up to LEVEL9_CODES codes (every bundled figure), 6 beyond, 1 while a run trains; the gzip
    header's XFL byte says which (2: slowest, 0: in between, 4: fastest)."""
    from sitegen.figures import encode

    frame = pd.DataFrame({"run": np.repeat(["0", "1"], 8), "param": np.tile(["w", "b"], 8),
                          "value": np.linspace(0, 1, 16), "step": np.tile(np.repeat(np.arange(4), 2), 2)})
    traced = to_traced(frame)
    opts = strips.StripOptions(frames=4, animate=True)
    small = strips.build(traced, TEMPLATE, opts).frames_blob
    assert small[8] == 2 and encode.level_for(encode.LEVEL9_CODES) == 9
    monkeypatch.setattr(encode, "LEVEL9_CODES", 1)
    big = strips.build(traced, TEMPLATE, opts).frames_blob
    assert big[8] == 0 and encode.decode(big)[0].tolist() == encode.decode(small)[0].tolist()
    assert encode.level_for(10, partial=True) == 1
