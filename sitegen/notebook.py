"""The site's figures in a Jupyter notebook, and live while a model trains.

    from sitegen import figure, chart

    fig = figure(df, "y = ⟦w⟧ * x + ⟦b⟧", log="w")   # df: a traced table, long or wide
    fig                                              # shown in the cell
    for step in range(1000):
        ...
        fig.append(rows)                             # only these rows travel to the browser
    fig.save("data/linear")                          # data/linear.parquet + data/linear.expr for a post

A figure here is drawn by the same code as on the site: the ``{expression}`` and ``{chart}``
directives render it from the DataFrame (options are the directive's options, written as Python
keywords: ``max_runs=5`` for ``:max-runs: 5``), so a notebook shows the same SVG and reports the same
problems as a build, as readable text in the cell. The browser runtime (``static/figures.js``) and its
styles travel inside the output, because a notebook has no site to load them from.

How an output reaches the reader, and why:

- Each output holds the figure twice: as live HTML with inline SVG (shown once the runtime runs) and as
  one static SVG picture in an ``<img>`` (shown when it does not). JupyterLab and Notebook 7 run scripts
  only in outputs they trust (made in this session), and sanitise the others, removing inline SVG,
  styles and scripts but keeping images; the picture is what a reopened, untrusted notebook shows.
- Live updates travel as small messages in a second output (``update_display`` on one display id per
  figure and cell), read by the runtime the figure already loaded: only new rows, as float32 values
  per dot, plus an axis when it must widen. An ipykernel comm would need a frontend extension in
  JupyterLab (plain HTML outputs cannot open one) and does not survive a page reload; display updates
  work in every frontend that shows HTML, with nothing to install, and nbclient records them.
- When the cell that sent updates finishes, the figure's own outputs are redrawn once from the whole
  table (``settle=False`` turns this off), so the saved notebook holds the final figure, not the first.

pandas is imported inside functions, like the rest of the builder; this module never imports
``sitegen.build``.
"""
from __future__ import annotations

import base64
import hashlib
import html as htmllib
import json
import math
import re
import secrets
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitegen.context import PageContext
from sitegen.data import Catalog, to_traced
from sitegen.directives import Call
from sitegen.errors import Problem, SiteError
from sitegen.figures.svg import esc, json_island

PACKAGE = Path(__file__).resolve().parent
#: what messages call a table given as a DataFrame (``name=`` changes it)
SOURCE = "the DataFrame"
#: keywords of figure()/chart() that are not directive options
OWN = ("name", "settle", "interval")
#: by default, at most this many seconds pass between live messages of one figure (a faster loop's rows wait)
INTERVAL = 0.25

__all__ = ["figure", "chart", "Figure", "Chart"]


# -- public API ------------------------------------------------------------------------------------
def figure(data=None, template: str | None = None, **options) -> "Figure":
    """An expression figure: ``template`` (the model as text, ``⟦name⟧`` where each parameter goes)
    with every parameter of ``data`` drawn in place.

    ``data`` is a pandas DataFrame of traced values: long (``experiment``, ``run``, ``step``, ``param``,
    ``value``) or wide (one column per parameter, index columns such as ``i_config``, ``i_timestep``).
    It may be left out and sent later with :meth:`Figure.append`. ``options`` are the
    ``{expression}`` directive's options as keywords (``log="lengthscale*"``, ``max_runs=5``,
    ``steps=(0, 5000)``, ``range={"w": (0, 1)}``, ``columns={"run": "seed"}``, ``caption="..."``),
    plus ``name`` (what messages call the table), ``settle`` (redraw from the whole table when a cell
    that sent live updates ends; default True) and ``interval`` (seconds between live messages).
    """
    return Figure(data, template=template, **options)


def chart(data=None, **options) -> "Chart":
    """A line chart of ``data`` with the ``{chart}`` directive's options as keywords
    (``x="step"``, ``y="loss"``, ``series="model"``, ``run="seed"``, ``logy=True``, ``band=(10, 90)``).

    A chart redraws in full when rows arrive (its drawing holds at most 500 points per line, not the
    table), at most once per ``interval`` seconds.
    """
    return Chart(data, **options)


# -- turning keywords into directive options --------------------------------------------------------
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


# -- rendering through the directives ----------------------------------------------------------------
class _FrameCatalog(Catalog):
    """A catalog holding one in-memory table under a name, so the directives read a DataFrame as they
    read a file, and say the same things about it."""

    def __init__(self, frame, source: str):
        super().__init__(Path.cwd())
        self.frame, self.source = frame, source
        self.last_traced = None

    def _check(self, relpath: str, line, ctx):
        if (relpath or "").strip() != self.source:  # pragma: no cover - the notebook always names its own
            raise SiteError(ctx.path if ctx else relpath, line, f"{relpath}: only {self.source} is available here")

    def table(self, relpath: str, line: int | None = None, ctx=None):
        self._check(relpath, line, ctx)
        df = self.frame
        if df is None or len(df.columns) == 0 or len(df) == 0:
            raise self._fail(ctx, line, self.source, "the table is empty (no rows)")
        return df

    def traced(self, relpath: str, columns=None, line: int | None = None, ctx=None):
        df = self.table(relpath, line, ctx)
        try:
            traced = to_traced(df, columns, self.source)
        except ValueError as exc:
            raise self._fail(ctx, line, self.source, str(exc)) from None
        if ctx is not None:
            for note in traced.notes:
                ctx.warn(line, f"{self.source}: {note}")
        self.last_traced = traced
        return traced


class _CellContext(PageContext):
    """A page context for one notebook output: animation data inline (there is no site to write it
    to), ids made unique with a token so several outputs on one page never share one."""

    def __init__(self, catalog, token: str):
        super().__init__(path="<cell>", root=Path.cwd(), source_dir=Path.cwd(), catalog=catalog)
        self.meta["unnumbered_figures"] = True
        self.token = token

    def add_file(self, stem: str, data: bytes, suffix: str) -> str:
        return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")

    def unique_id(self, base: str) -> str:
        return super().unique_id(f"{base}-{self.token}")


@dataclass
class Drawn:
    """One rendering of a figure: its HTML (ids carry ``token``), problems, and what live updates need."""

    html: str = ""                  # the <figure>, or "" when it could not be drawn
    problems: list[Problem] = field(default_factory=list)
    island: dict | None = None
    traced: Any = None
    picture: tuple[str, int, int] | None = None   # (svg, width, height)
    alt: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.html)


def draw(kind: str, frame, template: str | None, options: dict[str, str], token: str,
         source: str = SOURCE) -> Drawn:
    """Render ``frame`` with the ``{expression}``/``{chart}`` directive, as a post would."""
    from sitegen.directives import load_builtin

    directive = load_builtin().directives[kind]
    catalog = _FrameCatalog(frame, source)
    ctx = _CellContext(catalog, token)
    call = Call(kind, source, dict(options), {k: 0 for k in options}, template or "", 0, 1)
    try:
        html = directive.render(call, ctx)
    except Exception as exc:  # our bug: a message in the cell, never a traceback
        ctx.error(0, f"{kind}: could not draw this figure ({type(exc).__name__}: {exc}); please report it")
        html = ""
    out = Drawn(problems=list(ctx.problems), traced=catalog.last_traced)
    if any(p.level == "error" for p in ctx.problems) or "<figure" not in html:
        return out
    out.html = html
    found = re.search(r'<script type="application/json" class="sg-data">(.*?)</script>', html, re.S)
    out.island = json.loads(found.group(1)) if found else None
    try:
        out.picture = picture(html)
    except Exception:  # pragma: no cover - the live figure still shows where scripts run
        out.picture = None
    out.alt = _alt(html)
    return out


# -- the static picture (for outputs a notebook does not trust) ------------------------------------
CHAR_W = 7.8      # px per character of 13 px monospace text (0.6 em)
FONT = 13
LINE_H = 22
PAD = 10
_TOKEN = re.compile(r'(<svg\b.*?</svg>)|<span class="sg-comment">(.*?)</span>|(<span class="sg-badge".*?</span></span>)'
                    r'|<span class="sg-sr">.*?</span>', re.S)


def _text_of(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _tokens(fragment: str) -> list[tuple]:
    """HTML of one line of a figure -> ('text'|'comment', str) / ('svg', markup, w, h) / ('badge',)."""
    out, pos = [], 0
    for m in _TOKEN.finditer(fragment):
        if m.start() > pos:
            out.append(("text", _text_of(fragment[pos:m.start()])))
        if m.group(1):
            svg = m.group(1)
            w = re.search(r'\bwidth="([\d.]+)"', svg)
            h = re.search(r'\bheight="([\d.]+)"', svg)
            out.append(("svg", svg, float(w.group(1)) if w else 100.0, float(h.group(1)) if h else 20.0))
        elif m.group(2) is not None:
            out.append(("comment", _text_of(m.group(2))))
        elif m.group(3):
            out.append(("badge",))
        pos = m.end()
    if pos < len(fragment):
        out.append(("text", _text_of(fragment[pos:])))
    return out


def _fmt(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def picture(fig_html: str) -> tuple[str, int, int]:
    """The figure as one standalone SVG: the strips (or chart) the server drew, laid out with the
    template's text in monospace cells. No CSS, no script, so it survives any sanitiser as an image."""
    rows: list[list[tuple]] = []
    step = re.search(r'<p class="sg-step">(.*?)</p>', fig_html, re.S)
    if step:
        rows.append([("text", _text_of(step.group(1)))])
    pre = re.search(r'<pre class="sg-expr">(.*?)</pre>', fig_html, re.S)
    if pre:
        for line in re.findall(r'<span class="sg-line[^"]*">(.*?)\n</span>', pre.group(1), re.S):
            rows.append(_tokens(line))
        key = re.search(r'<p class="sg-key">(.*?)</p>', fig_html, re.S)
        if key:
            rows.append(_tokens(key.group(1)))
    else:
        chart_svg = re.search(r'<svg class="sg-chart-svg".*?</svg>', fig_html, re.S)
        if chart_svg:
            rows.append(_tokens(chart_svg.group(0)))
        legend = re.search(r'<div class="sg-legend">(.*?)</div>', fig_html, re.S)
        if legend:
            rows.append(_tokens(re.sub(r"</li>", " </li>", legend.group(1))))
    caption = re.search(r"<figcaption>(.*?)</figcaption>", fig_html, re.S)
    if caption:
        rows.append([("text", _text_of(caption.group(1)))])

    body, y, width = [], PAD, 0.0
    for row in rows:
        h = max([LINE_H] + [t[3] + 4 for t in row if t[0] == "svg"])
        x = float(PAD)
        base = y + h / 2 + FONT * 0.35
        for t in row:
            if t[0] in ("text", "comment"):
                text = t[1].replace("\n", " ")
                lead = len(text) - len(text.lstrip(" "))
                x += lead * CHAR_W
                core = text.strip(" ")
                if core:
                    extra = ' fill="#666666" font-style="italic"' if t[0] == "comment" else ""
                    body.append(f'<text x="{_fmt(x)}" y="{_fmt(base)}" textLength="{_fmt(len(core) * CHAR_W)}" '
                                f'lengthAdjust="spacingAndGlyphs"{extra}>{esc(core)}</text>')
                x += (len(text) - lead) * CHAR_W
            elif t[0] == "svg":
                _, svg, w, sh = t
                body.append(svg.replace("<svg ", f'<svg x="{_fmt(x)}" y="{_fmt(y + (h - sh) / 2)}" ', 1))
                x += w
            else:
                cy = y + h / 2 - 5
                body.append(f'<circle cx="{_fmt(x + 6)}" cy="{_fmt(cy)}" r="6" fill="#A63D0A"/>'
                            f'<text x="{_fmt(x + 6)}" y="{_fmt(cy + 4)}" text-anchor="middle" fill="#ffffff" '
                            f'font-size="10" font-weight="bold">!</text>')
                x += 13
        width = max(width, x)
        y += h
    w, h = int(math.ceil(width + PAD)), int(math.ceil(y + PAD))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}" fill="#1a1a1a" '
           f'color="#1a1a1a"><rect width="{w}" height="{h}" rx="6" fill="#ffffff"/>{"".join(body)}</svg>')
    return svg, w, h


def _alt(fig_html: str) -> str:
    labels = re.findall(r'<svg class="sg-(?:strip|chart-svg)"[^>]*\baria-label="([^"]*)"', fig_html)
    text = "; ".join(htmllib.unescape(x) for x in labels) or "figure"
    return text[:1500] + ("…" if len(text) > 1500 else "")


# -- what every output carries ------------------------------------------------------------------------
_ASSETS: dict[str, str] = {}


def _runtime() -> str:
    """figures.js then notebook.js, as one inline script (the same file the site serves)."""
    if "js" not in _ASSETS:
        js = (PACKAGE / "static" / "figures.js").read_text(encoding="utf-8") + "\n" + \
             (PACKAGE / "static_notebook" / "notebook.js").read_text(encoding="utf-8")
        _ASSETS["js"] = js.replace("</script", "<\\/script")  # cannot end its own <script> element
    return _ASSETS["js"]


DARK = ':is(body[data-jp-theme-light="false"], body.vscode-dark, body.vscode-high-contrast:not(.vscode-high-contrast-light))'


def notebook_css() -> str:
    """figures.css for a notebook: its dark palette follows the notebook's theme (JupyterLab, VS Code)
    rather than the operating system's, and a few rules place the output. Every rule stays on .sg-*."""
    if "css" not in _ASSETS:
        css = (PACKAGE / "static" / "figures.css").read_text(encoding="utf-8")
        out, pos = [], 0
        for m in re.finditer(r"@media \(prefers-color-scheme: dark\) \{", css):
            depth, i = 1, m.end()
            while depth and i < len(css):
                depth += {"{": 1, "}": -1}.get(css[i], 0)
                i += 1
            out.append(css[pos:m.start()])
            for sel, decl in re.findall(r"([^{}]+)\{([^{}]*)\}", css[m.end():i - 1]):
                scoped = ", ".join(f"{DARK} {s.strip()}" for s in sel.split(",") if s.strip())
                out.append(f"{scoped} {{{decl}}}\n")
            pos = i
        out.append(css[pos:])
        out.append("\n/* notebook outputs */\n"
                   ".sg-nb .sg-figure { margin: .5rem 0; }\n"
                   ".sg-nb-problems { margin: .4rem 0; padding: .25rem .75rem; border-left: 4px solid #A63D0A; }\n"
                   ".sg-nb-problems.sg-nb-warnings { border-left-color: #E69F00; }\n"
                   ".sg-nb-problems ul { margin: .2rem 0; padding-left: 1.2rem; }\n"
                   ".sg-nb-feed { font-size: .85em; opacity: .85; margin: 0; }\n"
                   ".sg-nb-feed p { margin: 0; }\n")
        _ASSETS["css"] = "".join(out)
    return _ASSETS["css"]


def _css_island() -> str:
    css = notebook_css()
    version = hashlib.sha256(css.encode()).hexdigest()[:10]
    return json_island(css, "sg-nb-css").replace("<script ", f'<script data-v="{version}" ', 1)


def _where(problem: Problem) -> str:
    return f"template line {problem.line}: " if problem.line else ""


def _clean(message: str, kind: str, known: tuple[str, ...]) -> str:
    for prefix in (f"{kind}: ", "expression: ", "chart: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    return _python_names(message, known)


def problems_html(problems: list[Problem], kind: str, known: tuple[str, ...], drawn: bool) -> str:
    """Errors and warnings as plain HTML (no script or style needed, so every notebook shows them)."""
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level != "error"]
    out = []
    if errors:
        items = "".join(f"<li>{esc(_where(p) + _clean(p.message, kind, known))}</li>" for p in errors)
        out.append(f'<div class="sg-nb-problems" role="alert"><p><strong>Figure not drawn.</strong> '
                   f'Fix this and run the cell again:</p><ul>{items}</ul></div>')
    if warnings:
        items = "".join(f"<li>{esc(_where(p) + _clean(p.message, kind, known))}</li>" for p in warnings)
        out.append(f'<div class="sg-nb-problems sg-nb-warnings"><p><strong>Warning{"s" if len(warnings) > 1 else ""}'
                   f'</strong>:</p><ul>{items}</ul></div>')
    return "".join(out)


def problems_text(problems: list[Problem], kind: str, known: tuple[str, ...]) -> str:
    lines = []
    for p in problems:
        label = "error" if p.level == "error" else "warning"
        lines.append(f"{label}: {_where(p)}{_clean(p.message, kind, known)}")
    return "\n".join(lines)


def _as_frame(data, what: str = "data"):
    """A DataFrame from what a user may pass (DataFrame, dict of columns, list of row dicts, one row dict);
    a message (str) when it is none of those."""
    import pandas as pd

    if data is None:
        return None
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        one_row = all(isinstance(v, (str, bytes)) or not hasattr(v, "__len__") for v in data.values())
        try:
            return pd.DataFrame([data]) if one_row else pd.DataFrame(data)
        except ValueError as exc:
            return f"{what}: cannot make a table of this dict ({exc})"
    if isinstance(data, (list, tuple)) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(list(data))
    return (f"{what} must be a pandas DataFrame (or a dict of columns, or a list of row dicts), "
            f"not {type(data).__name__}")


# -- the notebook connection (swapped out by tests) ------------------------------------------------------
class Transport:
    """Sends outputs to the notebook through IPython's display machinery."""

    def show(self, bundle: dict, display_id: str) -> None:
        from IPython.display import display

        display(bundle, raw=True, display_id=display_id)

    def replace(self, bundle: dict, display_id: str) -> None:
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=display_id)


TRANSPORT: Transport = Transport()
_HANDLES: "weakref.WeakSet[_Handle]" = weakref.WeakSet()
_HOOKED: list = []


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with any notebook
        return None
    return get_ipython()


def _hook_cell_end() -> None:
    """Once per kernel: when a cell finishes, figures it updated send what is left and settle."""
    shell = _shell()
    if shell is None or _HOOKED:
        return
    shell.events.register("post_run_cell", _after_cell)
    _HOOKED.append(shell)


def _after_cell(result=None) -> None:
    for handle in list(_HANDLES):
        try:
            handle._end_of_cell()
        except Exception as exc:  # pragma: no cover - never break the user's next cell
            handle._status_problem(f"could not finish the live update ({type(exc).__name__}: {exc})")


# -- a figure in a notebook -------------------------------------------------------------------------------
class _Handle:
    kind = "expression"
    known: tuple[str, ...] = ()

    def __init__(self, data=None, template: str | None = None, **options):
        self._key = "sg" + secrets.token_hex(6)
        self._token = secrets.token_hex(6)
        self._name = str(options.pop("name", SOURCE) or SOURCE)
        self._settle = bool(options.pop("settle", True))
        self._interval = float(options.pop("interval", INTERVAL))
        self._options = {k.replace("_", "-"): option_text(k.replace("_", "-"), v)
                         for k, v in options.items() if v is not None}
        self._template = template
        self._problem: str | None = None        # bad arguments: shown instead of the figure
        self._chunks: list = []
        self._version = 0
        self._drawn: tuple[int, Drawn] | None = None
        self._displays: list[tuple[int, str]] = []
        self._shown = 0
        self._seq = 0
        self._channel: str | None = None
        self._channel_notes: list[str] = []
        self._pending: list = []                 # (raw rows, traced rows) not yet sent
        self._redraw_due = False
        self._touched = False
        self._streamed = False                   # live messages went out since the last full drawing
        self._last_send = 0.0
        self._live = None
        #: what went to the browser after the first showing: (kind, bytes) per message (the last 10,000),
        #: for tests and benchmarks
        self.sent: deque[tuple[str, int]] = deque(maxlen=10_000)
        frame = _as_frame(data)
        if isinstance(frame, str):
            self._problem = frame
        elif frame is not None:
            self._chunks.append(frame)
        self._check_arguments()
        _HANDLES.add(self)

    def _check_arguments(self) -> None:
        pass

    # -- the table --------------------------------------------------------------------------------
    @property
    def data(self):
        """The whole table so far (the rows given plus every appended chunk), as one DataFrame."""
        import pandas as pd

        if not self._chunks:
            return None
        if len(self._chunks) > 1:
            self._chunks = [pd.concat(self._chunks, ignore_index=True)]
        return self._chunks[0]

    def _render(self) -> Drawn | None:
        if self._problem:
            return None
        if self._drawn is None or self._drawn[0] != self._version:
            table = self.data
            if table is None:
                return None
            drawn = draw(self.kind, table, self._template, self._options, self._token, self._name)
            self._drawn = (self._version, drawn)
            self._after_draw(drawn)
        return self._drawn[1]

    def _after_draw(self, drawn: Drawn) -> None:
        pass

    # -- what a cell shows -------------------------------------------------------------------------
    def _bundle(self, n: int) -> dict:
        drawn = self._render()
        if self._problem:
            return {"text/html": f'<div class="sg-nb">{_problem_box(self._problem)}</div>',
                    "text/plain": f"error: {self._problem}"}
        if drawn is None:
            note = ("No rows yet: the figure appears with the first rows sent with "
                    f"<code>.append(rows)</code> or <code>.update(df)</code>.")
            return {"text/html": f'<div class="sg-nb"><p class="sg-nb-waiting">{note}</p></div>',
                    "text/plain": "No rows yet: the figure appears with the first rows."}
        parts = ['<div class="sg-nb">']
        if drawn.ok:
            html = drawn.html.replace(self._token, f"{self._token}n{n}")
            html = html.replace("<figure ", f'<figure data-sg-key="{self._key}" ', 1)
            if drawn.picture:
                svg, w, h = drawn.picture
                src = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
                parts.append(f'<img class="sg-nb-static" src="{src}" width="{w}" height="{h}" alt="{esc(drawn.alt)}">')
            parts.append(f'<div class="sg-nb-live" hidden>{html}</div>')
        parts.append(problems_html(drawn.problems, self.kind, self.known, drawn.ok))
        if drawn.ok:
            parts.append(_css_island())
            parts.append(f"<script>{_runtime()}</script>")
        parts.append("</div>")
        text = self._summary(drawn) if drawn.ok else "Figure not drawn."
        extra = problems_text(drawn.problems, self.kind, self.known)
        return {"text/html": "".join(parts), "text/plain": text + ("\n" + extra if extra else "")}

    def _summary(self, drawn: Drawn) -> str:
        return f"<sitegen {self.kind}>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        self._shown += 1
        return self._bundle(self._shown)

    def _repr_html_(self) -> str:
        self._shown += 1
        return self._bundle(self._shown)["text/html"]

    def __repr__(self) -> str:
        drawn = self._render()
        return self._summary(drawn) if drawn is not None and drawn.ok else f"<sitegen {self.kind} (not drawn)>"

    def _ipython_display_(self) -> None:
        """Shown as the value of a cell or with ``display(fig)``: one output per showing, each with its
        own display id (so a redraw reaches every copy) and its own element ids."""
        self._shown += 1
        display_id = f"{self._key}-{self._shown}"
        TRANSPORT.show(self._bundle(self._shown), display_id)
        self._displays.append((self._shown, display_id))
        _hook_cell_end()

    def show(self):
        """Show the figure in the current cell (the same as ``display(fig)``)."""
        self._ipython_display_()
        return None

    # -- live updates ----------------------------------------------------------------------------------
    def append(self, rows) -> None:
        """Add rows (a DataFrame in the table's shape, a dict of columns or a list of row dicts) and show
        them: shown figures receive only these rows, at most once per ``interval`` seconds."""
        frame = _as_frame(rows, "append()")
        if isinstance(frame, str):
            self._status_problem(frame)
            return
        if frame is None or len(frame) == 0:
            return
        table = self.data
        if table is not None and set(map(str, frame.columns)) != set(map(str, table.columns)):
            self._status_problem(f"append(): the rows have columns {', '.join(map(str, frame.columns))} but the "
                                 f"table has {', '.join(map(str, table.columns))}; these rows were not added")
            return
        traced = None
        if self._live is not None:
            try:
                traced = to_traced(frame, _columns(self._options), self._name)
            except ValueError as exc:
                self._status_problem(f"append(): {exc}; these rows were not added")
                return
        self._chunks.append(frame)
        self._version += 1
        self._pending.append((frame, traced))
        self._touched = True
        self._maybe_send()

    def update(self, data) -> None:
        """Show ``data`` as the figure's whole table. When it is the old table with rows added at the end,
        only those rows travel (as with :meth:`append`); otherwise every shown copy is redrawn."""
        frame = _as_frame(data, "update()")
        if isinstance(frame, str):
            self._status_problem(frame)
            return
        if frame is None:
            return
        old = self.data
        n = 0 if old is None else len(old)
        if (old is not None and n and len(frame) >= n and list(frame.columns) == list(old.columns)
                and frame.iloc[n - 1].equals(old.iloc[n - 1]) and frame.iloc[0].equals(old.iloc[0])):
            if len(frame) > n:
                self.append(frame.iloc[n:])
            return
        self._chunks = [frame]
        self._version += 1
        self._pending.clear()
        self._redraw_due = True
        self._touched = True
        self._maybe_send()

    def flush(self) -> None:
        """Send rows held back by the interval now."""
        self._send()

    def _maybe_send(self) -> None:
        if time.monotonic() - self._last_send >= self._interval:
            self._send()

    def _send(self) -> None:
        if not self._displays:
            self._pending.clear()  # nothing shown: the rows are in the table for the next showing
            self._redraw_due = False
            return
        if self._redraw_due or (self._pending and self._live is None):
            self._pending.clear()
            self._redraw_due = False
            self._redraw()
        elif self._pending:
            pending, self._pending = self._pending, []
            result = self._delta(pending)
            if result == "redraw":
                self._redraw()
            elif result:
                self._send_updates([result])
        self._last_send = time.monotonic()

    def _delta(self, pending):  # pragma: no cover - charts have none
        return "redraw"

    def _redraw(self) -> None:
        """Every shown copy, drawn again from the whole table (not a live message: a full output)."""
        self._streamed = False
        for n, display_id in self._displays:
            bundle = self._bundle(n)
            TRANSPORT.replace(bundle, display_id)
            self.sent.append(("redraw", len(bundle["text/html"].encode("utf-8"))))

    def _channel_bundle(self, updates: list[dict] | None, status: str) -> dict:
        notes = "".join(f"<br>{esc(n)}" for n in self._channel_notes[-5:])
        html = f'<div class="sg-nb-feed"><p class="sg-nb-status">{esc(status)}{notes}</p>'
        if updates:
            html += json_island({"v": 1, "updates": updates}, "sg-delta")
            html += "<script>window.sitegenNotebook&&window.sitegenNotebook.take(document.currentScript)</script>"
        html += "</div>"
        text = status + "".join("\n" + n for n in self._channel_notes[-5:])
        return {"text/html": html, "text/plain": text}

    def _send_channel(self, bundle: dict) -> None:
        if self._channel is None:
            self._channel = f"{self._key}-feed-{secrets.token_hex(3)}"
            TRANSPORT.show(bundle, self._channel)
        else:
            TRANSPORT.replace(bundle, self._channel)

    def _send_updates(self, updates: list[dict]) -> None:
        last = updates[-1]["steps"][-1]
        bundle = self._channel_bundle(updates, f"Live: figure at step {last:,}.")
        self._send_channel(bundle)
        self._streamed = True
        self.sent.append(("update", len(bundle["text/html"].encode("utf-8"))))

    def _status_problem(self, message: str) -> None:
        """A problem met while updating: shown under the cell that caused it, never raised."""
        message = _python_names(message, self.known)
        if message not in self._channel_notes:
            self._channel_notes.append(message)
        self._send_channel(self._channel_bundle(None, "The figure was not updated:"))

    def _end_of_cell(self) -> None:
        if self._touched and self._displays:
            if self._settle and (self._pending or self._redraw_due or self._streamed):
                self._pending.clear()
                self._redraw_due = False
                self._redraw()
                if self._channel is not None:
                    TRANSPORT.replace(self._channel_bundle(None, self._final_status()), self._channel)
            else:
                self._send()
        self._touched = False
        self._channel = None
        self._channel_notes = []

    def _final_status(self) -> str:
        return "Figure redrawn from the whole table."

    # -- one step from notebook to post ------------------------------------------------------------------
    def save(self, name: str) -> "Saved":
        """Write the table to ``NAME.parquet`` (and, for an expression, the template to ``NAME.expr``),
        the files a post's directive reads; returns the directive to paste into the post."""
        import pandas as pd

        base = Path(name)
        if base.suffix in (".parquet", ".expr"):
            base = base.with_suffix("")
        table = self.data
        if table is None:
            return Saved([], "", "nothing to save: the figure has no rows yet")
        frame = table if isinstance(table.index, pd.RangeIndex) else table.reset_index()
        frame = frame.rename(columns=lambda c: str(c))
        written = []
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(base.with_suffix(".parquet"), index=False)
            written.append(str(base.with_suffix(".parquet")))
            if self.kind == "expression":
                base.with_suffix(".expr").write_text((self._template or "").rstrip("\n") + "\n", encoding="utf-8")
                written.append(str(base.with_suffix(".expr")))
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            return Saved(written, "", f"could not write {base}: {detail}")
        return Saved(written, self.directive(base), "", len(frame))

    def save_html(self, path, title: str | None = None):
        """One self-contained page with this figure, animation included, that opens from disk (sitegen/standalone.py)."""
        from sitegen.standalone import save_html
        return save_html(self, path, title)

    def directive(self, name: str | Path) -> str:
        """The directive block that shows this figure in a post, reading ``NAME.parquet`` (and ``NAME.expr``)."""
        base = Path(name)
        if base.suffix in (".parquet", ".expr"):
            base = base.with_suffix("")
        lines = [f"```{{{self.kind}}} {base.with_suffix('.parquet').as_posix()}"]
        if self.kind == "expression":
            lines.append(f":template: {base.with_suffix('.expr').as_posix()}")
        for key, value in self._options.items():
            if key not in ("template", "data"):
                lines.append(f":{key}: {value}".rstrip())
        lines.append("```")
        return "\n".join(lines)


def _columns(options: dict[str, str]) -> dict[str, str]:
    from sitegen.directives.options import mapping

    try:
        return mapping("columns", options.get("columns", ""))
    except ValueError:
        return {}


def _problem_box(message: str) -> str:
    return (f'<div class="sg-nb-problems" role="alert"><p><strong>Figure not drawn.</strong> '
            f'Fix this and run the cell again:</p><ul><li>{esc(message)}</li></ul></div>')


@dataclass
class Saved:
    """What :meth:`Figure.save` wrote, and the directive for the post (shown in the cell)."""

    files: list[str]
    directive: str
    problem: str = ""
    rows: int = 0

    def _repr_mimebundle_(self, include=None, exclude=None):
        if self.problem:
            return {"text/plain": f"error: {self.problem}",
                    "text/html": f'<div class="sg-nb">{_problem_box(self.problem)}</div>'}
        files = " and ".join(f"<code>{esc(f)}</code>" for f in self.files)
        return {"text/plain": f"Saved {', '.join(self.files)} ({self.rows:,} rows). In a post:\n\n{self.directive}",
                "text/html": f"<p>Saved {files} ({self.rows:,} rows). In a post:</p>"
                             f"<pre><code>{esc(self.directive)}</code></pre>"}

    def __str__(self) -> str:
        return self.directive


class Figure(_Handle):
    """An expression figure shown in a notebook; see :func:`figure`."""

    kind = "expression"

    @property
    def known(self):
        from sitegen.directives.expression import OPTIONS

        return tuple(OPTIONS) + OWN

    def _check_arguments(self) -> None:
        if self._problem:
            return
        if isinstance(self._template, str) and not self._template.strip():
            self._template = None
        if self._template is None or not isinstance(self._template, (str, Path)):
            self._problem = ("figure() needs a template: the model as text with ⟦name⟧ where each parameter "
                             "goes, e.g. figure(df, \"y = ⟦w⟧ * x + ⟦b⟧\")" if self._template is None else
                             f"the template must be text, not {type(self._template).__name__}")
            return
        if isinstance(self._template, Path):
            try:
                self._template = self._template.read_text(encoding="utf-8")
            except OSError as exc:
                self._problem = f"cannot read the template {self._template}: {exc.strerror or exc}"

    def _summary(self, drawn: Drawn) -> str:
        isl = drawn.island or {}
        phs = len(isl.get("ph", []))
        exps = len(isl.get("exps") or []) or 1
        runs = sum(len(r) for r in isl.get("runs", []))
        steps = isl.get("steps") or []
        at = f", shown at step {steps[-1]:,}" if steps else ""
        return f"<sitegen figure: {phs} placeholder(s), {exps} experiment(s), {runs} run(s){at}>"

    def _after_draw(self, drawn: Drawn) -> None:
        self._live = None
        if drawn.ok and drawn.island is not None and drawn.traced is not None and drawn.traced.has_step:
            try:
                self._live = _LiveExpression(drawn, self._template, self._options)
            except Exception:  # pragma: no cover - live updates fall back to full redraws
                self._live = None

    def _delta(self, pending):
        import pandas as pd

        live = self._live
        if live is None or any(t is None for _, t in pending):
            return "redraw"
        frame = pending[0][1].frame if len(pending) == 1 else pd.concat([t.frame for _, t in pending],
                                                                         ignore_index=True)
        update = live.delta(frame)
        if update in (None, "redraw"):
            return update
        self._seq += 1
        update["key"] = self._key
        update["seq"] = self._seq
        for problem in live.notes:
            if problem not in self._channel_notes:
                self._channel_notes.append(problem)
        live.notes.clear()
        return update

    def _redraw(self) -> None:
        super()._redraw()
        self._seq += 1  # updates built for the old drawing are stale for the new one

    def _final_status(self) -> str:
        live = self._live
        if live is not None:
            return f"Training shown up to step {live.last_step:,}; figure redrawn from the whole table."
        return super()._final_status()


class Chart(_Handle):
    """A line chart shown in a notebook; see :func:`chart`."""

    kind = "chart"

    @property
    def known(self):
        from sitegen.directives.chart import OPTIONS

        return tuple(OPTIONS) + OWN

    def _summary(self, drawn: Drawn) -> str:
        isl = drawn.island or {}
        return f"<sitegen chart: {len(isl.get('series', []))} series of {isl.get('ylabel', 'y')} against {isl.get('xlabel', 'x')}>"

    def _final_status(self) -> str:
        return "Chart redrawn from the whole table."


# -- live state of an expression figure ---------------------------------------------------------------
class _LiveExpression:
    """What the browser holds of one drawn expression figure, so a chunk of new rows becomes a small
    message: the values of every dot at each new step (carried forward like the site's frames), the
    axes when they must move, and the warnings a build would give (via strips' own checks)."""

    def __init__(self, drawn: Drawn, template: str, options: dict[str, str]):
        import numpy as np

        from sitegen.directives.expression import read_options
        from sitegen.figures.template import parse as parse_template

        isl = drawn.island
        call = Call("expression", SOURCE, dict(options), {}, template, 0, 1)
        self.opts = read_options(call)
        self.template = parse_template(template)
        self.placeholders = self.template.placeholders
        self.exps = list(isl["exps"]) or ["all"]
        self.runs = [list(r) for r in isl["runs"]]
        self.ph = [dict(p) for p in isl["ph"]]
        self.names = list(dict.fromkeys(p["name"] for p in self.ph))
        self.uidx = {n: i for i, n in enumerate(self.names)}
        self.dot = {}
        k = 0
        for e, rs in enumerate(self.runs):
            for r in rs:
                self.dot[(self.exps[e], r)] = k
                k += 1
        self.per = k
        self.frames = len(isl.get("steps") or [1])
        self.last_step = int(isl["steps"][-1])
        self.notes: list[str] = []
        U = len(self.names)
        self.last = np.full((U, k), np.nan)
        self.vmin = np.full((U, k), np.nan)
        self.vmax = np.full((U, k), np.nan)
        self.count = np.zeros((U, k), dtype=np.int64)
        self.nonfinite = np.zeros(U, dtype=np.int64)
        self.bounds = self._bounds(drawn.traced.frame)
        u, d, s, v = self._locate(drawn.traced.frame)
        if len(u):
            order = np.lexsort((s, u * k + d))
            lin = (u * k + d)[order]
            is_last = np.ones(len(lin), dtype=bool)
            is_last[:-1] = lin[1:] != lin[:-1]
            self.last.reshape(-1)[lin[is_last]] = v[order][is_last]
            self._account(u, d, v)

    # -- rows -> (parameter, dot, step, value) --------------------------------------------------------
    def _locate(self, frame):
        """Rows that are dots of this figure, as index arrays; raises _Redraw for rows that would change
        its shape (a new experiment or run it would show, a step before its last)."""
        import numpy as np
        import pandas as pd

        opts = self.opts
        u = _codes(frame["param"], self.uidx)
        keep = u >= 0
        if "step" not in frame.columns:
            raise _Redraw()
        steps = frame["step"].to_numpy(dtype=np.int64)
        if opts.steps:
            lo, hi = opts.steps
            if lo is not None:
                keep &= steps >= lo
            if hi is not None:
                keep &= steps <= hi
        # (experiment, run) -> dot through the categories' codes: a table has millions of rows, few pairs
        exps = _category(frame["experiment"])
        runs = _category(frame["run"])
        ec = exps.cat.codes.to_numpy(dtype=np.int64)
        rc = runs.cat.codes.to_numpy(dtype=np.int64)
        width = len(runs.cat.categories) + 1
        pair = ec * width + rc
        table = {}
        for code in np.unique(pair[keep & (ec >= 0) & (rc >= 0)]).tolist():
            e, r = str(exps.cat.categories[code // width]), str(runs.cat.categories[code % width])
            k = self.dot.get((e, r))
            if k is None and self._would_show(e, r):
                raise _Redraw()
            table[code] = -1 if k is None else k
        d = np.full(len(frame), -1, dtype=np.int64)
        if table:
            codes = np.fromiter(table.keys(), dtype=np.int64)
            dots = np.fromiter(table.values(), dtype=np.int64)
            at = np.searchsorted(codes, pair)  # table's keys come sorted from np.unique
            at = np.clip(at, 0, len(codes) - 1)
            d = np.where(codes[at] == pair, dots[at], -1)
        keep &= d >= 0
        values = frame["value"].to_numpy(dtype="float64")
        return u[keep], d[keep], steps[keep], values[keep]

    def _would_show(self, e: str, r: str) -> bool:
        opts = self.opts
        if opts.experiments and e not in opts.experiments:
            return False
        if opts.runs and r not in opts.runs:
            return False
        if e in self.exps and opts.max_runs is not None and len(self.runs[self.exps.index(e)]) >= opts.max_runs:
            return False
        return True

    def _bounds(self, frame) -> dict:
        from sitegen.figures.strips import bound_columns, placeholder_bounds

        cols = bound_columns(frame)
        return {name: placeholder_bounds(next(p for p in self.placeholders if p.name == name), self.opts, cols)
                for name in self.names}

    def _account(self, u, d, v) -> None:
        import numpy as np

        finite = np.isfinite(v)
        np.add.at(self.nonfinite, u[~finite], 1)
        uf, df, vf = u[finite], d[finite], v[finite]
        flat = uf * self.per + df
        np.fmin.at(self.vmin.reshape(-1), flat, vf)
        np.fmax.at(self.vmax.reshape(-1), flat, vf)
        np.add.at(self.count.reshape(-1), flat, 1)

    # -- a chunk of new rows -> one message ---------------------------------------------------------------
    def delta(self, frame):
        import numpy as np

        try:
            u, d, s, v = self._locate(frame)
        except _Redraw:
            return "redraw"
        if not len(u):
            return None
        if (s < self.last_step).any():
            return "redraw"  # rows for steps already drawn: carried-forward frames would change
        base = self.last_step
        new_steps = np.unique(s)
        order = np.argsort(s, kind="stable")
        u, d, s, v = u[order], d[order], s[order], v[order]
        cuts = np.searchsorted(s, new_steps, side="left").tolist() + [len(s)]
        U, K = len(self.names), self.per
        out = np.empty((len(new_steps), U, K), dtype=np.float64)
        current = self.last.copy()
        for i in range(len(new_steps)):
            a, b = cuts[i], cuts[i + 1]
            current[u[a:b], d[a:b]] = v[a:b]  # the last row of a dot at a step wins, as in the site's figure
            out[i] = current
        self.last = current
        self._account(u, d, v)
        added = len(new_steps) - (1 if new_steps[0] == self.last_step else 0)
        self.frames += added
        self.last_step = int(new_steps[-1])
        update = {"base": base, "steps": [int(x) for x in new_steps],
                  "values": base64.b64encode(out.astype("<f4").tobytes()).decode("ascii")}
        axes = self._axes()
        if axes != [(p["lo"], p["hi"]) for p in self.ph]:
            for p, (lo, hi) in zip(self.ph, axes):
                p["lo"], p["hi"] = lo, hi
            update["axes"] = [[lo, hi] for lo, hi in axes]
        badges = self._badges()
        if badges != [p["badges"] for p in self.ph]:
            for p, b in zip(self.ph, badges):
                p["badges"] = b
            update["badges"] = badges
        return update

    def _axes(self) -> list[tuple[float, float]]:
        """Each placeholder's axis as strips.build would choose it for the table so far (the log/linear
        choice stays as drawn until the figure is redrawn)."""
        import numpy as np

        from sitegen.figures import scale
        from sitegen.figures.strips import _glob_get, axis_extent

        out = []
        for p in self.ph:
            name = p["name"]
            i = self.uidx[name]
            if self.opts.axis == "auto":  # strips' rule, from the [min, max, last] kept per dot
                extent = axis_extent(np.stack([self.vmin[i], self.vmax[i], self.last[i]], axis=1), "auto",
                                     p["log"], self.per == 1)
            elif self.opts.axis == "final":
                vals = self.last[i][np.isfinite(self.last[i])]
                extent = [float(vals.min()), float(vals.max())] if vals.size else []
            else:
                lo = self.vmin[i][np.isfinite(self.vmin[i])]
                hi = self.vmax[i][np.isfinite(self.vmax[i])]
                extent = [float(lo.min()), float(hi.max())] if lo.size else []
            ph0 = next(x for x in self.placeholders if x.name == name)
            fixed = ph0.range or self.opts.ranges.get(name) or _glob_get(self.opts.ranges, name)
            if p["log"] and extent and min(extent) <= 0:
                extent = [x for x in extent if x > 0]
            out.append(tuple(scale.domain(extent, log=p["log"], fixed=fixed)) if extent else (p["lo"], p["hi"]))
        return out

    def _badges(self) -> list[list[str]]:
        """strips' own checks, fed a three-column stand-in for each parameter's dots x frames block:
        [min, max, last] gives the same spread (frozen?), the same last values (on a bound?)."""
        import numpy as np

        from sitegen.figures.strips import _checks

        out = []
        for p in self.ph:
            i = self.uidx[p["name"]]
            lo = np.where(self.count[i] >= 2, self.vmin[i], np.nan)
            hi = np.where(self.count[i] >= 2, self.vmax[i], np.nan)
            block = np.stack([lo, hi, self.last[i]], axis=1)
            out.append(_checks(p["name"], block, self.frames, int(self.nonfinite[i]), self.bounds[p["name"]],
                               True, self.per))
        return out


class _Redraw(Exception):
    pass


def _category(series):
    import pandas as pd

    return series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype(str).astype("category")


def _codes(series, index: dict[str, int]):
    """Each value's position in ``index`` (-1 when absent), computed once per distinct value."""
    import numpy as np

    series = _category(series)
    table = np.array([index.get(str(c), -1) for c in series.cat.categories] + [-1], dtype=np.int64)
    return table[series.cat.codes.to_numpy(dtype=np.int64)]
