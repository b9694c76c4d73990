"""The names the tracer records: one per scalar inside a parameter, and renamed parameters.

:func:`element_names` is shared with :mod:`sitegen.expr`, so a printed template's placeholders are
exactly the names a tracer records; ``_apply_transform`` applies a ``transforms=`` mapping
(``raw_noise`` -> ``noise``) the same way for torch modules and JAX pytrees.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Sequence


def element_names(name: str, shape: Sequence[int], labels=None) -> list[str]:
    """The name of every scalar inside a parameter, in row-major (C) order.

    A scalar keeps its name. A vector ``lengthscale`` of 3 becomes ``lengthscale[0]`` ...
    ``lengthscale[2]``; a matrix ``weight`` of 2x3 becomes ``weight[0,0]`` ... ``weight[1,2]``.
    ``labels`` names the elements instead of numbering them: either one flat list of strings
    (one per scalar, ``lengthscale[log_lr]``) or one list per axis (``weight[h0,x1]``).

    :mod:`sitegen.expr` uses the same function, so a printed template's placeholders are
    exactly the names this tracer records.
    """
    shape = tuple(int(s) for s in shape)
    if shape == ():
        return [name]
    count = math.prod(shape)
    if labels is None:
        axes = [range(n) for n in shape]
    else:
        labels = list(labels)
        if all(isinstance(label, str) or not isinstance(label, Iterable) for label in labels):
            if len(labels) != count:
                raise ValueError(
                    f"labels for {name!r} name {len(labels)} elements but the parameter has "
                    f"{count} (shape {shape}); give one label per element or one list per axis")
            return [f"{name}[{label}]" for label in labels]
        axes = [list(axis) for axis in labels]
        if len(axes) != len(shape) or any(len(a) != n for a, n in zip(axes, shape)):
            raise ValueError(
                f"labels for {name!r} have axis lengths {[len(a) for a in axes]} but the parameter "
                f"has shape {shape}; give one list of labels per axis")
    return [f"{name}[{','.join(str(i) for i in index)}]" for index in itertools.product(*axes)]


def _label_key(labels) -> Any:
    if labels is None:
        return None
    return tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in labels)


def _apply_transform(name: str, transforms):
    if not transforms:
        return name, None
    if name in transforms:
        new, fn = transforms[name]
        return new, fn
    head, _, last = name.rpartition(".")
    if head and last in transforms:
        new, fn = transforms[last]
        return f"{head}.{new}", fn
    return name, None

