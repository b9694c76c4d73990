"""The silent_bug and ill_conditioned experiments, run at the tiny preset on the CPU: their outputs
follow the data contract and their claims hold (each check fails if the claim does not).

The GP experiments have their own file, tests/test_experiments_gp.py.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sitegen.expr import template_placeholders

pytest.importorskip("torch")

CONTRACT = ["experiment", "run", "step", "param", "value"]


def run_script(module, out, *extra):
    assert module.main(["--preset", "tiny", "--device", "cpu", "--out", str(out), *extra]) == 0
    name = module.__name__.rsplit(".", 1)[1]
    return json.loads((out / f"{name}.provenance.json").read_text())


def check_long_table(path):
    frame = pd.read_parquet(path)
    assert list(frame.columns[:5]) == CONTRACT
    assert frame["step"].dtype == np.int64
    assert frame["value"].dtype == np.float64
    assert frame["run"].dtype == np.int64
    assert np.isfinite(frame["value"]).all()
    assert not frame.duplicated(["experiment", "run", "step", "param"]).any()
    return frame


# ---------------------------------------------------------------- silent_bug

@pytest.fixture(scope="module")
def silent_bug(tmp_path_factory):
    from experiments import silent_bug

    out = tmp_path_factory.mktemp("silent_bug")
    provenance = run_script(silent_bug, out)
    return out, provenance


def test_silent_bug_writes_tables_template_and_provenance(silent_bug):
    out, provenance = silent_bug
    assert sorted(provenance["outputs"]) == ["silent_bug.expr", "silent_bug.parquet", "silent_bug_losses.parquet"]
    assert provenance["script"] == "experiments/silent_bug.py" and provenance["preset"] == "tiny"
    weights = check_long_table(out / "silent_bug.parquet")
    losses = check_long_table(out / "silent_bug_losses.parquet")
    assert set(weights["experiment"]) == set(losses["experiment"]) == {"correct", "missing activation"}
    assert set(losses["param"]) == {"classification loss", "regression loss", "total loss"}
    assert "loss" in weights.columns
    # every traced weight has a placeholder in the template, and nothing else does
    template = (out / "silent_bug.expr").read_text(encoding="utf-8")
    assert set(template_placeholders(template)) == set(weights["param"])
    # each file stays small enough to commit
    assert all((out / name).stat().st_size < 2_000_000 for name in provenance["outputs"])


def test_silent_bug_the_buggy_loss_plateaus_above_the_correct_one(silent_bug):
    out, provenance = silent_bug
    losses = pd.read_parquet(out / "silent_bug_losses.parquet")
    last_step = losses["step"].max()
    final = losses[losses["step"] == last_step].pivot_table(index=["experiment", "run"], columns="param",
                                                             values="value")
    for run in sorted(set(losses["run"])):
        buggy, correct = final.loc[("missing activation", run)], final.loc[("correct", run)]
        assert buggy["total loss"] > correct["total loss"] + 0.2
        # a linear model cannot separate XOR: its classification loss stays near ln 2
        assert buggy["classification loss"] == pytest.approx(math.log(2), abs=0.03)
        assert correct["classification loss"] < 0.4
    # a plateau: over the second half of training the buggy loss barely moves
    buggy = losses[(losses["experiment"] == "missing activation") & (losses["param"] == "total loss")]
    second_half = buggy[buggy["step"] >= last_step // 2].groupby("run")["value"]
    assert (second_half.max() - second_half.min()).max() < 0.01
    # while the regression part is learned as well by both
    assert final.xs("missing activation")["regression loss"].max() < 0.05
    results = provenance["results"]
    assert results["buggy_above_correct_every_run"] is True
    assert results["final_loss"]["missing activation"]["total"] > results["final_loss"]["correct"]["total"]


def test_silent_bug_live_streams_parts_while_training(tmp_path, capsys, monkeypatch):
    """With --live both tables stream into their .parts folders while training: after every part
    the tracer publishes (each run's end, and every half second) the folder's manifest counts every
    row recorded so far. Parts are written on a background thread, so each publish here waits for
    its part to land before training goes on. At the end the final tables replace the parts, and
    the first lines printed say where to watch."""
    from experiments import silent_bug
    from sitegen import trace
    from sitegen.live import part_files, parts_dir, preview_hint, read_run

    published: dict[str, list] = {}     # table -> (parts, rows) after each publish, during training
    streamed: dict[str, pd.DataFrame] = {}
    publish, write = trace.Tracer.publish, trace.Tracer.write

    def publish_and_wait(self):
        publish(self)
        recorded, deadline = len(self), time.monotonic() + 30
        while (run := read_run(parts_dir(self.live))) is None or run.rows < recorded:
            assert time.monotonic() < deadline, f"no part with the rows of {self.live.name} after 30 s"
            time.sleep(0.005)
        assert run.state == "running"
        published.setdefault(self.live.name, []).append((run.parts, run.rows))

    def write_after_looking(self, path, *args, **kwargs):
        streamed[Path(path).name] = pd.concat(pd.read_parquet(p) for p in part_files(parts_dir(path)))
        return write(self, path, *args, **kwargs)

    monkeypatch.setattr(trace.Tracer, "publish", publish_and_wait)
    monkeypatch.setattr(trace.Tracer, "write", write_after_looking)
    run_script(silent_bug, tmp_path, "--live")
    printed = capsys.readouterr().out.splitlines()
    for name in ("silent_bug.parquet", "silent_bug_losses.parquet"):
        assert preview_hint(tmp_path / name) in printed
        # a part at least at the end of each of the 4 runs (tiny: 2 variants x 2 seeds)
        parts = [n for n, _ in published[name]]
        assert len(parts) >= 4 and parts == sorted(set(parts))
        def plain(frame):   # parts each have their own categories; compare the text
            return frame.astype({c: str for c in frame.columns if frame[c].dtype.name in ("category", "object")})

        # everything recorded was streamed before the final write, row for row
        pd.testing.assert_frame_equal(plain(streamed[name].reset_index(drop=True)),
                                      plain(pd.read_parquet(tmp_path / name)), check_exact=True)
        assert not parts_dir(tmp_path / name).exists()


# ---------------------------------------------------------------- ill_conditioned

@pytest.fixture(scope="module")
def ill_conditioned(tmp_path_factory):
    from experiments import ill_conditioned

    out = tmp_path_factory.mktemp("ill_conditioned")
    provenance = run_script(ill_conditioned, out)
    return out, provenance


def test_ill_conditioned_writes_tables_template_and_provenance(ill_conditioned):
    out, provenance = ill_conditioned
    assert sorted(provenance["outputs"]) == ["ill_conditioned.expr", "ill_conditioned.parquet",
                                             "ill_conditioned_losses.parquet"]
    losses = check_long_table(out / "ill_conditioned_losses.parquet")
    weights = check_long_table(out / "ill_conditioned.parquet")
    assert set(losses["param"]) == {"loss"}
    assert set(losses["experiment"]) == {"gradient descent", "Adam", "Levenberg-Marquardt", "Adam, beta2 = 1.0"}
    template = (out / "ill_conditioned.expr").read_text(encoding="utf-8")
    assert set(template_placeholders(template)) == set(weights["param"])
    assert provenance["results"]["condition_number"] == pytest.approx(1e5, rel=1e-6)


def test_ill_conditioned_levenberg_marquardt_reaches_a_lower_loss_than_gradient_descent(ill_conditioned):
    out, provenance = ill_conditioned
    losses = pd.read_parquet(out / "ill_conditioned_losses.parquet")
    final = losses.sort_values("step").groupby(["experiment", "run"])["value"].last()
    for run in sorted(set(losses["run"])):
        # not just lower: orders of magnitude lower, where gradient descent crawls
        assert final[("Levenberg-Marquardt", run)] < final[("gradient descent", run)] / 1000
    assert provenance["results"]["lm_below_gd_every_run"] is True
    gd = losses[losses["experiment"] == "gradient descent"].sort_values("step")
    assert (gd.groupby("run")["value"].first() > 100 * gd.groupby("run")["value"].last()).all()


def test_ill_conditioned_adam_with_beta2_rounded_to_one_fails_at_the_first_step(ill_conditioned):
    out, provenance = ill_conditioned
    results = provenance["results"]
    assert results["beta2_rounded"] == 1.0
    assert set(results["first_nonfinite_step"]["Adam, beta2 = 1.0"]) == {1}
    assert set(results["first_nonfinite_step"]["Adam"]) == {None}
    losses = pd.read_parquet(out / "ill_conditioned_losses.parquet")
    assert set(losses[losses["experiment"] == "Adam, beta2 = 1.0"]["step"]) == {0}
    adam = losses[losses["experiment"] == "Adam"].sort_values("step").groupby("run")["value"]
    assert (adam.last() < adam.first() / 100).all()
