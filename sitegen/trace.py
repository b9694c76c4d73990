"""Record every named scalar parameter of every run at every training step, cheaply.

A :class:`Tracer` turns what a training loop hands it (python floats, numpy arrays, torch tensors,
JAX arrays, whole ``torch.nn.Module`` objects or JAX pytrees) into the long-format table the site
reads: ``experiment, run, step, param, value`` plus any extra columns.

Why it is shaped this way: a training step of a small model takes well under a millisecond on a
GPU, and asking the device for one number (``.item()``) waits for everything queued before it.
So the tracer copies each record into one flat tensor *on the device*, keeps those until
``chunk_steps`` distinct steps have been seen, and then moves the whole chunk to the host in a
single transfer. The table is built with numpy from cached name arrays, not row by row.

torch and jax are never imported here at module level: experiments import this module, the site
builder does not, and a tracer used with numpy alone needs neither.
"""
from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

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
        self.experiment = experiment
        self.run = run
        self.names = names          # numpy object array of the P parameter names
        self.batch = batch          # None for record(); B for record_batch()
        self.extras = extras        # tuple of extra column names
        self.values = values
        self.kind = kind
        self.device = device


class Tracer:
    """Collects traced parameters on the device and writes one long-format table.

    ``chunk_steps``: how many distinct steps to keep on the device before moving them to the
    host (one transfer per chunk). ``live_dir``: when given, every chunk is also written there as
    ``part-00001.parquet``, ``part-00002.parquet``, ... (each atomically) so a preview server can
    show a run while it trains.
    """

    def __init__(self, chunk_steps: int = 50, live_dir: str | Path | None = None):
        if chunk_steps < 1:
            raise ValueError("chunk_steps must be at least 1")
        self.chunk_steps = int(chunk_steps)
        self.live_dir = Path(live_dir) if live_dir is not None else None
        self._pending: list[_Record] = []
        self._steps_pending = 0
        self._last_step = None
        self._frames: list = []          # pandas frames already on the host
        self._names_cache: dict = {}
        self._parts_written = 0
        if self.live_dir is not None:
            self.live_dir.mkdir(parents=True, exist_ok=True)
            for old in self.live_dir.glob("part-*.parquet"):
                old.unlink()

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
        self._append(_Record(step, experiment, run, self._names_array(tuple(names)), None,
                             extras, flat, kind, device))

    def record_batch(self, step: int, names: Sequence[str], values, *, experiment=None, run=None,
                     extra: Mapping[str, Any] | None = None) -> None:
        """Record P named scalars for B models at once: ``values`` is a (B, P) array.

        ``experiment`` and ``run`` are each a scalar (shared by all B models) or a sequence of B.
        ``extra`` values are scalars or length-B arrays. The block stays on its device until the
        chunk is flushed.
        """
        names = self._names_array(tuple(names))
        kind = _kind(values)
        shape = _shape(values)
        if len(shape) != 2 or shape[1] != len(names):
            raise ValueError(f"record_batch expects values of shape (B, {len(names)}), got {shape}")
        batch = shape[0]
        experiment = _per_model(experiment, batch, "experiment")
        run = _per_model(run, batch, "run")
        extras = tuple(extra) if extra else ()
        extra_values = [(_broadcast_extra(v, batch, kind)) for v in extra.values()] if extra else []
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
        self._steps_pending = 0
        host_values = _to_host(pending)
        frame = _build_frame(pending, host_values)
        self._frames.append(frame)
        if self.live_dir is not None and len(frame):
            self._parts_written += 1
            _write_parquet(frame, self.live_dir / f"part-{self._parts_written:05d}.parquet")

    def frame(self):
        """Everything recorded, as a pandas DataFrame in long format."""
        import pandas as pd

        self.flush()
        if not self._frames:
            return pd.DataFrame({"experiment": [], "run": [], "step": np.zeros(0, np.int64),
                                 "param": [], "value": np.zeros(0)})
        frame = pd.concat(self._frames, ignore_index=True, sort=False)
        self._frames = [frame]
        return frame

    def write(self, path: str | Path) -> Path:
        """Write the whole table as parquet, atomically (a temporary name, then a rename)."""
        path = Path(path)
        _write_parquet(self.frame(), path)
        return path

    def __len__(self) -> int:
        return sum(len(f) for f in self._frames) + sum(
            len(r.names) * (r.batch or 1) for r in self._pending)

    # ---------------------------------------------------------------- internals
    def _append(self, record: _Record) -> None:
        if record.step != self._last_step:
            self._last_step = record.step
            self._steps_pending += 1
            if self._steps_pending > self.chunk_steps:
                self.flush()
                self._steps_pending = 1
        self._pending.append(record)

    def _names(self, name, shape, labels) -> list[str]:
        key = (name, shape, _label_key(labels))
        names = self._names_cache.get(key)
        if names is None:
            names = self._names_cache[key] = element_names(name, shape, labels)
        return names

    def _names_array(self, names: tuple) -> np.ndarray:
        arr = self._names_cache.get(names)
        if arr is None:
            arr = self._names_cache[names] = np.array(names, dtype=object)
        return arr

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


def _per_model(value, batch: int, what: str) -> np.ndarray:
    if value is None or isinstance(value, (str, bytes, int, float, np.generic)):
        return np.full(batch, value, dtype=object)
    if _kind(value) != "host":
        value = np.asarray(value.tolist())  # labels of rows, not traced data: a small host copy
    arr = np.asarray(value, dtype=object).reshape(-1)
    if len(arr) != batch:
        raise ValueError(f"record_batch: {what} has {len(arr)} entries for {batch} models")
    return arr


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
        if r.kind == "host":
            out[i] = r.values
        elif r.kind == "torch":
            torch_groups.setdefault(r.device, []).append(i)
        else:
            jax_indices.append(i)
    if torch_groups:
        import torch

        for indices in torch_groups.values():
            arrays = [pending[i].values for i in indices]
            dtype = torch.float64 if any(a.dtype == torch.float64 for a in arrays) else None
            if dtype is None and any(not a.is_floating_point() for a in arrays):
                dtype = torch.float64
            if dtype is not None:
                arrays = [a.to(dtype) for a in arrays]
            flat = torch.cat(arrays).to("cpu", dtype=torch.float64).numpy()
            offsets = np.cumsum([a.numel() for a in arrays])[:-1]
            for i, part in zip(indices, np.split(flat, offsets)):
                out[i] = part
    if jax_indices:
        import jax

        fetched = jax.device_get([pending[i].values for i in jax_indices])
        for i, arr in zip(jax_indices, fetched):
            out[i] = np.asarray(arr, dtype=np.float64)
    return out  # type: ignore[return-value]


def _build_frame(pending: list[_Record], values: list[np.ndarray]):
    import pandas as pd

    sizes = [len(r.names) * (r.batch or 1) for r in pending]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    total = int(starts[-1])
    steps, experiments, runs, params, vals = [], [], [], [], []
    extra_cols: dict[str, np.ndarray] = {}
    for r, v, n, start in zip(pending, values, sizes, starts):
        p = len(r.names)
        b = r.batch or 1
        if r.batch is None:
            experiments.append(np.full(n, r.experiment, dtype=object))
            runs.append(np.full(n, r.run, dtype=object))
            params.append(r.names)
        else:
            experiments.append(np.repeat(r.experiment, p))
            runs.append(np.repeat(r.run, p))
            params.append(np.tile(r.names, b))
        steps.append(np.full(n, r.step, dtype=np.int64))
        vals.append(v[:n])
        for k, name in enumerate(r.extras):
            col = extra_cols.get(name)
            if col is None:
                col = extra_cols[name] = np.full(total, np.nan)
            per_model = v[n + k * b: n + (k + 1) * b]
            col[start:start + n] = np.repeat(per_model, p)
    frame = pd.DataFrame({
        "experiment": _tidy(np.concatenate(experiments)),
        "run": _tidy(np.concatenate(runs)),
        "step": np.concatenate(steps),
        "param": np.concatenate(params),
        "value": np.concatenate(vals).astype(np.float64),
    })
    for name, col in extra_cols.items():
        frame[name] = col
    return frame


def _tidy(column: np.ndarray):
    """Object columns of plain ints (or strings) become proper int64 (or str) columns."""
    import pandas as pd

    series = pd.Series(column)
    if len(series) and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in series.iloc[[0, -1]]):
        try:
            return series.astype(np.int64)
        except (TypeError, ValueError):
            return series
    if len(series) and all(isinstance(x, (float, np.floating)) for x in series.iloc[[0, -1]]):
        try:
            return series.astype(np.float64)
        except (TypeError, ValueError):
            return series
    return series


def _write_parquet(frame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
