"""Unvectorize: vector arithmetic written out element by element, so each scalar parameter gets its
own placeholder beside the input it scales (a vector definition in a Program becomes one
definition per element).
"""
from __future__ import annotations

import math

import numpy as np

from sitegen.expr.nodes import Const, Index, Node, Op, Param, Ref, Var, Vector, _broadcast, div, mul
from sitegen.expr.ops import FUNCTIONS, OPS
from sitegen.expr.program import Assign, Comment, Program
from sitegen.expr.rewrite import map_tree


def unvectorize(tree: Node | Program, max_elements: int = 256) -> Node | Program:
    """Write vector arithmetic out element by element, so each scalar parameter gets its own
    placeholder beside the input it scales.

    ``sum((x - x2) / lengthscale)`` with 3 labelled features becomes
    ``(x[a] - x2[a]) / ⟦lengthscale[a]⟧ + (x[b] - ...) / ⟦lengthscale[b]⟧ + ...``; ``W @ x + b``
    becomes a vector of sums. In a Program, a vector definition ``h = tanh(W @ x + b)`` becomes one
    definition per element (``h0 = ...``, ``h1 = ...``) and later uses refer to those.
    """
    if isinstance(tree, Program):
        statements: list[Assign | Comment] = []
        expanded: dict[str, list[str]] = {}
        for s in tree.statements:
            if not isinstance(s, Assign):
                statements.append(s)
                continue
            expr = _rename_refs(s.expr, expanded)
            if s.expr.shape and s.name not in tree.outputs:
                n = math.prod(s.expr.shape)
                if n > max_elements:
                    raise ValueError(f"{s.name} has {n} elements (more than max_elements={max_elements})")
                if s.element_names is not None:
                    names = list(s.element_names)
                    if len(names) != n:
                        raise ValueError(f"{s.name} has {n} elements but {len(names)} element_names")
                else:
                    names = [s.name + "".join(str(i) for i in idx) if len(s.expr.shape) == 1
                             else s.name + "_".join(str(i) for i in idx)
                             for idx in np.ndindex(*s.expr.shape)]
                expanded[s.name] = names
                for name, idx in zip(names, np.ndindex(*s.expr.shape)):
                    statements.append(Assign(name, _element(expr, tuple(idx), max_elements)))
            else:
                statements.append(Assign(s.name, _unvectorize_node(expr, max_elements), s.element_names))
        return Program(statements, tree.outputs)
    return _unvectorize_node(tree, max_elements)


def _rename_refs(tree: Node, expanded: dict[str, list[str]]) -> Node:
    """References to expanded vector definitions become Vectors of element references."""
    if not expanded:
        return tree

    def fix(n):
        if isinstance(n, Ref) and n.name in expanded:
            shape = n.shape
            refs = [Ref(name) for name in expanded[n.name]]
            if len(shape) == 1:
                return Vector(refs)
            return _nest(refs, shape)
        return n

    return map_tree(tree, fix)


def _nest(items: list[Node], shape) -> Node:
    if len(shape) == 1:
        return Vector(items)
    step = math.prod(shape[1:])
    return Vector([_nest(items[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])])


def _unvectorize_node(tree: Node, max_elements: int) -> Node:
    if not tree.shape:
        return _element(tree, (), max_elements)
    n = math.prod(tree.shape)
    if n > max_elements:
        raise ValueError(f"{tree.sexpr()[:60]} has {n} elements (more than max_elements={max_elements})")
    items = [_element(tree, tuple(idx), max_elements) for idx in np.ndindex(*tree.shape)]
    return _nest(items, tree.shape)


def _element(node: Node, idx: tuple[int, ...], max_elements: int) -> Node:
    """The scalar expression for element ``idx`` of ``node`` (``()`` for a scalar node)."""
    shape = node.shape
    if len(idx) != len(shape):
        raise ValueError(f"index {idx} does not fit shape {shape}")
    if isinstance(node, Const):
        if not shape:
            return node
        return Const(np.asarray(node.value)[idx], node.name and f"{node.name}[{','.join(map(str, idx))}]")
    if isinstance(node, Param):
        if not shape:
            return node
        return node.element(int(np.ravel_multi_index(idx, shape)))
    if isinstance(node, (Var, Ref)):
        return node if not shape else Index(node, idx)
    if isinstance(node, Index):
        return _element(node.node, _base_index(node, idx), max_elements)
    if isinstance(node, Vector):
        return _element(node.items[idx[0]], idx[1:], max_elements)
    if isinstance(node, Op):
        spec_shape = OPS[node.op].shape if node.op in OPS else FUNCTIONS[node.op].shape
        if spec_shape == "elementwise":
            return Op(node.op, *(_element(a, _broadcast_index(idx, a.shape, shape), max_elements)
                                 for a in node.args))
        if node.op in _STRUCTURAL:
            return _STRUCTURAL[node.op](node, idx, max_elements)
        if node.op in ("sum", "mean", "prod") and node.attrs.get("axis", -1) != -1 or node.op == "prod":
            axis = node.attrs.get("axis", -1)
            arg = node.args[0]
            at = len(arg.shape) + axis
            terms = [_element(arg, idx[:at] + (j,) + idx[at:], max_elements) for j in range(arg.shape[axis])]
            total = _chain("mul" if node.op == "prod" else "add", terms)
            return div(total, Const(len(terms))) if node.op == "mean" else total
        if spec_shape in ("reduce", "dot") and node.op not in ("sum", "mean", "dot"):
            # a reduction we only know by name (norm_l2): keep the call, its argument written out
            arg_shape = _broadcast(*(a.shape for a in node.args))
            return Op(node.op, *(Vector([_element(a, _broadcast_index(idx + (j,), a.shape, arg_shape),
                                                  max_elements) for j in range(arg_shape[-1])])
                                 for a in node.args))
        if spec_shape in ("reduce", "dot"):
            arg_shape = _broadcast(*(a.shape for a in node.args))
            n = arg_shape[-1]
            terms = []
            for j in range(n):
                full = idx + (j,)
                if node.op == "dot":
                    a, b = node.args
                    terms.append(mul(_element(a, _broadcast_index(full, a.shape, arg_shape), max_elements),
                                     _element(b, _broadcast_index(full, b.shape, arg_shape), max_elements)))
                else:
                    terms.append(_element(node.args[0], full, max_elements))
            total = _chain("add", terms)
            return div(total, Const(n)) if node.op == "mean" else total
        if spec_shape == "matmul":
            a, b = node.args
            i, rest = idx[0], idx[1:]
            terms = [mul(_element(a, (i, j), max_elements), _element(b, (j,) + rest, max_elements))
                     for j in range(a.shape[1])]
            return _chain("add", terms)
        raise ValueError(f"cannot unvectorize {node.op}() (shape rule {spec_shape!r})")
    raise TypeError(f"cannot unvectorize {type(node).__name__}")


def _broadcast_index(idx, arg_shape, out_shape):
    offset = len(out_shape) - len(arg_shape)
    return tuple(0 if arg_shape[k] == 1 else idx[offset + k] for k in range(len(arg_shape)))


def _chain(op: str, terms: list[Node]) -> Node:
    out = terms[0]
    for t in terms[1:]:
        out = Op(op, out, t)
    return out



def _base_index(node: Index, idx: tuple) -> tuple:
    """The base array's index of element ``idx`` of ``node``."""
    out, k = [], 0
    for e in node.index:
        if isinstance(e, int):
            out.append(e)
        elif isinstance(e, slice):
            start, _, step = e.indices(node.node.shape[len(out)])
            out.append(start + step * idx[k])
            k += 1
        else:
            out.append(e[idx[k]])
            k += 1
    return tuple(out) + tuple(idx[k:])


def _stack_element(node, idx, max_elements):
    at = len(node.shape) + node.attrs["axis"]
    return _element(node.args[idx[at]], idx[:at] + idx[at + 1:], max_elements)


def _concat_element(node, idx, max_elements):
    at = len(node.shape) + node.attrs["axis"]
    i = idx[at]
    for a in node.args:
        if i < a.shape[at]:
            return _element(a, idx[:at] + (i,) + idx[at + 1:], max_elements)
        i -= a.shape[at]
    raise IndexError(idx)


def _reshape_element(node, idx, max_elements):
    arg = node.args[0]
    flat = int(np.ravel_multi_index(idx, node.shape)) if idx else 0
    return _element(arg, tuple(int(i) for i in np.unravel_index(flat, arg.shape)) if arg.shape else (), max_elements)


def _broadcast_element(node, idx, max_elements):
    arg = node.args[0]
    return _element(arg, _broadcast_index(idx, arg.shape, node.shape), max_elements)


def _moveaxis_element(node, idx, max_elements):
    arg = node.args[0]
    n = len(arg.shape)
    order = list(range(n))  # order[position in the result] = the argument's axis
    order.insert(node.attrs["destination"] % n, order.pop(node.attrs["source"] % n))
    base = [0] * n
    for position, axis in enumerate(order):
        base[axis] = idx[position]
    return _element(arg, tuple(base), max_elements)


def _segment_element(node, idx, max_elements):
    arg = node.args[0]
    at = len(node.shape) + node.attrs["axis"]
    g = idx[at]
    start = sum(node.attrs["lengths"][:g])
    terms = [_element(arg, idx[:at] + (start + j,) + idx[at + 1:], max_elements)
             for j in range(node.attrs["lengths"][g])]
    return _chain("add" if node.op == "segment_sum" else "mul", terms)


def _no_elements(node, idx, max_elements):
    raise ValueError(f"{node.op}() has no element-by-element form; show it with a rewrite rule "
                     "(E.Rule, as the README's compare('feature') example)")


_STRUCTURAL = {
    "stack": _stack_element, "concat": _concat_element, "reshape": _reshape_element,
    "broadcast_to": _broadcast_element, "moveaxis": _moveaxis_element,
    "segment_sum": _segment_element, "segment_prod": _segment_element,
    "cdist": _no_elements, "cdist_multi": _no_elements,
}
