"""Walking and rebuilding trees: :func:`map_tree` rebuilds a tree bottom-up through a function,
:func:`iter_nodes` lists its nodes.
"""
from __future__ import annotations

from typing import Callable, Iterable

from sitegen.expr.nodes import Node


def map_tree(node: Node, fn: Callable[[Node], Node]) -> Node:
    """Rebuild ``node`` bottom-up, replacing every node by ``fn(node)`` (children first)."""
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
