"""Tracing a plain PyTorch loop in one line: a hook on the optimizer's ``step()``.

    trace = trace_optimizer(optimizer, model, "data/run.parquet", every=10)   # the one line

Every ``every``-th ``optimizer.step()`` records the model's parameters (the values before the
first step too); the table is written by ``trace.write()`` or, if the script never calls it, when
the process exits. Uses ``Optimizer.register_step_post_hook`` (torch 2.0 and later).
"""
from __future__ import annotations

from pathlib import Path

from sitegen.trace.params import ParameterRecorder


class OptimizerTrace(ParameterRecorder):
    """A :class:`ParameterRecorder` driven by an optimizer's steps; :meth:`remove` detaches it."""

    def __init__(self, optimizer, module, path: str | Path | None = None, **options):
        super().__init__(path, **options)
        self.module = module
        self.steps = 0
        self.record(0, module)   # where training starts
        self._handle = optimizer.register_step_post_hook(self._after_step)

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.steps += 1
        if self.due(self.steps):
            self.record(self.steps, self.module)

    def remove(self) -> None:
        """Stop recording (the table is still written by :meth:`write` or at exit)."""
        self._handle.remove()

    def write(self):
        if self.last_step != self.steps:
            self.record(self.steps, self.module)   # the final values, whatever the cadence
        return super().write()


def trace_optimizer(optimizer, module, path: str | Path | None = None, **options) -> OptimizerTrace:
    """Record ``module``'s parameters every ``every`` steps of ``optimizer`` into ``path``.

    Options are :class:`~sitegen.trace.params.ParameterRecorder`'s: ``every``, ``params``,
    ``transforms``, ``experiment``, ``run``, ``live``, ``tracer``.
    """
    return OptimizerTrace(optimizer, module, path, **options)
