"""Drawing a figure in a cell: the ``{expression}``/``{chart}`` directive renders a DataFrame as a post's
table, through a catalog that holds the one table and a page context that keeps everything inline."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitegen.context import PageContext
from sitegen.data import Catalog, to_traced
from sitegen.directives import Call
from sitegen.errors import Problem, SiteError
from sitegen.notebook.keywords import SOURCE
from sitegen.notebook.picture import _alt, picture


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
    alt: str = ""
    parts: Any = None               # its shape and values, once asked for (sitegen/notebook/values.py)
    _picture: Any = field(default=False, repr=False)   # False until first asked for

    @property
    def ok(self) -> bool:
        return bool(self.html)

    @property
    def picture(self) -> tuple[str, int, int] | None:
        """The static picture (svg, width, height), made when an output first needs it: a figure that
        only sends new values to the browser never draws one."""
        if self._picture is False:
            try:
                self._picture = picture(self.html) if self.html else None
            except Exception:  # pragma: no cover - the live figure still shows where scripts run
                self._picture = None
        return self._picture


def draw(kind: str, frame, template: str | None, options: dict[str, str], token: str,
         source: str = SOURCE) -> Drawn:
    """Render ``frame`` with the ``{expression}``/``{chart}`` directive, as a post would."""
    from sitegen.directives import load_builtin

    directive = load_builtin().directives[kind]
    from sitegen import markdown

    catalog = _FrameCatalog(frame, source)
    ctx = _CellContext(catalog, token)
    ctx.markup = markdown  # captions read as in a post: math, roles, code
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
    out.alt = _alt(html)
    return out
