"""Property-based tests: the parsers that read what authors write never raise anything but their own
error, never hang (a deadline per example), and the Markdown pipeline always gives well-formed HTML.

Kept fast for CI: 100-150 examples each. ``HYPOTHESIS_PROFILE=long`` runs ten times more.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

html5lib = pytest.importorskip("html5lib")

from sitegen import markdown  # noqa: E402
from sitegen.content import MAX_SLUG, load  # noqa: E402
from sitegen.context import PageContext  # noqa: E402
from sitegen.data import Catalog  # noqa: E402
from sitegen.directives.metric import Evaluator, MetricError, compute, tokenize  # noqa: E402
from sitegen.errors import Problem, SiteError  # noqa: E402
from sitegen.figures.template import CLOSE, OPEN, TemplateError, parse, quote_name  # noqa: E402

# A deadline far above any real case (milliseconds), so that only a hang fails it, on a loaded machine too.
settings.register_profile("ci", max_examples=120, deadline=dt.timedelta(seconds=30),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("long", max_examples=1200, deadline=dt.timedelta(seconds=30),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: a small site the fuzzed posts may read from
ROOT = Path(tempfile.mkdtemp(prefix="sitegen-fuzz-"))
(ROOT / "data").mkdir()
(ROOT / "content").mkdir()
(ROOT / "data" / "p.json").write_text('{"results": {"loss": 0.25, "n": 3}, "x": 2}')
(ROOT / "data" / "t.csv").write_text("experiment,run,step,param,value\n1,0,0,w,1.0\n1,0,1,w,2.0\n1,1,1,b,-1\n")
(ROOT / "data" / "m.expr").write_text("y = ⟦w⟧ * x + ⟦b | log⟧\n")

# -- Markdown ---------------------------------------------------------------------------------------
SPECIAL = "*_[]()!#$`{}:|^~>-+=.\\\"' \n\t&%⟦⟧"
word = st.text(alphabet=st.sampled_from(list("abcxyz019") + list(SPECIAL) + ["é", "∑", "ℓ", "\u00a0"]),
               min_size=0, max_size=30)
plain = st.text(alphabet=st.sampled_from(list("abc xyz 019 .,;")), min_size=1, max_size=20)
label = st.text(alphabet="abcxyz019-_", min_size=1, max_size=6)
inline = st.one_of(
    word, plain,
    st.builds(lambda w: f"*{w}*", plain), st.builds(lambda w: f"`{w}`", word),
    st.builds(lambda w: f"${w}$", word), st.builds(lambda w: f"$\\frac{{{w}}}{{2}}$", plain),
    st.builds(lambda l: f"[^{l}]", label), st.builds(lambda w, u: f"[{w}]({u})", plain, word),
    st.builds(lambda l: f"{{ref}}`{l}`", label),
    st.builds(lambda e: f"{{metric}}`data/p.json: {e}`", word),
    st.builds(lambda e: f"{{metric}}`data/t.csv: mean(value where {e})`", word),
    st.builds(lambda n, w: f"{{{n}}}`{w}`", st.sampled_from(["metric", "ref", "nope", "x"]), word),
    st.just("{metric}`"), st.just("\x02ref:a:1\x03"), st.just("\x00"),
)
line = st.lists(inline, min_size=1, max_size=6).map(" ".join)
directive = st.builds(
    lambda name, arg, opts, body: f"```{{{name}}} {arg}\n" + "".join(f":{k}: {v}\n" for k, v in opts) + body + "\n```",
    st.sampled_from(["note", "tip", "warning", "expression", "chart", "nope"]),
    st.sampled_from(["", "data/t.csv", "data/p.json", "../x.csv", "Title *here*"]),
    st.lists(st.tuples(st.sampled_from(["class", "template", "label", "caption", "x", "y", "log", "steps",
                                        "width", "band", "frames"]), plain), max_size=3),
    st.one_of(line, st.just("y = ⟦w⟧ * x + ⟦b⟧"), st.just("⟦w | range=1:0⟧")),
)
block = st.one_of(
    line,
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 6), line),
    st.builds(lambda items: "\n".join(f"- {i}" for i in items), st.lists(line, min_size=1, max_size=3)),
    st.builds(lambda t: "> " + t, line),
    st.builds(lambda lang, code: f"```{lang}\n{code}\n```", st.sampled_from(["", "python", "nope"]), word),
    st.builds(lambda code: f"```\n{code}", word),            # never closed
    st.builds(lambda w: f"$$\n{w}\n$$", word),
    st.builds(lambda l, t: f"[^{l}]: {t}", label, line),
    st.builds(lambda cells: "| a | b |\n|---|---|\n| " + " | ".join(cells) + " |", st.lists(plain, min_size=2,
                                                                                               max_size=2)),
    directive,
)
document = st.one_of(st.lists(block, max_size=8).map("\n\n".join), st.text(max_size=200))


def _warm_up() -> None:
    """Import what the first example would (Pygments lexers, latex2mathml, pandas), outside its deadline."""
    ctx = PageContext(path="content/p.md", root=ROOT, source_dir=ROOT / "content")
    markdown.render("```python\nx = 1\n```\n\n$x^2$ {metric}`data/t.csv: mean(value)` {metric}`data/p.json: x`\n\n"
                    "```{expression} data/t.csv\ny = ⟦w⟧ + ⟦b⟧\n```\n", ctx, 0)


_warm_up()


def _well_formed(fragment: str) -> None:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    parser.parseFragment(fragment)  # raises html5lib.html5parser.ParseError on any parse error


@given(document)
def test_markdown_pipeline_gives_messages_and_well_formed_html(text):
    ctx = PageContext(path="content/p.md", root=ROOT, source_dir=ROOT / "content")
    ctx.meta["md_targets"] = {}
    rendered = markdown.render(text, ctx, 4)
    assert all(isinstance(p, Problem) and p.message for p in ctx.problems)
    assert all(p.line is None or p.line >= 1 for p in ctx.problems)
    assert "\x02" not in rendered.html and "\x03" not in rendered.html and "\x00" not in rendered.html
    if "<" not in text:  # raw HTML is the author's own; everything we write must parse cleanly
        _well_formed(rendered.html)
        _well_formed(rendered.excerpt_html)


# -- expression templates ----------------------------------------------------------------------------
template_text = st.text(alphabet=st.sampled_from(list("abxy019 |=:.-\"\\#/\n\t") + [OPEN, CLOSE, "ℓ", "e"]),
                        max_size=120)
# (a tab in a template is indentation: the parser makes it four spaces, in a name too)
name = st.text(min_size=1, max_size=20).filter(lambda s: not any(c in s for c in "\n\r\t") and s.strip())


@given(template_text)
def test_template_parser_raises_only_template_errors(text):
    try:
        template = parse(text)
    except TemplateError as exc:
        assert exc.line >= 1 and exc.col >= 1 and exc.message
        return
    for ph in template.placeholders:
        assert ph.name.strip() and ph.line >= 1
        if ph.range is not None and None not in ph.range:
            assert ph.range[0] < ph.range[1]


@given(name, st.sampled_from(["", " | log", " | label=ℓ", " | range=0.01:100", " | bounds=:1"]))
def test_any_name_quoted_reads_back_the_same(n, setting):
    text = f"y = {OPEN}{quote_name(n)}{setting}{CLOSE} + 1"
    assert [p.name for p in parse(text).placeholders] == [n.strip() if quote_name(n) == n else n]


# -- {metric} expressions -------------------------------------------------------------------------------
metric_text = st.lists(st.sampled_from(list("0123456789.+-*/() eE,=\"_") + ["mean", "x", "loss", "n", "p90", "value",
                                                                           "results.loss", "where", " and "]),
                       max_size=40).map("".join)
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{abs(v):.6g}")
arith = st.recursive(numbers, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    inner.map(lambda e: f"({e})"), inner.map(lambda e: f"-{e}")), max_leaves=12)
RECORD = {"results": {"loss": 0.25, "n": 3}, "x": 2}


@given(metric_text)
def test_metric_parser_raises_only_metric_errors(text):
    try:
        value = Evaluator(tokenize(text), record=RECORD).run()
    except MetricError as exc:
        assert str(exc)
        return
    assert isinstance(value, float)


@given(arith)
def test_metric_arithmetic_is_pythons(expr):
    try:
        expected = eval(expr, {})  # the generated text is numbers and + - * / ( ) only
    except ZeroDivisionError:
        expected = None
    except OverflowError:
        return
    try:
        got = Evaluator(tokenize(expr), record=RECORD).run()
    except MetricError as exc:
        assert expected is None or "division by zero" in str(exc), (expr, exc)
        return
    assert expected is not None and (math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)
                                     or not math.isfinite(expected))


@given(st.sampled_from(["data/p.json", "data/t.csv", "data/none.json", "../p.json", "/etc/hostname"]),
       metric_text, st.sampled_from(["", ".2f", ".1%", "x", "200000000.2f", ",.0f", "{}"]))
def test_metric_role_gives_a_number_or_a_message(source, expr, fmt):
    ctx = PageContext(path="content/p.md", root=ROOT, source_dir=ROOT / "content")
    content = f"{source}: {expr}" + (f" | {fmt}" if fmt else "")
    try:
        value, text, _ = compute(content, Catalog(ROOT), 3, ctx)
    except (MetricError, SiteError):
        return
    assert math.isfinite(value) and len(text) < 200


# -- front matter -----------------------------------------------------------------------------------------
scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=30), st.dates(min_value=dt.date(1, 1, 1)).map(str))
value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=10)
keys = st.sampled_from(["title", "date", "updated", "slug", "tags", "author", "authors", "summary", "layout",
                        "draft", "visible", "comments", "permalink", "excerpt", "extra", "categories"])
yaml_text = st.lists(st.sampled_from(list("abc:-[]{}&*!|>'\"#%@ \n\t019\x00\x85") + ["title: ", "date: ", "&a ",
                                                                                      "*a", "- ", "slug: "]),
                     max_size=60).map("".join)


def _front(meta) -> str:
    import yaml

    return yaml.safe_dump(meta, allow_unicode=True)


@given(st.one_of(st.dictionaries(keys, value, max_size=6).map(_front), yaml_text), st.text(max_size=60))
def test_front_matter_gives_a_post_or_messages(front, body):
    path = ROOT / "content" / "fuzz.md"
    path.write_text(f"---\n{front}\n---\n{body}", encoding="utf-8")
    post, problems = load(path, ROOT)
    assert all(isinstance(p, Problem) and p.message and p.path == "content/fuzz.md" for p in problems)
    if post is None:
        assert any(p.level == "error" for p in problems)
        return
    assert isinstance(post.title, str) and post.title
    assert len(post.slug) <= MAX_SLUG and all(len(t) <= MAX_SLUG for t in post.tags)
    assert post.date is None or 1000 <= post.date.year <= 9999
    assert not any(c in post.title for c in "\x00\x02\x03")
