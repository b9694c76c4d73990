"""Programs: named definitions printed one per line (``r = ...`` then ``k = ... r ...``), with
comments, and :func:`let`, which names repeated sub-expressions of a tree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from sitegen.expr.nodes import SERVICES, Node, Ref, as_node
from sitegen.expr.rewrite import map_tree


@dataclass
class Assign:
    name: str
    expr: Node
    #: names of the elements of a vector definition once unvectorized (default name0, name1, ...)
    element_names: Sequence[str] | None = None


@dataclass
class Comment:
    text: str


class Program:
    """Named definitions in order, ``r = ...`` then ``k = ... r ...``; the last is the result
    unless ``outputs`` says otherwise. Comments are kept and printed as ``# ...`` lines."""

    def __init__(self, statements: Sequence[Assign | Comment | tuple], outputs: Sequence[str] | None = None):
        self.statements: list[Assign | Comment] = []
        for s in statements:
            if isinstance(s, tuple):
                s = Assign(s[0], as_node(s[1]))
            elif isinstance(s, str):
                s = Comment(s)
            self.statements.append(s)
        assigned = [s.name for s in self.statements if isinstance(s, Assign)]
        if not assigned:
            raise ValueError("a Program needs at least one assignment")
        self.outputs = list(outputs) if outputs else [assigned[-1]]

    @property
    def assignments(self) -> list[Assign]:
        return [s for s in self.statements if isinstance(s, Assign)]

    def map(self, fn: Callable[[Node], Node]) -> "Program":
        out = []
        for s in self.statements:
            out.append(Assign(s.name, fn(s.expr), s.element_names) if isinstance(s, Assign) else s)
        return Program(out, self.outputs)

    def template(self, **options) -> str:
        """Shorthand for :func:`sitegen.expr.to_template`."""
        return SERVICES["to_template"](self, **options)

    def evaluate(self, params=None, inputs=None, backend="numpy"):
        """Shorthand for :func:`sitegen.expr.evaluate`."""
        return SERVICES["evaluate"](self, params, inputs, backend)

    def __repr__(self):
        return "\n".join(f"{s.name} = {s.expr.sexpr()}" if isinstance(s, Assign) else f"; {s.text}"
                         for s in self.statements)


def let(tree: Node, names: Mapping[str, Node], result: str = "result",
        comments: Mapping[str, str] | None = None) -> Program:
    """Give sub-expressions short names: every occurrence of ``names[n]`` (equal structure) in the
    tree, and in later named sub-expressions, becomes a reference ``n``.

    ``let(k, {"r": sqrt(sum_(d**2))}, "k")`` prints ``r = sqrt(sum(d**2))`` then ``k = ... r ...``.
    """
    comments = dict(comments or {})
    done: list[tuple[str, Node]] = []
    for name, sub_tree in names.items():
        for prev_name, prev in done:
            sub_tree = _replace(sub_tree, prev, Ref(prev_name, prev.shape))
        done.append((name, as_node(sub_tree)))
    for name, sub_tree in done:
        tree = _replace(tree, sub_tree, Ref(name, sub_tree.shape))
    statements: list[Assign | Comment] = []
    for name, sub_tree in done + [(result, tree)]:
        if name in comments:
            statements.append(Comment(comments[name]))
        statements.append(Assign(name, sub_tree))
    return Program(statements, [result])


def _replace(tree: Node, target: Node, replacement: Node) -> Node:
    key = target.key()
    return map_tree(tree, lambda n: replacement if n.key() == key else n)
