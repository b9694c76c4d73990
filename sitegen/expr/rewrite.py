"""Rewriting trees: :func:`map_tree` rebuilds a tree bottom-up through a function; a :class:`Rule`
matches a sub-tree against a pattern with wildcards (:class:`Wild`) and returns a replacement;
:func:`rewrite` applies rules everywhere. This is how a tree becomes a different presentation of
the same model ("macros"): the distance a kernel computes shown as ``compare('log_lr')``
pseudocode, a vectorized tree written out for display.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping, Sequence

from sitegen.expr.functions import register_function
from sitegen.expr.nodes import Const, Index, Node, Op, Vector
from sitegen.expr.ops import FUNCTIONS


def map_tree(node: Node, fn: Callable[[Node], Node]) -> Node:
    """Rebuild ``node`` bottom-up, replacing every node by ``fn(node)`` (children first).

    ``fn`` returns the node unchanged, or another node; a sub-tree shared by several parents is
    visited once."""
    memo: dict[int, Node] = {}

    def walk(n: Node) -> Node:
        got = memo.get(id(n))
        if got is not None:
            return got
        kids = n.children()
        if kids:
            new_kids = [walk(k) for k in kids]
            if any(a is not b for a, b in zip(new_kids, kids)):
                n2 = n.with_children(new_kids)
            else:
                n2 = n
        else:
            n2 = n
        out = fn(n2)
        memo[id(n)] = out
        return out

    return walk(node)


def iter_nodes(node: Node) -> Iterable[Node]:
    """Every node of a tree, parents before children, left to right."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children()))


# ---- patterns ------------------------------------------------------------------------------------

class Wild(Node):
    """A pattern variable: matches any sub-tree (or, with ``test``, those it accepts) and binds it
    to ``name``. Used twice in one pattern, both places must hold equal sub-trees. In an index
    (``x[..., Wild("cols")]``) it binds the index entry: a tuple of positions, an int or a slice."""

    __slots__ = ("name", "test", "shape")

    def __init__(self, name: str, test: Callable[[Any], bool] | None = None):
        self.name = name
        self.test = test
        self.shape = None  # anything

    def key(self):
        return ("wild", self.name)

    def sexpr(self):
        return "?" + self.name


def match(pattern: Node, node: Node) -> dict[str, Any] | None:
    """The bindings that make ``pattern`` equal to ``node``, or None when it does not match."""
    bindings: dict[str, Any] = {}
    return bindings if _match(pattern, node, bindings) else None


def _bind(w: Wild, value, bindings: dict) -> bool:
    if w.test is not None and not w.test(value):
        return False
    if w.name in bindings:
        old = bindings[w.name]
        same = old.key() == value.key() if isinstance(old, Node) and isinstance(value, Node) else old == value
        return same
    bindings[w.name] = value
    return True


def _match(p: Node, n: Node, bindings: dict) -> bool:
    if isinstance(p, Wild):
        return _bind(p, n, bindings)
    if type(p) is not type(n):
        return False
    if isinstance(p, Op):
        return (p.op == n.op and len(p.args) == len(n.args) and _match_attrs(p.attrs, n.attrs, bindings)
                and all(_match(a, b, bindings) for a, b in zip(p.args, n.args)))
    if isinstance(p, Index):
        return _match(p.node, n.node, bindings) and _match_index(p.index, n.index, bindings)
    if isinstance(p, Vector):
        return len(p.items) == len(n.items) and all(_match(a, b, bindings) for a, b in zip(p.items, n.items))
    if isinstance(p, Const) and p.name is None and n.name is None:
        return _same_value(p.value, n.value)
    return p.key() == n.key()


def _match_attrs(p: dict, n: dict, bindings: dict) -> bool:
    for key in set(p) | set(n):
        want, got = p.get(key), n.get(key)
        if isinstance(want, Wild):
            if not _bind(want, got, bindings):
                return False
        elif want != got:
            return False
    return True


def _same_value(a, b) -> bool:
    import numpy as np

    return np.shape(a) == np.shape(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def _match_index(p: tuple, n: tuple, bindings: dict) -> bool:
    p = list(p)
    n = list(n)
    if Ellipsis in p:  # a pattern's '...' stands for whole leading axes of the node's index
        at = p.index(Ellipsis)
        tail = p[at + 1:]
        while len(n) < at + len(tail):
            n.append(slice(None))
        lead, rest = n[:len(n) - len(tail)], n[len(n) - len(tail):]
        if any(not (isinstance(e, slice) and e == slice(None)) for e in lead[at:]):
            return False
        return _match_entries(p[:at], lead[:at], bindings) and _match_entries(tail, rest, bindings)
    while len(n) < len(p):
        n.append(slice(None))
    return len(p) == len(n) and _match_entries(p, n, bindings)


def _match_entries(p: list, n: list, bindings: dict) -> bool:
    for a, b in zip(p, n):
        if isinstance(a, Wild):
            if not _bind(a, b, bindings):
                return False
        elif a != b:
            return False
    return True


def _substitute(template: Node, bindings: Mapping[str, Any]) -> Node:
    def fill(n: Node) -> Node:
        if isinstance(n, Wild):
            return bindings[n.name]
        if isinstance(n, Index) and any(isinstance(e, Wild) for e in n.index):
            return Index(n.node, tuple(bindings[e.name] if isinstance(e, Wild) else e for e in n.index))
        if isinstance(n, Op) and any(isinstance(v, Wild) for v in n.attrs.values()):
            return Op(n.op, *n.args, **{k: bindings[v.name] if isinstance(v, Wild) else v
                                        for k, v in n.attrs.items()})
        return n

    return map_tree(template, fill)


class Rule:
    """``pattern`` -> ``replacement``, where the replacement is a tree over the pattern's wildcards,
    or a function called with the bindings as keyword arguments, and ``node=`` the matched sub-tree
    if it takes that argument (returning None leaves the node as it is). The replacement has the
    matched sub-tree's shape. ``rule(node)`` rewrites one node; :func:`rewrite` applies rules to a whole tree.

    >>> X, L = Wild("X"), Wild("L")
    >>> halve = Rule(X / 2, lambda X: X * 0.5)
    """

    def __init__(self, pattern: Node, replacement: Node | Callable[..., Node | None], name: str = ""):
        self.pattern = pattern
        self.replacement = replacement
        self.name = name
        self._wants_node = False
        if callable(replacement) and not isinstance(replacement, Node):
            try:
                self._wants_node = "node" in inspect.signature(replacement).parameters
            except (TypeError, ValueError):
                pass

    def __call__(self, node: Node) -> Node:
        bindings = match(self.pattern, node)
        if bindings is None:
            return node
        if callable(self.replacement) and not isinstance(self.replacement, Node):
            if self._wants_node:
                bindings["node"] = node
            out = self.replacement(**bindings)
            if out is None:
                return node
        else:
            out = _substitute(self.replacement, bindings)
        if out.shape is not None and node.shape is not None and tuple(out.shape) != tuple(node.shape):
            raise ValueError(f"rule {self!r} turned a sub-tree of shape {node.shape} into one of shape "
                             f"{out.shape}; a replacement keeps the shape (pseudocode(..., shape=node.shape))")
        return out

    def __repr__(self):
        return f"Rule({self.name or self.pattern.sexpr()})"


def rewrite(tree, *rules: Rule | Callable[[Node], Node]):
    """Apply ``rules`` to every node of ``tree`` (a Node or a Program), children first; at each
    node the first rule that changes it wins, and the rules are tried again on the result."""
    def at(n: Node) -> Node:
        for _ in range(100):
            for rule in rules:
                out = rule(n)
                if out is not n:
                    n = out
                    break
            else:
                return n
        raise RuntimeError("rewrite rules keep changing a node (a rule that undoes another?)")

    if hasattr(tree, "statements"):  # a Program
        return tree.map(lambda t: map_tree(t, at))
    return map_tree(tree, at)


def pseudocode(name: str, *args, shape: Sequence[int] = ()) -> Op:
    """A call that is printed, never computed: ``pseudocode("compare", "log_lr")`` prints
    ``compare('log_lr')``. Strings print quoted; nodes print as themselves."""
    key = f"{name}/{len(args)}/{tuple(shape)}"
    if name not in FUNCTIONS or getattr(FUNCTIONS[name], "pseudo_key", None) != key:
        fn = register_function(name, [f"arg{i}" for i in range(len(args))],
                               shape=lambda *shapes, _s=tuple(shape): _s,
                               doc="pseudocode: printed, not computed")
        fn.pseudo_key = key
    return Op(name, *(Const(0.0, name=repr(a)) if isinstance(a, str) else a for a in args))
