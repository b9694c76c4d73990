"""Build speed on a synthetic site: cold full build, warm rebuild, rebuild after one edit.

    python bench/build_bench.py [N_POSTS] [--keep DIR]

Each post has front matter, headings, a list, a table, a code block, a link, a footnote and math,
like a real essay's skeleton. Numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POST = """---
title: "Synthetic post {i}: notes on run {i}"
date: {date}
tags: [bench, topic-{tag}]
summary: "Post {i} of the benchmark site."
---

The opening paragraph of post {i} explains what the run measured, with an inline $x_{{{i}}}^2 + \\alpha$.

## Method

- first point about the optimiser
- second point, with `code` and *emphasis*
- third point linking to [the previous post](/post-{prev}/)

| setting | value |
|---|---|
| learning rate | 0.{i:04d} |
| batch | {batch} |

```python
def loss(w, x, y):
    return ((x @ w - y) ** 2).mean()  # post {i}
```

$$
\\mathcal{{L}}(w) = \\frac{{1}}{{n}} \\sum_{{i=1}}^n (x_i^\\top w - y_i)^2
$$

## Results

The loss fell steadily[^1] and the figure would go here.

[^1]: A footnote for post {i}.
"""


def generate_site(root: Path, n_posts: int) -> Path:
    """Write a site with ``n_posts`` synthetic posts under ``root``; returns root."""
    root = Path(root)
    content = root / "content"
    content.mkdir(parents=True, exist_ok=True)
    (root / "sitegen.toml").write_text('title = "Benchmark site"\nbase_url = "https://bench.example/"\n')
    for i in range(n_posts):
        day = i % 28 + 1
        month = (i // 28) % 12 + 1
        year = 2000 + i // 336
        (content / f"post-{i}.md").write_text(POST.format(
            i=i, prev=max(i - 1, 0), date=f"{year}-{month:02d}-{day:02d}", tag=i % 17, batch=2 ** (i % 8)))
    return root


def timed(cmd, cwd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=4000)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="sitegen-bench-"))
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    generate_site(root, args.n)
    sitegen = [sys.executable, "-m", "sitegen", "build"]
    cold = timed(sitegen + ["--no-cache"], root)
    first = timed(sitegen, root)           # fills the cache
    warm = timed(sitegen, root)            # nothing changed
    post = root / "content" / "post-7.md"
    post.write_text(post.read_text().replace("steadily", "steadily, then flattened"))
    edit = timed(sitegen, root)
    print(f"{args.n} posts, {sum(1 for _ in (root / '_site').rglob('*.html'))} pages")
    print(f"cold build (no cache):   {cold:6.2f} s  ({cold / args.n * 1000:.2f} ms/post)")
    print(f"first build (cache fill): {first:6.2f} s")
    print(f"rebuild, nothing changed: {warm:6.2f} s  ({warm / cold:.0%} of cold)")
    print(f"rebuild after one edit:   {edit:6.2f} s  ({edit / cold:.0%} of cold)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
