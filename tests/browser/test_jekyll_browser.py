"""The imported Jekyll blog (tests/fixtures/jekyll-blog) in a real browser: axe finds nothing serious on any
page, in light and dark; every image loads; an old Jekyll address lands on the post."""
from __future__ import annotations

from pathlib import Path

import pytest

from sitegen.build import Builder
from sitegen.jekyll_import import import_jekyll

BLOG = Path(__file__).resolve().parents[1] / "fixtures" / "jekyll-blog"


@pytest.fixture(scope="module")
def blog_url(tmp_path_factory, serve_dir):
    site = tmp_path_factory.mktemp("jekyll") / "blog"
    import_jekyll(BLOG, site)
    result = Builder(site, use_cache=False).build()
    pages, redirects = [], []
    for p in sorted(result.out_dir.rglob("*.html")):
        url = "/" + str(p.relative_to(result.out_dir)).removesuffix("index.html")
        (redirects if 'http-equiv="refresh"' in p.read_text() else pages).append(url)
    return serve_dir(result.out_dir).rstrip("/"), pages, redirects


def test_no_serious_accessibility_violations_on_any_page(browser, blog_url):
    from axe_playwright_python.sync_playwright import Axe

    base, pages, redirects = blog_url
    assert len(pages) > 15 and len(redirects) >= 8
    for scheme in ("light", "dark"):
        context = browser.new_context(bypass_csp=True, color_scheme=scheme)  # axe is injected as a script
        # A redirect page leaves at once; checked here without its (zero-delay) refresh, which axe allows.
        context.route("**/*.html", lambda route: route.fulfill(
            response=(r := route.fetch()), body=r.text().replace('http-equiv="refresh"', 'data-refresh="0"')))
        page = context.new_page()
        # Every page in light; in dark (the same templates, other colours) a post with math, code and
        # images, and a redirect page, to keep the test quick.
        checked = pages + redirects if scheme == "light" else [
            "/ml/2019/03/14/gaussian-processes/", "/2022/12/25/images/", redirects[0]]
        for path in checked:
            page.goto(base + path)
            results = Axe().run(page)
            bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
                   for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
            assert bad == [], f"{path} ({scheme}): {bad}"
        context.close()


def test_every_image_loads(browser, blog_url):
    base, pages, _ = blog_url
    page = browser.new_page()
    loaded = 0
    for path in pages:
        page.goto(base + path)
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                               ".map(i => i.src)")
        assert broken == [], path
        loaded += page.evaluate("document.images.length")
    assert loaded >= 5
    page.close()


def test_an_old_jekyll_address_lands_on_the_post(browser, blog_url):
    base, _, _ = blog_url
    page = browser.new_page()
    page.goto(base + "/ml/2019/03/14/gaussian-processes.html")
    page.wait_for_url("**/ml/2019/03/14/gaussian-processes/")
    assert page.locator("h1").inner_text() == "Gaussian processes, slowly"
    page.close()
