"""Math as ML blogs write it for MathJax, rendered by the build like ``$...$``.

Delimiters (a markdown-it plugin, :func:`mathjax_plugin`):

- ``\\( ... \\)`` inline and ``\\[ ... \\]`` display, as Pandoc, Hugo or raw HTML leave them;
- their kramdown-escaped forms ``\\\\( ... \\\\)`` and ``\\\\[ ... \\\\]`` (kramdown, Jekyll's Markdown,
  turns ``\\(`` into ``(``, so Jekyll posts double the backslash). Inside these, kramdown's own
  escapes are undone (``\\\\{`` is ``\\{``, ``\\_`` is ``_``), so the formula is the one MathJax saw;
- ``\\begin{align} ... \\end{align}`` (and equation, gather, multline, eqnarray) standing alone,
  which MathJax typesets without delimiters.

``$$ ... $$`` follows kramdown: inside a paragraph's text it is inline math, on lines of its own it
is display math (``markdown.py`` maps the tokens of mdit-py-plugins' dollarmath accordingly).

Macros (:func:`prepare`): a formula may define ``\\newcommand``, ``\\renewcommand``, ``\\def`` and
``\\DeclareMathOperator`` macros, used by every later formula of the page as MathJax does; the
environments and commands that latex2mathml lacks are rewritten to ones it has; ``\\label``,
``\\nonumber`` and ``\\notag`` are dropped (nothing is numbered). :func:`leftover` finds what the
converter left as raw TeX, so a formula never shows half-converted without a warning.
"""
from __future__ import annotations

import re

#: the characters kramdown's backslash escapes (a backslash before any other stays a backslash)
KRAMDOWN_ESCAPABLE = set("\\.*_+-`()[]{}#!:|\"'$=<>")
#: environments MathJax typesets without delimiters
BARE_ENVIRONMENTS = ("align", "align*", "equation", "equation*", "gather", "gather*", "multline",
                     "multline*", "eqnarray", "eqnarray*", "alignat", "alignat*", "flalign", "flalign*")
BEGIN_ENV = re.compile(r"\\begin\{(" + "|".join(re.escape(e) for e in BARE_ENVIRONMENTS) + r")\}")


def kramdown_unescape(text: str) -> str:
    """``text`` as kramdown leaves it: a backslash before an escapable character is dropped."""
    if "\\" not in text:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in KRAMDOWN_ESCAPABLE:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# delimiters

#: (opener, closer, display, kramdown-escaped), longest opener first
INLINE_FORMS = (
    ("\\\\(", "\\\\)", False, True),
    ("\\\\[", "\\\\]", True, True),
    ("\\(", "\\)", False, False),
    ("\\[", "\\]", True, False),
)


CITATION = re.compile(r"^[\d\s,;–-]*$")


def find_inline(src: str, pos: int) -> tuple[int, str, bool] | None:
    """A formula opening at ``src[pos]``: (end position, TeX, display), or None.

    The closing delimiter is the first one after the opener; an empty formula is no formula."""
    if not src.startswith("\\", pos):
        return None
    for opener, closer, display, escaped in INLINE_FORMS:
        if src.startswith(opener, pos):
            start = pos + len(opener)
            end = src.find(closer, start)
            if end < 0:
                continue
            tex = src[start:end]
            if escaped:
                tex = kramdown_unescape(tex)
            if not tex.strip():
                return None
            if opener == "\\[" and CITATION.match(tex):
                return None  # '\[1\]' is an escaped citation mark, not a formula
            return end + len(closer), tex, display
    return None


def _inline_rule(state, silent) -> bool:
    found = find_inline(state.src, state.pos)
    if found is None:
        return False
    end, tex, display = found
    if not silent:
        token = state.push("math_inline_display" if display else "math_inline", "math", 0)
        token.content = tex.strip()
        token.markup = state.src[state.pos:state.pos + 3]
    state.pos = end
    return True


def find_block(lines: list[str], first: int) -> tuple[int, str] | None:
    """Display math starting the line ``lines[first]`` and ending a line: (last line index, TeX).

    Forms: ``\\[ ... \\]``, ``\\\\[ ... \\\\]`` and a bare ``\\begin{align} ... \\end{align}``."""
    head = lines[first].strip()
    if head.startswith("\\\\["):
        opener, closer, escaped = "\\\\[", "\\\\]", True
    elif head.startswith("\\["):
        opener, closer, escaped = "\\[", "\\]", False
    else:
        m = BEGIN_ENV.match(head)
        if not m:
            return None
        opener, closer, escaped = "", f"\\end{{{m.group(1)}}}", False
    text = head[len(opener):]
    for i in range(first, len(lines)):
        if i > first:
            text += "\n" + lines[i].strip()
        stripped = text.rstrip()
        search_from = 0 if opener else len(m.group(0))
        at = stripped.find(closer, search_from)
        if at >= 0:
            if stripped[at + len(closer):].strip():
                return None  # text after the closer: a paragraph with math in it, not a block
            tex = stripped[:at + len(closer)] if not opener else stripped[:at]
            if escaped:
                tex = kramdown_unescape(tex)
            if opener == "\\[" and CITATION.match(tex):
                return None  # a line holding only '\[1\]' is an escaped citation mark
            return (i, tex.strip()) if tex.strip() else None
        if i > first and not lines[i].strip():
            return None  # a blank line ends the paragraph before the formula closed
    return None


def _block_rule(state, start_line, end_line, silent) -> bool:
    begin = state.bMarks[start_line] + state.tShift[start_line]
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    if begin >= len(state.src) or state.src[begin] != "\\":
        return False
    lines = []
    for i in range(start_line, end_line):  # up to the first blank line: a formula never crosses one
        line = state.src[state.bMarks[i] + state.tShift[i]:state.eMarks[i]]
        lines.append(line)
        if not line.strip():
            break
    found = find_block(lines, 0)
    if found is None:
        return False
    last, tex = found
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = tex
    token.map = [start_line, start_line + last + 1]
    token.markup = "\\["
    state.line = start_line + last + 1
    return True


def mathjax_plugin(md) -> None:
    """MathJax's delimiters as markdown-it rules (tokens ``math_inline``, ``math_inline_display``,
    ``math_block``, rendered by markdown.py like dollarmath's)."""
    md.inline.ruler.before("escape", "math_tex", _inline_rule)
    md.block.ruler.before("fence", "math_tex_block", _block_rule,
                          {"alt": ["paragraph", "reference", "blockquote", "list", "footnote_def"]})


# ---------------------------------------------------------------------------------------------
# macros

#: rewrites to what latex2mathml handles: MathJax's environments and operators it lacks
ENV_REWRITES = {
    "align": "align*",  # MathJax numbers no equation unless configured to, and neither do we
    "aligned": "align*", "eqnarray": "align*", "eqnarray*": "align*", "split": "align*",
    "alignat": "align*", "alignat*": "align*", "flalign": "align*", "flalign*": "align*",
    "gather": "array}{c", "gather*": "array}{c", "gathered": "array}{c",
    "multline": "array}{c", "multline*": "array}{c",
}
OPERATORS = ("arg", "deg", "hom", "Tr", "tr", "diag", "rank", "sgn", "argmax", "argmin", "erf", "softmax")
DROPPED = re.compile(r"\\(?:label|tag\*?)\s*\{[^{}]*\}|\\(?:nonumber|notag)\b")
DEFINITION = re.compile(
    r"\\(?:(?P<new>(?:re)?newcommand|providecommand)\*?\s*\{?\s*\\(?P<name>[A-Za-z]+)\s*\}?\s*(?:\[(?P<n>\d)\])?"
    r"|(?P<def>def)\s*\\(?P<dname>[A-Za-z]+)\s*(?P<params>(?:#\d)*)"
    r"|(?P<op>DeclareMathOperator)(?P<star>\*?)\s*\{\s*\\(?P<oname>[A-Za-z]+)\s*\})\s*")
COMMAND = re.compile(r"\\([A-Za-z]+)")


def _group(text: str, i: int) -> tuple[str, int] | None:
    """The argument at ``text[i]``: a braced group (without braces) or one token; (arg, end)."""
    while i < len(text) and text[i] in " \t\n":
        i += 1
    if i >= len(text):
        return None
    if text[i] == "{":
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "{" and (j == 0 or text[j - 1] != "\\"):
                depth += 1
            elif text[j] == "}" and text[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j], j + 1
        return None
    if text[i] == "\\":
        m = COMMAND.match(text, i)
        return (m.group(0), m.end()) if m else (text[i:i + 2], i + 2)
    return text[i], i + 1


def _definitions(tex: str, macros: dict) -> str:
    """Take the macro definitions out of ``tex`` into ``macros`` (name -> (argument count, body))."""
    out, pos = [], 0
    for m in DEFINITION.finditer(tex):
        if m.start() < pos:
            continue
        body = _group(tex, m.end())
        if body is None:
            continue
        if m.group("new"):
            macros[m.group("name")] = (int(m.group("n") or 0), body[0])
        elif m.group("def"):
            macros[m.group("dname")] = (len(m.group("params")) // 2, body[0])
        else:
            op = "\\operatorname*" if m.group("star") else "\\operatorname"
            macros[m.group("oname")] = (0, f"{op}{{{body[0]}}}")
        out.append(tex[pos:m.start()])
        pos = body[1]
    out.append(tex[pos:])
    return "".join(out)


def _expand(tex: str, macros: dict, depth: int = 0) -> str:
    if depth > 20 or not macros:
        return tex
    out, pos, changed = [], 0, False
    for m in COMMAND.finditer(tex):
        if m.start() < pos or m.group(1) not in macros:
            continue
        if m.start() > 0 and tex[m.start() - 1] == "\\":
            continue  # '\\name' is a line break followed by text
        nargs, body = macros[m.group(1)]
        end, args = m.end(), []
        for _ in range(nargs):
            got = _group(tex, end)
            if got is None:
                break
            args.append(got[0])
            end = got[1]
        if len(args) < nargs:
            continue
        for k, arg in enumerate(args, 1):
            body = body.replace(f"#{k}", arg)
        # Plain substitution, as in TeX (\operatorname*{..}_x keeps its limits); a body ending in a
        # command must not glue to a letter that follows.
        if re.search(r"\\[A-Za-z]+$", body) and end < len(tex) and tex[end].isalpha():
            body += " "
        out.append(tex[pos:m.start()] + body)
        pos, changed = end, True
    out.append(tex[pos:])
    result = "".join(out)
    return _expand(result, macros, depth + 1) if changed else result


OPERATORNAME = re.compile(r"(\\operatorname\*?\s*\{)([^{}]*)\}")
SPACING = re.compile(r"\\[,;:! ]|~")
ENVIRONMENT = re.compile(r"\\(begin|end)\{([A-Za-z]+\*?)\}(\{\d+\})?")


def _rewrite_env(m: re.Match) -> str:
    kind, name, count = m.groups()
    new = ENV_REWRITES.get(name)
    if new is None:
        return m.group(0)
    if kind == "end":
        new = new.split("}")[0]
    if count and not name.startswith("alignat"):
        new += "}" + count[:-1]  # an argument of another environment stays (\begin{x}{2})
    return f"\\{kind}{{{new}}}"


def prepare(tex: str, macros: dict | None = None) -> str:
    """TeX as latex2mathml can take it: page macros defined and expanded, MathJax-only
    environments and operators rewritten, numbering commands dropped. ``macros`` (the page's,
    kept across formulas) receives this formula's definitions."""
    macros = {} if macros is None else macros
    if "\\" not in tex:
        return tex
    tex = _definitions(tex, macros)
    tex = _expand(tex, macros)
    tex = DROPPED.sub("", tex)
    tex = ENVIRONMENT.sub(_rewrite_env, tex)
    tex = re.sub(r"\\(" + "|".join(OPERATORS) + r")(?![A-Za-z])", r"\\operatorname{\1}", tex)
    # latex2mathml takes an operator's name as plain text only: 'arg\,min' -> 'arg min' (a thin space)
    tex = OPERATORNAME.sub(lambda m: m.group(1) + SPACING.sub("\u2009", m.group(2)) + "}", tex)
    return tex


LEFTOVER = re.compile(r">(\\[A-Za-z]+)<")


def leftover(mathml: str) -> str | None:
    """What the converter could not convert and left as text: a command or a stray '&'."""
    m = LEFTOVER.search(mathml)
    if m:
        return f"unknown command {m.group(1)}"
    if "<mi>&</mi>" in mathml or "<mi>&amp;</mi>" in mathml:
        return "'&' outside an alignment environment (align, cases, matrix)"
    return None


MATH_TOKENS = frozenset({"math_inline", "math_inline_double", "math_inline_display", "math_block", "math_block_label"})


def collect_definitions(tokens, macros: dict) -> None:
    """Every macro the page's formulas define, before any formula is rendered: the excerpt is
    rendered first and may use a macro defined further down, as MathJax's page-wide macros allow."""
    for token in tokens:
        if token.type in MATH_TOKENS and "\\" in token.content:
            _definitions(token.content, macros)
        if token.children:
            collect_definitions(token.children, macros)
