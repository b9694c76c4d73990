"""Figures in a real browser: visible, tooltips with the right value, play and scrub move the dots,
keyboard access, complete without JavaScript, no console errors, no serious accessibility violations."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EVIL = '<script>alert("x")</script>&\''
STEPS = list(range(0, 300, 10))  # 30 recorded steps


def value(e: int, r: int, p: int, step: int) -> float:
    """Every parameter moves linearly from its start to a target, so any frame is predictable."""
    start = (r - 2) * 1.0 + p
    target = 3.0 + e + 0.1 * r + p
    t = step / STEPS[-1]
    return start + (target - start) * t


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("figsite")
    (root / "content").mkdir()
    (root / "data").mkdir()
    names = ["alpha", "beta", EVIL]
    rows = [(e, r, s, names[p], value(e, r, p, s))
            for e in (1, 2) for r in range(5) for s in STEPS for p in range(3)]
    pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]).to_parquet(root / "data" / "trace.parquet")
    pd.DataFrame({"n": [10, 10, 100, 100, 1000, 1000], "seed": [0, 1] * 3,
                  "loss": [1.0, 1.2, 0.1, 0.12, 0.01, 0.012]}).to_parquet(root / "data" / "scaling.parquet")
    (root / "content" / "figs.md").write_text(textwrap.dedent('''\
        ---
        title: Figures under test
        date: 2026-01-01
        summary: A page with every figure kind.
        tags: [test]
        ---

        The model is in {ref}`model`; the scaling is in {ref}`scal`.

        ```{expression} data/trace.parquet
        :label: model
        :caption: Parameters of the model.
        :experiment-title: size
        :run-title: seed
        :axis: all
        # a comment line
        y = ⟦alpha⟧ * x
          + ⟦beta⟧ + ⟦"<script>alert(\\"x\\")</script>&'"⟧
        ```

        The loss falls {metric}`data/scaling.parquet: mean(loss where n=10) / mean(loss where n=1000) | .0f` times.

        ```{chart} data/scaling.parquet
        :x: n
        :y: loss
        :run: seed
        :logx:
        :logy:
        :label: scal
        :caption: Loss against size.
        ```
        '''), encoding="utf-8")
    out = root / "_out"
    done = subprocess.run([sys.executable, "-m", "sitegen", "build", str(root), "--out", str(out)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stdout.lower(), done.stdout
    return out


@pytest.fixture
def page_of(browser, serve_dir, site):
    opened = []

    def open_page(js=True, **kw):
        ctx = browser.new_context(java_script_enabled=js, viewport={"width": 1000, "height": 900}, **kw)
        page = ctx.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.goto(serve_dir(site) + "figs/", wait_until="load")
        opened.append(ctx)
        return page

    yield open_page
    for c in opened:
        c.close()


def island(page, n=0):
    return json.loads(page.locator("script.sg-data").nth(n).text_content())


def circle_xs(page):
    return page.eval_on_selector_all("figure.sg-expression svg.sg-strip circle",
                                     "cs => cs.map(c => +c.getAttribute('cx'))")


def expected_xs(page, step_index):
    """Where each dot must be at a frame: the figure's axis applied to the known values."""
    data = island(page)
    x0, w = data["geom"]["x0"], data["geom"]["w"]
    step = data["steps"][step_index]
    xs = []
    for p, ph in enumerate(data["ph"]):
        for e, runs in enumerate(data["runs"]):
            for r in runs:
                v = value(int(data["exps"][e]), int(r), p, step)
                xs.append(x0 + (v - ph["lo"]) / (ph["hi"] - ph["lo"]) * w)
    return np.array(xs)


def test_figure_visible_and_complete_at_the_final_step(page_of):
    page = page_of()
    fig = page.locator("figure.sg-expression")
    assert fig.is_visible()
    assert page.locator("figure.sg-expression svg.sg-strip").count() == 3
    assert page.locator("figure.sg-expression svg.sg-strip circle").count() == 3 * 2 * 5
    assert circle_xs(page) == pytest.approx(expected_xs(page, -1), abs=0.3)
    assert page.locator("a.xref").first.text_content().replace("\xa0", " ") == "Visualization 1"
    assert page.locator("#model figcaption").text_content().startswith("Visualization 1.")
    assert page.errors == []


def test_hostile_name_shows_as_text(page_of):
    page = page_of()
    assert page.evaluate("typeof window.alerted") == "undefined"
    label = page.locator("svg.sg-strip").nth(2).get_attribute("aria-label")
    assert label.startswith(EVIL)
    assert page.locator("figure.sg-expression script:not(.sg-data)").count() == 0


def test_tooltip_shows_experiment_run_and_exact_value(page_of):
    page = page_of()
    data = island(page)
    d = 7  # parameter alpha, second experiment (size 2), run 2
    circle = page.locator("figure.sg-expression svg.sg-strip circle").nth(d)
    box = circle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.locator(".sg-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "size 2" in text and "seed 2" in text and "alpha" in text
    assert f"{data['final'][d]:g}" in text and "step 290" in text
    assert f"{value(2, 2, 0, 290):g}" in text
    # the same run lights up in every parameter
    assert page.locator("circle.sg-hl").count() == 3
    page.mouse.move(5, 5)
    assert tip.is_hidden()
    assert page.errors == []


AT_REST = "() => [...document.querySelectorAll('canvas.sg-canvas')].every(c => c.hidden)"


def test_scrubber_jumps_and_dots_move_to_that_step(page_of):
    page = page_of()
    scrub = page.locator("figure.sg-expression input[type=range]")
    assert scrub.count() == 1 and scrub.get_attribute("aria-label") == "Training step"
    label = page.locator(".sg-steplabel")
    assert label.text_content() == "Step 290 of 290"
    scrub.focus()
    page.keyboard.press("Home")
    page.wait_for_function("document.querySelector('.sg-steplabel').textContent === 'Step 0 of 290'")
    page.wait_for_function("() => Math.abs(+document.querySelector('svg.sg-strip circle').getAttribute('cx') - %f) < 0.5"
                           % expected_xs(page, 0)[0])
    page.wait_for_function(AT_REST)
    assert circle_xs(page) == pytest.approx(expected_xs(page, 0), abs=0.5)
    scrub.evaluate("s => { s.value = 15; s.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.wait_for_function("document.querySelector('.sg-steplabel').textContent === 'Step 150 of 290'")
    # the dots start moving on the next animation frame, while the canvases are still hidden from the
    # last rest: wait for the move to land before waiting for rest
    page.wait_for_function("() => Math.abs(+document.querySelector('svg.sg-strip circle').getAttribute('cx') - %f) < 0.5"
                           % expected_xs(page, 15)[0])
    page.wait_for_function(AT_REST)
    assert circle_xs(page) == pytest.approx(expected_xs(page, 15), abs=0.5)
    assert scrub.get_attribute("aria-valuetext") == "Step 150 of 290"
    assert page.errors == []


def test_moving_dots_are_painted_where_the_frame_says(page_of):
    """While the slider moves, dots are painted on a canvas over each strip: check its pixels."""
    page = page_of()
    page.locator(".sg-play").hover()  # the first touch fetches the animation data
    page.wait_for_function("!document.querySelector('figure.sg-expression').classList.contains('sg-loading')")
    xs = expected_xs(page, 5)
    found = page.evaluate("""async ([x0, x1]) => {
      const s = document.querySelector('input[type=range]');
      s.value = 5; s.dispatchEvent(new Event('input', {bubbles: true}));
      const raf = () => new Promise(r => requestAnimationFrame(() => r()));
      await raf(); await raf();
      const cv = document.querySelector('canvas.sg-canvas');
      const k = cv.width / cv.getBoundingClientRect().width;
      const g = cv.getContext('2d'), cy = 1 + 8 / 2;  // first row
      const alpha = (x) => g.getImageData(Math.round(x * k), Math.round(cy * k), 1, 1).data[3];
      return {shown: !cv.hidden, at0: alpha(x0), at1: alpha(x1), between: alpha((x0 + x1) / 2)};
    }""", [xs[0], xs[1]])
    assert found["shown"] and found["at0"] > 100 and found["at1"] > 100 and found["between"] == 0


def test_play_advances_the_step_and_moves_the_dots(page_of):
    page = page_of()
    play = page.get_by_role("button", name="Play the training animation")
    before = circle_xs(page)
    play.click()
    page.wait_for_function("document.querySelector('.sg-steplabel').textContent !== 'Step 290 of 290'")
    page.wait_for_function("document.querySelector('.sg-steplabel').textContent !== 'Step 0 of 290'")
    assert page.locator(".sg-play").get_attribute("aria-pressed") == "true"
    page.locator(".sg-play").click()  # pause
    assert page.locator(".sg-play").get_attribute("aria-pressed") == "false"
    paused = page.locator(".sg-steplabel").text_content()
    page.wait_for_function(AT_REST)
    assert page.locator(".sg-steplabel").text_content() == paused
    step = int(paused.split()[1].replace(",", ""))
    assert 0 < step < 290
    assert circle_xs(page) != pytest.approx(before, abs=0.3)
    assert circle_xs(page) == pytest.approx(expected_xs(page, STEPS.index(step)), abs=0.5)
    assert page.errors == []


def test_play_runs_to_the_end_and_stops(page_of):
    page = page_of()
    page.locator(".sg-play").click()
    page.wait_for_function("document.querySelector('.sg-play').getAttribute('aria-pressed') === 'false'",
                           timeout=20_000)
    assert page.locator(".sg-steplabel").text_content() == "Step 290 of 290"
    assert circle_xs(page) == pytest.approx(expected_xs(page, -1), abs=0.5)
    assert page.errors == []


def test_reduced_motion_plays_in_a_few_calm_jumps(page_of):
    page = page_of(reduced_motion="reduce")
    page.evaluate("""() => { window.seen = new Set();
      new MutationObserver(() => seen.add(document.querySelector('.sg-steplabel').textContent))
        .observe(document.querySelector('.sg-steplabel'), {childList: true, characterData: true, subtree: true}); }""")
    page.locator(".sg-play").click()
    page.wait_for_function("document.querySelector('.sg-play').getAttribute('aria-pressed') === 'false'",
                           timeout=20_000)
    assert 2 <= page.evaluate("seen.size") <= 12
    assert page.errors == []


def test_keyboard_reads_values(page_of):
    page = page_of()
    page.locator("pre.sg-expr").focus()
    page.keyboard.press("ArrowDown")
    tip = page.locator(".sg-tip")
    tip.wait_for(state="visible")
    assert "alpha" in tip.inner_text() and "seed 0" in tip.inner_text()
    page.keyboard.press("ArrowRight")
    assert "beta" in tip.inner_text()
    live = page.locator(".sg-sr[aria-live]")
    assert "beta" in live.text_content()
    page.keyboard.press("Escape")
    assert tip.is_hidden()


def test_chart_tooltip_lists_the_values(page_of):
    page = page_of()
    svg = page.locator("figure.sg-chart svg")
    box = svg.bounding_box()
    data = island(page, 1)
    x0, x1 = data["plot"][:2]
    # the middle point (n = 100) sits in the middle of the log axis
    page.mouse.move(box["x"] + (x0 + x1) / 2 * box["width"] / data["size"][0], box["y"] + box["height"] / 2)
    tip = page.locator(".sg-tip")
    tip.wait_for(state="visible")
    assert "n 100" in tip.inner_text() and "0.1095" in tip.inner_text()  # geometric mean of 0.1 and 0.12
    assert page.errors == []


def test_page_without_javascript_is_complete(page_of):
    page = page_of(js=False)
    assert page.locator("figure.sg-expression svg.sg-strip circle").count() == 30
    assert circle_xs(page) == pytest.approx(expected_xs(page, -1), abs=0.3)
    assert page.locator("input[type=range]").count() == 0 and page.locator("button").count() == 0
    assert "Shown at step 290" in page.locator("figure.sg-expression").inner_text()
    assert page.locator("figure.sg-chart path.sg-trace").count() == 1


def test_dark_mode_uses_the_lighter_palette(page_of):
    light, dark = page_of(), page_of(color_scheme="dark")
    get = "document.querySelector('svg.sg-strip g').getAttribute('class') && getComputedStyle(document.querySelector('svg.sg-strip g')).fill"
    assert light.evaluate(get) != dark.evaluate(get)


def test_no_serious_accessibility_violations(page_of):
    from axe_playwright_python.sync_playwright import Axe

    for kw in ({}, {"color_scheme": "dark"}):
        page = page_of(**kw)
        page.locator("figure.sg-expression pre").focus()
        page.keyboard.press("ArrowDown")  # with the tooltip and live region present
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
