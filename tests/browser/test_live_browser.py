"""Watching a model train in the preview, in a real browser: a trainer streams its table through
``Tracer(live=...)`` while ``sitegen serve`` runs; the open tab's figure grows without a reload (its
step label advances, a reader who scrubbed back stays put, keyboard focus stays on the slider), and
when the trainer is killed in the middle of writing a part the page keeps the last complete step
and says the run stopped: no error overlay, no console error."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sitegen.serve import PreviewServer

WAIT_MS = 30_000
ROOT = Path(__file__).resolve().parents[2]
STEPS_PER_PART = 5

TRAINER = textwrap.dedent("""\
    import os, sys, time
    from pathlib import Path

    import numpy as np

    from sitegen.trace import Tracer

    table, asked, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        # once asked to, hang in the middle of a flush: the part is written under its temporary
        # name and not yet renamed (the test kills the process there)
        if Path(dst).name.startswith("part-") and asked.exists():
            ready.write_text(Path(dst).name)
            time.sleep(3600)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
    tracer = Tracer(live=table, live_seconds=3600, live_steps=int(sys.argv[4]))
    runs = np.arange(3)
    for step in range(100_000):
        values = np.stack([np.sin(step / 9 + runs), step / 100 + runs], axis=1)
        tracer.record_batch(step, ["w", "b"], values, experiment="a", run=runs)
        time.sleep(0.03)
    """)

POST = textwrap.dedent("""\
    ---
    title: Live
    date: 2024-01-01
    ---

    A model that trains while you read.

    ```{expression} data/run.parquet
    :caption: Both parameters of three runs.
    y = ⟦w⟧ * x + ⟦b⟧
    ```

    The end.
    """)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "sitegen.toml").write_text('title = "Live preview"\n')
    (root / "content" / "live.md").write_text(POST)
    lines: list[str] = []
    server = PreviewServer(root, port=0, log=lines.append).start()
    yield server, root, lines
    server.stop()


def last_of(page) -> int:
    text = page.inner_text("figure .sg-steplabel")
    return int(re.search(r"of ([\d,]+)", text).group(1).replace(",", ""))


def test_a_training_run_grows_the_open_figure_and_a_killed_trainer_leaves_its_last_step(browser, site, tmp_path):
    server, root, lines = site
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    asked, ready = tmp_path / "hang", tmp_path / "hanging"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    trainer = subprocess.Popen([sys.executable, str(script), str(root / "data" / "run.parquet"),
                                str(asked), str(ready), str(STEPS_PER_PART)], env=env)
    try:
        manifest = root / "data" / "run.parts" / "_run.json"
        deadline = time.monotonic() + WAIT_MS / 1000
        while not manifest.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        assert server.wait_idle(), "the preview never caught up with the trainer's first files"
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.url + "live/")
        page.evaluate("window.__sameDocument = true")

        # the figure appears (first as a waiting figure or already drawn) and its scrubber grows
        page.wait_for_selector("figure .sg-steplabel", timeout=WAIT_MS)
        first = last_of(page)
        page.wait_for_function(f"() => /of ([\\d,]+)/.test(document.querySelector('figure .sg-steplabel').textContent)"
                               f" && +RegExp.$1.replace(/,/g, '') > {first}", timeout=WAIT_MS)
        assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of growing in place"
        assert "Training: shown up to step" in page.inner_text("figure .sg-run-note")

        # a reader who scrubs back stays there while training goes on, and keeps the keyboard focus
        page.focus("figure input.sg-scrub")
        page.keyboard.press("Home")
        assert page.inner_text("figure .sg-steplabel").startswith("Step 0 of")
        before = last_of(page)
        page.wait_for_function(f"() => /of ([\\d,]+)/.test(document.querySelector('figure .sg-steplabel').textContent)"
                               f" && +RegExp.$1.replace(/,/g, '') > {before}", timeout=WAIT_MS)
        assert page.inner_text("figure .sg-steplabel").startswith("Step 0 of")
        assert page.evaluate("document.activeElement.matches('figure input.sg-scrub')")

        # killed in the middle of writing a part: the parts before it are the last complete data
        asked.write_text("now")
        deadline = time.monotonic() + WAIT_MS / 1000
        while not (ready.exists() and ready.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the trainer never reached the part it hangs in"
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=10)
        leftovers = [p.name for p in (root / "data" / "run.parts").iterdir() if p.name.startswith(".")]
        assert leftovers, "the killed flush should have left its temporary file"
        page.keyboard.press("End")
        page.wait_for_selector("figure .sg-run-stopped", timeout=WAIT_MS)
        hung_in = int(re.fullmatch(r"part-(\d+)\.parquet", ready.read_text()).group(1))
        last_complete = (hung_in - 1) * STEPS_PER_PART - 1
        assert last_of(page) == last_complete
        assert f"stopped at step {last_complete:,} before it finished" in page.inner_text("figure .sg-run-stopped")
        assert page.evaluate("window.__sameDocument") is True
        assert page.evaluate("!document.querySelector('sitegen-preview-overlay:not([hidden])')")
        assert problems == []
        page.close()
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    assert not [line for line in lines if "Traceback" in line or "internal error" in line]


@pytest.mark.parametrize("state", ["training", "stopped", "waiting"])
def test_live_figures_and_their_notes_are_accessible(browser, site, state):
    import json

    import numpy as np
    from axe_playwright_python.sync_playwright import Axe

    from sitegen.trace import Tracer

    server, root, lines = site
    table = root / "data" / "run.parquet"
    tracer = Tracer(live=table, live_seconds=3600, live_steps=10_000)
    if state != "waiting":
        runs = np.arange(3)
        for step in range(20):
            tracer.record_batch(step, ["w", "b"], np.stack([np.sin(step / 9 + runs), step / 100 + runs], axis=1),
                                experiment="a", run=runs)
        tracer.publish()
    tracer.close()
    manifest = root / "data" / "run.parts" / "_run.json"
    if state == "stopped":
        child = subprocess.Popen(["true"])
        child.wait()
        record = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**record, "pid": child.pid}))
    server.rebuilder.notify(str(manifest))
    time.sleep(0.05)
    assert server.wait_idle()
    expected = {"training": ".sg-run-live", "stopped": ".sg-run-stopped", "waiting": ".sg-run-waiting"}[state]
    for scheme in ("light", "dark"):
        context = browser.new_context(bypass_csp=True, color_scheme=scheme)  # axe is injected as a script
        page = context.new_page()
        page.goto(server.url + "live/")
        page.wait_for_selector("figure " + expected)
        results = Axe().run(page)
        bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{state} ({scheme}): {bad}"
        context.close()
