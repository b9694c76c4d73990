"""A build killed at any moment: the output is wholly the old site or wholly the new one, and the
next build leaves no temporary file, published or beside the output."""
from __future__ import annotations

import os
import pathlib
import shutil
import sys

import pytest

from sitegen import output
from sitegen.build import Builder

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "bench"))
import kill_build  # noqa: E402  (the harness is also a benchmark script)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _counting(limit: int, counter: list):
    """Patches every file-system step of a build's write to count itself, and to end the process
    abruptly (no cleanup, like SIGKILL) just before step number ``limit``."""
    targets = [(os, "link"), (os, "rename"), (os, "replace"), (os, "mkdir"), (os, "unlink"),
               (pathlib.Path, "write_bytes"), (output, "exchange"), (shutil, "copy2")]

    def wrap(original):
        def step(*args, **kwargs):
            counter[0] += 1
            if counter[0] == limit:
                os._exit(137)
            return original(*args, **kwargs)
        return step

    for owner, name in targets:
        setattr(owner, name, wrap(getattr(owner, name)))


def _child_build(root, limit: int, count_file=None) -> int:
    """Build in a forked process that dies at step ``limit``; returns its exit status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            counter = [0]
            _counting(limit, counter)
            Builder(root, workers=1).build()
            if count_file:
                pathlib.Path(count_file).write_text(str(counter[0]))
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_killed_before_every_file_operation_of_the_write(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "sitegen.toml").write_text('title = "kill"\nbase_url = "https://example.org/"\n')
    kill_build.write_posts(root, 4, "old")
    Builder(root, workers=1).build()
    old = kill_build.tree(root / "_site")
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("_site", ".sitegen-cache"):
        shutil.copytree(root / name, saved / name)
    kill_build.write_posts(root, 4, "new")

    count_file = tmp_path / "steps"
    assert _child_build(root, -1, count_file) == 0
    new = kill_build.tree(root / "_site")
    steps = int(count_file.read_text())
    assert new != old and steps > 10
    outcomes = {"old": 0, "new": 0}
    for limit in range(1, steps + 1):
        kill_build._restore(root, saved)
        assert _child_build(root, limit) == 137
        now = kill_build.tree(root / "_site")
        assert now in (old, new), f"killed before step {limit} of {steps}: a mixed site"
        outcomes["old" if now == old else "new"] += 1
        Builder(root, workers=1).build()  # the next build, whatever the kill left
        kill_build._settle(root)
        assert kill_build.tree(root / "_site") == new
        assert kill_build.leftovers(root, root / "_site") == [], f"killed before step {limit}"
    assert outcomes["old"] and outcomes["new"]


@pytest.mark.slow
def test_sigkill_at_random_moments_of_a_real_build(tmp_path):
    """The same with real SIGKILLs of a `sitegen build` process group (bench/kill_build.py runs
    it with more posts and kills)."""
    counts = kill_build.run_trials(tmp_path, posts=30, trials=4, seed=7, jobs=2, log=lambda *a: None)
    assert counts["other"] == []
    assert counts["leftovers_after_next_build"] == []
    assert counts["old"] + counts["new"] == 4
