"""How well a Gaussian process predicts held-out sweep results, by dataset size and lengthscale prior.

From the hyperparameter sweep (``data/hpo_sweep.parquet``, written by ``experiments.hpo_sweep``)
we draw random subsets of increasing size. On each subset we fit one GP per held-out point (trained
on the others) and score its prediction of that point; the held-out error of a subset is the mean
squared error over its points. The same subsets are scored under two lengthscale priors with the
same mode: Gamma(3, 6) and the looser Gamma(1.125, 0.375).

Claim (can fail): the looser prior gives lower held-out error on small datasets (every size up to
``CLAIM_SIZES``), measured as the geometric mean over subsets of the held-out MSE.

    python -m experiments.gp_loocv --preset small --device auto

Writes into ``--out`` (default ``data/``):

* ``gp_loocv_scaling.parquet``: one row per (prior, size, subset): ``heldout_mse`` (log validation
  error, squared), ``heldout_nlpd`` (negative log predictive density per point) and more;
* ``gp_loocv_summary.parquet``: per (prior, size) the 10th and 90th percentile and the geometric mean
  of ``heldout_mse`` over subsets;
* ``gp_loocv_params.parquet``: the hyperparameters of a GP fitted on each *whole* subset, long format:
  ``experiment`` = dataset size, ``run`` = subset, ``param`` (``lengthscale[log_lr]``, ...,
  ``outputscale``, ``noise``, ``mean``; constrained values, targets standardised per subset),
  ``value``, and a ``prior`` column (``tight`` or ``loose``). The same rows split by prior are in
  ``gp_loocv_params_tight.parquet`` and ``gp_loocv_params_loose.parquet`` for figures that show one
  prior (the expression directive has no row filter);
* ``gp_kernel.expr``: the model as an expression template whose placeholders are those param names;
* ``gp_loocv.provenance.json`` with the headline numbers in ``results``.

No fitting rounds are traced (the tables hold fitted parameters and held-out scores; the rounds of
a fit are traced by ``gp_batch_convergence``), so ``--live`` has nothing to stream here and changes
nothing.
"""
from __future__ import annotations

import time

import numpy as np

from experiments._common import DATA, Provenance, jax_device, parse_args

# ----------------------------------------------------------------------------------- settings
CONTINUOUS = ("log_lr", "log_wd_conv", "log_wd_dense", "log_batch_size", "epochs", "channels1", "channels2")
CATEGORICAL = ("optimizer",)
ERROR_FLOOR = 1e-3   # the target is log(max(val_error, ERROR_FLOOR)): errors span 1% .. 90%
PRESETS = {
    # sizes: configurations per subset; subsets: random subsets per size (the same for both priors)
    "tiny": dict(sizes=[8, 16], subsets=20),
    "small": dict(sizes=[8, 16, 32, 64], subsets=10),
    "full": dict(sizes=[8, 16, 32, 64, 128], subsets=50),
}
CLAIM_SIZES = 16    # "small datasets": the claim is checked at every size up to this
PRIOR_NAMES = ("tight", "loose")   # gp_model.PRIORS: Gamma(3, 6) and Gamma(1.125, 0.375) on lengthscales
# ----------------------------------------------------------------------------------------------


def add_arguments(p):
    p.add_argument("--sweep", default=str(DATA / "hpo_sweep.parquet"),
                   help="the sweep table to model (default: the committed data/hpo_sweep.parquet)")
    p.add_argument("--chunk", type=int, default=0,
                   help="models evaluated together per loop step (0: 1 on a CPU, 32 on a GPU)")


def load_sweep(path):
    """The sweep's inputs scaled to [0, 1] and its target, log validation error."""
    import pandas as pd

    from experiments import gp_model as gm

    table = pd.read_parquet(path)
    u, c = gm.encode(table, CONTINUOUS, CATEGORICAL)
    y = np.log(np.maximum(table["val_error"].to_numpy(dtype=np.float64), ERROR_FLOOR))
    return table, u, c, y


def draw_subsets(n_rows: int, size: int, count: int, rng) -> np.ndarray:
    return np.stack([rng.choice(n_rows, size=size, replace=False) for _ in range(count)])


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv, extra=add_arguments)
    import jax
    import pandas as pd

    from experiments import gp_model as gm

    gm.limit_blas_threads(1)
    device = jax_device(args.device)
    jax.config.update("jax_default_device", device)
    chunk = args.chunk or (1 if device.platform == "cpu" else 32)
    preset = PRESETS[args.preset]
    prov = Provenance(__file__, args, device=str(device), libraries=("numpy", "pandas", "jax", "jaxlib"))

    table, u, c, y = load_sweep(args.sweep)
    layout = gm.Layout(CONTINUOUS, CATEGORICAL)
    rng = np.random.default_rng(args.seed)
    sizes = [s for s in preset["sizes"] if s <= len(table)]
    subsets = {size: draw_subsets(len(table), size, preset["subsets"], rng) for size in sizes}

    # Fits of one size share one compiled loop (both priors; hold-one-out and whole subsets): the
    # folds' n - 1 points are padded to n (exactly, see gp_model.covariance), batches to the largest.
    pad_models = max(sizes) * preset["subsets"]
    scaling_rows, param_frames, fit_stats = [], [], {}
    for prior_name in PRIOR_NAMES:
        priors = gm.PRIORS[prior_name]
        for size in sizes:
            t0 = time.perf_counter()
            # hold-one-out: every fold of every subset in one batch, each model stopping on its own
            loo = gm.leave_one_out(u, c, y, subsets[size])
            fit = gm.fit_per_model(loo.problem.padded(points=size), layout, priors, chunk=chunk,
                                   pad_models=pad_models)
            pred, pred_var = gm.held_out_predictions(loo, fit.theta, layout, size, pad_models)
            sq = ((pred - loo.y_held) ** 2).reshape(loo.shape)
            nlpd = (0.5 * np.log(2 * np.pi * pred_var) + 0.5 * (pred - loo.y_held) ** 2 / pred_var).reshape(loo.shape)
            # the hyperparameters a GP learns from the whole subset
            z, _, _ = gm.standardise(y[subsets[size]])
            whole = gm.Problem.of(u[subsets[size]], c[subsets[size]], z)
            whole_fit = gm.fit_per_model(whole, layout, priors, chunk=chunk, pad_models=pad_models)
            seconds = time.perf_counter() - t0

            for s in range(loo.shape[0]):
                scaling_rows.append({
                    "prior": prior_name, "size": size, "subset": s,
                    "heldout_mse": float(sq[s].mean()), "heldout_nlpd": float(nlpd[s].mean()),
                    "heldout_abs_error": float(np.sqrt(sq[s]).mean()),
                    "target_var": float(y[subsets[size][s]].var()),
                    "evaluations": int(fit.evals.reshape(loo.shape)[s].sum()),
                })
            values = np.asarray(layout.constrained(whole_fit.theta))
            param_frames.append(pd.DataFrame({
                "experiment": size, "run": np.repeat(np.arange(len(values)), layout.size),
                "param": np.tile(layout.names, len(values)), "value": values.reshape(-1),
                "prior": prior_name,
            }))
            fit_stats[f"{prior_name}/{size}"] = {
                "models": int(fit.evals.size), "evaluations": int(fit.computed), "seconds": round(seconds, 2),
                "stopped": {gm.STATUS[k]: int(v) for k, v in zip(*np.unique(fit.status, return_counts=True))},
            }
            print(f"{prior_name:5s} size {size:4d}: geometric-mean held-out MSE "
                  f"{np.exp(np.mean(np.log(sq.mean(axis=1)))):.4f}  ({fit.evals.size} models, "
                  f"{fit.computed} evaluations, {seconds:.1f} s)", flush=True)

    scaling = pd.DataFrame(scaling_rows)
    summary = (scaling.groupby(["prior", "size"], sort=False)["heldout_mse"]
               .agg(p10=lambda v: float(np.percentile(v, 10)), p90=lambda v: float(np.percentile(v, 90)),
                    geomean=lambda v: float(np.exp(np.mean(np.log(v)))), subsets="size")
               .reset_index())
    params = pd.concat(param_frames, ignore_index=True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    scaling.to_parquet(prov.output(out / "gp_loocv_scaling.parquet"), index=False)
    summary.to_parquet(prov.output(out / "gp_loocv_summary.parquet"), index=False)
    params.to_parquet(prov.output(out / "gp_loocv_params.parquet"), index=False)
    for prior_name in PRIOR_NAMES:
        params[params["prior"] == prior_name].to_parquet(
            prov.output(out / f"gp_loocv_params_{prior_name}.parquet"), index=False)
    from sitegen.expr import write_template

    write_template(gm.template(layout), prov.output(out / "gp_kernel.expr"))

    # the claim, on the small sizes: geometric means, and how often the loose prior wins on the
    # same subset (a paired comparison)
    pivot = scaling.pivot_table(index=["size", "subset"], columns="prior", values="heldout_mse")
    geo = {p: {int(s): round(float(g), 6) for s, g in summary[summary["prior"] == p][["size", "geomean"]].values}
           for p in PRIOR_NAMES}
    wins = {int(s): float((grp["loose"] < grp["tight"]).mean()) for s, grp in pivot.groupby(level="size")}
    prov.results = {
        "sweep": str(args.sweep), "sweep_rows": len(table), "target": "log(max(val_error, 1e-3))",
        "sizes": sizes, "subsets_per_size": preset["subsets"],
        "priors": {p: str(gm.PRIORS[p].lengthscale) for p in PRIOR_NAMES},
        "outputscale_prior": str(gm.TIGHT.outputscale), "noise_prior": str(gm.TIGHT.noise),
        "geomean_heldout_mse": geo,
        "loose_wins_fraction": wins,
        "claim": f"the looser prior lowers the geometric-mean held-out MSE at every size up to {CLAIM_SIZES}",
        "claim_holds": all(geo["loose"][s] < geo["tight"][s] for s in sizes if s <= CLAIM_SIZES),
        "ratio_loose_over_tight": {int(s): round(geo["loose"][s] / geo["tight"][s], 4) for s in sizes},
        "fits": fit_stats, "chunk": chunk,
    }
    prov.write()
    return prov.results


if __name__ == "__main__":
    main()
