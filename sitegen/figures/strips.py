"""Expression figures: a template whose placeholders become tiny strip plots of traced parameters.

:func:`build` is a pure function of a :class:`~sitegen.data.Traced` table, a parsed
:class:`~sitegen.figures.template.Template` and :class:`StripOptions`; it returns the HTML of the
expression (final training step, complete without JavaScript), the JSON the browser runtime reads,
the compact animation data (see :mod:`sitegen.figures.encode`) and the problems it found. The
directive (``sitegen.directives.expression``) only wires it to the page.

Each placeholder is one inline ``<svg>``: one row per experiment (top to bottom), one circle per
run. The runtime animates by moving those circles (their ``cx``), never rebuilding them.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sitegen.errors import closest
from sitegen.figures import encode, numbers, reduce, scale
from sitegen.figures.axes import CONTEXT, FINAL_SHARE, axis_extent  # noqa: F401  (strips.axis_extent, as before)
from sitegen.figures.svg import PALETTE, attrs, esc, num
from sitegen.figures.template import CLOSE, OPEN, Placeholder, Template, Text, quote_name

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.data import Traced

#: above this many values (parameters x experiments x runs x frames) the frame count is reduced
MAX_CELLS = 12_000_000
#: above this many dots a figure is heavy to load; the author is told how to thin it
MANY_DOTS = 40_000
#: relative distance from a bound within which a value counts as sitting on it
PIN_TOLERANCE = 1e-3

ROW_HEIGHT = 8
DOT_RADIUS = 2.3
PAD = 3
#: the band under an inline plot's rows that prints its scale (8 px text), and a character's width there
TICK_BAND = 10
TICK_CHAR_PX = 4.4


@dataclass
class StripOptions:
    experiments: list[str] | None = None   # which rows, in this order
    runs: list[str] | None = None          # which dots
    max_runs: int | None = None            # at most this many dots per row (the first ones)
    steps: tuple[int | None, int | None] | None = None
    frames: int = 200                      # animation frames (downsampled evenly over the steps)
    animate: bool = True
    log: list[str] = field(default_factory=list)     # names or globs; "auto" = positive and spanning decades
    linear: list[str] = field(default_factory=list)
    ranges: dict[str, tuple] = field(default_factory=dict)
    bounds: dict[str, tuple] = field(default_factory=dict)
    bits: int = 8
    width: int = 96
    experiment_title: str | None = None
    run_title: str | None = None
    step_title: str | None = None          # the word for a training step ("round", "epoch"); "step"
    warn_unplaced: bool = True
    axis: str = "auto"                     # "auto": final values + some context (axis_extent); "all"; "final"
    partial: bool = False                  # a run still writing the table: named rows/dots may come later


@dataclass
class Issue:
    level: str                    # "error" or "warning"
    message: str
    template_line: int | None = None   # a line of the template, else the directive's line


@dataclass
class StripFigure:
    html: str = ""
    island: dict = field(default_factory=dict)
    frames_blob: bytes | None = None
    issues: list[Issue] = field(default_factory=list)
    dots: int = 0
    frames: int = 0

    @property
    def ok(self) -> bool:
        return not any(i.level == "error" for i in self.issues)


def _match(name: str, patterns) -> bool:
    return any(p == name or fnmatch.fnmatchcase(name, p) for p in patterns)


def _labels_list(options: list[str] | None):
    return [str(x) for x in options] if options else None


def build(traced: "Traced", template: Template, opts: StripOptions | None = None, *,
          template_name: str = "the template") -> StripFigure:
    import numpy as np

    opts = opts or StripOptions()
    fig = StripFigure()
    issues = fig.issues
    src = traced.source

    # -- which rows and dots -----------------------------------------------------------
    exps = list(traced.experiments)
    if opts.experiments:
        chosen = []
        for e in opts.experiments:
            if e not in exps and opts.partial:
                continue  # not trained yet
            if e not in exps:
                near = closest(e, exps)
                issues.append(Issue("error", f"experiment '{e}' is not in {src}"
                                    + (f"; did you mean {', '.join(repr(n) for n in near)}?" if near else "")
                                    + f" (have: {', '.join(exps[:12])}{', ...' if len(exps) > 12 else ''})"))
            else:
                chosen.append(e)
        exps = chosen
    runs_all = list(traced.runs)
    if opts.runs:
        unknown = [] if opts.partial else [r for r in opts.runs if r not in runs_all]
        for r in unknown:
            near = closest(r, runs_all)
            issues.append(Issue("error", f"run '{r}' is not in {src}"
                                + (f"; did you mean {', '.join(repr(n) for n in near)}?" if near else "")))
        runs_all = [r for r in opts.runs if r in runs_all]
    if not fig.ok:
        return fig
    # -- the rows chosen, read in passes over the table's batches (sitegen.figures.reduce) -------------
    placeholders = template.placeholders
    placed = list(dict.fromkeys(ph.name for ph in placeholders))
    exp_code = {name: i for i, name in enumerate(traced.experiments)}
    run_code = {name: i for i, name in enumerate(traced.runs)}
    param_code = {name: i for i, name in enumerate(traced.params)}
    n_e, n_r, n_p = len(traced.experiments), len(traced.runs), len(traced.params)
    rows = reduce.Rows()
    if len(exps) != n_e:
        rows.e_ok = reduce.lut(n_e, {exp_code[e]: 1 for e in exps}) >= 0
    if len(runs_all) != n_r:
        rows.r_ok = reduce.lut(n_r, {run_code[r]: 1 for r in runs_all}) >= 0
    if traced.has_step and opts.steps:
        rows.lo, rows.hi = opts.steps
    placed_lut = reduce.lut(n_p, {param_code[n]: i for i, n in enumerate(placed) if n in param_code})
    batches = reduce.batches_of(traced)
    picked = reduce.select((traced.outline or batches)(), rows, n_e, n_r, n_p, placed_lut)
    if picked.rows == 0:
        issues.append(Issue("error", f"{src}: no rows left after choosing experiments, runs and steps; "
                                     "widen the selection"))
        return fig

    # -- placeholders against the data --------------------------------------------------
    params_present = [traced.params[c] if c >= 0 else "nan" for c in picked.present]
    present = set(params_present)
    if not placeholders:
        issues.append(Issue("error", f"{template_name} has no placeholders; write {OPEN}name{CLOSE} where a "
                                     "parameter's plot should go"))
        return fig
    for ph in placeholders:
        if ph.name not in present:
            near = closest(ph.name, params_present)
            where = "in the chosen experiments/runs of " if ph.name in traced.params else "in "
            issues.append(Issue("error", f"placeholder {OPEN}{ph.name}{CLOSE} has no data {where}{src}"
                                + (f"; did you mean {', '.join(OPEN + quote_name(n) + CLOSE for n in near)}?"
                                   if near else f" (parameters: {', '.join(params_present[:8])}"
                                                f"{', ...' if len(params_present) > 8 else ''})"),
                                ph.line))
    if not fig.ok:
        return fig
    unplaced = [p for p in params_present if p not in set(placed)]
    if unplaced and opts.warn_unplaced:
        shown = ", ".join(repr(p) for p in unplaced[:8]) + (f" and {len(unplaced) - 8} more" if len(unplaced) > 8 else "")
        issues.append(Issue("warning", f"{len(unplaced)} parameter(s) in {src} never placed in {template_name}: "
                                       f"{shown} (place them or pass `:unplaced: ignore`)"))

    # -- rows, dots, frames ---------------------------------------------------------------
    pairs = picked.pairs
    seen_exps = {traced.experiments[i] for i in np.flatnonzero(pairs.any(axis=1))}
    seen_runs = {traced.runs[i] for i in np.flatnonzero(pairs.any(axis=0))}
    exps = [e for e in exps if e in seen_exps]
    runs_order = [r for r in runs_all if r in seen_runs]
    run_pos = {r: i for i, r in enumerate(runs_order)}
    exp_pos = {e: i for i, e in enumerate(exps)}
    by_position = sorted(run_pos, key=run_pos.__getitem__)
    runs_per_exp: list[list[str]] = [[] for _ in exps]
    for e, i in exp_pos.items():
        runs_per_exp[i] = [r for r in by_position if pairs[exp_code[e], run_code[r]]]
    for i, rs in enumerate(runs_per_exp):
        if opts.max_runs is not None and len(rs) > opts.max_runs:
            del rs[opts.max_runs:]
    E, R, P = len(exps), len(runs_order), len(placed)

    if traced.has_step:
        all_steps = picked.steps
        if opts.animate and len(all_steps) > 1:
            frames = max(2, int(opts.frames))
            budget = max(2, MAX_CELLS // max(1, P * E * R))
            if budget < min(frames, len(all_steps)):
                issues.append(Issue("warning", f"{src}: {P} parameters x {E} experiments x {R} runs is large; "
                                               f"the animation keeps {budget} frames instead of {frames}"))
                frames = budget
            if len(all_steps) > frames:
                idx = np.unique(np.rint(np.linspace(0, len(all_steps) - 1, frames)).astype(int))
                frame_steps = all_steps[idx]
            else:
                frame_steps = all_steps
        else:
            frame_steps = all_steps[-1:]
    else:
        all_steps = np.zeros(0, dtype=np.int64)
        frame_steps = np.array([0])
    F = len(frame_steps)

    # dense values: [param, experiment, run, frame]; the latest value at or before each frame's step
    bound_names = reduce.bound_names(traced)
    red = reduce.reduce(batches, rows, placed_lut,
                        reduce.lut(n_e, {exp_code[e]: i for e, i in exp_pos.items()}),
                        reduce.lut(n_r, {run_code[r]: i for r, i in run_pos.items()}),
                        (P, E, R), frame_steps, all_steps, bound_names)
    if red.duplicates:
        issues.append(Issue("warning", f"{src}: {red.duplicates} duplicate row(s) (same experiment, run, "
                                       "parameter and step); the last one is drawn"))
    dense = red.dense.reshape(P, E, R, F)
    has = red.has.reshape(P, E, R, F)
    if F > 1 and not has.all():  # carry each value forward to frames that recorded nothing
        idx = np.where(has, np.arange(F), 0)
        np.maximum.accumulate(idx, axis=3, out=idx)
        dense = np.take_along_axis(dense, idx, axis=3)
        seen = np.maximum.accumulate(has, axis=3)
        dense = np.where(seen, dense, np.nan)
        has = seen

    # -- per parameter: axis and what a careful reader would want to know -------------------
    nonfinite = {placed[i]: int(n) for i, n in enumerate(red.nonfinite) if n}
    bound_cols = {c: {placed[i]: float(v) for i, v in enumerate(red.bounds[c]) if not np.isnan(v)}
                  for c in bound_names}
    dot_mask = np.zeros((E, R), dtype=bool)  # which (experiment, run) pairs are dots
    for e, rs in enumerate(runs_per_exp):
        for r in rs:
            dot_mask[e, run_pos[r]] = True
    n_dots_param = int(dot_mask.sum())

    # placeholders with the same axis=GROUP share one axis, chosen from all their values together
    group_of = {}
    for ph in placeholders:
        group_of.setdefault(ph.name, ph.axis or ph.name)
    members: dict[str, list[int]] = {}
    for p, name in enumerate(placed):
        members.setdefault(group_of[name], []).append(p)
    shared: dict[str, tuple] = {}
    scalar = n_dots_param == 1

    def axis(p: int, name: str) -> dict:
        settings = [ph for ph in placeholders if ph.name == name]
        ph0 = settings[0]
        block = dense[p][dot_mask]  # dots x frames
        group = group_of[name]
        if group not in shared:
            first = next(ph for ph in placeholders if group_of[ph.name] == group)
            pool = np.concatenate([dense[q][dot_mask] for q in members[group]])
            finite = pool[np.isfinite(pool)]
            log = _wants_log(first.name, first, opts, finite)
            if log and finite.size and (finite <= 0).any():
                issues.append(Issue("warning", f"parameter '{first.name}' has values <= 0, so it cannot use a log "
                                               "axis; drawn on a linear axis", first.line))
                log = False
            fixed = next((r for q in members[group] for r in [_fixed_range(placed[q], placeholders, opts)] if r), None)
            extent = axis_extent(pool, opts.axis, log, scalar)
            lo, hi = scale.domain(extent, log=log, fixed=fixed)
            if log and lo <= 0:
                issues.append(Issue("warning", f"parameter '{first.name}': a log axis needs a positive range; "
                                               "drawn on a linear axis", first.line))
                log = False
                lo, hi = scale.domain(axis_extent(pool, opts.axis, False, scalar), log=False, fixed=fixed)
            shared[group] = (log, lo, hi)
        log, lo, hi = shared[group]
        bounds = placeholder_bounds(ph0, opts, bound_cols)
        badges = _checks(name, block, F, nonfinite.get(name, 0), bounds, traced.has_step, n_dots_param)
        for b in badges:
            issues.append(Issue("warning", f"parameter '{name}' {b}", ph0.line))
        return {"log": log, "lo": lo, "hi": hi, "badges": badges, "p": p}

    dots = len(placeholders) * n_dots_param
    fig.dots, fig.frames = dots, F

    # -- positions of every dot at every frame (fractions of its axis), gzipped while the next are worked out --
    stream = encode.Stream(dots, F, opts.bits, encode.level_for(dots * F, opts.partial),
                           thread=dots * F >= 200_000) if F > 1 else None
    axes: dict[str, dict] = {}   # each parameter's, in the order of ``placed`` (their first placeholders)
    fr = np.empty((dots, F))
    final_vals = np.empty(dots)
    final_has = np.empty(dots, dtype=bool)
    k = 0
    for ph in placeholders:
        if ph.name not in axes:
            axes[ph.name] = axis(placed.index(ph.name), ph.name)
        ax = axes[ph.name]
        block = dense[ax["p"]][dot_mask]
        sc = scale.Scale(ax["lo"], ax["hi"], 0.0, 1.0, ax["log"])
        with np.errstate(divide="ignore", invalid="ignore"):
            if ax["log"]:
                a, b = math.log10(ax["lo"]), math.log10(ax["hi"])
                t = (np.log10(np.where(block > 0, block, np.nan)) - a) / (b - a)
            else:
                t = (block - sc.lo) / (sc.hi - sc.lo)
        t = np.where(np.isfinite(block), t, np.nan)
        fr[k:k + n_dots_param] = t
        if stream is not None:
            stream.feed(t)
        final_vals[k:k + n_dots_param] = block[:, -1]
        final_has[k:k + n_dots_param] = has[ax["p"]][dot_mask][:, -1]
        k += n_dots_param
    if dots > MANY_DOTS:
        issues.append(Issue("warning", f"this figure draws {dots:,} dots, which makes a heavy page; "
                                       "show fewer runs (`:max-runs:`) or experiments"))

    width = max(24, int(opts.width))
    exp_title = opts.experiment_title or "experiment"
    run_title = opts.run_title or "run"
    single_exp = E == 1 and exps == ["all"]
    html = _render_html(template, axes, exps, runs_per_exp, fr, final_vals, width, exp_title, run_title, single_exp,
                        scalar)
    step_text = ""
    if traced.has_step:
        last_step = int(frame_steps[-1])
        step_text = (f'<p class="sg-step">Shown at {esc(opts.step_title or "step")} {last_step:,}'
                     f'{", the end of training" if last_step == int(all_steps[-1]) else ""}.</p>')
    fig.html = step_text + html + _render_key(exps, runs_per_exp, exp_title, run_title, single_exp)

    fig.island = {
        "v": 1,
        "kind": "expression",
        "exps": [] if single_exp else exps,
        "expTitle": exp_title,
        "runTitle": run_title,
        **({"stepTitle": opts.step_title} if opts.step_title else {}),
        "runs": runs_per_exp,
        "geom": {"x0": PAD, "w": width},
        "bar": scalar,
        "ph": [{"name": ph.name, "label": ph.shown, "log": axes[ph.name]["log"],
                "lo": axes[ph.name]["lo"], "hi": axes[ph.name]["hi"],
                "badges": axes[ph.name]["badges"]} for ph in placeholders],
        "final": [_json_value(v, h) for v, h in zip(final_vals.tolist(), final_has.tolist())],
    }
    if traced.has_step:
        fig.island["steps"] = [int(s) for s in frame_steps]
    if stream is not None:
        fig.frames_blob = stream.result()
        fig.island["bits"] = opts.bits
    return fig


def _fixed_range(name: str, placeholders, opts: StripOptions):
    ph = next(ph for ph in placeholders if ph.name == name)
    return ph.range or opts.ranges.get(name) or _glob_get(opts.ranges, name)


def _json_value(v: float, recorded: bool):
    """A value for the runtime's tooltips: a number, or a word for what is not one (null = no data)."""
    if not recorded:
        return None
    if math.isfinite(v):
        return float(f"{v:.7g}")
    return "NaN" if math.isnan(v) else ("∞" if v > 0 else "−∞")


def bound_columns(frame) -> dict:
    """``{"lower": {param: value}, "upper": {...}}`` from a table's optional bound columns."""
    return {c: frame.groupby("param", sort=False, observed=True)[c].first().to_dict()
            for c in ("lower", "upper") if c in frame.columns}


def placeholder_bounds(ph, opts: StripOptions, bound_cols: dict) -> tuple | None:
    """A parameter's constraint: the placeholder's ``bounds=``, else ``:bounds:``, else the table's
    lower/upper columns (non-finite ends dropped); None when it has none."""
    import numpy as np

    name = ph.name
    bounds = ph.bounds or opts.bounds.get(name) or _glob_get(opts.bounds, name)
    if bounds is None and bound_cols:
        lo = bound_cols.get("lower", {}).get(name)
        hi = bound_cols.get("upper", {}).get(name)
        lo = float(lo) if lo is not None and np.isfinite(lo) else None
        hi = float(hi) if hi is not None and np.isfinite(hi) else None
        bounds = (lo, hi) if (lo is not None or hi is not None) else None
    return bounds


def _glob_get(mapping: dict, name: str):
    for pattern, v in mapping.items():
        if fnmatch.fnmatchcase(name, pattern):
            return v
    return None


def _wants_log(name: str, ph: Placeholder, opts: StripOptions, finite) -> bool:
    if ph.log is not None:
        return ph.log
    if _match(name, opts.linear):
        return False
    if _match(name, [p for p in opts.log if p != "auto"]):
        return True
    if "auto" in opts.log and finite.size and (finite > 0).all():
        return float(finite.max()) / float(finite.min()) >= 100
    return False


def _checks(name: str, block, F: int, nonfinite: int, bounds, has_step: bool, n: int) -> list[str]:
    """Reasons to look twice at a parameter, as short phrases that follow its name."""
    import numpy as np

    out = []
    if nonfinite:
        out.append(f"has {nonfinite} NaN or infinite value(s)")
    if has_step and F > 1 and n:
        fin = np.isfinite(block)
        counted = fin.sum(axis=1) >= 2
        spread = np.max(np.where(fin, block, -np.inf), axis=1) - np.min(np.where(fin, block, np.inf), axis=1)
        if counted.any():
            frozen = counted & (spread == 0)
            nf, nc = int(frozen.sum()), int(counted.sum())
            if nf and nf == nc:
                out.append(f"never changes during training in any of its {nc} run(s) (frozen or unused?)")
            elif nf:
                out.append(f"never changes during training in {nf} of {nc} runs (frozen there?)")
    elif not has_step and n > 1:
        finite = block[np.isfinite(block)]
        if finite.size == n and float(finite.min()) == float(finite.max()):
            out.append(f"has the same value ({scale.format_number(float(finite[0]))}) in all {n} runs "
                       "(never trained?)")
    if bounds:
        final = block[:, -1]
        final = final[np.isfinite(final)]
        for side, b in (("lower", bounds[0]), ("upper", bounds[1])):
            if b is None or not final.size:
                continue
            at = int((np.abs(final - b) <= PIN_TOLERANCE * abs(b) + 1e-12).sum())
            if at:
                out.append(f"ends at its {side} bound {scale.format_number(b)} in {at} of {final.size} runs "
                           "(held by the constraint?)")
    return out


def axis_ends(lo: float, hi: float, log: bool, width: int) -> tuple[str, str]:
    """The two labels under an inline plot: its axis ends, in one notation, short enough to fit."""
    for digits in (3, 2, 1):
        a, b = numbers.format_ticks([lo, hi], log, digits)
        if (len(a) + len(b)) * TICK_CHAR_PX + 6 <= width + 2 * PAD or digits == 1:
            return a, b
    return a, b  # pragma: no cover


def _strip_svg(ph: Placeholder, ax: dict, exps, runs_per_exp, t_final, final_vals, width: int,
               exp_title: str, run_title: str, single_exp: bool, scalar: bool = False) -> str:
    E = len(exps)
    w = width + 2 * PAD
    rows_h = E * ROW_HEIGHT + 2
    h = rows_h + TICK_BAND
    lo, hi = ax["lo"], ax["hi"]
    kind = "log scale" if ax["log"] else "linear scale"
    finite = [v for v in final_vals if math.isfinite(v)]
    summary = (f"{ph.shown}: {len(finite)} value(s) from {scale.format_number(min(finite))} to "
               f"{scale.format_number(max(finite))}" if finite else f"{ph.shown}: no finite values")
    if scalar and finite:
        summary = f"{ph.shown}: {scale.format_number(finite[0])}"
    summary += f"; axis {scale.format_number(lo)} to {scale.format_number(hi)}, {kind}"
    if ax["badges"]:
        summary += "; warning: " + "; ".join(ax["badges"])
    parts = [f'<svg {attrs(class_="sg-strip", width=w, height=h, viewBox=f"0 0 {w} {h}", role="img", aria_label=summary)}>',
             f"<title>{esc(summary)}</title>",
             f'<rect {attrs(class_="sg-bg", x=0, y=0, width=w, height=rows_h, rx=2, fill="#888888", fill_opacity="0.13")}/>']
    if not ax["log"] and lo < 0 < hi:
        x0 = num(PAD + (0 - lo) / (hi - lo) * width)
        parts.append(f'<line {attrs(class_="sg-zero", x1=x0, x2=x0, y1=0, y2=rows_h, stroke="#888888", stroke_width=1)}/>')
    # the scale: the axis ends, marked and printed under the rows
    a, b = axis_ends(lo, hi, ax["log"], width)
    ty = num(rows_h + TICK_BAND - 1.5)
    parts.append(f'<g {attrs(class_="sg-scale", fill="currentColor", font_size=8, font_family="system-ui, sans-serif")}>'
                 f'<path {attrs(d=f"M{PAD} {rows_h}v2M{PAD + width} {rows_h}v2", stroke="currentColor", stroke_width=0.8)}/>'
                 f'<text {attrs(class_="sg-lo", x=0, y=ty)}>{esc(a)}</text>'
                 f'<text {attrs(class_="sg-hi", x=w, y=ty, text_anchor="end")}>{esc(b)}</text></g>')
    k = 0
    for e, rs in enumerate(runs_per_exp):
        cy = 1 + e * ROW_HEIGHT + ROW_HEIGHT / 2
        colour = PALETTE[e % len(PALETTE)]
        parts.append(f'<g {attrs(class_=f"sg-e{e % len(PALETTE)}", fill=colour, fill_opacity="0.75")}>')
        for _ in rs:
            t = t_final[k]
            k += 1
            if math.isfinite(t):
                cx = PAD + min(max(t, 0.0), 1.0) * width
                if scalar:  # one value: a bar from the axis origin, and its number
                    o = _origin(ax, width)
                    parts.append(f'<rect {attrs(class_="sg-bar", x=num(min(o, cx)), y=num(cy - 2.5), width=num(abs(cx - o)), height=5, fill_opacity="0.4")}/>')
                parts.append(f'<circle cx="{num(cx)}" cy="{num(cy)}" r="{DOT_RADIUS}"/>')
            else:
                parts.append(f'<circle cx="{PAD}" cy="{num(cy)}" r="{DOT_RADIUS}" visibility="hidden"/>')
        parts.append("</g>")
    if scalar:
        value = scale.format_number(finite[0], 3) if finite else "no value"
        parts.append(f'<text {attrs(class_="sg-val", x=num(w / 2), y=ty, text_anchor="middle", fill="currentColor", font_size=8, font_weight=600, font_family="system-ui, sans-serif")}>{esc(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _origin(ax: dict, width: int) -> float:
    """Where a bar starts: 0 on a linear axis holding it, else the axis end nearer to 0."""
    lo, hi = ax["lo"], ax["hi"]
    if not ax["log"] and lo <= 0 <= hi:
        return PAD + (0 - lo) / (hi - lo) * width
    return PAD + width if (not ax["log"] and hi < 0) else PAD


def _render_html(template: Template, axes, exps, runs_per_exp, fr, final_vals, width, exp_title, run_title,
                 single_exp, scalar: bool = False) -> str:
    n_per = sum(len(rs) for rs in runs_per_exp)
    lines = []
    k = 0
    for line in template.lines:
        cls = f"sg-line sg-in{min(line.indent, 40)}" if line.indent else "sg-line"
        out = [f'<span class="{cls}">']
        for part in line.parts:
            if isinstance(part, Text):
                text = esc(part.text)
                out.append(f'<span class="sg-comment">{text}</span>' if part.comment else text)
                continue
            ax = axes[part.name]
            svg = _strip_svg(part, ax, exps, runs_per_exp, fr[k:k + n_per, -1], final_vals[k:k + n_per], width,
                             exp_title, run_title, single_exp, scalar)
            k += n_per
            badge = ""
            if ax["badges"]:
                reason = "; ".join(ax["badges"])
                badge = (f'<span class="sg-badge" title="{esc(part.shown + " " + reason)}">'
                         f'<span aria-hidden="true">!</span>'
                         f'<span class="sg-sr"> warning: {esc(part.shown)} {esc(reason)}</span></span>')
            label = f'<span class="sg-ph-label">{esc(part.label)}</span>' if part.label else ""
            out.append(f'<span class="sg-ph">{label}{svg}{badge}</span>')
        out.append("\n</span>")
        lines.append("".join(out))
    return '<pre class="sg-expr">' + "".join(lines) + "</pre>"


def _render_key(exps, runs_per_exp, exp_title: str, run_title: str, single_exp: bool) -> str:
    """What the rows and dots mean, in words (and the row colours), under the expression."""
    counts = sorted({len(rs) for rs in runs_per_exp})
    runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    dots = f'<span class="sg-key-dots">Each dot is one {esc(run_title)} ({runs} {"in all" if single_exp else "per row"}).</span>'
    if single_exp:
        return f'<p class="sg-key">{dots}</p>'
    items = []
    for e, name in enumerate(exps):
        colour = PALETTE[e % len(PALETTE)]
        items.append(f'<span class="sg-key-item"><svg {attrs(class_="sg-swatch", width=10, height=10, viewBox="0 0 10 10", aria_hidden="true")}>'
                     f'<circle {attrs(class_=f"sg-e{e % len(PALETTE)}", cx=5, cy=5, r=4, fill=colour)}/></svg>'
                     f"{esc(name)}</span>")
    return f'<p class="sg-key">Rows, top to bottom, by {esc(exp_title)}: {" ".join(items)} {dots}</p>'
