"""A bug that raises no error: the hidden layer's activation is missing.

One small network with one hidden layer learns two things at once from the same two inputs:
  * XOR classification (is exactly one of x1, x2 positive?) -> a logit
  * a linear regression target (y = 0.8 x1 - 0.5 x2 + noise) -> a number
and trains on the weighted sum of the two losses. We train it twice per seed: once correctly, and
once with the ``tanh`` left out by mistake. Without the activation the network is linear, and no
linear function separates XOR, so the classification loss stays near ln 2 = 0.693 while the
regression loss still falls: the total loss goes down and looks like training works.

The claim the essay makes and ``tests/test_experiments_small.py`` checks: the buggy model's loss
plateaus above the correct one's, for every seed.

Outputs (in ``--out``, default data/):
  silent_bug.parquet         every weight and bias, long format: experiment ("correct" or
                             "missing activation"), run (seed), step, param ("hidden.weight[h0,x1]"),
                             value, plus a "loss" column (total loss at that step, for tooltips)
  silent_bug_losses.parquet  the loss components in the same long format: param is
                             "classification loss", "regression loss" or "total loss"
  silent_bug.expr            the model as an expression template, one placeholder per weight
  silent_bug.provenance.json how these were made, and the headline numbers under "results"

Run: python -m experiments.silent_bug --preset small
     python -m experiments.silent_bug --preset small --live   # watch it train in `sitegen serve`

With ``--live`` both tables stream while training into ``silent_bug.parts/`` and
``silent_bug_losses.parts/`` (a part every half second and at the end of every run), and the first
lines printed say which preview page shows them; the final tables replace the parts at the end.
"""
from __future__ import annotations

import math
import sys

from experiments._common import Provenance, parse_args, torch_device

# ---------------------------------------------------------------- settings
PRESETS = {
    #          training steps, seeds, data points, record every n steps
    "tiny": dict(steps=300, seeds=2, points=128, trace_every=10),
    "small": dict(steps=1500, seeds=5, points=256, trace_every=10),
    "full": dict(steps=4000, seeds=20, points=512, trace_every=10),
}
HIDDEN_UNITS = 4
LEARNING_RATE = 0.03         # Adam
W_CLASSIFICATION = 1.0       # weights of the two losses in the total
W_REGRESSION = 0.5
REGRESSION_SLOPE = (0.8, -0.5)
REGRESSION_NOISE = 0.1
VARIANTS = ("correct", "missing activation")

UNITS = [f"h{i}" for i in range(HIDDEN_UNITS)]
INPUTS = ["x1", "x2"]
OUTPUTS = ["xor", "y"]
LABELS = {  # names the weights carry in the table and the template: hidden.weight[h0,x1]
    "hidden.weight": (UNITS, INPUTS), "hidden.bias": UNITS,
    "head.weight": (OUTPUTS, UNITS), "head.bias": OUTPUTS,
}


def make_data(points: int, seed: int, device):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(points, 2, generator=g) * 2 - 1
    xor = ((x[:, 0] > 0) != (x[:, 1] > 0)).float()
    slope = torch.tensor(REGRESSION_SLOPE)
    y = x @ slope + REGRESSION_NOISE * torch.randn(points, generator=g)
    return x.to(device), xor.to(device), y.to(device)


def make_model(activation: bool):
    import torch
    from torch import nn

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(2, HIDDEN_UNITS)
            self.head = nn.Linear(HIDDEN_UNITS, 2)

        def forward(self, x):
            h = self.hidden(x)
            if activation:          # the bug: this line went missing in the buggy runs
                h = torch.tanh(h)
            out = self.head(h)
            return out[:, 0], out[:, 1]

    return TwoHeads()


def losses(model, x, xor, y):
    import torch.nn.functional as F

    logit, y_hat = model(x)
    classification = F.binary_cross_entropy_with_logits(logit, xor)
    regression = F.mse_loss(y_hat, y)
    total = W_CLASSIFICATION * classification + W_REGRESSION * regression
    return classification, regression, total


def expression():
    """The correct model as a Program; unvectorized it shows every weight beside its input."""
    from sitegen import expr as E

    x = E.var("x", (2,), INPUTS, element_format="{label}")
    W1 = E.param("hidden.weight", (HIDDEN_UNITS, 2), LABELS["hidden.weight"])
    b1 = E.param("hidden.bias", (HIDDEN_UNITS,), UNITS)
    W2 = E.param("head.weight", (2, HIDDEN_UNITS), LABELS["head.weight"])
    b2 = E.param("head.bias", (2,), OUTPUTS)
    h = E.Ref("h", (HIDDEN_UNITS,))
    out = E.Ref("out", (2,))
    bce = E.FUNCTIONS.get("bce") or E.define(
        "bce", ["logit", "label"], E.softplus(E.var("logit")) - E.var("label") * E.var("logit"),
        doc="binary cross-entropy of a logit")
    w_cls, w_reg = E.const(W_CLASSIFICATION, "w_cls"), E.const(W_REGRESSION, "w_reg")
    program = E.Program([
        E.Comment(f"one hidden layer of {HIDDEN_UNITS} units, two heads: an XOR logit and a regression"),
        E.Comment("the buggy runs computed h = hidden.weight @ x + hidden.bias, without tanh"),
        E.Assign("h", E.tanh(W1 @ x + b1), UNITS),
        E.Assign("out", W2 @ h + b2, ["xor_logit", "y_hat"]),
        E.Comment(f"the loss, averaged over the data points; w_cls = {W_CLASSIFICATION}, w_reg = {W_REGRESSION}"),
        E.Assign("loss", w_cls * bce(out[0], E.var("label")) + w_reg * (out[1] - E.var("y")) ** 2),
    ])
    return program


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import torch

    from sitegen import expr as E
    from sitegen.live import preview_hint
    from sitegen.trace import Tracer

    settings = PRESETS[args.preset]
    device = torch_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # models this small only lose time to threads waiting on each other
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    prov = Provenance(script=__file__, args=args, device=str(device), libraries=("numpy", "pandas", "pyarrow", "torch"))
    weights_path, losses_path = out / "silent_bug.parquet", out / "silent_bug_losses.parquet"
    params = Tracer(chunk_steps=50, live=weights_path if args.live else None)
    loss_table = Tracer(chunk_steps=50, live=losses_path if args.live else None)
    if args.live:
        for path in (weights_path, losses_path):
            print(preview_hint(path), flush=True)

    x, xor, y = make_data(settings["points"], args.seed, device)
    final = {}
    for variant in VARIANTS:
        for run in range(settings["seeds"]):
            torch.manual_seed(1000 * args.seed + run)
            model = make_model(activation=(variant == "correct")).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
            for step in range(settings["steps"] + 1):
                classification, regression, total = losses(model, x, xor, y)
                if step % settings["trace_every"] == 0 or step == settings["steps"]:
                    params.record_module(step, model, experiment=variant, run=run, labels=LABELS,
                                         extra={"loss": total.detach()})
                    loss_table.record(step, {"classification loss": classification.detach(),
                                             "regression loss": regression.detach(),
                                             "total loss": total.detach()},
                                      experiment=variant, run=run)
                if step == settings["steps"]:
                    break
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
            final[(variant, run)] = [v.item() for v in (classification, regression, total)]
            params.publish()   # a run just ended: with --live the preview gets its whole curve now
            loss_table.publish()

    prov.output(params.write(weights_path))
    prov.output(loss_table.write(losses_path))
    prov.output(E.write_template(E.unvectorize(expression()), out / "silent_bug.expr"))

    def mean(variant, k):
        values = [final[(variant, r)][k] for r in range(settings["seeds"])]
        return sum(values) / len(values)

    prov.results = {
        "final_loss": {v: {"classification": mean(v, 0), "regression": mean(v, 1), "total": mean(v, 2)}
                       for v in VARIANTS},
        "final_total_loss_per_run": {v: [final[(v, r)][2] for r in range(settings["seeds"])] for v in VARIANTS},
        "ln2": math.log(2),
        "buggy_above_correct_every_run": all(
            final[("missing activation", r)][2] > final[("correct", r)][2] for r in range(settings["seeds"])),
        "steps": settings["steps"],
        "runs": settings["seeds"],
    }
    prov.write()
    r = prov.results["final_loss"]
    print(f"final total loss (mean of {settings['seeds']} runs): correct {r['correct']['total']:.4f}, "
          f"missing activation {r['missing activation']['total']:.4f} "
          f"(its classification loss {r['missing activation']['classification']:.3f}, ln 2 = 0.693)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
