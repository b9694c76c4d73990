"""Edit -> reload latency of ``sitegen serve`` on a large site, measured end to end.

    python bench/serve_latency.py [N_POSTS] [--edits 30] [--keep DIR]

Starts the real command (``python -m sitegen serve SITE --port PORT``) in its own process, listens
to the reload stream (server-sent events) the way the browser's reload script does, then repeatedly

* edits one post (appends a sentence to a paragraph) and
* rewrites one traced data table (as a training run does: new file, then rename over the old),

and times each from just before the file is written to the moment the "built" message naming the
changed page arrives at the client. The server's own log line gives the build's share of it; the
rest is the watcher, the quiet period that folds an editor's burst of events into one rebuild,
and the message.

The site is bench/build_bench.py's synthetic site, plus a traced table drawn by ``{expression}``
figures in DATA_POSTS of its posts. Numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_POSTS = 10

FIGURE = """
## A figure

```{{expression}} data/bench_trace.parquet
:experiment-title: training points
:run-title: seed
:caption: Every parameter of post {i}'s model, drawn in place.
y = ⟦w_age⟧ * age + ⟦w_dose⟧ * dose + ⟦bias⟧
noise ~ Normal(0, ⟦sigma | log⟧)
```
"""


def make_site(root: Path, n_posts: int) -> list[Path]:
    """The synthetic site; returns the posts that draw the traced table."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from build_bench import generate_site
    except ImportError:  # a bare copy of this script: write a plain site
        generate_site = _plain_site
    generate_site(root, n_posts)
    _trace_table(root / "data" / "bench_trace.parquet", scale=1.0)
    posts = sorted((root / "content").glob("*.md"))
    step = max(1, len(posts) // DATA_POSTS)
    charted = posts[::step][:DATA_POSTS]
    for i, post in enumerate(charted):
        post.write_text(post.read_text() + FIGURE.format(i=i))
    return charted


def _plain_site(root: Path, n_posts: int) -> None:
    (root / "content").mkdir(parents=True, exist_ok=True)
    for i in range(n_posts):
        (root / "content" / f"post-{i}.md").write_text(
            f"---\ntitle: Post {i}\ndate: 2020-01-{i % 28 + 1:02d}\n---\n\nThe loss fell steadily in run {i}.\n")


_TRACE = None


def _trace_frame():
    """A traced table shaped like a real one: 4 experiments x 10 runs x 100 steps x 4 parameters."""
    global _TRACE
    if _TRACE is None:
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        rows = []
        for e in (16, 64, 256, 1024):
            for r in range(10):
                start = rng.normal(size=4)
                target = np.array([0.5, -0.8, 0.1, 0.3])
                for s in range(0, 400, 4):
                    t = s / 396
                    for p, name in enumerate(("w_age", "w_dose", "bias", "sigma")):
                        v = start[p] + (target[p] - start[p]) * t
                        rows.append((e, r, s, name, abs(v) + 0.05 if name == "sigma" else v))
        _TRACE = pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"])
    return _TRACE


def _stage_table(path: Path, scale: float) -> Path:
    """Write the table under a temporary name; renaming it over ``path`` publishes it, as a training run does."""
    df = _trace_frame()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.assign(value=df["value"] * scale).to_parquet(tmp)
    return tmp


def _trace_table(path: Path, scale: float) -> None:
    os.replace(_stage_table(path, scale), path)


class Client:
    """A reader of the reload stream (server-sent events), as the browser's EventSource reads it."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.sendall((f"GET /__sitegen/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Accept: text/event-stream\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(4096)
        self.buf = buf.split(b"\r\n\r\n", 1)[1]

    def recv(self) -> dict:
        while True:
            while b"\n\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server went away")
                self.buf += chunk
            block, self.buf = self.buf.split(b"\n\n", 1)
            data = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
            if data:  # not a keep-alive comment or the retry setting
                return json.loads(b"\n".join(data))


def start_server(root: Path) -> tuple[subprocess.Popen, int, list[str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-u", "-m", "sitegen", "serve", str(root), "--port", str(free)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    port = None
    for line in proc.stdout:
        lines.append(line.rstrip())
        m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit("the server did not start:\n" + "\n".join(lines))

    def drain():
        for line in proc.stdout:
            lines.append(line.rstrip())

    threading.Thread(target=drain, daemon=True).start()
    return proc, port, lines


def measure(client: Client, lines: list[str], edit, page: str, count: int, pause: float):
    """``edit(i)`` prepares the i-th change and returns the call that saves it (the timed part)."""
    totals, builds = [], []
    for i in range(count):
        time.sleep(pause)  # let the previous rebuild and any idle work finish
        save = edit(i)
        seen = len(lines)
        t0 = time.perf_counter()
        save()
        while True:
            msg = client.recv()
            if msg["type"] == "failed":
                raise SystemExit("the build failed:\n" + "\n".join(p["text"] for p in msg["problems"]))
            if msg["type"] == "built" and (msg.get("all") or page in msg["written"]):
                break
        totals.append(time.perf_counter() - t0)
        deadline = time.monotonic() + 5
        build_ms = None
        while build_ms is None and time.monotonic() < deadline:
            for line in lines[seen:]:
                m = re.search(r" -> .*\((\d+) ms\)$", line)
                if m:
                    build_ms = int(m.group(1))
            time.sleep(0.005)
        builds.append(build_ms / 1000 if build_ms is not None else float("nan"))
    return totals, builds


def report(name: str, totals: list[float], builds: list[float]) -> None:
    ms = sorted(t * 1000 for t in totals)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    b = [x * 1000 for x in builds if x == x]
    print(f"{name:<22} median {statistics.median(ms):6.1f} ms   p95 {p95:6.1f} ms   "
          f"min {ms[0]:6.1f}   max {ms[-1]:6.1f}   (build alone: median {statistics.median(b):5.1f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=4000)
    ap.add_argument("--edits", type=int, default=30)
    ap.add_argument("--pause", type=float, default=0.4, help="seconds between edits")
    ap.add_argument("--keep", type=Path, help="build the site in this folder and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="sitegen-serve-bench-"))
    if not (root / "content").is_dir():
        t = time.perf_counter()
        charted = make_site(root, args.n)
        print(f"generated {args.n} posts in {time.perf_counter() - t:.1f} s")
    else:
        charted = sorted(p for p in (root / "content").glob("*.md") if "bench_trace" in p.read_text())
    t = time.perf_counter()
    proc, port, lines = start_server(root)
    print(f"first build and start: {time.perf_counter() - t:.1f} s  ({lines[-2] if len(lines) > 1 else ''})")
    try:
        client = Client(port)
        client.recv()  # hello
        posts = sorted((root / "content").glob("*.md"))
        post = next(p for p in posts[len(posts) // 2:] if p not in charted)
        text = post.read_text()
        marker = "The opening paragraph" if "The opening paragraph" in text else text.split("\n")[-2][:20]
        slug = post.stem
        page = f"/{slug}/index.html"

        def edit_post(i):
            new = text.replace(marker, f"Edit {i}. {marker}", 1)
            return lambda: post.write_text(new)

        data_page = f"/{charted[0].stem}/index.html"
        table = root / "data" / "bench_trace.parquet"

        def edit_data(i):
            staged = _stage_table(table, scale=1.0 + (i + 1) * 1e-3)
            return lambda: os.replace(staged, table)

        measure(client, lines, edit_post, page, 3, args.pause)  # warm up
        post_totals, post_builds = measure(client, lines, edit_post, page, args.edits, args.pause)
        measure(client, lines, edit_data, data_page, 2, args.pause)
        data_totals, data_builds = measure(client, lines, edit_data, data_page, max(5, args.edits // 3), args.pause)
        print(f"{args.n} posts, {len(charted)} of them drawing data/bench_trace.parquet; "
              f"save -> 'built' message at a connected client:")
        report("one post edited", post_totals, post_builds)
        report("data table rewritten", data_totals, data_builds)
        print(f"(timed from the save: write_text() of the post, the rename that publishes the table; the "
              f"data time includes re-rendering the {len(charted)} posts that draw it, not the browser drawing them)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
