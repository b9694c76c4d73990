"""Expression nodes: constants, parameters, inputs, references, indexing, written-out vectors and
operations, each knowing its shape, its children and its structural key; plus the one-line
constructors (``add``, ``exp``, ``sum_`` ...) that build :class:`Op` nodes.

Shapes are inferred from the operation table (:mod:`sitegen.expr.ops`). Evaluating and printing
live in their own modules, which depend on the nodes and not the other way round: they register
the functions behind the convenience methods :meth:`Node.evaluate` and :meth:`Node.template` in
:data:`SERVICES` when the package is imported.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sitegen.expr.ops import FUNCTIONS, OPS, normalize_axis
from sitegen.expr.placeholder import format_number as _format_number, placeholder_text as _placeholder_text
from sitegen.trace import element_names

#: ``{"evaluate": ..., "to_template": ...}``, filled in by the evaluate and printer modules.
SERVICES: dict[str, Callable] = {}


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
    def __add__(self, other): return Op("add", self, other)
    def __radd__(self, other): return Op("add", other, self)
    def __sub__(self, other): return Op("sub", self, other)
    def __rsub__(self, other): return Op("sub", other, self)
    def __mul__(self, other): return Op("mul", self, other)
    def __rmul__(self, other): return Op("mul", other, self)
    def __truediv__(self, other): return Op("div", self, other)
    def __rtruediv__(self, other): return Op("div", other, self)
    def __pow__(self, other): return Op("pow", self, other)
    def __rpow__(self, other): return Op("pow", other, self)
    def __matmul__(self, other): return Op("matmul", self, other)
    def __neg__(self): return Op("neg", self)

    def __getitem__(self, index):
        return Index(self, index if isinstance(index, tuple) else (index,))

    def __repr__(self) -> str:
        return self.sexpr()

    def sexpr(self) -> str:
        """The tree as a Lisp S-expression, for debugging: ``(add (mul ⟦w⟧ x) ⟦b⟧)``."""
        raise NotImplementedError

    def template(self, **options) -> str:
        """Shorthand for :func:`sitegen.expr.to_template`."""
        return SERVICES["to_template"](self, **options)

    def evaluate(self, params=None, inputs=None, backend="numpy"):
        """Shorthand for :func:`sitegen.expr.evaluate`."""
        return SERVICES["evaluate"](self, params, inputs, backend)


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

    __slots__ = ("name", "shape", "labels", "transform", "constrained", "options", "parent", "source")

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
        #: for one element of a vector parameter: the vector (so vectorize can index it again)
        self.source = None
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
        element = Param(raw, (), None, self.transform, constrained, options,
                        parent=(self.name, self.constrained, flat_index))
        element.source = self
        return element

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
    """Element(s) of an array, numpy style, over the node's leading dimensions: ``x[2]``,
    ``x[..., [0, 2]]``, ``x[:, 1:3]``. ``...`` is written out when the node is built; a list of
    positions may not be combined with integers in one index (index twice instead)."""

    __slots__ = ("node", "index", "shape")

    def __init__(self, node: Node, index: tuple):
        self.node = as_node(node)
        self.index = _normalize_index(tuple(index), self.node.shape, self.node)
        self.shape = _index_shape(self.index, self.node.shape)

    def children(self):
        return (self.node,)

    def with_children(self, children):
        return Index(children[0], self.index)

    def key(self):
        return ("index", self.node.key(), tuple(_freeze_entry(e) for e in self.index))

    def sexpr(self):
        return f"(index {self.node.sexpr()} {' '.join(map(index_entry_text, self.index))})"

    @property
    def simple(self) -> bool:
        """Integers only (the old, elementwise kind of index)."""
        return all(isinstance(e, int) for e in self.index)


def index_entry_text(entry) -> str:
    if isinstance(entry, slice):
        if entry == slice(None):
            return ":"
        text = f"{'' if entry.start is None else entry.start}:{'' if entry.stop is None else entry.stop}"
        return text + (f":{entry.step}" if entry.step not in (None, 1) else "")
    if isinstance(entry, tuple):
        return "[" + ", ".join(map(str, entry)) + "]"
    if entry is Ellipsis:
        return "..."
    return str(entry)


def _freeze_entry(entry):
    if isinstance(entry, slice):
        return ("slice", entry.start, entry.stop, entry.step)
    if isinstance(entry, Node):
        return entry.key()
    return entry


def _normalize_index(index: tuple, shape, node) -> tuple:
    entries = []
    for e in index:
        if isinstance(e, (bool, np.bool_)):
            raise TypeError("boolean indices are not supported")
        if isinstance(e, (int, np.integer)):
            entries.append(int(e))
        elif isinstance(e, (list, tuple, np.ndarray)):
            arr = np.asarray(e)
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise TypeError(f"a list index holds integers, one dimension: got {e!r}")
            entries.append(tuple(int(i) for i in arr))
        elif isinstance(e, slice) or e is Ellipsis or isinstance(e, Node):  # Node: a pattern's wildcard
            entries.append(e)
        else:
            raise TypeError(f"cannot index with {type(e).__name__}")
    if shape is None:  # a pattern: kept as written
        return tuple(entries)
    if sum(e is Ellipsis for e in entries) > 1:
        raise IndexError("an index can have only one '...'")
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        fill = len(shape) - (len(entries) - 1)
        if fill < 0:
            raise IndexError(f"{node.sexpr()} of shape {shape} has no index {index}")
        entries[at:at + 1] = [slice(None)] * fill
    if len(entries) > len(shape):
        raise IndexError(f"{node.sexpr()} of shape {shape} has no index {tuple(entries)}")
    while entries and isinstance(entries[-1], slice) and entries[-1] == slice(None):
        entries.pop()
    lists = [e for e in entries if isinstance(e, tuple)]
    if len(lists) > 1 or (lists and any(isinstance(e, int) for e in entries)):
        raise IndexError(f"index {tuple(entries)}: a list of positions cannot be combined with another "
                         "list or an integer in one index; index twice")
    for e, n in zip(entries, shape):
        for i in (e if isinstance(e, tuple) else (e,) if isinstance(e, int) else ()):
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for a dimension of {n} in {node.sexpr()}")
    return tuple((e % n if isinstance(e, int) else tuple(i % n for i in e) if isinstance(e, tuple) else e)
                 for e, n in zip(entries, shape))


def _index_shape(index: tuple, shape):
    if shape is None or any(isinstance(e, Node) for e in index):
        return None
    out = []
    for e, n in zip(index, shape):
        if isinstance(e, slice):
            out.append(len(range(*e.indices(n))))
        elif isinstance(e, tuple):
            out.append(len(e))
    return tuple(out) + tuple(shape[len(index):])


class Vector(Node):
    """A vector written out element by element: ``[a, b, c]``."""

    __slots__ = ("items", "shape")

    def __init__(self, items: Sequence[Node]):
        self.items = tuple(as_node(i) for i in items)
        if any(i.shape is None for i in self.items):
            self.shape = None  # a pattern with wildcards
            return
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
    function made with :func:`define` or :func:`register_function`. ``attrs`` are its settings
    (``axis=-1``, ``p=1``, ``lengths=(3, 3)``): plain values, part of its structure."""

    __slots__ = ("op", "args", "shape", "attrs")

    def __init__(self, op: str, *args, **attrs):
        if op not in OPS and op not in FUNCTIONS:
            raise ValueError(f"unknown operation {op!r}")
        self.op = op
        self.args = tuple(as_node(a) for a in args)
        self.attrs = {k: _freeze(v) for k, v in attrs.items()}
        self.shape = self._shape()

    def _shape(self):
        shapes = [a.shape for a in self.args]
        if any(s is None for s in shapes):
            return None  # a pattern with wildcards
        rule = OPS[self.op].shape if self.op in OPS else FUNCTIONS[self.op].shape
        if rule == "elementwise":
            return _broadcast(*shapes)
        if rule == "reduce":
            if not shapes[0]:
                raise ValueError(f"{self.op}() of a scalar: {self.args[0].sexpr()}")
            axis = self.attrs.get("axis", -1)
            return shapes[0][:axis] + (shapes[0][axis + 1:] if axis != -1 else ())
        if rule == "dot":
            return _broadcast(*shapes)[:-1]
        if rule == "matmul":
            a, b = shapes
            if len(a) != 2 or not b or a[1] != b[0]:
                raise ValueError(f"cannot multiply shapes {a} @ {b}")
            return (a[0],) + b[1:]
        if callable(rule):
            if self.op in OPS:
                return tuple(rule(shapes, self.attrs))
            return tuple(rule(*shapes))
        raise ValueError(f"unknown shape rule {rule!r}")

    def children(self):
        return self.args

    def with_children(self, children):
        return Op(self.op, *children, **self.attrs)

    def key(self):
        head = ("op", self.op) + ((tuple(sorted(self.attrs.items())),) if self.attrs else ())
        return head + tuple(a.key() for a in self.args)

    def sexpr(self):
        attrs = [f":{k} {v}" for k, v in self.attrs.items()]
        return "(" + " ".join([self.op] + [a.sexpr() for a in self.args] + attrs) + ")"


def _freeze(value):
    """Attribute values as hashable plain values: lists and arrays become tuples."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Node):
        return value
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


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
def sum_(a, axis=None):
    """Sum over ``axis`` (default: the last). A list sums its items (over ``axis``, default the
    list's own axis): ``sum_([w1 * d1, w2 * d2], axis=0)``."""
    return _reduction("sum", a, axis)


def mean(a, axis=None):
    """Mean over ``axis`` (default: the last); a list as in :func:`sum_`."""
    return _reduction("mean", a, axis)


def prod(a, axis=None):
    """Product over ``axis`` (default: the last); a list as in :func:`sum_`."""
    return _reduction("prod", a, axis)


def _reduction(op, a, axis):
    if isinstance(a, (list, tuple)) and any(isinstance(i, Node) for i in a):
        a = stack(a, 0 if axis is None else axis)
        axis = 0 if axis is None else axis
    a = as_node(a)
    if axis is None:
        return Op(op, a)
    axis = normalize_axis(axis, len(a.shape))
    return Op(op, a) if axis == -1 else Op(op, a, axis=axis)


def stack(items, axis=0):
    """Items of one shape stacked on a new ``axis``; on axis 0 that is a :class:`Vector`."""
    items = [as_node(i) for i in items]
    if not items:
        raise ValueError("stack() of no items")
    inner = _broadcast(*(i.shape for i in items))
    axis = normalize_axis(axis, len(inner) + 1)
    if axis == -len(inner) - 1:
        return Vector(items)
    return Op("stack", *items, axis=axis)


def concatenate(items, axis=0):
    """Arrays joined along an existing ``axis``."""
    items = [as_node(i) for i in items]
    if not items:
        raise ValueError("concatenate() of no items")
    axis = normalize_axis(axis, len(items[0].shape))
    return items[0] if len(items) == 1 else Op("concat", *items, axis=axis)


def reshape(a, shape):
    a = as_node(a)
    shape = tuple(int(s) for s in ((shape,) if isinstance(shape, int) else shape))
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        shape = tuple(math.prod(a.shape) // known if s == -1 else s for s in shape)
    return a if shape == a.shape else Op("reshape", a, shape=shape)


def broadcast_to(a, shape):
    a = as_node(a)
    shape = tuple(int(s) for s in shape)
    return a if shape == a.shape else Op("broadcast_to", a, shape=shape)


def moveaxis(a, source, destination):
    a = as_node(a)
    n = len(a.shape)
    source, destination = normalize_axis(source, n), normalize_axis(destination, n)
    return a if source == destination else Op("moveaxis", a, source=source, destination=destination)


def cdist(x1, x2, p=2):
    """Distances between the rows of two (..., points, features) arrays: Euclidean (``p=2``) or
    L1 (``p=1``), as ``scipy.spatial.distance.cdist`` and ``torch.cdist``."""
    if p not in (1, 2) and not isinstance(p, Node):  # a Node: a pattern's wildcard
        raise ValueError("cdist supports p=2 (Euclidean) and p=1 (L1)")
    return Op("cdist", x1, x2, p=p)


def dot(a, b): return Op("dot", a, b)
def matmul(a, b): return Op("matmul", a, b)
def ne(a, b): return Op("ne", a, b)
