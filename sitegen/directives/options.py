"""Reading a directive's options: the text an author wrote after ``:name:`` -> typed values.

Option values arrive as strings from the post (or from keyword arguments in a notebook); the
readers here turn them into values or raise :class:`OptionError` naming the option and saying what
to write instead. Directives and the notebook read options here, and hand the drawing code in
:mod:`sitegen.figures` typed values only.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sitegen.errors import closest
from sitegen.figures.page import Place
from sitegen.figures.template import parse_interval

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.context import PageContext
    from sitegen.directives import Call

TRUE = {"", "yes", "true", "on", "1"}
FALSE = {"no", "false", "off", "0"}


class OptionError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def check_options(call: "Call", known: tuple[str, ...], ctx: "PageContext") -> bool:
    """Report options the directive does not know (with did-you-mean). False if any."""
    ok = True
    for key in call.options:
        if key not in known:
            near = closest(key, known)
            ctx.error(call.option_line(key), f"{call.name}: unknown option ':{key}:'"
                      + (f"; did you mean ':{near[0]}:'?" if near else f" (options: {', '.join(known)})"))
            ok = False
    return ok


def flag(call: "Call", key: str, default: bool = False) -> bool:
    """``:key:`` alone, or yes/no (true/false, on/off, 1/0)."""
    if key not in call.options:
        return default
    v = call.options[key].strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise OptionError(key, f":{key}: takes yes or no, not {call.options[key]!r}")


def items(value: str) -> list[str]:
    """A comma-separated list (spaces around items ignored; empty items dropped)."""
    return [x.strip() for x in value.split(",") if x.strip()]


def mapping(key: str, value: str) -> dict[str, str]:
    """``a=b, c=d`` (also separated by ';')."""
    out = {}
    for part in re.split(r"[;,]", value):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise OptionError(key, f":{key}: expects name=value pairs separated by commas, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def intervals(key: str, value: str) -> dict[str, tuple]:
    """``name=lo:hi, other=lo:`` -> {name: (lo, hi)}."""
    out = {}
    for name, text in mapping(key, value).items():
        try:
            out[name] = parse_interval(text, f":{key}: {name}")
        except ValueError as exc:
            raise OptionError(key, str(exc)) from None
    return out


def integer(call: "Call", key: str, default: int | None, lo: int = 1, hi: int = 10**9) -> int | None:
    """A whole number between ``lo`` and ``hi``."""
    if key not in call.options:
        return default
    try:
        v = int(call.options[key].strip())
    except ValueError:
        raise OptionError(key, f":{key}: takes a whole number, not {call.options[key]!r}") from None
    if not lo <= v <= hi:
        raise OptionError(key, f":{key}: must be between {lo} and {hi}, not {v}")
    return v


def place(call: "Call") -> Place:
    """Where a figure was asked for: its ``:label:`` and ``:caption:`` and the lines to blame."""
    return Place(line=call.line, label=(call.options.get("label") or "").strip(),
                 label_line=call.option_line("label"), caption=call.options.get("caption"),
                 caption_line=call.option_line("caption"))
