"""Figures as a reader would check them: dots where the values say, escaping, flags, numbering, weight."""
from __future__ import annotations

import gzip
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sitegen.context import PageContext
from sitegen.directives import Call
from sitegen.directives.chart import Chart
from sitegen.directives.expression import Expression
from sitegen.directives.metric import Metric
from sitegen.figures import encode, scale, strips
from sitegen.figures.template import TemplateError, parse, quote_name

EXPRESSION, CHART, METRIC = Expression(), Chart(), Metric()


# -- helpers ------------------------------------------------------------------------------------
class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def find_all(self, tag):
        out = []
        for c in self.children:
            if c.tag == tag:
                out.append(c)
            out += c.find_all(tag)
        return out

    def classes(self):
        return (self.attrs.get("class") or "").split()


VOID = {"br", "img", "input", "meta", "link", "hr"}
SVG_SELF = {"circle", "rect", "line", "path"}


class Tree(HTMLParser):
    """Just enough of a DOM to read figures back (HTML plus inline SVG)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None, f"stray </{tag}>"
        self.cur = node.parent

    def handle_data(self, data):
        self.cur.text += data


def ctx_for(root: Path) -> PageContext:
    (root / "content").mkdir(exist_ok=True)
    return PageContext(path="content/post.md", root=root, source_dir=root / "content")


def call(name, argument="", body="", line=10, **options):
    options = {k.replace("_", "-"): v for k, v in options.items()}
    option_lines = {k: line + 1 + i for i, k in enumerate(options)}
    return Call(name, argument, options, option_lines, body, line, line + 1 + len(options))


def island_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" class="sg-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def errors(ctx):
    return [str(p) for p in ctx.problems if p.level == "error"]


def warnings(ctx):
    return [str(p) for p in ctx.problems if p.level == "warning"]


@pytest.fixture
def site(tmp_path):
    (tmp_path / "data").mkdir()
    return tmp_path


def write(site, name, df):
    path = site / "data" / name
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return f"data/{name}"


def static_table():
    """Two experiments (64 listed before 8, shown 8 first), three runs, params a (0..10) and b (1..1000)."""
    rows = []
    for e, base in ((64, 5.0), (8, 0.0)):
        for r in range(3):
            rows.append((e, r, "a", base + r * 2.5))           # 0, 2.5, 5 | 5, 7.5, 10
            rows.append((e, r, "b", 10.0 ** (r + (e == 64))))   # 1, 10, 100 | 10, 100, 1000
    return pd.DataFrame(rows, columns=["experiment", "run", "param", "value"])


def circles_by_strip(html):
    tree = Tree(html)
    out = []
    for svg in tree.root.find_all("svg"):
        if "sg-strip" in svg.classes():
            out.append([(float(c.attrs["cx"]), float(c.attrs["cy"]), c.attrs.get("visibility"))
                        for c in svg.find_all("circle")])
    return out


# -- templates ------------------------------------------------------------------------------------
def test_template_placeholders_settings_comments_and_indent():
    t = parse("# header comment\nk = ⟦ls | log | label=ℓ₁ | range=0.01:100 | bounds=1e-4:⟧ * x  # tail\n"
              "    + ⟦\"odd|na⟧me\"⟧\n")
    ph = t.placeholders
    assert [p.name for p in ph] == ["ls", "odd|na⟧me"]
    assert ph[0].log is True and ph[0].label == "ℓ₁" and ph[0].range == (0.01, 100.0)
    assert ph[0].bounds == (1e-4, None) and (ph[0].line, ph[0].col) == (2, 5)
    assert t.lines[0].parts[0].comment and t.lines[1].parts[-1].comment
    assert t.lines[1].parts[-1].text == "# tail" and not t.lines[1].parts[0].comment
    assert t.lines[2].indent == 4
    assert quote_name("odd|na⟧me") == '"odd|na⟧me"' and quote_name("plain") == "plain"


def test_hash_inside_quotes_is_not_a_comment():
    t = parse('print("a # b") + ⟦w⟧')
    assert not any(getattr(p, "comment", False) for p in t.lines[0].parts)


@pytest.mark.parametrize("text, message, col", [
    ("x = ⟦ls", "never closed", 5),
    ("x = ls⟧", "without an opening", 7),
    ("x = ⟦⟧", "empty placeholder", 5),
    ("x = ⟦ls | lgo⟧", "did you mean 'log'", 5),
    ("x = ⟦ls | range=5:1⟧", "lower end must be below", 5),
    ("x = ⟦a ⟦b⟧⟧", "inside a placeholder", 8),
])
def test_template_errors_point_at_the_place(text, message, col):
    with pytest.raises(TemplateError) as err:
        parse("first line\n" + text)
    assert message in err.value.message and (err.value.line, err.value.col) == (2, col)


# -- scales, formatting, encoding ---------------------------------------------------------------------
def test_scales_and_ticks():
    s = scale.Scale(0, 10, 100, 200)
    assert s(2.5) == 125
    lg = scale.Scale(1, 1000, 0, 300, log=True)
    assert lg(10) == pytest.approx(100) and lg(100) == pytest.approx(200)
    assert scale.nice_ticks(0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert scale.log_ticks(1e-6, 1e2, 5)[0] == 1e-6 and len(scale.log_ticks(1e-6, 1e2, 5)) <= 5
    assert scale.domain([3.0, 3.0]) == (2.7, 3.3) and scale.domain([], log=True) == (1.0, 10.0)
    assert scale.format_number(0.000012345) == "1.234\u202f×\u202f10⁻⁵" and scale.format_number(12345.0) == "12,345"
    assert scale.format_number(float("nan")) == "NaN"


@pytest.mark.parametrize("bits", [8, 16])
def test_encoding_round_trip_and_missing_code(bits):
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.normal(0, 0.02, (50, 120)), axis=1) % 1.0
    t[3, 7] = np.nan
    codes = encode.quantize(t, bits)
    assert codes[3, 7] == encode.missing_code(bits)
    top = encode.missing_code(bits) - 1
    ok = np.isfinite(t)
    assert np.abs(codes[ok] / top - t[ok]).max() <= 0.5 / top + 1e-12
    blob = encode.encode(codes, bits)
    back, b = encode.decode(blob)
    assert b == bits and np.array_equal(back, codes)
    assert blob == encode.encode(codes, bits)  # deterministic: same data, same file name hash


@pytest.mark.parametrize("bits,level,thread", [(8, 6, True), (16, 9, True), (8, 1, False), (16, 6, False)])
def test_streamed_encoding_is_the_one_shot_encoding(bits, level, thread):
    """Fractions given a few dots at a time (gzipped on a thread meanwhile) make encode()'s bytes exactly:
    deflate's output does not depend on how its input is cut."""
    rng = np.random.default_rng(bits + level)
    t = np.cumsum(rng.normal(0, 0.02, (300, 90)), axis=1) + rng.random((300, 1))
    t[rng.random(t.shape) < 0.05] = np.nan
    stream = encode.Stream(300, 90, bits, level, thread=thread)
    for a, b in [(0, 1), (1, 1), (1, 120), (120, 299), (299, 300)]:
        stream.feed(t[a:b])
    assert stream.result() == encode.encode(encode.quantize(t, bits), bits, level=level)


# -- expression figures -----------------------------------------------------------------------------
def test_dots_sit_where_the_values_say(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="y = ⟦a⟧ + ⟦b | log⟧"), ctx)
    assert errors(ctx) == []
    a, b = circles_by_strip(html)
    pad, width = strips.PAD, 96
    # rows: experiment 8 (numerically first) on top; its runs are a = 0, 2.5, 5 over the axis 0..10
    assert [x for x, _, _ in a[:3]] == pytest.approx([pad, pad + width / 4, pad + width / 2], abs=0.06)
    assert [x for x, _, _ in a[3:]] == pytest.approx([pad + width / 2, pad + 3 * width / 4, pad + width], abs=0.06)
    assert a[0][1] < a[3][1]  # second experiment is the lower row
    # b on a log axis 1..1000: decades are equally spaced
    assert [x for x, _, _ in b[:3]] == pytest.approx([pad, pad + width / 3, pad + 2 * width / 3], abs=0.06)
    isl = island_of(html)
    assert isl["exps"] == ["8", "64"] and isl["runs"] == [["0", "1", "2"]] * 2
    assert isl["final"][:3] == [0.0, 2.5, 5.0] and isl["ph"][1]["log"] is True
    assert "figures.js" in ctx.scripts and not ctx.files  # no steps: no animation file


def test_figure_numbering_label_and_caption(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    EXPRESSION.render(call("expression", data, body="⟦a⟧ ⟦b⟧"), ctx)
    html = EXPRESSION.render(call("expression", data, body="⟦a⟧ ⟦b⟧", label="second", caption="Both *params*."), ctx)
    fig = Tree(html).root.find_all("figure")[0]
    assert fig.attrs["id"] == "second"
    cap = fig.find_all("figcaption")[0]
    assert "Visualization 2." in "".join(n.text for n in [cap, *cap.find_all("span")])
    assert ctx.labels["second"].number == 2 and ctx.labels["second"].kind == "Visualization"
    assert cap.find_all("em")


def test_missing_placeholder_is_an_error_at_the_template_line_with_suggestions(site):
    data = write(site, "t.parquet", static_table())
    (site / "data" / "m.expr").write_text("# model\ny = ⟦a⟧\n  + ⟦bb⟧\n")
    ctx = ctx_for(site)
    out = EXPRESSION.render(call("expression", data, template="data/m.expr"), ctx)
    assert "sg-figure-error" in out
    (msg,) = errors(ctx)
    assert msg.startswith("data/m.expr:3: ") and "⟦bb⟧ has no data in data/t.parquet" in msg
    assert "did you mean ⟦b⟧" in msg


def test_inline_template_errors_point_at_the_post_line(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    c = call("expression", data, body="y = ⟦a⟧\nz = ⟦a | lgo⟧", line=20)
    EXPRESSION.render(c, ctx)
    (msg,) = errors(ctx)
    assert msg.startswith(f"content/post.md:{c.body_line + 1}: ") and "did you mean 'log'" in msg


def test_parameter_never_placed_is_a_warning(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    EXPRESSION.render(call("expression", data, body="y = ⟦a⟧"), ctx)
    assert any("never placed" in w and "'b'" in w for w in warnings(ctx))
    ctx2 = ctx_for(site)
    EXPRESSION.render(call("expression", data, body="y = ⟦a⟧", unplaced="ignore"), ctx2)
    assert not warnings(ctx2)


def test_hostile_names_are_escaped_everywhere(site):
    evil = '</script><script>alert("x")</script>&\'⟧'
    df = static_table()
    df["param"] = df["param"].replace({"a": evil})
    df["experiment"] = df["experiment"].map({64: "<b>big</b>", 8: "small&"})
    data = write(site, "t.parquet", df)
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body=f"y = ⟦{quote_name(evil)}⟧ + ⟦b⟧"), ctx)
    assert errors(ctx) == []
    assert "<script>alert" not in html and "<b>big" not in html
    assert html.count("<script") == 1 and html.count("</script>") == 1  # only our data island
    isl = island_of(html)
    assert isl["ph"][0]["name"] == evil and isl["exps"] == ["<b>big</b>", "small&"]  # first appearance
    svg = [s for s in Tree(html).root.find_all("svg") if "sg-strip" in s.classes()][0]
    assert svg.attrs["aria-label"].startswith(evil)


def test_silent_bugs_are_flagged_in_build_and_figure(site):
    rows = []
    for r in range(4):
        for step in range(0, 50, 5):
            rows.append((1, r, step, "moving", 1.0 + r + step / 10))
            rows.append((1, r, step, "frozen", 0.3 * r))
            rows.append((1, r, step, "pinned", max(1e-3, 1.0 - step / 20)))
            rows.append((1, r, step, "broken", np.nan if (r == 2 and step > 30) else 1.0 + step))
    data = write(site, "t.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, line=30,
                                  body="⟦moving⟧ ⟦frozen⟧ ⟦pinned | bounds=0.001:⟧ ⟦broken⟧"), ctx)
    w = warnings(ctx)
    assert any("'frozen' never changes during training in any of its 4 run(s)" in m for m in w)
    assert any("'pinned' ends at its lower bound 0.001 in 4 of 4 runs" in m for m in w)
    assert any("'broken' has 3 NaN or infinite value(s)" in m for m in w)
    assert not any("'moving'" in m for m in w)
    badges = [b for b in Tree(html).root.find_all("span") if "sg-badge" in b.classes()]
    assert len(badges) == 3
    assert "never changes" in badges[0].attrs["title"]
    assert any("warning" in s.text for s in badges[0].find_all("span"))  # words for screen readers
    isl = island_of(html)
    assert [bool(p["badges"]) for p in isl["ph"]] == [False, True, True, True]


def test_animation_file_matches_the_circles(site):
    rows = [(e, r, s, p, e * 10 + r + s / 10 * (k + 1))
            for e in (1, 2) for r in range(3) for s in range(0, 1000, 2) for k, p in enumerate("xyz")]
    data = write(site, "t.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="⟦x⟧ ⟦y⟧ ⟦z⟧", frames="50"), ctx)
    assert errors(ctx) == []
    isl = island_of(html)
    (name, blob), = ctx.files.items()
    assert isl["data"] == name and name.endswith(".bin")
    codes, bits = encode.decode(blob)
    circles = [c for strip in circles_by_strip(html) for c in strip]
    assert codes.shape == (len(circles), 50) == (18, len(isl["steps"]))
    assert isl["steps"][0] == 0 and isl["steps"][-1] == 998
    # the last frame is the picture the page shows without JavaScript
    top = encode.missing_code(bits) - 1
    xs = strips.PAD + codes[:, -1] / top * 96
    assert xs == pytest.approx([c[0] for c in circles], abs=0.3)
    # values move monotonically upward in this table, so codes never decrease
    assert (np.diff(codes.astype(int), axis=1) >= 0).all()
    assert "sg-animated" in html and "Shown at step 998, the end of training" in html


def test_default_frames_and_steps_window(site):
    rows = [(1, r, s, "w", float(s)) for r in range(2) for s in range(1000)]
    data = write(site, "t.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    isl = island_of(EXPRESSION.render(call("expression", data, body="⟦w⟧"), ctx))
    assert len(isl["steps"]) == 200 and isl["steps"][-1] == 999
    isl = island_of(EXPRESSION.render(call("expression", data, body="⟦w⟧", steps="100:300"), ctx))
    assert isl["steps"][0] == 100 and isl["steps"][-1] == 300
    isl = island_of(EXPRESSION.render(call("expression", data, body="⟦w⟧", animate="no"), ctx))
    assert isl["steps"] == [999] and "data" not in isl


def test_selection_of_experiments_and_runs(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="⟦a⟧ ⟦b⟧", experiments="64", runs="0, 2"), ctx)
    isl = island_of(html)
    assert isl["exps"] == ["64"] and isl["runs"] == [["0", "2"]]
    EXPRESSION.render(call("expression", data, body="⟦a⟧ ⟦b⟧", experiments="6"), ctx)
    assert any("experiment '6' is not in data/t.parquet; did you mean '64'" in e for e in errors(ctx))


def test_bad_options_are_reported_at_their_line(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    c = call("expression", data, body="⟦a⟧", frames="lots")
    EXPRESSION.render(c, ctx)
    assert errors(ctx) == [f"content/post.md:{c.option_line('frames')}: expression: :frames: takes a whole number, "
                           "not 'lots'"]


@pytest.mark.parametrize("content, expected", [
    (b"not parquet", "cannot read this parquet file"),
    (None, "no such file"),
])
def test_bad_files_end_as_messages(site, content, expected):
    if content is not None:
        (site / "data" / "x.parquet").write_bytes(content)
    ctx = ctx_for(site)
    out = EXPRESSION.render(call("expression", "data/x.parquet", body="⟦a⟧"), ctx)
    assert "sg-figure-error" in out and expected in errors(ctx)[0]


def test_non_positive_values_fall_back_to_linear_with_a_warning(site):
    data = write(site, "t.parquet", static_table())
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="⟦a | log⟧ ⟦b⟧"), ctx)
    assert any("cannot use a log axis" in w for w in warnings(ctx))
    assert island_of(html)["ph"][0]["log"] is False


def test_a_thousand_parameters_one_warning_and_a_heavy_figure_still_draws(site):
    rows = [(1, r, f"p{i:04d}", float(i + r)) for i in range(1000) for r in range(3)]
    data = write(site, "t.parquet", pd.DataFrame(rows, columns=["experiment", "run", "param", "value"]))
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="⟦p0001⟧ ⟦p0500⟧"), ctx)
    assert errors(ctx) == []
    unplaced = [w for w in warnings(ctx) if "never placed" in w]
    assert len(unplaced) == 1 and "998 parameter(s)" in unplaced[0] and "990 more" in unplaced[0]
    ctx = ctx_for(site)
    body = " ".join(f"⟦p{i:04d}⟧" for i in range(1000))
    html = EXPRESSION.render(call("expression", data, body=body), ctx)
    assert errors(ctx) == [] and len(circles_by_strip(html)) == 1000


def test_three_heavy_figures_fit_the_page_budget(site):
    """50 parameters x 60 runs x 200 steps, three times: HTML + animation files well under 1 MB gzipped."""
    rng = np.random.default_rng(1)
    P, R, S = 50, 60, 200
    start = rng.lognormal(0, 1, (P, R))
    target = rng.lognormal(0, 0.3, (P, 1))
    t = np.linspace(0, 1, S)[:, None, None]
    vals = start[None] * (1 - t) + target[None] * t
    df = pd.DataFrame({
        "experiment": 1, "run": np.tile(np.repeat(np.arange(R), 1), S * P),
        "step": np.repeat(np.arange(S), P * R),
        "param": np.tile(np.repeat([f"p{i}" for i in range(P)], R), S),
        "value": vals.reshape(-1),
    })
    data = write(site, "t.parquet", df)
    ctx = ctx_for(site)
    body = "\n".join(f"  k{i} = ⟦p{i}⟧" for i in range(P))
    total = 0
    for _ in range(3):
        html = EXPRESSION.render(call("expression", data, body=body), ctx)
        total += len(gzip.compress(html.encode(), 9))
    total += sum(len(b) for b in ctx.files.values())
    assert errors(ctx) == []
    assert total < 700_000, total


# -- charts -------------------------------------------------------------------------------------------
def scaling_table():
    rows = []
    for n in (10, 100, 1000):
        for seed in range(11):
            rows.append(("a", n, seed, (1.0 / n) * (1 + seed / 10)))
            rows.append(("b", n, seed, (2.0 / n) * (1 + seed / 10)))
    return pd.DataFrame(rows, columns=["model", "n", "seed", "loss"])


def test_chart_band_and_geometric_mean(site):
    data = write(site, "s.parquet", scaling_table())
    ctx = ctx_for(site)
    html = CHART.render(call("chart", data, x="n", y="loss", series="model", run="seed", logx="", logy="",
                             label="scal", caption="Scaling."), ctx)
    assert errors(ctx) == []
    isl = island_of(html)
    a = isl["series"][0]
    vals = np.array([(1.0 / 10) * (1 + s / 10) for s in range(11)])
    assert a["name"] == "a" and a["x"] == [10, 100, 1000]
    assert a["y"][0] == pytest.approx(np.exp(np.log(vals).mean()), rel=1e-6)  # geometric mean (log y)
    assert a["lo"][0] == pytest.approx(np.percentile(vals, 10), rel=1e-6)
    assert a["hi"][0] == pytest.approx(np.percentile(vals, 90), rel=1e-6)
    tree = Tree(html)
    assert tree.root.find_all("figure")[0].attrs["id"] == "scal" and ctx.labels["scal"].kind == "Chart"
    assert len([p for p in tree.root.find_all("path") if "sg-band" in p.classes()]) == 2
    legend = [li.text for li in tree.root.find_all("li")]
    assert legend == ["a", "b"]
    # on log-log axes a 1/n curve is a straight line: equal pixel steps per decade
    line = [p for p in tree.root.find_all("path") if "sg-trace" in p.classes()][0]
    pts = [tuple(map(float, xy.split(","))) for xy in re.findall(r"[-\d.]+,[-\d.]+", line.attrs["d"])]
    assert pts[1][0] - pts[0][0] == pytest.approx(pts[2][0] - pts[1][0], abs=0.2)
    assert pts[1][1] - pts[0][1] == pytest.approx(pts[2][1] - pts[1][1], abs=0.2)


def test_chart_errors_name_columns(site):
    data = write(site, "s.parquet", scaling_table())
    ctx = ctx_for(site)
    CHART.render(call("chart", data, x="nn", y="loss"), ctx)
    CHART.render(call("chart", data, x="n", y="loss", where="model=c"), ctx)
    CHART.render(call("chart", data, x="n", y="model"), ctx)
    e = errors(ctx)
    assert "no column 'nn'; did you mean 'n'" in e[0]
    assert "column 'model' has no value 'c'" in e[1]
    assert "column 'model' must hold numbers" in e[2]


def test_chart_log_axis_drops_non_positive_with_warning(site):
    df = pd.DataFrame({"step": [0, 1, 2, 3], "loss": [1.0, 0.0, -1.0, 0.5]})
    data = write(site, "l.csv", df)
    ctx = ctx_for(site)
    html = CHART.render(call("chart", data, y="loss", logy="", center="mean"), ctx)
    assert errors(ctx) == [] and any("log y axis" in w for w in warnings(ctx))
    assert "<path" in html


# -- metric -------------------------------------------------------------------------------------------
def test_metric_ratio_json_and_errors(site):
    write(site, "s.parquet", scaling_table())
    (site / "data" / "run.provenance.json").write_text(json.dumps({"wall_time_s": 90, "results": {"acc": 0.91}}))
    ctx = ctx_for(site)
    out = METRIC.render("data/s.parquet: mean(loss where n=10 and model=a) / mean(loss where n=1000 and model=a)"
                        " | .0f", 7, ctx)
    assert re.fullmatch(r'<data class="sg-metric" value="100\.0\d*" title="[^"]*">100</data>', out)
    assert ">91.0%<" in METRIC.render("data/run.provenance.json: acc | .1%", 7, ctx)
    assert ">1.5<" in METRIC.render("data/run.provenance.json: wall_time_s / 60", 7, ctx)
    assert ">11<" in METRIC.render("data/s.parquet: count(loss where n=last and model=b)", 7, ctx)
    assert errors(ctx) == []
    METRIC.render("data/s.parquet: mean(los)", 8, ctx)
    METRIC.render("data/run.provenance.json: ac", 9, ctx)
    METRIC.render("data/s.parquet: mean(loss) | %%", 10, ctx)
    e = errors(ctx)
    assert e[0].startswith("content/post.md:8: metric: no column 'los'; did you mean 'loss'")
    assert "no key 'ac'; did you mean 'acc'" in e[1] or "'results.acc'" in e[1]
    assert "not a number format" in e[2]


def test_axis_final_fits_the_last_step(site):
    rows = [(1, r, s, "w", (10.0 - s) + r * 0.1) for r in range(3) for s in range(0, 11)]
    data = write(site, "t.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    auto = island_of(EXPRESSION.render(call("expression", data, body="⟦w⟧"), ctx))["ph"][0]
    every = island_of(EXPRESSION.render(call("expression", data, body="⟦w⟧", axis="all"), ctx))["ph"][0]
    final = island_of(EXPRESSION.render(call("expression", data, body="⟦w⟧", axis="final"), ctx))["ph"][0]
    assert (every["lo"], every["hi"]) == pytest.approx((0.0, 10.2))
    assert (final["lo"], final["hi"]) == pytest.approx((0.0, 0.2))
    # the default: the final values (0 to 0.2) on two thirds of the width, widened towards where training came from
    assert (auto["lo"], auto["hi"]) == pytest.approx((0.0, 0.3))
    EXPRESSION.render(call("expression", data, body="⟦w⟧", axis="last"), ctx)
    assert any(":axis: is auto" in e for e in errors(ctx))


def test_every_inline_plot_prints_its_scale_and_label(site):
    rows = [(e, r, s, p, (10.0 - s) * (1 + (p == "b")) + r * 0.1 + e) for e in (1, 2) for r in range(3)
            for s in range(0, 11) for p in ("a", "b")]
    data = write(site, "t.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="y = ⟦a | label=α⟧ + ⟦b⟧"), ctx)
    assert errors(ctx) == []
    island = island_of(html)
    assert html.count('class="sg-lo"') == 2 and html.count('class="sg-hi"') == 2
    los = re.findall(r'class="sg-lo"[^>]*>([^<]*)<', html)
    his = re.findall(r'class="sg-hi"[^>]*>([^<]*)<', html)
    for ph, lo, hi in zip(island["ph"], los, his):
        assert float(lo.replace("\u2212", "-")) == pytest.approx(ph["lo"], rel=0.01, abs=0.01)
        assert float(hi.replace("\u2212", "-")) == pytest.approx(ph["hi"], rel=0.01, abs=0.01)
    assert '<span class="sg-ph-label">α</span>' in html and html.count("sg-ph-label") == 1


def test_an_axis_group_shares_one_axis(site):
    rows = [(1, r, 0, p, v * (r + 1)) for r in range(4) for p, v in (("ls_a", 1.0), ("ls_b", 30.0), ("c", 5.0))]
    data = write(site, "g.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    body = "⟦ls_a | axis=ls⟧ ⟦ls_b | axis=ls⟧ ⟦c⟧"
    phs = island_of(EXPRESSION.render(call("expression", data, body=body), ctx))["ph"]
    assert errors(ctx) == []
    assert (phs[0]["lo"], phs[0]["hi"]) == (phs[1]["lo"], phs[1]["hi"])
    assert phs[0]["lo"] <= 1.0 and phs[0]["hi"] >= 120.0
    assert (phs[2]["lo"], phs[2]["hi"]) != (phs[0]["lo"], phs[0]["hi"])
    with pytest.raises(TemplateError, match="axis= needs a group name"):
        parse("⟦a | axis=⟧")


def test_a_single_value_is_a_bar_with_its_number(site):
    rows = [("all", 0, s, p, v * s / 10) for s in range(11) for p, v in (("w", 2.5), ("b", -0.75))]
    data = write(site, "one.parquet", pd.DataFrame(rows, columns=["experiment", "run", "step", "param", "value"]))
    ctx = ctx_for(site)
    html = EXPRESSION.render(call("expression", data, body="y = ⟦w⟧ * x + ⟦b⟧"), ctx)
    island = island_of(html)
    assert island["bar"] is True and html.count('class="sg-bar"') == 2
    assert re.findall(r'class="sg-val"[^>]*>([^<]*)<', html) == ["2.5", "\u22120.75"]
    for ph in island["ph"]:  # a bar's axis holds 0, where the bar starts
        assert ph["lo"] <= 0 <= ph["hi"]


def test_default_axis_keeps_the_final_values_on_two_thirds_of_the_width():
    rng = np.random.default_rng(1)
    block = np.concatenate([rng.uniform(-1.15, 1.5, (40, 50)), rng.uniform(1.39, 1.50, (40, 1))], axis=1)
    a, b = block[:, -1].min(), block[:, -1].max()
    lo, hi = strips.axis_extent(block)
    assert lo < a and hi >= b  # every final value inside, and some room for where training came from
    assert (b - a) / (hi - lo) == pytest.approx(2 / 3)
    assert strips.axis_extent(block, "all")[0] < -1.1
    assert strips.axis_extent(block, "final") == pytest.approx([block[:, -1].min(), block[:, -1].max()])


@pytest.mark.parametrize("n,top", [(0, 1), (1, 1), (10, 5), (10, 10 ** 7), (5000, 100), (5000, 10 ** 9), (3, 4100)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_distinct_counts_agree_with_unique_whether_counted_or_sorted(n, top, dtype):
    from sitegen.figures.counts import distinct, distinct_values

    codes = np.random.default_rng(n + top).integers(0, top, n).astype(dtype)
    unique = np.unique(codes)
    assert distinct(codes) == len(unique)
    got = distinct_values(codes)
    assert np.array_equal(got, unique) and got.dtype == unique.dtype
