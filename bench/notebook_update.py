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
import re
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
        self.log.append(("show", display_id, len(bundle["text/html"].encode()), bundle["text/html"]))

    def replace(self, bundle, display_id):
        self.log.append(("replace", display_id, len(bundle["text/html"].encode()), bundle["text/html"]))


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
    times, sizes, revs = [], [], []
    for i in range(1, a.updates + 1):
        df = snapshot(i)
        t = time.perf_counter()
        fig.update(df)
        times.append((time.perf_counter() - t) * 1000)
        sizes.append(fig.sent[-1][1])
        revs.append(re.search(r'data-sg-rev="([^"]+)"', fig._render().html).group(1))
    messages = sent.log[1:]
    kinds = sorted({k for k, _ in fig.sent})
    t = time.perf_counter()
    fig._redraw()  # what each update sent before values messages: the whole output again
    redraw_ms = (time.perf_counter() - t) * 1000
    redraw = fig.sent[-1][1]
    size = statistics.median(sizes)
    goal = 1024
    redraw_html = sent.log[-1][3]
    shape = f"{a.steps} steps" if a.steps else "no steps (current values)"
    print(f"figure: {a.models} models x {a.params} parameters, {shape}; {a.updates} whole new tables of the same "
          f"shape with fig.update(df); messages: {kinds}; load average {os.getloadavg()[0]:.2f}")
    print(f"first output: {first / 1024:,.1f} KiB")
    print(f"bytes per update: median {size:,.0f} B, max {max(sizes):,.0f} B; goal about {goal:,} B "
          f"(rows2prose's set_data): {'met' if size <= 1.25 * goal else 'not met'} "
          f"({size / goal:.2f}x the goal)")
    print(f"a full redraw (what each update sent before): {redraw:,.0f} B in {redraw_ms:,.0f} ms, "
          f"{redraw / size:,.0f}x the values message")
    print(f"python time per update: median {statistics.median(times):.1f} ms, p90 {np.percentile(times, 90):.1f} ms")
    if a.browser:
        values_ms, redraw_ms = in_browser(sent.log[0], messages, revs, redraw_html)
        print(f"browser time to show an update (Chromium, headless, applied and laid out): values message median "
              f"{statistics.median(values_ms):.1f} ms, p90 {np.percentile(values_ms, 90):.1f} ms; full redraw "
              f"median {statistics.median(redraw_ms):.1f} ms")


# JupyterLab's handling of a trusted HTML output: set innerHTML, re-create each script so it runs.
PUT = """(host, markup) => {
  host.innerHTML = markup;
  for (const s of [...host.querySelectorAll('script')]) {
    const c = document.createElement('script');
    for (const at of s.attributes) c.setAttribute(at.name, at.value);
    c.textContent = s.textContent;
    s.replaceWith(c);
  }
}"""
TIMED = """async ([id, html, rev, put]) => {
  const PUT = eval(put);
  let host = document.querySelector('[data-display-id="' + id + '"]');
  if (!host) { host = document.createElement('div'); host.dataset.displayId = id; document.body.appendChild(host); }
  const fig = () => document.querySelector('figure.sg-expression');
  const t0 = performance.now();
  PUT(host, html);
  if (fig().dataset.sgRev !== rev) await new Promise((done) => {
    const mo = new MutationObserver(() => { if (fig().dataset.sgRev === rev) { mo.disconnect(); done(); } });
    mo.observe(fig(), { attributes: true });
  });
  void document.body.offsetHeight;  // style and layout of what changed
  return performance.now() - t0;
}"""


def in_browser(first, messages, revs, redraw_html):
    """Milliseconds for Chromium to show each values message, and a full redraw of the same figure."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_content('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bench</title></head>'
                         "<body></body></html>")
        page.evaluate(f"([id, html, put]) => {{ const h = document.createElement('div'); h.dataset.displayId = id; "
                      f"document.body.appendChild(h); eval(put)(h, html); }}", [first[1], first[3], PUT])
        values_ms = [page.evaluate(TIMED, [m[1], m[3], rev, PUT]) for m, rev in zip(messages, revs)]
        redraw_rev = re.search(r'data-sg-rev="([^"]+)"', redraw_html).group(1)
        redraw_ms = []
        for _ in range(5):
            page.evaluate(TIMED, [first[1], first[3], re.search(r'data-sg-rev="([^"]+)"', first[3]).group(1), PUT])
            redraw_ms.append(page.evaluate(TIMED, [first[1], redraw_html, redraw_rev, PUT]))
        browser.close()
    return values_ms, redraw_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true", help="whole new tables of one shape (fig.update)")
    ap.add_argument("--models", type=int, default=None, help="default 60 (appends), 6 (--update)")
    ap.add_argument("--params", type=int, default=None, help="default 50 (appends), 5 (--update)")
    ap.add_argument("--steps", type=int, default=None, help="default 200 (appends), 0 (--update: no steps)")
    ap.add_argument("--chunk", type=int, default=1)
    ap.add_argument("--updates", type=int, default=50)
    ap.add_argument("--browser", action="store_true", help="--update: also time Chromium showing each update")
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
