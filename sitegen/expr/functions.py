"""Named functions: defined by a tree over their arguments (printed as a ``def`` and evaluable with
every backend) or registered with one callable per backend (printed as a call); and the Matérn 5/2
kernel, defined the first way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sitegen.expr.nodes import Const, Node, Op, Var, as_node, exp
from sitegen.expr.ops import FUNCTIONS, OPS


@dataclass
class Function:
    """A named function. ``body`` (a tree over ``Var(argument)`` nodes) makes it printable and
    evaluable with every backend; ``impls`` maps a backend name to a callable instead."""

    name: str
    params: tuple[str, ...]
    body: Node | None = None
    impls: dict[str, Callable] = field(default_factory=dict)
    shape: Any = "elementwise"
    doc: str = ""

    def __call__(self, *args) -> Op:
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}() takes {len(self.params)} argument(s), got {len(args)}")
        return Op(self.name, *args)


def define(name: str, params: Sequence[str], body: Node, doc: str = "") -> Function:
    """Define a named function by an expression over its arguments (``Var`` nodes of those names).

    >>> r = var("r"); f = define("matern52", ["r"], (1 + 5**0.5 * r + 5/3 * r**2) * exp(-5**0.5 * r))
    """
    if name in OPS:
        raise ValueError(f"{name!r} is a built-in operation")
    fn = Function(name, tuple(params), as_node(body), doc=doc)
    FUNCTIONS[name] = fn
    return fn


def register_function(name: str, params: Sequence[str] = ("x",), *, numpy: Callable | None = None,
                      torch: Callable | None = None, jax: Callable | None = None,
                      shape: Any = "elementwise", doc: str = "") -> Function:
    """A named function computed by a callable per backend (printed as a call, never expanded)."""
    if name in OPS:
        raise ValueError(f"{name!r} is a built-in operation")
    impls = {k: v for k, v in (("numpy", numpy), ("torch", torch), ("jax", jax)) if v is not None}
    fn = Function(name, tuple(params), None, impls, shape, doc)
    FUNCTIONS[name] = fn
    return fn


def call(name: str, *args) -> Op:
    return Op(name, *args)


# ---- constructors ----------------------------------------------------------------------------


_r = Var("r")
matern52 = define(
    "matern52", ["r"],
    (1 + Const(5 ** 0.5, "sqrt(5)", "√5") * _r + Const(5 / 3, "5/3") * _r ** 2)
    * exp(-(Const(5 ** 0.5, "sqrt(5)", "√5") * _r)),
    doc="Matérn kernel with smoothness 5/2 as a function of the scaled distance r")
del _r
