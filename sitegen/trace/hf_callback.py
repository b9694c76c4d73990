"""Tracing a Hugging Face ``Trainer`` in one line: ``Trainer(..., callbacks=[TraceCallback("data/run.parquet")])``.

Records the model's parameters at the start and every ``every`` optimizer steps
(``state.global_step``), streams them with ``live=True``, and writes the table when training ends.
The Trainer's own scalars (loss, learning rate, grad norm) are in its ``trainer_state.json``, which
:mod:`sitegen.logs` reads. Only the main process records. Imports ``transformers`` when this
module is imported, never before.
"""
from __future__ import annotations

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError("sitegen.trace.hf_callback needs transformers: pip install 'sitegen[transformers]'") from None

from sitegen.trace.params import ParameterRecorder


class TraceCallback(TrainerCallback):
    """A ``TrainerCallback`` recording every named parameter (or ``params=``) every ``every`` steps.

    Options are :class:`~sitegen.trace.params.ParameterRecorder`'s (``every``, ``params``,
    ``transforms``, ``experiment``, ``run``, ``live``, ``tracer``).
    """

    def __init__(self, path=None, **options):
        self.recorder = ParameterRecorder(path, **options)

    @property
    def tracer(self):
        return self.recorder.tracer

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None:
            self.recorder.record(state.global_step, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None and self.recorder.due(state.global_step):
            self.recorder.record(state.global_step, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if model is not None:
            self.recorder.record(state.global_step, model)   # the final values
        self.recorder.write()
