"""Real training runs: a Lightning fit (CSVLogger + TraceCallback), a Hugging Face Trainer on a tiny
model built from a config (trainer_state.json + TraceCallback), a plain loop with trace_optimizer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sitegen import logs
from sitegen.live import parts_dir

pytestmark = pytest.mark.slow


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1


def test_lightning_fit_csv_logger_and_trace_callback(tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    from sitegen.trace.lightning_callback import TraceCallback

    class Regression(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    model = Regression()
    table = tmp_path / "data" / "fit.parquet"
    trainer = L.Trainer(max_steps=10, logger=CSVLogger(tmp_path / "logs", name="regression"), log_every_n_steps=1,
                        callbacks=[TraceCallback(table, every=4, live=True)], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader)
    # the CSVLogger folder, read as it is
    df = logs.read(tmp_path / "logs")
    loss = df[df.param == "train_loss"]
    assert set(loss.experiment.astype(str)) == {"regression"} and set(loss.run.astype(str)) == {"version_0"}
    written = pd.read_csv(tmp_path / "logs" / "regression" / "version_0" / "metrics.csv")
    written = written.dropna(subset=["train_loss"])
    np.testing.assert_allclose(loss.value, written.train_loss)
    assert loss.step.tolist() == written.step.tolist()
    assert len(loss) == 10
    # the callback's table: every parameter at 0, 4, 8 and the end, ending at the model's values
    traced = pd.read_parquet(table)
    assert not parts_dir(table).exists()   # the live parts were replaced by the table
    assert sorted(traced.step.unique()) == [0, 4, 8, 10]
    assert set(traced.param) == {"layer.weight[0,0]", "layer.weight[0,1]", "layer.weight[0,2]", "layer.bias[0]"}
    last = traced[traced.step == 10].set_index("param").value
    np.testing.assert_allclose([last[f"layer.weight[0,{i}]"] for i in range(3)], model.layer.weight.detach()[0])
    assert "train_loss" in traced.columns and traced[traced.step == 8].train_loss.notna().all()


def test_hf_trainer_state_and_trace_callback(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from sitegen.trace.hf_callback import TraceCallback

    config = transformers.BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)   # built from the config: no download
    g = torch.Generator().manual_seed(1)
    rows = [{"input_ids": torch.randint(0, 32, (8,), generator=g), "labels": int(i % 2)} for i in range(24)]
    out = tmp_path / "out"
    args = transformers.TrainingArguments(output_dir=str(out), max_steps=6, logging_steps=2, save_steps=3,
                                          per_device_train_batch_size=4, learning_rate=1e-3, report_to="none",
                                          use_cpu=True, disable_tqdm=True, save_strategy="steps")
    table = tmp_path / "data" / "bert.parquet"
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows,
                                   callbacks=[TraceCallback(table, every=2, params=["classifier.*"])])
    trainer.train()
    trainer.save_state()
    history = [h for h in trainer.state.log_history if "loss" in h]
    df = logs.read(out)   # out/trainer_state.json wins over checkpoint-3 and checkpoint-6
    assert logs.detect(out) == "hf-trainer"
    loss = df[df.param == "loss"]
    assert loss.step.tolist() == [h["step"] for h in history] == [2, 4, 6]
    np.testing.assert_allclose(loss.value, [h["loss"] for h in history])
    np.testing.assert_allclose(loss.epoch, [h["epoch"] for h in history])
    assert {"learning_rate", "grad_norm"} <= set(df.param.astype(str))
    traced = pd.read_parquet(table)
    assert sorted(traced.step.unique()) == [0, 2, 4, 6]
    assert set(traced.param) == {f"classifier.weight[{i},{j}]" for i in range(2) for j in range(8)} | \
        {"classifier.bias[0]", "classifier.bias[1]"}
    final = traced[traced.step == 6].set_index("param").value
    np.testing.assert_allclose([final["classifier.bias[0]"], final["classifier.bias[1]"]],
                               model.classifier.bias.detach().numpy(), rtol=1e-6)


def test_a_plain_loop_traced_by_one_line_on_the_optimizer(tmp_path):
    from sitegen.trace import trace_optimizer

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    table = tmp_path / "loop.parquet"
    trace = trace_optimizer(optimizer, model, table, every=3, live=True,
                            transforms={"bias": ("exp_bias", torch.exp)})   # the one line
    x, y = _data()
    seen = {}
    for step in range(1, 11):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        seen[step] = (model.weight.detach().clone(), torch.exp(model.bias.detach()).item())
        if step == 6:
            trace.tracer.publish()
            trace.tracer._live.drain()
            assert any(parts_dir(table).glob("part-*.parquet"))   # streamed while training
    assert trace.write() == table
    df = pd.read_parquet(table)
    assert sorted(df.step.unique()) == [0, 3, 6, 9, 10]
    for step in (3, 6, 9, 10):
        at = df[df.step == step].set_index("param").value
        np.testing.assert_allclose([at[f"weight[0,{i}]"] for i in range(3)], seen[step][0][0].numpy(), rtol=1e-6)
        assert at["exp_bias[0]"] == pytest.approx(seen[step][1], rel=1e-6)
    assert set(df.experiment.astype(str)) == {"loop"}


def test_a_missing_parameter_name_says_what_the_model_has(tmp_path):
    from sitegen.trace import trace_optimizer

    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"no parameter matches 'weights'; did you mean 'weight'\? "
                                         r"\(the model has: weight, bias\)"):
        trace_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model, tmp_path / "t.parquet",
                        params=["weights"])
