"""Code blocks and formulas reused from a post's previous parse (sitegen/markdown.py's fragments, kept
in the build cache's own table): an edit to the prose around them neither highlights nor converts
them again, and any change to what they are made of (the code, the language, line numbers, the
formula, display or inline, a macro, the code version) makes them again, never serves the old HTML."""
from __future__ import annotations

import sqlite3

import pytest

import sitegen.markdown as markdown
from sitegen import build as build_module
from sitegen.build import Builder

POST = """---
title: Fragments
date: 2024-01-02
---
{macro}Some {prose} with $a_1^2$ inline and a macro $\\R$.

```python
def f(x):
    return x + 1
```

$$
\\frac{1}{n} \\sum_i x_i
$$
"""
MACRO = "$\\newcommand{\\R}{\\mathbb{R}}$\n\n"



@pytest.fixture
def made(monkeypatch):
    """How many code blocks and formulas were highlighted and converted (not reused)."""
    counts = {"code": [], "math": []}
    highlight, convert = markdown.highlight, markdown._convert_math.__wrapped__

    def counted_highlight(code, lang, linenos=False):
        counts["code"].append((lang, linenos, code))
        return highlight(code, lang, linenos)

    def counted_convert(latex, display):
        counts["math"].append((latex, display))
        return convert(latex, display)

    monkeypatch.setattr(markdown, "highlight", counted_highlight)
    monkeypatch.setattr(markdown, "_convert_math", counted_convert)
    return counts


def _build(site, made=None):
    if made is not None:
        made["code"].clear()
        made["math"].clear()
    Builder(site.root, workers=1).build()


def _same_as_fresh(site, tmp_path):
    fresh = tmp_path / "fresh"
    Builder(site.root, out=fresh, use_cache=False, workers=1).build()
    assert site.contents() == site.contents(fresh)


def _write(site, text=POST, prose="prose"):
    site.post("a.md", text.replace("{macro}", MACRO).replace("{prose}", prose))
    site.post("b.md", "---\ntitle: Other\ndate: 2024-01-01\n---\nNo code here.\n")


def test_an_edit_to_the_prose_reuses_the_code_and_the_math(site, tmp_path, made):
    _write(site)
    _build(site)
    _write(site, prose="edited prose")
    _build(site, made)
    assert made == {"code": [], "math": []}
    assert "edited prose" in site.page("a/index.html")
    _same_as_fresh(site, tmp_path)


@pytest.mark.parametrize("before, after, kind", [
    ("    return x + 1", "    return x + 2", "code"),
    ("```python", "```ruby", "code"),
    ("```python", "```python linenos", "code"),
    ("$a_1^2$", "$a_1^3$", "math"),
    ("$a_1^2$ inline", "\n\n$$a_1^2$$\n\nnow display", "math"),
    ("\\sum_i x_i", "\\prod_i x_i", "math"),
])
def test_a_changed_fragment_is_made_again(site, tmp_path, made, before, after, kind):
    _write(site)
    _build(site)
    assert before in POST
    _write(site, POST.replace(before, after))
    _build(site, made)
    assert len(made[kind]) == 1, made
    _same_as_fresh(site, tmp_path)


def test_inline_and_display_math_of_the_same_text_are_not_confused(site, tmp_path, made):
    _write(site, POST.replace("$a_1^2$ inline", "$x$ inline"))
    _build(site)
    _write(site, POST.replace("$a_1^2$ inline", "$x$ inline\n\n$$x$$\n"))
    _build(site, made)
    assert made["math"] == [("x", True)]
    _same_as_fresh(site, tmp_path)


def test_a_changed_macro_converts_the_formulas_that_use_it_again(site, tmp_path, made):
    _write(site)
    _build(site)
    site.post("a.md", POST.replace("{macro}", MACRO.replace("mathbb", "mathbf")).replace("{prose}", "prose"))
    _build(site, made)
    assert [latex for latex, _ in made["math"]] == ["\\mathbf{R}"]
    _same_as_fresh(site, tmp_path)


def _rows(site) -> dict:
    db = sqlite3.connect(site.root / ".sitegen-cache" / "build.sqlite")
    try:
        return {post: (version, data, crc) for post, version, data, crc in db.execute("SELECT * FROM fragments")}
    finally:
        db.close()


def _update(site, sql, *args):
    db = sqlite3.connect(site.root / ".sitegen-cache" / "build.sqlite")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_only_posts_with_code_or_math_keep_fragments_and_a_removed_post_loses_them(site):
    _write(site)
    site.post("c.md", "---\ntitle: Third\ndate: 2024-01-03\n---\n```\nplain\n```\n")
    _build(site)
    assert set(_rows(site)) == {"content/a.md", "content/c.md"}
    (site.root / "content" / "c.md").unlink()
    _build(site)
    assert set(_rows(site)) == {"content/a.md"}


def test_a_damaged_row_or_one_of_another_code_version_is_not_used(site, tmp_path, made):
    _write(site)
    _build(site)
    _, data, _ = _rows(site)["content/a.md"]
    at = data.index(b"mrow")
    _update(site, "UPDATE fragments SET data = ? WHERE post = ?", data[:at] + b"MROW" + data[at + 4:], "content/a.md")
    _write(site, prose="edited once")
    _build(site, made)
    assert made["code"] and made["math"]
    _same_as_fresh(site, tmp_path)
    _update(site, "UPDATE fragments SET version = 'another' WHERE post = ?", "content/a.md")
    _write(site, prose="edited twice")
    _build(site, made)
    assert made["code"] and made["math"]
    _same_as_fresh(site, tmp_path)


def test_a_build_without_the_cache_neither_reads_nor_keeps_fragments(site, tmp_path, made):
    _write(site)
    _build(site)
    before = _rows(site)
    _write(site, prose="edited")
    made["code"].clear()
    Builder(site.root, use_cache=False, workers=1).build()
    assert made["code"] and made["math"]
    assert _rows(site) == before


def test_another_version_of_a_library_is_another_code_version(monkeypatch):
    """A Pygments or latex2mathml upgrade must not reuse what the old one made (nor a parse or page)."""
    first = build_module._code_version()
    stamps = build_module._library_stamps()
    assert [s[0] for s in stamps] == list(build_module.LIBRARIES) and all(s[1] for s in stamps)
    monkeypatch.setattr(build_module, "_library_stamps", lambda: [*stamps[:-1], (stamps[-1][0], "elsewhere")])
    assert build_module._code_version() != first
