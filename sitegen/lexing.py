"""Pygments' regex lexers, with the neighbouring rules of a state that lead to the same next state
matched by one regular expression.

A Pygments ``RegexLexer`` finds each token by trying its current state's rules in order, one
``rule.match(text, pos)`` call from Python per rule, until one matches: for Python code some 40 calls
per token, most of a code block's highlighting time. An alternation ``(?:rule0)()|(?:rule1)()|...``
matched at the same position picks the same rule with the same match in one call (the regex engine
also tries the alternatives in order and takes the first that matches), and the empty group that ends
each alternative tells which rule it was (``lastindex``).

Nothing of Pygments' own loop is replaced: :func:`fast` gives one lexer a table of states in which
each run of neighbouring rules that share their next state is one rule, whose action hands the match
on to the rule that matched. Pygments' loop then takes that rule's state change, which is the same
for the whole run, so the tokens, and the HTML made of them, are exactly Pygments' own.

A rule stays on its own where joining could change what it means: it refers back to a group by
number or name, tests whether a group matched, sets flags in its middle, or was compiled with other
flags than its neighbours. (A rule's leading ``(?i)`` becomes ``(?i:...)``: the same for that rule,
and allowed inside a bigger pattern.)
"""
from __future__ import annotations

import re

from pygments.lexer import RegexLexer
from pygments.token import _TokenType

#: what may make a rule mean something else inside a bigger pattern (see the module's docstring)
_UNSAFE = re.compile(r"\\[1-9]|\(\?\(|\(\?P=|\(\?[aiLmsux]+\)")
#: flags for a whole rule, ``(?i)...``: the same as ``(?i:...)``, which may stand inside a bigger pattern
_OWN_FLAGS = re.compile(r"\(\?([ims]+)\)")
_FLAG = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def fast(lexer) -> bool:
    """Give ``lexer`` (an instance) the joined rules if it is a plain ``RegexLexer``, whose class leaves
    the rule loop as Pygments wrote it; returns whether it did. Its root state is joined now (a few ms
    to tens of ms: a builder does it once, before forking its workers), the others when first entered."""
    if (not isinstance(lexer, RegexLexer)
            or type(lexer).get_tokens_unprocessed is not RegexLexer.get_tokens_unprocessed
            or "root" not in getattr(lexer, "_tokens", {}) or isinstance(lexer._tokens, _States)):
        return False
    lexer._tokens = _States(lexer._tokens)  # (the class keeps Pygments' table for every other instance)
    lexer._tokens["root"]
    return True


class _States(dict):
    """State name -> its rules with the runs joined, made when the state is first entered."""

    def __init__(self, rules: dict):
        super().__init__()
        self.rules = rules

    def __missing__(self, state):
        joined = self[state] = _join_runs(self.rules[state])
        return joined


def _join_runs(rules: list) -> list:
    out: list = []
    run: list = []  # (pattern, flags, rule): neighbours with the same next state and flags
    for rule in rules:
        own = _own_pattern(rule)
        if run and (own is None or own[1] != run[0][1] or rule[2] != run[0][2][2]):
            out.extend(_joined(run))
            run = []
        if own is None:
            out.append(rule)
        else:
            run.append((*own, rule))
    out.extend(_joined(run))
    return out


def _own_pattern(rule) -> tuple[str, int] | None:
    """A rule's pattern, ready to stand in an alternation, and its flags; None: it must stay alone."""
    compiled = getattr(rule[0], "__self__", None)  # rule[0] is a compiled pattern's bound .match
    if not isinstance(compiled, re.Pattern) or not isinstance(compiled.pattern, str):
        return None
    pattern, flags = compiled.pattern, compiled.flags
    own = _OWN_FLAGS.match(pattern)
    if own:
        pattern = pattern[own.end():]
        for letter in own[1]:
            flags &= ~_FLAG[letter]
    if _UNSAFE.search(pattern):
        return None
    return (f"(?{own[1]}:{pattern})" if own else pattern), flags


def _joined(run: list) -> list:
    """One rule for a run of two or more, or the run's rules as they were."""
    rules = [rule for _, _, rule in run]
    if len(run) < 2:
        return rules
    rule_of_group: list = [None]
    for rule in rules:
        rule_of_group.extend([None] * rule[0].__self__.groups)
        rule_of_group.append(rule)
    # the rule's mark, an empty group, at its end: a branch that begins with a literal or a set of
    # characters is passed over at the first character that cannot begin it (a group first would not be)
    source = "|".join(f"(?:{pattern})()" for pattern, _, _ in run)
    try:
        pattern = re.compile(source, run[0][1])
    except (re.error, RecursionError, OverflowError):
        return rules
    if pattern.groups != len(rule_of_group) - 1:
        return rules

    def action(lexer, m):
        rexmatch, what, _ = rule_of_group[m.lastindex]
        if what is None:
            return
        if type(what) is _TokenType:
            yield m.start(), what, m.group()
        else:  # a callback gets the rule's own match, with its own groups
            yield from what(lexer, rexmatch(m.string, m.start()))

    return [(pattern.match, action, run[0][2][2])]
