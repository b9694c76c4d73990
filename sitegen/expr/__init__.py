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

The package, one concern per module (each imports only those above it):

==================  =========================================================================
``ops``             the operation table: printing, shape rule and arity of each operation
``placeholder``     the text of placeholders and numbers
``nodes``           the node classes and their one-line constructors
``functions``       named functions (``define``, ``register_function``), Matérn 5/2
``rewrite``         walking and rewriting trees: ``map_tree``, pattern rules, pseudocode
``program``         Programs of named definitions, ``let``
``backends``        numpy / torch / JAX array functions and batched kernels
``evaluate``        evaluation of a tree with one of the backends
``transforms``      ``constrain``, ``partial``, ``tracer_transforms``
``unvectorize``     vector arithmetic written out element by element
``vectorize``       the inverse: sibling sub-expressions batched (``STACK_RULES``, ``NEUTRAL_OPERANDS``)
``traced``          the ``@vectorized`` decorator: a Python function traced once into a tree
``printer``         templates
==================  =========================================================================

torch and jax are imported lazily, only when a tree is evaluated with them.
"""
from __future__ import annotations

from sitegen.expr.evaluate import evaluate, get_backend
from sitegen.expr.functions import Function, call, define, matern52, register_function
from sitegen.expr.nodes import (
    Const, Index, Node, Op, Param, Ref, Var, Vector, abs_, add, as_node, broadcast_to, cdist,
    concatenate, const, div, dot, exp, log, matmul, mean, moveaxis, mul, ne, neg, param, pow, prod,
    relu, reshape, sigmoid, softplus, sqrt, square, stack, sub, sum_, tanh, var,
)
from sitegen.expr.ops import FUNCTIONS, OPS, OpSpec
from sitegen.expr.placeholder import CLOSE, OPEN, placeholder, template_placeholders
from sitegen.expr.printer import placeholders, to_template, write_template
from sitegen.expr.program import Assign, Comment, Program, let
from sitegen.expr.rewrite import Rule, Wild, iter_nodes, map_tree, match, pseudocode, rewrite
from sitegen.expr.transforms import constrain, partial, tracer_transforms
from sitegen.expr.unvectorize import unvectorize
from sitegen.expr.traced import Vectorized, vectorized
from sitegen.expr.vectorize import NEUTRAL_OPERANDS, STACK_RULES, stack_rule, vectorize

__all__ = [
    "Node", "Const", "Param", "Var", "Ref", "Index", "Vector", "Op", "Function",
    "Program", "Assign", "Comment",
    "const", "param", "var", "define", "register_function", "call",
    "add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "softplus", "sigmoid", "tanh",
    "relu", "abs_", "square", "sum_", "mean", "dot", "matmul", "ne", "matern52",
    "evaluate", "constrain", "partial", "unvectorize", "let", "tracer_transforms",
    "to_template", "placeholders", "template_placeholders", "write_template", "placeholder",
    "prod", "stack", "concatenate", "reshape", "broadcast_to", "moveaxis", "cdist",
    "vectorize", "vectorized", "Vectorized", "STACK_RULES", "NEUTRAL_OPERANDS", "stack_rule",
    "map_tree", "iter_nodes", "Wild", "Rule", "match", "rewrite", "pseudocode", "get_backend", "as_node", "FUNCTIONS", "OPS", "OpSpec", "OPEN", "CLOSE",
]
