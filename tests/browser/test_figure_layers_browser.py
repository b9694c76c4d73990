"""What a reader sees while a figure moves: the painted layers lie on their plots.

While a figure plays or its slider is held, its dots are painted on one canvas per inline plot (the
SVG circles are hidden meanwhile). These tests look at the page as a reader does, on every bundled
page with an animated figure and on a page of three figures of 50 parameters x 60 runs x 200 steps:

- every visible canvas coincides with the plot it stands for (the rows of its SVG, where the dots are;
  position and size within 1 px) while
  dragging, after a resize and a browser zoom while dragging, while playing and just after a pause,
  at 390 and 1280 px wide, device pixel ratio 1 and 2, light and dark;
- at the last step the painted frame and the server's SVG look the same, pixel by pixel (small
  tolerance for antialiasing), compared on screenshots kept as artefacts (the folder is printed);
- a tap on a dot at 390 px shows a tooltip with its value.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sitegen.build import Builder
from tests.conftest import assert_untouched, snapshot_tree

REPO = Path(__file__).resolve().parents[2]
BUNDLED = ["figures-tour/", "gp-parameters/", "silent-bug/", "ill-conditioning/"]
COMBOS = [(w, dpr, scheme) for w in (390, 1280) for dpr in (1, 2) for scheme in ("light", "dark")]
SHOTS = Path(os.environ.get("SITEGEN_SHOTS") or tempfile.mkdtemp(prefix="sitegen-figure-shots-"))
SHOTS.mkdir(parents=True, exist_ok=True)

OFFSETS = """() => [...document.querySelectorAll('canvas.sg-canvas')].filter((c) => !c.hidden).map((c) => {
  const a = c.getBoundingClientRect(), b = c.previousElementSibling.querySelector('rect.sg-bg').getBoundingClientRect();
  return Math.max(Math.abs(a.left - b.left), Math.abs(a.top - b.top),
                  Math.abs(a.width - b.width), Math.abs(a.height - b.height));
})"""


def heavy_site(root: Path) -> None:
    """Three figures of 50 parameters x 60 runs x 200 steps (drifting from random starts to targets)."""
    P, R, S = 50, 60, 200
    rng = np.random.default_rng(0)
    start = rng.lognormal(0, 1, (P, R))
    target = rng.lognormal(0, 0.3, (P, 1))
    t = np.linspace(0, 1, S)[:, None, None]
    vals = start[None] * (1 - t) + target[None] * t
    (root / "content").mkdir(parents=True)
    (root / "data").mkdir()
    pd.DataFrame({
        "experiment": "all", "run": np.tile(np.arange(R), S * P), "step": np.repeat(np.arange(S), P * R),
        "param": np.tile(np.repeat([f"ls_{p:02d}" for p in range(P)], R), S), "value": vals.reshape(-1),
    }).to_parquet(root / "data" / "trace.parquet")
    (root / "data" / "kernel.expr").write_text(
        "sum([\n" + "".join(f"  compare('feature_{p}') / ⟦ls_{p:02d}⟧,\n" for p in range(P)) + "])\n", encoding="utf-8")
    blocks = "\n\n".join(f"```{{expression}} data/trace.parquet\n:template: data/kernel.expr\n:log: auto\n"
                         f":caption: Figure {i + 1}.\n```" for i in range(3))
    (root / "content" / "heavy.md").write_text(
        f"---\ntitle: Heavy\ndate: 2026-01-01\nsummary: three large figures\n---\n\n{blocks}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def base(tmp_path_factory, serve_dir):
    """One folder served over HTTP: the bundled site, with the heavy page built beside it."""
    out = tmp_path_factory.mktemp("layers") / "_site"
    before = snapshot_tree(REPO, [REPO / ".git", REPO / ".sitegen-cache"])
    Builder(REPO, out=out, use_cache=False).build()
    assert_untouched(before, snapshot_tree(REPO, [REPO / ".git", REPO / ".sitegen-cache"]))
    heavy = tmp_path_factory.mktemp("heavy")
    heavy_site(heavy)
    heavy_out = heavy / "_site"
    before = snapshot_tree(heavy, [heavy_out])
    Builder(heavy, out=heavy_out, use_cache=False).build()
    assert_untouched(before, snapshot_tree(heavy, [heavy_out]))
    shutil.copytree(heavy_out, out / "_heavy")
    (out / "heavy").mkdir()
    (out / "heavy" / "index.html").write_text(  # the page, with its links pointing into _heavy/
        (heavy_out / "heavy" / "index.html").read_text(encoding="utf-8").replace('="/', '="/_heavy/'), encoding="utf-8")
    for f in (heavy_out / "heavy").glob("*.bin"):
        (out / "heavy" / f.name).write_bytes(f.read_bytes())
    print(f"\nscreenshots of the figure layer tests: {SHOTS}")
    return serve_dir(out)


def offsets(page) -> list[float]:
    return page.evaluate(OFFSETS)


def painted(page, fig) -> bool:
    return fig.evaluate("f => [...f.querySelectorAll('canvas.sg-canvas')].some((c) => !c.hidden)")


def wait_painted(page, fig, on=True):
    page.wait_for_function("([f, on]) => [...f.querySelectorAll('canvas.sg-canvas')].some((c) => !c.hidden) === on",
                           arg=[fig.element_handle(), on], timeout=10_000)


def assert_on_plots(page, where: str, expect: int | None = None):
    off = offsets(page)
    assert off, f"{where}: no painted layer is showing"
    if expect is not None:
        assert len(off) == expect, f"{where}: {len(off)} painted layers, expected {expect}"
    bad = [round(o, 2) for o in off if o > 1.0]
    assert not bad, f"{where}: {len(bad)} of {len(off)} painted layers off their plot by {bad[:5]} px"


def png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def compare_shots(painted_png: bytes, svg_png: bytes, name: str) -> tuple[float, float]:
    """(share of pixels that differ by more than 64 in some channel, mean difference); all three images kept."""
    from PIL import Image

    a, b = png(painted_png), png(svg_png)
    assert a.shape == b.shape, f"{name}: screenshots differ in size {a.shape} vs {b.shape}"
    diff = np.abs(a - b).max(axis=2)
    (SHOTS / f"{name}-painted.png").write_bytes(painted_png)
    (SHOTS / f"{name}-svg.png").write_bytes(svg_png)
    Image.fromarray(np.clip(diff * 4, 0, 255).astype(np.uint8)).save(SHOTS / f"{name}-diff.png")
    return float((diff > 64).mean()), float(diff.mean())


def exercise(page, fig, name: str, combo, shots: bool = True) -> None:
    """Drag, resize, zoom, release at the last step (with ``shots``: compare screenshots), play and pause
    one figure."""
    width, dpr, _ = combo
    n_layers = fig.locator("svg.sg-strip").count()
    slider = fig.locator("input.sg-scrub")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    wait_painted(page, fig)
    assert_on_plots(page, f"{name}: dragging", n_layers)
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=3)
    assert_on_plots(page, f"{name}: dragging further", n_layers)

    cdp = page.context.new_cdp_session(page)

    def metrics(w, zoom=1.0):  # the window's CSS width and the browser's zoom (a higher pixel ratio)
        cdp.send("Emulation.setDeviceMetricsOverride", {"width": int(w / zoom), "height": int(900 / zoom),
                                                         "deviceScaleFactor": dpr * zoom, "mobile": False})
        page.wait_for_timeout(50)
        assert page.evaluate("[innerWidth, devicePixelRatio]") == [int(w / zoom), pytest.approx(dpr * zoom)]

    metrics(width - 40)  # the window narrows while the slider is held
    assert_on_plots(page, f"{name}: after a resize", n_layers)
    metrics(width, 1.5)
    assert_on_plots(page, f"{name}: zoomed to 150 %", n_layers)
    metrics(width)
    assert_on_plots(page, f"{name}: zoomed back", n_layers)
    cdp.detach()

    # the last step, painted, against the same step drawn by the server once the slider is let go
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    page.mouse.move(box["x"] + box["width"] + 20, box["y"] + box["height"] / 2, steps=4)
    assert slider.evaluate("s => +s.value === +s.max")
    assert_on_plots(page, f"{name}: dragged to the end", n_layers)
    if shots:
        expr = fig.locator("pre.sg-expr")
        shot_painted = expr.screenshot(animations="disabled")
        page.mouse.up()
        wait_painted(page, fig, on=False)
        shot_svg = expr.screenshot(animations="disabled")
        off, mean = compare_shots(shot_painted, shot_svg, name)
        assert off < 0.002 and mean < 1.5, (f"{name}: the painted last step differs from the SVG in {off:.2%} of "
                                            f"pixels (mean {mean:.2f}); see {SHOTS}")
    else:
        page.mouse.up()
        wait_painted(page, fig, on=False)

    play = fig.locator("button.sg-play")
    play.click()
    wait_painted(page, fig)
    page.wait_for_timeout(150)
    assert play.get_attribute("aria-pressed") == "true"
    assert_on_plots(page, f"{name}: playing", n_layers)
    # the painted frame stays a moment after a pause, then the SVG takes over
    off = play.evaluate(f"b => {{ b.click(); return ({OFFSETS})(); }}")
    assert len(off) == n_layers and max(off) <= 1.0, f"{name}: paused: layers off by {off[:5]}"
    wait_painted(page, fig, on=False)


@pytest.mark.parametrize("combo", COMBOS, ids=[f"{w}px-dpr{d}-{s}" for w, d, s in COMBOS])
def test_painted_layers_lie_on_their_plots(browser, base, combo):
    width, dpr, scheme = combo
    ctx = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=dpr,
                              color_scheme=scheme, reduced_motion="no-preference")
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        checked = 0
        for path in BUNDLED + ["heavy/"]:
            page.goto(base + path, wait_until="load")
            figs = page.locator("figure.sg-expression:has(button.sg-play)")
            for i in range(figs.count()):
                fig = figs.nth(i)
                name = f"{path.strip('/')}-{i}-{width}px-dpr{dpr}-{scheme}"
                exercise(page, fig, name, combo, shots=path != "heavy/" or i == 0)  # the heavy ones: one look is enough
                checked += 1
        assert checked >= 7, f"only {checked} animated figures found"
        assert errors == []
    finally:
        ctx.close()


def test_tap_on_a_phone_shows_the_value(browser, base):
    ctx = browser.new_context(viewport={"width": 390, "height": 800}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    try:
        page = ctx.new_page()
        page.goto(base + "figures-tour/", wait_until="load")
        fig = page.locator("figure.sg-expression").first
        strip = fig.locator("svg.sg-strip").first
        strip.scroll_into_view_if_needed()
        dot = strip.locator("circle:not([visibility])").first
        b = dot.bounding_box()
        page.touchscreen.tap(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
        tip = page.locator(".sg-tip")
        tip.wait_for(state="visible", timeout=3000)
        text = tip.text_content()
        data = page.evaluate("f => JSON.parse(f.querySelector('script.sg-data').textContent)", fig.element_handle())
        ph = data["ph"][0]
        assert ph["label"] in text
        assert any(ch.isdigit() for ch in text.split(ph["label"], 1)[1]), text
        page.wait_for_timeout(400)  # the tooltip stays after the finger lifts
        assert tip.is_visible()
        page.screenshot(path=str(SHOTS / "tap-390px.png"))
        page.touchscreen.tap(5, 5)  # a tap elsewhere puts it away
        tip.wait_for(state="hidden", timeout=3000)
    finally:
        ctx.close()


def test_every_inline_plot_shows_its_scale(browser, base):
    """Both ends of every plot's axis are printed, inside the plot's box and apart from each other."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        for path in BUNDLED + ["writing-with-sitegen/", "heavy/"]:
            page.goto(base + path, wait_until="load")
            bad = page.evaluate("""() => [...document.querySelectorAll('svg.sg-strip')].filter((svg) => {
              const box = svg.getBoundingClientRect(), lo = svg.querySelector('.sg-lo'), hi = svg.querySelector('.sg-hi');
              if (!lo || !hi || !lo.textContent.trim() || !hi.textContent.trim()) return true;
              const a = lo.getBoundingClientRect(), b = hi.getBoundingClientRect();
              return a.left < box.left - 0.5 || b.right > box.right + 0.5 || a.right > b.left || a.height < 5;
            }).map((svg) => svg.getAttribute('aria-label'))""")
            assert bad == [], f"{path}: plots without a readable scale: {bad[:3]}"
    finally:
        page.close()
