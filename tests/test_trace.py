"""The tracer records what a training loop hands it as the long-format table the site reads."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sitegen.trace import Tracer, element_names

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


def test_chunks_move_to_the_host_and_stream_as_parts_while_training(tmp_path):
    parts = tmp_path / "run.parts"
    tr = Tracer(chunk_steps=10, live_dir=parts)
    w = torch.zeros(5)
    for step in range(25):
        tr.record(step, {"w": w + step}, experiment="a", run=0)
    written = sorted(p.name for p in parts.iterdir())
    assert written == ["part-00001.parquet", "part-00002.parquet"]   # steps 0-9 and 10-19
    first = pd.read_parquet(parts / "part-00001.parquet")
    assert sorted(set(first["step"])) == list(range(10))
    tr.write(tmp_path / "run.parquet")
    whole = pd.read_parquet(tmp_path / "run.parquet")
    assert len(whole) == 25 * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.parquet", "run.parts"]  # no temp files
    assert len(list(parts.iterdir())) == 3


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
