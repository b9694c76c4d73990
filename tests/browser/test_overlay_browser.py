"""The preview's error overlay says what stopped the build: its heading counts the errors it lists, and
warnings from other files are set apart, folded, and labelled as not what failed."""
from __future__ import annotations

import textwrap

import pytest

from sitegen.serve import PreviewServer

WAIT_MS = 30_000


@pytest.fixture
def preview(tmp_path):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "sitegen.toml").write_text('title = "Overlay"\n')
    (root / "content" / "essay.md").write_text(textwrap.dedent("""\
        ---
        title: An essay
        date: 2024-01-01
        ---

        The opening.
        """))
    # two warnings from another file: an undated post, and a footnote defined but never referenced
    (root / "content" / "notes.md").write_text("---\ntitle: Notes\n---\n\nText.\n\n[^unused]: never cited.\n")
    server = PreviewServer(root, port=0, log=lambda line: None).start()
    yield server, root
    server.stop()


def test_heading_counts_the_errors_and_other_files_warnings_are_folded(browser, preview):
    server, root = preview
    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.goto(server.url + "essay/")
    page.wait_for_function("() => document.querySelector('script[src=\"/__sitegen/reload.js\"]') !== null")
    deadline = 200
    while len(server.hub) < 1 and deadline:
        page.wait_for_timeout(50)
        deadline -= 1
    warnings = [p for p in server.hub.problems if p["level"] == "warning"]
    assert warnings and all(p["path"].endswith("notes.md") for p in warnings), server.hub.problems
    post = root / "content" / "essay.md"
    post.write_text(post.read_text() + "\n```{nonsense}\n```\n")
    overlay = page.locator("sitegen-preview-overlay section[role=alert]")
    overlay.wait_for(timeout=WAIT_MS)
    assert overlay.locator("h2").inner_text() == "Build failed: 1 error"
    errors = overlay.locator("li.error")
    assert errors.count() == 1 and "nonsense" in errors.first.inner_text()
    fold = overlay.locator("details.elsewhere")
    assert fold.count() == 1 and not fold.evaluate("d => d.open")
    summary = fold.locator("summary").inner_text()
    assert f"{len(warnings)} warning" in summary and "did not stop the build" in summary
    assert fold.locator("li.warning").count() == len(warnings)
    texts = fold.locator("li.warning").all_text_contents()
    assert texts and all("notes.md" in t for t in texts), texts
    page.close()
