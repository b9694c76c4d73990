"""A figure in a notebook: the handle behind figure() and chart().

It holds the table (the rows given plus appended chunks), draws it through the directive, shows it as
an output (live HTML and a static picture), sends live updates (only new rows) at most once per
``interval``, settles to a full redraw when the cell ends, and saves the table for a post.
"""
from __future__ import annotations

import base64
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from sitegen.data import to_traced
from sitegen.figures.svg import esc, json_island
from sitegen.notebook import transport, values
from sitegen.notebook.bundle import _css_island, _runtime
from sitegen.notebook.draw import Drawn, draw
from sitegen.notebook.keywords import INTERVAL, SOURCE, _as_frame, _columns, _python_names, option_text
from sitegen.notebook.problems import _problem_box, problems_html, problems_text


class _Handle:
    kind = "expression"
    known: tuple[str, ...] = ()

    def __init__(self, data=None, template: str | None = None, **options):
        self._key = "sg" + secrets.token_hex(6)
        self._token = secrets.token_hex(6)
        self._name = str(options.pop("name", SOURCE) or SOURCE)
        self._settle = bool(options.pop("settle", True))
        interval = options.pop("interval", INTERVAL)
        try:
            self._interval = float(interval)
            bad_interval = not (0 <= self._interval < float("inf"))
        except (TypeError, ValueError):
            bad_interval = True
        if bad_interval:
            self._interval = INTERVAL
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
        self._held: Drawn | None = None          # the drawing every shown copy holds (None: they differ)
        self._last_send = 0.0
        self._live_state = None                  # what live updates of the current drawing need (views)
        self._live_from: Drawn | None = None     # the drawing it is made from, when first needed
        #: what went to the browser after the first showing: (kind, bytes) per message (the last 10,000),
        #: for tests and benchmarks
        self.sent: deque[tuple[str, int]] = deque(maxlen=10_000)
        frame = _as_frame(data)
        if bad_interval:
            self._problem = f"interval={interval!r} must be a number of seconds (0 or more), e.g. interval=0.5"
        elif isinstance(frame, str):
            self._problem = frame
        elif frame is not None:
            self._chunks.append(frame)
        self._check_arguments()
        transport._HANDLES.add(self)

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

    @property
    def _live(self):
        """The live state of the drawing shown (None: rows arriving redraw the figure), made on first use."""
        if self._live_from is not None:
            drawn, self._live_from = self._live_from, None
            self._live_state = self._make_live(drawn)
        return self._live_state

    def _make_live(self, drawn: Drawn):  # pragma: no cover - charts have none
        return None

    # -- what a cell shows -------------------------------------------------------------------------
    def _bundle(self, n: int) -> dict:
        drawn = self._render()
        if self._problem:
            return {"text/html": f'<div class="sg-nb">{_problem_box(self._problem)}</div>',
                    "text/plain": f"error: {self._problem}"}
        if drawn is None:
            note = ("No rows yet: the figure appears with the first rows sent with "
                    "<code>.append(rows)</code> or <code>.update(df)</code>.")
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
        if drawn is not None and drawn.ok:
            return self._summary(drawn)
        # Outside a notebook this is all a user sees: say why, as the cell would.
        why = self._problem or (problems_text(drawn.problems, self.kind, self.known) if drawn is not None
                                else "no data yet")
        return f"<sitegen {self.kind} (not drawn: {why})>"

    def _ipython_display_(self) -> None:
        """Shown as the value of a cell or with ``display(fig)``: one output per showing, each with its
        own display id (so a redraw reaches every copy) and its own element ids."""
        self._shown += 1
        display_id = f"{self._key}-{self._shown}"
        transport.TRANSPORT.show(self._bundle(self._shown), display_id)
        drawn = self._drawn[1] if self._drawn is not None and not self._problem else None
        if not self._displays:
            self._held = drawn
        elif self._held is not drawn:
            self._held = None  # the copies shown before hold another drawing (or one grown live)
        self._displays.append((self._shown, display_id))
        transport._hook_cell_end()

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
        only those rows travel (as with :meth:`append`); when it draws a figure of the same shape (new
        values only), only the new values travel (``values``); otherwise every shown copy is redrawn."""
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
            self._refresh()
        elif self._pending:
            pending, self._pending = self._pending, []
            result = self._delta(pending)
            if result == "redraw":
                self._refresh()
            elif result:
                self._send_updates([result])
        self._last_send = time.monotonic()

    def _delta(self, pending):  # pragma: no cover - charts have none
        return "redraw"

    def _refresh(self) -> None:
        """The whole table shown again: as new values for the drawing every copy holds when only values
        changed (sitegen/notebook/values.py), else as every copy drawn again."""
        update = self._values_update()
        if update is None:
            self._redraw()
        elif update:
            self._send_values(update)

    def _values_update(self) -> dict | None:
        held, drawn = self._held, self._render()
        if held is None or drawn is None or self.kind != "expression":
            return None
        if drawn is held:
            return {}
        for d in (held, drawn):
            if d.parts is None:
                d.parts = values.split(d) or False
        update = values.message(held.parts or None, drawn.parts or None)
        if update:
            self._seq += 1
            update["key"] = self._key
            update["seq"] = self._seq
        return update

    def _send_values(self, update: dict) -> None:
        steps = (self._drawn[1].island or {}).get("steps") if self._drawn else None
        at = f" at step {steps[-1]:,}" if steps else ""
        bundle = self._channel_bundle([update], f"Live: figure shows the new values{at}.")
        self._send_channel(bundle)
        self._streamed = True
        self._held = self._drawn[1]
        self.sent.append(("values", len(bundle["text/html"].encode("utf-8"))))

    def _redraw(self) -> None:
        """Every shown copy, drawn again from the whole table (not a live message: a full output)."""
        self._streamed = False
        self._held = self._render() if not self._problem else None
        for n, display_id in self._displays:
            bundle = self._bundle(n)
            transport.TRANSPORT.replace(bundle, display_id)
            self.sent.append(("redraw", len(bundle["text/html"].encode("utf-8"))))

    def _channel_bundle(self, updates: list[dict] | None, status: str) -> dict:
        notes = "".join(f"<br>{esc(n)}" for n in self._channel_notes[-5:])
        html = f'<div class="sg-nb-feed"><p class="sg-nb-status">{esc(status)}{notes}</p>'
        if updates:
            html += json_island(_packed(updates), "sg-delta")
            html += "<script>window.sitegenNotebook&&window.sitegenNotebook.take(document.currentScript)</script>"
        html += "</div>"
        text = status + "".join("\n" + n for n in self._channel_notes[-5:])
        return {"text/html": html, "text/plain": text}

    def _send_channel(self, bundle: dict) -> None:
        if self._channel is None:
            self._channel = f"{self._key}-feed-{secrets.token_hex(3)}"
            transport.TRANSPORT.show(bundle, self._channel)
        else:
            transport.TRANSPORT.replace(bundle, self._channel)

    def _send_updates(self, updates: list[dict]) -> None:
        last = updates[-1]["steps"][-1]
        bundle = self._channel_bundle(updates, f"Live: figure at step {last:,}.")
        self._send_channel(bundle)
        self._streamed = True
        self._held = None  # the copies grew: their steps are no drawing's
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
                    transport.TRANSPORT.replace(self._channel_bundle(None, self._final_status()), self._channel)
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


def _packed(updates: list[dict]) -> dict:
    """The message as it travels: its updates gzipped (``z``, base64) when that is smaller, as it is for
    values messages (their digits, descriptions and frames compress by about a third)."""
    import gzip
    import json

    from sitegen.figures.svg import _finite

    text = json.dumps(_finite(updates), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    packed = base64.b64encode(gzip.compress(text, 9, mtime=0)).decode("ascii")
    return {"v": 1, "z": packed} if len(packed) < 0.9 * len(text) else {"v": 1, "updates": updates}


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
