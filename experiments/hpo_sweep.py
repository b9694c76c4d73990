"""A hyperparameter sweep of small convolutional networks on scikit-learn's digits.

The search space is the one of the essay this project grew from ("Expressions are Pragmatic Model
Visualizations"): twenty numeric hyperparameters (epochs, batch size, a weight decay for each of
three convolutions and two dense layers, a one-cycle learning-rate schedule's initial and final
fractions, warm-up fraction and maximum, its momentum and Adam beta1 damping factors, beta2's
damping, three channel counts and the dense units) and a 4-way choice of optimiser. Each
configuration is a point of a scrambled Sobol sequence; we train one network per point and record
its validation error.

    python -m experiments.hpo_sweep --preset small                 # a local Ray when installed
    python -m experiments.hpo_sweep --preset full --ray-address auto   # on a running cluster
    python -m experiments.hpo_sweep --preset small --parallel none     # one process

Writes into ``--out`` (default ``data/``):

* ``hpo_sweep.parquet``: one row per configuration: ``config``, one ``log_*`` column per numeric
  hyperparameter (the natural log of the value used, so a GP sees the scale it should),
  ``optimizer``, ``val_error``, ``diverged``, ``final_train_loss``. The GP scripts (``gp_loocv``,
  ``gp_batch_convergence``) model this table;
* ``hpo_sweep_curves.parquet``: every network's training curve, long format (experiment =
  optimiser, run = config, step = epoch, param = ``train_loss`` / ``val_error``). With ``--live`` it
  streams while the sweep runs, one part per finished task;
* ``hpo_sweep.provenance.json``.

The digits images (1,797 of them, 8x8 pixels) ship with scikit-learn, so nothing is downloaded.
Configurations go out in tasks of ``TASK_SIZE`` (see ``experiments._parallel``); a run's result
depends only on the seed and its index, so the table is the same however the tasks were spread.
"""
from __future__ import annotations

import math
import time

import numpy as np

from experiments._common import Progress, Provenance, parse_args, require, site_path, torch_device

# ----------------------------------------------------------------------------------- settings
# The numeric hyperparameters, each sampled log-uniformly between its bounds (the table stores the
# natural log of the value used, as column "log_<name>"). Integers are rounded after sampling.
SPACE = {
    "epochs": (1, 16),
    "batch_size": (16, 256),
    "conv1_weight_decay": (1e-6, 1e-1),
    "conv2_weight_decay": (1e-6, 1e-1),
    "conv3_weight_decay": (1e-6, 1e-1),
    "dense1_weight_decay": (1e-6, 1e-1),
    "dense2_weight_decay": (1e-6, 1e-1),
    "1cycle_initial_lr_pct": (0.01, 0.5),     # the schedule starts at max_lr times this
    "1cycle_final_lr_pct": (0.001, 0.5),      # ... and ends at its start times this
    "1cycle_pct_warmup": (0.05, 0.5),         # fraction of the steps spent rising to max_lr
    "1cycle_max_lr": (1e-4, 1.0),
    "1cycle_momentum_max_damping_factor": (0.01, 0.5),       # momentum = 1 - damping (sgd, nesterov)
    "1cycle_momentum_min_damping_factor_pct": (0.05, 1.0),   # the smallest damping, as a fraction of the largest
    "1cycle_beta1_max_damping_factor": (0.01, 0.5),          # Adam's beta1 = 1 - damping (adam, adamw)
    "1cycle_beta1_min_damping_factor_pct": (0.05, 1.0),
    "beta2_damping_factor": (1e-4, 0.1),                     # Adam's beta2 = 1 - damping
    "conv1_channels": (4, 32),
    "conv2_channels": (4, 64),
    "conv3_channels": (8, 64),
    "dense1_units": (16, 256),
}
INTEGER = ("epochs", "batch_size", "conv1_channels", "conv2_channels", "conv3_channels", "dense1_units")
CHOICES = {"optimizer": ("sgd", "nesterov", "adam", "adamw")}  # the last Sobol dimension picks one
COLUMNS = [f"log_{name}" for name in SPACE]

PRESETS = {
    # configs: Sobol points (a power of two keeps the sequence balanced); max_epochs caps the epochs
    # range so the test preset takes seconds; train_subset caps the training images.
    "tiny": dict(configs=8, max_epochs=3, train_subset=300),
    "small": dict(configs=128, max_epochs=None, train_subset=None),
    "full": dict(configs=256, max_epochs=None, train_subset=None),
}
TASK_SIZE = 4            # configurations per task
VALIDATION_FRACTION = 1 / 3
DIVERGED_ERROR = 0.9     # a run whose loss became NaN predicts nothing; score it as chance level
# ----------------------------------------------------------------------------------------------


def sample_configs(n: int, seed: int, max_epochs: int | None = None) -> list[dict]:
    """``n`` configurations from a scrambled Sobol sequence over SPACE x CHOICES; values as used
    (not logged)."""
    from scipy.stats import qmc

    points = qmc.Sobol(d=len(SPACE) + len(CHOICES), scramble=True, seed=seed).random(n)
    configs = []
    for row in points:
        cfg = {}
        for (name, (lo, hi)), u in zip(SPACE.items(), row):
            if name == "epochs" and max_epochs:
                hi = min(hi, max_epochs)
            if name in INTEGER:
                # log-uniform over [lo - 0.5, hi + 0.5), rounded: every integer gets its share
                value = math.exp(math.log(lo - 0.5) + u * (math.log(hi + 0.5) - math.log(lo - 0.5)))
                cfg[name] = int(min(hi, max(lo, round(value))))
            else:
                cfg[name] = float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        for (name, options), u in zip(CHOICES.items(), row[len(SPACE):]):
            cfg[name] = options[min(int(u * len(options)), len(options) - 1)]
        configs.append(cfg)
    return configs


_DATA_CACHE: dict = {}


def load_digits_split(seed: int, train_subset: int | None):
    """(train, validation) arrays; cached per process."""
    key = (seed, train_subset)
    if key not in _DATA_CACHE:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # N x 1 x 8 x 8 in [0, 1], with plain strides: an added axis ([:, None]) keeps odd ones, which
        # torch reads as channels-last, and a copy of the arrays sent to a worker would not (so the
        # worker's convolutions would round differently from this process's)
        x = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        y = digits.target.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(y))
        n_val = int(len(y) * VALIDATION_FRACTION)
        val, train = order[:n_val], order[n_val:]
        if train_subset:
            train = train[:train_subset]
        _DATA_CACHE[key] = (x[train], y[train]), (x[val], y[val])
    return _DATA_CACHE[key]


def build_network(cfg: dict):
    """Three 3x3 convolutions (two max-pools: 8x8 -> 4x4 -> 2x2), a hidden dense layer, the output."""
    import torch.nn as nn

    c1, c2, c3, units = cfg["conv1_channels"], cfg["conv2_channels"], cfg["conv3_channels"], cfg["dense1_units"]
    layers = {
        "conv1": nn.Conv2d(1, c1, 3, padding=1), "conv2": nn.Conv2d(c1, c2, 3, padding=1),
        "conv3": nn.Conv2d(c2, c3, 3, padding=1), "dense1": nn.Linear(c3 * 2 * 2, units),
        "dense2": nn.Linear(units, 10),
    }
    model = nn.Sequential(
        layers["conv1"], nn.ReLU(), layers["conv2"], nn.ReLU(), nn.MaxPool2d(2),
        layers["conv3"], nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        layers["dense1"], nn.ReLU(), layers["dense2"],
    )
    return model, layers


def make_optimizer(cfg: dict, layers: dict, steps: int):
    """The optimiser with one weight decay per layer, and its one-cycle schedule (learning rate up
    then down; momentum or beta1 down then up, between ``1 - max damping`` and ``1 - min damping``)."""
    import torch

    groups = [{"params": layer.parameters(), "weight_decay": cfg[f"{name}_weight_decay"]}
              for name, layer in layers.items()]
    kind = cfg["optimizer"]
    first = "momentum" if kind in ("sgd", "nesterov") else "beta1"
    max_damping = cfg[f"1cycle_{first}_max_damping_factor"]
    min_damping = max_damping * cfg[f"1cycle_{first}_min_damping_factor_pct"]
    if kind in ("sgd", "nesterov"):
        opt = torch.optim.SGD(groups, lr=cfg["1cycle_max_lr"], momentum=1 - min_damping, nesterov=kind == "nesterov")
    else:
        adam = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = adam(groups, lr=cfg["1cycle_max_lr"], betas=(1 - min_damping, 1 - cfg["beta2_damping_factor"]))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["1cycle_max_lr"], total_steps=steps, pct_start=cfg["1cycle_pct_warmup"],
        div_factor=1 / cfg["1cycle_initial_lr_pct"], final_div_factor=1 / cfg["1cycle_final_lr_pct"],
        cycle_momentum=True, base_momentum=1 - max_damping, max_momentum=1 - min_damping)
    return opt, schedule


def train_one(cfg: dict, data, device, seed: int) -> tuple[dict, dict]:
    """Train one network. Returns its result and its curve (per epoch: mean training loss and
    validation error)."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    (x_train, y_train), (x_val, y_val) = data
    model, layers = build_network(cfg)
    model.to(device)
    xt, yt = torch.as_tensor(x_train, device=device), torch.as_tensor(y_train, device=device)
    xv = torch.as_tensor(x_val, device=device)
    batch = cfg["batch_size"]
    steps_per_epoch = math.ceil(len(yt) / batch)
    opt, schedule = make_optimizer(cfg, layers, cfg["epochs"] * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    curve = {"train_loss": [], "val_error": []}
    t0 = time.perf_counter()
    error, finite, last_loss = DIVERGED_ERROR, True, float("nan")
    for _ in range(cfg["epochs"]):
        order = torch.randperm(len(yt), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(yt), batch):
            idx = order[start:start + batch]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        last_loss = float(loss.detach())
        with torch.no_grad():
            logits = model(xv)
            finite = bool(torch.isfinite(logits).all())
            error = float((logits.argmax(1).cpu().numpy() != y_val).mean()) if finite else DIVERGED_ERROR
        curve["train_loss"].append(total / len(yt))
        curve["val_error"].append(error)
    result = {"val_error": error, "diverged": not finite, "final_train_loss": last_loss}
    return result, {**curve, "seconds": time.perf_counter() - t0}


def run_configs(shared: dict, task: list) -> list[dict]:
    """A task: train the configurations ``task`` (a list of ``(index, cfg)``) one after another and
    trace their curves. Returns per configuration its row, its traced curve (the tracer's long
    rows) and how long it took. Runs in this process or in a Ray worker."""
    import torch

    from sitegen.trace import Tracer

    torch.set_num_threads(1)  # tiny convolutions: threads cost more than they give
    device = torch.device(shared["device"])
    data = shared["data"]
    out = []
    for index, cfg in task:
        result, curve = train_one(cfg, data, device, seed=shared["seed"] * 100_003 + index)
        tracer = Tracer()
        for epoch, (loss, err) in enumerate(zip(curve["train_loss"], curve["val_error"]), start=1):
            tracer.record(epoch, {"train_loss": loss, "val_error": err}, experiment=cfg["optimizer"], run=index)
        out.append({"index": index, "row": {"config": index, **_logged(cfg), **result},
                    "curve": tracer.frame(), "seconds": curve["seconds"]})
    return out


def _logged(cfg: dict) -> dict:
    row = {f"log_{name}": math.log(cfg[name]) for name in SPACE}
    row.update({name: cfg[name] for name in CHOICES})
    return row


def write_curves(frames: list, path, live_tracer=None):
    """The curves table in configuration order, however the tasks finished (so one process and a
    cluster write the same file). A live run is finished first, then replaced by this."""
    from sitegen.trace import Tracer

    if live_tracer is not None:
        live_tracer.write(path)
    tracer = Tracer()
    for frame in frames:
        record_frame(tracer, frame)
    tracer.write(path)


def record_frame(tracer, frame) -> None:
    for (experiment, run, step), group in frame.groupby(["experiment", "run", "step"], sort=False, observed=True):
        tracer.record(int(step), dict(zip(group["param"].astype(str), group["value"])), experiment=str(experiment),
                      run=int(run))


def add_arguments(p):
    p.add_argument("--task-size", type=int, default=TASK_SIZE,
                   help=f"configurations per task (default {TASK_SIZE}); changes nothing in the tables")


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv, extra=add_arguments, parallel=True)
    from experiments import _parallel

    cluster = _parallel.start(args)   # Ray starts while this process imports and prepares
    try:
        return _sweep(args, cluster)
    finally:
        if cluster is not None:
            cluster.close()


def _sweep(args, cluster) -> dict:
    # --device cpu needs no torch in this process: where the runs go to Ray, the driver trains
    # nothing, and importing torch would take seconds of a core the workers' own imports need
    require("torch", load=args.device != "cpu")
    require("sklearn", package="scikit-learn")
    from experiments._parallel import run_tasks
    from sitegen.live import preview_hint
    from sitegen.trace import Tracer

    preset = PRESETS[args.preset]
    device = "cpu" if args.device == "cpu" else torch_device(args.device)
    prov = Provenance(__file__, args, device=str(device),
                      libraries=("numpy", "pandas", "torch", "scipy", "scikit-learn", "ray"))

    configs = sample_configs(preset["configs"], args.seed, preset["max_epochs"])
    size = max(1, args.task_size)
    tasks = [list(enumerate(configs))[i:i + size] for i in range(0, len(configs), size)]
    # the images go to the tasks with them, so a worker need not import scikit-learn (seconds) to load them
    data = load_digits_split(args.seed, preset["train_subset"])
    shared = {"seed": args.seed, "device": str(device), "data": data}

    args.out.mkdir(parents=True, exist_ok=True)
    curves_path = args.out / "hpo_sweep_curves.parquet"
    live = Tracer(live=curves_path) if args.live else None
    if live is not None:
        print(preview_hint(curves_path), flush=True)
    results: dict[int, dict] = {}
    progress = Progress(len(configs), "runs")

    def on_result(_, runs):
        for run in runs:
            if run["index"] in results:
                continue
            results[run["index"]] = run
            if live is not None:
                record_frame(live, run["curve"])
        if live is not None:
            live.publish()
        progress.update(len(runs))

    how = run_tasks("experiments.hpo_sweep:run_configs", shared, tasks, args, on_result, cluster=cluster)
    progress.close()

    import pandas as pd

    ordered = [results[i] for i in sorted(results)]
    assert len(ordered) == len(configs), "a task's runs went missing"
    table = pd.DataFrame([r["row"] for r in ordered])
    for name, options in CHOICES.items():
        table[name] = pd.Categorical(table[name], categories=options)
    table.to_parquet(prov.output(args.out / "hpo_sweep.parquet"), index=False)
    write_curves([r["curve"] for r in ordered], prov.output(curves_path), live)

    best = table.loc[table["val_error"].idxmin()]
    prov.results = {
        "configs": len(table),
        "train_images": len(data[0][1]),
        "validation_images": len(data[1][1]),
        "best_val_error": float(best["val_error"]),
        "best_config": {k: (v.item() if hasattr(v, "item") else v) for k, v in best[COLUMNS + list(CHOICES)].items()},
        "median_val_error": float(table["val_error"].median()),
        "diverged": int(table["diverged"].sum()),
        "train_time_s": round(sum(r["seconds"] for r in ordered), 2),
        "run_seconds": [round(r["seconds"], 3) for r in ordered],   # each configuration's training
        "parallel": how,
        "space": {k: list(v) for k, v in SPACE.items()},
        "integer": list(INTEGER),
        "choices": {k: list(v) for k, v in CHOICES.items()},
        "columns": {"log_<name>": "natural log of the value used", "optimizer": "sgd, nesterov (SGD with "
                    "Nesterov momentum), adam or adamw", "val_error": "misclassified fraction of the validation images"},
        "output_dir": site_path(args.out),
    }
    prov.write()
    print(f"{len(table)} configurations: best validation error {prov.results['best_val_error']:.3f}, "
          f"median {prov.results['median_val_error']:.3f} ({how['mode']})", flush=True)
    return prov.results


if __name__ == "__main__":
    main()
