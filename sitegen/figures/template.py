"""Expression templates: the model printed as text with a placeholder where each parameter goes.

A placeholder is written ``⟦name⟧`` (U+27E6, U+27E7). Those brackets never occur in printed
code or math, unlike ``{}``, ``[]`` or ``$``, so a template is the printed model unchanged plus
placeholders. Settings follow the name after ``|``::

    ⟦lengthscale[log_lr] | log | label=ℓ₁ | range=0.01:100 | bounds=1e-4:⟧

``log``/``linear`` pick the axis, ``label`` is the name readers see, ``range`` fixes the axis,
``bounds`` are the parameter's constraints (a value sitting on one is flagged), ``axis=GROUP`` puts
every placeholder of that group on one shared axis (``⟦ls_age | axis=lengthscales⟧``). A name holding
``|`` or ``⟧`` is quoted: ``⟦"odd|name"⟧`` (``\\"`` and ``\\\\`` escape inside quotes).

Lines whose first non-space characters are ``#`` or ``//`` are comments, as is the tail of a line
from a ``#`` or ``//`` that follows a space outside quotes; they are shown dimmer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sitegen.errors import closest

OPEN, CLOSE = "\u27e6", "\u27e7"
SETTINGS = ("log", "linear", "label", "range", "bounds", "axis")


class TemplateError(ValueError):
    """A template the author must fix; ``line`` is 1-based within the template text."""

    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


@dataclass
class Placeholder:
    name: str
    line: int                      # 1-based line within the template
    col: int                       # 1-based column of the opening bracket
    log: bool | None = None        # None: not said here (directive options decide)
    label: str | None = None
    range: tuple[float | None, float | None] | None = None
    bounds: tuple[float | None, float | None] | None = None
    axis: str | None = None        # a group name: placeholders with the same one share one axis

    @property
    def shown(self) -> str:
        return self.label or self.name


@dataclass
class Text:
    text: str
    comment: bool = False


@dataclass
class Line:
    number: int                         # 1-based
    indent: int                         # leading spaces (tabs count as 4)
    parts: list = field(default_factory=list)  # Text and Placeholder, in order


@dataclass
class Template:
    lines: list[Line]

    @property
    def placeholders(self) -> list[Placeholder]:
        return [p for line in self.lines for p in line.parts if isinstance(p, Placeholder)]


def parse_interval(text: str, what: str) -> tuple[float | None, float | None]:
    """``lo:hi`` with either side optional (``1e-4:`` is a lower bound only)."""
    if ":" not in text:
        raise ValueError(f"{what} '{text}' must be written lo:hi (either side may be empty), e.g. 0.01:100")
    lo_s, hi_s = text.split(":", 1)
    try:
        lo = float(lo_s) if lo_s.strip() else None
        hi = float(hi_s) if hi_s.strip() else None
    except ValueError:
        raise ValueError(f"{what} '{text}' must be two numbers lo:hi, e.g. 0.01:100") from None
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"{what} '{text}': the lower end must be below the upper end")
    return lo, hi


#: placeholders in one template: each is drawn as a plot with its data, so a page stays a page
MAX_PLACEHOLDERS = 2000


def parse(text: str) -> Template:
    """Parse template text; raises :class:`TemplateError` at the first mistake."""
    lines = []
    count = 0
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        raw = raw.replace("\t", "    ")
        indent = len(raw) - len(raw.lstrip(" "))
        lines.append(Line(number, indent, _parse_line(raw, number)))
        count += sum(isinstance(p, Placeholder) for p in lines[-1].parts)
        if count > MAX_PLACEHOLDERS:
            raise TemplateError(number, 1, f"more than {MAX_PLACEHOLDERS:,} placeholders in one template; "
                                           "split the model over several figures")
    while lines and not lines[-1].parts:
        lines.pop()
    return Template(lines)


def _parse_line(raw: str, number: int) -> list:
    parts: list = []
    stripped = raw.lstrip(" ")
    whole_comment = stripped.startswith("#") or stripped.startswith("//")
    comment = whole_comment
    buf: list[str] = []
    quote: str | None = None

    def flush():
        if buf:
            parts.append(Text("".join(buf), comment))
            buf.clear()

    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == OPEN:
            flush()
            placeholder, i = _parse_placeholder(raw, i, number)
            parts.append(placeholder)
            continue
        if ch == CLOSE:
            raise TemplateError(number, i + 1, f"'{CLOSE}' without an opening '{OPEN}'; "
                                               f"a placeholder is written {OPEN}name{CLOSE}")
        if not comment:
            if quote:
                if ch == "\\":
                    buf.append(raw[i:i + 2])
                    i += 2
                    continue
                if ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif (ch == "#" or raw.startswith("//", i)) and i > 0 and raw[i - 1] in " \t":
                flush()
                comment = True
        buf.append(ch)
        i += 1
    flush()
    return parts


def _parse_placeholder(raw: str, start: int, number: int) -> tuple[Placeholder, int]:
    """Parse ``⟦...⟧`` starting at ``raw[start] == OPEN``; returns the placeholder and the index after it."""
    col = start + 1
    i = start + 1
    fields: list[str] = []
    cur: list[str] = []
    quoted_name: str | None = None
    in_quote = False
    while True:
        if i >= len(raw):
            what = "a quoted name" if in_quote else "a placeholder"
            raise TemplateError(number, col, f"{what} opened here is never closed; end it with '{CLOSE}' "
                                             "on the same line")
        ch = raw[i]
        if in_quote:
            if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in "\"\\":
                cur.append(raw[i + 1])
                i += 2
                continue
            if ch == '"':
                in_quote = False
                if not fields and quoted_name is None:
                    quoted_name = "".join(cur)
                    cur = ["\0quoted"]
                i += 1
                continue
            cur.append(ch)
            i += 1
            continue
        if ch == '"':
            if not fields and not "".join(cur).strip():
                in_quote = True
                cur = []
                i += 1
                continue
            if fields:  # a quoted setting value, e.g. label="a|b"
                in_quote = True
                i += 1
                continue
        if ch == OPEN:
            raise TemplateError(number, i + 1, f"'{OPEN}' inside a placeholder; quote a name that holds "
                                               f"brackets: {OPEN}\"name\"{CLOSE}")
        if ch in "|" + CLOSE:
            fields.append("".join(cur))
            cur = []
            i += 1
            if ch == CLOSE:
                break
            continue
        cur.append(ch)
        i += 1

    name_field = fields[0]
    if quoted_name is not None:
        rest = name_field.replace("\0quoted", "", 1).strip()
        if rest:
            raise TemplateError(number, col, f"unexpected text {rest!r} after the quoted name; "
                                             "separate settings with '|'")
        name = quoted_name
    else:
        name = name_field.strip()
    if not name:
        raise TemplateError(number, col, f"empty placeholder; write the parameter's name: {OPEN}lengthscale{CLOSE}")
    ph = Placeholder(name=name, line=number, col=col)
    for setting in fields[1:]:
        _apply_setting(ph, setting.strip(), number, col)
    return ph, i


def _apply_setting(ph: Placeholder, setting: str, number: int, col: int) -> None:
    if not setting:
        raise TemplateError(number, col, f"empty setting in {OPEN}{ph.name} | ...{CLOSE}; remove the extra '|'")
    key, _, value = setting.partition("=")
    key, value = key.strip(), value.strip()
    if key not in SETTINGS:
        near = closest(key, SETTINGS)
        raise TemplateError(number, col, f"unknown placeholder setting '{key}' for '{ph.name}'"
                                         + (f"; did you mean '{near[0]}'?" if near else "")
                                         + f" (settings: {', '.join(SETTINGS)})")
    if key in ("log", "linear"):
        if value:
            raise TemplateError(number, col, f"'{key}' takes no value; write just '| {key}'")
        ph.log = key == "log"
    elif key == "label":
        if not value:
            raise TemplateError(number, col, "label= needs a value, e.g. label=ℓ₁")
        ph.label = value
    elif key == "axis":
        if not value:
            raise TemplateError(number, col, "axis= needs a group name, e.g. axis=lengthscales (placeholders "
                                             "with the same name share one axis)")
        ph.axis = value
    else:
        try:
            interval = parse_interval(value, key)
        except ValueError as exc:
            raise TemplateError(number, col, f"{exc} (placeholder '{ph.name}')") from None
        setattr(ph, key, interval)


def quote_name(name: str) -> str:
    """How ``name`` must be written inside a placeholder (quoted when it holds ``|``, ``⟧``, ``"``...)."""
    if any(c in name for c in '|"\\' + OPEN + CLOSE) or name != name.strip():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name
