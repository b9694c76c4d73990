"""Transformations that keep a tree's meaning: :func:`constrain` (constraint transforms become the
constrained parameters the tracer records), :func:`partial` (plug in known values, fold
constants) and :func:`tracer_transforms` (the same constraints for the tracer).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from sitegen.expr.evaluate import _Evaluator, evaluate, get_backend
from sitegen.expr.nodes import Const, Index, Node, Op, Param, Var, Vector
from sitegen.expr.ops import FUNCTIONS
from sitegen.expr.program import Program
from sitegen.expr.rewrite import iter_nodes, map_tree


def _program_aware(fn):
    def wrapper(tree, *args, **kwargs):
        if isinstance(tree, Program):
            return tree.map(lambda t: fn(t, *args, **kwargs))
        return fn(tree, *args, **kwargs)

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


@_program_aware
def constrain(tree: Node) -> Node:
    """Apply the constraint transforms: ``softplus(⟦raw_noise⟧)`` becomes ``⟦noise⟧``.

    The constrained parameter is what the tracer records when given :func:`tracer_transforms`,
    so the printed placeholder names the traced value. Evaluate the result with constrained values.
    """
    def fix(n: Node) -> Node:
        if isinstance(n, Param) and n.transform:
            parent = (n.parent[1], n.parent[1], n.parent[2]) if n.parent else None
            return Param(n.constrained, n.shape, n.labels, None, n.constrained, n.options, parent)
        return n

    return map_tree(tree, fix)


def tracer_transforms(tree: Node | Program, backend: str = "torch") -> dict[str, tuple[str, Callable]]:
    """``{raw_name: (constrained_name, function)}`` for :meth:`sitegen.trace.Tracer.record_module`
    (``backend="torch"``) or ``record_pytree`` (``"jax"``), taken from the tree's parameters."""
    be = get_backend(backend)
    out = {}
    for p in _params(tree):
        if p.transform:
            name = p.parent[0] if p.parent else p.name
            constrained = p.parent[1] if p.parent else p.constrained
            if p.transform in be.fn:
                fn = be.fn[p.transform]
            else:
                f = FUNCTIONS[p.transform]

                def fn(x, _f=f, _be=backend):
                    return evaluate(_f(Var(_f.params[0])), inputs={_f.params[0]: x}, backend=_be)
            out[name] = (constrained, fn)
    return out


def _params(tree) -> list[Param]:
    trees = [s.expr for s in tree.assignments] if isinstance(tree, Program) else [tree]
    return [n for t in trees for n in iter_nodes(t) if isinstance(n, Param)]


@_program_aware
def partial(tree: Node, params: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None,
            fold: bool = True) -> Node:
    """Plug in known values and fold what can be computed.

    Parameters named in ``params`` and inputs named in ``inputs`` become constants; then every
    operation on unnamed constants is computed, and ``x + 0``, ``x * 1``, ``x ** 1`` are
    simplified. Named constants (``w_cls``) stay as names.
    """
    params = dict(params or {})
    inputs = dict(inputs or {})

    def host(v):
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        return np.asarray(v, dtype=np.float64)

    def plug(n: Node) -> Node:
        if isinstance(n, Param):
            if n.name in params or n.constrained in params:
                ev = _Evaluator({k: host(v) for k, v in params.items()}, {}, get_backend("numpy"))
                return Const(ev.lookup_param(n))
            if n.parent and (n.parent[0] in params or n.parent[1] in params):
                ev = _Evaluator({k: host(v) for k, v in params.items()}, {}, get_backend("numpy"))
                return Const(ev.lookup_param(n))
        if isinstance(n, Var) and n.name in inputs:
            return Const(host(inputs[n.name]))
        if fold:
            return _fold(n)
        return n

    return map_tree(tree, plug)


def _is_const(n: Node, value=None) -> bool:
    if not isinstance(n, Const) or n.name is not None:
        return False
    if value is None:
        return True
    return not isinstance(n.value, np.ndarray) and n.value == value


def _fold(n: Node) -> Node:
    if isinstance(n, Op):
        a = n.args
        if all(_is_const(x) for x in a):
            return Const(evaluate(n))
        if n.op == "add":
            if _is_const(a[0], 0) and a[1].shape == n.shape: return a[1]
            if _is_const(a[1], 0) and a[0].shape == n.shape: return a[0]
        if n.op == "sub" and _is_const(a[1], 0) and a[0].shape == n.shape: return a[0]
        if n.op == "mul":
            if _is_const(a[0], 1) and a[1].shape == n.shape: return a[1]
            if _is_const(a[1], 1) and a[0].shape == n.shape: return a[0]
        if n.op in ("div", "pow") and _is_const(a[1], 1) and a[0].shape == n.shape: return a[0]
    if isinstance(n, Index) and _is_const(n.node):
        return Const(np.asarray(n.node.value)[n.index])
    if isinstance(n, Vector) and n.items and all(_is_const(i) for i in n.items):
        return Const(np.stack([np.broadcast_to(np.asarray(i.value, dtype=np.float64), n.shape[1:])
                               for i in n.items]))
    return n

