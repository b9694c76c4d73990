"""A figure outside a site: save_html writes one page that opens from file:// with nothing fetched."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from sitegen import chart, figure


def trace() -> pd.DataFrame:
    rows = [(n, seed, step, name, float(v)) for n in (16, 256) for seed in range(4) for step in range(0, 50, 5)
            for name, v in (("w", 1 + seed * 0.1 + step / 50), ("b", -0.5 + step / 100 + seed * 0.01))]
    return pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"])


def test_saved_figure_plays_from_disk_with_nothing_fetched(browser, tmp_path):
    saved = figure(trace(), "y = ⟦w | label=slope⟧ * x + ⟦b⟧", step_title="round",
                   caption="Two parameters.").save_html(tmp_path / "model.html", title="A model")
    assert saved.problem == "" and saved.path.endswith("model.html")
    html = (tmp_path / "model.html").read_text(encoding="utf-8")
    assert not re.search(r'(?:src|href)="(?!data:)', html)  # nothing outside the file
    assert "Shown at round 45" in html
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    fetched, errors = [], []
    page.on("request", lambda r: r.url.startswith(("http", "ws")) and fetched.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto((tmp_path / "model.html").as_uri(), wait_until="load")
        assert page.locator("h1").text_content() == "A model"
        assert page.locator(".sg-steplabel").text_content() == "Round 45 of 45"
        page.locator("button.sg-play").click()
        page.wait_for_function("document.querySelector('.sg-steplabel').textContent !== 'Round 45 of 45'")
        page.wait_for_function("document.querySelector('.sg-play').getAttribute('aria-pressed') === 'false'",
                               timeout=20_000)
        assert page.locator(".sg-steplabel").text_content() == "Round 45 of 45"
        assert not page.locator("figure").evaluate("f => f.classList.contains('sg-nodata')")
        assert page.locator(".sg-ph-label").first.text_content() == "slope"
    finally:
        page.close()
    assert fetched == [] and errors == []


def test_saved_chart_and_a_figure_that_cannot_be_drawn(browser, tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"n": np.repeat([16, 64, 256, 1024], 3), "seed": list(range(3)) * 4,
                       "loss": rng.lognormal(0, 0.2, 12) / np.repeat([16, 64, 256, 1024], 3)})
    saved = chart(df, x="n", y="loss", run="seed", logx=True, logy=True).save_html(tmp_path / "scaling")
    assert saved.path.endswith("scaling.html")
    page = browser.new_page()
    try:
        page.goto((tmp_path / "scaling.html").as_uri(), wait_until="load")
        ticks = page.locator(".sg-ticks text").all_text_contents()
        assert ticks[:4] == ["16", "64", "256", "1024"]
    finally:
        page.close()
    bad = figure(trace(), "y = ⟦nope⟧").save_html(tmp_path / "bad.html")
    assert "nope" in bad.problem and not (tmp_path / "bad.html").exists()
