"""A hyperparameter sweep of small convolutional networks on scikit-learn's digits.

Each configuration is a point of a scrambled Sobol sequence over the search space below; we train
one network per point and record its validation error. The table this writes,
``data/hpo_sweep.parquet`` (one row per configuration, one column per hyperparameter plus
``val_error``), is the dataset the Gaussian-process scripts (``gp_loocv``, ``gp_batch_convergence``)
model.

    python -m experiments.hpo_sweep --preset small --device auto

The digits images (1,797 of them, 8x8 pixels) ship with scikit-learn, so nothing is downloaded.
No training steps are traced (the table has one row per finished configuration), so ``--live`` has
nothing to stream here and changes nothing.
"""
from __future__ import annotations

import math
import time

import numpy as np

from experiments._common import Provenance, parse_args, torch_device

# ----------------------------------------------------------------------------------- settings
# The search space. Scalar hyperparameters are sampled uniformly between their bounds (log-scaled
# ones are stored as their log, so a GP sees the scale it should); the last Sobol dimension picks
# the categorical choice. Column names in the table are the keys here.
SPACE = {
    "log_lr": (-3.5, -0.5),         # log10 of the learning rate
    "log_wd_conv": (-6.0, -1.0),    # log10 of the weight decay on the convolution weights
    "log_wd_dense": (-6.0, -1.0),   # log10 of the weight decay on the dense layer
    "log_batch_size": (4.0, 8.0),   # log2 of the batch size (16 .. 256, rounded to an integer size)
    "epochs": (1, 12),              # integer
    "channels1": (2, 16),           # integer, first convolution's output channels
    "channels2": (4, 32),           # integer, second convolution's output channels
}
CHOICES = {"optimizer": ("sgd", "adam")}  # sgd uses Nesterov momentum 0.9
INTEGER = ("epochs", "channels1", "channels2")

PRESETS = {
    # configs: Sobol points (a power of two keeps the sequence balanced); epoch_scale shrinks the
    # epochs range so the test preset takes seconds; train_subset caps the training images.
    "tiny": dict(configs=8, epoch_scale=0.25, train_subset=400),
    "small": dict(configs=256, epoch_scale=1.0, train_subset=None),
    "full": dict(configs=1024, epoch_scale=1.0, train_subset=None),
}
VALIDATION_FRACTION = 1 / 3
DIVERGED_ERROR = 0.9  # a run whose loss became NaN predicts nothing; score it as chance level
# ----------------------------------------------------------------------------------------------


def sample_configs(n: int, seed: int, epoch_scale: float = 1.0) -> list[dict]:
    """``n`` configurations from a scrambled Sobol sequence over SPACE x CHOICES."""
    from scipy.stats import qmc

    names = list(SPACE) + list(CHOICES)
    points = qmc.Sobol(d=len(names), scramble=True, seed=seed).random(n)
    configs = []
    for row in points:
        cfg = {}
        for name, u in zip(SPACE, row):
            lo, hi = SPACE[name]
            if name == "epochs":
                hi = max(lo, round(lo + (hi - lo) * epoch_scale))
            value = lo + u * (hi - lo)
            if name in INTEGER:
                value = int(min(hi, math.floor(lo + u * (hi - lo + 1))))
            cfg[name] = float(value) if name not in INTEGER else value
        # The batch size must be an integer; store the log2 of the size actually used.
        batch = int(round(2 ** cfg["log_batch_size"]))
        cfg["log_batch_size"] = math.log2(batch)
        for (name, options), u in zip(CHOICES.items(), row[len(SPACE):]):
            cfg[name] = options[min(int(u * len(options)), len(options) - 1)]
        configs.append(cfg)
    return configs


def load_digits_split(seed: int, train_subset: int | None):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # N x 1 x 8 x 8 in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(len(y) * VALIDATION_FRACTION)
    val, train = order[:n_val], order[n_val:]
    if train_subset:
        train = train[:train_subset]
    return (x[train], y[train]), (x[val], y[val])


def build_network(cfg: dict):
    import torch.nn as nn

    c1, c2 = cfg["channels1"], cfg["channels2"]
    conv = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),                              # 8x8 -> 4x4
    )
    dense = nn.Linear(c2 * 4 * 4, 10)
    return conv, dense


def train_one(cfg: dict, data, device, seed: int) -> dict:
    """Train one network; return its validation error and how long it took."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    (x_train, y_train), (x_val, y_val) = data
    conv, dense = build_network(cfg)
    model = nn.Sequential(conv, nn.Flatten(), dense).to(device)
    lr = 10 ** cfg["log_lr"]
    groups = [
        {"params": conv.parameters(), "weight_decay": 10 ** cfg["log_wd_conv"]},
        {"params": dense.parameters(), "weight_decay": 10 ** cfg["log_wd_dense"]},
    ]
    if cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(groups, lr=lr)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)

    xt, yt = torch.as_tensor(x_train, device=device), torch.as_tensor(y_train, device=device)
    batch = int(round(2 ** cfg["log_batch_size"]))
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(cfg["epochs"]):
        order = torch.randperm(len(yt), generator=generator).to(device)
        for start in range(0, len(yt), batch):
            idx = order[start:start + batch]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        logits = model(torch.as_tensor(x_val, device=device))
        finite = bool(torch.isfinite(logits).all())
        error = float((logits.argmax(1).cpu().numpy() != y_val).mean()) if finite else DIVERGED_ERROR
    return {"val_error": error, "diverged": not finite, "train_s": time.perf_counter() - t0,
            "final_train_loss": float(loss.detach())}


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv)
    import torch

    preset = PRESETS[args.preset]
    device = torch_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny convolutions: threads cost more than they give
    prov = Provenance(__file__, args, device=str(device), libraries=("numpy", "pandas", "torch", "scipy", "scikit-learn"))

    data = load_digits_split(args.seed, preset["train_subset"])
    configs = sample_configs(preset["configs"], args.seed, preset["epoch_scale"])
    rows = []
    for i, cfg in enumerate(configs):
        result = train_one(cfg, data, device, seed=args.seed * 100_003 + i)
        rows.append({"config": i, **cfg, **result})
        print(f"[{i + 1:4d}/{len(configs)}] val_error {result['val_error']:.3f}  "
              f"({result['train_s']:.1f} s) {cfg}", flush=True)

    import pandas as pd

    table = pd.DataFrame(rows)
    table["optimizer"] = pd.Categorical(table["optimizer"], categories=CHOICES["optimizer"])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(prov.output(args.out / "hpo_sweep.parquet"), index=False)

    best = table.loc[table["val_error"].idxmin()]
    prov.results = {
        "configs": len(table),
        "train_images": len(data[0][1]),
        "validation_images": len(data[1][1]),
        "best_val_error": float(best["val_error"]),
        "best_config": {k: (v.item() if hasattr(v, "item") else v) for k, v in best[list(SPACE) + list(CHOICES)].items()},
        "median_val_error": float(table["val_error"].median()),
        "diverged": int(table["diverged"].sum()),
        "train_time_s": round(float(table["train_s"].sum()), 2),
        "space": {k: list(v) for k, v in SPACE.items()},
        "choices": {k: list(v) for k, v in CHOICES.items()},
        "columns": {
            "log_lr": "log10 learning rate", "log_wd_conv": "log10 weight decay, convolutions",
            "log_wd_dense": "log10 weight decay, dense layer", "log_batch_size": "log2 batch size",
            "epochs": "training epochs", "channels1": "first convolution channels",
            "channels2": "second convolution channels", "optimizer": "sgd (Nesterov 0.9) or adam",
            "val_error": "misclassified fraction of the validation images",
        },
    }
    prov.write()
    return prov.results


if __name__ == "__main__":
    main()
