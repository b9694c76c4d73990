"""Least squares on ill-conditioned data: first-order methods stall, Levenberg-Marquardt does not.

The model is linear but has two layers, y_hat = W2 (W1 x), with 6 inputs and 3 hidden units, fitted
to noise-free targets y = w* . x on data whose singular values run from 1 down to 1/condition
(1e5 in the small and full presets). Four ways to fit it, several initialisations (runs) each:

  * gradient descent (a step size stable for the largest curvature, so it crawls along the smallest)
  * Adam (beta1 = 0.9, beta2 = 0.999)
  * Levenberg-Marquardt (Gauss-Newton steps damped by lambda, adapted each iteration)
  * Adam with beta2 rounded to 1.0, as happens when it is stored in bfloat16: the second-moment
    estimate never moves from 0 and its bias correction divides 0 by 0, so the loss is NaN from the
    first step.

The claim the essay makes and ``tests/test_experiments_small.py`` checks: Levenberg-Marquardt reaches a
lower loss than gradient descent on the ill-conditioned problem, in every run.

Outputs (in ``--out``, default data/):
  ill_conditioned_losses.parquet  loss curves, long format: experiment (optimizer), run (seed), step,
                                  param ("loss"), value; steps are spaced geometrically (dense early).
                                  Non-finite losses are left out (see results.first_nonfinite_step).
  ill_conditioned.parquet         every weight, same format: W1[i,j], W2[0,j], plus a "loss" column
  ill_conditioned.expr            the model as an expression template
  ill_conditioned.provenance.json how these were made; "results" holds final losses per optimizer

Run: python -m experiments.ill_conditioned --preset small
     python -m experiments.ill_conditioned --preset small --live   # watch it train in `sitegen serve`

With ``--live`` both traced tables stream while training into ``ill_conditioned.parts/`` and
``ill_conditioned_losses.parts/`` (a part every half second and at the end of every run), and the
first lines printed say which preview page shows them; the final tables replace the parts at the end.
"""
from __future__ import annotations

import math
import sys
import time

from experiments._common import Provenance, parse_args, torch_device

# ---------------------------------------------------------------- settings
PRESETS = {
    #         condition number, first-order steps, LM iterations, runs, data points
    "tiny": dict(condition=1e5, steps=400, lm_steps=40, seeds=2, points=64),
    "small": dict(condition=1e5, steps=5000, lm_steps=100, seeds=5, points=200),
    "full": dict(condition=1e5, steps=50000, lm_steps=200, seeds=20, points=500),
}
FEATURES = 6
HIDDEN = 3
INIT_SCALE = 0.5
GD_LR = 0.1
ADAM_LR = 0.01
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
LM_LAMBDA = 1e-3          # initial damping; divided by 3 after a step that lowers the loss, doubled otherwise
RECORDED_STEPS = 200      # about this many steps per curve are traced, spaced geometrically

GD, ADAM, LM, ADAM_BF16 = "gradient descent", "Adam", "Levenberg-Marquardt", "Adam, beta2 = 1.0"
VARIANTS = (GD, ADAM, LM, ADAM_BF16)


def make_data(points: int, condition: float, seed: int, device):
    """X = sqrt(n) U diag(s) V^T with s from 1 to 1/condition, so X^T X / n has eigenvalues s^2."""
    import torch

    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(points, FEATURES, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(FEATURES, FEATURES, generator=g, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(condition), FEATURES, dtype=torch.float64)
    X = math.sqrt(points) * U @ torch.diag(s) @ V.T
    w_true = torch.randn(FEATURES, generator=g, dtype=torch.float64)
    y = X @ w_true
    return X.to(device), y.to(device)


def unpack(theta):
    W1 = theta[: HIDDEN * FEATURES].view(HIDDEN, FEATURES)
    W2 = theta[HIDDEN * FEATURES:].view(1, HIDDEN)
    return W1, W2


def residuals(theta, X, y):
    W1, W2 = unpack(theta)
    return (X @ W1.T @ W2.T).squeeze(-1) - y


def loss_of(theta, X, y):
    return residuals(theta, X, y).pow(2).mean()


def recorded_steps(last: int) -> set[int]:
    import numpy as np

    return {0, last} | set(np.unique(np.geomspace(1, max(last, 1), RECORDED_STEPS).astype(int)).tolist())


def train(variant, theta, X, y, settings, on_step):
    """Run one optimizer from ``theta``; ``on_step(step, theta, loss)`` sees every step."""
    import torch

    if variant == LM:
        return levenberg_marquardt(theta, X, y, settings["lm_steps"], on_step)
    beta1, beta2 = ADAM_BETAS
    if variant == ADAM_BF16:
        beta2 = torch.tensor(beta2, dtype=torch.bfloat16).item()   # 0.999 -> 1.0
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    theta = theta.clone().requires_grad_(True)
    for step in range(settings["steps"] + 1):
        loss = loss_of(theta, X, y)
        if not on_step(step, theta.detach(), loss.detach()) or step == settings["steps"]:
            break
        (grad,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            if variant == GD:
                theta -= GD_LR * grad
                continue
            # Adam, written out as torch.optim.Adam computes it (which refuses beta2 = 1.0)
            t = step + 1
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            m_hat = m / (1 - beta1 ** t)
            denom = v.sqrt() / math.sqrt(1 - beta2 ** t)   # beta2 = 1.0: 0 / 0
            theta -= ADAM_LR * m_hat / (denom + ADAM_EPS)
    return theta.detach()


def levenberg_marquardt(theta, X, y, iterations, on_step):
    import torch
    from torch.func import jacrev

    lam = LM_LAMBDA
    eye = torch.eye(theta.numel(), dtype=theta.dtype, device=theta.device)
    jacobian = jacrev(lambda th: residuals(th, X, y) / math.sqrt(len(y)))
    loss = loss_of(theta, X, y)
    for step in range(iterations + 1):
        if not on_step(step, theta, loss) or step == iterations:
            break
        J = jacobian(theta)
        r = residuals(theta, X, y) / math.sqrt(len(y))
        g = J.T @ r
        # Try damped Gauss-Newton steps until one lowers the loss (at most a few halvings of trust).
        for _ in range(30):
            delta = torch.linalg.solve(J.T @ J + lam * eye, -g)
            candidate = theta + delta
            new_loss = loss_of(candidate, X, y)
            if new_loss < loss:
                theta, loss, lam = candidate, new_loss, max(lam / 3, 1e-15)
                break
            lam *= 2
    return theta


def expression():
    from sitegen import expr as E

    inputs = [f"x{j + 1}" for j in range(FEATURES)]
    x = E.var("x", (FEATURES,), inputs, element_format="{label}")
    W1 = E.param("W1", (HIDDEN, FEATURES))
    W2 = E.param("W2", (1, HIDDEN))
    h = E.Ref("h", (HIDDEN,))
    return E.Program([
        E.Comment(f"a linear model in two layers: {FEATURES} inputs, {HIDDEN} hidden units, one output"),
        E.Assign("h", W1 @ x),
        E.Assign("y_hat", (W2 @ h)[0]),
        E.Comment("least squares, averaged over the data points"),
        E.Assign("loss", (E.Ref("y_hat") - E.var("y")) ** 2),
    ])


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import numpy as np
    import torch

    from sitegen import expr as E
    from sitegen.live import preview_hint
    from sitegen.trace import Tracer

    settings = PRESETS[args.preset]
    device = torch_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # matrices this small only lose time to threads waiting on each other
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    prov = Provenance(script=__file__, args=args, device=str(device),
                      libraries=("numpy", "pandas", "pyarrow", "torch"))
    weights_path, losses_path = out / "ill_conditioned.parquet", out / "ill_conditioned_losses.parquet"
    weights = Tracer(chunk_steps=50, live=weights_path if args.live else None)
    losses = Tracer(chunk_steps=50, live=losses_path if args.live else None)
    if args.live:
        for path in (weights_path, losses_path):
            print(preview_hint(path), flush=True)

    X, y = make_data(settings["points"], settings["condition"], args.seed, device)
    final: dict[tuple[str, int], float] = {}
    first_nonfinite: dict[tuple[str, int], int | None] = {}
    seconds: dict[str, float] = {v: 0.0 for v in VARIANTS}
    steps_taken: dict[str, int] = {v: 0 for v in VARIANTS}

    for variant in VARIANTS:
        last = settings["lm_steps"] if variant == LM else settings["steps"]
        record_at = recorded_steps(last)
        for run in range(settings["seeds"]):
            g = torch.Generator().manual_seed(1000 * args.seed + run)
            theta0 = (INIT_SCALE * torch.randn(HIDDEN * FEATURES + HIDDEN, generator=g,
                                               dtype=torch.float64)).to(device)
            state = {"loss": None, "nonfinite": None}

            def on_step(step, theta, loss):
                # Checking for NaN reads the loss on the host: only at recorded steps, where the
                # tracer's chunked copy happens anyway.
                state["loss"] = loss
                if step in record_at:
                    if not bool(torch.isfinite(loss)):
                        state["nonfinite"] = step
                        return False
                    W1, W2 = unpack(theta)
                    weights.record(step, {"W1": W1, "W2": W2}, experiment=variant, run=run,
                                   extra={"loss": loss})
                    losses.record(step, {"loss": loss}, experiment=variant, run=run)
                steps_taken[variant] += 1
                return True

            start = time.perf_counter()
            train(variant, theta0, X, y, settings, on_step)
            seconds[variant] += time.perf_counter() - start
            value = float(state["loss"])
            final[(variant, run)] = value if math.isfinite(value) else None  # JSON has no NaN
            first_nonfinite[(variant, run)] = state["nonfinite"]
            weights.publish()   # a run just ended: with --live the preview gets its whole curve now
            losses.publish()

    prov.output(weights.write(weights_path))
    prov.output(losses.write(losses_path))
    prov.output(E.write_template(E.unvectorize(expression()), out / "ill_conditioned.expr"))

    runs = range(settings["seeds"])

    def median(variant):
        values = [final[(variant, r)] for r in runs]
        return None if None in values else sorted(values)[len(values) // 2]

    prov.results = {
        "condition_number": float(np.linalg.cond(X.cpu().numpy())),
        "final_loss_median": {v: median(v) for v in VARIANTS},
        "final_loss_per_run": {v: [final[(v, r)] for r in runs] for v in VARIANTS},
        "first_nonfinite_step": {v: [first_nonfinite[(v, r)] for r in runs] for v in VARIANTS},
        "beta2_rounded": torch.tensor(ADAM_BETAS[1], dtype=torch.bfloat16).item(),
        "steps": {v: (settings["lm_steps"] if v == LM else settings["steps"]) for v in VARIANTS},
        "milliseconds_per_step": {v: 1000 * seconds[v] / max(steps_taken[v], 1) for v in VARIANTS},
        "lm_below_gd_every_run": all(final[(LM, r)] is not None and final[(GD, r)] is not None
                                     and final[(LM, r)] < final[(GD, r)] for r in runs),
        "runs": settings["seeds"],
    }
    prov.write()
    med = prov.results["final_loss_median"]
    print(f"condition number {prov.results['condition_number']:.3g}; median final loss: "
          + ", ".join(f"{v} {med[v]:.3g}" if med[v] is not None else f"{v} not finite" for v in VARIANTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
