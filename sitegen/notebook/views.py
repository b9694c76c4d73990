"""The two kinds of figure a notebook shows: an expression (:class:`Figure`, with live updates of only
the new rows) and a line chart (:class:`Chart`, redrawn in full)."""
from __future__ import annotations

from pathlib import Path

from sitegen.notebook.draw import Drawn
from sitegen.notebook.handle import _Handle
from sitegen.notebook.keywords import OWN
from sitegen.notebook.live_expression import _LiveExpression


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
        # made when rows are first appended to this drawing: a figure that only gets new tables never needs it
        self._live_state = None
        self._live_from = drawn if (drawn.ok and drawn.island is not None and drawn.traced is not None
                                    and drawn.traced.has_step) else None

    def _make_live(self, drawn: Drawn):
        try:
            return _LiveExpression(drawn, self._template, self._options)
        except Exception:  # pragma: no cover - live updates fall back to full redraws
            return None

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
