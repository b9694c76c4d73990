"""markdown-it's block rules, tried only where the line's first character lets them match.

markdown-it-py finds each block by calling every block rule in turn (table, code, math, fence,
blockquote, hr, list, footnote, reference, html, heading, lheading, paragraph) until one takes the
line. Most of them give up at once unless the line begins with their marker (``#`` for a heading, ``>``
for a quote, ``[`` for a reference or a footnote...): calling them anyway costs ten Python calls per
paragraph. :func:`install` gives a MarkdownIt a ``block.tokenize`` that is markdown-it-py's own loop
except that it tries, of the rules below, only those whose marker begins the line; every other rule
(table, code, lheading, paragraph, and any this module does not know) is tried as before, in the same
order. A rule passed over is one that returns False for such a line before it changes anything, so
the first rule that takes the line, and the tokens, are the same.

Only for the markdown-it-py and mdit-py-plugins versions whose rules were read for this (:data:`CHECKED`);
with any other, the MarkdownIt keeps its own loop.
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
    """Give ``md`` the first-character dispatching block loop; returns whether it did."""
    if (markdown_it.__version__, mdit_py_plugins.__version__) not in CHECKED:
        return False
    block = md.block
    plans: dict = {}  # id of the ruler's rule list -> (that list, rules for any first char, per char)

    def plan(rules):
        hit = plans.get(id(rules))
        if hit is not None and hit[0] is rules:
            return hit
        firsts = [_first_chars(rule) for rule in rules]
        chars = {c for f in firsts if f for c in f}
        anywhere = [rule for rule, f in zip(rules, firsts) if f is None]
        by_char = {c: [rule for rule, f in zip(rules, firsts) if f is None or c in f] for c in chars}
        plans.clear()
        plans[id(rules)] = hit = (rules, anywhere, by_char)
        return hit

    def tokenize(state, startLine: int, endLine: int) -> None:
        """``ParserBlock.tokenize``, trying only the rules the line's first character allows."""
        _, anywhere, by_char = plan(block.ruler.getRules(""))
        line = startLine
        maxNesting = state.md.options.maxNesting
        hasEmptyLines = False

        while line < endLine:
            state.line = line = state.skipEmptyLines(line)
            if line >= endLine:
                break
            if state.sCount[line] < state.blkIndent:
                # Termination condition for nested calls.
                # Nested calls currently used for blockquotes & lists
                break
            if state.level >= maxNesting:
                # If nesting level exceeded - skip tail to the end.
                # That's not ordinary situation and we should not care about content.
                state.line = endLine
                break

            # Try all possible rules.
            # On success, rule should:
            # - update `state.line`
            # - update `state.tokens`
            # - return True
            ok = False
            for rule in by_char.get(state.src[state.bMarks[line] + state.tShift[line]], anywhere):
                ok = rule(state, line, endLine, False)
                if ok:
                    if state.line <= line:
                        raise RuntimeError("block rule didn't increment state.line")
                    break

            # this can only happen if user disables paragraph rule
            if not ok:
                raise RuntimeError("none of the block rules matched")

            # set state.tight if we had an empty line before current tag
            # i.e. latest empty line should not count
            state.tight = not hasEmptyLines

            line = state.line

            # paragraph might "eat" one newline after it in nested lists
            if (line - 1) < endLine and state.isEmpty(line - 1):
                hasEmptyLines = True

            if line < endLine and state.isEmpty(line):
                hasEmptyLines = True
                line += 1
                state.line = line

    block.tokenize = tokenize  # (ParserBlock.parse and the nested rules call md.block.tokenize)
    return True
