"""Build speed on a synthetic site: cold full build, warm rebuild, rebuild after one edit.

    python bench/build_bench.py [N_POSTS] [--keep DIR] [--edits 3]
    python bench/build_bench.py [N_POSTS] --vs-hugo [--pairs 3]

Each post has front matter, headings, a list, a table, a code block, a link, a footnote and math,
like a real essay's skeleton. Numbers, not pass/fail.

``--vs-hugo`` writes the same posts as a Hugo site with minimal templates that make the same kinds of
pages (a post page with its table of contents, the paginated index, a page per tag, the tags page, the
feed and the sitemap) and times cold builds of the two in alternation (A B A B ...), one ratio per pair,
with each build's peak memory. Hugo leaves math as text where sitegen converts it to MathML, so Hugo
does strictly less work per post here.
"""
from __future__ import annotations

import argparse
import json
import os
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


HUGO_CONFIG = """baseURL = "https://bench.example/"
title = "Benchmark site"
disableKinds = []
[pagination]
  pagerSize = 20
paginate = 20
[markup.highlight]
  noClasses = false
[markup.tableOfContents]
  startLevel = 2
  endLevel = 3
[taxonomies]
  tag = "tags"
"""

HUGO_LAYOUTS = {
    "_default/baseof.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ .Title }} | {{ .Site.Title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="alternate" type="application/rss+xml" href="/index.xml"></head>
<body><header><a href="/">{{ .Site.Title }}</a></header><main>{{ block "main" . }}{{ end }}</main></body></html>
""",
    "_default/single.html": """{{ define "main" }}<article><h1>{{ .Title }}</h1>
<time datetime="{{ .Date.Format "2006-01-02" }}">{{ .Date.Format "January 2, 2006" }}</time>
<nav>{{ .TableOfContents }}</nav>{{ .Content }}
<ul>{{ range .Params.tags }}<li><a href="/tags/{{ . | urlize }}/">{{ . }}</a></li>{{ end }}</ul></article>{{ end }}
""",
    "_default/list.html": """{{ define "main" }}<h1>{{ .Title }}</h1><ul>
{{ range .Paginator.Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> {{ .Summary | plainify }}</li>{{ end }}
</ul>{{ template "_internal/pagination.html" . }}{{ end }}
""",
    "_default/terms.html": """{{ define "main" }}<h1>{{ .Title }}</h1><ul>
{{ range .Data.Terms.Alphabetical }}<li><a href="{{ .Page.RelPermalink }}">{{ .Page.Title }}</a> ({{ .Count }})</li>{{ end }}
</ul>{{ end }}
""",
    "index.html": """{{ define "main" }}<h1>{{ .Site.Title }}</h1><ul>
{{ range (.Paginate (where .Site.RegularPages "Type" "posts")).Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a>
{{ .Summary | plainify }}</li>{{ end }}</ul>{{ template "_internal/pagination.html" . }}{{ end }}
""",
}


def generate_hugo_site(root: Path, n_posts: int) -> Path:
    """The same posts as ``generate_site`` in a Hugo site (content/posts/, minimal layouts)."""
    root = Path(root)
    posts = root / "content" / "posts"
    posts.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(HUGO_CONFIG)
    for rel, text in HUGO_LAYOUTS.items():
        f = root / "layouts" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    for i in range(n_posts):
        day = i % 28 + 1
        month = (i // 28) % 12 + 1
        year = 2000 + i // 336
        body = POST.format(i=i, prev=max(i - 1, 0), date=f"{year}-{month:02d}-{day:02d}", tag=i % 17,
                           batch=2 ** (i % 8))
        (posts / f"post-{i}.md").write_text(body.replace("](/post-", "](/posts/post-"))
    return root


def timed(cmd, cwd) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the build's worker processes included)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load_average() -> str:
    try:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def measure_one(cmd: list[str], cwd: Path, clean: Path) -> tuple[float, float]:
    """A cold build in a fresh process that reports its own child's peak memory."""
    shutil.rmtree(clean, ignore_errors=True)
    probe = ("import json, resource, subprocess, sys, time\n"
             "t = time.perf_counter()\n"
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "w = time.perf_counter() - t\n"
             "print(json.dumps([w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))\n")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=cwd, check=True, capture_output=True, text=True)
    wall, peak = json.loads(out.stdout)
    return wall, peak


def vs_hugo(n_posts: int, pairs: int, root: Path) -> None:
    hugo = shutil.which("hugo")
    if not hugo:
        sys.exit("bench: --vs-hugo needs Debian's hugo (apt-get install hugo)")
    ours = generate_site(root / "sitegen", n_posts)
    theirs = generate_hugo_site(root / "hugo", n_posts)
    version = subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.split()[1]
    sitegen = [sys.executable, "-m", "sitegen", "build", "--no-cache"]
    hugo_cmd = [hugo, "--quiet", "--destination", "public"]
    # one untimed build of each warms the OS file cache and Python's bytecode cache
    measure_one(sitegen, ours, ours / "_site")
    measure_one(hugo_cmd, theirs, theirs / "public")
    rows = []
    for _ in range(pairs):
        a = measure_one(sitegen, ours, ours / "_site")
        b = measure_one(hugo_cmd, theirs, theirs / "public")
        rows.append((a, b))
    pages_a = sum(1 for _ in (ours / "_site").rglob("*.html"))
    pages_b = sum(1 for _ in (theirs / "public").rglob("*.html"))
    print(f"{n_posts} posts; sitegen {pages_a} pages, hugo {version} {pages_b} pages; {pairs} alternating pairs")
    print(f"{'pair':>4} {'sitegen s':>10} {'hugo s':>8} {'ratio':>6} {'sitegen MB':>11} {'hugo MB':>8}")
    ratios = []
    for k, ((wa, ma), (wb, mb)) in enumerate(rows, 1):
        ratios.append(wa / wb)
        print(f"{k:>4} {wa:10.2f} {wb:8.2f} {wa / wb:6.2f} {ma:11.0f} {mb:8.0f}")
    ratios.sort()
    med = ratios[len(ratios) // 2]
    verdict = "met" if ratios[-1] <= 1.0 else "NOT met"
    print(f"cold build, sitegen / hugo: median {med:.2f}x, worst {ratios[-1]:.2f}x "
          f"(goal: at most 1.00x in every pair: {verdict}); {load_average()}")


def compile_package() -> None:
    """Write sitegen's bytecode before anything is timed, as installing it does: with
    PYTHONDONTWRITEBYTECODE set (as on the shared machine) and a source checkout, every timed process
    would otherwise compile the whole package again, a cost no installed copy pays."""
    import importlib.util

    spec = importlib.util.find_spec("sitegen")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            subprocess.run([sys.executable, "-m", "compileall", "-q", folder], check=False,
                           stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=4000)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    ap.add_argument("--vs-hugo", action="store_true", help="cold builds beside Hugo on the same posts, alternating")
    ap.add_argument("--pairs", type=int, default=3, help="alternating pairs for --vs-hugo")
    ap.add_argument("--edits", type=int, default=3, help="one-post rebuilds timed (the median is shown)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="sitegen-bench-"))
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    compile_package()
    if args.vs_hugo:
        try:
            vs_hugo(args.n, args.pairs, root)
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        return
    generate_site(root, args.n)
    sitegen = [sys.executable, "-m", "sitegen", "build"]
    cold, cold_cpu = timed(sitegen + ["--no-cache"], root)
    first, first_cpu = timed(sitegen, root)    # fills the cache
    warm, warm_cpu = timed(sitegen, root)      # nothing changed
    post = root / "content" / "post-7.md"
    edits = []
    for k in range(args.edits):                # one post edited, `sitegen build` again
        post.write_text(post.read_text().replace("steadily", f"steadily ({k})", 1))
        edits.append(timed(sitegen, root))
    edit, edit_cpu = sorted(edits)[len(edits) // 2]
    print(f"{args.n} posts, {sum(1 for _ in (root / '_site').rglob('*.html'))} pages; {load_average()}")
    print(f"{'':26} {'wall s':>7} {'CPU s':>7}")
    print(f"cold build (no cache):     {cold:7.2f} {cold_cpu:7.2f}  ({cold / args.n * 1000:.2f} ms/post wall)")
    print(f"first build (cache fill):  {first:7.2f} {first_cpu:7.2f}")
    print(f"rebuild, nothing changed:  {warm:7.2f} {warm_cpu:7.2f}  ({warm / cold:.0%} of cold wall)")
    print(f"rebuild after one edit:    {edit:7.2f} {edit_cpu:7.2f}  (median of {len(edits)})")
    for what, ratio in (("wall", edit / cold), ("CPU", edit_cpu / cold_cpu)):
        verdict = "met" if ratio <= 0.10 else "NOT met"
        print(f"one-post rebuild / cold build, {what}: {ratio:.3f} (goal: at most 0.10: {verdict})")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
