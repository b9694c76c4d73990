"""The preview in a real browser: a save on disk shows up in the open tab by itself, the scroll
position survives the reload, a stylesheet edit is swapped in without a reload, and a broken save
shows every error in an overlay that goes away once the file is fixed."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from sitegen.serve import PreviewServer

WAIT_MS = 30_000

LONG = "\n\n".join(f"Paragraph {i} of a long post, so that there is something to scroll past." for i in range(80))


@pytest.fixture
def preview(tmp_path):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "static").mkdir()
    (root / "sitegen.toml").write_text('title = "Browser preview"\n')
    (root / "content" / "essay.md").write_text(textwrap.dedent("""\
        ---
        title: An essay
        date: 2024-01-01
        ---

        The first version of the opening.

        """) + LONG + "\n\nThe closing line.\n")
    (root / "static" / "extra.css").write_text("p { letter-spacing: 0px; }\n")
    lines: list[str] = []
    server = PreviewServer(root, port=0, log=lines.append).start()
    yield server, root
    server.stop()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 900, "height": 700})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => document.querySelector('script[src=\"/__sitegen/reload.js\"]') !== null")
    # the reload client is connected once the server counts the tab
    return page, problems


def wait_for_tabs(server, n):
    import time

    deadline = time.monotonic() + WAIT_MS / 1000
    while len(server.hub) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.hub) >= n, "the page's reload client never connected"


def test_a_save_on_disk_appears_in_the_open_tab(browser, preview):
    server, root = preview
    page, problems = open_page(browser, server.url + "essay/")
    wait_for_tabs(server, 1)
    page.evaluate("window.scrollTo(0, 1500)")
    page.wait_for_function("() => Math.abs(window.scrollY - 1500) < 2")
    post = root / "content" / "essay.md"
    post.write_text(post.read_text().replace("The first version of the opening.", "The second version, saved in an editor."))
    page.wait_for_selector("text=The second version, saved in an editor.", timeout=WAIT_MS)
    page.wait_for_load_state("load")
    page.wait_for_function("() => Math.abs(window.scrollY - 1500) < 40", timeout=WAIT_MS)
    assert problems == []
    page.close()


def test_a_stylesheet_edit_is_swapped_without_a_reload(browser, preview):
    server, root = preview
    page, problems = open_page(browser, server.url + "essay/")
    wait_for_tabs(server, 1)
    page.evaluate("window.__notReloaded = true")
    spacing = "() => getComputedStyle(document.querySelector('main p')).letterSpacing"
    assert page.evaluate(spacing) in ("0px", "normal")
    (root / "static" / "extra.css").write_text("p { letter-spacing: 3px; }\n")
    page.wait_for_function(f"() => ({spacing})() === '3px'", timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded for a CSS change"
    assert page.locator("link[rel=stylesheet][href*='extra.css']").count() == 1
    assert problems == []
    page.close()


def test_a_broken_save_shows_an_overlay_until_fixed(browser, preview):
    server, root = preview
    page, problems = open_page(browser, server.url + "essay/")
    wait_for_tabs(server, 1)
    post = root / "content" / "essay.md"
    good = post.read_text()
    post.write_text(good.replace("The closing line.", "```{nonsense}\n```\n\n```{chrat} data/x.csv\n```"))
    lines = post.read_text().split("\n")
    first = lines.index("```{nonsense}") + 1
    second = lines.index("```{chrat} data/x.csv") + 1
    overlay = page.locator("sitegen-preview-overlay section[role=alert]")
    overlay.wait_for(timeout=WAIT_MS)
    text = overlay.inner_text()
    assert "Build failed: 2 errors" in text
    assert re.search(rf"content/essay\.md:{first}: .*nonsense", text), text
    assert re.search(rf"content/essay\.md:{second}: .*chrat", text), text
    # the page itself is still the last good build
    assert page.locator("text=The closing line.").count() == 1
    post.write_text(good.replace("The closing line.", "The closing line, repaired."))
    page.wait_for_selector("text=The closing line, repaired.", timeout=WAIT_MS)
    assert page.locator("sitegen-preview-overlay section[role=alert]").count() == 0
    assert problems == []
    page.close()


def test_the_reload_client_is_allowed_by_the_production_policy(browser, preview):
    # The preview sends the production Content-Security-Policy; Chromium logs a console error for
    # anything it blocks, so a clean console means the injected client obeys it too.
    server, _ = preview
    page, problems = open_page(browser, server.url + "essay/")
    wait_for_tabs(server, 1)
    page.goto(server.url + "no-such-page/")
    wait_for_tabs(server, 1)
    assert page.locator("sitegen-preview-overlay section").count() == 0
    assert [m for m in problems if "status of 404" not in m] == []
    page.close()


def test_eight_tabs_share_one_stream_and_all_follow_a_save(browser, preview):
    # A stream holds one of the six connections a browser allows per host: the tabs share one
    # (reload-worker.js), so an eighth tab still loads, and every tab hears the save.
    server, root = preview
    context = browser.new_context(viewport={"width": 900, "height": 700})
    pages = []
    for _ in range(8):
        page = context.new_page()
        page.goto(server.url + "essay/")
        page.wait_for_function("() => document.querySelector('script[src=\"/__sitegen/reload.js\"]') !== null")
        pages.append(page)
    wait_for_tabs(server, 1)
    assert len(server.hub) == 1
    post = root / "content" / "essay.md"
    post.write_text(post.read_text().replace("The first version of the opening.", "Saved once, seen by all."))
    for page in pages:
        page.wait_for_selector("text=Saved once, seen by all.", timeout=WAIT_MS)
    import time

    deadline = time.monotonic() + WAIT_MS / 1000  # a stream left by a reloaded worker takes a moment to notice
    while len(server.hub) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.hub) == 1
    context.close()
