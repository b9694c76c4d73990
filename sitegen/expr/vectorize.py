"""Vectorize: the inverse of unvectorize. A tree written the readable way (a sum over features of
one distance each, in several branches) becomes a few batched array operations that compute the
same values: sibling sub-expressions of the same operation are stacked and computed once.

The rules, applied bottom-up:

* a chain ``a + b + c`` (or ``a * b * c``) of three or more terms is a sum (product) over a stack;
* a stack of items that share an elementwise operation is the operation of the stacked arguments
  (``[f(a), f(b)]`` -> ``f([a, b])``); items of different operations are grouped by operation
  (branch grouping) and the groups concatenated, put back in order by one index if they were mixed;
* a stack of sums over stacks is one segment sum over one stack (``segment_sum``), the same for
  products (``segment_prod``);
* a stack of distances (``cdist``) over column groups of the same inputs is one ``cdist_multi``
  over all the columns; a stack or concatenation of indexes of one array is one index with a list;
* a sum or product over a permuted axis drops the permutation.

:data:`STACK_RULES` maps an operation's name to a function that vectorizes a stack of that
operation; add an entry for a function of your own that has a batched form.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from sitegen.expr.nodes import (
    Const, Index, Node, Op, Param, Vector, as_node, broadcast_to, moveaxis, reshape,
)
from sitegen.expr.ops import FUNCTIONS, OPS
from sitegen.expr.program import Program
from sitegen.expr.rewrite import map_tree

#: op name -> ``rule(items, axis, vec)``: one node computing ``stack(items, axis)`` (items: Op
#: nodes of that operation and the same signature), or None to leave the stack as it is. ``vec``
#: vectorizes a sub-tree the rule builds (a stack of the items' arguments, for instance).
STACK_RULES: dict[str, Callable[[list, int, Callable[[Node], Node]], Node | None]] = {}


#: op name -> (argument position, value) of a neutral operand: ``x == 1 * x == x / 1 == x + 0``.
#: When parts joined on an axis are ``w * y1`` and ``y2``, ``y2`` joins as ``1 * y2`` so that the
#: parts become one ``[w, 1] * [y1, y2]`` -- if ``[y1, y2]`` then joins into one operation (two
#: distance calls into one ``cdist_multi``, for instance); otherwise nothing changes.
NEUTRAL_OPERANDS: dict[str, tuple[int, float]] = {
    "mul": (0, 1.0), "div": (1, 1.0), "add": (0, 0.0), "sub": (1, 0.0),
}


def stack_rule(op: str):
    """Register ``fn(items, axis, vec)`` as the batched form of a stack of ``op`` calls."""
    def register(fn):
        STACK_RULES[op] = fn
        return fn
    return register


def vectorize(tree: Node | Program) -> Node | Program:
    """An equivalent tree with sibling sub-expressions batched (see the module's docstring)."""
    if isinstance(tree, Program):
        return tree.map(vectorize)
    return _Vectorizer().run(as_node(tree))


# ---- helpers ---------------------------------------------------------------------------------

def _stack_parts(n: Node):
    """(items, axis) of a stack (a Vector is a stack on its first axis), else None."""
    if isinstance(n, Vector) and n.items:
        return list(n.items), -len(n.shape)
    if isinstance(n, Op) and n.op == "stack":
        return list(n.args), n.attrs["axis"]
    return None


def _make_stack(items: list[Node], axis: int) -> Node:
    if axis == -len(items[0].shape) - 1:
        return Vector(items)
    return Op("stack", *items, axis=axis)


def _make_concat(items: list[Node], axis: int) -> Node:
    return items[0] if len(items) == 1 else Op("concat", *items, axis=axis)


def _elementwise(n: Node) -> bool:
    if not isinstance(n, Op) or n.attrs:
        return False
    rule = OPS[n.op].shape if n.op in OPS else FUNCTIONS[n.op].shape
    return rule == "elementwise"


def _signature(n: Node):
    if isinstance(n, Op):
        if n.op in ("cdist",):  # distances over any number of columns batch together
            return ("op", n.op, tuple(sorted(n.attrs.items())), tuple(a.shape[:-1] for a in n.args))
        return ("op", n.op, tuple(sorted(n.attrs.items())), tuple(a.shape for a in n.args))
    if isinstance(n, Index):
        kinds = tuple("int" if isinstance(e, int) else ":" if isinstance(e, slice) and e == slice(None)
                      else "list" if isinstance(e, tuple) else "other" for e in n.index)
        return ("index", n.node.key(), kinds)
    if isinstance(n, Const) and n.name is None:
        return ("const",)
    if isinstance(n, Param) and n.source is not None and len(n.source.shape) == 1:
        return ("element", n.source.key())
    return ("leaf", id(n))


def _reduced_operand(n: Node, how: str, axis: int):
    """What a ``how`` (sum/prod) reduces over ``axis`` of (counted in the result with that axis
    kept), or None."""
    if isinstance(n, Op) and n.op == how and n.attrs.get("axis", -1) == axis:
        return n.args[0]
    return None


def _list_position(index: tuple) -> int | None:
    lists = [i for i, e in enumerate(index) if isinstance(e, tuple)]
    return lists[0] if len(lists) == 1 else None


def _pad(arg: Node, rank: int) -> Node:
    """``arg`` with leading ones up to ``rank`` dimensions (so it stacks beside bigger arrays)."""
    r = len(arg.shape)
    return arg if r >= rank else reshape(arg, (1,) * (rank - r) + arg.shape)


# ---- the vectorizer ----------------------------------------------------------------------------

class _Vectorizer:
    def __init__(self):
        self.memo: dict[Any, Node] = {}

    def run(self, tree: Node) -> Node:
        return _intern(self.vec(_chains_to_reductions(tree, {})))

    def vec(self, n: Node) -> Node:
        key = n.key()
        got = self.memo.get(key)
        if got is not None:
            return got
        kids = n.children()
        if kids:
            new = [self.vec(k) for k in kids]
            if any(a is not b for a, b in zip(new, kids)):
                n = n.with_children(new)
        out = self.at(n)
        self.memo[key] = out
        return out

    def at(self, n: Node) -> Node:
        parts = _stack_parts(n)
        if parts is not None and len(parts[0]) > 1:
            out = self.stack(*parts)
            return n if out is None else out
        if isinstance(n, Op):
            if n.op == "concat":
                return self.concat(list(n.args), n.attrs["axis"])
            if n.op in ("sum", "prod", "mean"):
                return self.reduction(n)
            if n.op == "broadcast_to":
                return _broadcast_index(n)
            if n.op == "cdist_multi":
                return _factor_scales(n)
            if n.op in ("segment_sum", "segment_prod"):
                return self.segments_of_parts(n)
        if isinstance(n, Index):
            return _whole_index(n)
        return n

    # -- reductions -----------------------------------------------------------------------------
    def reduction(self, n: Op) -> Node:
        axis = n.attrs.get("axis", -1)
        arg = n.args[0]
        parts = _stack_parts(arg)
        if parts is not None and len(parts[0]) == 1 and parts[1] == axis:
            return parts[0][0]
        if n.op != "mean" and isinstance(arg, Op) and arg.op == "concat" and arg.attrs["axis"] == axis:
            # a reduction over joined parts is the parts' reductions combined: no copy to join them
            parts = [self.reduction(Op(n.op, part, **n.attrs)) for part in arg.args]
            out = parts[0]
            for part in parts[1:]:
                out = Op("add" if n.op == "sum" else "mul", out, part)
            return out
        if n.op != "mean" and isinstance(arg, Index):
            pos = _list_position(arg.index)
            rank = len(arg.shape)
            if pos is not None and pos - rank == axis and sorted(arg.index[pos]) == list(range(arg.node.shape[pos])) \
                    and all(isinstance(e, slice) and e == slice(None) for i, e in enumerate(arg.index) if i != pos):
                return self.reduction(Op(n.op, arg.node, **n.attrs))  # the order added up does not matter
        return n

    def segments_of_parts(self, n: Op) -> Node:
        """A segment reduction over joined parts whose edges are segment edges: each part reduced
        on its own, the (small) results joined."""
        arg, axis, lengths = n.args[0], n.attrs["axis"], n.attrs["lengths"]
        if not (isinstance(arg, Op) and arg.op == "concat" and arg.attrs["axis"] == axis):
            return n
        edges = set(np.cumsum(lengths).tolist())
        sizes = [p.shape[axis] for p in arg.args]
        if not set(np.cumsum(sizes).tolist()) <= edges:
            return n
        how = "sum" if n.op == "segment_sum" else "prod"
        out, g = [], 0
        for part, size in zip(arg.args, sizes):
            mine = []
            while sum(mine) < size:
                mine.append(lengths[g])
                g += 1
            if len(mine) == 1:
                reduced = self.reduction(Op(how, part, **({"axis": axis} if axis != -1 else {})))
                out.append(reshape(reduced, reduced.shape[:len(reduced.shape) + axis + 1] + (1,)
                                   + reduced.shape[len(reduced.shape) + axis + 1:]))
            else:
                out.append(Op(n.op, part, lengths=tuple(mine), axis=axis))
        return _make_concat(out, axis)

    # -- stacks -----------------------------------------------------------------------------------
    def stack(self, items: list[Node], axis: int) -> Node | None:
        shape = items[0].shape
        if any(i.shape != shape for i in items):
            return None
        for how, segment in (("sum", "segment_sum"), ("prod", "segment_prod")):
            operands = [_reduced_operand(i, how, axis) for i in items]
            if any(o is not None and o.shape[axis] > 1 for o in operands) and \
                    all(o is not None or not _is_reduction(x) for o, x in zip(operands, items)):
                operands = [o if o is not None else _make_stack([x], axis) for o, x in zip(operands, items)]
                joined = self.vec(_make_concat(operands, axis))
                return Op(segment, joined, lengths=tuple(o.shape[axis] for o in operands), axis=axis)
        groups: dict[Any, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(_signature(item), []).append(i)
        if len(groups) == 1:
            return self.group(items, axis)
        if all(len(g) == 1 for g in groups.values()):
            return None
        parts, order, gained = [], [], False
        for positions in groups.values():
            members = [items[i] for i in positions]
            part = self.group(members, axis) if len(members) > 1 else None
            gained = gained or part is not None
            parts.append(part if part is not None else _make_stack(members, axis))
            order.extend(positions)
        if not gained:
            return None
        out = _make_concat(parts, axis)  # the parts are done: joining them again would undo the grouping
        if order != sorted(order):
            where = [0] * len(order)
            for at, original in enumerate(order):
                where[original] = at
            rank = len(out.shape)
            out = Index(out, (slice(None),) * (rank + axis) + (tuple(where),))
        return out

    def group(self, items: list[Node], axis: int) -> Node | None:
        """One node for a stack of items of one signature, or None."""
        first = items[0]
        if isinstance(first, Const):
            return Const(np.stack([np.broadcast_to(np.asarray(i.value, dtype=np.float64), first.shape)
                                   for i in items], axis))
        if isinstance(first, Index):
            return self.stack_indexes(items, axis)
        if isinstance(first, Param) and first.source is not None:  # elements of one vector parameter
            return Index(first.source, (tuple(i.parent[2] for i in items),))
        if not isinstance(first, Op):
            return None
        rule = STACK_RULES.get(first.op)
        if rule is not None:
            return rule(items, axis, self.vec)
        if _elementwise(first):
            return Op(first.op, *(self.stacked_argument([i.args[j] for i in items], axis, len(first.shape))
                                  for j in range(len(first.args))))
        return None

    def stacked_argument(self, args: list[Node], axis: int, rank: int) -> Node:
        """The items' j-th arguments, stacked so they line up with the stacked results."""
        r = len(args[0].shape)
        need = -axis - 1  # dimensions after the stacked axis
        if r <= need and all(a.key() == args[0].key() for a in args[1:]):
            return args[0]  # shared, and it broadcasts past the stacked axis
        if r >= need:
            return self.vec(_make_stack(args, axis))
        stacked = self.vec(Vector(args))
        return self.vec(reshape(stacked, (len(args),) + (1,) * (need - r) + args[0].shape))

    def stack_indexes(self, items: list[Index], axis: int) -> Node | None:
        base = items[0].node
        ints = [k for k, e in enumerate(items[0].index) if isinstance(e, int)]
        if len(ints) != 1:
            return _stack_list_indexes(items, axis)
        k = ints[0]
        if any(i.index[:k] != items[0].index[:k] or i.index[k + 1:] != items[0].index[k + 1:] for i in items):
            return None
        out = Index(base, items[0].index[:k] + (tuple(i.index[k] for i in items),) + items[0].index[k + 1:])
        rank = len(out.shape)
        return moveaxis(out, k - rank, axis)

    # -- concatenations -------------------------------------------------------------------------
    def concat(self, items: list[Node], axis: int) -> Node:
        flat: list[Node] = []
        for i in items:
            if isinstance(i, Op) and i.op == "concat" and i.attrs["axis"] == axis:
                flat.extend(i.args)
            else:
                flat.append(i)
        lifted: dict[int, Node] = {}  # a stack of one distance as a cdist_multi, to join others
        for k, i in enumerate(flat):
            batched = _single_stack_with_rule(i)
            if batched is not None:
                flat[k] = self.vec(batched)
                lifted[id(flat[k])] = i
        runs: list[list[Node]] = []
        for i in flat:
            if runs and self.mergeable(runs[-1][-1], i, axis):
                runs[-1].append(i)
            else:
                runs.append([i])
        merged = [self.merge(run, axis) if len(run) > 1 else run[0] for run in runs]
        return self.regroup(merged, axis, lifted)

    def regroup(self, parts: list[Node], axis: int, lifted: dict) -> Node:
        """Parts that join, neighbours or not (``[f(a), g(b), f(c)]``), directly or through a neutral
        operand, joined; then put back in order by one index on the joined axis if they were not
        neighbours (a sum over that axis drops it again)."""
        groups: list[tuple[Node, list[int]]] = []  # (the members joined so far, their positions)
        for i, part in enumerate(parts):
            for g, (acc, members) in enumerate(groups):
                both = self.merge([acc, part], axis) if self.mergeable(acc, part, axis) \
                    else self.join_through_neutral(acc, part, axis)
                if both is not None:
                    groups[g] = (both, members + [i])
                    break
            else:
                groups.append((part, [i]))
        if len(groups) == len(parts):  # nothing joins: a part lifted to join others is itself again
            return _make_concat([lifted.get(id(p), p) for p in parts], axis)
        joined = [acc if len(members) > 1 else lifted.get(id(acc), acc) for acc, members in groups]
        out = _make_concat(joined, axis)
        starts = np.cumsum([0] + [p.shape[axis] for p in parts]).tolist()
        order = [e for _, g in groups for i in g for e in range(starts[i], starts[i + 1])]
        if order == sorted(order):
            return out
        where = [0] * len(order)
        for at, original in enumerate(order):
            where[original] = at
        rank = len(out.shape)
        return Index(out, (slice(None),) * (rank + axis) + (tuple(where),))

    def join_through_neutral(self, a: Node, b: Node, axis: int) -> Node | None:
        """``a`` and ``b`` as one node, when one is an operation with a neutral operand (see
        :data:`NEUTRAL_OPERANDS`) and the other, given that operand, joins it into fewer
        operations; else None."""
        for x, y, x_first in ((a, b, True), (b, a, False)):
            if not (isinstance(x, Op) and x.op in NEUTRAL_OPERANDS and len(x.args) == 2):
                continue
            if isinstance(y, Op) and y.op == x.op:
                continue
            pos, value = NEUTRAL_OPERANDS[x.op]
            args = [y, y]
            args[pos] = Const(np.full((1,) * len(x.args[pos].shape), float(value)))  # same rank: joins
            wrapped = Op(x.op, *args)
            if wrapped.shape != y.shape:
                continue
            pair = [x, wrapped] if x_first else [wrapped, x]
            if not self.mergeable(pair[0], pair[1], axis):
                continue
            joined = self.merge(pair, axis)
            under = joined.args[1 - pos]
            if isinstance(under, Op) and under.op == "concat":
                continue  # what is under the operation did not join: no gain
            return joined
        return None

    def mergeable(self, a: Node, b: Node, axis: int) -> bool:
        pa, pb = _stack_parts(a), _stack_parts(b)
        if pa is not None and pb is not None:
            return pa[1] == pb[1] == axis
        if isinstance(a, Index) and isinstance(b, Index) and a.node.key() == b.node.key():
            pos = _list_position(a.index)
            return (pos is not None and pos == _list_position(b.index) and pos - len(a.shape) == axis
                    and a.index[:pos] == b.index[:pos] and a.index[pos + 1:] == b.index[pos + 1:])
        if isinstance(a, Op) and isinstance(b, Op) and a.op == b.op == "cdist_multi":
            return a.attrs["p"] == b.attrs["p"] and a.attrs["axis"] == b.attrs["axis"] == axis
        if _elementwise(a) and _elementwise(b) and a.op == b.op and len(a.args) == len(b.args):
            return all(len(x.shape) == len(y.shape) for x, y in zip(a.args, b.args))
        return False

    def merge(self, run: list[Node], axis: int) -> Node:
        first = run[0]
        if _stack_parts(first) is not None:
            return self.vec(_make_stack([x for r in run for x in _stack_parts(r)[0]], axis))
        if isinstance(first, Index):
            pos = _list_position(first.index)
            positions = tuple(p for r in run for p in r.index[pos])
            return Index(first.node, first.index[:pos] + (positions,) + first.index[pos + 1:])
        if first.op == "cdist_multi":
            x1 = self.vec(_make_concat([r.args[0] for r in run], -1))
            x2 = self.vec(_make_concat([r.args[1] for r in run], -1))
            return Op("cdist_multi", x1, x2, lengths=tuple(n for r in run for n in r.attrs["lengths"]),
                      p=first.attrs["p"], axis=axis)
        args = []
        for j in range(len(first.args)):
            column = [r.args[j] for r in run]
            if all(c.key() == column[0].key() for c in column) and len(column[0].shape) < -axis:
                args.append(column[0])  # shared, and it does not reach the joined axis
                continue
            rank = max(max(len(c.shape) for c in column), -axis)
            padded = [(1,) * (rank - len(c.shape)) + c.shape for c in column]
            common = [max(p[d] for p in padded) for d in range(rank)]
            lined_up = []
            for c, r in zip(column, run):
                target = list(common)
                target[axis] = r.shape[axis]
                lined_up.append(_broadcast_as_index(c, tuple(target)))
            args.append(self.vec(_make_concat(lined_up, axis)))
        return Op(first.op, *args)


def _stack_list_indexes(items: list[Index], axis: int) -> Node | None:
    """``stack([x[..., [0, 1]], x[..., [2, 3]]])`` is ``x[..., [[0, 1], [2, 3]]]``: one index with
    all the lists (item after item), its list axis split in two and the items' axis put where the
    stack has it."""
    first = items[0]
    pos = _list_position(first.index)
    if pos is None or any(_list_position(i.index) != pos or len(i.index[pos]) != len(first.index[pos])
                          or i.index[:pos] != first.index[:pos] or i.index[pos + 1:] != first.index[pos + 1:]
                          for i in items):
        return None
    flat = Index(first.node, first.index[:pos] + (tuple(e for i in items for e in i.index[pos]),)
                 + first.index[pos + 1:])
    shape = first.shape
    split = reshape(flat, shape[:pos] + (len(items), len(first.index[pos])) + shape[pos + 1:])
    return moveaxis(split, pos - len(split.shape), axis) if pos - len(split.shape) != axis else split


def _single_stack_with_rule(n: Node) -> Node | None:
    """A stack of one call of an operation with a stack rule, as that rule's batched form (a
    stack of one distance as a ``cdist_multi`` of one group), so it can join its neighbours."""
    parts = _stack_parts(n)
    if parts is None or len(parts[0]) != 1:
        return None
    item = parts[0][0]
    if not isinstance(item, Op) or item.op not in STACK_RULES:
        return None
    return STACK_RULES[item.op]([item], parts[1], lambda t: t)


def _is_reduction(n: Node) -> bool:
    return isinstance(n, Op) and n.op in ("sum", "prod")


def _broadcast_index(n: Op) -> Node:
    return _broadcast_as_index(n.args[0], n.attrs["shape"])


def _broadcast_as_index(arg: Node, shape: tuple) -> Node:
    """``arg`` broadcast to ``shape``; ``v[j]`` of a vector ``v`` broadcast to (k,) is ``v[[j, ..., j]]``,
    one index, so neighbouring groups join into one."""
    inner = arg.args[0] if isinstance(arg, Op) and arg.op == "reshape" else arg
    if isinstance(inner, Index) and inner.simple and len(inner.index) == len(inner.node.shape) == 1 \
            and len(shape) == 1:
        return Index(inner.node, ((inner.index[0],) * shape[0],))
    if isinstance(arg, Const) and arg.name is None:
        return Const(np.broadcast_to(np.asarray(arg.value, dtype=np.float64), shape).copy())
    if tuple(arg.shape) == tuple(shape):
        return arg
    if len(arg.shape) < len(shape):
        arg = reshape(arg, (1,) * (len(shape) - len(arg.shape)) + arg.shape)
    return broadcast_to(arg, shape)


def _intern(tree: Node) -> Node:
    """Equal sub-trees become one object, so evaluation computes each once (the distances two
    branches share, for instance)."""
    seen: dict = {}
    return map_tree(tree, lambda n: seen.setdefault(n.key(), n))


def _whole_index(n: Index) -> Node:
    """``x[..., [0, 1, ..., n-1]]`` is ``x``."""
    pos = _list_position(n.index)
    if pos is None or n.index[pos] != tuple(range(n.node.shape[pos])):
        return n
    if any(not (isinstance(e, slice) and e == slice(None)) for i, e in enumerate(n.index) if i != pos):
        return n
    return n.node


def _factor_scales(n: Op) -> Node:
    """A scale shared by a group's columns comes out of its distance:
    ``cdist(x1 / s, x2 / s) == cdist(x1, x2) / |s|``. The distances of the same columns under
    different scales (a kernel's branches, each with its own lengthscales) are then one node,
    computed once."""
    a, b = n.args
    if not (isinstance(a, Op) and isinstance(b, Op) and a.op == b.op == "div"
            and a.args[1].key() == b.args[1].key() and len(a.args[1].shape) == 1):
        return n
    scale = a.args[1]
    lengths = n.attrs["lengths"]
    starts = [sum(lengths[:g]) for g in range(len(lengths))]
    if isinstance(scale, Index) and len(scale.node.shape) == 1 and isinstance(scale.index[0], tuple):
        ids = scale.index[0]
        if any(len(set(ids[s:s + k])) != 1 for s, k in zip(starts, lengths)):
            return n
        per_group = Index(scale.node, (tuple(ids[s] for s in starts),))
    elif isinstance(scale, Const) and scale.name is None:
        v = np.asarray(scale.value)
        if any(len(set(v[s:s + k].tolist())) != 1 for s, k in zip(starts, lengths)):
            return n
        per_group = Const(v[starts])
    else:
        return n
    distances = Op("cdist_multi", a.args[0], b.args[0], **n.attrs)
    after = -n.attrs["axis"] - 1
    divisor = Op("abs", per_group)
    if after:
        divisor = reshape(divisor, (len(lengths),) + (1,) * after)
    return Op("div", distances, divisor)


def _chains_to_reductions(n: Node, memo: dict) -> Node:
    """``a + b + c`` (three or more terms of one shape) -> ``sum([a, b, c], axis=0)``; products alike."""
    got = memo.get(id(n))
    if got is not None:
        return got
    out = None
    if isinstance(n, Op) and n.op in ("add", "sub", "mul"):
        ops = ("add", "sub") if n.op in ("add", "sub") else ("mul",)
        terms: list[Node] = []
        _flatten_chain(n, ops, terms, negate=False)
        if len(terms) >= 3:
            terms = [_chains_to_reductions(t, memo) for t in terms]
            terms = [t if t.shape == n.shape else broadcast_to(t, n.shape) for t in terms]
            out = Op("sum" if ops[0] == "add" else "prod", Vector(terms), **({"axis": -len(n.shape) - 1}
                                                                              if n.shape else {}))
    if out is None:
        kids = n.children()
        if kids:
            new = [_chains_to_reductions(k, memo) for k in kids]
            out = n.with_children(new) if any(a is not b for a, b in zip(new, kids)) else n
        else:
            out = n
    memo[id(n)] = out
    return out


def _flatten_chain(n: Node, ops, terms: list, negate: bool):
    if isinstance(n, Op) and n.op in ops:
        a, b = n.args
        _flatten_chain(a, ops, terms, negate)
        _flatten_chain(b, ops, terms, negate ^ (n.op == "sub"))
    else:
        terms.append(Op("neg", n) if negate else n)


# ---- distances -----------------------------------------------------------------------------------

@stack_rule("cdist")
def _stack_cdist(items: list[Op], axis: int, vec) -> Node | None:
    """Distances over column groups of the same points: one distance call over all the columns."""
    x1 = vec(_make_concat([i.args[0] for i in items], -1))
    x2 = vec(_make_concat([i.args[1] for i in items], -1))
    return Op("cdist_multi", x1, x2, lengths=tuple(i.args[0].shape[-1] for i in items),
              p=items[0].attrs["p"], axis=axis)
