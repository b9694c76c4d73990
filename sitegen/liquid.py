"""The Liquid that lives inside Jekyll posts, rendered before the Markdown as Jekyll does.

Only what posts use is understood: ``{% post_url %}``, ``{% link %}``, ``{% highlight %}``,
``{% raw %}``, ``{% comment %}``, and ``{{ ... }}`` outputs of ``site.*`` / ``page.*`` values and
string literals through the ``relative_url``, ``absolute_url``, ``prepend``, ``append`` filters.
Every other tag is an error naming its line and what to write instead: a post is not a theme.

The output keeps the source's line count wherever it can, so Markdown's line numbers (and every
later message) still point at the right line of the file.

:func:`parse` splits text into :class:`Segment` s (pure, property-tested); :func:`render` walks them
with a :class:`Resolver` that knows the site.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class Segment:
    kind: str        # "text", "tag", "output"
    text: str        # the source text of the segment, delimiters included
    line: int        # 1-based line where it starts
    name: str = ""   # a tag's name
    markup: str = ""  # a tag's arguments, an output's expression

    @property
    def newlines(self) -> int:
        return self.text.count("\n")


@dataclass
class LiquidError:
    line: int
    message: str
    level: str = "error"


TAG_START = re.compile(r"\{%-?\s*")
BLOCK_OPEN = re.compile(r"\{\{|\{%")
RAW_END = re.compile(r"\{%-?\s*endraw\s*-?%\}")
COMMENT_END = re.compile(r"\{%-?\s*endcomment\s*-?%\}")


def parse(src: str) -> tuple[list[Segment], list[LiquidError]]:
    """Text, tags and outputs in order; their texts joined are ``src`` exactly.

    ``{% raw %}...{% endraw %}`` becomes one text segment holding the body (the tags dropped);
    ``{% comment %}...{% endcomment %}`` one tag segment named ``comment``. An unclosed tag or
    output is an error and stays text."""
    out: list[Segment] = []
    errors: list[LiquidError] = []
    pos, line, n = 0, 1, len(src)
    text_start, text_line = 0, 1

    def flush(end: int) -> None:
        if end > text_start:
            out.append(Segment("text", src[text_start:end], text_line))

    while pos < n:
        m = BLOCK_OPEN.search(src, pos)
        if m is None:
            break
        line += src.count("\n", pos, m.start())
        start = m.start()
        closer = "}}" if m.group() == "{{" else "%}"
        end = src.find(closer, start + 2)
        if end < 0:
            errors.append(LiquidError(line, f"'{m.group()}' is never closed with '{closer}'; close it, or wrap "
                                            "the text in {% raw %}...{% endraw %} to show it as it is"))
            pos = start + 2
            continue
        end += 2
        inner = src[start + 2:end - 2].strip().strip("-").strip()
        flush(start)
        if m.group() == "{{":
            out.append(Segment("output", src[start:end], line, markup=inner))
            line += src.count("\n", start, end)
            pos = text_start = end
            text_line = line
            continue
        name, _, markup = inner.partition(" ")
        name = name.strip()
        if "\n" in name:
            name, _, rest = name.partition("\n")
            markup = (rest + " " + markup).strip()
        markup = markup.strip()
        if name in ("raw", "comment"):
            finder = RAW_END if name == "raw" else COMMENT_END
            close = finder.search(src, end)
            if close is None:
                errors.append(LiquidError(line, f"{{% {name} %}} is never closed: add {{% end{name} %}}"))
                out.append(Segment("text", src[start:], line))
                return out, errors
            if name == "raw":
                out.append(Segment("text", src[end:close.start()], line + src.count("\n", start, end)))
                # The tags' own line breaks are kept as empty text, so the line count stays.
                breaks = src.count("\n", start, end) + src.count("\n", close.start(), close.end())
                if breaks:
                    out.append(Segment("text", "\n" * breaks, line))
            else:
                out.append(Segment("tag", src[start:close.end()], line, "comment", markup))
            line += src.count("\n", start, close.end())
            pos = text_start = close.end()
            text_line = line
            continue
        out.append(Segment("tag", src[start:end], line, name, markup))
        line += src.count("\n", start, end)
        pos = text_start = end
        text_line = line
    flush(n)
    return out, errors


# ---------------------------------------------------------------------------------------------
# rendering

#: what to write instead of a tag sitegen does not render (the tag's name -> advice)
ADVICE = {
    "include": "sitegen posts have no includes: write what the include made into the post "
               "(Markdown or HTML; for an image, ![alt](/assets/...))",
    "include_relative": "sitegen posts have no includes: paste the file's text into the post",
    "gist": "link to the gist instead (embedding it would load another host)",
    "youtube": "link to the video instead (embedding it would load another host)",
    "video": "link to the video instead, or put the file in public/ and write a <video> element",
    "cite": "write the reference as text or a footnote ([^1])",
    "bibliography": "write the references as a list or as footnotes",
    "reference": "write the reference as text or a footnote ([^1])",
    "seo": "delete it: sitegen's templates write the page's meta tags",
    "feed_meta": "delete it: sitegen's templates link the feed",
    "twitter": "link to the post instead (embedding it would load another host)",
}
LOGIC = {"if", "unless", "case", "for", "tablerow", "assign", "capture", "increment", "decrement", "cycle",
         "break", "continue", "else", "elsif", "when", "echo", "liquid", "render"}
KNOWN_TAGS = ("post_url", "link", "highlight", "raw", "comment")
FILTER = re.compile(r"\|\s*([A-Za-z_]+)\s*(?::\s*(.*?))?\s*(?=\||$)")


class Resolver:
    """What rendering Liquid needs to know about the site; :mod:`sitegen.jekyll` provides the real one."""

    def post_url(self, name: str) -> str | None:
        return None

    def link(self, path: str) -> str | None:
        return None

    def variable(self, name: str):
        """``site.title``, ``page.url`` ...: the value, or raise KeyError."""
        raise KeyError(name)

    def highlight(self, code: str, lang: str, linenos: bool) -> str:
        fence = "`" * max(3, _longest_run(code, "`") + 1)
        info = lang + (" linenos" if linenos else "")
        return f"{fence}{info}\n{code}\n{fence}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(r) for r in runs), default=0)


def render(src: str, resolver: Resolver) -> tuple[str, list[LiquidError]]:
    """``src`` with its Liquid rendered, and every problem. Keeps the line count where possible."""
    segments, errors = parse(src)
    out: list[str] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        i += 1
        if seg.kind == "text":
            out.append(seg.text)
            continue
        if seg.kind == "output":
            out.append(_pad(_output(seg, resolver, errors), seg.newlines))
            continue
        name = seg.name
        if name == "comment":
            out.append("\n" * seg.newlines)
        elif name in ("post_url", "link"):
            out.append(_pad(_link_tag(seg, resolver, errors), seg.newlines))
        elif name == "highlight":
            i = _highlight(segments, i, seg, resolver, errors, out)
        elif name == "endhighlight":
            errors.append(LiquidError(seg.line, "{% endhighlight %} without a {% highlight %} before it; delete it"))
            out.append("\n" * seg.newlines)
        else:
            errors.append(LiquidError(seg.line, _unknown(seg)))
            out.append("\n" * seg.newlines)
    return "".join(out), errors


def _pad(text: str, newlines: int) -> str:
    return text + "\n" * max(0, newlines - text.count("\n"))


def _unknown(seg: Segment) -> str:
    name = seg.name or "(empty)"
    shown = " ".join(seg.text.split())
    if name == "include" or name == "include_relative":
        m = re.search(r"""(?:path|src|url|file)\s*=\s*["']?([^"'\s]+)""", seg.markup)
        if m:
            src = m.group(1)
            src = src if src.startswith(("/", "http")) else "/" + src
            return (f"Liquid tag '{shown}' is not supported: sitegen posts have no includes; "
                    f"for an image write ![description]({src})")
    advice = ADVICE.get(name)
    if advice is None and (name in LOGIC or name.startswith("end")):
        advice = "sitegen renders no Liquid logic in posts: write the text it produced"
    if advice is None:
        advice = ("sitegen renders only " + ", ".join(f"{{% {t} %}}" for t in KNOWN_TAGS) +
                  " in posts: write what the tag produced, or wrap it in {% raw %}...{% endraw %} to show it")
    return f"Liquid tag '{shown}' is not supported: {advice}"


def _argument(markup: str) -> str:
    """A tag's one argument, without quotes."""
    markup = markup.strip()
    if len(markup) >= 2 and markup[0] == markup[-1] and markup[0] in "\"'":
        return markup[1:-1]
    return markup


def _link_tag(seg: Segment, resolver: Resolver, errors: list[LiquidError]) -> str:
    target = _argument(seg.markup)
    if not target:
        errors.append(LiquidError(seg.line, f"{{% {seg.name} %}} needs a target, e.g. "
                                            + ("{% post_url 2024-01-31-my-post %}" if seg.name == "post_url"
                                               else "{% link _posts/2024-01-31-my-post.md %}")))
        return ""
    if "{{" in target:
        errors.append(LiquidError(seg.line, f"{{% {seg.name} {target} %}}: a variable as the target is not "
                                            "supported; write the file name"))
        return ""
    url = resolver.post_url(target) if seg.name == "post_url" else resolver.link(target)
    if url is None:
        what = "no post named" if seg.name == "post_url" else "no post or file in public/ at"
        errors.append(LiquidError(seg.line, f"broken link {{% {seg.name} {target} %}}: {what} '{target}'"))
        return "#"  # the error is reported once, here, not again by the link checker
    return url


def _highlight(segments, i, seg, resolver, errors, out) -> int:
    args = seg.markup.split()
    lang = args[0] if args else ""
    options = args[1:]
    linenos = any(o.split("=")[0] == "linenos" for o in options)
    unknown = [o for o in options if o.split("=")[0] not in ("linenos", "mark_lines", "hl_lines")]
    if not lang or not re.match(r"^[\w+#.-]+$", lang):
        errors.append(LiquidError(seg.line, "{% highlight %} needs a language, e.g. {% highlight python %}"))
    if unknown:
        errors.append(LiquidError(seg.line, f"{{% highlight %}} option(s) {', '.join(unknown)} not supported; "
                                            "sitegen knows 'linenos'", "warning"))
    body: list[str] = []
    start_newlines = seg.newlines
    while i < len(segments):
        inner = segments[i]
        i += 1
        if inner.kind == "tag" and inner.name == "endhighlight":
            code = "".join(body)
            newlines = start_newlines + code.count("\n") + inner.newlines
            code = re.sub(r"\A[\r\n]+|[\r\n]+\Z", "", code)
            block = resolver.highlight(code, lang, linenos)
            out.append(_pad(block, newlines))
            return i
        if inner.kind == "text":
            body.append(inner.text)
        else:
            sub, sub_errors = render(inner.text, resolver) if inner.kind != "text" else (inner.text, [])
            errors.extend(LiquidError(inner.line + e.line - 1, e.message, e.level) for e in sub_errors)
            body.append(sub)
    errors.append(LiquidError(seg.line, "{% highlight %} is never closed: add {% endhighlight %} after the code"))
    out.append("".join(body))
    return i


def _output(seg: Segment, resolver: Resolver, errors: list[LiquidError]) -> str:
    expr = seg.markup
    head, _, filters = expr.partition("|")
    head = head.strip()
    try:
        value = _value(head, resolver)
    except KeyError:
        # Jekyll prints an unknown variable as nothing; so do we, but say so.
        errors.append(LiquidError(seg.line, f"Liquid output '{{{{ {expr} }}}}' shows nothing: sitegen knows "
                                            "site.baseurl, site.url, site.title, site.description, page.title, "
                                            "page.url, page.date, page.<front matter key> and \"text\" "
                                            "| relative_url; write the value itself, or wrap it in "
                                            "{% raw %}...{% endraw %} to show it as it is", "warning"))
        return ""
    for m in FILTER.finditer("|" + filters if filters else ""):
        name, arg = m.group(1), (m.group(2) or "").strip()
        if name == "relative_url" or name == "absolute_url":
            # Root-relative either way: the link is checked, works in the preview, and the page
            # loads nothing from another host.
            text = str(value)
            if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", text):
                base = str(_value("site.baseurl", resolver)).rstrip("/")
                value = base + "/" + text.lstrip("/")
        elif name in ("prepend", "append"):
            try:
                extra = str(_value(arg, resolver))
            except KeyError:
                errors.append(LiquidError(seg.line, f"'{name}: {arg}' in '{{{{ {expr} }}}}': {arg} is not a value "
                                                    "sitegen knows; write the text itself", "warning"))
                continue
            value = extra + str(value) if name == "prepend" else str(value) + extra
        elif name in ("escape", "xml_escape", "strip", "downcase", "upcase"):
            import html

            text = str(value)
            value = {"escape": html.escape, "xml_escape": html.escape, "strip": str.strip,
                     "downcase": str.lower, "upcase": str.upper}[name](text)
        else:
            errors.append(LiquidError(seg.line, f"Liquid filter '{name}' in '{{{{ {expr} }}}}' is not supported "
                                                "and left out; sitegen knows relative_url, absolute_url, prepend, "
                                                "append, escape, strip, downcase, upcase: write the value itself",
                                      "warning"))
    return "" if value is None else str(value)


def _value(token: str, resolver: Resolver):
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    if re.match(r"^-?\d+(\.\d+)?$", token):
        return token
    if not re.match(r"^[A-Za-z_][\w.-]*$", token):
        raise KeyError(token)
    return resolver.variable(token)
