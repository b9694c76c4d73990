"""A small traced experiment for the figures tour: numpy only, seconds on one core.

A linear model with a learned noise scale is fitted by full-batch gradient descent to synthetic
data, for several training-set sizes (the figure rows) and seeds (the dots), and every parameter is
recorded every few steps. Two silent bugs are planted on purpose, for the figures to catch:
the feature ``site`` is zeroed by "preprocessing", so its weight never moves from where it started;
and the noise scale is clipped at a lower bound above the true noise, so it ends pinned there.

    python -m experiments.demo_trace            # writes data/demo_trace.parquet and friends
    python -m experiments.demo_trace --preset tiny
    python -m experiments.demo_trace --live         # watch demo_trace.parquet grow in `sitegen serve`

With ``--live`` the parameter trace streams into ``demo_trace.parts/`` while it trains; the loss and
scaling tables are written at the end (they are not long-format traces).

Writes ``demo_trace.parquet`` (experiment, run, step, param, value), ``demo.expr`` (the template),
``demo_loss.parquet`` (training loss per step), ``demo_scaling.parquet`` (held-out error per size
and seed) and ``demo_trace.provenance.json``.
"""
from __future__ import annotations

import numpy as np

from experiments._common import Provenance, parse_args

PRESETS = {  # sizes (rows), seeds (dots), steps, record every
    "tiny": dict(sizes=[16, 128], seeds=4, steps=60, every=5),
    "small": dict(sizes=[16, 64, 256, 1024], seeds=10, steps=400, every=4),
    "full": dict(sizes=[16, 64, 256, 1024, 4096], seeds=20, steps=1000, every=5),
}
FEATURES = ["age", "dose", "weight", "height", "site"]
TRUE_WEIGHTS = np.array([1.5, -0.8, 0.3, 0.05, 0.0])
TRUE_BIAS, TRUE_NOISE = 0.4, 0.02
NOISE_FLOOR = 0.05           # the constraint the noise scale runs into
LEARNING_RATE = 0.02

TEMPLATE = """\
# a linear model with a learned noise scale
y = ⟦w_age⟧ * age
  + ⟦w_dose⟧ * dose
  + ⟦w_weight⟧ * weight
  + ⟦w_height⟧ * height
  + ⟦w_site⟧ * site      # zeroed by preprocessing: this weight can never learn
  + ⟦bias⟧
noise ~ Normal(0, ⟦sigma | log | label=σ | bounds=0.05:⟧)
"""


def make_data(n: int, rng: np.random.Generator):
    x = rng.normal(size=(n, len(FEATURES)))
    y = x @ TRUE_WEIGHTS + TRUE_BIAS + TRUE_NOISE * rng.normal(size=n)
    x[:, FEATURES.index("site")] = 0.0  # the planted bug: the weight of an all-zero column gets no gradient
    return x, y


def train(x, y, steps: int, every: int, rng: np.random.Generator):
    """Gradient descent on the Gaussian negative log-likelihood; yields (step, params, loss).

    The weights' gradient is multiplied by sigma**2 (the Fisher information's inverse), which keeps
    the step size stable as the noise scale shrinks; the noise scale's own step is clipped for the
    same reason early on, when residuals are large."""
    n = len(y)
    w = rng.normal(scale=0.5, size=x.shape[1])
    b = rng.normal(scale=0.5)
    log_sigma = np.log(rng.uniform(0.3, 1.0))
    for step in range(steps + 1):
        sigma = np.exp(log_sigma)
        resid = x @ w + b - y
        loss = float(np.mean(resid ** 2) / (2 * sigma ** 2) + log_sigma + 0.5 * np.log(2 * np.pi))
        if step % every == 0 or step == steps:
            yield step, {**{f"w_{f}": w[i] for i, f in enumerate(FEATURES)}, "bias": b, "sigma": sigma}, loss
        grad_w = x.T @ resid / n
        grad_b = resid.mean()
        grad_ls = np.clip(1.0 - np.mean(resid ** 2) / sigma ** 2, -10.0, 10.0)
        w = w - LEARNING_RATE * grad_w
        b = b - LEARNING_RATE * grad_b
        log_sigma = max(log_sigma - LEARNING_RATE * grad_ls, np.log(NOISE_FLOOR))


def main(argv=None) -> None:
    import pandas as pd

    from sitegen.live import preview_hint
    from sitegen.trace import Tracer

    args = parse_args(__doc__.splitlines()[0], argv)
    cfg = PRESETS[args.preset]
    prov = Provenance(script=__file__, args=args)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    trace_path = out / "demo_trace.parquet"
    trace = Tracer(live=trace_path if args.live else None)
    if args.live:
        print(preview_hint(trace_path), flush=True)
    losses, scaling = [], []
    test_rng = np.random.default_rng(10_000 + args.seed)
    x_test, y_test = make_data(4000, test_rng)
    for n in cfg["sizes"]:
        for seed in range(cfg["seeds"]):
            rng = np.random.default_rng([args.seed, n, seed])
            x, y = make_data(n, rng)
            for step, params, loss in train(x, y, cfg["steps"], cfg["every"], rng):
                trace.record(step, params, experiment=n, run=seed)
                losses.append((n, seed, step, loss))
            w = np.array([params[f"w_{f}"] for f in FEATURES])
            pred = x_test @ w + params["bias"]
            mse = float(np.mean((pred - y_test) ** 2))
            excess = float(np.mean((pred - x_test @ TRUE_WEIGHTS - TRUE_BIAS) ** 2))  # error beyond the noise
            scaling.append((n, seed, mse, excess))

    trace.write(prov.output(trace_path))
    pd.DataFrame(losses, columns=["experiment", "run", "step", "train_nll"]).to_parquet(
        prov.output(out / "demo_loss.parquet"), index=False)
    scale = pd.DataFrame(scaling, columns=["n_train", "seed", "test_mse", "excess_mse"])
    scale.to_parquet(prov.output(out / "demo_scaling.parquet"), index=False)
    (out / "demo.expr").write_text(TEMPLATE, encoding="utf-8")
    prov.output(out / "demo.expr")

    by_n = scale.groupby("n_train")["excess_mse"].apply(lambda s: float(np.exp(np.log(s).mean())))
    prov.results = {
        "excess_mse_geomean": {str(k): v for k, v in by_n.items()},
        "smallest_n": int(by_n.index.min()),
        "largest_n": int(by_n.index.max()),
        "excess_ratio_smallest_to_largest": float(by_n.iloc[0] / by_n.iloc[-1]),
        "true_noise": TRUE_NOISE,
        "noise_floor": NOISE_FLOOR,
    }
    path = prov.write()
    print(f"wrote {len(trace):,} traced values, {len(scale)} test errors; provenance in {path}")


if __name__ == "__main__":
    main()
