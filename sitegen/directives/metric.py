"""```{metric}`...` ```: a number computed from data, printed into prose, so results are never typed by hand.

    The largest runs err {metric}`data/scaling.parquet: geomean(loss where n=16) / geomean(loss where n=1024) | .0f`
    times less than the smallest.

    Training took {metric}`data/train.provenance.json: wall_time_s / 60 | .1f` minutes.

The content is ``SOURCE: EXPRESSION [| FORMAT]``:

- SOURCE: a table (``.parquet``, ``.csv``) or a JSON file (a provenance sidecar).
- EXPRESSION: numbers, ``+ - * /``, parentheses and, for tables, aggregates
  ``AGG(column [where col=value and col=value ...])`` with AGG one of mean, geomean, median, min,
  max, sum, count, std, first, last or pNN (the NN-th percentile); a value may list alternatives
  (``n=16,32``) and ``last``/``first`` pick the largest/smallest value of that column
  (``where step=last``). For JSON, a name is a dotted key, looked up under ``results`` first.
  Names with spaces or symbols are quoted: ``mean("test loss")``.
- FORMAT: a Python format spec: ``.2f``, ``.3g``, ``.1%``, ``,.0f``; by default four significant digits.

The number is written as ``<data value="...">`` with the expression in its title, so a reader can
see where it came from.
"""
from __future__ import annotations

import math
import re

from sitegen.directives import Role, register_role
from sitegen.data import LiveWaiting
from sitegen.directives.expression import catalog_of
from sitegen.errors import SiteError, closest
from sitegen.figures.numbers import format_number, from_spec
from sitegen.figures.svg import esc

AGGREGATES = ("mean", "geomean", "median", "min", "max", "sum", "count", "std", "first", "last")
TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<op>[-+*/(),=])
  | (?P<name>[A-Za-z_][\w.\-\[\]]*)
)""", re.VERBOSE)


#: how deep parentheses and signs may nest, and the largest width or precision a format may ask
MAX_NESTING = 50
MAX_FORMAT_NUMBER = 100
_REST_IS_SPACE = re.compile(r"\s*$")


class MetricError(ValueError):
    pass


def split(content: str) -> tuple[str, str, str]:
    """``SOURCE: EXPR | FORMAT`` -> its three parts (format may be '')."""
    m = re.match(r"\s*([^\s:]+\.(?:parquet|csv|tsv|json))\s*:(.*)$", content, re.S)
    if not m:
        raise MetricError("write SOURCE: EXPRESSION [| FORMAT], e.g. "
                          "data/run.parquet: mean(loss where step=last) | .3f")
    source, rest = m.group(1), m.group(2)
    expr, fmt = rest, ""
    if "|" in rest:
        expr, fmt = rest.rsplit("|", 1)
    if not expr.strip():
        raise MetricError("nothing to compute after the source; add an expression such as mean(loss)")
    return source, expr.strip(), fmt.strip()


def tokenize(text: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        if _REST_IS_SPACE.match(text, i):
            break
        m = TOKEN.match(text, i)
        if not m or m.end() == i:
            raise MetricError(f"cannot read {text[i:].strip()[:20]!r} in the expression")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
            kind = "name"
        out.append((kind, value))
        i = m.end()
    return out


class Evaluator:
    """Recursive descent over the tokens; ``lookup`` resolves names (JSON) or ``aggregate`` runs AGG(...)."""

    def __init__(self, tokens, table=None, record=None):
        self.toks, self.i = tokens, 0
        self.table, self.record = table, record
        self.depth = 0

    def peek(self, value=None):
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            if value is None or tok[1] == value:
                return tok
        return None

    def take(self, value=None):
        tok = self.peek(value)
        if tok is None:
            want = f"'{value}'" if value else "more"
            got = repr(self.toks[self.i][1]) if self.i < len(self.toks) else "the end"
            raise MetricError(f"expected {want} but found {got}")
        self.i += 1
        return tok

    def run(self) -> float:
        v = self.expr()
        if self.i != len(self.toks):
            raise MetricError(f"unexpected {self.toks[self.i][1]!r} in the expression")
        return v

    def expr(self) -> float:
        v = self.term()
        while self.peek("+") or self.peek("-"):
            op = self.take()[1]
            w = self.term()
            v = v + w if op == "+" else v - w
        return v

    def term(self) -> float:
        v = self.factor()
        while self.peek("*") or self.peek("/"):
            op = self.take()[1]
            w = self.factor()
            if op == "/":
                if w == 0:
                    raise MetricError("division by zero")
                v = v / w
            else:
                v = v * w
        return v

    def factor(self) -> float:
        tok = self.peek()
        if tok is None:
            raise MetricError("the expression ends too early")
        if tok[1] in ("-", "("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise MetricError(f"the expression nests parentheses or signs more than {MAX_NESTING} deep")
            self.take()
            if tok[1] == "-":
                v = -self.factor()
            else:
                v = self.expr()
                self.take(")")
            self.depth -= 1
            return v
        if tok[0] == "num":
            self.take()
            return float(tok[1])
        if tok[0] == "name":
            self.take()
            if self.peek("("):
                return self.aggregate(tok[1])
            return self.lookup(tok[1])
        raise MetricError(f"unexpected {tok[1]!r}")

    # -- JSON ---------------------------------------------------------------------------
    def lookup(self, dotted: str) -> float:
        if self.record is None:
            raise MetricError(f"'{dotted}' is a name, but a table needs an aggregate such as mean({dotted})")
        for base in (self.record.get("results") if isinstance(self.record, dict) else None, self.record):
            if base is None:
                continue
            node, found = base, True
            for key in dotted.split("."):
                if isinstance(node, dict) and key in node:
                    node = node[key]
                elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                    node = node[int(key)]
                else:
                    found = False
                    break
            if found:
                if isinstance(node, bool) or not isinstance(node, (int, float)):
                    raise MetricError(f"'{dotted}' is {type(node).__name__}, not a number")
                return float(node)
        keys = _keys(self.record)
        near = closest(dotted, keys) or [k for k in keys if dotted in k][:3]
        raise MetricError(f"no key '{dotted}'" + (f"; did you mean {', '.join(repr(k) for k in near)}?" if near else ""))

    # -- tables -------------------------------------------------------------------------
    def aggregate(self, fn: str) -> float:
        import numpy as np
        import pandas as pd

        if self.table is None:
            raise MetricError(f"{fn}(...) needs a table; this source is JSON")
        pct = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", fn)
        if fn not in AGGREGATES and not pct:
            near = closest(fn, AGGREGATES)
            raise MetricError(f"unknown aggregate '{fn}'" + (f"; did you mean '{near[0]}'?" if near else "")
                              + f" (have: {', '.join(AGGREGATES)}, pNN)")
        self.take("(")
        column = self.column(self.take()[1])
        df = self.table
        if self.peek("where"):
            self.take("where")
            while True:
                col = self.column(self.take()[1])
                self.take("=")
                values = [self.take()[1]]
                while self.peek(","):
                    self.take(",")
                    values.append(self.take()[1])
                df = _filter(df, col, values)
                if self.peek("and"):
                    self.take("and")
                    continue
                break
        self.take(")")
        if len(df) == 0:
            raise MetricError(f"{fn}({column} ...) selects no rows")
        vals = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype="float64")
        if fn == "count":
            return float(len(vals))
        if np.isnan(vals).all():
            raise MetricError(f"column '{column}' holds no numbers")
        vals = vals[~np.isnan(vals)]
        if fn == "first":
            return float(vals[0])
        if fn == "last":
            return float(vals[-1])
        if fn == "geomean":
            if (vals <= 0).any():
                raise MetricError(f"geomean({column}) needs positive values")
            return float(np.exp(np.log(vals).mean()))
        if pct:
            return float(np.percentile(vals, float(pct.group(1))))
        return float({"mean": np.mean, "median": np.median, "min": np.min, "max": np.max, "sum": np.sum,
                      "std": lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0}[fn](vals))

    def column(self, name: str) -> str:
        if name not in self.table.columns:
            near = closest(name, [str(c) for c in self.table.columns])
            raise MetricError(f"no column '{name}'" + (f"; did you mean '{near[0]}'?" if near else "")
                              + f" (have: {', '.join(map(str, list(self.table.columns)[:12]))})")
        return name


def _filter(df, col: str, values: list[str]):
    from sitegen.data import _as_labels

    labels = _as_labels(df[col])
    wanted = []
    for v in values:
        if v in ("last", "first") and v not in set(labels):
            import pandas as pd

            numeric = pd.to_numeric(df[col], errors="coerce")
            pick = numeric.max() if v == "last" else numeric.min()
            wanted.append(_as_labels(pd.Series([pick])).iloc[0])
        else:
            wanted.append(v)
    keep = labels.isin(wanted).to_numpy()
    if not keep.any():
        have = list(dict.fromkeys(labels))
        near = closest(values[0], have)
        raise MetricError(f"column '{col}' has no value {values[0]!r}"
                          + (f"; did you mean {near[0]!r}?" if near else
                             f" (values: {', '.join(have[:8])}{', ...' if len(have) > 8 else ''})"))
    return df[keep]


def _keys(node, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            name = f"{prefix}{k}"
            out.append(name)
            if isinstance(v, dict):
                out += _keys(v, name + ".")
    return out


def compute(content: str, catalog, line, ctx) -> tuple[float, str, str]:
    """``(value, formatted, source)``; raises MetricError or SiteError."""
    source, expr, fmt = split(content)
    if source.endswith(".json"):
        ev = Evaluator(tokenize(expr), record=catalog.json(source, line, ctx))
    else:
        ev = Evaluator(tokenize(expr), table=catalog.table(source, line, ctx))
    value = ev.run()
    if fmt:
        if any(len(n) > 3 or int(n) > MAX_FORMAT_NUMBER for n in re.findall(r"\d+", fmt)):
            raise MetricError(f"'{fmt[:40]}' asks for a width or precision above {MAX_FORMAT_NUMBER}; "
                              "try .2f, .3g, .1% or ,.0f")
        try:
            text = from_spec(value, fmt)
        except (ValueError, TypeError):
            raise MetricError(f"'{fmt}' is not a number format; try .2f, .3g, .1% or ,.0f") from None
    else:
        text = format_number(value, 4)
    if not math.isfinite(value):
        raise MetricError(f"the result is {value}; check the data the expression selects")
    return value, text, source


class Metric(Role):
    name = "metric"
    summary = "a number computed from a table or provenance file, printed into prose"

    def render(self, content: str, line: int, ctx) -> str:
        try:
            value, text, source = compute(content, catalog_of(ctx), line, ctx)
        except LiveWaiting:  # the preview, while the experiment has not written its first rows
            return '<span class="sg-metric-waiting" title="waiting for the running experiment">…</span>'
        except SiteError as exc:
            ctx.problems.append(exc.problem)
            return '<span class="sg-metric-error">?</span>'
        except MetricError as exc:
            shown = content.strip()
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            ctx.error(line, f"metric: {exc} (in {{metric}}`{shown}`)")
            return '<span class="sg-metric-error">?</span>'
        title = f"computed at build time: {content.strip()}"
        return f'<data class="sg-metric" value="{value!r}" title="{esc(title)}">{esc(text)}</data>'


register_role(Metric())
