"""What the tracer does with torch tensors: device buffers, one-transfer copies, modules.

torch is never imported at module level: this module is loaded by the tracer, which experiments
import and which also works with numpy alone; the functions below run only once torch is in use.

:class:`_Series` keeps ``record_batch()`` blocks of the same models in buffers preallocated on the
device (one copy per step, no allocation); the other functions flatten, join and fetch the
tensors of ``record()`` calls, all tensors on one device in a single transfer.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from sitegen.trace.names import _apply_transform


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



def flatten(arrays, extra_values):
    """One flat tensor holding the arrays and extras on the first tensor's device, copied so
    later in-place updates of the parameters cannot change what was recorded."""
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


def join(parts, batch):
    """Several (B, ...) tensors as one (B, P) tensor (the path that has no buffer)."""
    torch = _torch()
    return torch.cat([p.detach().reshape(batch, -1) for p in parts], 1)


def to_host(arrays: list) -> list[np.ndarray]:
    """Flat tensors on one device as float64 numpy arrays, copied in one transfer."""
    import torch

    # torch.cat promotes mixed dtypes (float32 with float64 gives float64) on the device;
    # the widening to float64 happens on the host, after the one transfer.
    flat = torch.cat(arrays)
    if flat.dtype == torch.bfloat16:   # numpy has no bfloat16
        flat = flat.float()
    flat = flat.cpu().numpy().astype(np.float64, copy=False)
    offsets = np.cumsum([a.numel() for a in arrays])[:-1]
    return np.split(flat, offsets)


def module_values(module, transforms) -> dict[str, Any]:
    """Every parameter of a ``torch.nn.Module`` by its ``named_parameters()`` name (renamed and
    transformed by ``transforms``), detached."""
    values = {}
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters():
            name, fn = _apply_transform(name, transforms)
            values[name] = fn(param.detach()) if fn is not None else param.detach()
    return values
