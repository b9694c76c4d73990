"""The text of placeholders and numbers: ``⟦name | log | label=ℓ⟧`` written (with quotes where a
name needs them) and read back (:func:`template_placeholders`), and how a constant prints.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def format_number(v) -> str:
    if isinstance(v, np.ndarray):
        return "[" + ", ".join(format_number(x) for x in v.tolist()) + "]"
    if isinstance(v, list):
        return "[" + ", ".join(format_number(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.6g}"


def _needs_quotes(name: str) -> bool:
    return any(c in name for c in '|"\\' + OPEN + CLOSE) or name != name.strip() or not name


def placeholder(name: str, options: Mapping[str, Any] | None = None) -> str:
    """``⟦name⟧`` with settings (``⟦name | log | label=ℓ⟧``); names with ``|`` or ``⟧`` quoted."""
    text = placeholder_text(name)
    for key, value in (options or {}).items():
        if value is True:
            text += f" | {key}"
        elif value is not None and value is not False:
            text += f" | {key}={value}"
    return OPEN + text + CLOSE


def placeholder_text(name: str) -> str:
    if _needs_quotes(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


PLACEHOLDER = re.compile(OPEN + r'\s*(?:"((?:[^"\\]|\\.)*)"|([^|' + CLOSE + r']*))[^' + CLOSE + ']*' + CLOSE)


def template_placeholders(text: str) -> list[str]:
    """The parameter names of every placeholder in a template, in order (with repeats)."""
    names = []
    for m in PLACEHOLDER.finditer(text):
        if m.group(1) is not None:
            names.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        else:
            names.append(m.group(2).strip())
    return names
