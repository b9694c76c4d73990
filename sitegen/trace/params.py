"""Every named parameter of a torch model, every N steps, into a :class:`Tracer` table.

The part the training-loop integrations share (:mod:`~sitegen.trace.lightning_callback`,
:mod:`~sitegen.trace.hf_callback`, :mod:`~sitegen.trace.torch_hook`): which parameters (all, or
names and globs), renamed and constrained by ``transforms`` as in :meth:`Tracer.record_module`, at
which steps, streamed while training with ``live=True`` exactly as ``Tracer(live=...)`` streams,
and the table written once at the end (or at exit, for a loop that never says it ended).
"""
from __future__ import annotations

import atexit
import fnmatch
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from sitegen.trace.names import _apply_transform
from sitegen.trace.tracer import Tracer


class ParameterRecorder:
    """Records ``module``'s parameters into ``path`` (``data/NAME.parquet``) every ``every`` steps.

    ``params``: names or globs (``"encoder.*"``, ``"*.bias"``) of the parameters to record, matched
    against ``named_parameters()`` names; all of them when None. ``transforms``: ``{raw: (name,
    function)}`` records ``function(raw)`` under ``name`` (``{"raw_noise": ("noise", softplus)}``).
    ``experiment`` and ``run`` label the rows (default: the table's name and 0); ``metrics``: with
    the Lightning callback, the trainer's logged scalars ride along as extra columns.
    ``live``: stream parts into ``data/NAME.parts/`` for ``sitegen serve`` while training.
    ``tracer``: record into a Tracer of your own instead (several runs in one table); then
    writing it is yours too.
    """

    def __init__(self, path: str | Path | None = None, *, every: int = 10, params: Iterable[str] | None = None,
                 transforms: Mapping[str, tuple[str, Callable]] | None = None, experiment: Any = None,
                 run: Any = None, live: bool = False, tracer: Tracer | None = None, chunk_steps: int = 50,
                 live_seconds: float = 0.5):
        if every < 1:
            raise ValueError("every must be at least 1 (record every N optimizer steps)")
        if path is None and tracer is None:
            raise ValueError("give the table to write (e.g. 'data/run.parquet') or a tracer=")
        self.path = Path(path) if path is not None else None
        self.every = int(every)
        self.params = list(params) if params is not None else None
        self.transforms = dict(transforms or {})
        self.experiment = experiment if experiment is not None else (self.path.stem if self.path else None)
        self.run = run if run is not None else 0
        self.own_tracer = tracer is None
        self.tracer = tracer if tracer is not None else Tracer(
            chunk_steps, live=self.path if live else None, live_seconds=live_seconds)
        self.last_step: int | None = None
        self.written = False
        self._selected: list[tuple[str, str, Callable | None]] | None = None
        if self.own_tracer:
            atexit.register(self._at_exit)

    def due(self, step: int) -> bool:
        return step != self.last_step and step % self.every == 0

    def record(self, step: int, module, extra: Mapping[str, float] | None = None) -> None:
        """Record the selected parameters of ``module`` at ``step`` (once per step)."""
        if step == self.last_step:
            return
        import torch

        named = dict(module.named_parameters())
        if self._selected is None:
            self._selected = self._select(list(named))
        values = {}
        with torch.no_grad():
            for raw, name, fn in self._selected:
                p = named[raw].detach()
                values[name] = fn(p) if fn is not None else p
        self.tracer.record(step, values, experiment=self.experiment, run=self.run, extra=extra or None)
        self.last_step = step

    def _select(self, names: list[str]) -> list[tuple[str, str, Callable | None]]:
        if self.params is None:
            chosen = names
        else:
            chosen = [n for n in names if any(n == p or fnmatch.fnmatchcase(n, p) for p in self.params)]
            missing = [p for p in self.params if not any(n == p or fnmatch.fnmatchcase(n, p) for n in names)]
            if missing:
                from sitegen.errors import closest

                near = closest(missing[0], names)
                raise ValueError(f"no parameter matches {missing[0]!r}"
                                 + (f"; did you mean {near[0]!r}?" if near else "")
                                 + f" (the model has: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")
        out = []
        for raw in chosen:
            name, fn = _apply_transform(raw, self.transforms)
            out.append((raw, name, fn))
        return out

    def write(self) -> Path | None:
        """Write the table (finishing a live run); only once, and only for a tracer of our own."""
        if self.written or not self.own_tracer or self.path is None:
            return None
        self.written = True
        atexit.unregister(self._at_exit)
        return self.tracer.write(self.path)

    def _at_exit(self) -> None:
        if not self.written and len(self.tracer):
            self.write()
