"""sitegen.blockrules tries markdown-it's block rules only where the line's first character lets them
match: the tokens must be exactly those of markdown-it-py's own loop, for any text."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitegen import blockrules, markdown
from sitegen.context import PageContext

ROOT = Path(__file__).resolve().parent.parent


def _pair():
    fast = markdown.markdown.__wrapped__()  # a new one, as the build makes it
    plain = markdown.markdown.__wrapped__()
    if "__compile__" in vars(plain.block.ruler):
        del plain.block.ruler.__compile__  # every rule in markdown-it-py's chain
        plain.block.ruler.__cache__ = None
    return fast, plain


FAST, PLAIN = _pair()


def tokens(md, text):
    ctx = PageContext(path="content/x.md", root=ROOT, source_dir=ROOT / "content")
    env = {"ctx": ctx, "line_offset": 0}
    out = [t.as_dict() for t in md.parse(text, env)]
    env.pop("ctx")
    return out, repr(env)


def same(text):
    assert tokens(FAST, text) == tokens(PLAIN, text), text


def test_the_build_uses_it():
    assert blockrules.install(markdown.markdown.__wrapped__())
    assert [rule.__name__ for rule in markdown.markdown().block.ruler.getRules("")] == ["block_rule"]
    assert [rule.__name__ for rule in PLAIN.block.ruler.getRules("")][-1] == "paragraph"


def test_a_rule_disabled_later_is_left_out_of_the_dispatcher_too():
    md = markdown.markdown.__wrapped__()
    md.disable("heading")
    assert "heading" not in [rule.__name__ for rule in md.block.ruler.getRules("")[0].rules]
    assert md.render("# not a heading\n").startswith("<p>")


def test_the_sites_posts_and_fixtures_give_the_same_tokens():
    files = sorted((ROOT / "content").rglob("*.md")) + sorted((ROOT / "tests").rglob("*.md"))
    assert files
    for path in files:
        same(path.read_text(encoding="utf-8", errors="replace"))


EDGE = [
    "", "\n", "# h\n", "#nospace\n", "> q\n> > qq\n- a\n  - b\n\n1. one\n2) two\n", "* * *\n- - -\n___\n",
    "```py\nx\n```\n~~~\n", "[a]: /b \"t\"\n\n[a]\n", "[^1]: note\n    more\n\nText[^1]\n",
    "<div>\nx\n</div>\n", "$$\nx\n$$ (lbl)\n", "\\[\nx\n\\]\n", "\\begin{align}\na\n\\end{align}\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n", "Title\n=====\n", "para\n- list after\n", "para\n2. not a list\n",
    "    code\n\tcode\n", "- a\n\n      code in list\n", ">     code in quote\n", "-\n+\n*\n", "1.\n",
    "> # h\n> ```\n> x\n", "- ```\n  code\n  ```\n", "+++\n---\n", "text\n***\n", "[^x]:\n", "[^ x]: y\n",
]


@pytest.mark.parametrize("text", EDGE)
def test_edge_cases(text):
    same(text)


@pytest.mark.parametrize("c", [chr(i) for i in range(32, 127)] + ["\t", "\u00a0", "\u2003", "é", "\ufffd"])
def test_every_first_character(c):
    for text in (f"{c}\n", f"{c} a\n", f"{c}{c}{c}\n", f"{c}{c}{c} a\n{c}{c}{c}\n", f"{c}. a\n", f"{c}) a\n",
                 f"para\n{c} a\n", f"{c}[^a]: b\n", f"  {c}a\n", f"> {c} a\n", f"- {c} a\n", f"{c}{c}\nx\n{c}{c}\n"):
        same(text)


LINE_STARTS = ["", " ", "  ", "    ", "\t", "> ", ">", "- ", "* ", "+ ", "1. ", "10) ", "9. ", "0) ", "# ", "## ", "#", "```",
               "~~~", "$$", "\\[", "\\]", "\\begin{x}", "\\end{x}", "[^a]: ", "[a]: ", "[", "<div>", "<!--", "-->",
               "</div>", "<p>", "---", "***", "___", "===", "|", "| a | b |", "|---|---|", ":-:", "-", "text ", "$"]
WORDS = ["a", "b c", "x*y*", "`c`", "$x$", "[l](u)", "[^a]", "", "<b>", "\\", "|", "~~s~~", "1.", "#"]


@settings(max_examples=300, deadline=dt.timedelta(seconds=30), suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(LINE_STARTS), st.sampled_from(WORDS)), max_size=25))
def test_random_documents_give_the_same_tokens(lines):
    same("\n".join(a + b for a, b in lines) + "\n")


@settings(max_examples=150, deadline=dt.timedelta(seconds=30), suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab #>-*+_0123456789.)`~$\\[]^:|<>!/=\n\t")), max_size=200))
def test_random_text_gives_the_same_tokens(text):
    same(text)
