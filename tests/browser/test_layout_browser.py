"""Room on the page, measured as a reader's browser lays it out: no bundled page scrolls sideways on a
phone, printed code in a figure keeps every line on one line on a desktop, and what is too wide for a
phone scrolls inside its own box."""
from __future__ import annotations

from pathlib import Path

import pytest

from sitegen.build import Builder

REPO = Path(__file__).resolve().parents[2]
PAGES = ["", "writing-with-sitegen/", "figures-tour/", "gp-parameters/", "silent-bug/", "ill-conditioning/",
         "tags/", "tags/guide/", "404.html"]
FIGURE_PAGES = ["figures-tour/", "gp-parameters/", "silent-bug/", "ill-conditioning/"]


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for d in ("content", "data", "sitegen") for p in (root / d).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def site_url(tmp_path_factory, serve_dir):
    out = tmp_path_factory.mktemp("layout") / "_site"
    before = _tree_state(REPO)
    Builder(REPO, out=out, use_cache=False).build()
    assert _tree_state(REPO) == before, "the build changed files outside its output folder"
    return serve_dir(out)


@pytest.fixture(scope="module")
def phone(browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def desktop(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


WIDER_THAN_VIEWPORT = """() => {
  const vw = document.documentElement.clientWidth;
  return [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > vw + 0.5 && !el.closest('.sg-expr, .math-display, pre, table'))
    .slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + (el.textContent || '').slice(0, 40));
}"""


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_scrolls_sideways_on_a_phone(phone, site_url, path, scheme):
    page = phone.new_page()
    page.emulate_media(color_scheme=scheme)
    page.goto(site_url + path)
    page.wait_for_timeout(150)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    viewport = page.evaluate("document.documentElement.clientWidth")
    assert width <= viewport, f"{path}: the page is {width}px wide on a {viewport}px phone: {page.evaluate(WIDER_THAN_VIEWPORT)}"
    page.close()


LINES = """() => [...document.querySelectorAll('figure .sg-expr')].map(pre => {
  // the lines each .sg-line's printed text lies on: the tops of its text fragments, plots left out
  const lines = [...pre.querySelectorAll('.sg-line')].map(l => {
    const walk = document.createTreeWalker(l, NodeFilter.SHOW_TEXT);
    const tops = [];
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
      if (!t.textContent.trim() || t.parentElement.closest('.sg-ph, .sg-badge, .sg-sr')) continue;
      const r = document.createRange(); r.selectNodeContents(t);
      for (const box of r.getClientRects()) if (box.width > 0) tops.push(box.top);
    }
    const distinct = tops.sort((a, b) => a - b).filter((t, i) => i === 0 || t - tops[i - 1] > 3);
    return {text: l.textContent.trim().slice(0, 60), boxes: distinct.length};
  });
  return {id: pre.closest('figure').id, scroll: pre.scrollWidth - pre.clientWidth, lines};
})"""


@pytest.mark.parametrize("path", FIGURE_PAGES)
def test_printed_code_never_wraps_on_a_desktop(desktop, site_url, path):
    page = desktop.new_page()
    page.goto(site_url + path)
    page.wait_for_timeout(150)
    figures = page.evaluate(LINES)
    assert figures, f"{path}: no expression figure found"
    for fig in figures:
        assert fig["scroll"] <= 1, f"{path} #{fig['id']}: code is {fig['scroll']}px wider than its box at 1280px"
        for line in fig["lines"]:
            assert line["boxes"] <= 1, f"{path} #{fig['id']}: '{line['text']}' wraps onto {line['boxes']} lines"
    page.close()


def test_figures_are_wider_than_the_prose_when_the_screen_allows(desktop, site_url):
    page = desktop.new_page()
    page.goto(site_url + "gp-parameters/")
    prose = page.evaluate("document.querySelector('.post-body > p').getBoundingClientRect().width")
    code = page.evaluate("document.querySelector('#gp-tight .sg-expr').getBoundingClientRect().width")
    assert code > prose + 100, (code, prose)
    # and no figure, chart or expression, is narrower than the prose
    widths = page.evaluate("[...document.querySelectorAll('.post-body > figure')].map(f => [f.id, f.getBoundingClientRect().width])")
    source = (REPO / "content" / "gp-parameters.md").read_text()
    expected = sum(source.count(f"```{{{name}}}") for name in ("expression", "chart"))
    assert len(widths) == expected and all(w >= prose - 1 for _, w in widths), (widths, prose)
    page.close()


def test_wide_content_scrolls_inside_its_box_with_a_cue_on_a_phone(phone, site_url):
    page = phone.new_page()
    page.goto(site_url + "gp-parameters/")
    box = page.evaluate("""() => { const pre = document.querySelector('#gp-tight .sg-expr'); const s = getComputedStyle(pre);
      return {over: pre.scrollWidth - pre.clientWidth, overflow: s.overflowX, bg: s.backgroundImage}; }""")
    assert box["over"] > 0 and box["overflow"] == "auto"
    assert "radial-gradient" in box["bg"]  # the shadow at the edge that has more
    page.goto(site_url + "writing-with-sitegen/")
    math = page.evaluate("""() => { const d = document.querySelector('.math-display');
      return {over: d.scrollWidth - d.clientWidth, overflow: getComputedStyle(d).overflowX}; }""")
    assert math["overflow"] == "auto" and math["over"] > 0
    page.close()


def test_heading_anchor_never_takes_a_line_of_its_own(site_url, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    page.goto(site_url + "gp-parameters/")
    heights = page.evaluate("""() => [...document.querySelectorAll('.post-body h2, .post-body h3')].map(h => {
      const a = h.querySelector('.header-anchor'); const range = document.createRange();
      range.selectNodeContents(h); if (a) range.setEndBefore(a);
      return [h.getBoundingClientRect().height, range.getBoundingClientRect().height]; })""")
    for whole, text in heights:
        assert whole < text + 10, heights  # a line of its own would add a whole line height (~35px)
    ctx.close()


def test_contents_numbers_sections_only(desktop, site_url):
    page = desktop.new_page()
    page.goto(site_url + "gp-parameters/")
    top = page.locator(".toc details > ol > li")
    nested = page.locator(".toc details > ol > li > ol > li")
    lines = (REPO / "content" / "gp-parameters.md").read_text().splitlines()
    assert top.count() == sum(line.startswith("## ") for line in lines)
    assert nested.count() == sum(line.startswith("### ") for line in lines) == 1
    assert "Counting evaluations" in nested.first.text_content()
    page.close()


def test_controls_and_footer_use_the_interface_font_and_the_column(desktop, site_url):
    page = desktop.new_page()
    page.goto(site_url + "figures-tour/")
    page.wait_for_selector(".sg-play")
    body_font = page.evaluate("getComputedStyle(document.body).fontFamily")
    for sel in (".sg-play", ".sg-steplabel"):
        assert page.evaluate(f"getComputedStyle(document.querySelector('{sel}')).fontFamily") != body_font, sel
    rule = page.evaluate("document.querySelector('.site-footer > p').getBoundingClientRect().width")
    column = page.evaluate("document.querySelector('.site-header nav').getBoundingClientRect().width")
    assert abs(rule - column) <= 1
    page.close()
