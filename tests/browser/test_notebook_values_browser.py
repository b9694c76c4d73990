"""``fig.update(df)`` with new values for the same figure: the cell gets a small values message and the
runtime moves what it already shows. In a real browser the figure updated in place must be the figure
drawn from scratch with the same table: the same markup of every painted element, the same tooltips,
the same animation frames, the same pixels; and it stays so over many updates."""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sitegen.notebook as nb  # noqa: E402
from test_notebook import STEPS, TEMPLATE, Recorder, rows, sent  # noqa: E402,F401 (sent: a fixture)
from test_notebook_browser import PAGE, SHOW, UPDATE, open_page  # noqa: E402

from sitegen import figure  # noqa: E402

# A figure's painted markup, without what differs between two outputs of one table (the element ids
# and live key each output makes its own, the JSON the runtime read at start-up).
SNAP = """(fig) => {
  const c = fig.cloneNode(true);
  for (const s of c.querySelectorAll('script')) s.remove();
  c.removeAttribute('data-sg-key');
  return c.outerHTML.replace(/[0-9a-f]{12}n\\d+/g, 'ID');
}"""

# Every dot's tooltip, read as a keyboard user reads them (down through runs, right through parameters).
TIPS = """async ([dots, plots]) => {
  const pre = document.querySelector('figure.sg-expression pre.sg-expr'), out = [];
  pre.focus();
  const key = (k) => pre.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
  key('ArrowDown');
  for (let p = 0; p < plots; p++) {
    for (let d = 0; d < dots; d++) { out.push(document.querySelector('.sg-tip').innerText); key('ArrowDown'); }
    key('ArrowRight');
  }
  key('Escape');
  return out;
}"""


def random_table(seed: int, steps=STEPS, scale_=1.0):
    """The test table's shape (2 experiments x 5 runs x 2 parameters) with new values: spread, shifted,
    across zero or not, now and then a NaN."""
    rng = np.random.default_rng(seed)
    df = rows(steps)
    df["value"] = rng.normal(rng.normal(0, 3), rng.uniform(0.01, 2) * scale_, len(df))
    if seed % 6 == 5:
        df.loc[df.index[rng.integers(0, len(df), 3)], "value"] = float("nan")
    return df


def show(page, html, display_id="fig"):
    page.evaluate(SHOW, [display_id, html])


def fresh_page(browser, df, width=1100):
    """A page showing ``df`` drawn from scratch (its own handle, its own first output)."""
    rec = Recorder()
    old, nb.transport.TRANSPORT = nb.transport.TRANSPORT, rec
    try:
        figure(df, TEMPLATE, interval=0)._ipython_display_()
    finally:
        nb.transport.TRANSPORT = old
    ctx, page = open_page(browser)
    page.set_viewport_size({"width": width, "height": 900})
    page.set_content(PAGE.format(outputs=""))
    show(page, rec.log[0][2]["text/html"])
    return ctx, page


def snap(page):
    # a figure shown or given new values fetches and decodes its frames (async; "· loading" on its
    # step label meanwhile): compare figures at rest, not one caught halfway
    page.wait_for_function("() => !document.querySelector('figure.sg-expression.sg-loading')")
    return page.eval_on_selector("figure.sg-expression", SNAP)


def settle(page):
    page.wait_for_timeout(350)  # dots painted on canvas while moving come back to SVG


def pixels(page):
    from PIL import Image

    shot = page.locator("figure.sg-expression").screenshot(animations="disabled")
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))


def test_new_values_update_the_figure_in_place_as_a_redraw_would_draw_it(browser, sent):
    fig = figure(rows(STEPS), TEMPLATE, interval=0)
    fig._ipython_display_()
    new = random_table(1)  # another axis, values across zero: a zero line appears
    fig.update(new)
    kinds = [k for k, _ in fig.sent]
    assert kinds == ["values"] and fig.sent[0][1] < len(sent.log[0][2]["text/html"]) / 20  # frames included
    ctx, page = open_page(browser)
    page.set_content(PAGE.format(outputs=""))
    ctx2, page2 = fresh_page(browser, new)
    try:
        show(page, sent.log[0][2]["text/html"])
        before = snap(page)
        show(page, sent.log[1][2]["text/html"], sent.log[1][1])  # the feed output carrying the values
        rev = re.search(r'data-sg-rev="([0-9a-f]+)"', fig._render().html).group(1)
        page.wait_for_function(f"() => document.querySelector('figure.sg-expression').dataset.sgRev === '{rev}'")
        settle(page)
        settle(page2)
        assert snap(page) != before
        assert snap(page) == snap(page2)  # the same painted markup, attribute for attribute
        boxes = "cs => cs.map(c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"
        assert page.eval_on_selector_all("svg.sg-strip circle, svg.sg-strip line, svg.sg-strip text", boxes) == \
            page2.eval_on_selector_all("svg.sg-strip circle, svg.sg-strip line, svg.sg-strip text", boxes)
        assert page.evaluate(TIPS, [10, 2]) == page2.evaluate(TIPS, [10, 2])
        a, b = pixels(page), pixels(page2)
        assert a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) == 0
        # the animation frames are the new table's: at the first step too
        for p in (page, page2):
            p.locator("input.sg-scrub").focus()
            p.keyboard.press("Home")
            settle(p)
        assert page.locator(".sg-steplabel").inner_text() == "Step 0 of 290"
        assert snap(page) == snap(page2)
        assert page.evaluate(TIPS, [10, 2]) == page2.evaluate(TIPS, [10, 2])
        assert page.errors == [] and page2.errors == []
    finally:
        ctx.close()
        ctx2.close()


@pytest.mark.parametrize("steps", [STEPS, None], ids=["steps", "no-steps"])
def test_many_updates_in_place_never_drift_from_a_redraw(browser, sent, steps):
    def table(seed):
        df = random_table(seed, steps or [0], scale_=0.5 + seed % 3)
        return df if steps else df.drop(columns="step")

    fig = figure(table(100), TEMPLATE, interval=0)
    fig._ipython_display_()
    ctx, page = open_page(browser)
    page.set_content(PAGE.format(outputs=""))
    ctx2, page2 = open_page(browser)
    page2.set_content(PAGE.format(outputs=""))
    try:
        show(page, sent.log[0][2]["text/html"], sent.log[0][1])
        redrawn = 0
        for seed in range(101, 113):
            df = table(seed)
            n = len(sent.log)
            fig.update(df)
            for kind, did, bundle in sent.log[n:]:
                if kind == "show":
                    show(page, bundle["text/html"], did)
                else:
                    page.evaluate(UPDATE, [did, bundle["text/html"]])
            redrawn += any("-feed-" not in did for _, did, _ in sent.log[n:])
            rev = re.search(r'data-sg-rev="([0-9a-f]+)"', fig._render().html).group(1)
            page.wait_for_function(f"() => document.querySelector('figure.sg-expression').dataset.sgRev === '{rev}'")
            other = Recorder()
            nb.transport.TRANSPORT, keep = other, nb.transport.TRANSPORT
            try:
                figure(df, TEMPLATE, interval=0)._ipython_display_()
            finally:
                nb.transport.TRANSPORT = keep
            page2.evaluate("() => { document.getElementById('out').innerHTML = ''; }")
            show(page2, other.log[0][2]["text/html"])
            assert snap(page) == snap(page2), seed
        assert page.evaluate(TIPS, [10, 2]) == page2.evaluate(TIPS, [10, 2])
        values = sum(1 for k, _ in fig.sent if k == "values")
        assert values >= 7 and values + redrawn == 12  # most went as values; NaN warnings change the shape
        assert page.errors == [] and page2.errors == []
    finally:
        ctx.close()
        ctx2.close()


def test_a_values_message_for_another_drawing_is_not_applied(browser, sent):
    fig = figure(rows(STEPS), TEMPLATE, interval=0)
    fig._ipython_display_()
    fig.update(random_table(1))
    fig.update(random_table(2))
    ctx, page = open_page(browser)
    page.set_content(PAGE.format(outputs=""))
    try:
        show(page, sent.log[0][2]["text/html"])
        before = snap(page)
        show(page, sent.log[2][2]["text/html"], sent.log[2][1])  # the second message; the first never came
        page.wait_for_timeout(300)
        assert snap(page) == before  # left as it was: the redraw when the cell ends brings the figure
        assert page.errors == []
    finally:
        ctx.close()


def test_a_reader_who_scrubbed_back_sees_the_new_values_at_their_step(browser, sent):
    fig = figure(rows(STEPS), TEMPLATE, interval=0)
    fig._ipython_display_()
    new = random_table(7)
    fig.update(new)
    ctx, page = open_page(browser)
    page.set_content(PAGE.format(outputs=""))
    ctx2, page2 = fresh_page(browser, new)
    try:
        show(page, sent.log[0][2]["text/html"], sent.log[0][1])
        for p in (page, page2):
            p.locator("input.sg-scrub").focus()
            p.keyboard.press("Home")
            p.keyboard.press("ArrowRight")
            settle(p)
        before = snap(page)
        show(page, sent.log[1][2]["text/html"], sent.log[1][1])
        rev = re.search(r'data-sg-rev="([0-9a-f]+)"', fig._render().html).group(1)
        page.wait_for_function(f"() => document.querySelector('figure.sg-expression').dataset.sgRev === '{rev}'")
        settle(page)
        assert page.locator(".sg-steplabel").inner_text() == "Step 10 of 290"  # still where the reader was
        assert snap(page) != before and snap(page) == snap(page2)
        assert page.evaluate(TIPS, [10, 2]) == page2.evaluate(TIPS, [10, 2])
        assert page.errors == [] and page2.errors == []
    finally:
        ctx.close()
        ctx2.close()
