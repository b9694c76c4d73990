"""Kill a rebuild with SIGKILL at many moments; after each kill the output must be wholly the old
site or wholly the new one, and the next build must leave no temporary file behind.

    python bench/kill_build.py [--posts 300] [--trials 40] [--seed 1] [--keep DIR]

Every post's title changes between the old and the new site, so every page differs. For each trial
the old site (and its build cache) is put back, ``sitegen build`` starts in its own process group,
and the whole group is killed after a delay spread over the build's duration. Prints how many
kills left the old site, how many the new one, and any other outcome (there must be none).
The tests run :func:`run_trials` on a small site (tests/test_kill.py).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = ".sitegen-output"
TEMP = re.compile(r"^\..+\.(?:sitegen-(?:new|old)-\d+-\d+|building-\d+|old-\d+)$")
STAGED = re.compile(r"^\..+\.tmp\d+$")

POST = """---
title: "Post {i} ({version})"
date: 2024-{month:02d}-{day:02d}
tags: [t{tag}]
---

Paragraph of post {i} with $x_{{{i}}}^2$ and `code`[^1].

## Section

More text, a [link to the next post](/p{next:04d}/).

[^1]: A note on post {i}.
"""


def write_posts(root: Path, n: int, version: str) -> None:
    content = root / "content"
    content.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        text = POST.format(i=i, version=version, month=i % 12 + 1, day=i % 28 + 1, tag=i % 9, next=(i + 1) % n)
        (content / f"p{i:04d}.md").write_text(text, encoding="utf-8")


def tree(out: Path) -> dict[str, str]:
    """Every file of the output (the marker aside: it names the build) with its hash."""
    found = {}
    for path in out.rglob("*"):
        if path.is_file() and path.name != MARKER:
            found[str(path.relative_to(out))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def leftovers(root: Path, out: Path) -> list[str]:
    """Temporary files or folders of a build: beside the output, and hidden staged files inside it."""
    found = [p.name for p in root.iterdir() if TEMP.match(p.name)]
    found += [str(p.relative_to(out)) for p in out.rglob("*") if STAGED.match(p.name)]
    return found


def _cmd(root: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "sitegen", "build", str(root), "-j", str(jobs)]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _build(root: Path, jobs: int) -> subprocess.Popen:
    return subprocess.Popen(_cmd(root, jobs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(),
                            start_new_session=True)


def _restore(root: Path, saved: Path) -> None:
    for name in ("_site", ".sitegen-cache"):
        shutil.rmtree(root / name, ignore_errors=True)
        shutil.copytree(saved / name, root / name, symlinks=True)


def _settle(root: Path, timeout: float = 10.0) -> None:
    """Wait for the background deletion of a replaced site that the last build started."""
    deadline = time.monotonic() + timeout
    while any(TEMP.match(p.name) and "-old-" in p.name for p in root.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)


def run_trials(workdir: Path, posts: int, trials: int, seed: int = 1, jobs: int = 2, log=print) -> dict:
    """Returns counts: {"old": n, "new": n, "other": [...], "leftovers_after_next_build": [...]}."""
    rng = random.Random(seed)
    root = workdir / "site"
    root.mkdir(parents=True)
    (root / "sitegen.toml").write_text('title = "kill"\nbase_url = "https://example.org/"\n')
    write_posts(root, posts, "old")
    saved = workdir / "saved"
    first = subprocess.run(_cmd(root, jobs), capture_output=True, env=_env())
    assert first.returncode == 0, first.stderr.decode()
    old = tree(root / "_site")
    _settle(root)
    saved.mkdir()
    for name in ("_site", ".sitegen-cache"):
        shutil.copytree(root / name, saved / name, symlinks=True)
    write_posts(root, posts, "new")

    t0 = time.monotonic()
    proc = _build(root, jobs)
    err = proc.communicate()[1]
    duration = time.monotonic() - t0
    assert proc.returncode == 0, err.decode()
    new = tree(root / "_site")
    assert new != old
    _settle(root)
    log(f"{posts} posts: a full rebuild takes {duration:.2f} s; {trials} kills spread over it")

    counts = {"old": 0, "new": 0, "other": [], "leftovers_after_next_build": [], "left_by_kill": 0}
    for k in range(trials):
        _restore(root, saved)
        delay = duration * (k + rng.random()) / trials * 1.1
        proc = _build(root, jobs)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        now = tree(root / "_site") if (root / "_site").is_dir() else None
        if now == old:
            counts["old"] += 1
        elif now == new:
            counts["new"] += 1
        else:
            differ = "missing" if now is None else sum(1 for key in set(old) | set(now) if now.get(key) != new.get(key))
            counts["other"].append((round(delay, 3), differ))
        if leftovers(root, root / "_site"):
            counts["left_by_kill"] += 1
        # the next build, whatever the kill left
        proc = _build(root, jobs)
        err = proc.communicate()[1]
        assert proc.returncode == 0, err.decode()
        _settle(root)
        after = tree(root / "_site")
        left = leftovers(root, root / "_site")
        if after != new or left:
            counts["leftovers_after_next_build"].append((round(delay, 3), left, after == new))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work here instead of a temporary folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="sitegen-kill-"))
    try:
        counts = run_trials(work, args.posts, args.trials, args.seed, args.jobs)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"kills: {args.trials}; output was the old site {counts['old']} times, the new site {counts['new']} times, "
          f"anything else {len(counts['other'])} times {counts['other'] or ''}")
    print(f"kills that left temporary files beside the output: {counts['left_by_kill']}; "
          f"temporary files or a wrong site after the next build: {len(counts['leftovers_after_next_build'])} "
          f"{counts['leftovers_after_next_build'] or ''}")
    return 0 if not counts["other"] and not counts["leftovers_after_next_build"] else 1


if __name__ == "__main__":
    sys.exit(main())
