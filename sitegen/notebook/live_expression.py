"""The live state of an expression figure: what the browser already holds, so that a chunk of new rows
becomes a small message (the values of every dot at each new step, an axis when it must move) and
the warnings a build would give."""
from __future__ import annotations

import base64

from sitegen.directives import Call
from sitegen.notebook.draw import Drawn
from sitegen.notebook.keywords import SOURCE


class _LiveExpression:
    """What the browser holds of one drawn expression figure, so a chunk of new rows becomes a small
    message: the values of every dot at each new step (carried forward like the site's frames), the
    axes when they must move, and the warnings a build would give (via strips' own checks)."""

    def __init__(self, drawn: Drawn, template: str, options: dict[str, str]):
        import numpy as np

        from sitegen.directives.expression import read_options
        from sitegen.figures.template import parse as parse_template

        isl = drawn.island
        call = Call("expression", SOURCE, dict(options), {}, template, 0, 1)
        self.opts = read_options(call)
        self.template = parse_template(template)
        self.placeholders = self.template.placeholders
        self.exps = list(isl["exps"]) or ["all"]
        self.runs = [list(r) for r in isl["runs"]]
        self.ph = [dict(p) for p in isl["ph"]]
        self.names = list(dict.fromkeys(p["name"] for p in self.ph))
        self.uidx = {n: i for i, n in enumerate(self.names)}
        self.dot = {}
        k = 0
        for e, rs in enumerate(self.runs):
            for r in rs:
                self.dot[(self.exps[e], r)] = k
                k += 1
        self.per = k
        self.frames = len(isl.get("steps") or [1])
        self.last_step = int(isl["steps"][-1])
        self.notes: list[str] = []
        U = len(self.names)
        self.last = np.full((U, k), np.nan)
        self.vmin = np.full((U, k), np.nan)
        self.vmax = np.full((U, k), np.nan)
        self.count = np.zeros((U, k), dtype=np.int64)
        self.nonfinite = np.zeros(U, dtype=np.int64)
        self.bounds = self._bounds(drawn.traced.frame)
        u, d, s, v = self._locate(drawn.traced.frame)
        if len(u):
            order = np.lexsort((s, u * k + d))
            lin = (u * k + d)[order]
            is_last = np.ones(len(lin), dtype=bool)
            is_last[:-1] = lin[1:] != lin[:-1]
            self.last.reshape(-1)[lin[is_last]] = v[order][is_last]
            self._account(u, d, v)

    # -- rows -> (parameter, dot, step, value) --------------------------------------------------------
    def _locate(self, frame):
        """Rows that are dots of this figure, as index arrays; raises _Redraw for rows that would change
        its shape (a new experiment or run it would show, a step before its last)."""
        import numpy as np

        opts = self.opts
        u = _codes(frame["param"], self.uidx)
        keep = u >= 0
        if "step" not in frame.columns:
            raise _Redraw()
        steps = frame["step"].to_numpy(dtype=np.int64)
        if opts.steps:
            lo, hi = opts.steps
            if lo is not None:
                keep &= steps >= lo
            if hi is not None:
                keep &= steps <= hi
        # (experiment, run) -> dot through the categories' codes: a table has millions of rows, few pairs
        exps = _category(frame["experiment"])
        runs = _category(frame["run"])
        ec = exps.cat.codes.to_numpy(dtype=np.int64)
        rc = runs.cat.codes.to_numpy(dtype=np.int64)
        width = len(runs.cat.categories) + 1
        pair = ec * width + rc
        table = {}
        for code in np.unique(pair[keep & (ec >= 0) & (rc >= 0)]).tolist():
            e, r = str(exps.cat.categories[code // width]), str(runs.cat.categories[code % width])
            k = self.dot.get((e, r))
            if k is None and self._would_show(e, r):
                raise _Redraw()
            table[code] = -1 if k is None else k
        d = np.full(len(frame), -1, dtype=np.int64)
        if table:
            codes = np.fromiter(table.keys(), dtype=np.int64)
            dots = np.fromiter(table.values(), dtype=np.int64)
            at = np.searchsorted(codes, pair)  # table's keys come sorted from np.unique
            at = np.clip(at, 0, len(codes) - 1)
            d = np.where(codes[at] == pair, dots[at], -1)
        keep &= d >= 0
        values = frame["value"].to_numpy(dtype="float64")
        return u[keep], d[keep], steps[keep], values[keep]

    def _would_show(self, e: str, r: str) -> bool:
        opts = self.opts
        if opts.experiments and e not in opts.experiments:
            return False
        if opts.runs and r not in opts.runs:
            return False
        if e in self.exps and opts.max_runs is not None and len(self.runs[self.exps.index(e)]) >= opts.max_runs:
            return False
        return True

    def _bounds(self, frame) -> dict:
        from sitegen.figures.strips import bound_columns, placeholder_bounds

        cols = bound_columns(frame)
        return {name: placeholder_bounds(next(p for p in self.placeholders if p.name == name), self.opts, cols)
                for name in self.names}

    def _account(self, u, d, v) -> None:
        import numpy as np

        finite = np.isfinite(v)
        np.add.at(self.nonfinite, u[~finite], 1)
        uf, df, vf = u[finite], d[finite], v[finite]
        flat = uf * self.per + df
        np.fmin.at(self.vmin.reshape(-1), flat, vf)
        np.fmax.at(self.vmax.reshape(-1), flat, vf)
        np.add.at(self.count.reshape(-1), flat, 1)

    # -- a chunk of new rows -> one message ---------------------------------------------------------------
    def delta(self, frame):
        import numpy as np

        try:
            u, d, s, v = self._locate(frame)
        except _Redraw:
            return "redraw"
        if not len(u):
            return None
        if (s < self.last_step).any():
            return "redraw"  # rows for steps already drawn: carried-forward frames would change
        base = self.last_step
        new_steps = np.unique(s)
        order = np.argsort(s, kind="stable")
        u, d, s, v = u[order], d[order], s[order], v[order]
        cuts = np.searchsorted(s, new_steps, side="left").tolist() + [len(s)]
        U, K = len(self.names), self.per
        out = np.empty((len(new_steps), U, K), dtype=np.float64)
        current = self.last.copy()
        for i in range(len(new_steps)):
            a, b = cuts[i], cuts[i + 1]
            current[u[a:b], d[a:b]] = v[a:b]  # the last row of a dot at a step wins, as in the site's figure
            out[i] = current
        self.last = current
        self._account(u, d, v)
        added = len(new_steps) - (1 if new_steps[0] == self.last_step else 0)
        self.frames += added
        self.last_step = int(new_steps[-1])
        update = {"base": base, "steps": [int(x) for x in new_steps],
                  "values": base64.b64encode(out.astype("<f4").tobytes()).decode("ascii")}
        axes = self._axes()
        if axes != [(p["lo"], p["hi"]) for p in self.ph]:
            for p, (lo, hi) in zip(self.ph, axes):
                p["lo"], p["hi"] = lo, hi
            update["axes"] = [[lo, hi] for lo, hi in axes]
        badges = self._badges()
        if badges != [p["badges"] for p in self.ph]:
            for p, b in zip(self.ph, badges):
                p["badges"] = b
            update["badges"] = badges
        return update

    def _axes(self) -> list[tuple[float, float]]:
        """Each placeholder's axis as strips.build would choose it for the table so far (the log/linear
        choice stays as drawn until the figure is redrawn)."""
        import numpy as np

        from sitegen.figures import scale
        from sitegen.figures.strips import _glob_get, axis_extent

        out = []
        for p in self.ph:
            name = p["name"]
            i = self.uidx[name]
            if self.opts.axis == "auto":  # strips' rule, from the [min, max, last] kept per dot
                extent = axis_extent(np.stack([self.vmin[i], self.vmax[i], self.last[i]], axis=1), "auto",
                                     p["log"], self.per == 1)
            elif self.opts.axis == "final":
                vals = self.last[i][np.isfinite(self.last[i])]
                extent = [float(vals.min()), float(vals.max())] if vals.size else []
            else:
                lo = self.vmin[i][np.isfinite(self.vmin[i])]
                hi = self.vmax[i][np.isfinite(self.vmax[i])]
                extent = [float(lo.min()), float(hi.max())] if lo.size else []
            ph0 = next(x for x in self.placeholders if x.name == name)
            fixed = ph0.range or self.opts.ranges.get(name) or _glob_get(self.opts.ranges, name)
            if p["log"] and extent and min(extent) <= 0:
                extent = [x for x in extent if x > 0]
            out.append(tuple(scale.domain(extent, log=p["log"], fixed=fixed)) if extent else (p["lo"], p["hi"]))
        return out

    def _badges(self) -> list[list[str]]:
        """strips' own checks, fed a three-column stand-in for each parameter's dots x frames block:
        [min, max, last] gives the same spread (frozen?), the same last values (on a bound?)."""
        import numpy as np

        from sitegen.figures.strips import _checks

        out = []
        for p in self.ph:
            i = self.uidx[p["name"]]
            lo = np.where(self.count[i] >= 2, self.vmin[i], np.nan)
            hi = np.where(self.count[i] >= 2, self.vmax[i], np.nan)
            block = np.stack([lo, hi, self.last[i]], axis=1)
            out.append(_checks(p["name"], block, self.frames, int(self.nonfinite[i]), self.bounds[p["name"]],
                               True, self.per))
        return out


class _Redraw(Exception):
    pass


def _category(series):
    import pandas as pd

    return series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype(str).astype("category")


def _codes(series, index: dict[str, int]):
    """Each value's position in ``index`` (-1 when absent), computed once per distinct value."""
    import numpy as np

    series = _category(series)
    table = np.array([index.get(str(c), -1) for c in series.cat.categories] + [-1], dtype=np.int64)
    return table[series.cat.codes.to_numpy(dtype=np.int64)]
