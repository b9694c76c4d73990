"""How much does tracing slow a training step? 60 models x 50 parameters, traced every step.

The models: 60 small MLPs (5 inputs -> 7 tanh units -> 1 output: 5*7 + 7 + 7 + 1 = 50
parameters each) trained together, one batched matrix multiply per layer, Adam, 256 points per
model. That is the "small training step" the tracer must not slow by more than 5%.

Variants timed. "while training" counts the record calls and moving chunks to the host; "writing
the parquet file at the end" is tracer.write() once after training, divided by the steps.
  baseline            no tracing
  record_batch        one (60, 50) block per step       <- the way to trace many models
  record_batch live   the same with Tracer(live=...) at its default cadence: parts for the preview
                      are written on a background thread while training
  record              60 record() calls per step, one per model (for comparison)

Times: "cpu" is the training thread's CPU time (time.thread_time on the CPU; on a busy machine,
time spent waiting for a core is not counted), "wall" the clock on the wall, which is what a
background writer thread can cost the training loop (a second core, the GIL); both are for the
training loop alone. For the live variant, "writer thread" is the CPU time of the writer thread
per training step (parts written while training, and those still queued when write() began).
At about 1 ms a step, the default 3000 steps make about 6 parts at the default half second.

Run: python bench/trace_overhead.py [--device cpu|cuda] [--steps 3000] [--threads 1] [--every 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS, INPUTS, HIDDEN, POINTS = 60, 5, 7, 256
NAMES = ([f"hidden.weight[{i},{j}]" for i in range(HIDDEN) for j in range(INPUTS)]
         + [f"hidden.bias[{i}]" for i in range(HIDDEN)]
         + [f"out.weight[0,{i}]" for i in range(HIDDEN)] + ["out.bias[0]"])
assert len(NAMES) == 50


def setup(device):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(MODELS, POINTS, INPUTS, generator=g).to(device)
    y = torch.sin(x.sum(-1, keepdim=True)).to(device)
    W1 = (0.5 * torch.randn(MODELS, INPUTS, HIDDEN, generator=g)).to(device).requires_grad_()
    b1 = torch.zeros(MODELS, 1, HIDDEN, device=device, requires_grad=True)
    W2 = (0.5 * torch.randn(MODELS, HIDDEN, 1, generator=g)).to(device).requires_grad_()
    b2 = torch.zeros(MODELS, 1, 1, device=device, requires_grad=True)
    params = [W1, b1, W2, b2]
    opt = torch.optim.Adam(params, lr=1e-2)

    def step():
        h = torch.tanh(torch.baddbmm(b1, x, W1))
        loss = ((torch.baddbmm(b2, h, W2) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return params, step


def run(variant: str, steps: int, device, every: int = 1) -> dict[str, float]:
    """Seconds per step: the training loop (wall and CPU of its thread), inside the tracer while
    training, the live writer thread's CPU, and writing the parquet file at the end."""
    import pyarrow.parquet as pq
    import torch

    from sitegen.trace import Tracer

    experiments = [f"n={10 * (m // 6 + 1)}" for m in range(MODELS)]
    runs = [m % 6 for m in range(MODELS)]
    params, step = setup(device)
    W1, b1, W2, b2 = params
    # Views of the parameters, made once: the optimizer updates them in place.
    blocks = [W1.transpose(1, 2), b1, W2, b2]
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "trace.parquet"
        live = variant.endswith(" live")
        tracer = Tracer(chunk_steps=50, live=table if live else None)
        method = variant.removesuffix(" live")
        for s in range(20):  # warm up
            step()
        sync(device)
        in_tracer = 0.0
        # CPU time of this thread: on a busy machine, time spent waiting for a core is not counted
        clock = time.thread_time if device.type == "cpu" else time.perf_counter
        start, wall = clock(), time.perf_counter()
        for s in range(steps):
            step()
            if s % every:
                continue
            t0 = clock()
            if method == "record_batch":
                # the parameters as they are: the tracer copies each into its buffer, no cat needed
                tracer.record_batch(s, NAMES, blocks, experiment=experiments, run=runs)
            elif method == "record":
                for m in range(MODELS):
                    tracer.record(s, {"hidden.weight": W1[m].T, "hidden.bias": b1[m, 0],
                                      "out.weight": W2[m].T, "out.bias": b2[m, 0]},
                                  experiment=experiments[m], run=runs[m])
            in_tracer += clock() - t0
        sync(device)
        loop, loop_wall = clock() - start, time.perf_counter() - wall
        final = parts = writer = 0.0
        if variant != "baseline":
            if live:
                parts = len(list((Path(tmp) / "trace.parts").glob("part-*.parquet")))
            t0 = clock()
            path = tracer.write(table)
            final = clock() - t0
            writer = tracer._live_cpu_seconds   # includes the parts still queued when write() began
            rows = pq.ParquetFile(path).metadata.num_rows
            assert rows == len(range(0, steps, every)) * MODELS * 50, rows
    return {"cpu": loop / steps, "wall": loop_wall / steps, "tracer": in_tracer / steps,
            "writer": writer / steps, "final": final / steps, "parts": parts}


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 suits models this small)")
    p.add_argument("--skip-per-model", action="store_true", help="skip the slow record() variant")
    p.add_argument("--every", type=int, default=10,
                   help="also time record_batch tracing every N-th step (as the experiments do)")
    args = p.parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.set_num_threads(args.threads)
    print(f"device {device}, {MODELS} models x 50 parameters, {args.steps} steps, "
          f"best of {args.repeats}, torch threads {torch.get_num_threads()}")
    variants = ["baseline", "record_batch", "record_batch live"] + ([] if args.skip_per_model else ["record"])
    if args.every > 1:
        variants.append(f"record_batch every {args.every}")
    import pandas  # noqa: F401 - imported once per program, not a per-step cost
    import pyarrow  # noqa: F401

    # Interleave the variants and keep each one's fastest run of each measure: other work on the
    # machine only ever makes a run slower. On a shared machine the load also drifts between
    # repeats, so the overhead in % is also given as the median, over repeats, of each run against
    # the baseline run of the same repeat (they ran seconds apart).
    best: dict[str, dict[str, float]] = {}
    paired: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        walls = {}
        for v in variants:
            every = args.every if v.endswith(f"every {args.every}") else 1
            name = v.split(" every")[0]
            result = run(name, args.steps, device, every)
            best[v] = {k: min(x, best[v][k]) for k, x in result.items()} if v in best else result
            walls[v] = result["wall"]
        for v in variants:
            paired[v].append(walls[v] / walls["baseline"] - 1)
    base = best["baseline"]
    print(f"{'baseline':>22}: {1e6 * base['wall']:7.1f} us/step wall, {1e6 * base['cpu']:7.1f} us/step cpu")
    for v in variants[1:]:
        r = best[v]
        print(f"{v:>22}: {1e6 * r['wall']:7.1f} us/step wall ({100 * (r['wall'] / base['wall'] - 1):+5.1f}%; "
              f"paired median {100 * statistics.median(paired[v]):+5.1f}%), "
              f"{1e6 * r['cpu']:7.1f} cpu ({100 * (r['cpu'] / base['cpu'] - 1):+5.1f}%); "
              f"in the tracer {1e6 * r['tracer']:5.1f} us/step = {100 * r['tracer'] / base['cpu']:4.1f}% of a step; "
              f"writing the parquet file at the end {1e6 * r['final']:6.1f} us/step")
        if v.endswith(" live"):
            print(f"{'':>22}  writer thread {1e6 * r['writer']:5.1f} us/step cpu "
                  f"= {100 * r['writer'] / base['cpu']:4.1f}% of a step, {int(r['parts'])} parts while training")
    return best


if __name__ == "__main__":
    main()
