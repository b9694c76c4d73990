"""Math that typesets: function names spaced, display style in display math, long inline math breakable."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st
from latex2mathml.converter import convert, convert_to_element

from sitegen.markdown import _convert_math
from sitegen.mathml import typeset, typeset_element


def maths(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<math\b.*?</math>", html, re.S)]


def tokens(html: str) -> list[str]:
    """The visible token text, in order, across every <math> of the result."""
    return [(e.text or "").strip() for m in maths(html) for e in m.iter()
            if e.tag.split("}")[-1] in ("mi", "mn", "mo", "mtext") and (e.text or "").strip()]


def test_function_names_get_a_thin_space_before_their_argument():
    html = _convert_math(r"-\log p(y \mid X)", False)
    assert re.search(r"<mi>log</mi><mspace width=\"0.1667em\"/><mi>p</mi>", html)
    html = _convert_math(r"\tfrac n2 \log 2\pi", False)
    assert re.search(r"<mi>log</mi><mspace width=\"0.1667em\"/><mn>2</mn>", html)
    # an ordinary atom before the name gets one too; a bracket after it does not
    assert re.search(r"</mstyle><mspace width=\"0.1667em\"/><mi>log</mi>", html)
    assert "<mi>exp</mi><mo" in _convert_math(r"\exp(x)", False)


def test_operatorname_is_a_name_not_an_unknown_operator():
    html = _convert_math(r"\operatorname{tr} K", False)
    assert "<mi>tr</mi><mspace" in html and "<mo>tr</mo>" not in html


def test_display_math_is_in_display_style_with_limits_under_large_operators():
    html = _convert_math(r"r = \sqrt{\sum_d \frac{(x_d - x'_d)^2}{\ell_d^2}}", True)
    root = maths(html)[0]
    assert root.get("display") == "block" and root.get("displaystyle") == "true"
    assert re.search(r'<munder><mo movablelimits="true">∑</mo><mi>d</mi></munder>', html)
    assert "<msub><mo" not in html


def test_inline_large_operator_keeps_movable_limits():
    html = _convert_math(r"\sum_{i=1}^n i", False)
    assert "<munderover><mo movablelimits=\"true\">∑</mo>" in html


def test_prime_follows_its_base_instead_of_being_raised_twice():
    html = _convert_math(r"k(x, x') + x'_d", True)
    assert '<mrow><mi>x</mi><mo lspace="0" rspace="0">′</mo></mrow>' in html
    assert '<msub><mrow><mi>x</mi><mo lspace="0" rspace="0">′</mo></mrow><mi>d</mi></msub>' in html


def test_bars_are_ordinary_symbols():
    html = _convert_math(r"\log\lvert K\rvert", False)
    assert html.count('<mo lspace="0" rspace="0">|</mo>') == 2


def test_long_inline_math_breaks_after_relations_and_operators_only_outside_brackets():
    html = _convert_math(r"-\log p(y \mid X) = \tfrac12 y^\top K^{-1} y + \tfrac12 \log\lvert K\rvert", False)
    pieces = maths(html)
    assert len(pieces) == 3  # "... =", "... +", "..."; never inside p( ... )
    assert html.count("<wbr>") == 2
    first = ET.tostring(pieces[0], encoding="unicode")
    assert "∣" in first and first.rstrip().endswith("</mo></mrow></math>")
    # the leading minus is a sign, not a break point
    assert tokens(html)[0] == "−"


def test_short_inline_math_stays_one_element():
    assert _convert_math(r"\ell_d", False).count("<math") == 1


LATEX = st.lists(st.sampled_from([
    "x", "y", "2", "+", "-", "=", r"\log", r"\exp", r"\sum_i", r"\prod_{k=1}^n", r"\frac{a}{b}", r"\sqrt{x}",
    "(", ")", "|", "'", "^2", "_d", r"\mid", r"\max_j", r"\operatorname{tr}", r"\alpha", r"\le", r"\tfrac12",
    r"\left(", r"\right)", " ",
]), min_size=1, max_size=14).map("".join)


@settings(max_examples=300, deadline=None)
@given(LATEX, st.booleans())
def test_typesetting_keeps_every_token_and_stays_well_formed(latex, display):
    try:
        raw = convert(latex, display="block" if display else "inline")
    except Exception:
        return  # not valid TeX for latex2mathml: the build reports it before typeset() is reached
    out = typeset(raw, display)
    assert sorted(tokens(out)) == sorted(tokens(raw))  # a prime moves before its subscript (x′_d)
    for m in maths(out):  # each piece parses on its own
        assert m.tag.endswith("math")
    assert len(maths(out)) == 1 or not display


MARKUP_LATEX = st.lists(st.sampled_from([
    "x", "<", ">", "&", r"\&", r"\text{a<b}", r"\text{&amp;}", r"\text{]]>}", r"\mathrm{d}", r"\color{red}{y}",
    r"\begin{pmatrix}a&b\\c&d\end{pmatrix}", "\\text{\t}", r'\text{"}', r"\hat{x}", r"\mathbb{R}", r"\\", "^", "_",
]), min_size=1, max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(LATEX, MARKUP_LATEX), st.booleans())
def test_typesetting_the_tree_is_typesetting_its_text(latex, display):
    """typeset_element skips writing latex2mathml's tree as text and parsing it again: the same bytes."""
    mode = "block" if display else "inline"
    try:
        raw = convert(latex, display=mode)
    except Exception:
        return
    assert typeset_element(convert_to_element(latex, display=mode), display) == typeset(raw, display)
