"""Runs still training, as the preview sees them: parts read while they arrive, the figure's note
(training / stopped), a waiting figure before the first rows, and never a page drawn from parts in
a published build. The browser side (figures growing in an open tab) is in tests/browser/test_live_browser.py."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sitegen.build import Builder
from sitegen.live import parts_dir, preview_hint, read_run
from sitegen.serve import PreviewServer, Rebuilder, is_live_path

POST = textwrap.dedent("""\
    ---
    title: Live
    date: 2024-01-01
    ---

    Before the figure.

    ```{expression} data/run.parquet
    :label: the-run
    :caption: A run.
    y = ⟦w⟧ * x + ⟦b⟧
    ```

    ```{chart} data/run.parquet
    :where: param=b
    :run: run
    :caption: b over training.
    ```
    """)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


class FakeRun:
    """Writes what a streaming Tracer writes (parts renamed into place, then the manifest), by hand,
    so these tests pin the file contract itself."""

    def __init__(self, table: Path, pid: int | None = None):
        self.table = table
        self.folder = parts_dir(table)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pid = pid or os.getpid()
        self.parts = 0
        self.step = 0
        self.manifest()

    def manifest(self, state="running"):
        tmp = self.folder / ".run.json.tmp"
        tmp.write_text(json.dumps({"format": 1, "table": self.table.name, "pid": self.pid,
                                   "host": socket.gethostname(), "started": time.time(), "updated": time.time(),
                                   "parts": self.parts, "rows": 0, "last_step": self.step - 1 if self.parts else None,
                                   "state": state}))
        os.replace(tmp, self.folder / "_run.json")

    def part(self, steps: int = 5):
        rows = [("a", r, s, name, float(np.sin(s / 7 + r) if name == "w" else s / 100 + r))
                for s in range(self.step, self.step + steps) for r in range(3) for name in ("w", "b")]
        self.step += steps
        self.parts += 1
        tmp = self.folder / f".part-{self.parts:05d}.tmp"
        pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]).to_parquet(tmp)
        os.replace(tmp, self.folder / f"part-{self.parts:05d}.parquet")
        self.manifest()


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "sitegen.toml").write_text('title = "Live"\n')
    (root / "content" / "live.md").write_text(POST)
    return root


def figure_html(out: Path) -> str:
    return (out / "live" / "index.html").read_text()


def step_label(html: str) -> str:
    return re.search(r"<p class=\"sg-run-note[^\"]*\"[^>]*>(.*?)</p>", html, re.S).group(1)


def test_preview_draws_a_run_from_its_parts_and_says_it_is_training(site, tmp_path):
    run = FakeRun(site / "data" / "run.parquet")
    run.part()
    run.part()
    builder = Builder(site, out=tmp_path / "preview", preview=True)
    result = builder.build()
    html = figure_html(tmp_path / "preview")
    assert "Training: shown up to step 9" in html
    assert '"steps":[0,1,2,3,4,5,6,7,8,9]' in html.replace(" ", "")
    assert not [p for p in result.problems if p.level == "error"]
    run.part()
    builder.build(in_place=True)
    assert "Training: shown up to step 14" in figure_html(tmp_path / "preview")


def test_a_run_without_rows_yet_is_a_numbered_waiting_figure_not_an_error(site, tmp_path):
    FakeRun(site / "data" / "run.parquet")
    result = Builder(site, out=tmp_path / "preview", preview=True).build()
    html = figure_html(tmp_path / "preview")
    assert 'id="the-run"' in html and "Visualization 1." in html and "Chart 1." in html
    assert "has not written its first rows yet" in html
    assert [p.level for p in result.problems if "first rows" in p.message] == ["warning", "warning"]


def test_a_run_whose_process_is_gone_is_shown_as_stopped(site, tmp_path):
    run = FakeRun(site / "data" / "run.parquet", pid=dead_pid())
    run.part()
    assert read_run(run.folder).state == "stopped"
    Builder(site, out=tmp_path / "preview", preview=True).build()
    note = step_label(figure_html(tmp_path / "preview"))
    assert "The run stopped at step 4 before it finished" in note


def test_a_torn_or_hidden_file_in_the_parts_folder_is_never_read(site, tmp_path):
    run = FakeRun(site / "data" / "run.parquet")
    run.part()
    (run.folder / ".part-00002.parquet.123.tmp").write_bytes(b"PAR1 half a file")
    (run.folder / "part-00003.parquet.partial").write_bytes(b"junk")
    result = Builder(site, out=tmp_path / "preview", preview=True).build()
    assert "shown up to step 4" in figure_html(tmp_path / "preview")
    assert not [p for p in result.problems if p.level == "error"]


def test_the_published_build_ignores_running_experiments_and_never_reuses_a_live_page(site, tmp_path):
    pd.DataFrame({"experiment": "a", "run": 0, "step": [0, 1, 2], "param": "w", "value": [1.0, 2.0, 3.0]}) \
        .assign(step=[0, 1, 2]).pipe(lambda d: pd.concat([d, d.assign(param="b")])) \
        .to_parquet(site / "data" / "run.parquet")
    run = FakeRun(site / "data" / "run.parquet")
    run.part()
    out_preview, out_site = tmp_path / "preview", tmp_path / "site-out"
    Builder(site, out=out_preview, preview=True).build()  # shares the parse cache with the next build
    assert "Training: shown up to step 4" in figure_html(out_preview)
    Builder(site, out=out_site).build()
    published = figure_html(out_site)
    assert "sg-run-note" not in published and '"steps":[0,1,2]' in published.replace(" ", "")


def test_the_finished_table_replaces_the_parts(site, tmp_path):
    run = FakeRun(site / "data" / "run.parquet")
    run.part()
    builder = Builder(site, out=tmp_path / "preview", preview=True)
    builder.build()
    frame = pd.concat(pd.read_parquet(p) for p in sorted(run.folder.glob("part-*.parquet")))
    frame.to_parquet(site / "data" / "run.parquet")
    run.manifest("finished")
    builder.build(in_place=True)
    html = figure_html(tmp_path / "preview")
    assert "sg-run-note" not in html and '"steps":[0,1,2,3,4]' in html.replace(" ", "")


def test_part_events_count_as_their_runs_news_and_are_throttled(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "run.parts"
    assert is_live_path(str(folder / "part-00001.parquet")) and not is_live_path(str(tmp_path / "data" / "x.parquet"))
    batches = []

    class Preview:
        def rebuild(self, batch):
            batches.append((time.monotonic(), batch))

        def say(self, line):
            pass

    rebuilder = Rebuilder(Preview(), quiet=0.005)
    rebuilder.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:  # a trainer writing 100 parts a second
            rebuilder.notify(str(folder / f"part-{len(batches):05d}.parquet"))
            time.sleep(0.01)
        rebuilder.wait_idle(5)
    finally:
        rebuilder.stop()
    assert all(b == {str(folder / "_run.json")} for _, b in batches)
    gaps = np.diff([t for t, _ in batches])
    assert 2 <= len(batches) <= 6 and gaps.min() >= 0.2  # at most every LIVE_EVERY (0.25 s), not 100 times


def test_preview_hint_points_a_trainer_at_the_page_that_reads_its_table(site, tmp_path, monkeypatch):
    monkeypatch.chdir(site)
    assert "start `sitegen serve`" in preview_hint(site / "data" / "run.parquet")
    FakeRun(site / "data" / "run.parquet").part()
    with PreviewServer(site, port=0, log=lambda line: None, watch=False) as server:
        hint = preview_hint(site / "data" / "run.parquet")
        assert hint == f"sitegen: watch data/run.parquet train live at {server.url}live/"
    assert not (site / ".sitegen-cache" / "serve.json").exists()  # a stopped server takes it back


def test_a_figure_naming_experiments_not_trained_yet_draws_those_there_are(site, tmp_path):
    post = site / "content" / "live.md"
    post.write_text(post.read_text().replace(":label: the-run", ":label: the-run\n:experiments: a, later"))
    run = FakeRun(site / "data" / "run.parquet")
    run.part()
    result = Builder(site, out=tmp_path / "preview", preview=True).build()
    html = figure_html(tmp_path / "preview")
    assert '"exps":["a"]' in html.replace(" ", "") and "Training: shown up to step 4" in html
    assert not [p for p in result.problems if p.level == "error"]


def test_a_chart_with_no_rows_yet_waits_and_keeps_its_number(site, tmp_path):
    post = site / "content" / "live.md"
    post.write_text(post.read_text().replace(":where: param=b", ":where: param=not-traced-yet"))
    FakeRun(site / "data" / "run.parquet").part()
    result = Builder(site, out=tmp_path / "preview", preview=True).build()
    html = figure_html(tmp_path / "preview")
    assert "Chart 1." in html and "not drawable yet from the running experiment" in html
    assert not [p for p in result.problems if p.level == "error"]


def test_the_published_build_says_when_a_newer_run_stopped_before_finishing(site, tmp_path):
    pd.DataFrame({"experiment": "a", "run": 0, "step": [0, 1], "param": "w", "value": [1.0, 2.0]}) \
        .pipe(lambda d: pd.concat([d, d.assign(param="b")])).to_parquet(site / "data" / "run.parquet")
    run = FakeRun(site / "data" / "run.parquet", pid=dead_pid())
    run.part()
    result = Builder(site, out=tmp_path / "out").build()
    warnings = [p.message for p in result.problems if "newer run" in p.message]
    assert warnings and "stopped at step 4 before it finished" in warnings[0]
    assert "sg-run-note" not in figure_html(tmp_path / "out")
