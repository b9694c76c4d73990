"""Bringing a Jekyll blog over: Markdown extensions, public/, MathJax delimiters and macros,
Liquid, Jekyll front matter and permalinks, `sitegen import jekyll`, the Pages workflow."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitegen import mathjax
from sitegen.context import PageContext
from sitegen.markdown import render


def snapshot(root: Path, out: Path) -> dict[str, str]:
    """Every file of the site outside its output folder, by content: a build must change none.
    The replaced output (``.<out>.sitegen-old-...``) is being removed in the background, so the walk
    never enters the build's own folders beside the output."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != out and d != ".sitegen-cache"
                       and not (here == root and d.startswith(f".{out.name}."))]
        for name in filenames:
            p = here / name
            found[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


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
    assert '<mo stretchy="false">{</mo>' in html and "<msub><mi>a</mi><mn>1</mn></msub>" in html  # the brace, as MathML


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
    assert "ℝ" in html and "‖" in html and "math-error" not in html  # written as characters by sitegen.mathml


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
    html, problems = md("A citation \\[1\\], `\\(code\\)` and\n\n```\n\\[ x \\]\n```\n\n\\[2, 3\\]\n")
    assert problems == [] and "<math" not in html
    assert "[1]" in html and "<code>\\(code\\)</code>" in html


TEX = st.text(alphabet="abcxyz0123456789_^{}+-=()[] ,.|", min_size=1, max_size=40).filter(lambda s: s.strip())


def kramdown_escape(text: str) -> str:
    return "".join("\\" + c if c in mathjax.KRAMDOWN_ESCAPABLE else c for c in text)


@settings(deadline=None)
@given(st.text(max_size=60))
def test_kramdown_unescape_undoes_escaping(text):
    assert mathjax.kramdown_unescape(kramdown_escape(text)) == text


@settings(deadline=None)
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


@settings(deadline=None)
@given(TEX, st.sampled_from(["(", "["]))
def test_kramdown_escaped_delimiters_give_back_the_formula(tex, kind):
    close = ")" if kind == "(" else "]"
    if kind == "[" and mathjax.CITATION.match(tex):
        return
    src = f"\\\\{kind}{kramdown_escape(tex)}\\\\{close}"
    assert mathjax.find_inline(src, 0) == (len(src), tex, kind == "[")


@settings(deadline=None)
@given(st.lists(TEX, min_size=1, max_size=4), st.sampled_from(["\\[", "\\\\["]))
def test_display_blocks_span_lines(lines, opener):
    closer = opener.replace("[", "]")
    body = [kramdown_escape(l) if opener == "\\\\[" else l for l in lines]
    if any(closer in l for l in body) or (opener == "\\[" and mathjax.CITATION.match("\n".join(lines))):
        return
    found = mathjax.find_block([opener] + body + [closer, "after"], 0)
    assert found == (len(lines) + 1, "\n".join(l.strip() for l in lines).strip())


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="\\()[]$ax_{}\n `*", max_size=80))
def test_any_text_renders_without_crashing(text):
    html, problems = md(text)
    assert all(": warning: " in p for p in problems)  # math never fails a build


# ---------------------------------------------------------------------------------------------
# Liquid

from sitegen import liquid  # noqa: E402


class FakeSite(liquid.Resolver):
    posts = {"2024-01-02-target": "/2024/01/02/target/"}

    def post_url(self, name):
        return self.posts.get(name)

    def link(self, path):
        return "/assets/x.png" if path == "assets/x.png" else None

    def variable(self, name):
        return {"site.baseurl": "", "site.url": "", "page.title": "T"}[name]


def liquid_render(text):
    out, errors = liquid.render(text, FakeSite())
    return out, [(e.line, e.level, e.message) for e in errors]


def test_liquid_tags_that_posts_use():
    out, errors = liquid_render(
        "[a]({% post_url 2024-01-02-target %}) [b]({{ site.baseurl }}{% link assets/x.png %})\n"
        "{{ \"/about/\" | relative_url }} {{ site.url }}{{ site.baseurl }}/x {{ page.title }}\n"
        "{% highlight python linenos %}\nx = {{ page.title }}\n{% endhighlight %}\n"
        "{% raw %}{% include x.html %} {{ y }}{% endraw %}\n{% comment %}\nhidden\n{% endcomment %}\nend")
    assert errors == []
    assert out.split("\n") == [
        "[a](/2024/01/02/target/) [b](/assets/x.png)", "/about/ /x T", "```python linenos", "x = T", "```",
        "{% include x.html %} {{ y }}", "", "", "", "end"]


def test_other_liquid_tags_are_errors_naming_the_line_and_what_to_do():
    out, errors = liquid_render("a\n{% include figure.html path=\"assets/img/p.png\" %}\n{% if x %}y{% endif %}\n"
                                "{% gist 123 %}\n{% post_url missing %}\n{{ nope }}")
    assert [(line, level) for line, level, _ in errors] == [(2, "error"), (3, "error"), (3, "error"),
                                                            (4, "error"), (5, "error"), (6, "warning")]
    assert "for an image write ![description](/assets/img/p.png)" in errors[0][2]
    assert "no Liquid logic" in errors[1][2] and "link to the gist" in errors[3][2]
    assert errors[4][2] == "broken link {% post_url missing %}: no post named 'missing'"
    assert out.count("\n") == 5


def test_unclosed_liquid_is_an_error_and_stays_text():
    out, errors = liquid_render("one\n{% raw %}never closed\n{{ open")
    assert [e[0] for e in errors] == [2] and out.endswith("never closed\n{{ open")
    out, errors = liquid_render("one\n\n{{ open")
    assert errors == [(3, "error", "'{{' is never closed with '}}'; close it, or wrap the text in "
                                   "{% raw %}...{% endraw %} to show it as it is")] and out == "one\n\n{{ open"


LIQUID_TEXT = st.text(alphabet="ab {}%-\n\"'|", max_size=60)


@settings(max_examples=300, deadline=None)
@given(LIQUID_TEXT)
def test_liquid_parse_covers_the_source(text):
    segments, _ = liquid.parse(text)
    # raw's tags are dropped and comments kept whole; everything else is the source in order
    if "raw" not in text:
        assert "".join(s.text for s in segments) == text
    for s in segments:
        assert s.line == text[: text.find(s.text) if s.kind != "text" else 0].count("\n") + 1 or s.kind == "text"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="ab \n*#", max_size=8),
                          st.sampled_from(["{% post_url 2024-01-02-target %}", "{{ site.baseurl }}",
                                           "{% raw %}{{ x }}\n{% endraw %}", "{% comment %}\nc\n{% endcomment %}",
                                           "{% highlight py %}\nx\n{% endhighlight %}", "{% include a %}",
                                           "{{ nope }}", "{% link assets/x.png %}", "{{ 'a' | append: 'b' }}"])),
                max_size=8))
def test_liquid_render_keeps_the_line_count(parts):
    text = "".join(parts)
    out, errors = liquid_render(text)
    assert out.count("\n") == text.count("\n")
    assert "{%" not in out.replace("{% raw %}", "") or "{% raw %}" in text
    assert all(1 <= line <= text.count("\n") + 1 for line, _, _ in errors)


def test_liquid_in_a_site(site):
    site.write("sitegen.toml", 'title = "T"\nbase_url = "https://example.org/"\nliquid = true\n')
    (site.root / "public/assets").mkdir(parents=True)
    (site.root / "public/assets/p.png").write_bytes(b"png")
    site.post("2024-01-01-a.md", "---\ntitle: A\n---\nSee [B]({% post_url 2024-01-02-b %}) "
                                 "![p]({{ site.baseurl }}/assets/p.png)\n\n{% highlight python %}\nx = 1\n{% endhighlight %}\n")
    site.post("2024-01-02-b.markdown", "---\ntitle: B\n---\n[A]({% link _posts/2024-01-01-a.md %}) "
                                       "[gone]({% post_url 2020-01-01-gone %})\n")
    assert site.build_errors() == [
        "content/2024-01-02-b.markdown:4: broken link {% post_url 2020-01-01-gone %}: no post named '2020-01-01-gone'"]
    site.post("2024-01-02-b.markdown", "---\ntitle: B\n---\n[A]({% link _posts/2024-01-01-a.md %})\n")
    build_checked(site)
    page = site.page("a/index.html")
    assert 'href="/b/"' in page and 'src="/assets/p.png"' in page and '<span class="n">x</span>' in page
    assert 'href="/a/"' in site.page("b/index.html")


def test_liquid_is_left_alone_unless_the_site_asks_with_a_hint(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nJinja: `{% include x %}`\n")
    result = build_checked(site)
    assert "{% include x %}" in site.page("a/index.html")
    assert [str(w) for w in result.warnings] == [
        "content/a.md:5: warning: '{% include' looks like Jekyll's Liquid and is left as text: add 'liquid = true' "
        "to sitegen.toml to render it (sitegen import jekyll does)"]


# ---------------------------------------------------------------------------------------------
# Jekyll front matter and permalinks

from sitegen import jekyll  # noqa: E402


def test_jekyll_slugify_matches_jekyll():
    assert jekyll.jekyll_slugify("The _config.yml file?!", pretty=True, cased=True) == "The-_config.yml-file-!"
    assert jekyll.jekyll_slugify("The _config.yml file?!") == "the-config-yml-file"
    assert jekyll.jekyll_slugify("Ünïcode names", pretty=True) == "ünïcode-names"


def test_permalinks_and_redirects(site):
    site.write("sitegen.toml", 'title = "T"\nbase_url = "https://example.org/"\npermalink = "date"\n')
    site.post("_posts/2024-03-05-Hello_World.md", "---\ntitle: Hello\ncategories: ML Research\n---\nText.\n")
    site.post("_posts/2024-03-06-plain.markdown", "---\ntitle: Plain\ncategory: notes\n"
                                                  "redirect_from: [/old/plain/, /older.html]\n---\n"
                                                  "[hello](/ml/research/2024/03/05/Hello_World.html)\n")
    site.post("_posts/2024-03-07-own.md", "---\ntitle: Own\npermalink: /:year/:title/\n---\nText.\n")
    site.post("_posts/2024-03-08-literal.md", "---\ntitle: Literal\npermalink: /about.html\n---\nText.\n")
    site.post("_posts/2024-03-09-gone.md", "---\ntitle: Gone\npublished: false\n---\nText.\n")
    build_checked(site)
    out = site.out
    assert (out / "ml/research/2024/03/05/Hello_World/index.html").exists()
    assert (out / "notes/2024/03/06/plain/index.html").exists()
    assert (out / "2024/own/index.html").exists() and (out / "about/index.html").exists()
    assert not list(out.rglob("*gone*"))
    for old, new in [("ml/research/2024/03/05/Hello_World.html", "/ml/research/2024/03/05/Hello_World/"),
                     ("old/plain/index.html", "/notes/2024/03/06/plain/"), ("older.html", "/notes/2024/03/06/plain/"),
                     ("about.html", "/about/")]:
        page = (out / old).read_text()
        assert f'<meta http-equiv="refresh" content="0; url={new}">' in page, old
        assert f'<link rel="canonical" href="https://example.org{new}">' in page
    assert "/ml/research/2024/03/05/Hello_World/" in site.page("index.html")


def test_bad_permalinks_are_errors(site):
    site.post("a.md", "---\ntitle: A\npermalink: /:year/:nope/\n---\nText.\n")
    site.post("b.md", "---\ntitle: B\ndate: 2024-01-01\npermalink: /a-place/\n---\nText.\n")
    site.post("c.md", "---\ntitle: C\ndate: 2024-01-01\npermalink: /a-place/\n---\nText.\n")
    errors = site.build_errors()
    assert any(e.startswith("content/a.md:3: permalink '/:year/:nope/' unknown placeholder ':nope'") for e in errors)
    assert "content/b.md:4: duplicate URL '/a-place/': content/c.md uses it too; give one of them another 'permalink:'" in errors


def test_unknown_layouts_fall_back_to_post_with_one_warning_per_name(site):
    for i in range(3):
        site.post(f"p{i}.md", f"---\ntitle: P{i}\ndate: 2024-01-0{i + 1}\nlayout: prediction_post\n---\nText.\n")
    site.post("d.md", "---\ntitle: D\ndate: 2024-01-05\nlayout: distill\n---\nText.\n")
    result = build_checked(site)
    warnings = [str(w) for w in result.warnings]
    assert len([w for w in warnings if "prediction_post" in w]) == 1
    assert ("content/p0.md:4: warning: no template for layout 'prediction_post' (3 post(s): content/p0.md, "
            "content/p1.md, content/p2.md); they use 'post'. Add templates/prediction_post.html to give them "
            "their own") in warnings
    assert len([w for w in warnings if "'distill'" in w]) == 1
    assert "P1" in site.page("p1/index.html")


def test_excerpt_separator(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\nexcerpt_separator: <!--more-->\n---\n"
                      "First paragraph.\n\nSecond *paragraph*.\n<!--more-->\nHidden from the index.\n")
    site.post("b.md", "---\ntitle: B\ndate: 2024-01-02\n---\nOnly the first.\n\nNot this.\n")
    build_checked(site)
    index = site.page("index.html")
    assert "First paragraph. Second <em>paragraph</em>." in index and "Hidden from the index" not in index
    assert "Only the first." in index and "Not this." not in index


def test_a_broken_link_written_with_liquid_names_its_line(site):
    site.write("sitegen.toml", 'title = "T"\nbase_url = "https://example.org/"\nliquid = true\n')
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n\n![x]({{ site.baseurl }}/assets/missing-plot.png)\n")
    assert site.build_errors() == ["content/a.md:7: broken link '/assets/missing-plot.png': no page or file "
                                   "/assets/missing-plot.png in the site"]


def test_jekyll_dates_with_an_offset_are_read_as_utc(site):
    site.write("sitegen.toml", 'title = "T"\nbase_url = "https://example.org/"\npermalink = "date"\n')
    site.post("_posts/2024-03-05-late.md", "---\ntitle: Late\ndate: 2024-03-05 23:30:00 -0200\ntags: a b\n---\nText.\n")
    build_checked(site)
    assert (site.out / "2024/03/06/late/index.html").exists()  # 01:30 UTC the next day, as on GitHub Pages
    assert (site.out / "tags/a/index.html").exists() and (site.out / "tags/b/index.html").exists()
