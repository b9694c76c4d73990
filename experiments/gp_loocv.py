"""How well a Gaussian process predicts held-out sweep results, by dataset size and lengthscale prior.

From the hyperparameter sweep (``data/hpo_sweep.parquet``, written by ``experiments.hpo_sweep``)
we draw random subsets of increasing size. The GP is the essay kernel of ``gp_model.EssayLayout``
(a factorized plus a joint kernel over 20 scalar hyperparameters and a 4-way choice: 55
parameters). On each subset we fit one GP per held-out point (trained
on the others) and score its prediction of that point; the held-out error of a subset is the mean
squared error over its points. The same subsets are scored under two lengthscale priors with the
same mode: Gamma(3, 6) and the looser Gamma(1.125, 0.375).

Claim (can fail): the looser prior gives lower held-out error on small datasets (every size up to
``CLAIM_SIZES``), measured as the geometric mean over subsets of the held-out MSE.

    python -m experiments.gp_loocv --preset small --device auto
    python -m experiments.gp_loocv --preset full --ray-address auto   # on a running Ray cluster

The fits go out as tasks of ``SUBSETS_PER_TASK`` subsets of one size under one prior (see
``experiments._parallel``: a local Ray when installed, else one process); results do not depend on
where a task ran.

Writes into ``--out`` (default ``data/``):

* ``gp_loocv_scaling.parquet``: one row per (prior, size, subset): ``heldout_mse`` (log validation
  error, squared), ``heldout_nlpd`` (negative log predictive density per point) and more;
* ``gp_loocv_summary.parquet``: per (prior, size) the 10th and 90th percentile and the geometric mean
  of ``heldout_mse`` over subsets;
* ``gp_loocv_params.parquet``: the hyperparameters of a GP fitted on each *whole* subset, long format:
  ``experiment`` = dataset size, ``run`` = subset, ``param`` (``fact_lengthscale[log_epochs]``,
  ..., ``w_joint``, ``outputscale``, ``noise``, ``mean``: ``EssayLayout.names``; constrained values, targets standardised per subset),
  ``value``, a ``prior`` column (``tight`` or ``loose``) and a ``part`` column (``fact_lengthscale``,
  ``fact_choice_lengthscale``, ``joint_lengthscale``, ``joint_choice_lengthscale``, ``weight``,
  ``outputscale``, ``noise``, ``mean``). The same rows split by prior are in
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

from experiments._common import DATA, Progress, Provenance, jax_device, parse_args, require, site_path

# ----------------------------------------------------------------------------------- settings
CATEGORICAL = ("optimizer",)
ERROR_FLOOR = 1e-3   # the target is log(max(val_error, ERROR_FLOOR)): errors span 1% .. 90%
PRESETS = {
    # sizes: configurations per subset; subsets: random subsets per size (the same for both priors)
    "tiny": dict(sizes=[8, 16], subsets=20),
    "small": dict(sizes=[8, 16, 32], subsets=50),
    "full": dict(sizes=[8, 16, 32, 64], subsets=50),
}
SUBSETS_PER_TASK = 10   # subsets one task fits (both hold-one-out and whole); tasks of a size share a compile
CLAIM_SIZES = 16    # "small datasets": the claim is checked at every size up to this
PRIOR_NAMES = ("tight", "loose")   # gp_model.PRIORS: Gamma(3, 6) and Gamma(1.125, 0.375) on lengthscales
# ----------------------------------------------------------------------------------------------


def sweep_columns():
    """The sweep's numeric columns and choices (from experiments.hpo_sweep, without importing torch)."""
    from experiments.hpo_sweep import CHOICES, COLUMNS

    return tuple(COLUMNS), CHOICES["optimizer"]


CONTINUOUS, LEVELS = sweep_columns()


def essay_layout():
    from experiments import gp_model as gm

    return gm.EssayLayout(CONTINUOUS, CATEGORICAL[0], LEVELS)


def add_arguments(p):
    p.add_argument("--sweep", default=str(DATA / "hpo_sweep.parquet"),
                   help="the sweep table to model (default: the committed data/hpo_sweep.parquet)")
    p.add_argument("--chunk", type=int, default=0,
                   help="models evaluated together per loop step (0: 1 on a CPU, 32 on a GPU)")


def load_sweep(path):
    """The sweep's inputs scaled to [0, 1], its choice as integer codes, and its target, log
    validation error."""
    import pandas as pd

    from experiments import gp_model as gm

    table = pd.read_parquet(path)
    missing = [c for c in CONTINUOUS + CATEGORICAL + ("val_error",) if c not in table.columns]
    if missing:
        from experiments._common import ScriptError

        raise ScriptError(f"{site_path(path)}: no column {', '.join(missing)}; rerun "
                          "python -m experiments.hpo_sweep to make a sweep with the current search space")
    u, c = gm.encode(table, CONTINUOUS, CATEGORICAL)
    y = np.log(np.maximum(table["val_error"].to_numpy(dtype=np.float64), ERROR_FLOOR))
    return table, u, c, y


def draw_subsets(n_rows: int, size: int, count: int, rng) -> np.ndarray:
    return np.stack([rng.choice(n_rows, size=size, replace=False) for _ in range(count)])


def fit_block(shared: dict, task: dict) -> dict:
    """A task: the hold-one-out fits and the whole-subset fit of a block of subsets of one size,
    under one prior. Runs in this process or in a Ray worker; returns rows, not files."""
    from experiments import gp_model as gm   # first: it sets XLA's thread flags before JAX starts

    import jax

    gm.limit_blas_threads(1)
    jax.config.update("jax_default_device", jax.devices(shared["platform"])[0])
    u, c, y = shared["u"], shared["c"], shared["y"]
    layout, priors = essay_layout(), gm.PRIORS[task["prior"]]
    size, subsets, chunk = task["size"], np.asarray(task["subsets"]), shared["chunk"]
    pad_models = size * shared["block"]
    t0 = time.perf_counter()
    # hold-one-out: every fold of every subset in one batch, each model stopping on its own
    loo = gm.leave_one_out(u, c, y, subsets)
    fit = gm.fit_per_model(loo.problem.padded(points=size), layout, priors, chunk=chunk, pad_models=pad_models)
    pred, pred_var = gm.held_out_predictions(loo, fit.theta, layout, size, pad_models)
    sq = ((pred - loo.y_held) ** 2).reshape(loo.shape)
    nlpd = (0.5 * np.log(2 * np.pi * pred_var) + 0.5 * (pred - loo.y_held) ** 2 / pred_var).reshape(loo.shape)
    # the hyperparameters a GP learns from the whole subset
    z, _, _ = gm.standardise(y[subsets])
    whole = gm.Problem.of(u[subsets], c[subsets], z)
    whole_fit = gm.fit_per_model(whole, layout, priors, chunk=chunk, pad_models=pad_models)
    rows = [{"prior": task["prior"], "size": size, "subset": task["first"] + s,
             "heldout_mse": float(sq[s].mean()), "heldout_nlpd": float(nlpd[s].mean()),
             "heldout_abs_error": float(np.sqrt(sq[s]).mean()), "target_var": float(y[subsets[s]].var()),
             "evaluations": int(fit.evals.reshape(loo.shape)[s].sum())} for s in range(len(subsets))]
    return {"rows": rows, "params": np.asarray(layout.constrained(whole_fit.theta)),
            "models": int(fit.evals.size), "evaluations": int(fit.computed), "status": fit.status,
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv, extra=add_arguments, parallel=True)
    require("jax")
    import jax
    import pandas as pd

    from experiments import gp_model as gm
    from experiments._parallel import run_tasks

    gm.limit_blas_threads(1)
    device = jax_device(args.device)
    jax.config.update("jax_default_device", device)
    chunk = args.chunk or (1 if device.platform == "cpu" else 32)
    preset = PRESETS[args.preset]
    prov = Provenance(__file__, args, device=str(device), libraries=("numpy", "pandas", "jax", "jaxlib", "ray"))

    table, u, c, y = load_sweep(args.sweep)
    layout = essay_layout()
    # which part of the kernel each parameter belongs to, for prose that sums up a part
    PARTS = [n.split("[")[0] if "[" in n else ("weight" if n.startswith("w_") else n) for n in layout.names]
    rng = np.random.default_rng(args.seed)
    sizes = [s for s in preset["sizes"] if s <= len(table)]
    subsets = {size: draw_subsets(len(table), size, preset["subsets"], rng) for size in sizes}

    # tasks: blocks of subsets, biggest sizes first (they take longest: a cluster starts them early)
    block = min(SUBSETS_PER_TASK, preset["subsets"])
    tasks = [{"prior": prior, "size": size, "first": first, "subsets": subsets[size][first:first + block]}
             for size in sorted(sizes, reverse=True) for prior in PRIOR_NAMES
             for first in range(0, preset["subsets"], block)]
    shared = {"u": u, "c": c, "y": y, "chunk": chunk, "block": block, "platform": device.platform}
    results: dict[int, dict] = {}
    progress = Progress(len(tasks) * block, "subsets")

    def on_result(i, result):
        results[i] = result
        progress.update(len(result["rows"]))

    how = run_tasks("experiments.gp_loocv:fit_block", shared, tasks, args, on_result)
    progress.close()

    scaling_rows, param_frames, fit_stats = [], [], {}
    order = sorted(range(len(tasks)), key=lambda i: (PRIOR_NAMES.index(tasks[i]["prior"]), tasks[i]["size"],
                                                     tasks[i]["first"]))
    for i in order:
        task, result = tasks[i], results[i]
        scaling_rows.extend(result["rows"])
        values = result["params"]
        param_frames.append(pd.DataFrame({
            "experiment": task["size"], "run": np.repeat(task["first"] + np.arange(len(values)), layout.size),
            "param": np.tile(layout.names, len(values)), "value": values.reshape(-1), "prior": task["prior"],
            "part": np.tile(PARTS, len(values)),
        }))
        stats = fit_stats.setdefault(f"{task['prior']}/{task['size']}",
                                     {"models": 0, "evaluations": 0, "seconds": 0.0, "stopped": {}})
        stats["models"] += result["models"]
        stats["evaluations"] += result["evaluations"]
        stats["seconds"] = round(stats["seconds"] + result["seconds"], 2)
        for k, v in zip(*np.unique(result["status"], return_counts=True)):
            stats["stopped"][gm.STATUS[int(k)]] = stats["stopped"].get(gm.STATUS[int(k)], 0) + int(v)

    scaling = pd.DataFrame(scaling_rows)
    summary = (scaling.groupby(["prior", "size"], sort=False)["heldout_mse"]
               .agg(p10=lambda v: float(np.percentile(v, 10)), p90=lambda v: float(np.percentile(v, 90)),
                    geomean=lambda v: float(np.exp(np.mean(np.log(v)))), subsets="size")
               .reset_index())
    params = pd.concat(param_frames, ignore_index=True)
    for row in summary.itertuples():
        print(f"{row.prior:5s} size {row.size:4d}: geometric-mean held-out MSE {row.geomean:.4f} "
              f"(p10 {row.p10:.4f}, p90 {row.p90:.4f})", flush=True)

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
    # the staircase: does the error fall with every doubling of the data (geometric means)?
    falls = {p: {f"{a}->{b}": round(geo[p][b] / geo[p][a], 4) for a, b in zip(sizes, sizes[1:])} for p in PRIOR_NAMES}
    prov.results = {
        "sweep": site_path(args.sweep), "sweep_rows": len(table), "target": "log(max(val_error, 1e-3))",
        "sizes": sizes, "subsets_per_size": preset["subsets"], "parameters": layout.size,
        "kernel": "factorized (scalar + choice) + joint (scalar x choice), 4 mixing weights, output scale",
        "priors": {p: str(gm.PRIORS[p].lengthscale) for p in PRIOR_NAMES},
        "outputscale_prior": str(gm.TIGHT.outputscale), "noise_prior": str(gm.TIGHT.noise),
        "weight_prior": str(gm.TIGHT.weight),
        "geomean_heldout_mse": geo,
        "ratio_between_sizes": falls,
        "falls_at_every_doubling": {p: all(v < 1 for v in falls[p].values()) for p in PRIOR_NAMES},
        "loose_wins_fraction": wins,
        "claim": f"the looser prior lowers the geometric-mean held-out MSE at every size up to {CLAIM_SIZES}",
        "claim_holds": all(geo["loose"][s] < geo["tight"][s] for s in sizes if s <= CLAIM_SIZES),
        "ratio_loose_over_tight": {int(s): round(geo["loose"][s] / geo["tight"][s], 4) for s in sizes},
        "fits": fit_stats, "chunk": chunk, "parallel": how,
    }
    prov.write()
    return prov.results


if __name__ == "__main__":
    main()
