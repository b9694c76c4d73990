"""Models as small expression trees: evaluate them, transform them, print them as templates.

The idea is Lisp's: a model is an operation and its arguments, all the way down
(``(mul (param outputscale) (call matern52 (var r)))``). One tree serves three purposes:

* **evaluate** it with numpy, torch or JAX, given parameter values and inputs, so a test can check
  that the tree *is* the model that was trained;
* **transform** it: apply the constraint transforms (``softplus(raw_noise)`` becomes the parameter
  ``noise`` that the tracer records), plug in known values and fold constants, unvectorize
  (``sum((x - x') / lengthscale)`` over 5 features becomes 5 terms, each with its own
  ``⟦lengthscale[log_lr]⟧``), give sub-expressions short names (``r = sqrt(...)``);
* **print** it as an expression template: python-like (or math-like) pseudocode with the fewest
  parentheses operator precedence allows, long lines broken with indentation, and a placeholder
  ``⟦name⟧`` wherever a traced scalar parameter goes.

Placeholder names come from :func:`sitegen.trace.element_names`, the function the tracer uses, so
a template and the table traced from the same model agree by construction.

torch and jax are imported lazily, only when a tree is evaluated with them.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from sitegen.trace import element_names

__all__ = [
    "Node", "Const", "Param", "Var", "Ref", "Index", "Vector", "Op", "Function",
    "Program", "Assign", "Comment",
    "const", "param", "var", "define", "register_function", "call",
    "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "softplus", "sigmoid", "tanh",
    "relu", "abs_", "square", "sum_", "mean", "dot", "matmul", "ne", "matern52",
    "evaluate", "constrain", "partial", "unvectorize", "let", "tracer_transforms",
    "to_template", "placeholders", "template_placeholders", "write_template", "placeholder",
]

OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧


# ============================================================================================
# Operations: how each one prints, which shape it makes, how each backend computes it
# ============================================================================================

@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: str                 # "infix", "prefix" or "call"
    symbol: str = ""          # python style symbol (infix/prefix) or function name (call)
    math: str = ""            # math style symbol
    prec: int = 100           # binding strength when printed; higher binds tighter
    assoc: str = "left"       # "left" or "right" (pow)
    shape: str = "elementwise"  # elementwise | reduce | dot | matmul
    arity: int = 1


# Precedence levels, as in Python.
P_COMPARE, P_ADD, P_MUL, P_NEG, P_POW, P_ATOM = 5, 10, 20, 30, 40, 100

OPS: dict[str, OpSpec] = {}


def _op(spec: OpSpec) -> OpSpec:
    OPS[spec.name] = spec
    return spec


_op(OpSpec("add", "infix", "+", "+", P_ADD, arity=2))
_op(OpSpec("sub", "infix", "-", "\u2212", P_ADD, arity=2))
_op(OpSpec("mul", "infix", "*", "\u00b7", P_MUL, arity=2))
_op(OpSpec("div", "infix", "/", "/", P_MUL, arity=2))
_op(OpSpec("matmul", "infix", "@", "\u00b7", P_MUL, shape="matmul", arity=2))
_op(OpSpec("pow", "infix", "**", "^", P_POW, assoc="right", arity=2))
_op(OpSpec("ne", "infix", "!=", "\u2260", P_COMPARE, arity=2))
_op(OpSpec("neg", "prefix", "-", "\u2212", P_NEG))
for _name in ("exp", "log", "sqrt", "tanh", "softplus", "sigmoid", "relu", "abs", "square"):
    _op(OpSpec(_name, "call", _name, "\u221a" if _name == "sqrt" else _name))
_op(OpSpec("sum", "call", "sum", "sum", shape="reduce"))
_op(OpSpec("mean", "call", "mean", "mean", shape="reduce"))
_op(OpSpec("dot", "call", "dot", "dot", shape="dot", arity=2))


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


# ============================================================================================
# Nodes
# ============================================================================================

def _broadcast(*shapes) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


class Node:
    """Base of every expression node. Arithmetic operators build trees: ``w * x + b``."""

    shape: tuple[int, ...] = ()

    def children(self) -> tuple["Node", ...]:
        return ()

    def with_children(self, children: Sequence["Node"]) -> "Node":
        return self

    def key(self) -> tuple:
        """Structure, for finding equal sub-expressions."""
        raise NotImplementedError

    # arithmetic builds trees
    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other): return div(other, self)
    def __pow__(self, other): return pow(self, other)
    def __rpow__(self, other): return pow(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __neg__(self): return neg(self)

    def __getitem__(self, index):
        return Index(self, index if isinstance(index, tuple) else (index,))

    def __repr__(self) -> str:
        return self.sexpr()

    def sexpr(self) -> str:
        """The tree as a Lisp S-expression, for debugging: ``(add (mul ⟦w⟧ x) ⟦b⟧)``."""
        raise NotImplementedError

    def template(self, **options) -> str:
        return to_template(self, **options)

    def evaluate(self, params=None, inputs=None, backend="numpy"):
        return evaluate(self, params, inputs, backend)


def as_node(value) -> Node:
    if isinstance(value, Node):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.ndarray, list, tuple)):
        return Const(value)
    raise TypeError(f"cannot use {type(value).__name__} in an expression; wrap it in Const()")


class Const(Node):
    """A constant. With ``name`` it prints as that name (a hyper-parameter such as ``w_cls``);
    ``math_name`` is its name in the math style."""

    __slots__ = ("value", "name", "math_name", "shape")

    def __init__(self, value, name: str | None = None, math_name: str | None = None):
        if isinstance(value, (list, tuple)):
            value = np.asarray(value, dtype=np.float64)
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        self.value = value
        self.name = name
        self.math_name = math_name   # how it prints in the math style (√5 for sqrt(5))
        self.shape = tuple(np.shape(value))

    def key(self):
        v = self.value
        return ("const", self.name, self.shape, v.tobytes() if isinstance(v, np.ndarray) else v)

    def sexpr(self):
        return self.name or _format_number(self.value)


class Param(Node):
    """A trained parameter, printed as one placeholder per scalar.

    ``transform`` names the constraint between the stored (raw) value and the value the model uses
    (``"softplus"``, ``"exp"``, or the name of a :func:`define`-d function); ``constrained`` is the
    name the tracer records the constrained value under (default: the name with a ``raw_`` prefix
    of its last dotted part removed). ``options`` become placeholder settings
    (``{"log": True, "label": "ℓ"}`` -> ``⟦lengthscale | log | label=ℓ⟧``); a list value gives one
    setting per element.
    """

    __slots__ = ("name", "shape", "labels", "transform", "constrained", "options", "parent")

    def __init__(self, name: str, shape: Sequence[int] = (), labels=None, transform: str | None = None,
                 constrained: str | None = None, options: Mapping[str, Any] | None = None,
                 parent: tuple[str, str | None, int] | None = None):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.labels = labels
        if transform is not None and transform not in OPS and transform not in FUNCTIONS:
            raise ValueError(f"unknown transform {transform!r} for parameter {name!r}")
        self.transform = transform
        if constrained is None:
            head, dot, last = name.rpartition(".")
            constrained = head + dot + last[4:] if (transform and last.startswith("raw_")) else name
        self.constrained = constrained
        self.options = dict(options or {})
        #: for one element of a vector parameter: (raw vector name, constrained vector name, flat index)
        self.parent = parent
        if self.shape:
            element_names(name, self.shape, labels)  # fail early on labels that do not fit

    def key(self):
        return ("param", self.name, self.shape, self.transform, self.constrained)

    def sexpr(self):
        inner = _placeholder_text(self.name)
        return f"({self.transform} {inner})" if self.transform else inner

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def element(self, flat_index: int) -> "Param":
        """The scalar parameter at one position (row-major), named as the tracer names it."""
        raw = element_names(self.name, self.shape, self.labels)[flat_index]
        constrained = element_names(self.constrained, self.shape, self.labels)[flat_index]
        options = {k: (v[flat_index] if isinstance(v, (list, tuple)) else v)
                   for k, v in self.options.items()}
        return Param(raw, (), None, self.transform, constrained, options,
                     parent=(self.name, self.constrained, flat_index))

    def element_names(self) -> list[str]:
        return element_names(self.name, self.shape, self.labels)


class Var(Node):
    """An input of the model (a feature vector, a data point, a hyper-parameter given at run time).

    ``display`` is how it prints (``x′`` for an input named ``x2``); ``element_format`` how one
    element of it prints once unvectorized: ``"{name}[{label}]"`` by default, ``"{label}"`` to
    print just the feature name.
    """

    __slots__ = ("name", "shape", "labels", "display", "element_format")

    def __init__(self, name: str, shape: Sequence[int] = (), labels=None, display: str | None = None,
                 element_format: str = "{name}[{label}]"):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.labels = list(labels) if labels is not None else None
        self.display = display or name
        self.element_format = element_format

    def key(self):
        return ("var", self.name, self.shape)

    def sexpr(self):
        return self.display

    def element_label(self, index: tuple[int, ...]) -> str:
        if self.labels is not None and len(index) == 1:
            label = str(self.labels[index[0]])
        else:
            label = ",".join(str(i) for i in index)
        return self.element_format.format(name=self.display, label=label)


class Ref(Node):
    """A name bound earlier in a :class:`Program` (``r`` after ``r = sqrt(...)``)."""

    __slots__ = ("name", "shape")

    def __init__(self, name: str, shape: Sequence[int] = ()):
        self.name = name
        self.shape = tuple(shape)

    def key(self):
        return ("ref", self.name)

    def sexpr(self):
        return self.name


class Index(Node):
    """Element(s) of a vector or matrix: ``x[2]``; leading dimensions of the node's shape."""

    __slots__ = ("node", "index", "shape")

    def __init__(self, node: Node, index: tuple[int, ...]):
        self.node = as_node(node)
        self.index = tuple(int(i) for i in index)
        if len(self.index) > len(self.node.shape):
            raise IndexError(f"{self.node.sexpr()} of shape {self.node.shape} has no index {self.index}")
        self.shape = self.node.shape[len(self.index):]

    def children(self):
        return (self.node,)

    def with_children(self, children):
        return Index(children[0], self.index)

    def key(self):
        return ("index", self.node.key(), self.index)

    def sexpr(self):
        return f"(index {self.node.sexpr()} {' '.join(map(str, self.index))})"


class Vector(Node):
    """A vector written out element by element: ``[a, b, c]``."""

    __slots__ = ("items", "shape")

    def __init__(self, items: Sequence[Node]):
        self.items = tuple(as_node(i) for i in items)
        inner = _broadcast(*(i.shape for i in self.items)) if self.items else ()
        self.shape = (len(self.items),) + inner

    def children(self):
        return self.items

    def with_children(self, children):
        return Vector(children)

    def key(self):
        return ("vector",) + tuple(i.key() for i in self.items)

    def sexpr(self):
        return "(vector " + " ".join(i.sexpr() for i in self.items) + ")"


class Op(Node):
    """An operation applied to arguments: a built-in (``add``, ``exp``, ``sum``, ...) or a
    function made with :func:`define` or :func:`register_function`."""

    __slots__ = ("op", "args", "shape")

    def __init__(self, op: str, *args):
        if op not in OPS and op not in FUNCTIONS:
            raise ValueError(f"unknown operation {op!r}")
        self.op = op
        self.args = tuple(as_node(a) for a in args)
        self.shape = self._shape()

    def _shape(self):
        shapes = [a.shape for a in self.args]
        rule = OPS[self.op].shape if self.op in OPS else FUNCTIONS[self.op].shape
        if rule == "elementwise":
            return _broadcast(*shapes)
        if rule == "reduce":
            if not shapes[0]:
                raise ValueError(f"{self.op}() of a scalar: {self.args[0].sexpr()}")
            return shapes[0][:-1]
        if rule == "dot":
            return _broadcast(*shapes)[:-1]
        if rule == "matmul":
            a, b = shapes
            if len(a) != 2 or not b or a[1] != b[0]:
                raise ValueError(f"cannot multiply shapes {a} @ {b}")
            return (a[0],) + b[1:]
        if callable(rule):
            return tuple(rule(*shapes))
        raise ValueError(f"unknown shape rule {rule!r}")

    def children(self):
        return self.args

    def with_children(self, children):
        return Op(self.op, *children)

    def key(self):
        return ("op", self.op) + tuple(a.key() for a in self.args)

    def sexpr(self):
        return "(" + " ".join([self.op] + [a.sexpr() for a in self.args]) + ")"


# ============================================================================================
# Named functions: defined as trees (printed as definitions) or registered per backend
# ============================================================================================

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


FUNCTIONS: dict[str, Function] = {}


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

def const(value, name=None) -> Const: return Const(value, name)
def param(name, shape=(), labels=None, transform=None, constrained=None, options=None) -> Param:
    return Param(name, shape, labels, transform, constrained, options)
def var(name, shape=(), labels=None, display=None, element_format="{name}[{label}]") -> Var:
    return Var(name, shape, labels, display, element_format)
def add(a, b): return Op("add", a, b)
def sub(a, b): return Op("sub", a, b)
def mul(a, b): return Op("mul", a, b)
def div(a, b): return Op("div", a, b)
def pow(a, b): return Op("pow", a, b)  # noqa: A001 - the operation's name
def neg(a): return Op("neg", a)
def exp(a): return Op("exp", a)
def log(a): return Op("log", a)
def sqrt(a): return Op("sqrt", a)
def softplus(a): return Op("softplus", a)
def sigmoid(a): return Op("sigmoid", a)
def tanh(a): return Op("tanh", a)
def relu(a): return Op("relu", a)
def abs_(a): return Op("abs", a)
def square(a): return Op("square", a)
def sum_(a): return Op("sum", a)
def mean(a): return Op("mean", a)
def dot(a, b): return Op("dot", a, b)
def matmul(a, b): return Op("matmul", a, b)
def ne(a, b): return Op("ne", a, b)


_r = Var("r")
matern52 = define(
    "matern52", ["r"],
    (1 + Const(5 ** 0.5, "sqrt(5)", "√5") * _r + Const(5 / 3, "5/3") * _r ** 2)
    * exp(-(Const(5 ** 0.5, "sqrt(5)", "√5") * _r)),
    doc="Matérn kernel with smoothness 5/2 as a function of the scaled distance r")
del _r


# ============================================================================================
# Walking and rebuilding trees
# ============================================================================================

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


# ============================================================================================
# Programs: several named definitions printed one per line
# ============================================================================================

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
        return to_template(self, **options)

    def evaluate(self, params=None, inputs=None, backend="numpy"):
        return evaluate(self, params, inputs, backend)

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


# ============================================================================================
# Evaluation
# ============================================================================================

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


# ============================================================================================
# Transformations
# ============================================================================================

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
    return n


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
        return _element(node.node, node.index + idx, max_elements)
    if isinstance(node, Vector):
        return _element(node.items[idx[0]], idx[1:], max_elements)
    if isinstance(node, Op):
        spec_shape = OPS[node.op].shape if node.op in OPS else FUNCTIONS[node.op].shape
        if spec_shape == "elementwise":
            return Op(node.op, *(_element(a, _broadcast_index(idx, a.shape, shape), max_elements)
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


# ============================================================================================
# Printing
# ============================================================================================

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _format_number(v) -> str:
    if isinstance(v, np.ndarray):
        return "[" + ", ".join(_format_number(x) for x in v.tolist()) + "]"
    if isinstance(v, list):
        return "[" + ", ".join(_format_number(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.6g}"


def _needs_quotes(name: str) -> bool:
    return any(c in name for c in '|"\\' + OPEN + CLOSE) or name != name.strip() or not name


def placeholder(name: str, options: Mapping[str, Any] | None = None) -> str:
    """``⟦name⟧`` with settings (``⟦name | log | label=ℓ⟧``); names with ``|`` or ``⟧`` quoted."""
    text = _placeholder_text(name)
    for key, value in (options or {}).items():
        if value is True:
            text += f" | {key}"
        elif value is not None and value is not False:
            text += f" | {key}={value}"
    return OPEN + text + CLOSE


def _placeholder_text(name: str) -> str:
    if _needs_quotes(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


_PLACEHOLDER = re.compile(OPEN + r'\s*(?:"((?:[^"\\]|\\.)*)"|([^|' + CLOSE + r']*))[^' + CLOSE + ']*' + CLOSE)


def template_placeholders(text: str) -> list[str]:
    """The parameter names of every placeholder in a template, in order (with repeats)."""
    names = []
    for m in _PLACEHOLDER.finditer(text):
        if m.group(1) is not None:
            names.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        else:
            names.append(m.group(2).strip())
    return names


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
        for m in _PLACEHOLDER.finditer(text):
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
            return _format_number(n.value).replace("-", "\u2212") if self.style == "math" \
                else _format_number(n.value)
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
            if isinstance(n.node, Var) and len(n.index) == len(n.node.shape):
                return n.node.element_label(n.index)
            return self.wrap(n.node, P_ATOM) + "[" + ", ".join(map(str, n.index)) + "]"
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
            return f"{self._call_name(n.op)}({', '.join(self.flat(a) for a in n.args)})"
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
        if isinstance(n, Op) and (n.op not in OPS or OPS[n.op].kind == "call") and len(n.args) == 1:
            name = self._call_name(n.op)
            inner = self.layout(n.args[0], indent, used + len(name))
            if inner[0] == "(":  # the argument brings its own parentheses: share them
                return [name + "("] + inner[1:]
            inner = self.layout(n.args[0], indent + 4, len(pad))
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
