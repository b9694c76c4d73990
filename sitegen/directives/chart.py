"""```{chart}```: line charts from a table, with summary bands computed over runs.

    ```{chart} data/scaling.parquet
    :x: n_train
    :y: test_loss
    :series: model
    :run: seed
    :band: 10:90
    :center: geomean
    :logx:
    :logy:
    :caption: Held-out loss against training-set size.
    ```

At each x, the line is the centre (mean, geometric mean or median) of y over the rows there (the
runs) and the band spans the given percentiles. Training trajectories are the same with
``:x: step``.
"""
from __future__ import annotations

from sitegen.directives import Call, Directive, register
from sitegen.data import LiveWaiting
from sitegen.directives.expression import catalog_of
from sitegen.errors import SiteError, closest
from sitegen.figures import lines, page
from sitegen.directives.options import OptionError, check_options, flag, integer, items, place
from sitegen.figures.template import parse_interval

OPTIONS = ("data", "x", "y", "series", "run", "where", "center", "band", "each-run", "logx", "logy",
           "xlabel", "ylabel", "xlim", "ylim", "series-title", "series-order", "markers", "height",
           "caption", "label")


def apply_where(df, text: str, key: str = "where"):
    """Keep the rows matching ``col=v1,v2; col2=v`` (values compared as the figure shows them)."""
    from sitegen.data import _as_labels

    for clause in [c.strip() for c in text.split(";") if c.strip()]:
        if "=" not in clause:
            raise OptionError(key, f":{key}: expects column=value (several separated by ';'), got {clause!r}")
        col, _, vals = clause.partition("=")
        col = col.strip()
        wanted = [v.strip() for v in vals.split(",") if v.strip()]
        if col not in df.columns:
            near = closest(col, [str(c) for c in df.columns])
            raise OptionError(key, f":{key}: no column '{col}'" + (f"; did you mean '{near[0]}'?" if near else "")
                                   + f" (have: {', '.join(map(str, list(df.columns)[:12]))})")
        labels = _as_labels(df[col])
        have = list(dict.fromkeys(labels))
        missing = [v for v in wanted if v not in set(have)]
        if missing:
            near = closest(missing[0], have)
            raise OptionError(key, f":{key}: column '{col}' has no value {missing[0]!r}"
                                   + (f"; did you mean {near[0]!r}?" if near else
                                      f" (values: {', '.join(have[:10])}{', ...' if len(have) > 10 else ''})"))
        df = df[labels.isin(wanted).to_numpy()]
    return df


def scalar_tag(df, name: str):
    """``:y: loss`` on a long table (a log read by :mod:`sitegen.logs`, a traced table): when
    ``name`` is not a column but a ``param`` value, keep that param's rows and draw ``value``.
    Returns ``(rows, y column, y label or None)``."""
    if not name or name in df.columns or "param" not in df.columns or "value" not in df.columns:
        return df, name, None
    from sitegen.data import _as_labels

    labels = _as_labels(df["param"])
    match = (labels == name).to_numpy()
    if not match.any():
        tags = list(dict.fromkeys(labels))
        near = closest(name, tags)
        raise OptionError("y", f":y: no column '{name}' and no param (tag) of that name"
                               + (f"; did you mean '{near[0]}'?" if near else "")
                               + f" (tags: {', '.join(tags[:12])}{', ...' if len(tags) > 12 else ''})")
    return df[match], "value", name


def _column(df, name: str, key: str, numeric: bool = True) -> str:
    import pandas as pd

    if name not in df.columns:
        near = closest(name, [str(c) for c in df.columns])
        raise OptionError(key, f":{key}: no column '{name}'" + (f"; did you mean '{near[0]}'?" if near else "")
                               + f" (have: {', '.join(map(str, list(df.columns)[:12]))})")
    if numeric and not (pd.api.types.is_numeric_dtype(df[name]) and not pd.api.types.is_bool_dtype(df[name])):
        converted = pd.to_numeric(df[name], errors="coerce")
        if converted.isna().all() or (converted.isna() & df[name].notna()).any():
            raise OptionError(key, f":{key}: column '{name}' must hold numbers (it has dtype {df[name].dtype})")
    return name


class Chart(Directive):
    name = "chart"
    options = OPTIONS
    summary = "line charts from a table: series, log axes, bands over runs, legend"

    def render(self, call: Call, ctx) -> str:
        import pandas as pd

        if not check_options(call, self.options, ctx):
            return page.error_box("unknown option")
        o = call.options
        data = (o.get("data") or call.argument or "").strip()
        if not data:
            ctx.error(call.line, "chart: no data; name the table as the argument (```{chart} data/x.parquet) "
                                 "or with :data:")
            return page.error_box("no data")
        catalog = catalog_of(ctx)
        try:
            df = catalog.table(data, call.option_line("data") if "data" in o else call.line, ctx)
        except LiveWaiting as exc:
            return page.waiting(ctx, place(call), "Chart", "sg-chart", exc.problem.message)
        except SiteError as exc:
            ctx.problems.append(exc.problem)
            return page.error_box(exc.problem.message)
        live_run = catalog.run_of(data, ctx)
        try:
            if "where" in o:
                df = apply_where(df, o["where"])
                if len(df) == 0:
                    raise OptionError("where", ":where: leaves no rows")
            y_name = (o.get("y") or ("value" if "value" in df.columns else "")).strip()
            df, y_name, y_label = scalar_tag(df, y_name)
            if not y_name:
                raise OptionError("y", ":y: names the column for the vertical axis (e.g. :y: test_loss)")
            y = _column(df, y_name, "y")
            x_name = (o.get("x") or ("step" if "step" in df.columns else "")).strip()
            if not x_name:
                raise OptionError("x", ":x: names the column for the horizontal axis (e.g. :x: step)")
            x = _column(df, x_name, "x")
            series = _column(df, o["series"].strip(), "series", numeric=False) if o.get("series") else None
            run = _column(df, o["run"].strip(), "run", numeric=False) if o.get("run") else None
            logx, logy = flag(call, "logx"), flag(call, "logy")
            centre = (o.get("center") or ("geomean" if logy else "mean")).strip()
            if centre not in lines.CENTRES:
                near = closest(centre, lines.CENTRES)
                raise OptionError("center", f":center: is one of {', '.join(lines.CENTRES)}"
                                            + (f" (did you mean '{near[0]}'?)" if near else ""))
            band_text = (o.get("band") or "10:90").strip()
            band = _band(band_text)
            spec = lines.ChartSpec(
                logx=logx, logy=logy,
                xlabel=o.get("xlabel", x), ylabel=o.get("ylabel", y_label or y),
                xlim=_lim(o, "xlim"), ylim=_lim(o, "ylim"),
                height=integer(call, "height", 320, lo=120, hi=1200),
                markers=flag(call, "markers"),
                series_title=o.get("series-title", series or ""),
            )
            each = flag(call, "each-run")
            if each and not run:
                raise OptionError("each-run", ":each-run: needs :run: (the column that tells runs apart)")
            frame = df.copy()
            frame[x] = pd.to_numeric(frame[x], errors="coerce")
            frame[y] = pd.to_numeric(frame[y], errors="coerce")
            series_list, notes = lines.summarize(frame, x, y, series, run, centre, band, each,
                                                 items(o.get("series-order", "")) or None)
        except OptionError as exc:
            if live_run is not None:  # drawn from a run still training: the rows it needs may come later
                return page.waiting(ctx, place(call), "Chart", "sg-chart", f"chart: not drawable yet from the running "
                                                                    f"experiment's rows: {exc}")
            ctx.error(call.option_line(exc.key), f"chart: {exc}")
            return page.error_box(str(exc))
        for note in notes:
            ctx.warn(call.line, f"chart: {data}: {note}")
        if (not series_list or not any(s.x for s in series_list)) and live_run is not None:
            return page.waiting(ctx, place(call), "Chart", "sg-chart", f"chart: {data}: no rows to draw yet")
        if not series_list or not any(s.x for s in series_list):
            ctx.error(call.line, f"chart: {data}: nothing to draw (no rows with finite x and y)")
            return page.error_box("nothing to draw")
        uid = ctx.unique_id("sg-chart")
        try:
            body, island, notes = lines.render(series_list, spec, uid)
        except Exception as exc:  # our bug must not become a traceback for the author
            ctx.error(call.line, f"chart: could not draw this chart ({type(exc).__name__}: {exc})")
            return page.error_box("internal error")
        for note in notes:
            ctx.warn(call.line, f"chart: {note}")
        ctx.use_script("figures.js")
        ctx.meta["has_figures"] = True
        note = page.run_note(live_run, _last_step(df) if live_run is not None else None)
        return page.figure(ctx, place(call), "Chart", "sg-chart", f'{note}<div class="sg-chart-box">{body}</div>',
                           island)


def _last_step(df):
    if "step" not in df.columns or not len(df):
        return None
    try:
        return int(df["step"].max())
    except (TypeError, ValueError):
        return None


def _band(text: str):
    if text in ("none", "no", "off"):
        return None
    if text in ("minmax", "min:max", "range"):
        return (0.0, 100.0)
    try:
        lo, hi = parse_interval(text, ":band:")
    except ValueError:
        raise OptionError("band", ":band: is lo:hi percentiles (e.g. 10:90), minmax or none") from None
    if lo is None or hi is None or not (0 <= lo < hi <= 100):
        raise OptionError("band", ":band: percentiles must satisfy 0 <= lo < hi <= 100, e.g. 10:90")
    return (lo, hi)


def _lim(o, key: str):
    if key not in o:
        return None
    try:
        return parse_interval(o[key], f":{key}:")
    except ValueError as exc:
        raise OptionError(key, str(exc)) from None


register(Chart())
