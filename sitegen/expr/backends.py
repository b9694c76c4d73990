"""Backends: the array functions trees need, spelled for numpy, torch or JAX, and the batched
kernels the vectorized operations compile to (distances over groups of features, segment sums and
products). Every function keeps leading batch dimensions untouched.

torch and jax are imported lazily, only when a backend is first asked for.
"""
from __future__ import annotations

import numpy as np


class Backend:
    """The few array functions the trees need, for one library."""

    def __init__(self, name: str):
        self.name = name
        if name == "numpy":
            self.xp = np
            self.fn = {
                "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "abs": np.abs,
                "softplus": lambda x: np.logaddexp(0.0, x),
                "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
                "relu": lambda x: np.maximum(x, 0.0),
                "sum": lambda x: np.sum(x, axis=-1), "mean": lambda x: np.mean(x, axis=-1),
                "ne": lambda a, b: (np.asarray(a) != np.asarray(b)).astype(np.float64),
            }
            self.asarray = np.asarray
        elif name == "torch":
            import torch
            import torch.nn.functional as F

            self.xp = torch

            def ne(a, b):
                dtype = next((t.dtype for t in (a, b) if isinstance(t, torch.Tensor)
                              and t.is_floating_point()), torch.get_default_dtype())
                return (a != b).to(dtype)

            self.fn = {
                "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "tanh": torch.tanh,
                "abs": torch.abs, "softplus": F.softplus, "sigmoid": torch.sigmoid,
                "relu": torch.relu,
                "sum": lambda x: torch.sum(x, dim=-1), "mean": lambda x: torch.mean(x, dim=-1),
                "ne": ne,
            }
            self.asarray = torch.as_tensor
        elif name == "jax":
            import jax
            import jax.numpy as jnp

            self.xp = jnp
            self.fn = {
                "exp": jnp.exp, "log": jnp.log, "sqrt": jnp.sqrt, "tanh": jnp.tanh,
                "abs": jnp.abs, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid,
                "relu": jax.nn.relu,
                "sum": lambda x: jnp.sum(x, axis=-1), "mean": lambda x: jnp.mean(x, axis=-1),
                "ne": lambda a, b: (a != b).astype(jnp.result_type(float)),
            }
            self.asarray = jnp.asarray
        else:
            raise ValueError(f"unknown backend {name!r}; use 'numpy', 'torch' or 'jax'")
        self.fn["square"] = lambda x: x * x

    # ---- array functions with axes, shared by the three libraries' spellings -----------------
    def sum(self, x, axis):
        return self.xp.sum(x, dim=axis) if self.name == "torch" else self.xp.sum(x, axis=axis)

    def mean(self, x, axis):
        return self.xp.mean(x, dim=axis) if self.name == "torch" else self.xp.mean(x, axis=axis)

    def prod(self, x, axis):
        return self.xp.prod(x, dim=axis) if self.name == "torch" else self.xp.prod(x, axis=axis)

    def stack(self, items, axis):
        return self.xp.stack(items, axis)

    def concat(self, items, axis):
        return self.xp.cat(items, axis) if self.name == "torch" else self.xp.concatenate(items, axis)

    def moveaxis(self, x, source, destination):
        return self.xp.movedim(x, source, destination) if self.name == "torch" \
            else self.xp.moveaxis(x, source, destination)

    def broadcast_to(self, x, shape):
        return self.xp.broadcast_to(x, tuple(shape))

    def indices(self, positions: tuple):
        """A list index as the library's integer array."""
        arr = np.asarray(positions, dtype=np.int64)
        return self.xp.as_tensor(arr) if self.name == "torch" else arr

    def where(self, cond, a, b):
        return self.xp.where(cond, a, b)

    def safe_sqrt(self, x):
        """sqrt with a zero gradient (not an infinite one) where x is 0: a distance from a point
        to itself, on the diagonal of every kernel matrix."""
        if self.name == "jax":
            return _jax_safe_sqrt()(x)
        positive = x > 0
        return self.where(positive, self.xp.sqrt(self.where(positive, x, self.xp.ones_like(x))),
                          self.xp.zeros_like(x))

    def matmul(self, a, b, b_is_vector: bool):
        if b_is_vector:
            # W @ x for x with leading batch dimensions: (..., D) @ (D, H) -> (..., H)
            return b @ (a.T if a.ndim == 2 else a)
        return a @ b


_BACKENDS: dict[str, Backend] = {}
_JAX_SAFE_SQRT: list = []


def _jax_safe_sqrt():
    """JAX's safe sqrt: the value is a plain sqrt (no test of x > 0 in it) and only the derivative
    chooses, once, from the result: 1 / (2 sqrt(x)), or 0 where the result is 0.

    Not ``where(x > 0, sqrt(where(x > 0, x, 1)), 0)`` as for numpy and torch: XLA on the CPU may
    compute a squared distance twice, in two fused loops, and with FMA contraction (AVX2) one copy
    of (x_i / s - x_i / s)^2 comes out 0 and the other 1e-33; the two tests then disagree and the
    distance of a point to itself is sqrt(1) = 1 (a kernel matrix off by up to 1.2 under jax.jit,
    eagerly right). tests/test_expr_jit.py has the case and a pure-JAX reproducer."""
    if not _JAX_SAFE_SQRT:
        import jax
        import jax.numpy as jnp

        @jax.custom_jvp
        def safe_sqrt(x):
            return jnp.sqrt(x)

        @safe_sqrt.defjvp
        def safe_sqrt_jvp(primals, tangents):
            y = jnp.sqrt(primals[0])
            return y, tangents[0] * (0.5 / jnp.where(y > 0, y, jnp.inf))

        _JAX_SAFE_SQRT.append(safe_sqrt)
    return _JAX_SAFE_SQRT[0]


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        _BACKENDS[name] = Backend(name)
    return _BACKENDS[name]


# ---- kernels of the vectorized operations ------------------------------------------------------

def pair_differences(be: Backend, x1, x2):
    """(..., N, D) and (..., M, D) -> (..., N, M, D)."""
    return x1[..., :, None, :] - x2[..., None, :, :]


def cdist(be: Backend, x1, x2, p: float):
    """Distances between the rows of x1 and x2: Euclidean (p=2) or L1 (p=1)."""
    if be.name == "torch" and x1.ndim == x2.ndim:
        return be.xp.cdist(x1, x2, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    diff = pair_differences(be, x1, x2)
    if p == 1:
        return be.sum(abs(diff), -1)
    return be.safe_sqrt(be.sum(diff * diff, -1))


def segment_matrix(lengths) -> np.ndarray:
    """(sum(lengths), groups) 0/1 matrix: column g adds up group g's entries."""
    m = np.zeros((sum(lengths), len(lengths)))
    start = 0
    for g, n in enumerate(lengths):
        m[start:start + n, g] = 1.0
        start += n
    return m


def segment_reduce_last(be: Backend, x, lengths, how: str):
    """Sum or multiply contiguous groups of the last axis: (..., sum(lengths)) -> (..., groups)."""
    lengths = tuple(lengths)
    if all(n == 1 for n in lengths):
        return x
    if len(set(lengths)) == 1:
        y = x.reshape(tuple(x.shape[:-1]) + (len(lengths), lengths[0]))
        return be.sum(y, -1) if how == "sum" else be.prod(y, -1)
    if how == "sum":
        m = segment_matrix(lengths)
        if be.name == "torch":
            m = be.xp.as_tensor(m, dtype=x.dtype)
        return x @ m
    # products of unequal groups: pad every group to the longest with ones, then multiply along
    width = max(lengths)
    gather = np.full((len(lengths), width), sum(lengths), dtype=np.int64)
    start = 0
    for g, n in enumerate(lengths):
        gather[g, :n] = np.arange(start, start + n)
        start += n
    ones = be.xp.ones_like(x[..., :1])
    padded = be.concat([x, ones], -1)[..., be.indices(tuple(gather.reshape(-1)))]
    return be.prod(padded.reshape(tuple(padded.shape[:-1]) + (len(lengths), width)), -1)


def segment_reduce(be: Backend, x, lengths, axis: int, how: str):
    if axis == -1:
        return segment_reduce_last(be, x, lengths, how)
    return be.moveaxis(segment_reduce_last(be, be.moveaxis(x, axis, -1), lengths, how), -1, axis)


def cdist_multi(be: Backend, x1, x2, lengths, p: float, axis: int):
    """One distance per group of feature columns (groups of ``lengths`` columns, in order), stacked
    on ``axis``: (..., N, D) and (..., M, D) -> (..., N, M) with a groups axis inserted. The
    differences are laid out with the groups where the result wants them (no copy to move them)."""
    if axis == -3:  # (..., D, N, M): the feature axis first
        t1, t2 = be.moveaxis(x1, -1, -2), be.moveaxis(x2, -1, -2)
        diff = t1[..., :, :, None] - t2[..., :, None, :]
        feature_axis = -3
    else:
        diff = pair_differences(be, x1, x2)
        feature_axis = -1
    if all(n == 1 for n in lengths):  # one column per group: both distances are |difference|
        d = abs(diff)
    else:
        per_feature = abs(diff) if p == 1 else diff * diff
        d = segment_reduce(be, per_feature, lengths, feature_axis, "sum")
        if p != 1:
            d = be.safe_sqrt(d)
    return d if axis == feature_axis else be.moveaxis(d, feature_axis, axis)
