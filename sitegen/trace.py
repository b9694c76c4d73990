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
"""
from __future__ import annotations

import atexit
import itertools
import json
import math
import os
import queue
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from sitegen.live import PART, RUN_FILE, parts_dir

__all__ = ["Tracer", "element_names"]


# --------------------------------------------------------------------------------------------
# Names of the scalars inside a vector or matrix parameter
# --------------------------------------------------------------------------------------------

def element_names(name: str, shape: Sequence[int], labels=None) -> list[str]:
    """The name of every scalar inside a parameter, in row-major (C) order.

    A scalar keeps its name. A vector ``lengthscale`` of 3 becomes ``lengthscale[0]`` ...
    ``lengthscale[2]``; a matrix ``weight`` of 2x3 becomes ``weight[0,0]`` ... ``weight[1,2]``.
    ``labels`` names the elements instead of numbering them: either one flat list of strings
    (one per scalar, ``lengthscale[log_lr]``) or one list per axis (``weight[h0,x1]``).

    :mod:`sitegen.expr` uses the same function, so a printed template's placeholders are
    exactly the names this tracer records.
    """
    shape = tuple(int(s) for s in shape)
    if shape == ():
        return [name]
    count = math.prod(shape)
    if labels is None:
        axes = [range(n) for n in shape]
    else:
        labels = list(labels)
        if all(isinstance(label, str) or not isinstance(label, Iterable) for label in labels):
            if len(labels) != count:
                raise ValueError(
                    f"labels for {name!r} name {len(labels)} elements but the parameter has "
                    f"{count} (shape {shape}); give one label per element or one list per axis")
            return [f"{name}[{label}]" for label in labels]
        axes = [list(axis) for axis in labels]
        if len(axes) != len(shape) or any(len(a) != n for a, n in zip(axes, shape)):
            raise ValueError(
                f"labels for {name!r} have axis lengths {[len(a) for a in axes]} but the parameter "
                f"has shape {shape}; give one list of labels per axis")
    return [f"{name}[{','.join(str(i) for i in index)}]" for index in itertools.product(*axes)]


def _label_key(labels) -> Any:
    if labels is None:
        return None
    return tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in labels)


# --------------------------------------------------------------------------------------------
# Which library a value comes from (without importing torch or jax to find out)
# --------------------------------------------------------------------------------------------

def _kind(value) -> str:
    """'host' for python and numpy numbers, 'torch' or 'jax' for device arrays."""
    module = type(value).__module__
    if module.startswith("torch"):
        return "torch"
    if module.startswith(("jax", "jaxlib")):
        return "jax"
    return "host"


def _shape(value) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    if shape is None:
        return np.shape(value)
    return tuple(shape)


class _Record:
    """One call of record()/record_batch(), waiting in the current chunk.

    ``values`` is a host numpy array or a device array (torch or jax) holding ``rows`` parameter
    values followed by ``extra`` values: for record() a flat vector, for record_batch() the (B, P)
    block flattened, followed by one value per model and extra column.
    """

    __slots__ = ("step", "experiment", "run", "names", "batch", "extras", "values", "kind", "device")

    def __init__(self, step, experiment, run, names, batch, extras, values, kind, device=None):
        self.step = step
        self.experiment = experiment  # code (int) for record(), tuple of B codes for record_batch()
        self.run = run
        self.names = names          # int32 codes of the P parameter names
        self.batch = batch          # None for record(); B for record_batch()
        self.extras = extras        # tuple of extra column names
        self.values = values
        self.kind = kind
        self.device = device


class _Series:
    """Blocks from record_batch() for the same B models and names at successive steps.

    Each part of the block (one (B, P) array, or several (B, ...) arrays) has its own buffer of
    shape (steps, B, ...) on its device, allocated once per chunk; a step is one copy per part.
    """

    kind = "series"

    def __init__(self, key, names, parts, experiment, run, extras, capacity):
        import torch

        self.key = key
        self.names = names
        self.batch = parts[0].shape[0]
        self.experiment = experiment
        self.run = run
        self.experiment_codes = np.asarray(experiment, dtype=np.int32)
        self.run_codes = np.asarray(run, dtype=np.int32)
        self.extras = extras
        self.steps: list = []
        self.capacity = capacity
        self.device = parts[0].device
        self.buffers = [torch.empty((capacity, *p.shape), device=self.device,
                                    dtype=p.dtype if p.is_floating_point() else torch.get_default_dtype())
                        for p in parts]
        self.rows = [b.unbind(0) for b in self.buffers]   # views made once, not one per step
        self.call = None
        self.extra_buffer = torch.empty((capacity, self.batch, len(extras)), device=self.device,
                                        dtype=self.buffers[0].dtype) if extras else None

    @property
    def full(self) -> bool:
        return len(self.steps) == self.capacity

    def remember_call(self, names, values, experiment, run, no_extras: bool) -> None:
        """Keep copies of the arguments, so the next call can be recognised in a few compares."""
        labels_ok = all(isinstance(x, (list, tuple, str, int, float, type(None))) for x in (experiment, run))
        if not (no_extras and labels_ok and isinstance(names, (list, tuple))):
            self.call = None
            return
        parts = values if isinstance(values, (list, tuple)) else (values,)
        copy = lambda x: type(x)(x) if isinstance(x, (list, tuple)) else x  # noqa: E731
        self.call = (copy(names), copy(experiment), copy(run), type(values),
                     [(type(p), p.shape) for p in parts])

    def same_call(self, names, values, experiment, run) -> bool:
        """True when this call has the same names, labels and array shapes as the last one
        (compared by value: lists changed in place are noticed)."""
        call = self.call
        if call is None or type(values) is not call[3]:
            return False
        if names != call[0] or experiment != call[1] or run != call[2]:
            return False
        if call[3] is list or call[3] is tuple:
            return len(values) == len(call[4]) and all(
                type(p) is t and p.shape == s for p, (t, s) in zip(values, call[4]))
        t, s = call[4][0]
        return type(values) is t and values.shape == s

    def write(self, step, parts, extra_values) -> None:
        torch = _torch()
        i = len(self.steps)
        with torch.no_grad():   # cheaper than detach(): no new tensor per step
            for rows, part in zip(self.rows, parts):
                rows[i].copy_(part)
            for k, v in enumerate(extra_values):
                self.extra_buffer[i, :, k].copy_(v if isinstance(v, torch.Tensor)
                                                 else torch.as_tensor(np.asarray(v, dtype=np.float64)))
        self.steps.append(step)

    def to_host(self) -> np.ndarray:
        """The recorded steps as one (steps, B, P + extras) numpy array (float64 comes later)."""
        n = len(self.steps)
        arrays = [b[:n] for b in self.buffers] + ([self.extra_buffer[:n]] if self.extras else [])
        host = [(a.float() if a.dtype == _torch().bfloat16 else a).cpu().numpy().reshape(n, self.batch, -1)
                for a in arrays]
        if len(host) > 1:
            return np.concatenate(host, axis=2)
        # On the CPU that is a view of the whole buffer: a chunk cut short (a live part was due)
        # keeps only its own steps, not the buffer's unused rows.
        return host[0].copy() if self.device.type == "cpu" and 2 * n < self.capacity else host[0]


def _torch():
    return sys.modules["torch"]   # only called once torch is in use


class Tracer:
    """Collects traced parameters on the device and writes one long-format table.

    ``chunk_steps``: how many distinct steps to keep on the device before moving them to the
    host (one transfer per chunk).

    ``live``: the path of the table the script will :meth:`write` at the end. While training, what
    has been recorded so far is also written, in parts, into the folder beside it
    (``data/run.parquet`` -> ``data/run.parts/``), for ``sitegen serve`` to show the run as it goes.
    A part is written when a new step begins and ``live_seconds`` have passed or ``live_steps``
    distinct steps were recorded since the last part, and whenever :meth:`publish` is called; a part
    only ever holds whole steps. Writing happens on a background thread; if it fails (disk full, no
    permission) one warning is printed and training goes on without it.

    Use it as a context manager (or call :meth:`close`) to stop the writer without finishing the
    table: the parts stay for the preview, which shows the run as stopped once the process ends.
    """

    def __init__(self, chunk_steps: int = 50, *, live: str | Path | None = None,
                 live_seconds: float = 0.5, live_steps: int = 10_000):
        if chunk_steps < 1:
            raise ValueError("chunk_steps must be at least 1")
        if live_steps < 1:
            raise ValueError("live_steps must be at least 1")
        self.chunk_steps = int(chunk_steps)
        self.live = Path(live) if live is not None else None
        self.live_seconds = float(live_seconds)
        self.live_steps = int(live_steps)
        self._pending: list[_Record | _Series] = []
        self._series: _Series | None = None    # the buffer record_batch() is filling
        self._steps_pending = 0
        self._last_step = None
        # Rows on the host, as integer codes and float arrays (one dict of columns per chunk);
        # strings are only made once, when the table is asked for.
        self._chunks: list[dict[str, np.ndarray]] = []
        self._names_cache: dict = {}
        self._param_names: list[str] = []
        self._param_codes: dict[str, int] = {}
        self._labels: dict[str, list] = {"experiment": [], "run": []}
        self._label_codes: dict[str, dict] = {"experiment": {}, "run": {}}
        # Live parts: chunks before _published are in parts already
        self._published = 0
        self._steps_unpublished = 0
        self._published_at = time.monotonic()
        self._live: _LiveParts | None = None
        if self.live is not None:
            self._live = _LiveParts(self.live, self._labels["experiment"], self._labels["run"],
                                    self._param_names)
            atexit.register(self.close)   # a script that ends without write() loses no rows

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- recording
    def record(self, step: int, values: Mapping[str, Any], *, experiment=None, run=None,
               labels: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        """Record named parameters of one model at one step.

        Each value may be a python float, a numpy scalar or array, a torch tensor or a JAX array;
        an array stands for one parameter per element (see :func:`element_names`; ``labels``
        maps a parameter name to its element labels). ``extra`` adds columns (e.g. the loss)
        repeated on every row of this record, for tooltips.
        """
        labels = labels or {}
        names: list[str] = []
        arrays = []
        kind = "host"
        for name, value in values.items():
            value_kind = _kind(value)
            if value_kind != "host":
                if kind not in ("host", value_kind):
                    raise TypeError("one record() call cannot mix torch tensors and JAX arrays; "
                                    "record them in two calls")
                kind = value_kind
            names.extend(self._names(name, _shape(value), labels.get(name)))
            arrays.append(value)
        extras = tuple(extra) if extra else ()
        extra_values = list(extra.values()) if extra else []
        if kind == "host":
            flat = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1)
                                   for v in arrays + extra_values] or [np.zeros(0)])
            device = None
        else:
            flat, device = self._flatten(kind, arrays, extra_values)
        self._append(_Record(step, self._code("experiment", experiment), self._code("run", run),
                         self._names_array(tuple(names)), None, extras, flat, kind, device))

    def record_batch(self, step: int, names: Sequence[str], values, *, experiment=None, run=None,
                     extra: Mapping[str, Any] | None = None) -> None:
        """Record P named scalars for B models at once: ``values`` is a (B, P) array, or a list of
        (B, ...) arrays whose elements, model by model in row-major order, are the P columns
        (``[W1.transpose(1, 2), b1, W2, b2]``: no need to concatenate them first).

        ``experiment`` and ``run`` are each a scalar (shared by all B models) or a sequence of B.
        ``extra`` values are scalars or length-B arrays. The block stays on its device until the
        chunk is flushed.
        """
        series = self._series
        if series is not None and extra is None and series.same_call(names, values, experiment, run):
            # The same models as last step: skip the checks, copy into the buffers.
            self._count_step(step)
            if self._series is series and not series.full:
                series.write(step, values if isinstance(values, (list, tuple)) else (values,), ())
                return
        names_given, experiment_given, run_given = names, experiment, run
        names = self._names_array(tuple(names))
        parts = list(values) if isinstance(values, (list, tuple)) and values and hasattr(values[0], "shape") \
            else [values]
        kind = _kind(parts[0])
        shapes = [_shape(p) for p in parts]
        batch = shapes[0][0] if shapes[0] else 0
        width = sum(math.prod(s[1:]) for s in shapes)
        if any(len(s) < 1 or s[0] != batch for s in shapes) or width != len(names) or \
                (len(parts) == 1 and len(shapes[0]) != 2):
            raise ValueError(f"record_batch expects values of shape (B, {len(names)}) (or a list of (B, ...) "
                             f"arrays with {len(names)} values per model), got {' + '.join(map(str, shapes))}")
        experiment = self._codes("experiment", _per_model(experiment, batch, "experiment"))
        run = self._codes("run", _per_model(run, batch, "run"))
        extras = tuple(extra) if extra else ()
        extra_values = [(_broadcast_extra(v, batch, kind)) for v in extra.values()] if extra else []
        if kind == "torch" and all(_kind(p) == "torch" for p in parts):
            # The common case, the same models every step: copy the block into the next row of
            # buffers preallocated on the device (one copy per part, no allocation); flush()
            # moves the whole buffers to the host at once.
            self._count_step(step)   # counting a step twice is harmless: only a new step counts
            key = (id(names), tuple((p.shape, p.dtype, p.device) for p in parts), experiment, run, extras)
            series = self._series
            if series is None or series.key != key or series.full:
                series = self._series = _Series(key, names, parts, experiment, run, extras,
                                                self.chunk_steps + 1)
                self._pending.append(series)
            series.remember_call(names_given, values, experiment_given, run_given, extra is None)
            series.write(step, parts, extra_values)
            return
        if len(parts) > 1:
            values = np.concatenate([np.asarray(_host_array(p)).reshape(batch, -1) for p in parts], axis=1) \
                if kind == "host" else _join_parts(kind, parts, batch)
        if kind == "host":
            flat = np.concatenate([np.asarray(values, dtype=np.float64).reshape(-1)]
                                  + [np.asarray(v, dtype=np.float64).reshape(-1) for v in extra_values])
            device = None
        else:
            flat, device = self._flatten(kind, [values], extra_values, copy=True)
        self._append(_Record(step, experiment, run, names, batch, extras, flat, kind, device))

    def record_module(self, step: int, module, *, experiment=None, run=None,
                      transforms: Mapping[str, tuple[str, Callable]] | None = None,
                      labels: Mapping[str, Any] | None = None,
                      extra: Mapping[str, Any] | None = None) -> None:
        """Record every parameter of a ``torch.nn.Module`` by its ``named_parameters()`` name.

        ``transforms`` maps a raw parameter to ``(new_name, function)``: the tracer records
        ``function(raw)`` under the new name instead of the raw value (e.g.
        ``{"raw_noise": ("noise", torch.nn.functional.softplus)}``). A key matches the full
        dotted name, or its last part (then only that part is renamed:
        ``likelihood.raw_noise`` -> ``likelihood.noise``). ``labels`` are keyed by the recorded
        (new) name.
        """
        values = {}
        import torch

        with torch.no_grad():
            for name, param in module.named_parameters():
                name, fn = _apply_transform(name, transforms)
                values[name] = fn(param.detach()) if fn is not None else param.detach()
        self.record(step, values, experiment=experiment, run=run, labels=labels, extra=extra)

    def record_pytree(self, step: int, params, *, experiment=None, run=None,
                      transforms: Mapping[str, tuple[str, Callable]] | None = None,
                      labels: Mapping[str, Any] | None = None,
                      extra: Mapping[str, Any] | None = None) -> None:
        """Record every leaf of a JAX pytree; a leaf's path becomes a dotted name.

        ``{"kernel": {"lengthscale": x}}`` -> ``kernel.lengthscale``; list items are numbered
        (``layers.0.w``). ``transforms`` and ``labels`` work as in :meth:`record_module`.
        """
        import jax

        leaves, _ = jax.tree_util.tree_flatten_with_path(params)
        values = {}
        for path, leaf in leaves:
            name, fn = _apply_transform(pytree_name(path), transforms)
            values[name] = fn(leaf) if fn is not None else leaf
        self.record(step, values, experiment=experiment, run=run, labels=labels, extra=extra)

    # ---------------------------------------------------------------- output
    def flush(self) -> None:
        """Move everything recorded so far to the host (one transfer per device)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._series = None
        self._steps_pending = 0
        self._chunks.append(_chunk(pending, _to_host(pending)))

    def publish(self) -> None:
        """With ``live``: write what was recorded since the last part as a part now.

        For training loops that know a stretch just ended (a compiled chunk of steps returned, a
        run finished): the preview gets it without waiting for the next step. Without ``live``,
        or with nothing new recorded, it does nothing. The parquet file is written on the
        writer thread; this call only moves the pending records to the host.
        """
        live = self._live
        if live is None or not live.accepting:
            return
        self.flush()
        new = self._chunks[self._published:]
        self._published = len(self._chunks)
        self._steps_unpublished = 0
        if not any(c["params_per_model"].any() for c in new):
            return
        self._published_at = time.monotonic()
        # The name and label lists only ever grow: their lengths now are a snapshot of them.
        live.put(new, (len(self._labels["experiment"]), len(self._labels["run"]), len(self._param_names)))

    def frame(self):
        """Everything recorded, as a pandas DataFrame in long format: the same frame that reading
        the written parquet file gives (text columns are categoricals, in order of appearance)."""
        self.flush()
        return self._table(self._chunks, dictionary=True).to_pandas()

    def write(self, path: str | Path) -> Path:
        """Write the whole table as parquet, atomically (a temporary name, then a rename).

        Text columns (param, and experiment or run when they are not numbers) are stored
        dictionary-encoded: pandas reads them back as categoricals in order of first appearance.

        When ``path`` is the ``live`` table, the run is finished: the parts still queued are
        written, then the table, then the manifest says ``finished`` and the parts folder goes.
        """
        self.flush()
        path = Path(path)
        table = self._table(self._chunks, dictionary=True)
        live = self._live
        finishing = live is not None and not live.finished and path.resolve() == live.resolved
        if finishing:
            atexit.unregister(self.close)
            live.close()   # every queued part is on disk before the table that replaces them
        _write_parquet(table, path)
        if finishing:
            live.finish()
        return path

    def close(self) -> None:
        """Stop streaming without finishing the table: what was recorded since the last part
        becomes one more part, the writer thread writes what is queued and stops.

        The parts folder stays, its manifest saying ``running``: once this process has ended, the
        preview shows the run as stopped (a crash inside ``with Tracer(live=...)`` leaves every row
        recorded before it). Calling :meth:`write` on the live table later still finishes it.
        Recording goes on working; nothing more is streamed. Runs at exit when not called.
        """
        live = self._live
        if live is None or live.finished:
            return
        atexit.unregister(self.close)
        try:
            self.publish()
        except Exception as exc:  # noqa: BLE001 - e.g. a device already gone at exit
            live.fail(exc)
        live.close()

    def __len__(self) -> int:
        return sum(int(c["params_per_model"].sum()) for c in self._chunks) + sum(
            len(r.names) * (r.batch or 1) * (len(r.steps) if isinstance(r, _Series) else 1)
            for r in self._pending)

    # ---------------------------------------------------------------- internals
    def _append(self, record: _Record) -> None:
        self._count_step(record.step)
        self._pending.append(record)

    def _count_step(self, step) -> None:
        """Called before each record is kept. At a new step: write a live part when one is due
        (so a part holds whole steps), and flush once more than ``chunk_steps`` distinct steps
        would be pending."""
        if step != self._last_step:
            self._last_step = step
            if self._live is not None:
                if self._steps_unpublished and (
                        self._steps_unpublished >= self.live_steps
                        or time.monotonic() - self._published_at >= self.live_seconds):
                    self.publish()
                self._steps_unpublished += 1
            self._steps_pending += 1
            if self._steps_pending > self.chunk_steps:
                self.flush()
                self._steps_pending = 1

    def _names(self, name, shape, labels) -> list[str]:
        key = (name, shape, _label_key(labels))
        names = self._names_cache.get(key)
        if names is None:
            names = self._names_cache[key] = element_names(name, shape, labels)
        return names

    def _names_array(self, names: tuple) -> np.ndarray:
        """The int32 codes of a tuple of parameter names (cached: the same tuple comes every step)."""
        codes = self._names_cache.get(names)
        if codes is None:
            table = self._param_codes
            for name in names:
                if name not in table:
                    table[name] = len(self._param_names)
                    self._param_names.append(name)
            codes = self._names_cache[names] = np.array([table[n] for n in names], dtype=np.int32)
        return codes

    def _code(self, column: str, value) -> int:
        table = self._label_codes[column]
        key = (type(value).__name__, value) if not isinstance(value, np.generic) else (
            type(value.item()).__name__, value.item())
        code = table.get(key)
        if code is None:
            code = table[key] = len(self._labels[column])
            self._labels[column].append(value.item() if isinstance(value, np.generic) else value)
        return code

    def _codes(self, column: str, values: tuple) -> tuple[int, ...]:
        """Codes for B models' labels; the same labels come every step, so they are cached."""
        key = (column, values)
        codes = self._names_cache.get(key)
        if codes is None:
            codes = self._names_cache[key] = tuple(self._code(column, v) for v in values)
        return codes

    def _table(self, chunks: list[dict], dictionary: bool = False):
        return _build_table(chunks, self._labels["experiment"], self._labels["run"], self._param_names,
                            dictionary)

    @property
    def _live_cpu_seconds(self) -> float:
        """CPU time the live writer thread has spent writing parts (for bench/trace_overhead.py)."""
        return self._live.cpu_seconds if self._live is not None else 0.0

    @staticmethod
    def _flatten(kind, arrays, extra_values, copy=False):
        """One flat device array holding the arrays and extras, copied so later in-place updates
        of the parameters cannot change what was recorded."""
        if kind == "torch":
            import torch

            device = next(a.device for a in arrays if isinstance(a, torch.Tensor))
            parts = []
            for a in arrays:
                if isinstance(a, torch.Tensor):
                    parts.append(a.detach().reshape(-1))
                else:
                    parts.append(torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1),
                                                 device=device))
            for v in extra_values:
                if isinstance(v, torch.Tensor):
                    parts.append(v.detach().reshape(-1).to(device))
                else:
                    parts.append(torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1),
                                                 device=device))
            if len(parts) == 1:
                flat = parts[0].clone()  # may share memory with a parameter
            else:
                flat = torch.cat(parts)  # cat always copies
            return flat, device
        import jax.numpy as jnp

        # JAX arrays are immutable: keeping references is enough, no copy needed.
        parts = [jnp.ravel(jnp.asarray(a)) for a in arrays + list(extra_values)]
        flat = parts[0] if len(parts) == 1 else jnp.concatenate(
            [p.astype(jnp.result_type(*parts)) for p in parts])
        return flat, None


def pytree_name(path) -> str:
    """A dotted name for a JAX key path: ``kernel.lengthscale``, ``layers.0.w``."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def _apply_transform(name: str, transforms):
    if not transforms:
        return name, None
    if name in transforms:
        new, fn = transforms[name]
        return new, fn
    head, _, last = name.rpartition(".")
    if head and last in transforms:
        new, fn = transforms[last]
        return f"{head}.{new}", fn
    return name, None


def _host_array(value):
    return value.tolist() if _kind(value) != "host" else value


def _join_parts(kind, parts, batch):
    """Several (B, ...) device arrays as one (B, P) array (the path that has no buffer)."""
    if kind == "torch":
        torch = _torch()
        return torch.cat([p.detach().reshape(batch, -1) for p in parts], 1)
    import jax.numpy as jnp

    return jnp.concatenate([jnp.reshape(p, (batch, -1)) for p in parts], 1)


def _per_model(value, batch: int, what: str) -> tuple:
    if value is None or isinstance(value, (str, bytes, int, float, np.generic)):
        return (value,) * batch
    if _kind(value) != "host":
        value = value.tolist()  # labels of rows, not traced data: a small host copy
    elif isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    value = tuple(value)
    if len(value) != batch:
        raise ValueError(f"record_batch: {what} has {len(value)} entries for {batch} models")
    return value


def _broadcast_extra(value, batch, kind):
    shape = _shape(value)
    if shape in ((), (1,)):
        if _kind(value) == "host":
            return np.full(batch, float(np.asarray(value).reshape(-1)[0]))
        return value.reshape(-1).repeat(batch) if kind == "jax" else value.reshape(1).expand(batch)
    return value


def _to_host(pending: list[_Record]) -> list[np.ndarray]:
    """The values of every pending record as float64 numpy arrays, in order.

    All torch arrays on one device are concatenated and copied in one transfer; JAX arrays are
    fetched together with ``jax.device_get``.
    """
    out: list[np.ndarray | None] = [None] * len(pending)
    torch_groups: dict[Any, list[int]] = {}
    jax_indices: list[int] = []
    for i, r in enumerate(pending):
        if r.kind == "series":
            out[i] = r.to_host()
        elif r.kind == "host":
            out[i] = r.values
        elif r.kind == "torch":
            torch_groups.setdefault(r.device, []).append(i)
        else:
            jax_indices.append(i)
    if torch_groups:
        import torch

        for indices in torch_groups.values():
            arrays = [pending[i].values for i in indices]
            # torch.cat promotes mixed dtypes (float32 with float64 gives float64) on the device;
            # the widening to float64 happens on the host, after the one transfer.
            flat = torch.cat(arrays)
            if flat.dtype == torch.bfloat16:   # numpy has no bfloat16
                flat = flat.float()
            flat = flat.cpu().numpy().astype(np.float64, copy=False)
            offsets = np.cumsum([a.numel() for a in arrays])[:-1]
            for i, part in zip(indices, np.split(flat, offsets)):
                out[i] = part
    if jax_indices:
        import jax

        fetched = jax.device_get([pending[i].values for i in jax_indices])
        for i, arr in zip(jax_indices, fetched):
            out[i] = np.asarray(arr, dtype=np.float64)
    return out  # type: ignore[return-value]


class _Columns:
    """Per-model columns gathered from pending records: python ints for single records (cheap
    to append), sealed into numpy segments whenever a whole array arrives."""

    def __init__(self):
        self.segments: dict[str, list[np.ndarray]] = {"experiment": [], "run": [], "step": [], "p": []}
        self.ints: dict[str, list[int]] = {key: [] for key in self.segments}

    def add(self, experiment, run, step, p) -> None:
        ints = self.ints
        ints["experiment"].append(experiment)
        ints["run"].append(run)
        ints["step"].append(step)
        ints["p"].append(p)

    def add_arrays(self, **arrays) -> None:
        self.seal()
        for key, array in arrays.items():
            self.segments[key].append(array)

    def seal(self) -> None:
        for key, values in self.ints.items():
            if values:
                self.segments[key].append(np.asarray(values, dtype=np.int64))
                self.ints[key] = []

    def column(self, key: str, dtype) -> np.ndarray:
        self.seal()
        parts = self.segments[key]
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _chunk(pending: list[_Record | _Series], values: list[np.ndarray]) -> dict:
    """The pending records as a chunk of per-model columns (rows are expanded later).

    Every record stands for B models (B = 1 for record()) with P parameters each. During
    training only the per-model columns are gathered; repeating them P times into rows, and
    widening values to float64, happen once, when the table is built (:func:`_rows`).
    """
    columns = _Columns()
    vals = []
    names_runs: list[list] = []        # [names codes, number of models] for consecutive equal names
    extra_names = list(dict.fromkeys(name for r in pending for name in r.extras))
    model_extra: dict[str, list] = {name: [] for name in extra_names}
    for r, v in zip(pending, values):
        p = len(r.names)
        if r.kind == "series":
            steps = len(r.steps)
            b = r.batch * steps
            columns.add_arrays(experiment=np.tile(r.experiment_codes, steps), run=np.tile(r.run_codes, steps),
                               step=np.repeat(np.asarray(r.steps, dtype=np.int64), r.batch),
                               p=np.full(b, p, dtype=np.int64))
            vals.append((v[:, :, :p] if r.extras else v).reshape(-1))
            for name in extra_names:
                model_extra[name].append(v[:, :, p + r.extras.index(name)].reshape(-1)
                                         if name in r.extras else np.full(b, np.nan))
        else:
            b = r.batch or 1
            n = p * b
            if r.batch is None:
                columns.add(r.experiment, r.run, r.step, p)
            else:
                for e, u in zip(r.experiment, r.run):
                    columns.add(e, u, r.step, p)
            vals.append(v[:n] if len(v) != n else v)
            for name in extra_names:
                if name in r.extras:
                    k = r.extras.index(name)
                    model_extra[name].append(v[n + k * b: n + (k + 1) * b])
                else:
                    model_extra[name].append(np.full(b, np.nan))
        if names_runs and names_runs[-1][0] is r.names:
            names_runs[-1][1] += b
        else:
            names_runs.append([r.names, b])
    return {
        "experiment": columns.column("experiment", np.int32),
        "run": columns.column("run", np.int32),
        "step": columns.column("step", np.int64),
        "params_per_model": columns.column("p", np.int64),
        "names": names_runs,
        "value": vals,                     # widened and joined in _rows()
        "extras": {name: np.concatenate(parts) for name, parts in model_extra.items()},
    }


class _Rows:
    """The chunks' columns, ready to become rows: per-model columns (experiment, run, step,
    extras) stay one value per model until :meth:`expand` repeats them once per parameter, so
    labels are looked up per model, not per row; ``param`` and ``value`` are per row already."""

    def __init__(self, chunks: list[dict]):
        def cat(key, dtype):
            parts = [c[key] for c in chunks]
            if not parts:
                return np.zeros(0, dtype)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        self.experiment = cat("experiment", np.int32)
        self.run = cat("run", np.int32)
        self.step = cat("step", np.int64)
        repeats = cat("params_per_model", np.int64)
        # Usually every model has the same parameters: repeating by one number is the fast path
        self.repeats = int(repeats[0]) if len(repeats) and (repeats == repeats[0]).all() else repeats
        runs: list[list] = []          # [names codes, number of models], consecutive equal merged
        for c in chunks:
            for names, models in c["names"]:
                if runs and runs[-1][0] is names:
                    runs[-1][1] += models
                else:
                    runs.append([names, models])
        params = [np.tile(names, models) for names, models in runs]
        self.param = (params[0] if len(params) == 1 else np.concatenate(params)) if params else np.zeros(0, np.int32)
        values = [v for c in chunks for v in c["value"]]
        # one pass: joined and widened to float64 together
        self.value = np.concatenate(values, dtype=np.float64, casting="same_kind") if values else np.zeros(0)
        names = list(dict.fromkeys(name for c in chunks for name in c["extras"]))
        self.extras = {name: np.concatenate([c["extras"].get(name, np.full(len(c["run"]), np.nan))
                                             for c in chunks]) for name in names}

    def expand(self, per_model: np.ndarray) -> np.ndarray:
        if isinstance(self.repeats, int):
            # a copy of a broadcast view: numpy lets other threads run meanwhile, np.repeat does not
            return np.broadcast_to(per_model[:, None], (len(per_model), self.repeats)).reshape(-1)
        return np.repeat(per_model, self.repeats)


def _label_column(labels: list, codes: np.ndarray, rows: _Rows, dictionary: bool = False):
    """Experiment or run labels for per-model ``codes``, one per row: int64 when all are ints,
    float64 when all are numbers, else strings (None stays missing)."""
    import pyarrow as pa

    if all(isinstance(x, int) and not isinstance(x, bool) for x in labels):
        return pa.array(rows.expand(np.asarray(labels, dtype=np.int64)[codes] if labels
                                    else codes.astype(np.int64)))
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in labels):
        return pa.array(rows.expand(np.asarray(labels, dtype=np.float64)[codes]))
    strings = [None if x is None else str(x) for x in labels]
    strings, codes = _present(strings, codes)
    return _string_column(strings, rows.expand(codes), dictionary)


def _present(strings: list, codes: np.ndarray) -> tuple[list, np.ndarray]:
    """Drop None from ``strings``; codes pointing at one become -1 (missing)."""
    if not any(x is None for x in strings):
        return strings, codes
    present = [i for i, x in enumerate(strings) if x is not None]
    remap = np.full(len(strings), -1, dtype=np.int32)
    remap[present] = np.arange(len(present), dtype=np.int32)
    return [strings[i] for i in present], remap[codes]


def _string_column(strings: list, codes: np.ndarray, dictionary: bool = False):
    """Text from codes into ``strings`` (None entries, and codes of -1, become missing values)."""
    import pyarrow as pa

    strings, codes = _present(strings, codes)
    codes = codes.astype(np.int32, copy=False)
    # a mask only when something is missing: building one is a pass over every row
    missing = codes < 0 if len(codes) and codes.min() < 0 else None
    indices = pa.array(codes, type=pa.int32(), mask=missing)
    column = pa.DictionaryArray.from_arrays(indices, pa.array(strings, type=pa.string()), safe=False)
    return column if dictionary else column.cast(pa.string())


def _build_table(chunks: list[dict], experiments: list, runs: list, params: list[str],
                 dictionary: bool = False):
    """An Arrow table from chunks: experiment, run, step, param, value, extra columns.

    Text columns are built from their integer codes inside Arrow, never one python string per
    row. With ``dictionary`` they stay dictionary-encoded (what parquet stores anyway, and
    what the site's data catalog groups by); otherwise they are cast to plain strings.
    """
    import pyarrow as pa

    rows = _Rows(chunks)
    columns = {
        "experiment": _label_column(experiments, rows.experiment, rows, dictionary),
        "run": _label_column(runs, rows.run, rows, dictionary),
        "step": pa.array(rows.expand(rows.step)),
        "param": _string_column(params, rows.param, dictionary),
        "value": pa.array(rows.value),
    }
    for name, values in rows.extras.items():
        columns[name] = pa.array(rows.expand(values))
    return pa.table(columns)


def _write_parquet(table, path: Path, **options) -> None:
    """Write under a hidden temporary name, then rename: a reader sees the whole file or none."""
    import pyarrow.parquet as pq

    options.setdefault("compression", "zstd")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, **options)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------------------------
# Live parts: what a run writes while it trains, for the preview (format: sitegen/live.py)
# --------------------------------------------------------------------------------------------

#: Parts live until the final table replaces them and are read once each by the preview, so they
#: are written for speed more than size. For a part of 1.5M rows (500 steps of 60 models x 50
#: parameters, training values) zstd took 142 ms of CPU (7.0 MB), lz4 58 ms (9.3 MB), none 44 ms
#: (43 MB), lz4 with the float columns byte-stream-split 48 ms (6.5 MB, and the fastest to read).
_PART_COMPRESSION = "lz4"


def _part_options(schema) -> dict:
    """pyarrow.parquet.write_table options for a live part."""
    import pyarrow as pa

    return dict(
        compression=_PART_COMPRESSION,
        # Parquet's dictionary encoding only for columns that are dictionaries already (text):
        # hashing every value and step to look for repeats is most of the cost of the others.
        use_dictionary=[f.name for f in schema if pa.types.is_dictionary(f.type)],
        # Floats byte by byte: the exponent bytes repeat, so lz4 finds them (a third of the size).
        column_encoding={f.name: "BYTE_STREAM_SPLIT" for f in schema if pa.types.is_floating(f.type)},
        write_statistics=False,   # nobody filters a part by its row groups' min and max
    )


def _warm_up() -> None:
    """Write a tiny part to memory, on this thread, before the writer thread starts.

    pyarrow imports modules lazily (pandas among them, the first time an array has a mask), and
    a module that registers an exit hook cannot be imported once the interpreter is exiting, which
    is when a script that ends without ``write()`` has its last parts written. So every import the
    writer needs happens here first.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunk = {"experiment": np.zeros(1, np.int32), "run": np.zeros(1, np.int32), "step": np.zeros(1, np.int64),
             "params_per_model": np.ones(1, np.int64), "names": [[np.zeros(1, np.int32), 1]],
             "value": [np.zeros(1)], "extras": {"loss": np.zeros(1)}}
    table = _build_table([chunk], [None], [0], ["w"], dictionary=True)
    pq.write_table(table, pa.BufferOutputStream(), **_part_options(table.schema))


class _LiveParts:
    """The ``.parts`` folder of a table being traced, and the daemon thread that writes into it.

    The training thread hands over chunks (host numpy arrays, never changed afterwards) and the
    lengths of the append-only name and label lists at that moment; this thread builds the Arrow
    table, writes the part under a hidden name, renames it into place, then rewrites the manifest
    the same way. So at any moment the folder holds whole parts and a manifest that counts no part
    that is not there, whenever the process is killed.
    """

    def __init__(self, table: Path, experiments: list, runs: list, params: list[str]):
        self.table = table
        self.resolved = table.resolve()
        self.folder = parts_dir(table)
        self._lists = (experiments, runs, params)
        self.started = time.time()
        self.parts = 0
        self.rows = 0
        self.last_step: int | None = None
        self.failed: str | None = None   # why live writing stopped
        self.finished = False
        self.cpu_seconds = 0.0           # CPU time of the writer thread (time.thread_time)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        try:
            _warm_up()
            self._clear()
            self._write_manifest("running")   # the preview knows the run started before any rows
        except Exception as exc:  # noqa: BLE001 - whatever it is, training must not die of it
            self.fail(exc)
            return
        self._thread = threading.Thread(target=self._run, name=f"sitegen.trace live {table.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def accepting(self) -> bool:
        return self._thread is not None and self.failed is None

    def put(self, chunks: list[dict], sizes: tuple[int, int, int]) -> None:
        self._queue.put((chunks, sizes))

    def drain(self) -> None:
        """Wait until every part handed over so far is written (or writing has failed)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Wait for the queued parts, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join()

    def finish(self) -> None:
        """The final table is written: say so in the manifest, then take the parts away.

        The folder is renamed to a hidden name first, so a reader finds either the whole folder or
        none; each step is tried even if the one before failed, because a folder left behind would
        show its parts in the preview instead of the table.
        """
        self.close()
        self.finished = True
        try:
            self._write_manifest("finished")
        except Exception:  # noqa: BLE001 - removing the folder below says the same
            pass
        gone = self.folder.with_name(f".{self.folder.name}.{os.getpid()}.gone")
        try:
            os.replace(self.folder, gone)
            shutil.rmtree(gone)
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"sitegen.trace: could not remove {self.folder} after writing {self.table}: {exc}; "
                  f"delete it, or the preview shows its parts instead of the table", file=sys.stderr, flush=True)

    # -- on the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.failed is None:
                    start = time.thread_time()
                    try:
                        self._write_part(*item)
                    except Exception as exc:  # noqa: BLE001 - never let the trainer die of a part
                        self.fail(exc)
                    self.cpu_seconds += time.thread_time() - start
            finally:
                self._queue.task_done()

    def _write_part(self, chunks: list[dict], sizes: tuple[int, int, int]) -> None:
        experiments, runs, params = (names[:n] for names, n in zip(self._lists, sizes))
        table = _build_table(chunks, experiments, runs, params, dictionary=True)
        number = self.parts + 1
        _write_parquet(table, self.folder / f"part-{number:05d}.parquet", **_part_options(table.schema))
        self.parts = number
        self.rows += table.num_rows
        last = max(int(c["step"].max()) for c in chunks if len(c["step"]))
        self.last_step = last if self.last_step is None else max(self.last_step, last)
        self._write_manifest("running")

    # -- either thread (never both at once: the main thread waits for the writer first) -------------
    def _write_manifest(self, state: str) -> None:
        record = {"format": 1, "table": self.table.name, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": self.started, "updated": time.time(), "parts": self.parts, "rows": self.rows,
                  "last_step": self.last_step, "state": state}
        path = self.folder / RUN_FILE
        tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _clear(self) -> None:
        """Make the folder, and take away what an earlier run of the same table left there."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with os.scandir(self.folder) as entries:
            stale = [e.path for e in entries
                     if (PART.fullmatch(e.name) or e.name.startswith(".")) and e.is_file(follow_symlinks=False)]
        for path in stale:
            os.unlink(path)
        prefix = f".{self.folder.name}."
        for name in os.listdir(self.folder.parent):   # a folder an earlier finish() could not remove
            if name.startswith(prefix) and name.endswith(".gone"):
                shutil.rmtree(self.folder.parent / name, ignore_errors=True)

    def fail(self, exc: BaseException) -> None:
        if self.failed is not None:
            return
        self.failed = str(exc) or type(exc).__name__
        print(f"sitegen.trace: live parts for {self.table} stopped: {self.failed}; training goes on, "
              f"the final table is still written", file=sys.stderr, flush=True)
