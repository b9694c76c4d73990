"""The :class:`Tracer`: what a training loop hands it, kept cheaply until the table is written.

It accepts python floats, numpy arrays, torch tensors, JAX arrays, whole ``torch.nn.Module``
objects and JAX pytrees, keeps device values on their device until a chunk is full, and hands the
host chunks to :mod:`sitegen.trace.table` (the table) and :mod:`sitegen.trace.live_parts` (the
parts streamed while training). The torch and JAX specifics live in their adapters.
"""
from __future__ import annotations

import atexit
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sitegen.trace import jax_adapter, torch_adapter
from sitegen.trace.live_parts import _LiveParts
from sitegen.trace.names import _label_key, element_names
from sitegen.trace.table import _build_table, _chunk, _write_parquet
from sitegen.trace.torch_adapter import _Series


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
        values = torch_adapter.module_values(module, transforms)
        self.record(step, values, experiment=experiment, run=run, labels=labels, extra=extra)

    def record_pytree(self, step: int, params, *, experiment=None, run=None,
                      transforms: Mapping[str, tuple[str, Callable]] | None = None,
                      labels: Mapping[str, Any] | None = None,
                      extra: Mapping[str, Any] | None = None) -> None:
        """Record every leaf of a JAX pytree; a leaf's path becomes a dotted name.

        ``{"kernel": {"lengthscale": x}}`` -> ``kernel.lengthscale``; list items are numbered
        (``layers.0.w``). ``transforms`` and ``labels`` work as in :meth:`record_module`.
        """
        values = jax_adapter.pytree_values(params, transforms)
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
        adapter = torch_adapter if kind == "torch" else jax_adapter
        return adapter.flatten(arrays, extra_values)

def _host_array(value):
    return value.tolist() if _kind(value) != "host" else value


def _join_parts(kind, parts, batch):
    """Several (B, ...) device arrays as one (B, P) array (the path that has no buffer)."""
    return (torch_adapter if kind == "torch" else jax_adapter).join(parts, batch)


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
    for indices in torch_groups.values():
        for i, part in zip(indices, torch_adapter.to_host([pending[i].values for i in indices])):
            out[i] = part
    if jax_indices:
        for i, arr in zip(jax_indices, jax_adapter.to_host([pending[i].values for i in jax_indices])):
            out[i] = arr
    return out  # type: ignore[return-value]

