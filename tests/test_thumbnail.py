"""Figures off their page: the feed carries a still picture and a link instead of every dot, and the
index shows each post's first figure small, with its summary and tags."""
from __future__ import annotations

import re

import feedparser
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitegen import thumbnail

PARAMS = [f"w{i}" for i in range(30)]


def seed_scale_site(site, runs=60, experiments=(8, 16, 32, 64, 128, 256, 512, 1024), steps=3):
    """One post with one figure at seed scale: 30 parameters x 8 experiments x 60 runs, every dot drawn."""
    rng = np.random.default_rng(0)
    rows = [(e, r, s, p, float(rng.normal()))
            for e in experiments for r in range(runs) for s in range(steps) for p in PARAMS]
    (site.root / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]).to_parquet(site.root / "data" / "big.parquet")
    template = "\n".join(f"y{i} = ⟦{p}⟧ * x" for i, p in enumerate(PARAMS))
    site.write("data/big.expr", template + "\n")
    site.post("2024-01-02-big.md", """\
        ---
        title: A big figure
        tags: [figures, scale]
        summary: Every parameter of sixty runs.
        ---

        Some prose before the figure.

        ```{expression} data/big.parquet
        :template: data/big.expr
        :label: big
        :caption: Thirty weights, sixty seeds, eight sizes.
        ```

        ```{chart} data/big.parquet
        :x: step
        :y: value
        :series: param
        :where: param=w0,w1
        :caption: Two weights over training.
        ```
        """)
    site.post("2024-01-01-plain.md", "---\ntitle: Plain words\ntags: [prose]\n---\n\nNo figures here.\n")


@pytest.fixture(scope="module")
def big_site(tmp_path_factory):
    from tests.conftest import Site

    site = Site(tmp_path_factory.mktemp("thumbs") / "site")
    site.write("sitegen.toml", 'title = "Test site"\nbase_url = "https://example.org/blog/"\n')
    seed_scale_site(site)
    outside = {p: p.stat().st_mtime_ns for p in site.root.rglob("*") if p.is_file()}
    site.build()
    assert {p: p.stat().st_mtime_ns for p in outside} == outside  # nothing outside _site/ touched
    return site


def test_feed_of_a_seed_scale_figure_is_light_and_parses(big_site):
    page = big_site.page("big/index.html")
    feed = (big_site.out / "feed.xml").read_bytes()
    assert page.count("<circle") >= 30 * 8 * 60  # the page itself draws every dot
    assert len(feed) < 500_000 and len(feed) < len(page.encode()) / 10, len(feed)
    parsed = feedparser.parse(feed)
    assert not parsed.bozo, parsed.bozo_exception
    entry = next(e for e in parsed.entries if e.title == "A big figure")
    html = entry.content[0].value
    assert "<circle" not in html and "sg-data" not in html
    # each figure: its picture, linked to the figure on the page, and its caption
    pictures = re.findall(r'<img[^>]*src="(https://example.org/blog/big/figure-[^"]+\.svg)"', html)
    assert len(pictures) == 2
    assert 'href="https://example.org/blog/big/#big"' in html
    assert "Thirty weights, sixty seeds, eight sizes." in html and "Open the interactive figure" in html
    for url in pictures:
        name = url.rsplit("/", 1)[1]
        picture = (big_site.out / "big" / name).read_text()
        assert picture.startswith("<svg xmlns=") and len(picture) < 20_000
        assert picture.count("h0") <= thumbnail.MAX_STRIPS * 8 * thumbnail.DOTS_PER_ROW


def test_index_shows_the_first_figure_small_with_summary_and_tags(big_site):
    index = big_site.page("index.html")
    items = re.findall(r'<li class="post-item[^"]*">.*?</li>\n', index, re.S)
    assert len(items) == 2
    big, plain = items
    assert "has-thumbnail" in big and "has-thumbnail" not in plain
    svg = re.search(r'<div class="post-thumbnail"><svg class="post-thumb"[^>]*>', big).group(0)
    assert 'aria-hidden="true"' in svg  # decorative: the title link names the post
    assert "<circle" not in big and 0 < big.count("h0") <= thumbnail.MAX_STRIPS * 8 * thumbnail.DOTS_PER_ROW
    assert "Every parameter of sixty runs." in big
    assert 'href="/tags/figures/"' in big and 'href="/tags/scale/"' in big
    assert len(index.encode()) < 40_000


def test_a_post_without_figures_has_no_picture_and_its_feed_entry_is_untouched(big_site):
    feed = feedparser.parse(big_site.out / "feed.xml")
    plain = next(e for e in feed.entries if e.title == "Plain words")
    assert "No figures here." in plain.content[0].value and "<img" not in plain.content[0].value
    assert not list((big_site.out / "plain").glob("figure-*.svg"))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_reading_figures_back_never_fails_on_any_html(text):
    html = f'<figure class="sg-figure sg-expression" id="x"><pre>{text}</pre></figure>' + text
    for fig in thumbnail.figures(html):
        thumbnail.svg(fig)
    thumbnail.for_feed(html, "/p/", {}, lambda u: "https://e.org" + u)
