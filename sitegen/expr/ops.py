"""The operation table: every built-in operation's printing (symbol, precedence), shape rule and
arity, in :data:`OPS`; the user's named functions (:func:`sitegen.expr.define`,
:func:`sitegen.expr.register_function`) in :data:`FUNCTIONS`.

Nodes read this table to infer shapes, the printer to place parentheses, the evaluator to pick a
backend function. It imports nothing from the rest of the package.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: str                 # "infix", "prefix" or "call"
    symbol: str = ""          # python style symbol (infix/prefix) or function name (call)
    math: str = ""            # math style symbol
    prec: int = 100           # binding strength when printed; higher binds tighter
    assoc: str = "left"       # "left" or "right" (pow)
    shape: str = "elementwise"  # elementwise | reduce | dot | matmul
    arity: int = 1


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
