"""The data interval an inline plot's axis covers: all steps, the final step, or (the default) the final
values widened towards every step's trimmed range without squeezing them."""
from __future__ import annotations

import math

from sitegen.figures import scale

#: the default axis keeps the final values on at least this share of the plot's width (two thirds)
FINAL_SHARE = 2 / 3
#: percentiles of every step's values that the default axis widens towards (a trimmed range)
CONTEXT = (5, 95)


def axis_extent(block, mode: str = "auto", log: bool = False, scalar: bool = False) -> list[float]:
    """The data interval an inline plot's axis covers, from one parameter's dots x frames ``block``.

    ``all``: every value of every frame; ``final``: the last frame's values. ``auto`` (the default)
    starts from the final values, which is what a reader sees first (without JavaScript, in print,
    in the feed, before pressing Play): their whole range, so no final dot sits on an edge. It then
    widens towards a trimmed range of every step (5th to 95th percentile) so the animation keeps its
    context, but by at most half the final range's width in all: the final values always keep at
    least two thirds of the plot, and an early outlier or a long way in from the initial values cannot squeeze
    the end of training against one edge. Values outside the axis during the animation are drawn at
    its edges. A single value (``scalar``, drawn as a bar) also takes in 0 on a linear axis.
    """
    import numpy as np

    block = np.asarray(block, dtype="float64")
    ok = np.isfinite(block) & ((block > 0) if log else True)
    every = block[ok]
    if mode == "all" or not every.size:
        extent = [float(every.min()), float(every.max())] if every.size else []
    else:
        last = block[:, -1][ok[:, -1]] if block.ndim == 2 else every
        if not last.size:
            last = every
        extent = [float(last.min()), float(last.max())]
        if mode == "auto":
            extent = _widen(extent, np.percentile(every, CONTEXT), log)
    if scalar and not log and extent:
        extent = [min(extent[0], 0.0), max(extent[1], 0.0)]
    return extent


def _widen(extent: list[float], context, log: bool) -> list[float]:
    f = math.log10 if log else float
    g = (lambda v: 10.0 ** v) if log else float  # noqa: E731
    a, b = f(extent[0]), f(extent[1])
    if b - a <= 1e-9 * max(abs(a), abs(b), 1e-300):  # every final value the same: a little room around it
        lo, hi = scale.domain(extent[:1], log=log)
        a, b = f(lo), f(hi)
    c, d = f(float(context[0])), f(float(context[1]))
    want_lo, want_hi = a - min(c, a), max(d, b) - b
    extra = want_lo + want_hi
    k = min(1.0, (b - a) * (1 - FINAL_SHARE) / FINAL_SHARE / extra) if extra > 0 else 0.0
    return [g(a - want_lo * k), g(b + want_hi * k)]
