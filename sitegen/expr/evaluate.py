"""Evaluation: a tree (or a Program's outputs) computed with numpy, torch or JAX, from parameter
values and inputs; the few array functions each backend needs.

torch and jax are imported lazily, only when a tree is evaluated with them.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sitegen.expr.nodes import SERVICES, Const, Index, Node, Op, Param, Ref, Var, Vector
from sitegen.expr.ops import FUNCTIONS
from sitegen.expr.program import Program


class _Backend:
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

    def matmul(self, a, b, b_is_vector: bool):
        if b_is_vector:
            # W @ x for x with leading batch dimensions: (..., D) @ (D, H) -> (..., H)
            return b @ (a.T if a.ndim == 2 else a)
        return a @ b


_BACKENDS: dict[str, _Backend] = {}


def get_backend(name: str) -> _Backend:
    if name not in _BACKENDS:
        _BACKENDS[name] = _Backend(name)
    return _BACKENDS[name]



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
    def __init__(self, params, inputs, be: _Backend):
        self.params = params
        self.inputs = inputs
        self.be = be
        self.env: dict[str, Any] = {}

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
            return value[(Ellipsis,) + node.index + (slice(None),) * rest]
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
            args = [self.eval(a, local) for a in node.args]
            return self.apply(node.op, args, {"node": node})
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
        if op == "matmul":
            node = extra.get("node")
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



SERVICES["evaluate"] = evaluate
