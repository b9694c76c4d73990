"""The tracer records what a training loop hands it as the long-format table the site reads."""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sitegen.trace import live_parts
from sitegen.live import part_files, read_run
from sitegen.trace import Tracer, element_names

ROOT = Path(__file__).resolve().parent.parent

torch = pytest.importorskip("torch")


def rows(frame, **where):
    for column, value in where.items():
        frame = frame[frame[column] == value]
    return frame


def test_element_names_number_or_label_each_scalar():
    assert element_names("noise", ()) == ["noise"]
    assert element_names("w", (3,)) == ["w[0]", "w[1]", "w[2]"]
    assert element_names("W", (2, 2)) == ["W[0,0]", "W[0,1]", "W[1,0]", "W[1,1]"]
    assert element_names("ls", (2,), ["log_lr", "depth"]) == ["ls[log_lr]", "ls[depth]"]
    assert element_names("W", (1, 2), (["y"], ["x1", "x2"])) == ["W[y,x1]", "W[y,x2]"]
    with pytest.raises(ValueError, match="one label per element"):
        element_names("ls", (3,), ["a", "b"])


def test_record_python_numpy_and_torch_values_in_long_format():
    tr = Tracer()
    for step in range(3):
        tr.record(step, {"b": 0.5 * step, "w": np.array([1.0, 2.0]) * step,
                         "ls": torch.tensor([3.0, 4.0]) * step},
                  experiment="n=20", run=7, labels={"ls": ["log_lr", "depth"]})
    frame = tr.frame()
    assert list(frame.columns) == ["experiment", "run", "step", "param", "value"]
    assert len(frame) == 3 * 5
    assert frame["step"].dtype == np.int64 and frame["value"].dtype == np.float64
    assert set(frame["param"]) == {"b", "w[0]", "w[1]", "ls[log_lr]", "ls[depth]"}
    assert rows(frame, step=2, param="ls[depth]")["value"].item() == 8.0
    assert rows(frame, step=2, param="b")["value"].item() == 1.0
    assert set(frame["experiment"]) == {"n=20"} and set(frame["run"]) == {7}


def test_recorded_values_are_snapshots_not_views_of_the_parameters():
    w = torch.nn.Parameter(torch.zeros(3))
    tr = Tracer(chunk_steps=100)
    for step in range(4):
        tr.record(step, {"w": w}, experiment="a", run=0)
        with torch.no_grad():
            w.add_(1.0)       # what an optimizer does in place
    frame = tr.frame()
    assert rows(frame, param="w[1]")["value"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_record_module_names_parameters_and_records_constrained_values():
    model = torch.nn.Sequential()
    model.add_module("hidden", torch.nn.Linear(2, 3))
    model.register_parameter("raw_noise", torch.nn.Parameter(torch.tensor(-1.0)))
    tr = Tracer()
    tr.record_module(0, model, experiment="e", run=1,
                     transforms={"raw_noise": ("noise", torch.nn.functional.softplus)},
                     labels={"hidden.bias": ["h0", "h1", "h2"]})
    frame = tr.frame()
    params = set(frame["param"])
    assert "hidden.weight[2,1]" in params and "hidden.bias[h1]" in params
    assert "noise" in params and "raw_noise" not in params
    assert rows(frame, param="noise")["value"].item() == pytest.approx(math.log1p(math.exp(-1.0)))
    assert rows(frame, param="hidden.weight[2,1]")["value"].item() == pytest.approx(
        model.hidden.weight[2, 1].item())


def test_transform_key_may_name_only_the_last_part():
    class Likelihood(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.raw_noise = torch.nn.Parameter(torch.tensor([0.0, 1.0]))

    model = torch.nn.Module()
    model.likelihood = Likelihood()
    tr = Tracer()
    tr.record_module(0, model, transforms={"raw_noise": ("noise", torch.exp)})
    assert set(tr.frame()["param"]) == {"likelihood.noise[0]", "likelihood.noise[1]"}
    assert rows(tr.frame(), param="likelihood.noise[1]")["value"].item() == pytest.approx(math.e)


def test_record_batch_expands_b_models_with_their_experiments_runs_and_extras():
    tr = Tracer()
    values = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    tr.record_batch(5, ["a", "b", "c"], values, experiment=[10, 10, 20, 20], run=[0, 1, 0, 1],
                    extra={"loss": torch.tensor([0.1, 0.2, 0.3, 0.4])})
    frame = tr.frame()
    assert len(frame) == 12
    one = rows(frame, experiment=20, run=1, param="b")
    assert one["value"].item() == 10.0 and one["loss"].item() == pytest.approx(0.4)
    assert set(frame["step"]) == {5}
    assert frame["experiment"].dtype == np.int64
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        tr.record_batch(6, ["a", "b", "c"], torch.zeros(4, 2))
    with pytest.raises(ValueError, match="run has 3 entries for 4 models"):
        tr.record_batch(6, ["a", "b", "c"], values, run=[0, 1, 2])


def test_record_batch_keeps_each_step_across_chunks_even_when_updated_in_place():
    params = torch.zeros(3, 2)
    tr = Tracer(chunk_steps=4)
    for step in range(10):
        tr.record_batch(step, ["a", "b"], params, experiment="e", run=[0, 1, 2],
                        extra={"loss": params[:, 0] * 10})
        params += 1.0        # in place, as an optimizer would
    tr.record_batch(10, ["a", "b"], params.to(torch.bfloat16), experiment="e", run=[0, 1, 2])
    frame = tr.frame()
    assert len(frame) == 11 * 3 * 2
    b = rows(frame, run=2, param="b").sort_values("step")
    assert b["value"].tolist() == [float(s) for s in range(11)]
    assert b["loss"].tolist()[:10] == [10.0 * s for s in range(10)]
    assert math.isnan(b["loss"].tolist()[10])


def test_record_batch_takes_the_parameter_tensors_as_they_are():
    W = torch.arange(12.0).reshape(2, 3, 2)            # 2 models, each a 3x2 matrix
    b = torch.tensor([[10.0], [20.0]])
    names = element_names("W", (2, 3)) + ["b"]           # stored transposed: W[j, i]
    tr = Tracer()
    tr.record_batch(0, names, [W.transpose(1, 2), b], run=[0, 1])
    tr.record_batch(1, names, [W.transpose(1, 2).numpy(), b.numpy()], run=[0, 1])
    frame = tr.frame()
    for step in (0, 1):
        model1 = rows(frame, run=1, step=step).set_index("param")["value"]
        assert model1["W[1,2]"] == W[1, 2, 1].item() and model1["b"] == 20.0
    with pytest.raises(ValueError, match=r"8 values per model\), got \(2, 3, 2\) \+ \(2, 1\)"):
        tr.record_batch(2, names + ["extra"], [W, b])


def test_extra_columns_repeat_on_each_row_and_are_missing_elsewhere():
    tr = Tracer()
    tr.record(0, {"w": torch.ones(2)}, experiment="a", run=0, extra={"loss": torch.tensor(0.25)})
    tr.record(0, {"w": torch.ones(2)}, experiment="b", run=0)
    frame = tr.frame()
    assert rows(frame, experiment="a")["loss"].tolist() == [0.25, 0.25]
    assert rows(frame, experiment="b")["loss"].isna().all()


def test_record_pytree_uses_dotted_paths_and_transforms():
    jnp = pytest.importorskip("jax.numpy")
    params = {"kernel": {"raw_lengthscale": jnp.zeros(2)}, "layers": [{"w": jnp.ones(())}]}
    tr = Tracer()
    tr.record_pytree(3, params, experiment="x", run=0,
                     transforms={"raw_lengthscale": ("lengthscale", jnp.exp)},
                     labels={"kernel.lengthscale": ["log_lr", "depth"]})
    frame = tr.frame()
    assert set(frame["param"]) == {"kernel.lengthscale[log_lr]", "kernel.lengthscale[depth]", "layers.0.w"}
    assert rows(frame, param="kernel.lengthscale[depth]")["value"].item() == 1.0


def test_write_is_parquet_with_the_data_contract_columns(tmp_path):
    tr = Tracer()
    for step in range(3):
        tr.record(step, {"w": float(step)}, experiment="correct", run=2)
    path = tr.write(tmp_path / "t.parquet")
    frame = pd.read_parquet(path)
    assert frame.to_dict("list") == {"experiment": ["correct"] * 3, "run": [2] * 3, "step": [0, 1, 2],
                                     "param": ["w"] * 3, "value": [0.0, 1.0, 2.0]}


def test_mixing_torch_and_jax_in_one_record_is_refused():
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match="two calls"):
        Tracer().record(0, {"a": torch.zeros(1), "b": jnp.zeros(1)})


def test_a_table_without_experiments_or_runs_reads_back_with_missing_labels(tmp_path):
    tr = Tracer()
    tr.record(0, {"w": 1.0})
    tr.record(0, {"w": 2.0}, experiment="named", run="first")
    frame = pd.read_parquet(tr.write(tmp_path / "t.parquet"))
    assert frame["experiment"].isna().tolist() == [True, False]
    assert frame["run"].tolist()[1] == "first" and frame["value"].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------- streaming while training (live=)

def parts_of(table: Path) -> list[pd.DataFrame]:
    return [pd.read_parquet(p) for p in part_files(table.with_suffix(".parts"))]


def manifest(table: Path) -> dict:
    return json.loads((table.with_suffix(".parts") / "_run.json").read_text())


def sorted_rows(frame: pd.DataFrame) -> list[tuple]:
    key = ["experiment", "run", "step", "param"]
    frame = frame.astype({k: str for k in key})
    return sorted(frame[key + ["value"]].itertuples(index=False, name=None))


def test_parts_come_every_live_steps_and_on_publish_and_add_up_to_the_table(tmp_path):
    table = tmp_path / "run.parquet"
    tr = Tracer(chunk_steps=4, live=table, live_steps=3, live_seconds=3600)
    params = torch.zeros(3, 2)
    for step in range(10):
        tr.record_batch(step, ["a", "b"], params, experiment="e", run=[0, 1, 2], extra={"loss": params[:, 0]})
        params += 1.0
    tr._live.drain()
    # a part is written when a new step begins: at steps 3, 6 and 9, each with the 3 steps before
    assert [sorted(set(p["step"])) for p in parts_of(table)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    tr.publish()
    tr._live.drain()
    parts = parts_of(table)
    assert sorted(set(parts[-1]["step"])) == [9]
    assert sorted_rows(pd.concat(parts)) == sorted_rows(tr.frame())
    assert list(parts[0].columns) == list(tr.frame().columns) == ["experiment", "run", "step", "param",
                                                                   "value", "loss"]
    assert isinstance(parts[0]["param"].dtype, pd.CategoricalDtype)   # text stays dictionary-encoded
    tr.publish()   # nothing new: no part
    tr._live.drain()
    assert len(parts_of(table)) == 4
    tr.close()


def test_a_part_holds_whole_steps_of_many_records(tmp_path):
    table = tmp_path / "run.parquet"
    tr = Tracer(chunk_steps=3, live=table, live_steps=2, live_seconds=3600)
    for step in range(7):
        for run in range(4):   # one record() per model: a step is 4 calls
            tr.record(step, {"w": np.arange(2.0) * step, "t": torch.tensor(float(run))}, experiment="x", run=run)
    tr.close()
    parts = parts_of(table)
    assert len(parts) == 4   # steps 0-1, 2-3, 4-5, and 6 when closed
    seen = set()
    for part in parts:
        steps = set(part["step"])
        assert not steps & seen
        seen |= steps
        assert part.groupby("step").size().eq(4 * 3).all()   # every model's every parameter
    assert seen == set(range(7))
    assert sorted_rows(pd.concat(parts)) == sorted_rows(tr.frame())


def test_the_manifest_says_a_run_started_before_its_first_rows_and_counts_its_parts(tmp_path):
    table = tmp_path / "gp_trace.parquet"
    before = time.time()
    tr = Tracer(live=table, live_steps=2)
    first = manifest(table)
    assert first == {"format": 1, "table": "gp_trace.parquet", "pid": os.getpid(), "host": socket.gethostname(),
                     "started": first["started"], "updated": first["updated"], "parts": 0, "rows": 0,
                     "last_step": None, "state": "running"}
    assert before <= first["started"] <= first["updated"] <= time.time()
    assert read_run(table.with_suffix(".parts")).state == "running"
    for step in range(5):
        tr.record(step * 10, {"w": np.ones(3)}, run=0)
    tr.publish()
    tr._live.drain()
    now = manifest(table)
    assert (now["parts"], now["rows"], now["last_step"], now["state"]) == (3, 15, 40, "running")
    assert now["started"] == first["started"] and now["updated"] >= first["updated"]
    tr.close()


def test_parts_come_every_live_seconds(tmp_path):
    table = tmp_path / "run.parquet"
    tr = Tracer(live=table, live_seconds=0.01)
    for step in range(5):
        tr.record(step, {"w": float(step)}, run=0)
        time.sleep(0.02)
    tr._live.drain()
    # each new step found the last part older than 10 ms: steps 0..3 are one part each
    assert [p["step"].tolist() for p in parts_of(table)] == [[0], [1], [2], [3]]
    tr.close()
    assert [p["step"].tolist() for p in parts_of(table)][-1] == [4]


def test_writing_the_live_table_finishes_the_run_and_takes_the_parts_away(tmp_path, monkeypatch):
    table = tmp_path / "run.parquet"
    tr = Tracer(live=table, live_steps=2)
    for step in range(9):
        tr.record(step, {"w": np.arange(3.0) + step}, run=0)
    said = []
    rmtree = live_parts.shutil.rmtree

    def look_then_remove(path, *args, **kwargs):
        # the folder is already out of sight under a hidden name, its manifest saying finished
        said.append((Path(path).name, json.loads((Path(path) / "_run.json").read_text())["state"]))
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(live_parts.shutil, "rmtree", look_then_remove)
    assert tr.write(table) == table
    assert os.listdir(tmp_path) == ["run.parquet"]   # no parts folder, no temporary file
    assert said == [(f".run.parts.{os.getpid()}.gone", "finished")]
    assert sorted_rows(pd.read_parquet(table)) == sorted_rows(tr.frame()) and len(tr.frame()) == 27
    tr.record(9, {"w": np.zeros(3)}, run=0)   # after the run finished nothing streams any more
    tr.publish()
    assert os.listdir(tmp_path) == ["run.parquet"]


def test_writing_another_table_leaves_the_run_going(tmp_path):
    table = tmp_path / "run.parquet"
    with Tracer(live=table) as tr:
        tr.record(0, {"w": 1.0})
        tr.write(tmp_path / "copy.parquet")
        assert manifest(table)["state"] == "running"
    assert sorted(os.listdir(tmp_path)) == ["copy.parquet", "run.parts"]


def test_close_leaves_the_run_running_with_every_row_and_write_still_finishes_it(tmp_path):
    table = tmp_path / "run.parquet"
    with pytest.raises(RuntimeError, match="diverged"):
        with Tracer(live=table, live_steps=4) as tr:
            for step in range(6):
                tr.record(step, {"w": np.ones(2) * step})
            raise RuntimeError("diverged")
    # the context manager closed it: the rows since the last part became one more part
    assert [sorted(set(p["step"])) for p in parts_of(table)] == [[0, 1, 2, 3], [4, 5]]
    assert manifest(table)["state"] == "running" and manifest(table)["parts"] == 2
    tr.record(6, {"w": np.ones(2)})
    tr.publish()   # closed: nothing more streams
    assert len(parts_of(table)) == 2
    tr.write(table)
    assert os.listdir(tmp_path) == ["run.parquet"] and len(pd.read_parquet(table)) == 14


def test_a_new_run_of_the_same_table_clears_what_the_last_one_left(tmp_path):
    table = tmp_path / "run.parquet"
    folder = tmp_path / "run.parts"
    folder.mkdir()
    for name in ["part-00001.parquet", "part-00007.parquet", ".part-00008.parquet.123.tmp", "._run.json.123.tmp"]:
        (folder / name).write_bytes(b"left over")
    (folder / "notes.txt").write_text("not ours")
    (tmp_path / ".run.parts.123.gone").mkdir()   # a finish() that was killed while removing
    (tmp_path / ".run.parts.123.gone" / "part-00001.parquet").write_bytes(b"x")
    tr = Tracer(live=table)
    assert sorted(os.listdir(folder)) == ["_run.json", "notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["run.parts"]
    assert manifest(table)["parts"] == 0
    tr.close()


def test_a_failing_writer_warns_once_and_training_goes_on(tmp_path, monkeypatch, capsys):
    table = tmp_path / "run.parquet"
    write_parquet = live_parts._write_parquet

    def disk_full(t, path, **options):
        if path.name.startswith("part-"):
            raise OSError(28, "No space left on device")
        return write_parquet(t, path, **options)

    monkeypatch.setattr(live_parts, "_write_parquet", disk_full)
    tr = Tracer(live=table, live_steps=1)
    for step in range(6):
        tr.record(step, {"w": torch.ones(2) * step})
        tr.publish()
    tr._live.drain()
    err = capsys.readouterr().err
    assert err.count("sitegen.trace:") == 1
    assert (f"sitegen.trace: live parts for {table} stopped: [Errno 28] No space left on device; "
            "training goes on, the final table is still written") in err
    assert manifest(table)["parts"] == 0 and parts_of(table) == []
    tr.write(table)
    assert os.listdir(tmp_path) == ["run.parquet"] and len(pd.read_parquet(table)) == 12
    assert capsys.readouterr().err == ""


def test_without_live_publish_and_close_do_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tr = Tracer()
    tr.record(0, {"w": 1.0})
    tr.publish()
    tr.close()
    assert os.listdir(tmp_path) == [] and len(tr.frame()) == 1


def run_child(tmp_path: Path, script: str, *args: str) -> subprocess.Popen:
    path = tmp_path / "trainer.py"
    path.write_text(textwrap.dedent(script))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, str(path), *args], env=env)


def test_a_trainer_killed_while_writing_a_part_leaves_whole_parts_and_a_valid_manifest(tmp_path):
    table, ready = tmp_path / "run.parquet", tmp_path / "writing-part-3"
    child = run_child(tmp_path, """
        import os, sys, time
        import numpy as np
        from sitegen.trace import Tracer

        table, ready = sys.argv[1:]
        rename = os.replace

        def stuck_on_part_3(src, dst):
            if os.path.basename(dst) == "part-00003.parquet":   # the file is written, not yet renamed
                open(ready, "w").close()
                time.sleep(3600)
            return rename(src, dst)

        os.replace = stuck_on_part_3
        tracer = Tracer(live=table, live_seconds=3600)
        for part in range(3):
            for step in range(5 * part, 5 * part + 5):
                tracer.record(step, {"w": np.arange(3.0) + step}, run=0)
            tracer.publish()
        time.sleep(3600)
        """, str(table), str(ready))
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the trainer ended early"
            assert time.monotonic() < deadline, "the trainer never reached part 3"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    folder = tmp_path / "run.parts"
    parts = [pd.read_parquet(p) for p in part_files(folder)]
    assert [p.name for p in part_files(folder)] == ["part-00001.parquet", "part-00002.parquet"]
    assert [p["step"].tolist()[::3] for p in parts] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    record = manifest(table)
    assert (record["parts"], record["rows"], record["last_step"], record["state"]) == (2, 30, 9, "running")
    assert read_run(folder).state == "stopped"   # its process is gone
    hidden = [n for n in os.listdir(folder) if n.startswith(".")]
    assert hidden == [f".part-00003.parquet.{child.pid}.tmp"]
    assert sorted(p.name for p in folder.glob("part-*.parquet")) == ["part-00001.parquet", "part-00002.parquet"]


def test_a_script_that_ends_without_writing_leaves_every_row_in_parts(tmp_path):
    table = tmp_path / "run.parquet"
    child = run_child(tmp_path, """
        import sys
        from sitegen.trace import Tracer

        tracer = Tracer(live=sys.argv[1], live_steps=4, live_seconds=600)
        for step in range(10):
            tracer.record(step, {"w": float(step)})
        """, str(table))
    assert child.wait(60) == 0
    assert [p["step"].tolist() for p in parts_of(table)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert manifest(table)["state"] == "running" and manifest(table)["rows"] == 10
