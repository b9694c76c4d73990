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
    run_pool = draw(st.sampled_from([[0, 1, 2, 3], ["s1", "s0"], [3, 1]]))
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables(), opts=options(), batch=st.sampled_from([1, 3, 7, 1 << 18]), stream=st.booleans())
def test_columnar_figure_is_the_pandas_figure(tmp_path, monkeypatch, table, opts, batch, stream):
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=max(1, batch * 2))
    cold = to_traced(Catalog._to_pandas(pq.read_table(path)), {}, "t.parquet")
    monkeypatch.setattr(columnar, "BATCH_ROWS", batch)
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


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 200), seed=st.integers(0, 10 ** 6), split=st.integers(1, 50), sorted_steps=st.booleans())
def test_reduce_matches_sorting_the_whole_table(n, seed, split, sorted_steps):
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, 9, n)
    frame = pd.DataFrame({"experiment": rng.choice(["a", "b"], n), "run": rng.choice(["0", "1", "2"], n),
                          "param": rng.choice(["w", "b"], n), "value": rng.normal(size=n),
                          "step": np.sort(steps) if sorted_steps else steps})
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
