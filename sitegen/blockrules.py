"""markdown-it's block rules, tried only where the line's first character lets them match.

markdown-it-py finds each block by calling every block rule in turn (table, code, math, fence,
blockquote, hr, list, footnote, reference, html, heading, lheading, paragraph) until one takes the
line. Most of them give up at once unless the line begins with their marker (``#`` for a heading, ``>``
for a quote, ``[`` for a reference or a footnote...): calling them anyway costs ten Python calls per
paragraph. :func:`install` puts one rule in their place in the block ruler's compiled chain: it looks
at the line's first character and tries, in their order, only the rules whose marker that is, and every
rule that has none (table, code, lheading, paragraph, and any this module does not know). A rule
passed over is one that returns False for such a line before it changes anything, so the first rule
that takes the line, and the tokens, are the same. markdown-it-py's own loop runs as it is.

Only for the markdown-it-py and mdit-py-plugins versions whose rules were read for this (:data:`CHECKED`);
with any other, the MarkdownIt keeps every rule in its chain.
"""
from __future__ import annotations

import markdown_it
import mdit_py_plugins
from markdown_it.rules_block import blockquote, fence, heading, hr, html_block, list_block, reference

#: (markdown-it-py, mdit-py-plugins) versions whose rules begin with the checks :func:`_first_chars` names
CHECKED = {("4.3.0", "0.7.0")}


def _first_chars(fn) -> str | None:
    """The characters a line must begin with (after its indentation) for ``fn`` to take it, or None
    where any may."""
    known = {
        hr: "*-_", heading: "#", blockquote: ">", reference: "[", html_block: "<",
        list_block: "*-+0123456789",  # a bullet, or an ordered list's digits
        fence: "~`",  # (the default fence rule: these markers)
    }
    if fn in known:
        return known[fn]
    name = (getattr(fn, "__module__", None), getattr(fn, "__name__", None))
    if name == ("mdit_py_plugins.footnote.index", "footnote_def"):
        return "["  # [^label]:
    if name == ("mdit_py_plugins.dollarmath.index", "_math_block_dollar"):
        return "$"  # $$, whatever the options
    if name == ("sitegen.mathjax", "_block_rule"):
        return "\\"  # \[ or \begin{...}
    return None


def install(md) -> bool:
    """Give ``md``'s block ruler the first-character dispatching rule; returns whether it did. The
    ruler compiles its chains again whenever its rules change (a plugin added, a rule disabled): the
    dispatcher is made again from the new chain each time."""
    if (markdown_it.__version__, mdit_py_plugins.__version__) not in CHECKED:
        return False
    ruler = md.block.ruler
    compile_chains = ruler.__compile__

    def compile_with_dispatch() -> None:
        compile_chains()
        ruler.__cache__[""] = [_dispatcher(ruler.__cache__[""])]

    ruler.__compile__ = compile_with_dispatch  # (what getRules calls when its cache is empty)
    ruler.__cache__ = None
    return True


def _dispatcher(rules: list):
    firsts = [_first_chars(rule) for rule in rules]
    anywhere = [rule for rule, f in zip(rules, firsts) if f is None]
    by_char = {c: [rule for rule, f in zip(rules, firsts) if f is None or c in f]
               for c in {c for f in firsts if f for c in f}}

    def block_rule(state, line: int, end: int, silent: bool) -> bool:
        for rule in by_char.get(state.src[state.bMarks[line] + state.tShift[line]], anywhere):
            if rule(state, line, end, silent):
                return True
        return False

    block_rule.rules = rules  # (for a reader: what it stands for)
    return block_rule
