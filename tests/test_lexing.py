"""sitegen.lexing drives Pygments' regex lexers with one joined pattern per state: the tokens must be
exactly Pygments' own, for every lexer it takes over, on real code, broken code and random text."""
from __future__ import annotations

import datetime as dt
import functools
import inspect
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pygments.lexer import RegexLexer, bygroups
from pygments.lexers import get_lexer_by_name
from pygments.token import Error, Keyword, Name, String, Text, Whitespace

from sitegen import lexing

SNIPPETS = [
    "", "\n", "x", "def loss(w, x, y):\n    return ((x @ w - y) ** 2).mean()  # post 17\n",
    "s = rb'\\x00' + Rf\"{a!r:>{w}}\" + '''\nlong\n''' + u'é'\n@dec\nclass A(B, metaclass=M):\n    pass\n",
    "'''never closed\n", '"""\nx\n', "\x00\x01 control \ufffd\n\n\t", "$x$ {% if a %}{{ b }}{% endif %}",
    "for i in $(seq 1 3); do echo \"$i\" >&2; done <<EOF\nbody\nEOF\n",
    "const f = async (a) => { return `t ${a + 1}`; }; /* c */ // d\n",
    "<div class=\"a\"><script>var x = 1;</script><style>p { color: red }</style></div>",
    "[table]\nkey = \"v\"\narr = [1, 2.5e3, true]\n# c\n", "\\frac{a}{b} \\begin{align} x &= 1 \\end{align}",
]
LANGS = ["python", "python3", "pycon", "javascript", "bash", "console", "toml", "html", "css", "latex", "markdown",
         "rst", "ini", "xml", "rust", "go", "r", "julia", "sql", "diff", "make", "dockerfile", "typescript"]


@functools.lru_cache(maxsize=None)
def pair(lang):
    plain, driven = get_lexer_by_name(lang), get_lexer_by_name(lang)
    return plain, driven, lexing.fast(driven)


def _source_texts():
    here = Path(lexing.__file__)
    texts = [inspect.getsource(lexing), here.with_name("markdown.py").read_text()[:6000]]
    return texts + [t[k:k + 400] for t in texts for k in range(0, len(t), 997)]  # cut anywhere: broken code


@pytest.mark.parametrize("lang", LANGS)
def test_the_same_tokens_as_pygments(lang):
    plain, driven, taken = pair(lang)
    for text in SNIPPETS + _source_texts():
        assert list(driven.get_tokens(text)) == list(plain.get_tokens(text)), (lang, text[:60])


def test_the_lexers_code_blocks_use_most_are_taken_over_and_their_states_joined():
    for lang in ("python", "javascript", "bash", "toml", "html", "go"):
        plain, driven, taken = pair(lang)
        assert taken, lang
        list(driven.get_tokens(SNIPPETS[4]))
        assert len(driven._tokens["root"]) < len(type(plain)._tokens["root"]), lang
    assert not lexing.fast(pair("python")[1])  # (once is enough)


class Toy(RegexLexer):
    tokens = {"root": [(r"(?i)abc", Keyword), (r"[a-z]+", Name), (r"(\s)(\s*)", bygroups(Whitespace, Text)),
                       (r'"', String, "str"), (r"(.)\1", Error)],
              "str": [(r'[^"]+', String), (r'"', String, "#pop")]}


def test_runs_of_rules_with_the_same_next_state_are_joined_and_the_rest_left_alone():
    plain, driven = Toy(), Toy()
    assert lexing.fast(driven)
    root = driven._tokens["root"]
    # (?i)abc, [a-z]+ and the spaces join, a leading (?i) scoped to its rule; the quote changes state;
    # a back-reference stays alone
    assert len(root) == 3 and "(?i:abc)" in root[0][0].__self__.pattern and root[1:] == type(plain)._tokens["root"][3:]
    text = 'ABC abd  "x y" zz aBc\n"'
    assert list(driven.get_tokens(text)) == list(plain.get_tokens(text))


def test_a_lexer_with_its_own_loop_is_left_alone():
    _, driven, taken = pair("c")  # CFamilyLexer post-processes the loop's tokens
    assert not taken and "_tokens" not in vars(driven)


@settings(max_examples=150, deadline=dt.timedelta(seconds=30), suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("abf rRbBuU'\"#\\{}()[]:.,=+-*/@$`<>!%\n\t0123456789é_")), max_size=120),
       st.sampled_from(["python", "javascript", "bash", "toml", "markdown", "html"]))
def test_random_text_gives_the_same_tokens(text, lang):
    plain, driven, _ = pair(lang)
    assert list(driven.get_tokens(text)) == list(plain.get_tokens(text))
