"""The printer: a tree or Program as an expression template, python-like or math-like pseudocode
with the fewest parentheses precedence allows, long lines broken with indentation, a placeholder
wherever a traced scalar parameter goes, and a ``def`` for each defined function used.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sitegen.expr.functions import Function
from sitegen.expr.nodes import SERVICES, index_entry_text, Const, Index, Node, Op, Param, Ref, Var, Vector
from sitegen.expr.ops import FUNCTIONS, OPS, P_ADD, P_ATOM, P_MUL, P_NEG, P_POW
from sitegen.expr.placeholder import PLACEHOLDER, format_number, placeholder
from sitegen.expr.placeholder import template_placeholders
from sitegen.expr.program import Comment, Program
from sitegen.expr.rewrite import iter_nodes

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def index_text(index: tuple) -> str:
    """``..., [0, 2]`` for (:, [0, 2]): leading whole axes shown as numpy's ``...``."""
    lead = 0
    while lead < len(index) and isinstance(index[lead], slice) and index[lead] == slice(None):
        lead += 1
    entries = (["..."] if lead else []) + [index_entry_text(e) for e in index[lead:]]
    return ", ".join(entries)


def attribute_texts(n: Op) -> list[str]:
    """An operation's settings as keyword arguments, axes counted from the start as people write them."""
    out = []
    for key, value in n.attrs.items():
        if key == "p" and value == 2 and n.op in ("cdist", "cdist_multi"):
            continue
        if key in ("axis", "source", "destination") and isinstance(value, int) and value < 0:
            rank = len(n.args[0].shape) if n.op in ("sum", "mean", "prod", "moveaxis") else len(n.shape)
            value = value + rank
        out.append(f"{key}={value!r}" if not isinstance(value, tuple) else f"{key}={list(value)!r}")
    return out


def placeholders(tree: Node | Program, **options) -> list[str]:
    """The distinct placeholder names the printed template of ``tree`` has, in order."""
    return list(dict.fromkeys(template_placeholders(to_template(tree, **options))))


class _Printer:
    def __init__(self, style: str = "python", width: int = 88, placeholder_width: int = 5,
                 options: Mapping[str, Mapping[str, Any]] | None = None):
        if style not in ("python", "math"):
            raise ValueError("style is 'python' or 'math'")
        self.style = style
        self.width = width
        self.placeholder_width = placeholder_width
        self.options = options or {}

    # -- measuring: a placeholder shows as a small plot, about placeholder_width characters wide
    def visual_len(self, text: str) -> int:
        length = len(text)
        for m in PLACEHOLDER.finditer(text):
            length += self.placeholder_width - len(m.group(0))
        return length

    def sym(self, op: str) -> str:
        spec = OPS[op]
        return spec.math if self.style == "math" else spec.symbol

    # -- flat printing -------------------------------------------------------------------------
    def prec(self, n: Node) -> int:
        if isinstance(n, Op) and n.op in OPS and OPS[n.op].kind in ("infix", "prefix"):
            if self.style == "math" and n.op == "pow" and self._superscript(n) is not None:
                return P_POW
            return OPS[n.op].prec
        if isinstance(n, Const) and n.name is None and not isinstance(n.value, np.ndarray) and n.value < 0:
            return P_NEG
        if isinstance(n, Const) and n.name and not re.fullmatch(r"[\w.′']+", n.name):
            return P_MUL if "/" in n.name or "*" in n.name else P_ATOM
        if isinstance(n, Param) and n.transform and not n.shape:
            return P_ATOM
        return P_ATOM

    def _superscript(self, n: Op):
        e = n.args[1]
        if isinstance(e, Const) and e.name is None and isinstance(e.value, (int, float)) \
                and float(e.value).is_integer() and 2 <= e.value <= 9:
            return str(int(e.value)).translate(_SUPERSCRIPT)
        return None

    def wrap(self, n: Node, need: int, strict: bool = False) -> str:
        text = self.flat(n)
        p = self.prec(n)
        if p < need or (strict and p == need):
            return "(" + text + ")"
        return text

    def flat(self, n: Node) -> str:
        if isinstance(n, Const):
            if n.name:
                return n.math_name if self.style == "math" and n.math_name else n.name
            return format_number(n.value).replace("-", "\u2212") if self.style == "math" \
                else format_number(n.value)
        if isinstance(n, Param):
            if n.shape:
                items = [self.flat(n.element(i)) for i in range(n.size)]
                return self._vector_text(items, n.shape)
            ph = placeholder(n.name if not n.transform else n.name, self._options(n))
            if n.transform:
                return f"{self._call_name(n.transform)}({ph})"
            return ph
        if isinstance(n, Var):
            return n.display
        if isinstance(n, Ref):
            return n.name
        if isinstance(n, Index):
            if isinstance(n.node, Var) and n.simple and len(n.index) == len(n.node.shape):
                return n.node.element_label(n.index)
            if isinstance(n.node, Param) and len(n.node.shape) == 1 and len(n.index) == 1 \
                    and isinstance(n.index[0], tuple):  # chosen elements of a vector parameter
                return "[" + ", ".join(self.flat(n.node.element(i)) for i in n.index[0]) + "]"
            if isinstance(n.node, Param) and all(isinstance(i, int) for i in n.index):
                # one element (or a row) of a vector parameter: the elements' own placeholders
                p, rest = n.node, n.node.shape[len(n.index):]
                first = int(np.ravel_multi_index(n.index + (0,) * len(rest), p.shape))
                items = [self.flat(p.element(first + i)) for i in range(math.prod(rest))]
                return self._vector_text(items, rest) if rest else items[0]
            return self.wrap(n.node, P_ATOM) + "[" + index_text(n.index) + "]"
        if isinstance(n, Vector):
            return "[" + ", ".join(self.flat(i) for i in n.items) + "]"
        if isinstance(n, Op):
            return self.flat_op(n)
        raise TypeError(f"cannot print {type(n).__name__}")

    def _options(self, p: Param):
        options = dict(p.options)
        options.update(self.options.get(p.name, {}))
        if p.parent:
            options.update({k: v for k, v in self.options.get(p.parent[0], {}).items()
                            if not isinstance(v, (list, tuple))})
        return options

    def _vector_text(self, items: list[str], shape) -> str:
        if len(shape) == 1:
            return "[" + ", ".join(items) + "]"
        step = math.prod(shape[1:])
        return "[" + ", ".join(self._vector_text(items[i * step:(i + 1) * step], shape[1:])
                               for i in range(shape[0])) + "]"

    def _call_name(self, op: str) -> str:
        if op in OPS:
            return self.sym(op) if self.style == "math" and op != "sqrt" else OPS[op].symbol
        return op

    def flat_op(self, n: Op) -> str:
        spec = OPS.get(n.op)
        if spec is None or spec.kind == "call":
            if self.style == "math" and n.op == "sqrt":
                inner = self.flat(n.args[0])
                return "\u221a" + (inner if self.prec(n.args[0]) >= P_ATOM and not inner.startswith("(")
                                   else "(" + inner + ")")
            args = [self.flat(a) for a in n.args]
            if n.op in ("stack", "concat"):
                args = ["[" + ", ".join(args) + "]"]
            return f"{self._call_name(n.op)}({', '.join(args + attribute_texts(n))})"
        if spec.kind == "prefix":
            arg = n.args[0]
            # -(a*b) prints as -a*b (the same value); -(a + b) keeps its parentheses
            need = P_MUL if isinstance(arg, Op) and arg.op in ("mul", "div") else P_NEG + 1
            return self.sym(n.op) + self.wrap(arg, need)
        a, b = n.args
        if n.op == "pow":
            if self.style == "math":
                sup = self._superscript(n)
                if sup is not None:
                    return self.wrap(a, P_POW, strict=True) + sup
            return self.wrap(a, P_POW, strict=True) + self.sym("pow") + self.wrap(b, P_POW)
        left = self.wrap(a, spec.prec)
        # Right operand of the same precedence: a + (b - c) == a + b - c and a * (b / c) == a*b/c,
        # but a - (b - c), a / (b * c) and a @ (b * c) need their parentheses.
        same_ok = (n.op == "add" and isinstance(b, Op) and b.op in ("add", "sub")) or \
                  (n.op == "mul" and isinstance(b, Op) and b.op in ("mul", "div"))
        right = self.wrap(b, spec.prec, strict=not same_ok)
        return f"{left} {self.sym(n.op)} {right}"

    # -- layout with line breaks ---------------------------------------------------------------
    def layout(self, n: Node, indent: int, used: int) -> list[str]:
        """Lines for ``n``: the first continues a line of ``used`` characters, the others carry
        their own indentation."""
        text = self.flat(n)
        if used + self.visual_len(text) <= self.width:
            return [text]
        pad = " " * (indent + 4)
        if isinstance(n, Op) and n.op in ("add", "sub"):
            terms = self._chain_terms(n)
            lines = ["("]
            for i, (op, term) in enumerate(terms):
                prefix = "" if i == 0 else self.sym(op) + " "
                need = P_ADD + (1 if op == "sub" and i > 0 else 0)
                sub_lines = self._layout_wrapped(term, need, indent + 4, len(pad) + len(prefix))
                lines.append(pad + prefix + sub_lines[0])
                lines.extend(sub_lines[1:])
            lines.append(" " * indent + ")")
            return lines
        if isinstance(n, Op) and n.op in ("mul",) and self._chain_terms(n, ("mul",)):
            factors = self._chain_terms(n, ("mul",))
            if len(factors) > 1:
                lines = ["("]
                for i, (_, f) in enumerate(factors):
                    prefix = "" if i == 0 else self.sym("mul") + " "
                    sub_lines = self._layout_wrapped(f, P_MUL + 1, indent + 4, len(pad) + len(prefix))
                    lines.append(pad + prefix + sub_lines[0])
                    lines.extend(sub_lines[1:])
                lines.append(" " * indent + ")")
                return lines
        if isinstance(n, Op) and n.op == "neg" and self.prec(n.args[0]) <= P_NEG:
            # -(a + b + ...) too long for a line: the sum breaks inside the minus's parentheses
            inner = self._layout_wrapped(n.args[0], P_NEG + 1, indent, used + 1)
            if len(inner) > 1:
                return [self.sym("neg") + inner[0]] + inner[1:]
        if isinstance(n, Op) and (n.op not in OPS or OPS[n.op].kind == "call") and len(n.args) == 1:
            name = self._call_name(n.op)
            settings = attribute_texts(n)
            if not settings:
                inner = self.layout(n.args[0], indent, used + len(name))
                if inner[0] == "(":  # the argument brings its own parentheses: share them
                    return [name + "("] + inner[1:]
                if inner[0] in ("-(", "\u2212(") and len(inner) > 1:  # exp(-(...)): share them too
                    return [name + "(" + inner[0]] + inner[1:-1] + [inner[-1] + ")"]
            inner = self.layout(n.args[0], indent + 4, len(pad))
            if settings:
                return [name + "(", pad + inner[0], *inner[1:-1], inner[-1] + ",",
                        pad + ", ".join(settings), " " * indent + ")"] if len(inner) > 1 else \
                    [name + "(", pad + inner[0] + ",", pad + ", ".join(settings), " " * indent + ")"]
            return [name + "(", pad + inner[0], *inner[1:], " " * indent + ")"]
        if isinstance(n, Vector) and len(n.items) > 1:
            lines = ["["]
            for item in n.items:
                sub_lines = self.layout(item, indent + 4, len(pad))
                lines.append(pad + sub_lines[0])
                lines.extend(sub_lines[1:])
                lines[-1] += ","
            lines.append(" " * indent + "]")
            return lines
        return [text]

    def _layout_wrapped(self, n: Node, need: int, indent: int, used: int) -> list[str]:
        if self.prec(n) < need:
            inner = self.layout(n, indent, used + 1)
            if inner[0] == "(":
                return inner
            return ["(" + inner[0], *inner[1:-1], inner[-1] + ")"] if len(inner) > 1 else ["(" + inner[0] + ")"]
        return self.layout(n, indent, used)

    def _chain_terms(self, n: Node, ops=("add", "sub")) -> list[tuple[str, Node]]:
        """Flatten a left-leaning chain ``a + b - c`` into [(+, a), (+, b), (-, c)]."""
        terms: list[tuple[str, Node]] = []
        while isinstance(n, Op) and n.op in ops:
            terms.append((n.op, n.args[1]))
            n = n.args[0]
        terms.append((ops[0], n))
        return terms[::-1]

    # -- statements ---------------------------------------------------------------------------
    def statement(self, name: str, expr: Node, indent: int = 0) -> list[str]:
        head = " " * indent + f"{name} = "
        lines = self.layout(expr, indent, len(head))
        return [head + lines[0]] + lines[1:]

    def function(self, fn: Function) -> list[str]:
        head = f"def {fn.name}({', '.join(fn.params)}):"
        if fn.body is None:
            return []
        body = self.layout(fn.body, 4, len("    return "))
        lines = ([f"    # {fn.doc}"] if fn.doc else [])
        return [head] + lines + ["    return " + body[0]] + body[1:]


def to_template(tree: Node | Program | str, *, name: str | None = None, style: str = "python",
                width: int = 88, definitions: bool = True, placeholder_width: int = 5,
                options: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Print a tree or Program as an expression template.

    ``style`` "python" prints python-like code (``**``, ``*``), "math" math-like pseudocode
    (``·``, ``x²``, ``√``). Lines longer than ``width`` break at ``+`` or inside calls, with
    indentation (a placeholder counts as ``placeholder_width`` characters, the width of its plot).
    ``definitions`` prints a ``def`` for each :func:`define`-d function used. ``options`` adds
    placeholder settings per parameter name (``{"lengthscale": {"log": True}}``).
    """
    if isinstance(tree, str):
        return tree if tree.endswith("\n") else tree + "\n"
    printer = _Printer(style, width, placeholder_width, options)
    lines: list[str] = []
    if definitions:
        for fn in _used_functions(tree):
            lines.extend(printer.function(fn))
            lines.append("")
    if isinstance(tree, Program):
        for s in tree.statements:
            if isinstance(s, Comment):
                lines.extend("# " + t if t else "#" for t in s.text.splitlines())
            else:
                lines.extend(printer.statement(s.name, s.expr))
    elif name is not None:
        lines.extend(printer.statement(name, tree))
    else:
        lines.extend(printer.layout(tree, 0, 0))
    return "\n".join(lines) + "\n"


def _used_functions(tree) -> list[Function]:
    trees = [s.expr for s in tree.assignments] if isinstance(tree, Program) else [tree]
    seen: dict[str, Function] = {}

    def visit(t):
        for n in iter_nodes(t):
            if isinstance(n, Op) and n.op in FUNCTIONS and n.op not in seen:
                fn = FUNCTIONS[n.op]
                if fn.body is not None:
                    visit(fn.body)  # helpers first
                    seen[n.op] = fn
            if isinstance(n, Param) and n.transform in FUNCTIONS and n.transform not in seen:
                fn = FUNCTIONS[n.transform]
                if fn.body is not None:
                    seen[n.transform] = fn

    for t in trees:
        visit(t)
    return list(seen.values())


def write_template(tree_or_text: Node | Program | str, path: str | Path, **options) -> Path:
    """Print (unless given text) and write a template file atomically (temporary name, rename)."""
    path = Path(path)
    text = to_template(tree_or_text, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


SERVICES["to_template"] = to_template
