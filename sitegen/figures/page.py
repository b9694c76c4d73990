"""What figure directives share: reading their options, numbering captions, wrapping a figure.

Option values arrive as strings from the post; the readers here turn them into values or raise
:class:`OptionError` with a message that says what to write instead.
"""
from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from sitegen.errors import closest
from sitegen.figures.svg import esc, json_island
from sitegen.figures.template import parse_interval

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.context import PageContext
    from sitegen.directives import Call

TRUE = {"", "yes", "true", "on", "1"}
FALSE = {"no", "false", "off", "0"}


class OptionError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def check_options(call: "Call", known: tuple[str, ...], ctx: "PageContext") -> bool:
    """Report options the directive does not know (with did-you-mean). False if any."""
    ok = True
    for key in call.options:
        if key not in known:
            near = closest(key, known)
            ctx.error(call.option_line(key), f"{call.name}: unknown option ':{key}:'"
                      + (f"; did you mean ':{near[0]}:'?" if near else f" (options: {', '.join(known)})"))
            ok = False
    return ok


def flag(call: "Call", key: str, default: bool = False) -> bool:
    if key not in call.options:
        return default
    v = call.options[key].strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise OptionError(key, f":{key}: takes yes or no, not {call.options[key]!r}")


def items(value: str) -> list[str]:
    """A comma-separated list (spaces around items ignored; empty items dropped)."""
    return [x.strip() for x in value.split(",") if x.strip()]


def mapping(key: str, value: str) -> dict[str, str]:
    """``a=b, c=d`` (also separated by ';')."""
    out = {}
    for part in re.split(r"[;,]", value):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise OptionError(key, f":{key}: expects name=value pairs separated by commas, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def intervals(key: str, value: str) -> dict[str, tuple]:
    """``name=lo:hi, other=lo:`` -> {name: (lo, hi)}."""
    out = {}
    for name, text in mapping(key, value).items():
        try:
            out[name] = parse_interval(text, f":{key}: {name}")
        except ValueError as exc:
            raise OptionError(key, str(exc)) from None
    return out


def integer(call: "Call", key: str, default: int | None, lo: int = 1, hi: int = 10**9) -> int | None:
    if key not in call.options:
        return default
    try:
        v = int(call.options[key].strip())
    except ValueError:
        raise OptionError(key, f":{key}: takes a whole number, not {call.options[key]!r}") from None
    if not lo <= v <= hi:
        raise OptionError(key, f":{key}: must be between {lo} and {hi}, not {v}")
    return v


def render_inline(text: str, ctx: "PageContext", line: int | None = None) -> str:
    """A caption as HTML: the core's inline Markdown (math, roles, {ref}) when it is there, else escaped
    text with `code`, *emphasis* and **strong**."""
    fn = None
    try:
        from sitegen.markdown import render_inline as fn  # the core's; optional so figures work alone
    except ImportError:  # pragma: no cover - only while the core is unfinished
        pass
    if fn is not None:
        return fn(text, ctx, line or 1)
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", out)
    return out


def figure(ctx: "PageContext", call: "Call", kind: str, css: str, body: str, island: dict | None,
           caption: str | None) -> str:
    """Number the figure, register its label, and wrap ``body`` in ``<figure>`` with its caption."""
    number = ctx.next_number(kind)
    label = (call.options.get("label") or "").strip()
    base = label if label else f"{kind.lower()}-{number}"
    anchor = ctx.unique_id(re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-") or f"{kind.lower()}-{number}")
    if label:
        ctx.add_label(label, kind, number, anchor, call.option_line("label"))
    # a figure in a notebook cell stands alone: no "Visualization 1." that nothing refers to
    numbered = not ctx.meta.get("unnumbered_figures")
    cap = f'<span class="sg-fignum">{esc(kind)} {number}.</span>' if numbered else ""
    if caption:
        cap += (" " if cap else "") + render_inline(caption, ctx, call.option_line("caption"))
    data = json_island(island) if island is not None else ""
    inner = f"{body}{data}" + (f"<figcaption>{cap}</figcaption>" if cap else "")
    # what the preview compares to tell a redrawn figure from an unchanged one
    rev = hashlib.sha256(inner.encode()).hexdigest()[:12]
    return (f'<figure class="sg-figure {css}" id="{esc(anchor)}" data-sg-figure="{esc(kind.lower())}" '
            f'data-sg-rev="{rev}">{inner}</figure>\n')


def error_box(message: str) -> str:
    """What stands in for a figure that could not be drawn (the build reports the error too)."""
    return f'<p class="sg-figure-error">Figure not drawn: {esc(message)}</p>\n'


def run_note(run, last_step) -> str:
    """The preview's line above a figure whose experiment is still training, or stopped before the end
    (``run``: a :class:`sitegen.live.RunState`); empty for a finished table."""
    if run is None or not run.live:
        return ""
    at = f"step {last_step:,}" if isinstance(last_step, int) else "its last complete step"
    if run.state == "stopped":
        who = f" (process {run.pid} is gone)" if run.pid else ""
        return (f'<p class="sg-run-note sg-run-stopped" role="status" data-parts="{run.parts}">The run stopped at {esc(at)} before it '
                f"finished{esc(who)}: the figure shows every step up to there. Run the experiment again to "
                "finish the table.</p>")
    return (f'<p class="sg-run-note sg-run-live" role="status" data-parts="{run.parts}"><span class="sg-run-dot" aria-hidden="true">'
            f"</span>Training: shown up to {esc(at)}; the figure grows as the run writes more.</p>")


def waiting(ctx: "PageContext", call: "Call", kind: str, css: str, message: str) -> str:
    """The figure whose experiment has started but written nothing yet (preview only): numbered and
    captioned like the figure it becomes, so the preview can swap the drawing in when rows arrive."""
    ctx.warn(call.line, message)
    ctx.use_script("figures.js")  # the page keeps the scripts it will need once the drawing arrives
    ctx.meta["has_figures"] = True
    body = f'<p class="sg-run-note sg-run-waiting" role="status">{esc(message)}</p>'
    return figure(ctx, call, kind, f"{css} sg-waiting", body, None, call.options.get("caption"))
