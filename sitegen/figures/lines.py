"""Line charts: series as lines, optional bands (e.g. 10th-90th percentile over runs), axes, legend.

:func:`summarize` turns a table into :class:`Series` (one centre line and band per series, computed
across runs at each x); :func:`render` draws them as one ``<svg>`` plus an HTML legend. Both are
pure, so charts are tested without a page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sitegen.figures import numbers, scale
from sitegen.figures.svg import DASHES, PALETTE, attrs, esc, num

#: at most this many points per line; longer trajectories are thinned evenly (keeping both ends)
MAX_POINTS = 500
CENTRES = ("mean", "geomean", "median")


@dataclass
class Series:
    name: str
    x: list[float]
    y: list[float]
    lo: list[float] | None = None
    hi: list[float] | None = None
    runs: list[tuple[list[float], list[float]]] = field(default_factory=list)  # thin lines, one per run
    n: list[int] | None = None   # how many runs each point summarises


@dataclass
class ChartSpec:
    logx: bool = False
    logy: bool = False
    xlabel: str = ""
    ylabel: str = ""
    xlim: tuple | None = None
    ylim: tuple | None = None
    width: int = 640
    height: int = 320
    markers: bool = False
    series_title: str = ""


def _thin(n: int):
    import numpy as np

    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.rint(np.linspace(0, n - 1, MAX_POINTS)).astype(int))


def summarize(df, x: str, y: str, series: str | None, run: str | None, centre: str = "mean",
              band: tuple[float, float] | None = (10.0, 90.0), each_run: bool = False,
              series_order: list[str] | None = None) -> tuple[list[Series], list[str]]:
    """One :class:`Series` per value of ``series``: at each x the ``centre`` of y over the rows there
    (runs) and, when ``band`` is given and a point has more than one row, its percentiles.
    Returns the series and notes for the author (values dropped and why)."""
    import numpy as np
    import pandas as pd

    notes: list[str] = []
    data = pd.DataFrame({"x": df[x].to_numpy(dtype="float64"), "y": df[y].to_numpy(dtype="float64")})
    data["s"] = df[series].astype(str).to_numpy() if series else ""
    if run:
        data["r"] = df[run].astype(str).to_numpy()
    bad = ~(np.isfinite(data["x"]) & np.isfinite(data["y"]))
    if bad.any():
        notes.append(f"{int(bad.sum())} row(s) with NaN or infinite x/y left out")
        data = data[~bad]
    if centre == "geomean" and (data["y"] <= 0).any():
        notes.append(f"{int((data['y'] <= 0).sum())} row(s) with y <= 0 left out (a geometric mean needs "
                     "positive values)")
        data = data[data["y"] > 0]
    names = list(dict.fromkeys(data["s"]))
    if series_order:
        names = [s for s in series_order if s in set(names)] + [s for s in names if s not in set(series_order)]
    try:  # numeric series names (dataset sizes) in numeric order
        if not series_order:
            names = sorted(names, key=float)
    except ValueError:
        pass
    out = []
    for name in names:
        part = data[data["s"] == name]
        groups = part.groupby("x", sort=True)["y"]
        xs = np.array(list(groups.groups.keys()), dtype="float64")
        xs.sort()
        if centre == "geomean":
            ys = np.exp(part.assign(ly=np.log(part["y"])).groupby("x", sort=True)["ly"].mean()).to_numpy()
        elif centre == "median":
            ys = groups.median().to_numpy()
        else:
            ys = groups.mean().to_numpy()
        counts = groups.size().to_numpy()
        lo = hi = None
        if band is not None and counts.max() > 1:
            lo = groups.quantile(band[0] / 100).to_numpy()
            hi = groups.quantile(band[1] / 100).to_numpy()
        keep = _thin(len(xs))
        s = Series(name, xs[keep].tolist(), ys[keep].tolist(),
                   lo[keep].tolist() if lo is not None else None,
                   hi[keep].tolist() if hi is not None else None,
                   n=counts[keep].tolist())
        if each_run and run:
            for _, rp in part.groupby("r", sort=False):
                rp = rp.sort_values("x")
                k = _thin(len(rp))
                s.runs.append((rp["x"].to_numpy()[k].tolist(), rp["y"].to_numpy()[k].tolist()))
        out.append(s)
    return out, notes


def data_ticks(xs: list[float], sx: "scale.Scale", most: int = 10, char_px: float = 6.6) -> list[float] | None:
    """The data's own x values as ticks on a log axis when there are few (sizes such as 16, 64, 256,
    1024 read better than 20, 50, 100): None when there are too many; values whose labels would
    collide are skipped, keeping the first and the last."""
    if not 2 <= len(xs) <= most:
        return None
    labels = numbers.format_ticks(xs, log=True)
    room = lambda i: len(labels[i]) * char_px / 2 + 4  # noqa: E731 - half a label and a gap
    keep = [0]
    for i in range(1, len(xs)):
        if sx(xs[i]) - sx(xs[keep[-1]]) >= room(i) + room(keep[-1]):
            keep.append(i)
    last = len(xs) - 1
    if keep[-1] != last:
        while len(keep) > 1 and sx(xs[last]) - sx(xs[keep[-1]]) < room(last) + room(keep[-1]):
            keep.pop()
        keep.append(last)
    return [xs[i] for i in keep] if len(keep) >= 2 else None


def render(series: list[Series], spec: ChartSpec, uid: str, label: str = "") -> tuple[str, dict, list[str]]:
    """``(svg + legend html, data for the runtime, notes)`` for ``series``."""
    notes: list[str] = []
    W, H = spec.width, spec.height
    left, right, top, bottom = 64, 16, 14, 46
    x0, x1, y0, y1 = left, W - right, H - bottom, top

    def positive(vals, log):
        return [v for v in vals if v is not None and math.isfinite(v) and (v > 0 or not log)]

    xs_all, ys_all = [], []
    for s in series:
        xs_all += positive(s.x, spec.logx)
        for arr in (s.y, s.lo or [], s.hi or []):
            ys_all += positive(arr, spec.logy)
        for rx, ry in s.runs:
            ys_all += positive(ry, spec.logy)
    for axis, log, vals, arrs in (("x", spec.logx, xs_all, [v for s in series for v in s.x]),
                                  ("y", spec.logy, ys_all, [v for s in series for v in s.y])):
        if log and len(vals) < len([v for v in arrs if v is not None and math.isfinite(v)]):
            notes.append(f"values <= 0 cannot be shown on the log {axis} axis and were left out")
    xlo, xhi = scale.domain([min(xs_all), max(xs_all)] if xs_all else [], spec.logx, spec.xlim)
    ylo, yhi = scale.domain([min(ys_all), max(ys_all)] if ys_all else [], spec.logy, spec.ylim)
    if not spec.ylim and ys_all:  # a little air above and below the lines
        if spec.logy:
            f = (yhi / ylo) ** 0.04
            ylo, yhi = ylo / f, yhi * f
        else:
            pad = (yhi - ylo) * 0.04
            ylo, yhi = ylo - pad, yhi + pad
    sx = scale.Scale(xlo, xhi, x0, x1, spec.logx)
    sy = scale.Scale(ylo, yhi, y0, y1, spec.logy)

    def ok_x(v):
        return v is not None and math.isfinite(v) and (v > 0 or not spec.logx)

    def ok_y(v):
        return v is not None and math.isfinite(v) and (v > 0 or not spec.logy)

    def path(xs, ys):
        d, pen = [], False
        for xv, yv in zip(xs, ys):
            if ok_x(xv) and ok_y(yv):
                d.append(("L" if pen else "M") + num(sx(xv)) + "," + num(sy(yv)))
                pen = True
            else:
                pen = False
        return "".join(d)

    summary = f"Line chart of {spec.ylabel or 'y'} against {spec.xlabel or 'x'}"
    summary += f" ({'log' if spec.logx else 'linear'} x axis, {'log' if spec.logy else 'linear'} y axis)"
    if series and any(s.name for s in series):
        summary += ": " + ", ".join(s.name for s in series[:12]) + (" and more" if len(series) > 12 else "")
    out = [f'<svg {attrs(class_="sg-chart-svg", width=W, height=H, viewBox=f"0 0 {W} {H}", role="img", aria_label=summary)}>',
           f"<title>{esc(summary)}</title>",
           f'<defs><clipPath id="{esc(uid)}-clip"><rect {attrs(x=x0, y=y1, width=x1 - x0, height=y0 - y1)}/></clipPath></defs>']
    # grid and ticks
    out.append(f'<g {attrs(class_="sg-grid", stroke="#888888", stroke_opacity="0.25", stroke_width=1)}>')
    xt = data_ticks(sorted({v for s in series for v in s.x if ok_x(v)}), sx) if spec.logx else None
    xt = xt or [v for v in sx.ticks(6) if xlo <= v <= xhi]
    yt = [v for v in sy.ticks(5) if ylo <= v <= yhi]
    for v in xt:
        out.append(f'<line x1="{num(sx(v))}" x2="{num(sx(v))}" y1="{y1}" y2="{y0}"/>')
    for v in yt:
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{num(sy(v))}" y2="{num(sy(v))}"/>')
    out.append("</g>")
    out.append(f'<g {attrs(class_="sg-axis", stroke="currentColor", stroke_width=1)}>'
               f'<line x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/><line x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}"/></g>')
    out.append(f'<g {attrs(class_="sg-ticks", fill="currentColor", font_size=11)}>')
    for v, text in zip(xt, numbers.format_ticks(xt, spec.logx)):
        out.append(f'<text x="{num(sx(v))}" y="{y0 + 16}" text-anchor="middle">{esc(text)}</text>')
    for v, text in zip(yt, numbers.format_ticks(yt, spec.logy)):
        out.append(f'<text x="{x0 - 6}" y="{num(sy(v) + 4)}" text-anchor="end">{esc(text)}</text>')
    out.append("</g>")
    if spec.xlabel:
        out.append(f'<text {attrs(class_="sg-axis-title", x=num((x0 + x1) / 2), y=H - 8, text_anchor="middle", fill="currentColor", font_size=12)}>{esc(spec.xlabel)}</text>')
    if spec.ylabel:
        cy = num((y0 + y1) / 2)
        out.append(f'<text {attrs(class_="sg-axis-title", x=14, y=cy, transform=f"rotate(-90 14 {cy})", text_anchor="middle", fill="currentColor", font_size=12)}>{esc(spec.ylabel)}</text>')
    # bands first, then per-run lines, then the centre lines on top
    out.append(f'<g clip-path="url(#{esc(uid)}-clip)">')
    for i, s in enumerate(series):
        c, cls = PALETTE[i % len(PALETTE)], f"sg-s{i % len(PALETTE)}"
        if s.lo is not None and s.hi is not None:
            upper = path(s.x, s.hi)
            pts_lo = [(xv, yv) for xv, yv in zip(s.x, s.lo) if ok_x(xv) and ok_y(yv)]
            pts_hi = [(xv, yv) for xv, yv in zip(s.x, s.hi) if ok_x(xv) and ok_y(yv)]
            if len(pts_hi) > 1 and len(pts_lo) > 1 and upper:
                d = "M" + "L".join(f"{num(sx(a))},{num(sy(b))}" for a, b in pts_hi)
                d += "L" + "L".join(f"{num(sx(a))},{num(sy(b))}" for a, b in reversed(pts_lo)) + "Z"
                out.append(f'<path {attrs(class_=f"sg-band {cls}", d=d, fill=c, fill_opacity="0.18", stroke="none")}/>')
    for i, s in enumerate(series):
        c, cls = PALETTE[i % len(PALETTE)], f"sg-s{i % len(PALETTE)}"
        for rx, ry in s.runs:
            d = path(rx, ry)
            if d:
                out.append(f'<path {attrs(class_=f"sg-run {cls}", d=d, fill="none", stroke=c, stroke_opacity="0.3", stroke_width=1)}/>')
    for i, s in enumerate(series):
        c, cls = PALETTE[i % len(PALETTE)], f"sg-s{i % len(PALETTE)}"
        d = path(s.x, s.y)
        dash = DASHES[i % len(DASHES)] or None
        if d:
            out.append(f'<path {attrs(class_=f"sg-trace {cls}", d=d, fill="none", stroke=c, stroke_width=2, stroke_dasharray=dash, stroke_linejoin="round")}/>')
    out.append("</g>")
    # markers outside the clip: one at the end of a line sits on the plot's edge and would lose half
    for i, s in enumerate(series):
        c, cls = PALETTE[i % len(PALETTE)], f"sg-s{i % len(PALETTE)}"
        if spec.markers or len([1 for v in s.y if ok_y(v)]) == 1:
            out.append(f'<g {attrs(class_=f"sg-marks {cls}", fill=c)}>')
            for xv, yv in zip(s.x, s.y):
                if ok_x(xv) and ok_y(yv) and x0 - 0.5 <= sx(xv) <= x1 + 0.5 and y1 - 0.5 <= sy(yv) <= y0 + 0.5:
                    out.append(f'<circle cx="{num(sx(xv))}" cy="{num(sy(yv))}" r="3"/>')
            out.append("</g>")
    out.append("</svg>")

    legend = ""
    named = [s for s in series if s.name]
    if named:
        items = []
        for i, s in enumerate(series):
            c, cls = PALETTE[i % len(PALETTE)], f"sg-s{i % len(PALETTE)}"
            dash = DASHES[i % len(DASHES)] or None
            items.append(f'<li><svg {attrs(width=28, height=10, viewBox="0 0 28 10", aria_hidden="true")}>'
                         f'<line {attrs(class_=cls, x1=1, x2=27, y1=5, y2=5, stroke=c, stroke_width=2, stroke_dasharray=dash)}/></svg>'
                         f"{esc(s.name)}</li>")
        title = f'<span class="sg-legend-title">{esc(spec.series_title)}:</span> ' if spec.series_title else ""
        legend = f'<div class="sg-legend">{title}<ul>{"".join(items)}</ul></div>'

    def clean(vals):
        if vals is None:
            return None
        return [float(f"{v:.7g}") if v is not None and math.isfinite(v) else None for v in vals]

    island = {
        "v": 1, "kind": "chart",
        "plot": [x0, x1, y0, y1], "size": [W, H],
        "x": [xlo, xhi, spec.logx], "y": [ylo, yhi, spec.logy],
        "xlabel": spec.xlabel, "ylabel": spec.ylabel,
        "series": [{"name": s.name, "x": clean(s.x), "y": clean(s.y), "lo": clean(s.lo), "hi": clean(s.hi),
                    "n": s.n} for s in series],
    }
    return "".join(out) + legend, island, notes
