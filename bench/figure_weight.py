"""Page weight and frame time of the heaviest figure page, beside the rows2prose peer.

Builds a post with three animated expression figures, each 50 parameters x 60 runs x 200 steps
(the data drift from random starts to common targets, as models converging do, the same recipe as
/work/shared/bench/rows2prose_peer.py), serves the built site over HTTP on 127.0.0.1, and reports:

- bytes a reader transfers for the page: every file it loads (HTML, CSS, JS, animation data after
  scrubbing), each gzipped at level 9 as a static host would serve it;
- /work/shared/bench/frame_time.py on the page (drags the first step slider through every step).

    python bench/figure_weight.py                   # this project only
    python bench/figure_weight.py --peer PYTHON     # also the peer, with a python that has rows2prose

Numbers, not pass/fail. Needs Debian's chromium.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/bench")


def traced_table(P: int, R: int, S: int, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """The peer's recipe; ``noise`` adds step-to-step jitter (a random walk in log space, like SGD),
    which is what real traces look like and what compresses worst."""
    rng = np.random.default_rng(seed)
    start = rng.lognormal(0, 1, (P, R))
    target = rng.lognormal(0, 0.3, (P, 1))
    t = np.linspace(0, 1, S)[:, None, None]
    vals = start[None] * (1 - t) + target[None] * t  # S x P x R
    if noise:
        vals = vals * np.exp(np.cumsum(rng.normal(0, noise, vals.shape), axis=0))
    return pd.DataFrame({
        "experiment": "all",
        "run": np.tile(np.arange(R), S * P),
        "step": np.repeat(np.arange(S), P * R),
        "param": np.tile(np.repeat([f"lengthscale_{p:03d}" for p in range(P)], R), S),
        "value": vals.reshape(-1).astype("float64"),
    })


def make_site(root: Path, P: int, R: int, S: int, figures: int, noise: float) -> None:
    (root / "content").mkdir(parents=True)
    (root / "data").mkdir()
    traced_table(P, R, S, noise).to_parquet(root / "data" / "trace.parquet")
    template = "sum([\n" + "".join(f"  compare('feature_{p}') / ⟦lengthscale_{p:03d}⟧,  # lengthscale {p}\n"
                                    for p in range(P)) + "])\n"
    (root / "data" / "kernel.expr").write_text(template, encoding="utf-8")
    blocks = "\n\n".join(textwrap.dedent(f"""\
        ```{{expression}} data/trace.parquet
        :template: data/kernel.expr
        :log: auto
        :caption: Figure {i + 1}: {P} parameters, {R} runs, {S} steps.
        ```""") for i in range(figures))
    (root / "content" / "heavy.md").write_text(
        f"---\ntitle: Heavy figures\ndate: 2026-01-01\nsummary: benchmark page\n---\n\n{blocks}\n", encoding="utf-8")


def serve(folder: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


def page_weight(site: Path, page: str) -> dict[str, int]:
    """Gzipped bytes of the page and everything it loads (stylesheets, scripts, animation files)."""
    import re

    html = (site / page).read_text(encoding="utf-8")
    files = {page: site / page}
    for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        files[ref] = site / ref.lstrip("/")
    folder = (site / page).parent
    for f in folder.glob("*.bin"):
        files[f.name] = f
    return {name: len(gzip.compress(path.read_bytes(), 9)) for name, path in files.items()}


def frame_time(url: str) -> str:
    done = subprocess.run([sys.executable, str(SHARED / "frame_time.py"), url], capture_output=True, text=True)
    return (done.stdout + done.stderr).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=50)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--figures", type=int, default=3)
    ap.add_argument("--noise", type=float, default=0.0,
                    help="step-to-step jitter (log-space random walk sd), e.g. 0.05; 0 = the peer's smooth data")
    ap.add_argument("--peer", metavar="PYTHON", help="a python with rows2prose 0.1.0 (and setuptools<81)")
    ap.add_argument("--keep", type=Path, help="build here instead of a temporary folder")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sitegen-bench-"))
    src, out = work / "site", work / "out"
    make_site(src, args.params, args.runs, args.steps, args.figures, args.noise)
    done = subprocess.run([sys.executable, "-m", "sitegen", "build", str(src), "--out", str(out), "--no-cache"],
                          capture_output=True, text=True, cwd=ROOT)
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr)
    if done.returncode:
        sys.exit(done.stdout + done.stderr)

    sizes = page_weight(out, "heavy/index.html")
    total = sum(sizes.values())
    frames = sum(v for k, v in sizes.items() if k.endswith(".bin"))
    print(f"sitegen: {args.figures} figures of {args.params} params x {args.runs} runs x {args.steps} steps"
          + (f", jitter {args.noise}" if args.noise else ", smooth data as in the peer"))
    print(f"  html {sizes['heavy/index.html'] / 1024:.0f} KB gz, animation data {frames / 1024:.0f} KB "
          f"({frames / 1024 / args.figures:.0f} KB per figure), css+js "
          f"{(total - frames - sizes['heavy/index.html']) / 1024:.1f} KB gz; total {total / 1024:.0f} KB "
          f"({'under' if total < 1_000_000 else 'OVER'} the 1 MB budget)")
    base, server = serve(out)
    print("  frame_time.py:", frame_time(base + "heavy/"))
    server.shutdown()

    if args.peer:
        peer_html = work / "peer.html"
        made = subprocess.run([args.peer, str(SHARED / "rows2prose_peer.py"), str(peer_html),
                               str(args.params), str(args.runs), str(args.steps)], capture_output=True, text=True)
        if made.returncode:
            print("peer: could not build:", (made.stderr or made.stdout).strip().splitlines()[-1])
            return
        size = len(gzip.compress(peer_html.read_bytes(), 9))
        print(f"rows2prose 0.1.0 peer: ONE figure of {args.params} x {args.runs} x {args.steps}: "
              f"{size / 1024:.0f} KB gz page")
        base, server = serve(work)
        print("  frame_time.py:", frame_time(base + "peer.html"))
        server.shutdown()


if __name__ == "__main__":
    main()
