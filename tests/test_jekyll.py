"""Bringing a Jekyll blog over: Markdown extensions, public/, MathJax delimiters and macros,
Liquid, Jekyll front matter and permalinks, `sitegen import jekyll`, the Pages workflow."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitegen import mathjax
from sitegen.context import PageContext
from sitegen.markdown import render


def snapshot(root: Path, out: Path) -> dict[str, str]:
    """Every file of the site outside its output folder, by content: a build must change none."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and out not in p.parents
            and ".sitegen-cache" not in p.parts
            and not p.relative_to(root).parts[0].startswith(f".{out.name}.")}  # the old output, removed in background


def build_checked(site, **kwargs):
    before = snapshot(site.root, site.out)
    result = site.build(**kwargs)
    assert snapshot(site.root, site.out) == before
    return result


def md(text: str) -> tuple[str, list[str]]:
    ctx = PageContext(path="p.md", root=Path("."), source_dir=Path("."))
    return render(text, ctx).html, [str(p) for p in ctx.problems]


# ---------------------------------------------------------------------------------------------
# discovery

def test_every_markdown_extension_is_a_post(site):
    for ext in ("md", "markdown", "mdown", "mkd"):
        site.post(f"2024-01-0{len(ext)}-post-{ext}.{ext}", f"---\ntitle: Post {ext}\n---\nText.\n")
    site.post("bundle/index.markdown", "---\ntitle: Bundle\ndate: 2024-01-01\n---\n![a](a.svg)\n")
    (site.root / "content/bundle/a.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    result = build_checked(site)
    for ext in ("md", "markdown", "mdown", "mkd"):
        assert f"Post {ext}" in site.page(f"post-{ext}/index.html")
    assert (site.out / "bundle/a.svg").exists() and not (site.out / "bundle/index.markdown").exists()
    assert len(result.parsed) == 5


def test_jekyll_posts_and_drafts_folders_inside_content(site):
    site.post("_posts/2024-01-01-first.markdown", "---\ntitle: First\n---\nText.\n")
    site.post("_posts/2023/2023-05-01-older.md", "---\ntitle: Older\n---\nText.\n")
    site.post("_drafts/unfinished.md", "---\ntitle: Unfinished\ndate: 2024-02-01\n---\nText.\n")
    build_checked(site)
    assert (site.out / "first/index.html").exists() and (site.out / "older/index.html").exists()
    assert not (site.out / "unfinished").exists()
    build_checked(site, drafts=True)
    assert "banner-draft" in site.page("unfinished/index.html")


def test_content_without_a_post_is_an_error_listing_what_was_skipped(site):
    site.post("notes.txt", "not a post")
    site.post("pictures/a.png", "png")
    site.post("_layouts/post.html", "<html>")
    errors = site.build_errors()
    assert len(errors) == 1
    message = errors[0]
    assert message.startswith("content: no post found: 3 file(s)")
    assert "content/notes.txt (not a Markdown file" in message
    assert "content/pictures (a folder without index.md" in message
    assert "content/_layouts (names starting with '.' or '_' are skipped)" in message
    assert not site.out.exists()


def test_an_empty_content_folder_still_builds(site):
    (site.root / "content").mkdir()
    site.build()
    assert (site.out / "index.html").exists()


# ---------------------------------------------------------------------------------------------
# public/

def test_public_files_are_served_at_the_root_unchanged(site):
    files = {"assets/img/plot.png": b"\x89PNG fake", "images/a b.svg": b"<svg/>", "CNAME": b"blog.example.org\n",
             "favicon.ico": b"ico", ".nojekyll": b"", "_redirects": b"/old /new 301\n",
             "_headers": b"/*\n  X-Test: 1\n", "robots.txt": b"User-agent: *\nDisallow: /secret/\n",
             ".DS_Store": b"junk", "static/extra.css": b"body{}"}
    for rel, data in files.items():
        path = site.root / "public" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\n![plot](/assets/img/plot.png) "
                      "![b](/images/a%20b.svg) [icon](/favicon.ico)\n")
    build_checked(site)
    for rel, data in files.items():
        if rel == ".DS_Store":
            assert not (site.out / rel).exists()
        else:
            assert (site.out / rel).read_bytes() == data, rel
    assert site.page("robots.txt") == "User-agent: *\nDisallow: /secret/\n"
    assert any(p.name.startswith("style.") for p in (site.out / "static").iterdir())  # sitegen's own assets stay


def test_links_to_missing_public_files_are_broken_links(site):
    (site.root / "public/assets").mkdir(parents=True)
    (site.root / "public/assets/there.png").write_bytes(b"png")
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n\n![missing](/assets/not-there.png)\n")
    errors = site.build_errors()
    assert errors == ["content/a.md:7: broken link '/assets/not-there.png': no page or file "
                      "/assets/not-there.png in the site"]


def test_a_public_file_may_not_replace_a_generated_page(site):
    (site.root / "public/a").mkdir(parents=True)
    (site.root / "public/a/index.html").write_text("<!doctype html>")
    (site.root / "public/index.html").write_text("<!doctype html>")
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n")
    errors = site.build_errors()
    assert "public/a/index.html: would replace /a/index.html, which content/a.md generates; rename or move the file" in errors
    assert any(e.startswith("public/index.html: would replace /index.html") for e in errors)


# ---------------------------------------------------------------------------------------------
# math

def test_mathjax_delimiters_become_mathml():
    html, problems = md("Inline \\\\( x_1 \\\\), \\( \\alpha \\) and $$\\beta$$ in text.\n\n"
                        "\\\\[\n\\sum_i x_i\n\\\\]\n\n\\[ \\mathbb{R}^n \\]\n\n"
                        "$$\n\\begin{align} a &= b \\\\ c &= d \\end{align}\n$$\n\n"
                        "\\begin{align}\nf(x) &= \\left( \\frac{1}{2} \\right)\n\\end{align}\n")
    assert problems == []
    assert "\\(" not in html and "\\[" not in html and "$$" not in html and "\\begin" not in html
    paragraph = html.split("</p>")[0]
    assert paragraph.count('display="inline"') == 3 and "math-display" not in paragraph
    assert html.count('<div class="math-display"') == 4


def test_kramdown_escapes_inside_escaped_delimiters_are_undone():
    html, problems = md("Set \\\\( \\\\{ x \\\\} \\\\) and \\\\( a\\_1 \\\\).")
    assert problems == []
    assert "&#x0007B;" in html and "<msub><mi>a</mi><mn>1</mn></msub>" in html


def test_common_mathjax_macros_convert():
    formulas = [r"\mathbb{E}", r"\mathcal{L}", r"\operatorname{softmax}(x)", r"\text{if } x > 0",
                r"\begin{cases} 1 & x > 0 \\ 0 & \text{otherwise} \end{cases}", r"\left( x \right)",
                r"\boldsymbol{\theta}", r"x^\top y", r"\arg\max_x f(x)", r"\begin{aligned} a &= b \end{aligned}",
                r"\begin{gather} a \\ b \end{gather}", r"\begin{equation} x \label{eq:x} \end{equation}"]
    for tex in formulas:
        html, problems = md(f"\\( {tex} \\)")
        assert problems == [] and "<math" in html and "math-error" not in html, tex


def test_page_macros_from_newcommand_and_declaremathoperator():
    html, problems = md("$$\\newcommand{\\R}{\\mathbb{R}} \\DeclareMathOperator{\\E}{\\mathbb{E}}"
                        "\\newcommand{\\norm}[1]{\\lVert #1 \\rVert}$$\n\n"
                        "Then \\( x \\in \\R^n \\), \\( \\E[x] \\) and \\( \\norm{x}_2 \\).")
    assert problems == []
    assert "&#x0211D;" in html and "&#x02016;" in html and "math-error" not in html


def test_a_formula_that_cannot_be_converted_is_a_warning_and_shown_as_code(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nFine \\( x \\).\n\nBad \\( \\foo{x} \\) and $a_{$ here.\n")
    result = build_checked(site)
    messages = [str(w) for w in result.warnings]
    assert ("content/a.md:7: warning: cannot convert the formula '\\foo{x}' to MathML (unknown command \\foo); "
            "it is shown as code: check the LaTeX, or define the macro with \\newcommand in an earlier formula") in messages
    assert any("content/a.md:7: warning: cannot convert the formula 'a_{'" in m for m in messages)
    page = site.page("a/index.html")
    assert '<code class="math-error">\\foo{x}</code>' in page and '<code class="math-error">a_{</code>' in page


def test_escaped_brackets_and_code_are_not_math():
    html, problems = md("A citation \\[1\\], `\\(code\\)` and\n\n```\n\\[ x \\]\n```\n")
    assert problems == [] and "<math" not in html
    assert "[1]" in html and "<code>\\(code\\)</code>" in html


TEX = st.text(alphabet="abcxyz0123456789_^{}+-=()[] ,.|", min_size=1, max_size=40).filter(lambda s: s.strip())


def kramdown_escape(text: str) -> str:
    return "".join("\\" + c if c in mathjax.KRAMDOWN_ESCAPABLE else c for c in text)


@given(st.text(max_size=60))
def test_kramdown_unescape_undoes_escaping(text):
    assert mathjax.kramdown_unescape(kramdown_escape(text)) == text


@given(TEX, st.text(alphabet="ab. ", max_size=10), st.sampled_from(["(", "["]))
def test_plain_delimiters_give_back_the_formula(tex, after, kind):
    close = ")" if kind == "(" else "]"
    if kind == "[" and mathjax.CITATION.match(tex):
        return
    src = f"\\{kind}{tex}\\{close}{after}"
    found = mathjax.find_inline(src, 0)
    if f"\\{close}" in tex:
        return
    assert found == (len(src) - len(after), tex, kind == "[")


@given(TEX, st.sampled_from(["(", "["]))
def test_kramdown_escaped_delimiters_give_back_the_formula(tex, kind):
    close = ")" if kind == "(" else "]"
    if kind == "[" and mathjax.CITATION.match(tex):
        return
    src = f"\\\\{kind}{kramdown_escape(tex)}\\\\{close}"
    assert mathjax.find_inline(src, 0) == (len(src), tex, kind == "[")


@given(st.lists(TEX, min_size=1, max_size=4), st.sampled_from(["\\[", "\\\\["]))
def test_display_blocks_span_lines(lines, opener):
    closer = opener.replace("[", "]")
    body = [kramdown_escape(l) if opener == "\\\\[" else l for l in lines]
    if any(closer in l for l in body):
        return
    found = mathjax.find_block([opener] + body + [closer, "after"], 0)
    assert found == (len(lines) + 1, "\n".join(l.strip() for l in lines).strip())


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="\\()[]$ax_{}\n `*", max_size=80))
def test_any_text_renders_without_crashing(text):
    html, problems = md(text)
    assert all(": warning: " in p for p in problems)  # math never fails a build
