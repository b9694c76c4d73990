"""Fitting the hold-one-out GPs of one dataset as a batch: lockstep versus each model on its own.

Hold-one-out cross-validation of a GP on n points needs n models, each fitted on n - 1 points. They
are small, so one wants to fit them together. Two ways:

* **lockstep**: one optimiser over all models' parameters with the summed loss. Every round
  evaluates every model, until the joint problem has converged, so a model that converged early
  keeps being computed (BoTorch's ``batch_cross_validation`` with a summed loss works this way);
* **per-model**: every model has its own L-BFGS state and its own stopping rule, and each round
  computes only the models still running (``gp_model.fit_per_model``): the batch costs the same
  evaluations as fitting the models one by one.

The GP is the essay kernel (``gp_model.EssayLayout``, 55 parameters). We trace every parameter of
every model for both (the animation in the essay),
count loss/gradient evaluations, and time each way against fitting the models one by one.

    python -m experiments.gp_batch_convergence --preset small --device auto
    python -m experiments.gp_batch_convergence --preset small --live   # watch the rounds in `sitegen serve`

With ``--live`` the trace is streamed after every compiled chunk of rounds (lockstep first, then
per-model) into ``gp_batch_trace.parts/``, and the line printed first says which preview page
shows it; the timing runs that follow are not traced.

Writes into ``--out`` (default ``data/``):

* ``gp_batch_trace.parquet``: ``experiment`` ("lockstep" or "per-model"), ``run`` (fold = the
  held-out configuration), ``step`` (evaluation round; every round up to 50, then every 10th and
  the last), ``param`` (the essay kernel's ``fact_lengthscale[log_epochs]``, ..., ``w_joint``,
  ``outputscale``, ``noise``, ``mean``; constrained values), ``value``; extra columns ``loss``
  (-log posterior of that model at that round) and ``stopped`` (1 once that model has stopped);
* ``gp_batch_counts.parquet``: one row per way of fitting (lockstep, per-model, one-by-one):
  evaluations, the waste ratio (evaluations / one-by-one evaluations), rounds, wall time;
* ``gp_batch_curves.parquet``: the folds' summed objective against model-evaluations spent, per way
  (``mode``, ``evaluations``, ``objective``): the essay's Chart 3;
* ``gp_batch_fold_evals.parquet``: evaluations per fold and way (experiment = way, run = fold);
* ``gp_batch_convergence.provenance.json`` with those numbers in ``results``.
"""
from __future__ import annotations

import time

import numpy as np

from experiments._common import DATA, Progress, Provenance, jax_device, parse_args, require, site_path

# ----------------------------------------------------------------------------------- settings
PRESETS = {
    "tiny": dict(folds=12, timing_repeats=1),
    "small": dict(folds=60, timing_repeats=3),
    "full": dict(folds=60, timing_repeats=5),
}
PRIOR = "tight"          # gp_model.PRIORS key; the lengthscale prior Gamma(3, 6)
CHUNK_STEPS = 10         # rounds per compiled call; the traced fits hand each call's rounds to the
                         # tracer (and with --live to the preview) as it returns. The fits take
                         # a few dozen rounds, so 50 made each fit one call and nothing to watch
TRACE_DENSE, TRACE_EVERY = 50, 10   # the trace keeps every round up to 50, then every 10th and the
                         # last: the page animates them, and lockstep can run for a thousand rounds
CURVE_POINTS = 400       # at most this many points per way in the objective-against-evaluations table
# ----------------------------------------------------------------------------------------------


def add_arguments(p):
    p.add_argument("--sweep", default=str(DATA / "hpo_sweep.parquet"),
                   help="the sweep table to model (default: the committed data/hpo_sweep.parquet)")


def timed(fn, repeats: int):
    """(result of the first call, its wall time, the best wall time of ``repeats`` later calls).
    The first call compiles whatever the traced fits above did not (only one-by-one's one-model
    shape); the later ones are the steady cost."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return result, first, best


def thin(frame, points: int):
    """At most ``points`` rows, evenly spaced, always the first and the last."""
    if len(frame) <= points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[keep]


def objective_curves(loss0, round_losses, one_losses, per_model_evals, folds: int):
    """Chart 3's table: ``mode``, ``evaluations`` (model-evaluations spent so far), ``objective``
    (the folds' summed -log posterior: each fold at its current point, a fold not started yet at its
    start). Lockstep spends ``folds`` per round; per-model the folds still running; one by one the
    folds are fitted in order, each to the end."""
    import pandas as pd

    frames = []
    lock = np.asarray(round_losses["lockstep"])
    frames.append(pd.DataFrame({"mode": "lockstep", "evaluations": np.arange(len(lock)) * folds,
                                "objective": lock.sum(axis=1)}))
    per = np.asarray(round_losses["per-model"])
    spent = np.array([np.minimum(per_model_evals, r).sum() for r in range(len(per))])
    frames.append(pd.DataFrame({"mode": "per-model", "evaluations": spent, "objective": per.sum(axis=1)}))
    start, finals = np.asarray(loss0, dtype=np.float64), np.array([ls[-1] for ls in one_losses])
    evaluations, objective, done = [0], [start.sum()], 0
    for i, ls in enumerate(one_losses):
        before = finals[:i].sum() + start[i + 1:].sum()
        for k, value in enumerate(ls, start=1):
            evaluations.append(done + k)
            objective.append(before + value)
        done += len(ls)
    frames.append(pd.DataFrame({"mode": "one-by-one", "evaluations": evaluations, "objective": objective}))
    return pd.concat([thin(f.drop_duplicates("evaluations", keep="last"), CURVE_POINTS) for f in frames],
                     ignore_index=True)


def main(argv=None) -> dict:
    args = parse_args(__doc__.splitlines()[0], argv, extra=add_arguments)
    import jax
    import pandas as pd

    require("jax")
    from experiments import gp_model as gm
    from experiments.gp_loocv import essay_layout, load_sweep
    from sitegen.live import preview_hint
    from sitegen.trace import Tracer

    gm.limit_blas_threads(1)
    device = jax_device(args.device)
    jax.config.update("jax_default_device", device)
    preset = PRESETS[args.preset]
    prov = Provenance(__file__, args, device=str(device), libraries=("numpy", "pandas", "jax", "jaxlib"))

    table, u, c, y = load_sweep(args.sweep)
    folds = min(preset["folds"], len(table))
    subset = np.random.default_rng(args.seed).choice(len(table), size=folds, replace=False)
    loo = gm.leave_one_out(u, c, y, subset[None, :])
    problem, layout, priors = loo.problem, essay_layout(), gm.PRIORS[PRIOR]
    opts = gm.Options()
    chunk = 1 if device.platform == "cpu" else 32

    # ---- the traced fits: every round's parameters go to the tracer as each compiled chunk returns,
    # so with --live the preview shows the rounds while they are computed
    trace_path = args.out / "gp_batch_trace.parquet"
    args.out.mkdir(parents=True, exist_ok=True)
    tracer = Tracer(chunk_steps=CHUNK_STEPS, live=trace_path if args.live else None)
    if args.live:
        print(preview_hint(trace_path), flush=True)
    names, runs = layout.names, np.arange(folds)
    x0 = np.broadcast_to(layout.initial(priors), (folds, layout.size))
    loss0 = np.asarray(gm.losses(x0, problem, priors, layout=layout))
    rounds_losses = jax.vmap(lambda x: gm.losses(x, problem, priors, layout=layout))

    def trace_start(experiment):
        tracer.record_batch(0, names, layout.constrained(x0), experiment=experiment, run=runs,
                            extra={"loss": loss0, "stopped": np.zeros(folds)})

    def kept(step, last):
        return step <= TRACE_DENSE or step % TRACE_EVERY == 0 or step == last

    round_losses = {"lockstep": [loss0], "per-model": [loss0]}   # every round's losses, for the curves

    def trace_lockstep(first, xs, state):
        # state.evals rounds have run: the rest of the last chunk ran after the joint fit stopped
        last, done = int(state.evals), bool(state.done)
        losses = np.asarray(rounds_losses(xs))
        for i in range(last - first + 1):
            step = first + i
            round_losses["lockstep"].append(losses[i])
            if kept(step, last if done else None):
                tracer.record_batch(step, names, layout.constrained(xs[i]), experiment="lockstep", run=runs,
                                    extra={"loss": losses[i],
                                           "stopped": np.full(folds, float(done and step == last))})
        tracer.publish()

    def trace_per_model(first, xs, fs, state):
        # a fold that is done has its final evaluation count: it stopped at that round
        evals, done = np.asarray(state.evals), np.asarray(state.done)
        last = int(evals.max())
        for i in range(last - first + 1):
            step = first + i
            round_losses["per-model"].append(np.asarray(fs[i]))
            if kept(step, last if done.all() else None):
                tracer.record_batch(step, names, layout.constrained(xs[i]), experiment="per-model", run=runs,
                                    extra={"loss": fs[i], "stopped": (done & (evals <= step)).astype(float)})
        tracer.publish()

    trace_start("lockstep")
    lock = gm.fit_lockstep(problem, layout, priors, opts, steps=CHUNK_STEPS, on_steps=trace_lockstep)
    trace_start("per-model")
    per_model = gm.fit_per_model(problem, layout, priors, opts, chunk=chunk, steps=CHUNK_STEPS,
                                 on_steps=trace_per_model)
    tracer.write(prov.output(trace_path))

    # ---- timings (untraced; the first call of each compiles, the best of the repeats is reported)
    repeats = preset["timing_repeats"]
    _, lock_first, lock_wall = timed(lambda: gm.fit_lockstep(problem, layout, priors, opts, steps=CHUNK_STEPS),
                                     repeats)
    _, model_first, model_wall = timed(
        lambda: gm.fit_per_model(problem, layout, priors, opts, chunk=chunk, steps=CHUNK_STEPS), repeats)
    one, one_first, one_wall = timed(lambda: gm.fit_one_by_one(problem, layout, priors, opts), repeats)

    # ---- the objective (summed -log posterior of the folds) against evaluations spent, each way
    one_losses = []   # per fold: its loss after each of its evaluations, fitted alone
    progress = Progress(folds, "folds", label="one-by-one, traced")
    for i in range(folds):
        seen = []
        gm.fit_per_model(problem.take(slice(i, i + 1)), layout, priors, opts,
                         on_steps=lambda first, xs, fs, state: seen.extend(np.asarray(fs[:, 0]).tolist()))
        one_losses.append(np.asarray(seen[:int(one.evals[i])]))
        progress.update()
    progress.close()
    curves = objective_curves(loss0, round_losses, one_losses, per_model.evals, folds)

    # ---- counts
    ways = {"lockstep": (lock, lock_wall, lock_first), "per-model": (per_model, model_wall, model_first),
            "one-by-one": (one, one_wall, one_first)}
    counts = pd.DataFrame([{
        "mode": mode, "folds": folds, "evaluations": fit.computed,
        "one_by_one_evaluations": one.computed, "waste_ratio": fit.computed / one.computed,
        "rounds": fit.rounds, "median_fold_evaluations": float(np.median(fit.evals)),
        "max_fold_evaluations": int(fit.evals.max()), "wall_s": wall, "first_call_s": first,
        "wall_ratio": wall / one_wall,
        "max_loss_gap_to_one_by_one": float(np.max(np.abs(fit.loss - one.loss))),
    } for mode, (fit, wall, first) in ways.items()])
    counts.to_parquet(prov.output(args.out / "gp_batch_counts.parquet"), index=False)
    curves.to_parquet(prov.output(args.out / "gp_batch_curves.parquet"), index=False)
    fold_evals = pd.concat([pd.DataFrame({"experiment": mode, "run": runs, "param": "evaluations",
                                          "value": (np.full(folds, fit.rounds) if mode == "lockstep"
                                                    else fit.evals).astype(np.float64)})
                            for mode, (fit, _, _) in ways.items()], ignore_index=True)
    fold_evals.to_parquet(prov.output(args.out / "gp_batch_fold_evals.parquet"), index=False)

    row = counts.set_index("mode")
    prov.results = {
        "folds": folds, "points_per_model": folds - 1, "parameters_per_model": layout.size,
        "prior": str(priors.lengthscale), "subset_rows": subset.tolist(), "chunk": chunk,
        "sweep": site_path(args.sweep), "trace_rounds": f"every round up to {TRACE_DENSE}, then every "
                                                       f"{TRACE_EVERY}th and the last",
        "final_objective": {m: float(curves[curves["mode"] == m]["objective"].iloc[-1]) for m in ways},
        "evaluations": {m: int(row.loc[m, "evaluations"]) for m in ways},
        "waste_ratio": {m: round(float(row.loc[m, "waste_ratio"]), 4) for m in ways},
        "wall_s": {m: round(float(row.loc[m, "wall_s"]), 4) for m in ways},
        "wall_ratio_to_one_by_one": {m: round(float(row.loc[m, "wall_ratio"]), 4) for m in ways},
        "first_call_s": {m: round(float(row.loc[m, "first_call_s"]), 3) for m in ways},
        "rounds": {m: int(row.loc[m, "rounds"]) for m in ways},
        "max_loss_gap_to_one_by_one": {m: float(row.loc[m, "max_loss_gap_to_one_by_one"]) for m in ways},
        "stopped": {gm.STATUS[k]: int(v) for k, v in zip(*np.unique(per_model.status, return_counts=True))},
        "lockstep_stopped": gm.STATUS[int(lock.status[0])],
        "trace_rows": len(tracer),
        "timing": f"best of {repeats} untraced calls after a first (compiling) call; "
                  "one BLAS thread, one XLA CPU thread",
    }
    prov.write()
    for mode in ways:
        print(f"{mode:10s} evaluations {row.loc[mode, 'evaluations']:6d}  "
              f"waste {row.loc[mode, 'waste_ratio']:.2f}x  rounds {row.loc[mode, 'rounds']:4d}  "
              f"wall {row.loc[mode, 'wall_s']:.3f} s ({row.loc[mode, 'wall_ratio']:.2f}x one-by-one)")
    return prov.results


if __name__ == "__main__":
    main()
