"""Small helpers for writing HTML/SVG text safely: every string from data goes through :func:`esc`."""
from __future__ import annotations

import json
import math

#: Okabe–Ito colours, in an order that keeps neighbours distinct for the common colour-vision deficiencies.
#: figures.css overrides them per class (lighter variants in dark mode); the attributes are what feed
#: readers and print without the stylesheet see.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#555555")
#: dash patterns so series stay apart in grey print and for readers who cannot tell the colours apart
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 2 1 2", "10 4")


def esc(text) -> str:
    """Escape for HTML text *and* attribute values (both quote kinds)."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def num(v: float) -> str:
    """A coordinate: one decimal, no trailing zeros, never 'nan'."""
    if not math.isfinite(v):
        v = 0.0
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def attrs(**kw) -> str:
    """``key="value"`` pairs; ``None``/``False`` values are left out, ``class_`` becomes ``class``,
    and underscores in names become dashes (``stroke_width`` -> ``stroke-width``)."""
    out = []
    for k, v in kw.items():
        if v is None or v is False:
            continue
        name = "class" if k == "class_" else k.rstrip("_").replace("_", "-")
        if v is True:
            out.append(name)
        else:
            out.append(f'{name}="{esc(v)}"')
    return " ".join(out)


def json_island(data, class_: str = "sg-data") -> str:
    """A ``<script type="application/json">`` block that no data can break out of.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so ``</script>`` or ``<!--`` inside a
    parameter name stays inert; U+2028/9 are escaped for old JSON parsers. NaN/inf become null.
    """
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return f'<script type="application/json" class="{esc(class_)}">{text}</script>'


def _finite(data):
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data
