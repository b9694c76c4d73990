"""Tracing a Lightning fit in one line: ``Trainer(callbacks=[TraceCallback("data/run.parquet")])``.

Records the LightningModule's parameters at the start and every ``every`` optimizer steps
(``trainer.global_step``), streams them with ``live=True``, and writes the table when the fit ends.
With ``metrics=True`` (the default) the scalars the module logs (``self.log("train_loss", ...)``)
ride along as extra columns, so ``{chart}`` draws them from the same table (``:y: train_loss``).
Only the global-zero process records. Imports ``lightning`` (or ``pytorch_lightning``) when this
module is imported, never before.
"""
from __future__ import annotations

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError:
        raise ImportError("sitegen.trace.lightning_callback needs Lightning: pip install 'sitegen[lightning]'") \
            from None

from sitegen.trace.params import ParameterRecorder


class TraceCallback(Callback):
    """A Lightning ``Callback`` recording every named parameter (or ``params=``) every ``every`` steps.

    Options are :class:`~sitegen.trace.params.ParameterRecorder`'s (``every``, ``params``,
    ``transforms``, ``experiment``, ``run``, ``live``, ``tracer``) plus ``metrics``.
    """

    def __init__(self, path=None, *, metrics: bool = True, **options):
        super().__init__()
        self.recorder = ParameterRecorder(path, **options)
        self.metrics = metrics

    @property
    def tracer(self):
        return self.recorder.tracer

    def _extra(self, trainer) -> dict[str, float]:
        if not self.metrics:
            return {}
        out = {}
        for key, value in trainer.callback_metrics.items():
            try:
                if getattr(value, "numel", lambda: 1)() == 1:
                    out[key] = float(value)
            except (TypeError, ValueError):
                continue
        return out

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.recorder.record(trainer.global_step, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and self.recorder.due(step):
            self.recorder.record(step, pl_module, self._extra(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        self.recorder.record(trainer.global_step, pl_module, self._extra(trainer))   # the final values
        self.recorder.write()
