"""Small still pictures of a page's figures, for the index and the feed.

A figure on its page is server-drawn SVG at the final training step plus data for the runtime; at
seed scale that is megabytes of circles. The index wants a glance at the first figure and the feed a
light picture of each one, so this module reads the figures back out of the page's HTML and redraws
them small: an expression figure as a few of its inline plots, stacked, each row's dots thinned to a
fixed number; a chart as its bands and lines, without ticks or text. Nothing here runs in the browser.
"""
from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass, field

FIGURE = re.compile(r'<figure class="sg-figure ([^"]*)" id="([^"]*)"[^>]*>(.*?)</figure>', re.S)
STRIP = re.compile(r'<svg class="sg-strip"[^>]*\swidth="([\d.]+)" height="([\d.]+)"[^>]*>(.*?)</svg>', re.S)
GROUP = re.compile(r'<g class="(sg-e\d+)"[^>]*?fill="(#[0-9A-Fa-f]{3,8})"[^>]*>(.*?)</g>', re.S)
CIRCLE = re.compile(r'<circle cx="([-\d.]+)" cy="([-\d.]+)"')
CHART = re.compile(r'<svg class="sg-chart-svg"[^>]*viewBox="([-\d. ]+)"[^>]*>(.*?)</svg>', re.S)
PLOT_BOX = re.compile(r'<clipPath[^>]*><rect x="([-\d.]+)" y="([-\d.]+)" width="([\d.]+)" height="([\d.]+)"')
PATH = re.compile(r'<path class="(sg-(?:band|trace|run)) (sg-s\d+)" d="([^"]*)"([^>]*)/?>')
ATTR = re.compile(r'\s(fill|fill-opacity|stroke|stroke-width|stroke-dasharray|stroke-opacity)="([^"]*)"')
CAPTION = re.compile(r"<figcaption>(.*?)</figcaption>", re.S)
PAIR = re.compile(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")

MAX_STRIPS = 4
DOTS_PER_ROW = 24


@dataclass
class Strip:
    width: float
    height: float
    rows: list[tuple[str, str, list[tuple[float, float]]]] = field(default_factory=list)  # class, colour, dots


@dataclass
class Figure:
    id: str
    kind: str                      # "expression" or "chart"
    caption: str                   # plain text, "Visualization 1. The GP's kernel ..."
    strips: list[Strip] = field(default_factory=list)
    view: tuple[float, float, float, float] | None = None   # a chart's plot area
    paths: list[tuple[str, str, str, dict]] = field(default_factory=list)  # kind, series class, d, paint


def figures(page_html: str) -> list[Figure]:
    """Every figure of a rendered page that can be drawn small, in page order."""
    out = []
    for m in FIGURE.finditer(page_html):
        classes, fid, body = m.group(1).split(), htmllib.unescape(m.group(2)), m.group(3)
        cap = CAPTION.search(body)
        caption = " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", cap.group(1))).split()) if cap else ""
        if "sg-expression" in classes:
            fig = Figure(fid, "expression", caption)
            for sm in STRIP.finditer(body):
                strip = Strip(float(sm.group(1)), float(sm.group(2)))
                for gm in GROUP.finditer(sm.group(3)):
                    dots = [(float(x), float(y)) for x, y in CIRCLE.findall(gm.group(3))]
                    if dots:
                        strip.rows.append((gm.group(1), gm.group(2), _thin(dots, DOTS_PER_ROW)))
                if strip.rows:
                    fig.strips.append(strip)
                if len(fig.strips) == MAX_STRIPS:
                    break
            if fig.strips:
                out.append(fig)
        elif "sg-chart" in classes:
            cm = CHART.search(body)
            if not cm:
                continue
            fig = Figure(fid, "chart", caption)
            box = PLOT_BOX.search(cm.group(2))
            if box:
                fig.view = tuple(float(v) for v in box.groups())
            else:
                fig.view = tuple(float(v) for v in cm.group(1).split())
            for pm in PATH.finditer(cm.group(2)):
                paint = dict(ATTR.findall(pm.group(4)))
                fig.paths.append((pm.group(1), pm.group(2), pm.group(3), paint))
            if fig.paths:
                out.append(fig)
    return out


def _thin(dots: list, n: int) -> list:
    """At most ``n`` dots, spread over the row's order (every k-th), so a seed-scale row stays light."""
    if len(dots) <= n:
        return dots
    step = len(dots) / n
    return [dots[int(i * step)] for i in range(n)]


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def svg(fig: Figure, width: int = 240, height: int = 120, standalone: bool = False) -> str:
    """The figure drawn ``width`` x ``height``. Inline (``standalone=False``) it is decorative
    (aria-hidden; the link beside it names the post) and takes its colours from the page's palette
    classes; standalone (an image file for the feed) it carries its own background and colours."""
    parts: list[str] = []
    if standalone:
        parts.append(f'<rect width="{width}" height="{height}" fill="#fdfdfc"/>')
    if fig.kind == "expression":
        parts += _strips(fig, width, height)
    else:
        parts += _chart(fig, width, height, standalone)
    body = "".join(parts)
    if standalone:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" role="img"><title>{htmllib.escape(fig.caption or fig.id)}</title>'
                f"{body}</svg>\n")
    return (f'<svg class="post-thumb" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'aria-hidden="true" focusable="false">{body}</svg>')


def _strips(fig: Figure, width: int, height: int) -> list[str]:
    n = len(fig.strips)
    gap = 6
    cell_h = (height - gap * (n - 1)) / n
    out = []
    for i, strip in enumerate(fig.strips):
        top = i * (cell_h + gap)
        sx, sy = width / strip.width, cell_h / strip.height
        r = max(1.6, min(3.2, cell_h / (2.2 * max(1, len(strip.rows)))))
        out.append(f'<rect class="post-thumb-bg" x="0" y="{_num(top)}" width="{width}" height="{_num(cell_h)}" '
                   f'rx="3" fill="#888888" fill-opacity="0.13"/>')
        for cls, colour, dots in strip.rows:
            # each dot a zero-length stroke with round caps: a third of a <circle>'s bytes
            d = "".join(f"M{_num(x * sx)} {_num(top + y * sy)}h0" for x, y in dots)
            out.append(f'<path class="post-thumb-dots {cls}" d="{d}" stroke="{colour}" stroke-opacity="0.8" '
                       f'stroke-width="{_num(2 * r)}" stroke-linecap="round" fill="none"/>')
    return out


def _chart(fig: Figure, width: int, height: int, standalone: bool) -> list[str]:
    x0, y0, w, h = fig.view
    sx, sy = width / w, height / h

    def move(d: str) -> str:  # every x,y pair of the path into the thumbnail's frame
        return PAIR.sub(lambda m: f"{_num((float(m[1]) - x0) * sx)},{_num((float(m[2]) - y0) * sy)}", d)

    out = [f'<rect class="post-thumb-bg" width="{width}" height="{height}" rx="3" fill="#888888" fill-opacity="0.08"/>']
    for kind, series, d, paint in fig.paths:
        if kind == "sg-run":
            continue  # thin per-run lines: too fine to read at this size
        attrs = "".join(f' {k}="{htmllib.escape(v)}"' for k, v in paint.items() if k != "stroke-width")
        width_attr = ' stroke-width="2"' if kind == "sg-trace" else ""
        out.append(f'<path class="{kind} {series}" d="{move(d)}"{attrs}{width_attr}/>')
    return out


# -- the feed ----------------------------------------------------------------------------------------

FEED_SIZE = (480, 240)
FIGURE_ANY = re.compile(r'<figure class="sg-figure[^"]*" id="([^"]*)"[^>]*>(.*?)</figure>', re.S)


def picture_name(fig_id: str) -> str:
    """The stem of a figure's picture file beside its page (``figure-<id>.<hash>.svg``)."""
    return "figure-" + re.sub(r"[^A-Za-z0-9_-]+", "-", fig_id)


def pictures(page_html: str) -> dict[str, bytes]:
    """A still picture of each figure of a page, to write beside it: ``{stem: svg bytes}``."""
    return {picture_name(f.id): svg(f, *FEED_SIZE, standalone=True).encode() for f in figures(page_html)}


DATA_ISLAND = re.compile(r'<script type="application/json" class="sg-data"[^>]*>.*?</script>', re.S)
SIDENOTE = re.compile(r"<!--sidenote-->.*?<!--/sidenote-->", re.S)


def for_feed(page_html: str, page_url: str, files, absolute) -> str:
    """The page's HTML with each figure replaced by what a feed reader can show: its picture (a file
    beside the page, when one was drawn) linked to the figure on the page, and its caption. Feed readers
    run no scripts, so the figure's SVG of every dot and its data are only weight there; sidenotes
    would show twice (the numbered notes at the end carry the same text)."""
    page_html = SIDENOTE.sub("", DATA_ISLAND.sub("", page_html))
    names = {}
    for name in files:
        if name.startswith("figure-") and name.endswith(".svg"):
            names[name.rsplit(".", 2)[0]] = name

    def light(m: re.Match) -> str:
        fid, body = m.group(1), m.group(2)
        target = absolute(f"{page_url}#{fid}")
        cap = CAPTION.search(body)
        caption_html = cap.group(1) if cap else ""
        caption_text = " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", caption_html)).split())
        name = names.get(picture_name(htmllib.unescape(fid)))
        if name:
            w, h = FEED_SIZE
            number = re.match(r"((?:Visualization|Chart) \d+)\.", caption_text)
            alt = htmllib.escape(f"{number.group(1) if number else 'The figure'} at its last step, as a still picture",
                                 quote=True)
            shown = (f'<a href="{target}"><img src="{absolute(page_url + name)}" width="{w}" height="{h}" '
                     f'alt="{alt}"></a>')
        else:
            shown = ""
        more = f' <a href="{target}">Open the interactive figure.</a>'
        return f'<figure id="{fid}">{shown}<figcaption>{caption_html}{more}</figcaption></figure>'

    return FIGURE_ANY.sub(light, page_html)


def first_thumbnail(page_html: str) -> str:
    """The index's picture of a post: its first figure, small and decorative (the title link beside it
    names the post), or "" for a post without figures."""
    for fig in figures(page_html):
        return svg(fig, *THUMB_SIZE)
    return ""


THUMB_SIZE = (240, 120)
