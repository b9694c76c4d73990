"""What a user passes to figure()/chart() -> what the directives read.

Keywords become the directive's option text (``max_runs=5`` -> ``:max-runs: 5``, ``steps=(0, 500)``
-> ``0:500``), the data becomes a DataFrame, and the build's messages, which name options
``:max-runs:``, are turned back into Python keywords ``max_runs=`` for the cell.
"""
from __future__ import annotations

import re

#: what messages call a table given as a DataFrame (``name=`` changes it)
SOURCE = "the DataFrame"
#: keywords of figure()/chart() that are not directive options
OWN = ("name", "settle", "interval")
#: by default, at most this many seconds pass between live messages of one figure (a faster loop's rows wait)
INTERVAL = 0.25

INTERVAL_KEYS = {"steps", "xlim", "ylim", "band"}
INTERVAL_MAP_KEYS = {"range", "bounds"}
MAP_KEYS = {"columns"}


def _number(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def option_text(key: str, value) -> str:
    """A keyword's value as the directive option's text (``steps=(0, 500)`` -> ``0:500``)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if key in INTERVAL_KEYS and isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{_number(value[0])}:{_number(value[1])}"
    if key in INTERVAL_MAP_KEYS and isinstance(value, dict):
        return ", ".join(f"{k}={v if isinstance(v, str) else _number(v[0]) + ':' + _number(v[1])}"
                         for k, v in value.items())
    if key in MAP_KEYS and isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_number(v) if isinstance(v, float) else str(v) for v in value)
    return _number(value) if isinstance(value, float) else str(value)


def _python_names(message: str, known: tuple[str, ...]) -> str:
    """The build's messages name options ``:max-runs:``; in Python they are keywords ``max_runs=``."""
    def swap(m):
        name = m.group(1)
        return f"{name.replace('-', '_')}=" if name in known or name.replace("_", "-") in known else m.group(0)

    def example(m):  # `:columns: run=seed` -> `columns={"run": "seed"}`, `:unplaced: ignore` -> `unplaced="ignore"`
        key, value = m.group(1).replace("-", "_"), m.group(2).strip()
        if key == "columns" and "=" in value:
            pairs = [p.split("=", 1) for p in re.split(r"[;,]", value) if "=" in p]
            return "`columns={" + ", ".join(f'"{a.strip()}": "{b.strip()}"' for a, b in pairs) + "}`"
        return f'`{key}="{value}"`'

    message = re.sub(r"`:([a-z][a-z-]*): ([^`]*)`", example, message)
    message = re.sub(r"':([a-z][a-z_-]*):'", lambda m: f"'{m.group(1).replace('-', '_')}='", message)
    return re.sub(r"(?<![\w:]):([a-z][a-z_-]*):(?![\w])", swap, message)


def _as_frame(data, what: str = "data"):
    """A DataFrame from what a user may pass (DataFrame, dict of columns, list of row dicts, one row dict);
    a message (str) when it is none of those."""
    import pandas as pd

    if data is None:
        return None
    if isinstance(data, pd.DataFrame):
        if isinstance(data.columns, pd.MultiIndex):
            shown = ", ".join(map(str, list(data.columns)[:4])) + (", ..." if len(data.columns) > 4 else "")
            return (f"{what} has MultiIndex columns ({shown}); flatten them first, e.g. "
                    "df.columns = ['_'.join(map(str, c)) for c in df.columns], or df.stack() to long rows")
        return data
    if isinstance(data, dict):
        one_row = all(isinstance(v, (str, bytes)) or not hasattr(v, "__len__") for v in data.values())
        try:
            return pd.DataFrame([data]) if one_row else pd.DataFrame(data)
        except ValueError:
            return (f"{what}: cannot make a table of this dict; give each key a list of values (one column "
                    "each, all as long), or pass one row with a single value per key")
    if isinstance(data, (list, tuple)) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(list(data))
    return (f"{what} must be a pandas DataFrame (or a dict of columns, or a list of row dicts), "
            f"not {type(data).__name__}")


def _columns(options: dict[str, str]) -> dict[str, str]:
    from sitegen.directives.options import mapping

    try:
        return mapping("columns", options.get("columns", ""))
    except ValueError:
        return {}
