"""What a live notebook figure costs: bytes sent per training update against the whole table, and the
Python time an update adds to a training loop.

    python bench/notebook_update.py [--models 60] [--params 50] [--steps 200] [--chunk 1]
    python bench/notebook_update.py --update [--models 6] [--params 5] [--steps 0] [--updates 50]

A figure of ``models`` runs (6 experiments x models/6 runs) and ``params`` parameters is shown after
``steps`` steps, then receives ``steps`` more, ``chunk`` steps per append. Reported: the first output
(figure + runtime + picture), each live message (only new rows), what re-sending the table would cost
(parquet / CSV / JSON, the last as rows2prose's updater sends it), the redraw when the cell ends, and
milliseconds per append. Numbers, not pass/fail.

``--update``: the figure (``--steps 0``: a table without steps, the current value of every parameter
of every model, as rows2prose's ``set_data`` shows it) receives ``updates`` whole new tables of the
same shape with ``fig.update(df)``, in one cell. Reported beside issue #16's goal (about 1 KB per
values-only update, rows2prose's ``set_data``; a full redraw before): bytes per update, what a full
redraw of the same figure sends, and the Python time per update.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import sitegen.notebook as nb  # noqa: E402


class Counting(nb.Transport):
    def __init__(self):
        self.log = []

    def show(self, bundle, display_id):
        self.log.append(("show", display_id, len(bundle["text/html"].encode())))

    def replace(self, bundle, display_id):
        self.log.append(("replace", display_id, len(bundle["text/html"].encode())))


def table(models: int, params: int, steps, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    runs_per = max(1, models // 6)
    exp = np.repeat(np.arange(6) * 100 + 100, runs_per)[:models]
    run = np.tile(np.arange(runs_per), 6)[:models]
    s = np.asarray(list(steps))
    S, M, P = len(s), models, params
    frame = pd.DataFrame({
        "experiment": np.tile(np.repeat(exp, P), S),
        "run": np.tile(np.repeat(run, P), S),
        "step": np.repeat(s, M * P),
        "param": np.tile([f"p{i}" for i in range(P)], S * M),
        "value": (np.repeat(s, M * P) / 100.0 + rng.normal(0, 1, S * M * P)),
    })
    return frame


def updates(a) -> None:
    """Whole new tables of one shape, sent with fig.update(df): values messages, not drawings."""
    import os

    sent = Counting()
    nb.transport.TRANSPORT = sent
    template = " + ".join(f"⟦p{i}⟧" for i in range(a.params))

    def snapshot(seed):
        df = table(a.models, a.params, range(max(a.steps, 1)), seed=seed)
        return df.drop(columns="step") if a.steps == 0 else df

    fig = nb.figure(snapshot(0), template, interval=0, max_runs=None)
    fig._ipython_display_()
    first = sent.log[-1][2]
    times, sizes = [], []
    for i in range(1, a.updates + 1):
        df = snapshot(i)
        t = time.perf_counter()
        fig.update(df)
        times.append((time.perf_counter() - t) * 1000)
        sizes.append(fig.sent[-1][1])
    kinds = sorted({k for k, _ in fig.sent})
    t = time.perf_counter()
    fig._redraw()  # what each update sent before values messages: the whole output again
    redraw_ms = (time.perf_counter() - t) * 1000
    redraw = fig.sent[-1][1]
    size = statistics.median(sizes)
    goal = 1024
    shape = f"{a.steps} steps" if a.steps else "no steps (current values)"
    print(f"figure: {a.models} models x {a.params} parameters, {shape}; {a.updates} whole new tables of the same "
          f"shape with fig.update(df); messages: {kinds}; load average {os.getloadavg()[0]:.2f}")
    print(f"first output: {first / 1024:,.1f} KiB")
    print(f"bytes per update: median {size:,.0f} B, max {max(sizes):,.0f} B; goal about {goal:,} B "
          f"(rows2prose's set_data): {'met' if size <= 1.5 * goal else 'not met'} "
          f"({size / goal:.2f}x the goal)")
    print(f"a full redraw (what each update sent before): {redraw:,.0f} B in {redraw_ms:,.0f} ms, "
          f"{redraw / size:,.0f}x the values message")
    print(f"python time per update: median {statistics.median(times):.1f} ms, p90 {np.percentile(times, 90):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true", help="whole new tables of one shape (fig.update)")
    ap.add_argument("--models", type=int, default=None, help="default 60 (appends), 6 (--update)")
    ap.add_argument("--params", type=int, default=None, help="default 50 (appends), 5 (--update)")
    ap.add_argument("--steps", type=int, default=None, help="default 200 (appends), 0 (--update: no steps)")
    ap.add_argument("--chunk", type=int, default=1)
    ap.add_argument("--updates", type=int, default=50)
    a = ap.parse_args()
    small = a.update
    a.models = a.models if a.models is not None else (6 if small else 60)
    a.params = a.params if a.params is not None else (5 if small else 50)
    a.steps = a.steps if a.steps is not None else (0 if small else 200)
    if a.update:
        updates(a)
        return

    sent = Counting()
    nb.transport.TRANSPORT = sent
    template = " + ".join(f"⟦p{i}⟧" for i in range(a.params))
    start = table(a.models, a.params, range(a.steps))
    t0 = time.perf_counter()
    fig = nb.figure(start, template, interval=0, max_runs=None)
    fig._ipython_display_()
    first_ms = (time.perf_counter() - t0) * 1000
    first = sent.log[-1][2]

    times, sizes, rows_per = [], [], a.models * a.params * a.chunk
    for s in range(a.steps, 2 * a.steps, a.chunk):
        chunk = table(a.models, a.params, range(s, s + a.chunk), seed=s)
        t = time.perf_counter()
        fig.append(chunk)
        times.append((time.perf_counter() - t) * 1000)
        sizes.append(sent.log[-1][2])
    kinds = {k for k, _ in fig.sent}
    whole = fig.data
    parquet = io.BytesIO()
    whole.to_parquet(parquet, index=False)
    csv = len(whole.to_csv(index=False).encode())
    js = len(whole.to_json(orient="split").encode())
    t = time.perf_counter()
    nb._after_cell()
    settle_ms = (time.perf_counter() - t) * 1000
    settle = [n for k, n in fig.sent if k == "redraw"][-1]

    print(f"figure: {a.models} models x {a.params} parameters, {a.steps} steps shown, then {a.steps} more "
          f"in appends of {a.chunk} step(s) ({rows_per:,} rows each); messages: {sorted(kinds)}")
    print(f"first output: {first / 1024:,.0f} KiB in {first_ms:,.0f} ms")
    print(f"live message per append: median {statistics.median(sizes) / 1024:,.1f} KiB "
          f"({statistics.median(sizes) / rows_per:.1f} bytes per new row)")
    print(f"whole table after training ({len(whole):,} rows): parquet {parquet.tell() / 1024:,.0f} KiB, "
          f"CSV {csv / 1024:,.0f} KiB, JSON {js / 1024:,.0f} KiB (what re-sending it per update would cost)")
    print(f"python time per append: median {statistics.median(times):.1f} ms, "
          f"p90 {np.percentile(times, 90):.1f} ms")
    print(f"redraw when the cell ends: {settle / 1024:,.0f} KiB in {settle_ms:,.0f} ms (once per cell)")


if __name__ == "__main__":
    main()
