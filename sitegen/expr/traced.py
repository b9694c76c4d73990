"""Tracing a Python function into a tree: ``@vectorized`` builds the tree on the first call (with
that call's shapes), vectorizes it once, keeps both, and evaluates the vector form on every call.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from sitegen.expr.evaluate import evaluate
from sitegen.expr.nodes import Node, Param, Var, as_node
from sitegen.expr.vectorize import vectorize


def _backend_of(values) -> str:
    for v in values:
        module = type(v).__module__
        if module.startswith("torch"):
            return "torch"
        if module.startswith(("jax", "jaxlib")):
            return "jax"
    return "numpy"


def _shape_of(v) -> tuple[int, ...]:
    shape = getattr(v, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else tuple(np.shape(v))


class Vectorized:
    """A Python function over expression nodes that builds its tree on the first call (with the
    shapes of that call's arguments), vectorizes it, keeps both, and evaluates the vectorized tree
    on every call with the arguments' library (numpy, torch or JAX).

    ``params`` names the arguments that are trained parameters (printed as placeholders);
    ``batch_dims`` leading dimensions of every argument are a batch (of models) that the tree
    does not see. ``tree`` is the tree as written, ``vectorized`` its vector form (both for the
    last shapes called with).
    """

    def __init__(self, fn: Callable, params=(), batch_dims: int = 0):
        self.fn = fn
        self.params = set(params)
        self.batch_dims = batch_dims
        self.signature = inspect.signature(fn)
        self.cache: dict[tuple, tuple[Node, Node]] = {}
        self.tree: Node | None = None
        self.vectorized: Node | None = None
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", "vectorized")

    def with_batch_dims(self, batch_dims: int) -> "Vectorized":
        return Vectorized(self.fn, self.params, batch_dims)

    def trace(self, *args, **kwargs) -> Node:
        """The tree as written, for arguments of these shapes (values are not used)."""
        bound = self.signature.bind(*args, **kwargs)
        leaves = {}
        for name, value in bound.arguments.items():
            shape = _shape_of(value)[self.batch_dims:]
            leaves[name] = Param(name, shape) if name in self.params else Var(name, shape)
        return as_node(self.fn(**leaves))

    def __call__(self, *args, **kwargs):
        bound = self.signature.bind(*args, **kwargs)
        values = bound.arguments
        key = tuple((name, _shape_of(v)[self.batch_dims:]) for name, v in values.items())
        if key not in self.cache:
            written = self.trace(*args, **kwargs)
            self.cache[key] = (written, vectorize(written))
        self.tree, self.vectorized = self.cache[key]
        params = {k: v for k, v in values.items() if k in self.params}
        inputs = {k: v for k, v in values.items() if k not in self.params}
        return evaluate(self.vectorized, params, inputs, _backend_of(values.values()))

    def as_written(self, *args, **kwargs):
        """The same call evaluated node by node as written (for comparisons and benchmarks)."""
        bound = self.signature.bind(*args, **kwargs)
        values = bound.arguments
        key = tuple((name, _shape_of(v)[self.batch_dims:]) for name, v in values.items())
        if key not in self.cache:
            self(*args, **kwargs)
        written = self.cache[key][0]
        params = {k: v for k, v in values.items() if k in self.params}
        inputs = {k: v for k, v in values.items() if k not in self.params}
        return evaluate(written, params, inputs, _backend_of(values.values()))


def vectorized(fn: Callable | None = None, *, params=(), batch_dims: int = 0):
    """Decorator: ``@vectorized`` or ``@vectorized(params=["lengthscale"])``; see :class:`Vectorized`."""
    if fn is None:
        return lambda f: Vectorized(f, params, batch_dims)
    return Vectorized(fn, params, batch_dims)

