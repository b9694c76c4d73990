"""Record every named scalar parameter of every run at every training step, cheaply.

A :class:`Tracer` turns what a training loop hands it (python floats, numpy arrays, torch tensors,
JAX arrays, whole ``torch.nn.Module`` objects or JAX pytrees) into the long-format table the site
reads: ``experiment, run, step, param, value`` plus any extra columns.

Why it is shaped this way: a training step of a small model takes well under a millisecond on a
GPU, and asking the device for one number (``.item()``) waits for everything queued before it.
So the tracer copies each record into one flat tensor *on the device* (``record_batch`` copies
into the next row of a buffer allocated once per chunk), keeps those until ``chunk_steps``
distinct steps have been seen, and then moves the whole chunk to the host in a single transfer.
On the host, names, experiments and runs are small integer codes; the strings of the table are
made once, inside Arrow, when it is written.

For many models, prefer one ``record_batch`` per step over one ``record`` per model: the first is
one device copy, the second is python work per model (``bench/trace_overhead.py`` measures both).

Watching a run while it trains: ``Tracer(live="data/run.parquet")`` also writes what it has traced
so far into ``data/run.parts/`` as numbered parquet parts (``part-00001.parquet``, ... each holding
only the rows since the one before, renamed into place whole) and a manifest ``_run.json``, which
``sitegen serve`` reads (see :mod:`sitegen.live`). A part is written on a background thread, so the
training loop pays for the device-to-host copy it pays anyway and not for Arrow or parquet. The final
``write()`` of that table replaces the folder.

torch and jax are never imported here at module level: experiments import this module, the site
builder does not, and a tracer used with numpy alone needs neither.

The package, one concern a module: :mod:`~sitegen.trace.tracer` (the :class:`Tracer`),
:mod:`~sitegen.trace.torch_adapter` and :mod:`~sitegen.trace.jax_adapter` (what it does with
each library's arrays), :mod:`~sitegen.trace.table` (chunks to an Arrow table, atomic parquet
writes), :mod:`~sitegen.trace.live_parts` (the parts streamed while training) and
:mod:`~sitegen.trace.names` (the name of every scalar).

Tracing where people already train, one line each, sharing :mod:`~sitegen.trace.params`:
``sitegen.trace.lightning_callback.TraceCallback`` (Lightning), ``sitegen.trace.hf_callback.TraceCallback``
(Hugging Face ``Trainer``) and :func:`~sitegen.trace.torch_hook.trace_optimizer` (a plain loop).
"""
from __future__ import annotations

from sitegen.trace.jax_adapter import pytree_name
from sitegen.trace.names import element_names
from sitegen.trace.torch_hook import trace_optimizer
from sitegen.trace.tracer import Tracer

__all__ = ["Tracer", "element_names", "pytree_name", "trace_optimizer"]
