"""Pygments' regex lexers, driven with one regular expression per state instead of one per rule.

A Pygments ``RegexLexer`` finds each token by trying the rules of its current state one after the other
(``rule.match(text, pos)``) until one matches: for Python code, some 40 calls from Python for every
token, most of a code block's highlighting time. An alternation ``(rule0)|(rule1)|...`` matched at the
same position picks the same rule (the regex engine also tries the alternatives in order and takes the
first that matches) with the same match, in one call; its ``lastindex`` says which rule it was.
:func:`tokens_unprocessed` is ``RegexLexer.get_tokens_unprocessed`` with that one change, so the tokens,
and the HTML made from them, are the same.

A state is left to the rule-by-rule loop when its rules cannot be joined without changing what they
mean: a rule that refers back to a group by number (its numbers would shift) or tests whether a group
matched, rules compiled with different flags, or any the regex module refuses to compile together. (A
rule's own ``(?i)`` becomes ``(?i:...)``: the same for that rule, and allowed inside a bigger pattern.)
"""
from __future__ import annotations

import re

from pygments.lexer import RegexLexer
from pygments.token import Error, Whitespace, _TokenType

#: what may make a rule mean something else inside a bigger pattern (see the module's docstring)
_UNSAFE = re.compile(r"\\[1-9]|\(\?\(|\(\?P=|\(\?[aiLmsux]+\)")
#: flags for a whole rule, ``(?i)...``: the same as ``(?i:...)``, which may stand inside a bigger pattern
_OWN_FLAGS = re.compile(r"\(\?([ims]+)\)")
_FLAG = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def fast(lexer) -> bool:
    """Drive ``lexer`` (an instance) by :func:`tokens_unprocessed` if it is a plain ``RegexLexer``, whose
    class leaves the rule loop as Pygments wrote it; returns whether it does. Its root state's rules are
    joined now (a few ms to tens of ms: a builder does it once, before forking its workers), the others
    when first entered."""
    cls = type(lexer)
    if (not isinstance(lexer, RegexLexer) or cls.get_tokens_unprocessed is not RegexLexer.get_tokens_unprocessed
            or "root" not in getattr(lexer, "_tokens", {})):
        return False
    joined: dict = {"root": _join(lexer._tokens["root"])}

    def get_tokens_unprocessed(text, stack=("root",)):
        return tokens_unprocessed(lexer, joined, text, stack)

    lexer.get_tokens_unprocessed = get_tokens_unprocessed  # what get_tokens and using(this) call
    return True


def _join(statetokens):
    """``(match, rule_of_group)`` for one state's rules, or None where they are left to the loop."""
    patterns = []
    rule_of_group = [None]
    flags = None
    for rule in statetokens:
        compiled = getattr(rule[0], "__self__", None)  # rule[0] is a compiled pattern's bound .match
        if not isinstance(compiled, re.Pattern) or not isinstance(compiled.pattern, str):
            return None
        pattern, base = compiled.pattern, compiled.flags
        own = _OWN_FLAGS.match(pattern)
        if own:
            pattern = pattern[own.end():]
            for letter in own[1]:
                base &= ~_FLAG[letter]
        if flags is None:
            flags = base
        if base != flags or _UNSAFE.search(pattern):
            return None
        if own:
            pattern = f"(?{own[1]}:{pattern})"
        # the rule's mark, an empty group, at its end: a branch that begins with a literal or a set of
        # characters is passed over at the first character that cannot begin it (a group first would not be)
        patterns.append(f"(?:{pattern})()")
        rule_of_group.extend([None] * compiled.groups)
        rule_of_group.append(rule)
    if not patterns:
        return None
    try:
        joined = re.compile("|".join(patterns), flags)
    except (re.error, RecursionError, OverflowError):
        return None
    if joined.groups != len(rule_of_group) - 1:
        return None
    return joined.match, rule_of_group


def tokens_unprocessed(lexer, joined: dict, text, stack=("root",)):
    """``RegexLexer.get_tokens_unprocessed(lexer, text, stack)``, each state's rules tried in one match."""
    pos = 0
    tokendefs = lexer._tokens
    statestack = list(stack)
    state = statestack[-1]
    statetokens = tokendefs[state]
    fused = joined.get(state, False)
    if fused is False:
        fused = joined[state] = _join(statetokens)
    while 1:
        if fused is not None:
            m = fused[0](text, pos)
            if m:
                rexmatch, action, new_state = fused[1][m.lastindex]
                if action is not None:
                    if type(action) is _TokenType:
                        yield pos, action, m.group()
                    else:
                        yield from action(lexer, rexmatch(text, pos))  # the rule's own match: its groups
                pos = m.end()
        else:
            for rexmatch, action, new_state in statetokens:
                m = rexmatch(text, pos)
                if m:
                    if action is not None:
                        if type(action) is _TokenType:
                            yield pos, action, m.group()
                        else:
                            yield from action(lexer, m)
                    pos = m.end()
                    break
        if m:
            if new_state is not None:
                # state transition
                if isinstance(new_state, tuple):
                    for name in new_state:
                        if name == '#pop':
                            if len(statestack) > 1:
                                statestack.pop()
                        elif name == '#push':
                            statestack.append(statestack[-1])
                        else:
                            statestack.append(name)
                elif isinstance(new_state, int):
                    # pop, but keep at least one state on the stack
                    # (random code leading to unexpected pops should
                    # not allow exceptions)
                    if abs(new_state) >= len(statestack):
                        del statestack[1:]
                    else:
                        del statestack[new_state:]
                elif new_state == '#push':
                    statestack.append(statestack[-1])
                else:
                    assert False, f"wrong state def: {new_state!r}"
                state = statestack[-1]
                statetokens = tokendefs[state]
                fused = joined.get(state, False)
                if fused is False:
                    fused = joined[state] = _join(statetokens)
            continue
        # We are here only if all state tokens have been considered
        # and there was not a match on any of them.
        try:
            if text[pos] == '\n':
                # at EOL, reset state to "root"
                statestack = ['root']
                state = 'root'
                statetokens = tokendefs['root']
                fused = joined.get(state, False)
                if fused is False:
                    fused = joined[state] = _join(statetokens)
                yield pos, Whitespace, '\n'
                pos += 1
                continue
            yield pos, Error, text[pos]
            pos += 1
        except IndexError:
            break
