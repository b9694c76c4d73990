"""The one way numbers are written: prose (``{metric}``), axis labels, summaries and tooltips.

Rules (figures.js has a twin, ``fmt``; tests/browser/test_numbers_browser.py checks they agree):

- round to ``digits`` significant digits, half away from zero, on the float's exact binary value
  (what JavaScript's ``toExponential`` does, so Python and the browser print the same digits);
- 0.001 <= |v| < 1,000,000 is written as a decimal without trailing zeros, its whole part never
  rounded away, with thousands separators from 10,000 (``0.0123``, ``1.5``, ``1024``, ``12,345``);
- anything else as ``1.2 × 10⁻⁵`` (``10⁻⁵`` when the mantissa is 1): superscript exponents, and
  narrow no-break spaces around the ×, so a number never breaks across lines and never reads as
  ``1.2e-05``;
- a minus sign is U+2212 (−), not a hyphen; NaN is ``NaN``, infinities ``∞`` and ``−∞``.

Axis labels go through :func:`format_ticks`, which writes all of an axis's labels the same way:
when one label needs a power of ten, every label uses one (``10⁻⁴ 10⁻³ 10⁻²``, never ``1e-4`` beside
``0.001``).
"""
from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

MINUS = "\u2212"
NNBSP = "\u202f"  # narrow no-break space: keeps "1.2 × 10⁻⁵" on one line
TIMES = f"{NNBSP}×{NNBSP}"
SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
#: decimal notation for exponents in [FIXED_MIN, FIXED_MAX): 0.001 up to 999,999
FIXED_MIN, FIXED_MAX = -3, 6


def _rounded(v: float, digits: int) -> tuple[str, str, int]:
    """(sign, significant digits without trailing zeros, decimal exponent of the first digit)."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_HALF_UP
        text = format(Decimal(v), f".{max(digits, 1) - 1}e")
    mant, exp = text.split("e")
    sign = MINUS if mant.startswith("-") else ""
    figures = mant.lstrip("-").replace(".", "").rstrip("0") or "0"
    return sign, figures, int(exp)


def _fixed(figures: str, exp: int) -> str:
    """The digits ``figures`` (first one at 10**exp) as a plain decimal."""
    if exp < 0:
        return "0." + "0" * (-exp - 1) + figures
    whole, frac = figures[:exp + 1].ljust(exp + 1, "0"), figures[exp + 1:]
    if exp >= 4:
        whole = f"{int(whole):,}"
    return whole + ("." + frac if frac else "")


def _power(figures: str, exp: int) -> str:
    sup = str(exp).translate(SUPERSCRIPT)
    if figures == "1":
        return f"10{sup}"
    mant = figures[0] + ("." + figures[1:] if len(figures) > 1 else "")
    return f"{mant}{TIMES}10{sup}"


def _special(v) -> str | None:
    if v is None:
        return "missing"
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else f"{MINUS}∞"
    if v == 0:
        return "0"
    return None


def format_number(v: float, digits: int = 4, power: bool | None = None) -> str:
    """``v`` with ``digits`` significant digits, as the rules above say (``power``: force or forbid
    the power-of-ten form; None lets the size decide)."""
    special = _special(v)
    if special is not None:
        return special
    sign, figures, exp = _rounded(float(v), digits)
    if power is None:
        power = not FIXED_MIN <= exp < FIXED_MAX
    if not power and exp + 1 > digits:  # a decimal keeps its whole part: 12,345, not 12,350
        sign, figures, exp = _rounded(float(v), exp + 1)
    return sign + (_power(figures, exp) if power else _fixed(figures, exp))


def format_ticks(values, log: bool = False, digits: int = 6) -> list[str]:
    """Labels for one axis, all in the same notation: powers of ten for every label when any label
    needs one (on a log axis the powers read ``10⁻³``, ``10⁻²``...)."""
    vals = [float(v) for v in values]
    exps = [_rounded(v, digits)[2] for v in vals if math.isfinite(v) and v != 0]
    power = any(not FIXED_MIN <= e < FIXED_MAX for e in exps)
    return [format_number(v, digits, power=power) for v in vals]


def from_spec(value: float, spec: str) -> str:
    """A number through a Python format spec (``.2f``, ``.1%``, ``.3e``), then written by the same
    rules: a real minus sign, and ``1.2 × 10⁻⁵`` instead of ``1.2e-05``."""
    text = format(value, spec)

    def power(m: re.Match) -> str:
        mant, exp = m.group(2), int(m.group(3))
        return m.group(1) + (f"10{str(exp).translate(SUPERSCRIPT)}" if mant == "1" else
                             f"{mant}{TIMES}10{str(exp).translate(SUPERSCRIPT)}")

    text = re.sub(r"(^|[^\d.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)", power, text)
    return text.replace("-", MINUS)


def plain(text: str) -> str:
    """The formatted text as ASCII-ish a parser reads (tests, HTML ``value`` attributes): undoes the
    minus sign, the spaces and the superscripts."""
    table = str.maketrans({"⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7",
                           "⁸": "8", "⁹": "9", "⁻": "-", MINUS: "-", NNBSP: "", ",": ""})
    t = text.translate(table)
    # only a written power (a superscript exponent) is one: "100" is a hundred, not 10⁰
    superscript = any(c in "⁰¹²³⁴⁵⁶⁷⁸⁹" for c in text)
    m = superscript and re.fullmatch(r"(-?)(?:(\d+(?:\.\d+)?)×)?10(-?\d+)", t)
    if m:
        return f"{m.group(1)}{m.group(2) or '1'}e{m.group(3)}"
    return t.replace("∞", "inf")
