"""The static picture of a figure: one SVG image for outputs a notebook does not trust.

JupyterLab and Notebook 7 sanitise untrusted outputs (a reopened notebook), removing inline SVG, styles
and scripts but keeping images; this picture, laid out from the figure's HTML, is what they show.
"""
from __future__ import annotations

import html as htmllib
import math
import re

from sitegen.figures.svg import esc

CHAR_W = 7.8      # px per character of 13 px monospace text (0.6 em)
FONT = 13
LINE_H = 22
PAD = 10
_TOKEN = re.compile(r'(<svg\b.*?</svg>)|<span class="sg-comment">(.*?)</span>|(<span class="sg-badge".*?</span></span>)'
                    r'|<span class="sg-sr">.*?</span>', re.S)


def _text_of(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _tokens(fragment: str) -> list[tuple]:
    """HTML of one line of a figure -> ('text'|'comment', str) / ('svg', markup, w, h) / ('badge',)."""
    out, pos = [], 0
    for m in _TOKEN.finditer(fragment):
        if m.start() > pos:
            out.append(("text", _text_of(fragment[pos:m.start()])))
        if m.group(1):
            svg = m.group(1)
            w = re.search(r'\bwidth="([\d.]+)"', svg)
            h = re.search(r'\bheight="([\d.]+)"', svg)
            out.append(("svg", svg, float(w.group(1)) if w else 100.0, float(h.group(1)) if h else 20.0))
        elif m.group(2) is not None:
            out.append(("comment", _text_of(m.group(2))))
        elif m.group(3):
            out.append(("badge",))
        pos = m.end()
    if pos < len(fragment):
        out.append(("text", _text_of(fragment[pos:])))
    return out


def _fmt(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def picture(fig_html: str) -> tuple[str, int, int]:
    """The figure as one standalone SVG: the strips (or chart) the server drew, laid out with the
    template's text in monospace cells. No CSS, no script, so it survives any sanitiser as an image."""
    rows: list[list[tuple]] = []
    step = re.search(r'<p class="sg-step">(.*?)</p>', fig_html, re.S)
    if step:
        rows.append([("text", _text_of(step.group(1)))])
    pre = re.search(r'<pre class="sg-expr">(.*?)</pre>', fig_html, re.S)
    if pre:
        for line in re.findall(r'<span class="sg-line[^"]*">(.*?)\n</span>', pre.group(1), re.S):
            rows.append(_tokens(line))
        key = re.search(r'<p class="sg-key">(.*?)</p>', fig_html, re.S)
        if key:
            rows.append(_tokens(key.group(1)))
    else:
        chart_svg = re.search(r'<svg class="sg-chart-svg".*?</svg>', fig_html, re.S)
        if chart_svg:
            rows.append(_tokens(chart_svg.group(0)))
        legend = re.search(r'<div class="sg-legend">(.*?)</div>', fig_html, re.S)
        if legend:
            rows.append(_tokens(re.sub(r"</li>", " </li>", legend.group(1))))
    caption = re.search(r"<figcaption>(.*?)</figcaption>", fig_html, re.S)
    if caption:
        rows.append([("text", _text_of(caption.group(1)))])

    body, y, width = [], PAD, 0.0
    for row in rows:
        h = max([LINE_H] + [t[3] + 4 for t in row if t[0] == "svg"])
        x = float(PAD)
        base = y + h / 2 + FONT * 0.35
        for t in row:
            if t[0] in ("text", "comment"):
                text = t[1].replace("\n", " ")
                lead = len(text) - len(text.lstrip(" "))
                x += lead * CHAR_W
                core = text.strip(" ")
                if core:
                    extra = ' fill="#666666" font-style="italic"' if t[0] == "comment" else ""
                    body.append(f'<text x="{_fmt(x)}" y="{_fmt(base)}" textLength="{_fmt(len(core) * CHAR_W)}" '
                                f'lengthAdjust="spacingAndGlyphs"{extra}>{esc(core)}</text>')
                x += (len(text) - lead) * CHAR_W
            elif t[0] == "svg":
                _, svg, w, sh = t
                body.append(svg.replace("<svg ", f'<svg x="{_fmt(x)}" y="{_fmt(y + (h - sh) / 2)}" ', 1))
                x += w
            else:
                cy = y + h / 2 - 5
                body.append(f'<circle cx="{_fmt(x + 6)}" cy="{_fmt(cy)}" r="6" fill="#A63D0A"/>'
                            f'<text x="{_fmt(x + 6)}" y="{_fmt(cy + 4)}" text-anchor="middle" fill="#ffffff" '
                            f'font-size="10" font-weight="bold">!</text>')
                x += 13
        width = max(width, x)
        y += h
    w, h = int(math.ceil(width + PAD)), int(math.ceil(y + PAD))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}" fill="#1a1a1a" '
           f'color="#1a1a1a"><rect width="{w}" height="{h}" rx="6" fill="#ffffff"/>{"".join(body)}</svg>')
    return svg, w, h


def _alt(fig_html: str) -> str:
    labels = re.findall(r'<svg class="sg-(?:strip|chart-svg)"[^>]*\baria-label="([^"]*)"', fig_html)
    text = "; ".join(htmllib.unescape(x) for x in labels) or "figure"
    return text[:1500] + ("…" if len(text) > 1500 else "")
