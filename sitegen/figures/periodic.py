"""Batches that repeat the same rows at every step, as tracers write them.

A tracer logs, at each step, one row per (experiment, run, parameter), always in the same order. A
batch of such rows is *periodic*: with ``k`` rows per step, row ``i`` has the same experiment, run
and parameter codes as row ``i + k``, and only the batch's first and last steps may hold fewer rows
(a row group or batch boundary cuts them). :func:`runs_of` checks exactly that (a few vectorised
comparisons per batch, once per table); when it holds, what :mod:`sitegen.figures.reduce` computes
row by row follows from one step's rows (the *pattern*) and the list of steps:

* a cell's value in a frame is the last row of that cell up to the frame's step; in a periodic batch
  the last *full* step of each frame's span holds a row of every cell the span touches, and later in
  the batch than all the others, so only the rows of that step (and of a cut last step after it) can
  win: :func:`candidates` picks those steps, and the figure scatters ~frames x ``k`` rows instead of
  every row;
* duplicates, counts, parameters present and (experiment, run) pairs are worked out on the pattern
  once and multiplied by the number of full steps (the cut first and last steps on their own).

Anything else (steps out of order, a step with a different number of rows, codes that do not repeat)
returns None, and the batch takes the row-by-row path. Both give the same figure, byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: batches with fewer rows than this take the row-by-row path (tests raise it to compare both paths)
MIN_ROWS = 1


@dataclass
class Runs:
    """A periodic batch: ``k`` rows per full step; each step's first row, row count and step."""

    k: int
    starts: Any
    counts: Any
    steps: Any
    anchor: int            # the first row of a full step: row i is pattern position (i - anchor) % k

    @property
    def full(self):
        return self.counts == self.k

    def rows(self, runs) -> Any:
        """The row indices of the steps ``runs`` (indices into :attr:`steps`, ascending), in order."""
        import numpy as np

        runs = np.asarray(runs, dtype=np.int64)
        return spread(self.starts[runs], self.counts[runs])

    def position(self, rows):
        """Each row's position in the pattern."""
        return (rows - self.anchor) % self.k

    def cut(self) -> list[int]:
        """The steps with fewer than ``k`` rows (at most the first and the last)."""
        import numpy as np

        return [int(j) for j in np.flatnonzero(~self.full)]

    def per_step(self, take) -> Any:
        """``take`` (bool per pattern position) -> how many rows of each step it takes."""
        import numpy as np

        out = np.where(self.full, int(np.count_nonzero(take)), 0)
        for j in self.cut():
            out[j] = int(np.count_nonzero(take[self.position(self.rows([j]))]))
        return out


def first_codes(b, k: int) -> dict:
    """The experiment, run and parameter codes of a periodic batch's first ``k`` rows, which the rest
    repeat (row ``i`` has row ``i % k``'s): kept by a reader that never spells out the others
    (``b.memo["first"]``), or the first rows of ``b``'s columns."""
    got = b.memo.get("first")
    return got if got is not None else {"e": b.e[:k], "r": b.r[:k], "p": b.p[:k]}


def runs_of(step, codes: tuple, min_rows: int | None = None) -> Runs | None:
    """The batch's :class:`Runs`, or None when its rows do not repeat step after step."""
    import numpy as np

    n = len(step) if step is not None else 0
    if n < max(1, MIN_ROWS if min_rows is None else min_rows):
        return None
    if n > 1 and not (step[1:] >= step[:-1]).all():
        return None
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(step[1:], step[:-1], out=change[1:])
    starts = np.flatnonzero(change)   # one step alone is a pattern too (a row group's last few rows)
    counts = np.diff(np.append(starts, n))
    k = int(counts.max())
    if len(counts) > 2 and (counts[1:-1] != k).any():
        return None
    for c in codes:
        if not np.array_equal(c[k:], c[:-k]):
            return None
    anchor = int(starts[int(np.argmax(counts == k))])
    return Runs(k, starts, counts, step[starts], anchor)


def spread(first, lengths) -> Any:
    """``first[i], first[i] + 1, ...`` (``lengths[i]`` of them) for each ``i``, one after the other."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.repeat(np.asarray(first, dtype=np.int64) - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(int(lengths.sum()), dtype=np.int64)


def winners(runs: Runs, steps, f) -> tuple:
    """The rows of the candidate ``steps`` (:func:`candidates`, each with its frame ``f``) that can hold a
    cell's last row in its frame, as each step's first row, first pattern position and number of rows, and
    whether each pattern position is then met at most once per frame. A frame has two candidate steps when
    the batch's last step is cut short after a full one: the cut step's positions (the pattern's first ones)
    are later, so the full step keeps only the others."""
    start, count = runs.starts[steps].copy(), runs.counts[steps].copy()
    first = (start - runs.anchor) % runs.k
    once = bool((f[1:] != f[:-1]).all())
    if not once and len(f) > 1 and f[-1] == f[-2] and (f[1:-1] != f[:-2]).all() and first[-1] == 0:
        shift = min(max(0, int(count[-1]) - int(first[-2])), int(count[-2]))
        start[-2] += shift
        first[-2] += shift
        count[-2] -= shift
        once = True
    return start, first, count, once


def candidates(f, full) -> Any:
    """Which steps (in step order, each with its frame ``f``) can hold a cell's last row in its frame:
    the last step of each frame's span, and the step before it when that last step is cut short."""
    import numpy as np

    n = len(f)
    last = np.ones(n, dtype=bool)
    last[:-1] = f[1:] != f[:-1]
    out = last.copy()
    out[:-1] |= last[1:] & ~full[1:] & (f[1:] == f[:-1])
    return out


def duplicates(runs: Runs, model, kept) -> int:
    """Rows of the steps ``kept`` (bool per step) that repeat an earlier row's cell in the same step;
    ``model``: each pattern position's cell (-1: not drawn)."""
    import numpy as np

    from sitegen.figures.counts import distinct

    def within(m):
        m = m[m >= 0]
        return len(m) - distinct(m)

    full = kept & runs.full
    total = within(model) * int(np.count_nonzero(full))
    for j in runs.cut():
        if kept[j]:
            total += within(model[runs.position(runs.rows([j]))])
    return total
