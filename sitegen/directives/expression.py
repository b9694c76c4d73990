"""```{expression}```: a model printed as code or math, each parameter drawn in place from traced data.

    ```{expression} data/gp.parquet
    :template: data/gp.expr
    :caption: Every lengthscale of every run, one row per dataset size.
    :label: gp-kernel
    ```

The template comes from ``:template:`` or the directive's body; placeholders are ``⟦name⟧`` (see
:mod:`sitegen.figures.template`). The figure is complete as server-drawn SVG at the final step; the
runtime (``figures.js``) adds tooltips and, when the table has steps, play/scrub over training.
"""
from __future__ import annotations

from sitegen.data import LiveWaiting
from sitegen.directives import Call, Directive, register
from sitegen.errors import SiteError
from sitegen.figures import page, strips
from sitegen.directives.options import (OptionError, check_options, flag, integer, intervals, items, mapping,
                                       place)
from sitegen.figures.template import TemplateError
from sitegen.figures.template import parse as parse_template

OPTIONS = ("data", "template", "columns", "experiments", "runs", "max-runs", "steps", "frames", "animate",
           "log", "linear", "range", "bounds", "precision", "width", "experiment-title", "run-title",
           "unplaced", "axis", "step-title", "caption", "label", "expected-warnings")


def read_options(call: Call) -> strips.StripOptions:
    o = call.options
    opts = strips.StripOptions()
    if "experiments" in o:
        opts.experiments = items(o["experiments"]) or None
    if "runs" in o:
        opts.runs = items(o["runs"]) or None
    opts.max_runs = integer(call, "max-runs", None)
    if "steps" in o:
        try:
            lo, hi = strips_interval(o["steps"])
        except ValueError as exc:
            raise OptionError("steps", str(exc)) from None
        opts.steps = (lo, hi)
    opts.frames = integer(call, "frames", 200, lo=2, hi=5000)
    opts.animate = flag(call, "animate", True)
    if "log" in o:
        opts.log = items(o["log"])
    if "linear" in o:
        opts.linear = items(o["linear"])
    if "range" in o:
        opts.ranges = intervals("range", o["range"])
    if "bounds" in o:
        opts.bounds = intervals("bounds", o["bounds"])
    bits = integer(call, "precision", 8, lo=8, hi=16)
    if bits not in (8, 16):
        raise OptionError("precision", ":precision: is 8 (default, 255 positions) or 16 bits")
    opts.bits = bits
    opts.width = integer(call, "width", 96, lo=24, hi=600)
    opts.experiment_title = o.get("experiment-title") or None
    opts.run_title = o.get("run-title") or None
    opts.step_title = (o.get("step-title") or "").strip() or None
    unplaced = o.get("unplaced", "warn").strip().lower()
    if unplaced not in ("warn", "ignore"):
        raise OptionError("unplaced", ":unplaced: is warn or ignore")
    opts.warn_unplaced = unplaced == "warn"
    axis = o.get("axis", "auto").strip().lower()
    if axis not in ("auto", "all", "final"):
        raise OptionError("axis", ":axis: is auto (the last step's values on at least half the width, with some "
                                  "context from earlier steps), all (every step shown) or final (the last step; "
                                  "earlier values outside an axis are drawn at its edges)")
    opts.axis = axis
    return opts


def strips_interval(text: str) -> tuple[int | None, int | None]:
    if ":" not in text:
        raise ValueError(f":steps: '{text}' must be first:last (either may be empty), e.g. 0:5000")
    a, b = text.split(":", 1)
    try:
        return (int(a) if a.strip() else None, int(b) if b.strip() else None)
    except ValueError:
        raise ValueError(f":steps: '{text}' must be whole step numbers first:last, e.g. 0:5000") from None


def catalog_of(ctx):
    if ctx.catalog is None:
        from sitegen.data import Catalog

        ctx.catalog = Catalog.for_root(ctx.root)
    return ctx.catalog


class Expression(Directive):
    name = "expression"
    options = OPTIONS
    summary = "a model as code/math with every parameter drawn in place from traced data"

    def render(self, call: Call, ctx) -> str:
        if not check_options(call, self.options, ctx):
            return page.error_box("unknown option")
        try:
            opts = read_options(call)
            columns = mapping("columns", call.options.get("columns", ""))
        except OptionError as exc:
            ctx.error(call.option_line(exc.key), f"expression: {exc}")
            return page.error_box(str(exc))
        catalog = catalog_of(ctx)

        # the template: a file or the body, never both
        tpl_path = (call.options.get("template") or "").strip()
        body = call.body
        if tpl_path and body.strip():
            ctx.error(call.option_line("template"), "expression: give the template either as :template: or as "
                                                    "the directive's body, not both")
            return page.error_box("two templates")
        try:
            if tpl_path:
                text, shown = catalog.text(tpl_path, call.option_line("template"), ctx)
                where, first = shown, 1
                template_name = shown
            elif body.strip():
                text, where, first, template_name = body, ctx.path, call.body_line, "the directive's body"
            else:
                ctx.error(call.line, "expression: no template; write the model in the body with ⟦name⟧ "
                                     "placeholders or name a file with :template: data/model.expr")
                return page.error_box("no template")
            try:
                template = parse_template(text)
            except TemplateError as exc:
                ctx.error(first + exc.line - 1, f"{exc.message} (column {exc.col})", path=where)
                return page.error_box(exc.message)

            data = (call.options.get("data") or call.argument or "").strip()
            if not data:
                ctx.error(call.line, "expression: no data; name the traced table as the argument "
                                     "(```{expression} data/run.parquet) or with :data:")
                return page.error_box("no data")
            data_line = call.option_line("data") if "data" in call.options else call.line
            traced = catalog.traced(data, columns, data_line, ctx)
        except LiveWaiting as exc:
            return page.waiting(ctx, place(call), "Visualization", "sg-expression", exc.problem.message)
        except SiteError as exc:
            ctx.problems.append(exc.problem)
            return page.error_box(exc.problem.message)

        run = catalog.run_of(data, ctx)
        opts.partial = run is not None
        try:
            fig = strips.build(traced, template, opts, template_name=template_name)
        except Exception as exc:  # a bug of ours must still end as a located message, not a traceback
            ctx.error(call.line, f"expression: could not draw this figure ({type(exc).__name__}: {exc}); "
                                 "please report it with the data file")
            return page.error_box("internal error")
        if run is not None and not fig.ok:  # drawn from a run still training: the rest may come later
            first = next(i.message for i in fig.issues if i.level == "error")
            return page.waiting(ctx, place(call), "Visualization", "sg-expression",
                                f"expression: not drawable yet from the running experiment's rows: {first}")
        # A figure drawn to show what the checks catch says so, so a reader of the build's output knows
        # the warning is the point, not an accident: "...; expected here (content/post.md:12): why".
        why = " ".join((call.options.get("expected-warnings") or "").split())
        expected = f"; expected here ({ctx.path}:{call.option_line('expected-warnings')}): {why}" if why else ""
        for issue in fig.issues:
            if issue.template_line is not None:
                path, line = where, first + issue.template_line - 1
            else:
                path, line = ctx.path, call.line
            if issue.level == "error":
                ctx.error(line, f"expression: {issue.message}", path=path)
            else:
                ctx.warn(line, f"expression: {issue.message}{expected}", path=path)
        if not fig.ok:
            return page.error_box("see the build errors")

        island = dict(fig.island)
        if fig.frames_blob is not None:
            island["data"] = ctx.add_file("frames", fig.frames_blob, ".bin")
        ctx.use_script("figures.js")
        ctx.meta["has_figures"] = True
        css = "sg-expression" + (" sg-animated" if fig.frames_blob is not None else "")
        note = page.run_note(run, (fig.island.get("steps") or [None])[-1])
        return page.figure(ctx, place(call), "Visualization", css, note + fig.html, island)


register(Expression())
