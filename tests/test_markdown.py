"""Markdown features as they appear in a built post."""
from __future__ import annotations

import re


def build_post(site, body: str) -> str:
    site.post("p.md", "---\ntitle: P\ndate: 2024-01-01\n---\n" + body)
    site.build()
    return site.page("p/index.html")


def test_tables_strikethrough_and_raw_html(site):
    page = build_post(site, "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ <kbd>Ctrl</kbd>\n")
    assert "<table>" in page and "<td>2</td>" in page
    assert "<s>gone</s>" in page and "<kbd>Ctrl</kbd>" in page


def test_smart_quotes_are_off(site):
    page = build_post(site, 'He said "hello" -- it\'s fine...\n')
    assert "&quot;hello&quot;" in page or '"hello"' in page
    assert "\u201c" not in page and "\u2013" not in page and "\u2026" not in page


def test_heading_ids_are_stable_and_feed_the_table_of_contents(site):
    page = build_post(site, "## First part\n\ntext\n\n## Second: the *rest*\n\ntext\n\n### Deeper\n\ntext\n")
    assert '<h2 id="first-part">' in page and 'id="second-the-rest"' in page
    toc = re.search(r'<nav class="toc".*?</nav>', page, re.S).group(0)
    assert 'href="#first-part"' in toc and 'href="#deeper"' in toc


def test_inline_and_display_math_become_mathml(site):
    page = build_post(site, "Inline $a^2 + b$ here.\n\n$$\n\\frac{1}{n}\\sum_i x_i\n$$\n")
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in page
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block" displaystyle="true">' in page
    assert "<mfrac>" in page and "<msup>" in page


def test_dollar_amounts_stay_text(site):
    page = build_post(site, "It costs $5 and $10, or $ 3 and 4 $ with spaces.\n")
    assert "<math" not in page
    assert "It costs $5 and $10" in page


def test_footnotes_become_sidenotes_and_endnotes(site):
    page = build_post(site, "Claim[^a] here.\n\n[^a]: The *evidence*.\n")
    assert '<span class="sidenote" role="note"><span class="sidenote-number">1</span> The <em>evidence</em>.</span>' in page
    assert 'class="sidenote-toggle"' in page and 'type="checkbox"' in page
    assert '<li id="fn-1" class="footnote-item">' in page and 'href="#fnref-1"' in page


def test_code_is_highlighted_at_build_time(site):
    page = build_post(site, "```python\ndef f(x):\n    return x  # comment\n```\n\n```nosuchlang\n<raw>\n```\n")
    assert '<code class="language-python"><span class="k">def</span>' in page
    assert '<span class="c1"># comment</span>' in page
    assert "&lt;raw&gt;" in page


def test_callout_directive_renders_markdown_body(site):
    page = build_post(site, "```{warning} Mind *this*\nBody with **bold** and $x$.\n```\n")
    assert '<aside class="callout callout-warning" role="note">' in page
    assert '<p class="callout-title">Mind <em>this</em></p>' in page
    assert "<strong>bold</strong>" in page and "<math" in page


def test_cross_reference_to_unknown_label_is_an_error(site):
    site.post("p.md", "---\ntitle: P\ndate: 2024-01-01\n---\nSee {ref}`fig-nope`.\n")
    errors = site.build_errors()
    assert any(e.startswith("content/p.md:5:") and "unknown label 'fig-nope'" in e for e in errors), errors
