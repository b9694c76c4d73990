"""Build time of posts that used to hang: a 5 MB post and 30,000 headings of the same text (issue #12).

    python bench/pathological.py [--scale 1.0]

Each case is a one-post site built from scratch in this process (one worker, no cache); prints wall
and CPU seconds (CPU time is what to compare on a shared, loaded machine). Numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

FRONT = "---\ntitle: A\ndate: 2024-01-01\n---\n"
PARA = "Some *emphasis* and `code` with a [link](https://example.org/) and $x^2$ math, plus a note[^1].\n\n"


def cases(scale: float) -> dict[str, str]:
    mb = int(5_000_000 * scale)
    return {
        "5 MB of prose (one word after another)": "## Section\n\n" + "word " * (mb // 5) + "\n",
        "5 MB of paragraphs with emphasis, code, links, math, footnotes":
            "## Section\n\n" + PARA * (mb // len(PARA)) + "[^1]: A note.\n",
        "30,000 headings of the same text": "## Same\n\nText.\n\n" * int(30_000 * scale),
        "200,000 undefined footnote references": "[^nope] " * int(200_000 * scale) + "\n",
    }


def build_once(body: str) -> tuple[float, float, int]:
    from sitegen.build import Builder
    from sitegen.errors import BuildError

    root = Path(tempfile.mkdtemp(prefix="sitegen-patho-"))
    try:
        (root / "content").mkdir()
        (root / "sitegen.toml").write_text('title = "t"\nbase_url = "https://example.org/"\n')
        (root / "content" / "a.md").write_text(FRONT + body, encoding="utf-8")
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            problems = len(Builder(root, workers=1, use_cache=False).build().problems)
        except BuildError as exc:
            problems = len(exc.problems)
        return time.perf_counter() - wall, time.process_time() - cpu, problems
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of every case (1.0: the issue's)")
    args = parser.parse_args()
    build_once("Warm up: imports.\n")
    for name, body in cases(args.scale).items():
        wall, cpu, problems = build_once(body)
        print(f"{name}: {len(body) / 1e6:.2f} MB, {wall:.2f} s wall, {cpu:.2f} s CPU, {problems} problem(s)")


if __name__ == "__main__":
    main()
