"""Directive options, read in one place (sitegen.directives.options): any text an author writes gives a
typed value or an OptionError naming the option, never another exception."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitegen.directives import Call
from sitegen.directives.options import OptionError, flag, integer, intervals, items, mapping, place

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
name = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="_-"), min_size=1, max_size=12)


def call_with(**options) -> Call:
    return Call("expression", "", {k.replace("_", "-"): v for k, v in options.items()},
                {k.replace("_", "-"): 7 for k in options}, "", 3, 4)


@given(st.lists(name, max_size=8))
def test_items_read_back_what_was_listed(names):
    assert items(" , ".join(names)) == names


@given(st.dictionaries(name, name, max_size=6), st.sampled_from([",", ";", " ; ", ", "]))
def test_mapping_reads_back_pairs(pairs, sep):
    assert mapping("columns", sep.join(f"{k} = {v}" for k, v in pairs.items())) == pairs


@settings(max_examples=300)
@given(text)
def test_any_text_gives_a_value_or_an_option_error(value):
    c = call_with(frames=value, animate=value)
    for read in (lambda: integer(c, "frames", 200, lo=2, hi=5000), lambda: flag(c, "animate"),
                 lambda: mapping("columns", value), lambda: intervals("range", value), lambda: items(value)):
        try:
            read()
        except OptionError as exc:
            assert exc.key in ("frames", "animate", "columns", "range") and str(exc).startswith(f":{exc.key}:")


@given(st.integers(-10**6, 10**6))
def test_integers_inside_the_bounds_and_only_those(n):
    c = call_with(width=f" {n} ")
    if 24 <= n <= 600:
        assert integer(c, "width", 96, lo=24, hi=600) == n
    else:
        with pytest.raises(OptionError, match=":width: must be between 24 and 600"):
            integer(c, "width", 96, lo=24, hi=600)


def test_flags_defaults_and_intervals():
    assert flag(call_with(), "logx") is False and flag(call_with(logx=""), "logx") is True
    assert flag(call_with(logx="no"), "logx") is False
    with pytest.raises(OptionError, match="takes yes or no"):
        flag(call_with(logx="maybe"), "logx")
    assert intervals("range", "w=0:1, b=-2:")["w"] == (0.0, 1.0)


def test_a_figure_gets_its_place_as_plain_values():
    p = place(call_with(label=" gp-kernel ", caption="The kernel."))
    assert (p.line, p.label, p.label_line, p.caption, p.caption_line) == (3, "gp-kernel", 7, "The kernel.", 7)
    bare = place(call_with())
    assert bare.label == "" and bare.caption is None and bare.label_line == 3


def test_figures_import_nothing_from_directives():
    import ast
    from pathlib import Path

    import sitegen.figures

    for path in Path(sitegen.figures.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("sitegen.directives"), f"{path.name} imports {node.module}"
