"""Scales (data -> pixels), tick positions and number formatting shared by every figure."""
from __future__ import annotations

import math
from dataclasses import dataclass

from sitegen.figures import numbers


@dataclass(frozen=True)
class Scale:
    """Maps a data interval ``[lo, hi]`` onto pixels ``[r0, r1]``, linearly or in log10 space."""

    lo: float
    hi: float
    r0: float
    r1: float
    log: bool = False

    def t(self, v: float) -> float:
        """``v`` as a fraction of the domain (0 at lo, 1 at hi), in display space."""
        a, b = (math.log10(self.lo), math.log10(self.hi)) if self.log else (self.lo, self.hi)
        if self.log:
            v = math.log10(v) if v > 0 else -math.inf
        if b == a:
            return 0.5
        return (v - a) / (b - a)

    def __call__(self, v: float) -> float:
        return self.r0 + self.t(v) * (self.r1 - self.r0)

    def ticks(self, count: int = 5) -> list[float]:
        return log_ticks(self.lo, self.hi, count) if self.log else nice_ticks(self.lo, self.hi, count)


def domain(values, log: bool = False, fixed: tuple[float | None, float | None] | None = None) -> tuple[float, float]:
    """The interval to draw ``values`` (an iterable of finite floats) on, never empty or degenerate."""
    vals = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    lo = min(vals) if vals else (1.0 if log else 0.0)
    hi = max(vals) if vals else (10.0 if log else 1.0)
    if fixed:
        if fixed[0] is not None:
            lo = fixed[0]
        if fixed[1] is not None:
            hi = fixed[1]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        if log:
            lo, hi = lo / 2, hi * 2
        elif lo == 0:
            lo, hi = -1.0, 1.0
        else:
            pad = abs(lo) * 0.1
            lo, hi = lo - pad, hi + pad
    return lo, hi


def nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Powers of ten inside [lo, hi] (every other one when there are many); 1-2-5 steps when the
    range spans less than two decades."""
    if lo <= 0 or hi <= lo:
        return [lo]
    eps = 1e-9
    a, b = math.ceil(math.log10(lo) - eps), math.floor(math.log10(hi) + eps)
    powers = list(range(a, b + 1))
    if len(powers) >= 3:
        every = max(1, math.ceil(len(powers) / max(count, 1)))
        return [10.0 ** d for d in powers[::every]]
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks = [v for d in decades for m in (1, 2, 5) if lo * (1 - eps) <= (v := m * 10.0 ** d) <= hi * (1 + eps)]
    if len(ticks) > 2 * count:
        ticks = [v for v in ticks if f"{v:e}".startswith(("1", "3"))] or ticks[::2]
    return ticks if len(ticks) >= 2 else nice_ticks(lo, hi, count)


def format_number(v: float, digits: int = 4) -> str:
    """A value as prose shows it (see :mod:`sitegen.figures.numbers`): ``0.0123``, ``1.5 × 10⁻⁶``."""
    return numbers.format_number(v, digits)


def format_tick(v: float, log: bool = False) -> str:
    """One label alone; an axis's labels go through :func:`numbers.format_ticks` together."""
    return numbers.format_ticks([v], log)[0]


def exact(v: float) -> str:
    """A value for tooltips: enough digits to be the number the run produced (float32 precision)."""
    return format_number(v, 7)
