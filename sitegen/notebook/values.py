"""New values for a figure the browser already holds: when a table changes only its values, the cell gets
what the server drew for them, not the drawing again.

A drawing of an expression figure splits into its *shape* (everything the values do not decide: the
template's markup, the rows and dots, the steps, the caption, the warnings) and its *values* (each
dot's position, each plot's axis ends and printed scale, its zero line, its description for screen
readers, the tooltips' numbers and the animation frames). Two drawings with the same shape differ only
in their values, so the message that turns one into the other carries exactly those, taken from the new
drawing as the server made it: the browser computes nothing, and what it shows after applying the
message is what a full redraw of the new table would show. Any other difference (a new run, another
step, a log axis, a new warning, a bar that appears) means another shape: the figure is redrawn.

Dots travel as one uint16 per dot (``cx`` is drawn to a tenth of a pixel: ``cx * 10``; 65535 for a dot
with no value, drawn hidden), the frames as the figure's own quantised animation data.
"""
from __future__ import annotations

import base64
import html as htmlmod
import json
import re
from dataclasses import dataclass, field

from sitegen.figures.svg import num

HIDDEN = 0xFFFF

_PARTS = re.compile(
    r' data-sg-rev="(?P<rev>[^"]*)"'
    r'|(?P<svg><svg class="sg-strip"[^>]*?) aria-label="(?P<label>[^"]*)"><title>[^<]*</title>'
    r'|<line class="sg-zero" x1="(?P<zero>[^"]*)" x2="[^"]*"[^>]*/>'
    r'|(?P<lo_tag><text class="sg-lo"[^>]*>)(?P<lo>[^<]*)</text>'
    r'|(?P<hi_tag><text class="sg-hi"[^>]*>)(?P<hi>[^<]*)</text>'
    r'|<circle cx="(?P<cx>[^"]*)"(?P<circle> cy="[^"]*" r="[^"]*")(?P<hidden> visibility="hidden")?/>'
    r'|<rect class="sg-bar" x="(?P<bar_x>[^"]*)"(?P<bar_y> y="[^"]*") width="(?P<bar_w>[^"]*)"'
    r'|(?P<val_tag><text class="sg-val"[^>]*>)(?P<val>[^<]*)</text>'
    r'|<script type="application/json" class="sg-data">(?P<island>.*?)</script>', re.S)


@dataclass
class Parts:
    """One drawing split into its shape (a string and the island's shape) and its values."""

    shape: str
    island_shape: dict
    problems: list
    rev: str = ""
    labels: list[str] = field(default_factory=list)
    axes: list[list] = field(default_factory=list)      # per plot: [lo, hi, lo text, hi text, zero x | None]
    bars: list[list] = field(default_factory=list)      # per plot of one value: [x, width, printed value]
    x: list[int] = field(default_factory=list)          # per dot: cx * 10, or HIDDEN
    final: list = field(default_factory=list)
    data: str | None = None


def split(drawn) -> Parts | None:
    """``drawn`` (a :class:`~sitegen.notebook.draw.Drawn` of an expression) as shape and values; None
    when it cannot be split (no figure, no island, a dot placed off the tenth-pixel grid)."""
    if not drawn.ok or not drawn.island or drawn.island.get("kind") != "expression":
        return None
    parts = Parts("", {}, [(p.level, p.message) for p in drawn.problems])
    strips: list[dict] = []
    bad = []

    def take(m: re.Match) -> str:
        if m.group("rev") is not None:
            parts.rev = m.group("rev")
            return ' data-sg-rev=""'
        if m.group("svg") is not None:
            strips.append({"label": htmlmod.unescape(m.group("label")), "zero": None, "lo": "", "hi": "",
                           "bar": None, "val": None})
            return m.group("svg") + ">"
        if not strips and m.group("island") is None:
            bad.append(m.group(0))
            return m.group(0)
        if m.group("zero") is not None:
            strips[-1]["zero"] = m.group("zero")
            return ""
        if m.group("lo_tag") is not None:
            strips[-1]["lo"] = htmlmod.unescape(m.group("lo"))
            return m.group("lo_tag") + "</text>"
        if m.group("hi_tag") is not None:
            strips[-1]["hi"] = htmlmod.unescape(m.group("hi"))
            return m.group("hi_tag") + "</text>"
        if m.group("cx") is not None:
            if m.group("hidden"):
                parts.x.append(HIDDEN)
            else:
                code = round(float(m.group("cx")) * 10)
                if not 0 <= code < HIDDEN or num(code / 10) != m.group("cx"):
                    bad.append(m.group(0))
                parts.x.append(code)
            return "<circle" + m.group("circle") + "/>"
        if m.group("bar_x") is not None:
            strips[-1]["bar"] = [m.group("bar_x"), m.group("bar_w")]
            return '<rect class="sg-bar"' + m.group("bar_y")
        if m.group("val_tag") is not None:
            strips[-1]["val"] = htmlmod.unescape(m.group("val"))
            return m.group("val_tag") + "</text>"
        island = json.loads(m.group("island"))
        parts.final = island.pop("final", [])
        parts.data = island.pop("data", None)
        lohi = []
        for ph in island.get("ph", []):
            lohi.append([ph.pop("lo", None), ph.pop("hi", None)])
        parts.island_shape = island
        parts.axes = lohi
        return "<island/>"

    parts.shape = _PARTS.sub(take, drawn.html)
    dots = sum(len(r) for r in parts.island_shape.get("runs", [])) * len(strips)
    if bad or len(strips) != len(parts.axes) or len(parts.x) != dots:
        return None  # markup we did not expect (raw SVG in a caption?): redraw rather than guess
    for i, s in enumerate(strips):
        parts.axes[i] += [s["lo"], s["hi"], s["zero"]]
        parts.labels.append(s["label"])
        if s["bar"] is not None or s["val"] is not None:
            parts.bars.append([*(s["bar"] or [None, None]), s["val"]])
    return parts


def message(old: Parts | None, new: Parts | None) -> dict | None:
    """What turns the browser's ``old`` drawing into ``new``: a dict to send, ``{}`` when they are the
    same, None when their shapes differ (the figure must be redrawn)."""
    if old is None or new is None:
        return None
    if (old.shape != new.shape or old.island_shape != new.island_shape or old.problems != new.problems
            or len(old.x) != len(new.x) or len(old.bars) != len(new.bars)):
        return None
    if old.rev == new.rev:
        return {}
    import numpy as np

    out: dict = {"kind": "values", "from": old.rev, "rev": new.rev,
                 "x": base64.b64encode(np.asarray(new.x, dtype="<u2").tobytes()).decode("ascii"),
                 "final": new.final}
    if new.axes != old.axes:
        out["axes"] = new.axes
    if new.labels != old.labels:
        out["labels"] = [b if a != b else None for a, b in zip(old.labels, new.labels)]
    if new.bars != old.bars:
        out["bars"] = new.bars
    if new.data != old.data:
        out["data"] = new.data
    return out
