"""Counting integer codes: lookups, first appearances, distinct values and duplicates.

What :mod:`sitegen.figures.reduce` and :mod:`sitegen.figures.periodic` count over the codes of a traced
table's batches. Codes are small non-negative integers (parameters, experiments, runs, and the
(parameter, row, dot) indices made of them), so a count of distinct values is a ``bincount`` when
their range is small next to their number, and a sort (``np.unique``) only when it is not.
"""
from __future__ import annotations

from typing import Any, Iterable

#: the bitmap that counts distinct (cell, step) pairs for the duplicate check stays under this many bytes;
#: beyond it the pairs are collected and counted by sorting
BITMAP_BYTES = 1 << 27
#: code arrays up to this long are searched in numpy by :func:`first_order`
SMALL = 1 << 14


def _counted(codes) -> bool:
    """Whether the distinct values of the non-negative integer ``codes`` are found by counting each
    value (``bincount``: their range is small next to their number) rather than by sorting them."""
    return bool(len(codes)) and int(codes.max()) < 4 * len(codes) + 4096


def distinct(codes) -> int:
    """How many distinct values the non-negative integer ``codes`` hold."""
    import numpy as np

    if not len(codes):
        return 0
    if _counted(codes):
        return int(np.count_nonzero(np.bincount(codes)))
    return len(np.unique(codes))


def distinct_values(codes):
    """The distinct values of the non-negative integer ``codes``, ascending (``np.unique``'s answer)."""
    import numpy as np

    if _counted(codes):
        return np.flatnonzero(np.bincount(codes)).astype(codes.dtype, copy=False)
    return np.unique(codes)


def lut(size: int, codes: dict[int, int] | None):
    """A lookup from codes (0..size-1, and -1 in the last slot) to positions (-1: not chosen).
    ``None``: every code keeps its own position."""
    import numpy as np

    out = np.full(size + 1, -1, dtype=np.int32 if size < 2 ** 31 - 1 else np.int64)
    if codes is None:
        out[:size] = np.arange(size)
    else:
        for code, pos in codes.items():
            out[code] = pos
    return out


def first_order(codes) -> list[int]:
    """The distinct codes in order of first appearance: one hash pass in Arrow, no sort; a few thousand
    codes (a periodic batch's first steps) are searched in numpy instead (Arrow's call costs more there)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if 0 < len(codes) <= SMALL and codes.min() >= -1:
        found = first_seen(codes, int(codes.max()) + 1)
        return sorted(found, key=found.__getitem__)
    return pc.unique(pa.array(codes)).to_pylist()


def first_seen(codes, n: int) -> dict[int, int]:
    """``{code: index of its first row}`` for codes in -1..n-1, without sorting all of them: the
    rows are searched in growing slices until every code that occurs has been met."""
    import numpy as np

    if not len(codes):
        return {}
    need = int((np.bincount(codes.astype(np.intp) + 1, minlength=n + 1) > 0).sum())
    found: dict[int, int] = {}
    start, size = 0, 4096
    while len(found) < need:
        part = codes[start:start + size]
        uniq, index = np.unique(part, return_index=True)
        for c, i in zip(uniq.tolist(), index.tolist()):
            if c not in found:
                found[c] = start + i
        start += size
        size *= 4
    return found


def distinct_sorted(a):
    """The distinct values of ``a``, ascending (one comparison pass when ``a`` is sorted already)."""
    import numpy as np

    if len(a) < 2:
        return a.copy()
    if (a[1:] >= a[:-1]).all():
        keep = np.empty(len(a), dtype=bool)
        keep[0] = True
        np.not_equal(a[1:], a[:-1], out=keep[1:])
        return a[keep]
    return np.unique(a)


def across(spans) -> int | None:
    """Duplicates between batches whose steps follow each other (each batch's first step may be the
    previous one's last): per shared step, the (parameter, row, dot) indices several batches have there.
    None when the batches' steps interleave (or there are none)."""
    import numpy as np

    shared: dict[int, list] = {}
    for i, (low, high, _, first, last) in enumerate(spans):
        if first is None or (i and spans[i - 1][1] > low):
            return None
        shared.setdefault(low, []).append(first)
        if high != low:
            shared.setdefault(high, []).append(last)
    return sum(sum(len(m) for m in models) - distinct(np.concatenate(models))
               for models in shared.values() if len(models) > 1)


def distinct_rows(prepared: Iterable[Any], frame_steps, all_steps, models: int) -> int:
    """Distinct (parameter, row, dot, step) among the rows of every batch up to the last frame."""
    import numpy as np

    S = max(1, len(all_steps))
    bits = np.zeros(models * S, dtype=bool) if models * S <= BITMAP_BYTES else None
    keys = []
    for prep in prepared:
        model, s = prep.arrays()
        if s is not None:
            keep = s <= frame_steps[-1]
            if not keep.all():
                model, s = model[keep], s[keep]
        key = model.astype(np.int64) * S + (np.searchsorted(all_steps, s) if s is not None else 0)
        if bits is not None:
            bits[key] = True
        else:
            keys.append(np.unique(key))
    if bits is not None:
        return int(np.count_nonzero(bits))
    return len(np.unique(np.concatenate(keys))) if keys else 0
