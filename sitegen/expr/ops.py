"""The operation table: every built-in operation's printing (symbol, precedence), shape rule and
arity, in :data:`OPS`; the user's named functions (:func:`sitegen.expr.define`,
:func:`sitegen.expr.register_function`) in :data:`FUNCTIONS`.

Nodes read this table to infer shapes, the printer to place parentheses, the evaluator to pick a
backend function. It imports nothing from the rest of the package.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: str                 # "infix", "prefix" or "call"
    symbol: str = ""          # python style symbol (infix/prefix) or function name (call)
    math: str = ""            # math style symbol
    prec: int = 100           # binding strength when printed; higher binds tighter
    assoc: str = "left"       # "left" or "right" (pow)
    #: elementwise | reduce | dot | matmul, or a function (argument shapes, attributes) -> shape
    shape: Any = "elementwise"
    arity: int = 1            # -1: any number of arguments


# Precedence levels, as in Python.
P_COMPARE, P_ADD, P_MUL, P_NEG, P_POW, P_ATOM = 5, 10, 20, 30, 40, 100

OPS: dict[str, OpSpec] = {}

#: Named functions by name (values are :class:`sitegen.expr.functions.Function`).
FUNCTIONS: dict[str, Any] = {}


def _op(spec: OpSpec) -> OpSpec:
    OPS[spec.name] = spec
    return spec


_op(OpSpec("add", "infix", "+", "+", P_ADD, arity=2))
_op(OpSpec("sub", "infix", "-", "\u2212", P_ADD, arity=2))
_op(OpSpec("mul", "infix", "*", "\u00b7", P_MUL, arity=2))
_op(OpSpec("div", "infix", "/", "/", P_MUL, arity=2))
_op(OpSpec("matmul", "infix", "@", "\u00b7", P_MUL, shape="matmul", arity=2))
_op(OpSpec("pow", "infix", "**", "^", P_POW, assoc="right", arity=2))
_op(OpSpec("ne", "infix", "!=", "\u2260", P_COMPARE, arity=2))
_op(OpSpec("neg", "prefix", "-", "\u2212", P_NEG))
for _name in ("exp", "log", "sqrt", "tanh", "softplus", "sigmoid", "relu", "abs", "square"):
    _op(OpSpec(_name, "call", _name, "\u221a" if _name == "sqrt" else _name))
_op(OpSpec("sum", "call", "sum", "sum", shape="reduce"))
_op(OpSpec("mean", "call", "mean", "mean", shape="reduce"))
_op(OpSpec("dot", "call", "dot", "dot", shape="dot", arity=2))
_op(OpSpec("prod", "call", "prod", "prod", shape="reduce"))


# ---- operations with attributes (axis=, shape=, p=, lengths=) ---------------------------------
# Axes are stored counted from the end (negative), so leading batch dimensions an input carries
# when evaluated (a batch of models) pass through every operation untouched.

def broadcast_shapes(*shapes) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def normalize_axis(axis: int, ndim: int, what: str = "axis") -> int:
    """``axis`` of an array of ``ndim`` dimensions, counted from the end (-1 is the last)."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what} {axis} is out of range for {ndim} dimension(s)")
    return axis - ndim if axis >= 0 else axis


def _stack_shape(shapes, attrs):
    inner = broadcast_shapes(*shapes)
    a = len(inner) + 1 + attrs["axis"]
    return inner[:a] + (len(shapes),) + inner[a:]


def _concat_shape(shapes, attrs):
    axis = attrs["axis"]
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1 or -axis > min(ranks):
        raise ValueError(f"cannot concatenate shapes {shapes} on axis {axis}")
    rest = {s[:axis] + s[axis + 1:] if axis != -1 else s[:-1] for s in shapes}
    if len(rest) != 1:
        raise ValueError(f"cannot concatenate shapes {shapes} on axis {axis}: other axes differ")
    s0 = shapes[0]
    total = sum(s[axis] for s in shapes)
    return s0[:axis] + (total,) + (s0[axis + 1:] if axis != -1 else ())


def _reshape_shape(shapes, attrs):
    (s,) = shapes
    if math.prod(s) != math.prod(attrs["shape"]):
        raise ValueError(f"cannot reshape {s} to {attrs['shape']}")
    return tuple(attrs["shape"])


def _broadcast_to_shape(shapes, attrs):
    (s,) = shapes
    if broadcast_shapes(s, attrs["shape"]) != tuple(attrs["shape"]):
        raise ValueError(f"cannot broadcast {s} to {attrs['shape']}")
    return tuple(attrs["shape"])


def dummy(shape) -> np.ndarray:
    """A zero-memory array of ``shape``, to let numpy work out shapes."""
    return np.broadcast_to(np.empty((), dtype=bool), shape)


def _moveaxis_shape(shapes, attrs):
    return np.moveaxis(dummy(shapes[0]), attrs["source"], attrs["destination"]).shape


def _pairs_shape(a, b):
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-1]:
        raise ValueError(f"distances need two (..., points, features) arrays of as many features, got {a} and {b}")
    return broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-2])


def _cdist_shape(shapes, attrs):
    return _pairs_shape(*shapes)


def _cdist_multi_shape(shapes, attrs):
    out = _pairs_shape(*shapes)
    if sum(attrs["lengths"]) != shapes[0][-1]:
        raise ValueError(f"group lengths {attrs['lengths']} do not add up to {shapes[0][-1]} features")
    a = len(out) + 1 + attrs["axis"]
    return out[:a] + (len(attrs["lengths"]),) + out[a:]


def _segment_shape(shapes, attrs):
    (s,) = shapes
    axis = attrs["axis"]
    if sum(attrs["lengths"]) != s[axis]:
        raise ValueError(f"segment lengths {attrs['lengths']} do not add up to {s[axis]}")
    return s[:axis] + (len(attrs["lengths"]),) + (s[axis + 1:] if axis != -1 else ())


_op(OpSpec("stack", "call", "stack", "stack", shape=_stack_shape, arity=-1))
_op(OpSpec("concat", "call", "concatenate", "concatenate", shape=_concat_shape, arity=-1))
_op(OpSpec("reshape", "call", "reshape", "reshape", shape=_reshape_shape))
_op(OpSpec("broadcast_to", "call", "broadcast_to", "broadcast_to", shape=_broadcast_to_shape))
_op(OpSpec("moveaxis", "call", "moveaxis", "moveaxis", shape=_moveaxis_shape))
_op(OpSpec("cdist", "call", "cdist", "cdist", shape=_cdist_shape, arity=2))
_op(OpSpec("cdist_multi", "call", "cdist_multi", "cdist_multi", shape=_cdist_multi_shape, arity=2))
_op(OpSpec("segment_sum", "call", "segment_sum", "segment_sum", shape=_segment_shape))
_op(OpSpec("segment_prod", "call", "segment_prod", "segment_prod", shape=_segment_shape))
