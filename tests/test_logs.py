"""sitegen.logs: logs written by the real writers read back as the values they logged."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitegen import logs
from sitegen.logs import jsonl, lightning_csv
from sitegen.logs.common import LogError, Rows

LOSS = {("lr-0.1", 0): [1.0 / (s + 1) for s in range(0, 40, 4)], ("lr-0.1", 1): [2.0 / (s + 1) for s in range(0, 40, 4)],
        ("lr-0.01", 0): [0.5 + s for s in range(0, 40, 4)]}


def write_tensorboard(root: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    for (exp, seed), losses in LOSS.items():
        with SummaryWriter(str(root / exp / f"seed-{seed}")) as w:
            for i, loss in enumerate(losses):
                w.add_scalar("train/loss", loss, 4 * i)
                w.add_scalar("lr", 0.1 * 0.9 ** i, 4 * i)
            w.add_text("note", "text is not a scalar", 0)


def chart_series(html: str) -> dict[str, tuple[list, list]]:
    start = html.index('class="sg-data">') + len('class="sg-data">')
    data = json.loads(html[start:html.index("</script>", start)])
    return {s["name"]: (s["x"], s["y"]) for s in data["series"]}


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")
            if p.is_file() and skip not in p.parents}


@pytest.fixture(scope="module")
def tensorboard_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tb") / "runs"
    write_tensorboard(root)
    return root


def test_tensorboard_folder_reads_every_run_and_tag(tensorboard_runs):
    df = logs.read(tensorboard_runs)
    assert list(df.columns[:5]) == ["experiment", "run", "step", "param", "value"] and "wall_time" in df
    assert set(df["param"].astype(str)) == {"train/loss", "lr"}   # the text summary is not a scalar
    for (exp, seed), losses in LOSS.items():
        rows = df[(df.experiment == exp) & (df.run == f"seed-{seed}") & (df.param == "train/loss")]
        assert rows.step.tolist() == list(range(0, 40, 4))
        np.testing.assert_array_equal(rows.value.to_numpy(), np.float32(losses))  # simple_value is float32
    patterned = logs.read(tensorboard_runs, experiment="lr={0}", run="{-1}")
    assert set(patterned.experiment.astype(str)) == {"lr=lr-0.1", "lr=lr-0.01"}


def test_tensor_scalars_as_tf2_and_flax_write_them(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "run")) as w:   # new_style: a scalar tensor of the scalars plugin
        for step in range(5):
            w.add_scalar("loss", 0.5 ** step, step, new_style=True)
    df = logs.read(tmp_path)
    assert df.step.tolist() == list(range(5))
    np.testing.assert_allclose(df.value, [0.5 ** s for s in range(5)])


def test_chart_draws_a_tag_of_a_tensorboard_folder_with_the_logged_values(site, tensorboard_runs):
    import shutil

    shutil.copytree(tensorboard_runs, site.root / "runs")
    site.post("tb.md", """
        ---
        title: Loss
        date: 2024-01-02
        ---

        ```{chart} runs
        :y: train/loss
        :where: experiment=lr-0.1
        :series: run
        :band: none
        ```
        """)
    before = snapshot(site.root, site.out)
    site.build()
    assert snapshot(site.root, site.out) == before   # nothing written outside the output folder
    series = chart_series(site.page("tb/index.html"))
    for seed in (0, 1):
        x, y = series[f"seed-{seed}"]
        assert x == list(range(0, 40, 4))
        np.testing.assert_allclose(y, LOSS[("lr-0.1", seed)], rtol=1e-6)


def test_bad_logs_are_path_message_errors(site, tensorboard_runs, tmp_path):
    import shutil

    runs = site.root / "runs"
    shutil.copytree(tensorboard_runs, runs)
    event = next((runs / "lr-0.1" / "seed-0").glob("events.out.tfevents.*"))
    size = event.stat().st_size
    with open(event, "r+b") as f:
        f.truncate(size - 7)
    (site.root / "empty" / "run").mkdir(parents=True)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(site.root / "empty" / "run")) as w:
        w.add_text("note", "no scalars here", 0)
    shutil.copytree(tensorboard_runs, site.root / "good")
    site.post("bad.md", """
        ---
        title: Bad
        date: 2024-01-02
        ---

        ```{chart} runs
        :y: train/loss
        ```

        ```{chart} empty
        :y: loss
        ```

        ```{chart} good
        :y: train/los
        ```
        """)
    errors = site.build_errors()
    assert any(e.startswith("content/bad.md:") and "runs/lr-0.1/seed-0/events.out.tfevents" in e
               and "truncated or damaged event file" in e and f"of {size - 7:,}" in e for e in errors), errors
    assert any("empty: no scalars found in this TensorBoard log" in e for e in errors), errors
    assert any(":y: no column 'train/los' and no param (tag) of that name; did you mean 'train/loss'?" in e for e in errors), errors
    assert not any("Traceback" in e for e in errors)


def test_mlflow_store_written_by_its_client(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "mlruns"
    client = MlflowClient(tracking_uri=store.as_uri())
    exp = client.create_experiment("sweep")
    for seed in range(2):
        run = client.create_run(exp, run_name=f"seed-{seed}")
        for step in range(6):
            client.log_metric(run.info.run_id, "val_loss", 1.0 / (step + 1) + seed, step=step, timestamp=1000 * step)
            client.log_metric(run.info.run_id, "acc", 0.1 * step, step=step)
        client.set_terminated(run.info.run_id)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    for path in (store, store / exp):
        df = logs.read(path)
        assert logs.detect(path) == "mlflow"
        got = df[(df.run == "seed-1") & (df.param == "val_loss")]
        assert got.experiment.astype(str).unique().tolist() == ["sweep"]
        assert got.step.tolist() == list(range(6))
        np.testing.assert_allclose(got.value, [1.0 / (s + 1) + 1 for s in range(6)])
        np.testing.assert_allclose(got.wall_time, range(6))
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_a_missing_reader_package_names_the_extra(tmp_path, monkeypatch):
    import sys

    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorboard", None)   # what an environment without it imports
    with pytest.raises(LogError) as info:
        logs.read(tmp_path, shown="runs")
    assert str(info.value) == ("runs: reading TensorBoard event files needs the 'tensorboard' package, which is not "
                               "installed; install it with: pip install 'sitegen[tensorboard]'")


def test_a_folder_without_logs_says_what_is_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LogError, match=r"^logs: no logs found in this folder or below it: sitegen reads"):
        logs.read(tmp_path, shown="logs")


# ---------------------------------------------------------------- JSON Lines
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8) \
    .filter(lambda s: s not in ("step", "experiment", "run", "param", "value") and "/" not in s)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(-10**12, 10**12), st.dictionaries(names, finite, max_size=4)), max_size=12),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_jsonl_wide_lines_read_back_exactly(records, newline, blank_lines):
    lines = [json.dumps({"step": step, **values}) for step, values in records]
    text = (newline + (newline if blank_lines else "")).join(lines) + newline
    got = jsonl.parse(text.encode(), "log.jsonl")
    want = [(None, None, step, k, v) for step, values in records for k, v in values.items()]
    assert got == want


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), names, finite), min_size=1, max_size=10), st.integers(0, 5))
def test_jsonl_long_lines_and_a_bad_line_reports_its_number(rows, bad_at):
    lines = [json.dumps({"step": s, "param": p, "value": v}) for s, p, v in rows]
    assert jsonl.parse("\n".join(lines).encode(), "x.jsonl") == [(None, None, s, p, v) for s, p, v in rows]
    bad_at = min(bad_at, len(lines))
    lines.insert(bad_at, '{"step": 1, "loss": ')
    with pytest.raises(LogError) as info:
        jsonl.parse("\n".join(lines).encode(), "x.jsonl")
    assert str(info.value).startswith(f"x.jsonl:{bad_at + 1}: not valid JSON")


def test_jsonl_folder_labels_and_errors(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "seed-0.jsonl").write_text('{"step": 0, "train": {"loss": 1.5}, "tag": "x"}\n'
                                                    '{"step": 1, "train": {"loss": 0.5}}\n')
    df = logs.read(tmp_path)
    assert df[["experiment", "run", "step", "param", "value"]].astype(str).values.tolist() == [
        ["sweep", "seed-0", "0", "train/loss", "1.5"], ["sweep", "seed-0", "1", "train/loss", "0.5"]]
    (tmp_path / "sweep" / "seed-1.jsonl").write_text('{"step": 0.5, "loss": 1}\n[1, 2]\n{"step": 2, "loss": 1}\n')
    with pytest.raises(LogError) as info:
        logs.read(tmp_path, shown="logs")
    assert str(info.value) == ("logs/sweep/seed-1.jsonl:1: 'step' is 0.5, not a whole number "
                               "(and 1 more bad line(s): 2)")


# ---------------------------------------------------------------- Lightning CSV (the format CSVLogger writes)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 100),
                          st.dictionaries(st.sampled_from(["train_loss", "val_loss", "lr-Adam", "acc"]), finite,
                                          min_size=1)), min_size=1, max_size=15))
def test_lightning_metrics_csv_reads_back_every_logged_cell(tmp_path, rows):
    frame = pd.DataFrame([{"epoch": e, "step": s, **m} for s, e, m in rows])
    folder = tmp_path / "lightning_logs" / "version_0"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "metrics.csv", index=False)
    collected = Rows()
    lightning_csv.read_metrics(folder / "metrics.csv", "metrics.csv", collected, "e", "r")
    got = collected.frame("x", "log")
    want = sorted((m, s, float(v), float(e)) for s, e, ms in rows for m, v in ms.items())
    have = sorted(zip(got.param.astype(str), got.step, got.value, got.epoch))
    assert len(have) == len(want)
    for (m1, s1, v1, e1), (m2, s2, v2, e2) in zip(have, want):
        assert (m1, s1, e1) == (m2, s2, e2) and math.isclose(v1, v2, rel_tol=1e-15, abs_tol=0)


def test_lightning_csv_without_a_step_column_is_an_error(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(LogError, match=r"^logs/metrics.csv: no 'step' column \(have: epoch, loss\)"):
        logs.read(tmp_path, shown="logs")


# ---------------------------------------------------------------- sitegen data import
def test_data_import_writes_the_table_and_provenance_and_notices_a_changed_log(tmp_path, monkeypatch, capsys):
    from sitegen import cli

    monkeypatch.chdir(tmp_path)
    log = tmp_path / "logs" / "sweep" / "seed-0.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": 1.0}\n')
    assert cli.main(["data", "import", "logs", "losses"]) == 0
    table = pd.read_parquet(tmp_path / "data" / "losses.parquet")
    assert table[["experiment", "run", "step", "param", "value"]].astype(str).values.tolist() == [
        ["sweep", "seed-0", "0", "loss", "2.0"], ["sweep", "seed-0", "1", "loss", "1.0"]]
    record = json.loads((tmp_path / "data" / "losses.provenance.json").read_text())
    st = log.stat()
    assert record["import"]["source"] == "logs" and record["import"]["reader"] == "jsonl"
    assert record["import"]["files"] == {"logs/sweep/seed-0.jsonl": [st.st_mtime_ns, st.st_size]}
    assert record["import"]["reader_version"].startswith("sitegen.logs.jsonl (sitegen ")
    assert record["outputs"] == ["losses.parquet"] and record["command"] == "sitegen data import logs losses"
    capsys.readouterr()
    assert cli.main(["data"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("losses: imported from logs by sitegen.logs.jsonl") and "STALE" not in listing
    with open(log, "a") as f:
        f.write('{"step": 2, "loss": 0.5}\n')
    assert cli.main(["data"]) == 0
    assert ("STALE: logs changed since it was imported (1 changed file(s), e.g. logs/sweep/seed-0.jsonl); "
            "refresh with: sitegen data import logs losses") in capsys.readouterr().out
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "p.md").write_text("---\ntitle: P\ndate: 2024-01-01\n---\n\n```{chart} data/losses.parquet\n"
                                                ":y: loss\n```\n")
    from sitegen.build import Builder

    result = Builder(tmp_path, use_cache=False).build()
    assert any(w.path == "data/losses.parquet" and w.message.startswith("logs changed since it was imported")
               and w.message.endswith("sitegen data import logs losses") for w in result.warnings), result.warnings


def test_data_import_of_a_bad_log_writes_nothing(tmp_path, monkeypatch, capsys):
    from sitegen import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"step": 0, "loss": 1}\nnot json\n')
    assert cli.main(["data", "import", "bad.jsonl", "bad"]) == 1
    assert capsys.readouterr().err.startswith("bad.jsonl:2: not valid JSON")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    assert cli.main(["data", "import", "bad.jsonl"]) == 2


def test_reading_logs_imports_no_torch_jax_or_reader_it_does_not_need(tmp_path):
    import subprocess
    import sys

    (tmp_path / "a.jsonl").write_text('{"step": 0, "loss": 1}\n')
    code = ("import sys\nfrom sitegen import logs\nlogs.read(sys.argv[1])\n"
            "bad = [m for m in ('torch', 'jax', 'tensorboard', 'mlflow', 'lightning', 'transformers') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
