"""Evaluation: a tree (or a Program's outputs) computed with numpy, torch or JAX, from parameter
values and inputs; the few array functions each backend needs.

torch and jax are imported lazily, only when a tree is evaluated with them.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sitegen.expr import backends
from sitegen.expr.backends import Backend, get_backend
from sitegen.expr.nodes import SERVICES, Const, Index, Node, Op, Param, Ref, Var, Vector
from sitegen.expr.ops import FUNCTIONS
from sitegen.expr.program import Program


def evaluate(tree: Node | Program, params: Mapping[str, Any] | None = None,
             inputs: Mapping[str, Any] | None = None, backend: str = "numpy"):
    """Compute a tree (or a Program's outputs) with ``backend`` ("numpy", "torch" or "jax").

    ``params`` maps parameter names to values: the raw name (a transform is applied), or, for a
    transformed parameter, its constrained name (used as is). A vector parameter's elements are
    found in the vector. ``inputs`` maps input names to values; inputs may carry leading batch
    dimensions (``x`` of shape (N, D) where the tree says (D,)).
    """
    return _Evaluator(params or {}, inputs or {}, get_backend(backend)).run(tree)


class _Evaluator:
    def __init__(self, params, inputs, be: Backend):
        self.params = params
        self.inputs = inputs
        self.be = be
        self.env: dict[str, Any] = {}
        self.memo: dict[int, tuple] = {}  # a sub-tree shared by several parents is computed once

    def run(self, tree):
        if isinstance(tree, Program):
            for s in tree.assignments:
                self.env[s.name] = self.eval(s.expr, {})
            if len(tree.outputs) == 1:
                return self.env[tree.outputs[0]]
            return {name: self.env[name] for name in tree.outputs}
        return self.eval(tree, {})

    def lookup_param(self, p: Param):
        params = self.params
        if p.name in params:
            value, transformed = params[p.name], False
        elif p.constrained in params:
            value, transformed = params[p.constrained], True
        elif p.parent is not None and (p.parent[0] in params or p.parent[1] in params):
            transformed = p.parent[0] not in params
            value = params[p.parent[1] if transformed else p.parent[0]]
            value = value.reshape(-1)[p.parent[2]]
        else:
            known = ", ".join(sorted(params)) or "none"
            raise KeyError(f"no value for parameter {p.name!r} (given: {known})")
        value = self.host(value)
        if p.transform and not transformed:
            value = self.apply(p.transform, [value], {})
        return value

    def host(self, value):
        """Python numbers stay numbers; arrays become arrays of the backend."""
        if isinstance(value, (int, float)):
            return value
        if self.be.name == "numpy":
            return np.asarray(value)
        if type(value).__module__.startswith("numpy") or isinstance(value, (list, tuple)):
            return self.be.asarray(np.asarray(value))
        return value

    def eval(self, node: Node, local: dict):
        if isinstance(node, Const):
            v = node.value
            return v if isinstance(v, (int, float)) else self.host(v)
        if isinstance(node, Param):
            return self.lookup_param(node)
        if isinstance(node, Var):
            if node.name in local:
                return local[node.name]
            if node.name not in self.inputs:
                known = ", ".join(sorted(self.inputs)) or "none"
                raise KeyError(f"no value for input {node.name!r} (given: {known})")
            return self.host(self.inputs[node.name])
        if isinstance(node, Ref):
            if node.name in local:
                return local[node.name]
            return self.env[node.name]
        if isinstance(node, Index):
            value = self.eval(node.node, local)
            rest = len(node.node.shape) - len(node.index)
            index = node.index if node.simple else \
                tuple(self.be.indices(e) if isinstance(e, tuple) else e for e in node.index)
            return value[(Ellipsis,) + index + (slice(None),) * rest]
        if isinstance(node, Vector):
            items = [self.eval(i, local) for i in node.items]
            if all(isinstance(i, (int, float)) for i in items):
                return self.host(np.asarray(items, dtype=np.float64))
            xp = self.be.xp
            items = [i if not isinstance(i, (int, float)) else self.be.asarray(i) for i in items]
            items = [xp.broadcast_to(i, np.broadcast_shapes(*(tuple(j.shape) for j in items))) for i in items]
            # elements are the last axis when evaluated with batch dimensions
            stack = xp.stack(items, -1)
            return stack if not node.shape[1:] else xp.moveaxis(stack, -1, -1 - len(node.shape[1:]))
        if isinstance(node, Op):
            if not local:
                got = self.memo.get(id(node))
                if got is not None:
                    return got[1]
            args = [self.eval(a, local) for a in node.args]
            if len(args) > 1 and node.op in _ALIGNED:
                args = _align(args, node)
            value = self.apply(node.op, args, {"node": node})
            if not local:
                self.memo[id(node)] = (node, value)  # the node is kept so its id stays its own
            return value
        raise TypeError(f"cannot evaluate {type(node).__name__}")

    def apply(self, op: str, args: list, extra: dict):
        if op == "add": return args[0] + args[1]
        if op == "sub": return args[0] - args[1]
        if op == "mul": return args[0] * args[1]
        if op == "div": return args[0] / args[1]
        if op == "pow": return args[0] ** args[1]
        if op == "neg": return -args[0]
        be = self.be
        if all(isinstance(a, (int, float)) for a in args):
            be = get_backend("numpy")  # constants only: compute on the host
            args = [np.float64(a) for a in args]
        node = extra.get("node")
        if op in _ARRAY_OPS:
            return _ARRAY_OPS[op](be, args, node.attrs if node is not None else {}, node)
        if op == "matmul":
            return be.matmul(args[0], args[1], b_is_vector=node is None or len(node.args[1].shape) == 1)
        if op == "dot":
            return be.fn["sum"](args[0] * args[1])
        if op in be.fn:
            return be.fn[op](*args)
        fn = FUNCTIONS.get(op)
        if fn is None:
            raise ValueError(f"unknown operation {op!r}")
        if fn.body is not None:
            return self.eval(fn.body, dict(zip(fn.params, args)))
        impl = fn.impls.get(be.name)
        if impl is None:
            raise ValueError(f"function {op!r} has no {be.name} implementation")
        return impl(*args)



# ---- leading batch dimensions -----------------------------------------------------------------
# A value is (batch dimensions) + (the node's shape). Two arguments of an elementwise operation
# whose shapes have different lengths get ones inserted after their batch dimensions, so a batch
# of scalar weights (60,) multiplies a batch of matrices (60, 59, 59) model by model.

_ALIGNED = {"add", "sub", "mul", "div", "pow", "ne"}


def _align(args: list, node: Op) -> list:
    rank = len(node.shape)
    out = []
    for value, child in zip(args, node.args):
        r = len(child.shape)
        ndim = getattr(value, "ndim", 0)
        if r < rank and ndim > r:
            lead = tuple(value.shape[:ndim - r])
            value = value.reshape(lead + (1,) * (rank - r) + tuple(child.shape))
        out.append(value)
    return out


def _batch(value, shape) -> tuple:
    return tuple(value.shape[:getattr(value, "ndim", 0) - len(shape)])


def _same_batch(be, values, nodes) -> list:
    """Arguments of stack/concat brought to one batch shape (some may have none)."""
    batches = [_batch(v, n.shape) if hasattr(v, "shape") else () for v, n in zip(values, nodes)]
    common = tuple(np.broadcast_shapes(*batches))
    out = []
    for v, n, b in zip(values, nodes, batches):
        if not hasattr(v, "shape"):
            v = be.asarray(np.float64(v))
        if b != common or tuple(v.shape[len(b):]) != tuple(n.shape):
            v = be.broadcast_to(v, common + tuple(n.shape))
        out.append(v)
    return out


def _reduce(how):
    def run(be, args, attrs, node):
        return getattr(be, how)(args[0], attrs.get("axis", -1))
    return run


def _stack(be, args, attrs, node):
    shape = node.shape[:len(node.shape) + attrs["axis"]] + node.shape[len(node.shape) + attrs["axis"] + 1:]
    items = _same_batch(be, args, [_Shaped(shape)] * len(args))
    return be.stack(items, attrs["axis"])


def _concat(be, args, attrs, node):
    return be.concat(_same_batch(be, args, node.args), attrs["axis"])


def _reshape(be, args, attrs, node):
    x = args[0]
    return x.reshape(_batch(x, node.args[0].shape) + tuple(attrs["shape"]))


def _broadcast_to(be, args, attrs, node):
    x = args[0]
    if not hasattr(x, "shape"):
        x = be.asarray(np.float64(x))
    return be.broadcast_to(x, _batch(x, node.args[0].shape) + tuple(attrs["shape"]))


class _Shaped:
    def __init__(self, shape):
        self.shape = shape


_ARRAY_OPS = {
    "sum": _reduce("sum"), "mean": _reduce("mean"), "prod": _reduce("prod"),
    "stack": _stack, "concat": _concat, "reshape": _reshape, "broadcast_to": _broadcast_to,
    "moveaxis": lambda be, a, at, n: be.moveaxis(a[0], at["source"], at["destination"]),
    "cdist": lambda be, a, at, n: backends.cdist(be, a[0], a[1], at.get("p", 2)),
    "cdist_multi": lambda be, a, at, n: backends.cdist_multi(be, a[0], a[1], at["lengths"], at.get("p", 2),
                                                          at.get("axis", -1)),
    "segment_sum": lambda be, a, at, n: backends.segment_reduce(be, a[0], at["lengths"], at["axis"], "sum"),
    "segment_prod": lambda be, a, at, n: backends.segment_reduce(be, a[0], at["lengths"], at["axis"], "prod"),
}

SERVICES["evaluate"] = evaluate
