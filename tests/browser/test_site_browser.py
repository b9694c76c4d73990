"""The bundled site in a real browser: accessible, within its Content-Security-Policy, usable by keyboard."""
from __future__ import annotations

import functools
import http.server
import threading
import tomllib
from pathlib import Path

import pytest

from sitegen.build import Builder

REPO = Path(__file__).resolve().parents[2]

PAGES = ["", "writing-with-sitegen/", "figures-tour/", "gp-parameters/", "silent-bug/", "ill-conditioning/",
         "tags/", "tags/guide/", "404.html"]


def netlify_headers() -> dict[str, str]:
    config = tomllib.loads((REPO / "netlify.toml").read_text())
    headers = {}
    for block in config.get("headers", []):
        if block["for"] == "/*":
            headers.update(block["values"])
    return headers


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    """The bundled site, served with the same headers Netlify sends (its CSP included)."""
    out = tmp_path_factory.mktemp("site") / "_site"
    Builder(REPO, out=out, use_cache=False).build()
    headers = netlify_headers()

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

        def end_headers(self):
            for k, v in headers.items():
                self.send_header(k, v)
            super().end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(out)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_csp_header_is_strict(site_url):
    csp = netlify_headers()["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize("path", PAGES)
def test_page_satisfies_csp_without_console_errors(browser, site_url, path):
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                         " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    response = page.goto(site_url + path)
    assert response.status in (200, 304) or path == "404.html"
    page.wait_for_timeout(300)
    for box in page.query_selector_all("input[type=range]")[:1]:
        box.focus()
        page.keyboard.press("ArrowRight")  # wakes lazily loaded figure data, which must also obey the CSP
    page.wait_for_timeout(300)
    assert page.evaluate("window.__csp") == []
    assert errors == []
    page.close()


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_accessibility_violations(browser, site_url, path):
    from axe_playwright_python.sync_playwright import Axe

    for scheme in ("light", "dark"):
        context = browser.new_context(bypass_csp=True, color_scheme=scheme)  # axe is injected as a script
        page = context.new_page()
        page.goto(site_url + path)
        page.wait_for_timeout(200)
        results = Axe().run(page)
        bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{path} ({scheme}): {bad}"
        context.close()


def test_sidenote_opens_by_keyboard_on_a_phone(browser, site_url):
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.goto(site_url + "writing-with-sitegen/")
    note = page.locator(".sidenote").first
    assert not note.is_visible()
    page.locator(".sidenote-switch").first.focus()
    page.keyboard.press("Space")
    assert note.is_visible()
    assert "[^name]" in note.inner_text()
    context.close()


def test_sidenotes_sit_in_the_margin_on_a_wide_screen(browser, site_url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(site_url + "writing-with-sitegen/")
    note = page.locator(".sidenote").first
    body = page.locator(".post-body").bounding_box()
    box = note.bounding_box()
    assert note.is_visible() and box["x"] >= body["x"] + body["width"] - 5
    context.close()


def test_dark_mode_follows_the_reader(browser, site_url):
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        page.goto(site_url + "writing-with-sitegen/")
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        context.close()
    assert colours["light"] != colours["dark"]
    assert colours["dark"] == "rgb(22, 23, 26)"


def test_skip_link_is_the_first_tab_stop(browser, site_url):
    page = browser.new_page()
    page.goto(site_url + "writing-with-sitegen/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    page.close()
