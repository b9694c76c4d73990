"""The one MarkdownIt instance and its plugins.

CommonMark plus tables, strikethrough, footnotes (also shown as sidenotes), heading anchors,
``$math$`` rendered to MathML at build time, Pygments highlighting at build time, MyST-style
directive blocks and inline roles. :func:`render` turns a post's body into HTML plus the
table of contents, and collects every problem on the way into the page context.
"""
from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin

from sitegen import blockrules
from sitegen.content import CONTROL, is_markdown, slugify  # noqa: F401  (slugify: heading ids here, and for callers)
from sitegen.context import PageContext
from sitegen.directives import REGISTRY, Call, load_builtin
from sitegen.errors import SiteError, closest
from sitegen.mathjax import mathjax_plugin

DIRECTIVE_INFO = re.compile(r"^\{([A-Za-z][\w-]*)\}\s*(.*)$")
OPTION_LINE = re.compile(r"^:([A-Za-z][\w-]*):(?:\s+(.*?))?\s*$")
ROLE = re.compile(r"\{([A-Za-z][\w-]*)\}(`+)(.{1,20000}?)\2", re.S)  # bounded: no rescan to the end per role
UNCLOSED_ROLE = re.compile(r"\{([A-Za-z][\w-]*)\}`")
UNDEFINED_FOOTNOTE = re.compile(r"\[\^([^\]\s]+)\]")

REF_MARK = re.compile("\x02ref:([^\x03]*):(\\d+)\x03")


@dataclass
class Rendered:
    html: str
    toc: list[dict] = field(default_factory=list)  # [{"level", "id", "text"}]
    excerpt_html: str = ""
    first_heading: str | None = None


# ---------------------------------------------------------------------------------------------
# fragments reused from the post's previous parse

def _reused(ctx: PageContext | None, key: tuple) -> str | None:
    """The HTML this post's previous parse made of the same code block or formula (``key`` holds
    all it depends on besides the code version and the libraries' versions, which the whole cache
    is keyed by), or None. An edit to the prose around unchanged code and math then neither
    highlights nor converts them again, nor imports Pygments and latex2mathml."""
    store = ctx.meta.get("fragments") if ctx is not None else None
    if store is None:
        return None
    old, new = store
    return new.get(key) or old.get(key)


def _keep(ctx: PageContext | None, key: tuple, made: str) -> None:
    """Record what this parse made of ``key``, for the next parse of the post."""
    store = ctx.meta.get("fragments") if ctx is not None else None
    if store is not None:
        store[1][key] = made


# ---------------------------------------------------------------------------------------------
# math

@lru_cache(maxsize=4096)
def _convert_math(latex: str, display: bool) -> str:
    from latex2mathml.converter import convert_to_element

    from sitegen.mathml import typeset_element

    return typeset_element(convert_to_element(latex, display="block" if display else "inline"), display)


def _math_html(latex: str, display: bool, ctx: PageContext | None, line: int | None) -> str:
    from sitegen import mathjax

    macros = ctx.meta.setdefault("tex_macros", {}) if ctx is not None else {}
    prepared = mathjax.prepare(latex, macros)
    if not prepared.strip():
        return ""  # only macro definitions: they show nothing, as in MathJax
    try:
        reason = _unbalanced(prepared)
        if reason is None:
            key = ("math", prepared, display)
            mathml = _reused(ctx, key)
            if mathml is None:
                mathml = _convert_math(prepared, display)
            reason = mathjax.leftover(mathml)
            if reason is None:
                _keep(ctx, key, mathml)
    except Exception as exc:  # latex2mathml raises many types for bad input
        # latex2mathml's errors mostly carry no message, only a name: MissingSuperScriptOrSubscriptError
        reason = str(exc) or re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__.removesuffix("Error")).lower()
    if reason is None:
        return mathml
    if ctx is not None:
        shown = " ".join(latex.split())
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        ctx.warn(line, f"cannot convert the formula '{shown}' to MathML ({reason}); it is shown as code: "
                       "check the LaTeX, or define the macro with \\newcommand in an earlier formula")
    return f'<code class="math-error">{escapeHtml(latex)}</code>'


def _unbalanced(latex: str) -> str | None:
    """Braces that do not pair up (latex2mathml converts ``\\frac{a}{b`` without a word)."""
    depth = 0
    i = 0
    while i < len(latex):
        ch = latex[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return "a '}' closes no '{'"
        i += 1
    return f"{depth} '{{' never closed" if depth else None


# ---------------------------------------------------------------------------------------------
# code highlighting

@lru_cache(maxsize=None)
def _lexer(lang: str):
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    from sitegen.lexing import fast

    try:
        lexer = get_lexer_by_name(lang)
    except ClassNotFound:
        return None
    fast(lexer)  # the same tokens, found in about half the time
    return lexer


@lru_cache(maxsize=1)
def _formatter():
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(nowrap=True)  # building its style table costs more than highlighting a block


FENCE_LANG = re.compile(r"^[ \t>]*(?:```+|~~~+)[ \t]*([\w+#.-]+)", re.M)


def warm(bodies=()) -> None:
    """Do once what the first post would: the highlighter's formatter and the lexers of the languages
    the ``bodies`` fence, the math converter's imports (a builder calls this before forking workers,
    which then share the result instead of each setting it up), and the directive modules."""
    load_builtin()
    _formatter()
    langs = set()
    for body in bodies:
        if "```" in body or "~~~" in body:
            langs.update(FENCE_LANG.findall(body))
    for lang in sorted(langs)[:32]:
        _lexer(lang)  # (a regex lexer compiles its rules when made)
    _convert_math("x", False)


def highlight(code: str, lang: str, linenos: bool = False) -> str:
    from pygments import highlight as pyg_highlight

    lexer = _lexer(lang) if lang else None
    if lexer is None:
        cls = f' class="language-{escapeHtml(lang)}"' if lang else ""
        body = escapeHtml(code)
    else:
        cls = f' class="language-{escapeHtml(lang)}"'
        body = pyg_highlight(code, lexer, _formatter())
    pre = "highlight"
    if linenos:  # ```python linenos, or Jekyll's {% highlight python linenos %}
        pre = "highlight linenos"
        lines = body.split("\n")
        trailing = lines.pop() if lines and lines[-1] == "" else None
        body = "\n".join(f'<span class="lineno" aria-hidden="true">{i}</span>{line}' for i, line in enumerate(lines, 1))
        body += "\n" if trailing is not None else ""
    return f'<pre class="{pre}" tabindex="0"><code{cls}>{body}</code></pre>\n'


# ---------------------------------------------------------------------------------------------
# directives and roles

def parse_directive(token, line_offset: int) -> Call:
    m = DIRECTIVE_INFO.match(token.info.strip())
    name, argument = m.group(1), m.group(2).strip()
    fence_line = token.map[0] + 1 + line_offset
    lines = token.content.split("\n")
    options: dict[str, str] = {}
    option_lines: dict[str, int] = {}
    i = 0
    while i < len(lines):
        om = OPTION_LINE.match(lines[i])
        if not om:
            break
        options[om.group(1)] = om.group(2) or ""
        option_lines[om.group(1)] = fence_line + 1 + i
        i += 1
    body = "\n".join(lines[i:])
    if body.startswith("\n"):
        body, i = body[1:], i + 1
    return Call(name, argument, options, option_lines, body, fence_line, fence_line + 1 + i)


def _render_directive(self, tokens, idx, options, env):
    token = tokens[idx]
    ctx: PageContext = env["ctx"]
    call = parse_directive(token, env.get("line_offset", 0))
    load_builtin()  # (here, not in markdown(): a post without directives never imports them)
    directive = REGISTRY.directives.get(call.name)
    if directive is None:
        known = ", ".join(sorted(REGISTRY.directives))
        hint = closest(call.name, REGISTRY.directives)
        near = f" (did you mean '{hint[0]}'?)" if hint else ""
        ctx.error(call.line, f"unknown directive '{{{call.name}}}'{near}; known directives: {known}")
        return ""
    bad = [k for k in call.options if k not in directive.options]
    for key in bad:
        allowed = ", ".join(directive.options) or "none"
        hint = closest(key, directive.options)
        near = f" (did you mean ':{hint[0]}:'?)" if hint else ""
        ctx.error(call.option_line(key), f"unknown option ':{key}:' for {{{call.name}}}{near}; "
                                         f"known options: {allowed}")
    if bad:
        return ""
    try:
        return directive.render(call, ctx)
    except SiteError as exc:
        ctx.problems.append(exc.problem)
        return ""


def _fence(self, tokens, idx, options, env):
    token = tokens[idx]
    info = token.info.strip()
    if DIRECTIVE_INFO.match(info):
        return _render_directive(self, tokens, idx, options, env)
    words = info.split()
    lang = words[0] if words else ""
    ctx = env.get("ctx")
    key = ("code", lang, "linenos" in words[1:], token.content)
    made = _reused(ctx, key)
    if made is None:
        made = highlight(token.content, lang, linenos=key[2])
    _keep(ctx, key, made)
    return made


def _role_rule(state, silent):
    if state.src[state.pos] != "{":
        return False
    m = ROLE.match(state.src, state.pos)
    if not m:
        return False
    if not silent:
        token = state.push("role", "", 0)
        token.meta = {"name": m.group(1), "content": m.group(3).strip()}
        token.content = m.group(0)
    state.pos = m.end()
    return True


def _render_role(self, tokens, idx, options, env):
    token = tokens[idx]
    ctx: PageContext = env["ctx"]
    name, content = token.meta["name"], token.meta["content"]
    line = token.meta.get("line")
    if name == "ref":
        # Labels may be defined further down the page: leave a mark, resolve after rendering.
        return f"\x02ref:{content}:{line or 0}\x03"
    load_builtin()
    role = REGISTRY.roles.get(name)
    if role is None:
        known = ", ".join(sorted(["ref", *REGISTRY.roles]))
        ctx.error(line, f"unknown role '{{{name}}}'; known roles: {known}")
        return escapeHtml(token.content)
    try:
        return role.render(content, line, ctx)
    except SiteError as exc:
        ctx.problems.append(exc.problem)
        return escapeHtml(content)


def resolve_refs(body: str, ctx: PageContext) -> str:
    def repl(m):
        label, line = m.group(1), int(m.group(2)) or None
        target = ctx.labels.get(label)
        if target is None:
            hint = closest(label, ctx.labels)
            near = f" (did you mean '{hint[0]}'?)" if hint else ""
            known = ", ".join(sorted(ctx.labels)) or "none on this page"
            ctx.error(line, f"reference to unknown label '{label}'{near}; labels: {known}")
            return escapeHtml(label)
        return f'<a class="xref" href="#{escapeHtml(target.anchor)}">{escapeHtml(target.kind)}&nbsp;{target.number}</a>'

    return REF_MARK.sub(repl, body)


# ---------------------------------------------------------------------------------------------
# math rules that know their line, for error messages

def _math_inline(self, tokens, idx, options, env):
    t = tokens[idx]
    return _math_html(t.content, False, env.get("ctx"), t.meta.get("line"))


def _math_inline_display(self, tokens, idx, options, env):
    """``\\[ ... \\]`` in the middle of a paragraph: display math where it stands (a block inside <p>
    would be invalid HTML)."""
    t = tokens[idx]
    return _math_html(t.content, True, env.get("ctx"), t.meta.get("line"))


def _math_block(self, tokens, idx, options, env):
    t = tokens[idx]
    line = (t.map[0] + 1 + env.get("line_offset", 0)) if t.map else None
    math = _math_html(t.content, True, env.get("ctx"), line)
    if not math:
        return ""
    # tabindex: a wide formula scrolls sideways, and keyboard users must be able to scroll it too
    return f'<div class="math-display" tabindex="0">{math}</div>\n'


# ---------------------------------------------------------------------------------------------
# footnotes as sidenotes

def _footnote_ref(self, tokens, idx, options, env):
    token = tokens[idx]
    fid = token.meta["id"]
    n = fid + 1
    sub = f":{token.meta['subId']}" if token.meta.get("subId", 0) > 0 else ""
    ref_id = f"fnref-{n}{sub}"
    note_html = env.get("footnote_inline", {}).get(fid, "")
    # The sup links to the note at the end (works everywhere, RSS too). The sidenote beside it is
    # shown in the margin on wide screens and toggled by a CSS-only checkbox on narrow ones.
    toggle = f"sn-{n}{sub.replace(':', '-')}"
    # The comments delimit the sidenote so the feed can drop it (feeds keep the notes at the end).
    return (f'<sup class="footnote-ref"><a href="#fn-{n}" id="{ref_id}">{n}</a></sup><!--sidenote-->'
            f'<label for="{toggle}" class="sidenote-toggle" title="Show note {n}">&#8853;</label>'
            f'<input type="checkbox" id="{toggle}" class="sidenote-switch" aria-label="Show note {n}">'
            f'<span class="sidenote" role="note"><span class="sidenote-number">{n}</span> {note_html}</span>'
            '<!--/sidenote-->')


def _footnote_block_open(self, tokens, idx, options, env):
    return '<section class="footnotes" aria-label="Notes">\n<h2 class="footnotes-title">Notes</h2>\n<ol class="footnotes-list">\n'


def _footnote_open(self, tokens, idx, options, env):
    n = tokens[idx].meta["id"] + 1
    return f'<li id="fn-{n}" class="footnote-item">'


def _footnote_anchor(self, tokens, idx, options, env):
    t = tokens[idx]
    n = t.meta["id"] + 1
    sub = f":{t.meta['subId']}" if t.meta.get("subId", 0) > 0 else ""
    return f' <a href="#fnref-{n}{sub}" class="footnote-backref" aria-label="Back to the text">&#8617;</a>'


# ---------------------------------------------------------------------------------------------

def _link_open(self, tokens, idx, options, env):
    """Links to another post's Markdown file (``other.md``) become links to its page."""
    token = tokens[idx]
    href = token.attrGet("href") or ""
    ctx: PageContext | None = env.get("ctx")
    targets = ctx.meta.get("md_targets") if ctx is not None else None
    if targets is not None and href and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^/|^#", href):
        path, _, frag = href.partition("#")
        if is_markdown(path):
            from urllib.parse import unquote

            source = (ctx.source_dir / unquote(path)).resolve()
            url = targets.get(str(source))
            if url is None:
                ctx.error(token.meta.get("line"), f"link to '{href}': no post at {ctx.display(source)}; "
                                                  "link to an existing post's .md file or to its URL")
            else:
                ctx.meta.setdefault("md_links", {})[str(source)] = url
                token.attrSet("href", url + (f"#{frag}" if frag else ""))
    return self.renderToken(tokens, idx, options, env)


def _heading_slug(text: str) -> str:
    return slugify(text)


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"typographer": False, "html": True})
    md.enable(["table", "strikethrough"])
    footnote_plugin(md)
    dollarmath_plugin(md, allow_space=False, allow_digits=False, double_inline=True)
    mathjax_plugin(md)
    md.core.ruler.push("anchor", _anchors)
    md.inline.ruler.before("backticks", "role", _role_rule)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("role", _render_role)
    md.add_render_rule("math_inline", _math_inline)
    md.add_render_rule("math_inline_double", _math_inline)  # kramdown: $$..$$ within text is inline
    md.add_render_rule("math_inline_display", _math_inline_display)
    md.add_render_rule("math_block", _math_block)
    md.add_render_rule("math_block_label", _math_block)
    md.add_render_rule("footnote_ref", _footnote_ref)
    md.add_render_rule("footnote_block_open", _footnote_block_open)
    md.add_render_rule("footnote_open", _footnote_open)
    md.add_render_rule("footnote_anchor", _footnote_anchor)
    blockrules.install(md)  # the same tokens, without calling the rules the line's first character rules out
    return md


def _anchors(state) -> None:
    """Heading ids and a trailing ``#`` permalink, as mdit-py-plugins' anchors plugin makes them, with
    one difference: that plugin makes a repeated heading's id unique by trying ``slug-1``,
    ``slug-2``... from 1 every time, so 30,000 headings of the same text cost 450 million set
    lookups (minutes). Here each slug remembers where its count got to: the same ids, linear time."""
    from markdown_it.token import Token

    tokens = state.tokens
    taken = {str(t.attrGet("id")) for t in tokens if t.type == "heading_open" and t.attrGet("id")}
    next_number: dict[str, int] = {}
    for idx, token in enumerate(tokens):
        if token.type != "heading_open" or int(token.tag[1]) > 4:
            continue
        inline = tokens[idx + 1]
        slug = token.attrGet("id")
        if not slug:
            base = _heading_slug("".join(c.content for c in inline.children or []
                                         if c.type in ("text", "code_inline")))
            slug, n = base, next_number.get(base, 1)
            while slug in taken:
                slug, n = f"{base}-{n}", n + 1
            next_number[base] = n
            taken.add(slug)
            token.attrSet("id", slug)
        link_open = Token("link_open", "a", 1)
        link_open.attrSet("class", "header-anchor")
        link_open.attrSet("href", f"#{slug}")
        inline.children = (inline.children or []) + [
            Token("text", "", 0, content=" "), link_open, Token("html_block", "", 0, content="#"),
            Token("link_close", "a", -1)]


def _check_source(tokens, lines: list[str], line_offset: int, ctx: PageContext, env: dict) -> None:
    """Warnings for what a careful author wants to know: a code fence never closed (it swallows the
    rest of the post), a footnote reference with no note, a role whose backtick is never closed."""
    defined = (env.get("footnotes") or {}).get("refs") or {}
    for tok in tokens:
        if tok.type == "fence" and tok.map:
            start, end = tok.map
            last = re.sub(r"^[\s>]*", "", lines[end - 1]).rstrip() if end - 1 < len(lines) else ""
            fence = tok.markup
            if end - 1 <= start or not (last.startswith(fence) and set(last) == {fence[0]}):
                ctx.warn(start + 1 + line_offset, f"this code fence ({fence}) is never closed, so everything after "
                                                  f"it is shown as code; close it with a line holding {fence}")
        elif tok.type == "inline" and tok.children:
            text = "".join(c.content for c in tok.children if c.type == "text")
            if "[^" in text:
                for label in dict.fromkeys(UNDEFINED_FOOTNOTE.findall(text)):
                    if f":{label}" not in defined:
                        ctx.warn(tok.children[0].meta.get("line"), f"footnote [^{label}] is never defined; add a "
                                                                   f"line '[^{label}]: the note' to the post")
            if "}`" in text:
                for name in dict.fromkeys(UNCLOSED_ROLE.findall(text)):
                    ctx.warn(tok.children[0].meta.get("line"), f"{{{name}}}` has no closing backtick, so it is "
                                                               "shown as text; end it with `")


def _annotate(tokens, line_offset: int, ctx: PageContext, env: dict, md: MarkdownIt) -> tuple[list, str, str | None]:
    """Give inline children their line numbers; collect the TOC, sidenote text and excerpt."""
    toc: list[dict] = []
    excerpt = ""
    footnote_depth = 0
    current_fn = None
    fn_parts: dict[int, list[str]] = {}
    first_heading = None
    for i, tok in enumerate(tokens):
        if tok.type == "footnote_open":
            footnote_depth += 1
            current_fn = tok.meta["id"]
        elif tok.type == "footnote_close":
            footnote_depth -= 1
            current_fn = None
        if tok.type == "inline":
            line = (tok.map[0] + 1 + line_offset) if tok.map else None
            for child in tok.children or []:
                child.meta = dict(child.meta or {})
                child.meta.setdefault("line", line)
                if child.type == "softbreak" and line is not None:
                    line += 1
            if current_fn is not None:
                fn_parts.setdefault(current_fn, []).append(tok)
            elif not excerpt and i > 0 and tokens[i - 1].type == "paragraph_open" and footnote_depth == 0:
                excerpt = md.renderer.renderInline(
                    [c for c in tok.children if c.type not in ("footnote_ref",)], md.options, env)
        if tok.type == "heading_open":
            inline = tokens[i + 1]
            text = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline", "math_inline"))
            if first_heading is None:
                first_heading = text
            toc.append({"level": int(tok.tag[1]), "id": tok.attrs.get("id", ""), "text": text.strip()})
    env["footnote_inline"] = {
        fid: " ".join(md.renderer.renderInline(t.children, md.options, env) for t in parts)
        for fid, parts in fn_parts.items()
    }
    return toc, excerpt, first_heading


def _attach(ctx: PageContext) -> None:
    """Directives render Markdown nested in them through ``ctx`` (:meth:`PageContext.render_inline`), so they
    never import this module, which dispatches to them."""
    if ctx is not None and ctx.markup is None:
        ctx.markup = sys.modules[__name__]


def render(body: str, ctx: PageContext, line_offset: int = 0) -> Rendered:
    """Render a post body. ``line_offset`` is the number of file lines before the body (front matter)."""
    _attach(ctx)
    md = markdown()
    env = {"ctx": ctx, "line_offset": line_offset}
    body = _without_control(body, ctx, line_offset)
    tokens = md.parse(body, env)
    from sitegen.mathjax import collect_definitions

    collect_definitions(tokens, ctx.meta.setdefault("tex_macros", {}))
    toc, excerpt, first_heading = _annotate(tokens, line_offset, ctx, env, md)
    _check_source(tokens, body.split("\n"), line_offset, ctx, env)
    out = md.renderer.render(tokens, md.options, env)
    out = resolve_refs(out, ctx)
    excerpt = resolve_refs(excerpt, ctx)
    return Rendered(out, toc, excerpt, first_heading)


def _without_control(body: str, ctx: PageContext, line_offset: int) -> str:
    """Control characters replaced by U+FFFD, with a warning at the first: HTML forbids them, and a
    literal \\x02ref:...\\x03 must not pass for the mark a {ref} role leaves."""
    m = CONTROL.search(body)
    if m is None:
        return body
    line = body.count("\n", 0, m.start()) + 1 + line_offset
    ctx.warn(line, f"the text holds the control character U+{ord(m.group()):04X} (shown as \ufffd); remove it")
    return CONTROL.sub("\ufffd", body)


def render_fragment(text: str, ctx: PageContext, line: int) -> str:
    """Markdown inside a directive (a callout's body, a caption): same rules, nested."""
    _attach(ctx)
    md = markdown()
    env = {"ctx": ctx, "line_offset": line - 1}
    tokens = md.parse(text, env)
    _annotate(tokens, line - 1, ctx, env, md)
    return md.renderer.render(tokens, md.options, env)


def render_inline(text: str, ctx: PageContext, line: int) -> str:
    _attach(ctx)
    md = markdown()
    env = {"ctx": ctx, "line_offset": line - 1}
    tokens = md.parseInline(text, env)
    _annotate(tokens, line - 1, ctx, env, md)
    return md.renderer.render(tokens, md.options, env)


def strip_tags(fragment: str) -> str:
    text = re.sub(r"<[^>]+>", "", fragment)
    return " ".join(html.unescape(text).split())
