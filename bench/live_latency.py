"""Chunk written -> pixels changed: how long a running experiment's new rows take to show in an open tab.

Copies the bundled site to a temporary folder, starts ``sitegen serve`` on it, opens the essay that
shows the batched GP fits (content/gp-parameters.md) in headless Chromium, and runs
``python -m experiments.gp_batch_convergence --live`` into the copy's data/. While it trains, a
thread reads the run's manifest (``_run.json``) as often as it can and notes when each part landed
and its last step; the page notes, on every animation frame, how many parts its live figure is drawn from (the preview
marks a live figure with it). For each part: the first frame drawn from it (or from a later part),
minus the time it landed.

    python bench/live_latency.py [--preset small|tiny] [--runs 1]

Prints the median, p95 and max over parts, the number of parts and how many redraws the tab got.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE = "/gp-parameters/"

WATCH = """() => {
  window.__seen = [];
  let last = -1;
  const tick = () => {
    let parts = -1;
    for (const note of document.querySelectorAll('figure[data-sg-figure] .sg-run-note[data-parts]')) {
      parts = Math.max(parts, +note.dataset.parts);
    }
    if (parts > last) { last = parts; window.__seen.push([Date.now() / 1000, parts]); }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def copy_site(dest: Path) -> None:
    for name in ("content", "data", "templates", "static", "experiments"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name)
    for name in ("sitegen.toml",):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)


def watch_manifest(manifest: Path, landed: list, stop: threading.Event) -> None:
    seen = None
    while not stop.is_set():
        try:
            st = os.stat(manifest)
            key = (st.st_mtime_ns, st.st_size)
            if key != seen:
                seen = key
                record = json.loads(manifest.read_text())
                if record.get("parts") and record.get("last_step") is not None:
                    landed.append((time.time(), int(record["last_step"]), int(record["parts"])))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)


def one_run(preset: str) -> dict:
    from playwright.sync_api import sync_playwright

    from sitegen.serve import PreviewServer

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        copy_site(site)
        manifest = site / "data" / "gp_batch_trace.parts" / "_run.json"
        log = []
        server = PreviewServer(site, port=0, log=log.append).start()
        landed: list = []
        stop = threading.Event()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(server.url + PAGE.lstrip("/"))
                page.evaluate("window.__sameDocument = true")
                page.evaluate(WATCH)
                watcher = threading.Thread(target=watch_manifest, args=(manifest, landed, stop), daemon=True)
                watcher.start()
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                trainer = subprocess.Popen(
                    [sys.executable, "-m", "experiments.gp_batch_convergence", "--live", "--preset", preset,
                     "--out", str(site / "data"), "--sweep", str(site / "data" / "hpo_sweep.parquet")],
                    cwd=site, env=env, stdout=subprocess.DEVNULL)
                # Collected while the run streams: once the script writes its finished tables (counts,
                # provenance) the essay's numbers change too, and that is a reload, which ends the watch.
                seen, same = [], True
                while True:
                    done = trainer.poll() is not None or not manifest.parent.exists() and landed
                    try:
                        seen = page.evaluate("window.__seen") or seen
                        same = same and page.evaluate("window.__sameDocument === true")
                    except Exception:
                        pass  # navigating
                    if done:
                        break
                    time.sleep(0.1)
                trainer.wait()
                stop.set()
                browser.close()
        finally:
            stop.set()
            server.stop()
            if os.environ.get("SITEGEN_BENCH_LOG"):
                print("\n".join(log))
    latencies = []
    for t, _, n in landed:
        shown = [ts for ts, parts in seen if parts >= n and ts >= t - 0.001]
        if shown:
            latencies.append(shown[0] - t)
    return {"latencies": latencies, "parts": len({n for _, _, n in landed}), "redraws": len(seen),
            "same_document": same, "missed": len(landed) - len(latencies)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=["tiny", "small", "full"])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    all_lat, results = [], []
    for _ in range(args.runs):
        r = one_run(args.preset)
        results.append(r)
        all_lat += r["latencies"]
    if not all_lat:
        print("no part was seen in the page", results)
        return {}
    all_lat.sort()
    out = {"median_s": statistics.median(all_lat), "p95_s": all_lat[min(len(all_lat) - 1, int(0.95 * len(all_lat)))],
           "max_s": all_lat[-1], "parts": sum(r["parts"] for r in results),
           "redraws": sum(r["redraws"] for r in results), "missed": sum(r["missed"] for r in results),
           "same_document": all(r["same_document"] for r in results)}
    print(f"gp_batch_convergence --live --preset {args.preset}: {out['parts']} parts, {out['redraws']} redraws "
          f"in the tab (never reloaded: {out['same_document']})")
    print(f"chunk written -> pixels changed: median {1000 * out['median_s']:.0f} ms, "
          f"p95 {1000 * out['p95_s']:.0f} ms, max {1000 * out['max_s']:.0f} ms"
          + (f"; {out['missed']} part(s) never shown as live (the finished table replaced them)" if out["missed"] else ""))
    return out


if __name__ == "__main__":
    main()
