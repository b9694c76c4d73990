"""The data catalog: reading once, schema checks with messages that say what to fix, long and wide shapes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sitegen.context import PageContext
from sitegen.data import Catalog, to_traced
from sitegen.errors import SiteError
from sitegen.figures.reduce import batches_of


def make_ctx(root: Path) -> PageContext:
    (root / "content").mkdir(exist_ok=True)
    return PageContext(path="content/post.md", root=root, source_dir=root / "content")


def long_table(n_exp=2, n_run=3, steps=(0, 10, 20), params=("a", "b")) -> pd.DataFrame:
    rows = []
    for e in [16, 128][:n_exp]:
        for r in range(n_run):
            for s in steps:
                for k, p in enumerate(params):
                    rows.append((e, r, s, p, float(e + r + s / 100 + k)))
    return pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"])


@pytest.fixture
def site(tmp_path):
    (tmp_path / "data").mkdir()
    return tmp_path


def test_reads_each_file_once_until_it_changes(site):
    path = site / "data" / "t.parquet"
    long_table().to_parquet(path)
    cat = Catalog(site)
    ctx = make_ctx(site)
    first = cat.table("data/t.parquet", 3, ctx)
    again = cat.table("data/t.parquet", 9, ctx)
    assert cat.reads == 1 and again is first
    assert str(path.resolve()) in ctx.deps  # the build graph learns the post read this file
    long_table(params=("a", "b", "c")).to_parquet(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    changed = cat.table("data/t.parquet", 3, ctx)
    assert cat.reads == 2 and set(changed["param"]) == {"a", "b", "c"}


def test_shared_catalog_per_root(site):
    assert Catalog.for_root(site) is Catalog.for_root(str(site))


def test_missing_run_column_names_file_directive_and_columns(site):
    long_table().drop(columns=["run"]).to_parquet(site / "data" / "t.parquet")
    with pytest.raises(SiteError) as err:
        Catalog(site).traced("data/t.parquet", line=12, ctx=make_ctx(site))
    p = err.value.problem
    assert (p.path, p.line) == ("content/post.md", 12)
    assert "data/t.parquet: column 'run' missing (have: experiment, step, param, value)" in p.message


def test_missing_file_suggests_close_names(site):
    long_table().to_parquet(site / "data" / "training.parquet")
    with pytest.raises(SiteError) as err:
        Catalog(site).table("data/trainig.parquet", 4, make_ctx(site))
    assert "data/trainig.parquet: no such file" in err.value.problem.message
    assert "data/training.parquet" in err.value.problem.message


def test_unreadable_parquet_is_a_message_not_a_traceback(site):
    (site / "data" / "bad.parquet").write_bytes(b"PAR1 this is not really parquet \x00\x01")
    with pytest.raises(SiteError) as err:
        Catalog(site).table("data/bad.parquet", 2, make_ctx(site))
    assert "cannot read this parquet file" in err.value.problem.message


@pytest.mark.parametrize("text", ["", "experiment,run,param,value\n"])
def test_empty_csv(site, text):
    (site / "data" / "e.csv").write_text(text)
    with pytest.raises(SiteError) as err:
        Catalog(site).table("data/e.csv", 2, make_ctx(site))
    assert "empty" in err.value.problem.message


def test_text_in_value_column_names_the_row(site):
    df = long_table()
    df["value"] = df["value"].astype(object)
    df.loc[4, "value"] = "oops"
    df.to_csv(site / "data" / "t.csv", index=False)
    with pytest.raises(SiteError) as err:
        Catalog(site).traced("data/t.csv", line=1, ctx=make_ctx(site))
    assert "column 'value' must hold numbers, but row 5 holds 'oops'" in err.value.problem.message


def test_fractional_steps_rejected():
    df = long_table()
    df["step"] = df["step"] + 0.5
    with pytest.raises(ValueError, match="integer training steps"):
        to_traced(df)


def test_nan_and_inf_values_are_kept_and_noted(site):
    df = long_table()
    df.loc[0, "value"] = np.nan
    df.loc[1, "value"] = np.inf
    df.to_parquet(site / "data" / "t.parquet")
    ctx = make_ctx(site)
    traced = Catalog(site).traced("data/t.parquet", line=5, ctx=ctx)
    values = np.concatenate([b.value for b in batches_of(traced)()])  # read without pandas: no frame
    assert np.isnan(values[0]) and np.isinf(values[1])
    assert any("2 value(s) are NaN or infinite" in p.message and p.level == "warning" for p in ctx.problems)


def test_order_of_rows_numeric_ascending_strings_as_written():
    df = long_table()
    df["experiment"] = df["experiment"].map({16: 1024, 128: 64})
    t = to_traced(df)
    assert t.experiments == ["64", "1024"]  # numeric order, not string order
    df["experiment"] = df["experiment"].map({1024: "zeta", 64: "alpha"})
    assert to_traced(df).experiments == ["zeta", "alpha"]  # first appearance


def test_column_mapping():
    df = long_table().rename(columns={"run": "seed", "experiment": "n_train", "param": "name", "value": "v"})
    t = to_traced(df, {"run": "seed", "experiment": "n_train", "param": "name", "value": "v"})
    assert list(t.frame.columns[:5]) == ["experiment", "run", "param", "value", "step"]
    assert t.runs == ["0", "1", "2"] and t.experiments == ["16", "128"] and t.params == ["a", "b"]


def test_mapping_to_a_missing_column_suggests():
    with pytest.raises(ValueError, match="column 'sed' .*mapped to run.* did you mean 'seed'"):
        to_traced(long_table().rename(columns={"run": "seed"}), {"run": "sed"})
    with pytest.raises(ValueError, match="unknown column role 'rnu'"):
        to_traced(long_table(), {"rnu": "run"})


def test_wide_rows2prose_shape_becomes_long():
    steps, runs = 3, 4
    df = pd.DataFrame({
        "i_config": np.repeat([0, 1], steps * runs),
        "i_timestep": np.tile(np.repeat(np.arange(steps), runs), 2),
        "$S000": np.arange(2 * steps * runs, dtype=float),
        "$S001": -np.arange(2 * steps * runs, dtype=float),
    })
    t = to_traced(df)
    assert t.shape == "wide" and t.has_step
    assert t.params == ["$S000", "$S001"]
    assert t.experiments == ["0", "1"] and t.runs == ["0", "1", "2", "3"]
    assert len(t.frame) == 2 * len(df)
    row = t.frame[(t.frame.param == "$S000") & (t.frame.experiment == "1") & (t.frame.step == 2)
                  & (t.frame.run == "3")]
    assert row["value"].item() == df["$S000"].iloc[-1]


def test_wide_shape_without_index_columns_is_one_row_of_runs():
    t = to_traced(pd.DataFrame({"alpha": [1.0, 2.0, 3.0], "beta": [0.1, 0.2, 0.3]}))
    assert t.experiments == ["all"] and t.runs == ["0", "1", "2"] and not t.has_step


def test_table_without_numbers_or_param_column():
    with pytest.raises(ValueError, match="column 'param' missing"):
        to_traced(pd.DataFrame({"name": ["a", "b"]}))


def test_huge_table_is_noted(site, monkeypatch):
    import sitegen.traced as traced

    monkeypatch.setattr(traced, "HUGE_ROWS", 10)
    assert any("huge table" in n for n in to_traced(long_table()).notes)


def test_json_sidecar_cached_and_errors(site):
    (site / "data" / "x.provenance.json").write_text('{"results": {"loss": 0.5}}')
    (site / "data" / "broken.json").write_text("{nope")
    cat = Catalog(site)
    assert cat.json("data/x.provenance.json")["results"]["loss"] == 0.5
    cat.json("data/x.provenance.json")
    assert cat.reads == 1
    with pytest.raises(SiteError, match="not valid JSON"):
        cat.json("data/broken.json", 3, make_ctx(site))
