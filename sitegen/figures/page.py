"""What figure directives share: numbering captions, wrapping a figure, the boxes that stand in for one.

The directives read their options (:mod:`sitegen.directives.options`) and pass what this module
needs as a :class:`Place`; nothing here knows a directive's syntax.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sitegen.figures.svg import esc, json_island

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.context import PageContext

@dataclass(frozen=True)
class Place:
    """Where in a post a figure was asked for: its label and caption, and the 1-based lines to blame."""

    line: int = 1
    label: str = ""
    label_line: int | None = None
    caption: str | None = None
    caption_line: int | None = None


def render_inline(text: str, ctx: "PageContext", line: int | None = None) -> str:
    """A caption as HTML: the page's inline Markdown (math, roles, {ref}) through ``ctx`` when it has a
    renderer, else escaped text with `code`, *emphasis* and **strong**."""
    if getattr(ctx, "markup", None) is not None:
        return ctx.render_inline(text, line or 1)
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", out)
    return out


def figure(ctx: "PageContext", place: Place, kind: str, css: str, body: str, island: dict | None) -> str:
    """Number the figure, register its label, and wrap ``body`` in ``<figure>`` with its caption."""
    number = ctx.next_number(kind)
    label, caption = place.label, place.caption
    base = label if label else f"{kind.lower()}-{number}"
    anchor = ctx.unique_id(re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-") or f"{kind.lower()}-{number}")
    if label:
        ctx.add_label(label, kind, number, anchor, place.label_line or place.line)
    # a figure in a notebook cell stands alone: no "Visualization 1." that nothing refers to
    numbered = not ctx.meta.get("unnumbered_figures")
    cap = f'<span class="sg-fignum">{esc(kind)} {number}.</span>' if numbered else ""
    if caption:
        cap += (" " if cap else "") + render_inline(caption, ctx, place.caption_line or place.line)
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


def waiting(ctx: "PageContext", place: Place, kind: str, css: str, message: str) -> str:
    """The figure whose experiment has started but written nothing yet (preview only): numbered and
    captioned like the figure it becomes, so the preview can swap the drawing in when rows arrive."""
    ctx.warn(place.line, message)
    ctx.use_script("figures.js")  # the page keeps the scripts it will need once the drawing arrives
    ctx.meta["has_figures"] = True
    body = f'<p class="sg-run-note sg-run-waiting" role="status">{esc(message)}</p>'
    return figure(ctx, place, kind, f"{css} sg-waiting", body, None)
