"""A synthetic Jekyll blog: `sitegen import jekyll`, then a cold build, a no-change rebuild and a rebuild
after editing one post; and the same posts written the sitegen way, to price Liquid and MathJax parsing.

    python bench/jekyll_bench.py [N_POSTS] [--keep DIR]

Each Jekyll post has kramdown-escaped inline math, a display align block, {% post_url %}, {% highlight %},
{{ site.baseurl }} image links and a layout sitegen lacks; the sitegen twin has the same text with `$...$`,
fenced code and plain links. Numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JEKYLL_POST = """---
layout: prediction_post
title: "Run {i}: what the model learned"
categories: [ml, run-{tag}]
---

The loss \\\\( \\mathcal{{L}}_{{{i}}}(\\theta) \\\\) falls as \\\\( \\lVert \\nabla \\mathcal{{L}} \\rVert \\to 0 \\\\), see
[the previous run]({{% post_url {prev} %}}).

$$
\\begin{{align}}
\\theta_{{t+1}} &= \\theta_t - \\eta \\nabla \\mathcal{{L}}(\\theta_t) \\\\
\\eta &= \\operatorname{{clip}}(\\eta_0, 10^{{-3}})
\\end{{align}}
$$

![curve]({{{{ site.baseurl }}}}/assets/curve.svg)

{{% highlight python %}}
for step in range({i}):
    theta -= lr * grad(theta)
{{% endhighlight %}}
"""

SITEGEN_POST = """---
title: "Run {i}: what the model learned"
date: {date}
---

The loss $\\mathcal{{L}}_{{{i}}}(\\theta)$ falls as $\\lVert \\nabla \\mathcal{{L}} \\rVert \\to 0$, see
[the previous run](/{prev_slug}/).

$$
\\begin{{align}}
\\theta_{{t+1}} &= \\theta_t - \\eta \\nabla \\mathcal{{L}}(\\theta_t) \\\\
\\eta &= \\operatorname{{clip}}(\\eta_0, 10^{{-3}})
\\end{{align}}
$$

![curve](/assets/curve.svg)

```python
for step in range({i}):
    theta -= lr * grad(theta)
```
"""


def names(n: int):
    import datetime as dt

    start = dt.date(2015, 1, 1)
    for i in range(n):
        day = start + dt.timedelta(days=i)
        yield i, day, f"{day.isoformat()}-run-{i}"


def write_jekyll(root: Path, n: int) -> None:
    (root / "_posts").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "assets/curve.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / "_config.yml").write_text("title: Bench\nurl: https://bench.example.org\n")
    all_names = list(names(n))
    for i, day, name in all_names:
        prev = all_names[i - 1][2] if i else all_names[-1][2]
        (root / "_posts" / f"{name}.markdown").write_text(JEKYLL_POST.format(i=i, tag=i % 7, prev=prev))


def write_sitegen(root: Path, n: int) -> None:
    (root / "content").mkdir(parents=True)
    (root / "public/assets").mkdir(parents=True)
    (root / "public/assets/curve.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (root / "sitegen.toml").write_text('title = "Bench"\nbase_url = "https://bench.example.org/"\n')
    all_names = list(names(n))
    for i, day, name in all_names:
        prev = all_names[i - 1][2] if i else all_names[-1][2]
        (root / "content" / f"{name}.md").write_text(
            SITEGEN_POST.format(i=i, date=day.isoformat(), prev_slug=prev[11:]))


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def builds(site: Path, edit: Path) -> dict[str, float]:
    sitegen = [sys.executable, "-m", "sitegen"]
    out = {"cold build": timed(sitegen + ["build", str(site)])}
    out["no-change rebuild"] = timed(sitegen + ["build", str(site)])
    edit.write_text(edit.read_text() + "\nOne more line.\n")
    out["rebuild after one edit"] = timed(sitegen + ["build", str(site)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("posts", nargs="?", type=int, default=500)
    parser.add_argument("--keep", help="keep the generated sites in this folder")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="jekyll-bench-"))
    try:
        jekyll, site, twin = base / "jekyll", base / "imported", base / "sitegen"
        write_jekyll(jekyll, args.posts)
        write_sitegen(twin, args.posts)
        t_import = timed([sys.executable, "-m", "sitegen", "import", "jekyll", str(jekyll), str(site)])
        print(f"{args.posts} posts: import {t_import:.2f} s")
        first = next(iter(sorted((site / "content/_posts").iterdir())))
        imported = builds(site, first)
        native = builds(twin, next(iter(sorted((twin / "content").iterdir()))))
        print(f"{'':24} {'Jekyll (imported)':>18} {'sitegen twin':>14} {'ratio':>7}")
        for key in imported:
            print(f"{key:24} {imported[key]:>16.2f} s {native[key]:>12.2f} s {imported[key] / native[key]:>7.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
