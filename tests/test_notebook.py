"""sitegen in Jupyter: figures from DataFrames in a cell, live updates that send only new rows,
the build's messages for bad input, and one step from notebook to post.

Most tests record what would go to the notebook (a stand-in for IPython's display calls); the last
ones execute tests/notebooks/figures.ipynb in a real kernel with nbclient and read its outputs.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sitegen.notebook as nb
from sitegen import chart, figure

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "tests" / "notebooks" / "figures.ipynb"
STEPS = list(range(0, 300, 10))
TEMPLATE = "# a comment line\ny = ⟦alpha⟧ * x\n  + ⟦beta | label=β⟧"
SVG = "{http://www.w3.org/2000/svg}"


def value(e, r, p, step):
    start = (r - 2) * 1.0 + p
    target = 3.0 + e + 0.1 * r + p
    return start + (target - start) * step / STEPS[-1]


def rows(steps, runs=range(5)):
    return pd.DataFrame([(e, r, s, name, value(e, r, p, s))
                         for s in steps for e in (1, 2) for r in runs
                         for p, name in enumerate(["alpha", "beta"])],
                        columns=["experiment", "run", "step", "param", "value"])


class Recorder(nb.Transport):
    """What would reach the notebook: ('show'|'replace', display_id, bundle)."""

    def __init__(self):
        self.log = []

    def show(self, bundle, display_id):
        self.log.append(("show", display_id, bundle))

    def replace(self, bundle, display_id):
        self.log.append(("replace", display_id, bundle))

    def feed(self):
        return [(k, d, b) for k, d, b in self.log if "-feed-" in d]

    def figure_messages(self):
        return [(k, d, b) for k, d, b in self.log if "-feed-" not in d]


@pytest.fixture
def sent(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(nb.transport, "TRANSPORT", rec)
    yield rec
    nb._after_cell()  # figures left with updates settle here, not in a later test's recorder


def html_of(fig) -> str:
    return fig._repr_mimebundle_()["text/html"]


def live_figure(html: str) -> str:
    return re.search(r'<div class="sg-nb-live" hidden>(.*?)</div><script', html, re.S).group(1)


def picture_of(html: str) -> ET.Element:
    src = re.search(r'<img class="sg-nb-static" src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
    return ET.fromstring(base64.b64decode(src))


def island(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="sg-data">(.*?)</script>', html).group(1))


def deltas(bundle) -> list[dict]:
    found = re.search(r'<script type="application/json" class="sg-delta">(.*?)</script>', bundle["text/html"])
    if not found:
        return []
    message = json.loads(found.group(1))
    if "z" in message:  # gzipped when that is smaller (the runtime inflates it)
        import gzip

        return json.loads(gzip.decompress(base64.b64decode(message["z"])))
    return message["updates"]


def floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


# -- a figure in a cell ------------------------------------------------------------------------------
def test_output_holds_the_complete_figure_its_runtime_and_a_static_picture():
    html = html_of(figure(rows(STEPS), TEMPLATE, caption="Parameters of the model."))
    live = live_figure(html)
    strips = re.findall(r'<svg class="sg-strip".*?</svg>', live, re.S)
    assert len(strips) == 2
    for strip in strips:  # two rows of five dots, placed at the final step
        assert len(re.findall(r"<circle ", strip)) == 10
    assert "Shown at step 290, the end of training" in live
    assert "Parameters of the model." in live and "Visualization 1" not in live
    assert 'data-sg-key="sg' in live
    data = island(html)
    assert data["data"].startswith("data:application/octet-stream;base64,")  # nothing to fetch
    assert len(data["steps"]) == 30
    # the runtime and its styles travel with the output: nothing from another host
    assert "window.sitegenFigures" in html and "window.sitegenNotebook" in html
    assert 'class="sg-nb-css"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "</script" not in re.search(r"<script>(.*)</script></div>$", html, re.S).group(1)


def test_the_static_picture_is_a_standalone_svg_with_every_strip_and_the_template_text():
    html = html_of(figure(rows(STEPS), TEMPLATE))
    pic = picture_of(html)  # parses as XML: an <img> can show it where scripts, styles and inline SVG are removed
    assert pic.tag == SVG + "svg"
    strips = [s for s in pic.iter(SVG + "svg") if s.get("class") == "sg-strip"]
    assert len(strips) == 2
    assert all(len(list(s.iter(SVG + "circle"))) == 10 for s in strips)
    text = " ".join(t.text or "" for t in pic.iter(SVG + "text"))
    assert "# a comment line" in text and "y =" in text and "* x" in text and "+" in text
    assert "290" in text  # the step it shows
    img = re.search(r"<img [^>]*>", html).group(0)
    assert 'alt="β' in img or "alt=\"alpha" in img


def test_the_same_figure_shown_twice_and_two_figures_never_share_an_id(sent):
    fig = figure(rows(STEPS), TEMPLATE)
    other = chart(rows(STEPS), x="step", y="value", series="param")
    fig._ipython_display_()
    fig._ipython_display_()
    other._ipython_display_()
    pages = [b["text/html"] for _, _, b in sent.log]
    ids = [i for p in pages for i in re.findall(r'\bid="([^"]+)"', p)]
    assert ids and len(ids) == len(set(ids))
    assert len({d for _, d, _ in sent.log}) == 3  # one display id per showing


def test_options_are_the_directives_options_as_python_keywords():
    fig = figure(rows(STEPS), TEMPLATE, max_runs=2, steps=(0, 100), experiments=[2],
                 range={"alpha": (-10, 10)}, animate=False)
    data = island(html_of(fig))
    assert data["runs"] == [["0", "1"]]
    assert data["steps"] == [100]
    assert (data["ph"][0]["lo"], data["ph"][0]["hi"]) == (-10, 10)
    assert nb.option_text("log", ["a*", "b"]) == "a*, b"
    assert nb.option_text("columns", {"run": "seed"}) == "run=seed"
    assert nb.option_text("bounds", {"w": (None, 1.0)}) == "w=:1"


def test_the_wide_shape_rows2prose_users_have_works_unchanged():
    wide = pd.DataFrame([{"i_config": c, "i_timestep": t, "lengthscale": 1.0 + c + 0.1 * k + t / 10,
                          "noise": 0.01 * (k + 1) * (1 + t)}
                         for c in (0, 1) for t in range(4) for k in range(3)])
    html = html_of(figure(wide, "k = exp(-d² / ⟦lengthscale | log⟧²) + ⟦noise⟧"))
    data = island(html)
    assert data["exps"] == ["0", "1"] and data["runs"] == [["0", "1", "2"]] * 2
    assert data["steps"] == [0, 1, 2, 3]
    assert data["ph"][0]["log"] is True
    assert "Figure not drawn" not in html


# -- bad input: the build's messages, readable in the cell, never raised --------------------------------
@pytest.mark.parametrize("make, expected", [
    (lambda: figure(rows(STEPS), "y = ⟦alpah⟧ * x"),
     "template line 1: placeholder ⟦alpah⟧ has no data in the DataFrame; did you mean ⟦alpha⟧?"),
    (lambda: figure(rows(STEPS).rename(columns={"run": "seed"}), TEMPLATE),
     "column 'run' missing (have: experiment, seed, step, param, value)"),
    (lambda: figure(rows(STEPS), TEMPLATE, maxruns=3), "unknown option 'maxruns='; did you mean 'max_runs='?"),
    (lambda: figure(rows(STEPS), TEMPLATE, max_runs=0), "max_runs= must be between 1 and"),
    (lambda: figure(rows(STEPS), "y = ⟦alpha * x"), "template line 1:"),
    (lambda: figure([1, 2, 3], TEMPLATE), "must be a pandas DataFrame"),
    (lambda: figure(rows(STEPS)), "figure() needs a template"),
    (lambda: chart(rows(STEPS), y="loss"), "no column 'loss'"),
])
def test_bad_input_shows_the_builds_message_as_text_and_html(make, expected):
    bundle = make()._repr_mimebundle_()
    assert expected in bundle["text/plain"]
    assert "Figure not drawn" in bundle["text/html"]
    assert nb.esc(expected) in bundle["text/html"]
    assert "<script" not in bundle["text/html"]  # nothing that could fail in the browser
    assert "Traceback" not in bundle["text/plain"]


def test_the_column_mapping_hint_is_written_as_a_keyword():
    text = figure(rows(STEPS).rename(columns={"run": "seed"}), TEMPLATE)._repr_mimebundle_()["text/plain"]
    assert 'columns={"run": "seed"}' in text
    assert "run" in island(html_of(figure(rows(STEPS).rename(columns={"run": "seed"}), TEMPLATE,
                                          columns={"run": "seed"})))["runTitle"]


def test_nan_values_draw_the_figure_with_the_builds_warnings():
    broken = rows(STEPS)
    broken.loc[broken.param == "beta", "value"] = float("nan")
    bundle = figure(broken, TEMPLATE)._repr_mimebundle_()
    assert "300 value(s) are NaN or infinite" in bundle["text/plain"]
    assert "template line 3: parameter 'beta' has 300 NaN or infinite value(s)" in bundle["text/plain"]
    assert "sg-nb-warnings" in bundle["text/html"] and 'class="sg-strip"' in bundle["text/html"]
    assert "NaN" not in island(bundle["text/html"])["ph"][0]["badges"]


# -- live updates ----------------------------------------------------------------------------------------
def test_two_updates_send_only_the_new_rows(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    first = sent.log[0][2]["text/html"]
    table_bytes = len(rows(STEPS[:20]).to_csv(index=False).encode())
    for chunk in (STEPS[20:25], STEPS[25:]):
        fig.append(rows(chunk))
    feed = sent.feed()
    assert [k for k, _, _ in feed] == ["show", "replace"]
    assert sent.figure_messages() == [sent.log[0]]  # the figure itself was not sent again
    for (_, _, bundle), chunk, base in zip(feed, (STEPS[20:25], STEPS[25:]), (190, 240)):
        (update,) = deltas(bundle)
        assert update["steps"] == chunk and update["base"] == base
        vals = floats(update["values"]).reshape(len(chunk), 2, 10)  # steps x parameters x dots
        want = np.array([[[value(e, r, p, s) for e in (1, 2) for r in range(5)] for p in (0, 1)] for s in chunk])
        assert np.allclose(vals, want, rtol=1e-6)
        assert len(bundle["text/html"]) < 1500 < table_bytes < len(first)
    assert [n for kind, n in fig.sent] and all(kind == "update" for kind, _ in fig.sent)


def test_a_cell_that_sent_updates_ends_with_the_figure_redrawn_from_the_whole_table(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    fig._ipython_display_()
    fig.append(rows(STEPS[20:]))
    nb._after_cell()
    redraws = [(d, b) for k, d, b in sent.log if k == "replace" and "-feed-" not in d]
    assert len(redraws) == 2  # both copies hold the final figure, so a saved notebook shows it
    assert all("Shown at step 290, the end of training" in b["text/html"] for _, b in redraws)
    assert "Training shown up to step 290" in sent.log[-1][2]["text/plain"]
    nb._after_cell()  # a later cell that did nothing sends nothing
    assert len([1 for k, d, b in sent.log if k == "replace" and "-feed-" not in d]) == 2


def test_settle_false_keeps_to_live_messages(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0, settle=False)
    fig._ipython_display_()
    fig.append(rows(STEPS[20:]))
    nb._after_cell()
    assert sent.figure_messages() == [sent.log[0]]


def test_rows_faster_than_the_interval_wait_and_go_together(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=3600, settle=False)
    fig._ipython_display_()
    fig._last_send = nb.time.monotonic()
    for s in STEPS[20:]:
        fig.append(rows([s]))
    assert sent.feed() == []
    fig.flush()
    (update,) = deltas(sent.feed()[0][2])
    assert update["steps"] == STEPS[20:]


def test_update_with_the_grown_table_sends_only_the_new_rows_and_a_new_table_redraws(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    fig.update(rows(STEPS[:25]))
    (update,) = deltas(sent.feed()[-1][2])
    assert update["steps"] == STEPS[20:25]
    fig.update(rows(STEPS[:25]).copy())  # the same table: nothing to send
    assert len(sent.feed()) == 1
    changed = rows(STEPS[:25])
    changed["value"] *= 2
    fig.update(changed)
    assert sent.log[-1][0] == "replace" and "-feed-" not in sent.log[-1][1]


def test_a_new_run_or_a_past_step_redraws_and_values_outside_the_axis_widen_it(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    big = rows([200])
    big.loc[big.param == "alpha", "value"] = 100.0
    fig.append(big)
    (update,) = deltas(sent.feed()[-1][2])
    assert update["axes"][0][1] >= 100.0 and "axes" in update
    fig.append(rows([210], runs=[7]))  # a run the figure does not draw yet
    assert sent.log[-1][0] == "replace" and "-feed-" not in sent.log[-1][1]
    assert island(sent.log[-1][2]["text/html"])["runs"] == [["0", "1", "2", "3", "4", "7"]] * 2
    fig.append(rows([50]))  # rows for a step already drawn
    assert sent.log[-1][0] == "replace" and "-feed-" not in sent.log[-1][1]


def test_nan_arriving_live_is_drawn_as_missing_and_badged(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    bad = rows([200])
    bad.loc[bad.param == "beta", "value"] = float("nan")
    fig.append(bad)
    (update,) = deltas(sent.feed()[-1][2])
    vals = floats(update["values"]).reshape(1, 2, 10)
    assert np.isnan(vals[0, 1]).all() and np.isfinite(vals[0, 0]).all()
    assert update["badges"][1] == ["has 10 NaN or infinite value(s)"]
    assert "NaN" not in update["values"]  # JSON stays valid: NaN travels inside the float32 bytes


def test_bad_rows_are_reported_under_the_cell_and_not_added(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    n = len(fig.data)
    fig.append(rows([200]).rename(columns={"value": "val"}))
    fig.append("not rows")
    texts = [b["text/plain"] for _, _, b in sent.feed()]
    assert "the rows have columns experiment, run, step, param, val but the table has" in texts[-1]
    assert "append() must be a pandas DataFrame" in texts[-1]
    assert len(fig.data) == n


def test_a_figure_shown_before_its_data_draws_with_the_first_rows(sent):
    fig = figure(template=TEMPLATE, interval=0)
    fig._ipython_display_()
    assert "No rows yet" in sent.log[0][2]["text/html"]
    fig.append(rows(STEPS[:3]))
    kind, did, bundle = sent.log[-1]
    assert (kind, did) == ("replace", sent.log[0][1]) and 'class="sg-strip"' in bundle["text/html"]
    fig.append(rows(STEPS[3:5]))
    assert deltas(sent.feed()[-1][2])[0]["steps"] == STEPS[3:5]
    fig.append({"experiment": 1, "run": 0, "step": 50, "param": "alpha", "value": 1.0})  # one row as a dict
    assert deltas(sent.feed()[-1][2])[0]["steps"] == [50]


def test_a_chart_redraws_in_full_when_rows_arrive(sent):
    c = chart(rows(STEPS[:10]), x="step", y="value", series="param", run="run", interval=0)
    c._ipython_display_()
    c.append(rows(STEPS[10:]))
    kind, did, bundle = sent.log[-1]
    assert kind == "replace" and did == sent.log[0][1]
    assert "<svg class=\"sg-chart-svg\"" in bundle["text/html"]
    assert max(island(bundle["text/html"])["series"][0]["x"]) == 290


# -- from notebook to post --------------------------------------------------------------------------------
def test_save_writes_what_the_directive_reads_and_a_site_using_it_builds(site, monkeypatch):
    monkeypatch.chdir(site.root)
    fig = figure(rows(STEPS), TEMPLATE, max_runs=3, caption="From the notebook.")
    saved = fig.save("data/model")
    assert saved.files == ["data/model.parquet", "data/model.expr"]
    assert (site.root / "data" / "model.expr").read_text(encoding="utf-8") == TEMPLATE + "\n"
    assert saved.directive == ("```{expression} data/model.parquet\n:template: data/model.expr\n"
                               ":max-runs: 3\n:caption: From the notebook.\n```")
    assert "```{expression} data/model.parquet" in saved._repr_mimebundle_()["text/plain"]
    c = chart(rows(STEPS), x="step", y="value", series="param", logy=False)
    c.save("data/curves.parquet")
    site.post("notebook.md", "---\ntitle: From a notebook\ndate: 2026-01-01\n---\n\nThe model:\n\n"
              f"{saved.directive}\n\n{c.directive('data/curves')}\n")
    site.build()
    page = site.page("notebook/index.html")
    assert len(re.findall(r'<svg class="sg-strip"', page)) == 2
    assert 'class="sg-chart-svg"' in page and "From the notebook." in page
    # the post draws what the notebook drew: the same strips
    assert re.findall(r"<circle [^>]*>", live_figure(html_of(fig))) == \
        re.findall(r"<circle [^>]*>", page.split('class="sg-figure sg-expression', 1)[1].split("</figure>")[0])


def test_save_of_a_wide_table_round_trips_through_the_build(site, monkeypatch):
    monkeypatch.chdir(site.root)
    wide = pd.DataFrame({"i_config": [0, 0, 1, 1], "i_timestep": [0, 1, 0, 1], "w": [1.0, 2.0, 3.0, 4.0]})
    saved = figure(wide, "y = ⟦w⟧ x").save("data/wide")
    site.post("w.md", f"---\ntitle: W\ndate: 2026-01-01\n---\n\n{saved.directive}\n")
    site.build()
    assert 'class="sg-strip"' in site.page("w/index.html")


def test_importing_sitegen_stays_light():
    code = "import sys, sitegen, sitegen.build; print('sitegen.notebook' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"], out.stderr


# -- a real notebook, executed by a real kernel ------------------------------------------------------------
def execute_notebook(tmp_path):
    """Run tests/notebooks/figures.ipynb with nbclient; returns (notebook, iopub messages per cell)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    messages = []

    class Recording(nbclient.NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] in ("display_data", "update_display_data", "execute_result", "error", "stream"):
                messages.append((cell_index, msg["msg_type"], msg["content"]))
            return super().process_message(msg, cell, cell_index)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + old if old else "")
    try:
        Recording(notebook, timeout=180, kernel_name="python3",
                  resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return notebook, messages


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    return execute_notebook(tmp_path_factory.mktemp("nb"))


def cell_html(notebook, index) -> list[str]:
    return [o["data"]["text/html"] for o in notebook.cells[index].outputs if "text/html" in o.get("data", {})]


def test_the_executed_notebook_holds_complete_svg_figures_and_no_errors(executed):
    notebook, messages = executed
    assert not [m for m in messages if m[1] == "error"]
    assert not [m for m in messages if m[1] == "stream" and m[2].get("name") == "stderr"]
    (out,) = cell_html(notebook, 3)
    live = live_figure(out)
    strips = re.findall(r'<svg class="sg-strip".*?</svg>', live, re.S)
    assert len(strips) == 2 and all(len(re.findall("<circle ", s)) == 10 for s in strips)
    # the cell that streamed updates settled the figure: the saved notebook shows the end of training
    assert "Shown at step 290, the end of training" in live
    assert len([s for s in picture_of(out).iter(SVG + "svg") if s.get("class") == "sg-strip"]) == 2
    again, chart_html = cell_html(notebook, 6)
    assert 'class="sg-strip"' in again and 'class="sg-chart-svg"' in chart_html
    (wide,) = cell_html(notebook, 8)
    assert len(re.findall(r'<svg class="sg-strip"', live_figure(wide))) == 2


def test_the_executed_notebooks_updates_carried_only_the_new_rows(executed):
    notebook, messages = executed
    feed = [c for i, kind, c in messages if i == 4 and "-feed-" in (c.get("transient") or {}).get("display_id", "")]
    updates = [u for c in feed for u in deltas(c["data"])]
    assert [u["steps"] for u in updates] == [STEPS[20:25], STEPS[25:]]
    for u in updates:
        vals = floats(u["values"]).reshape(len(u["steps"]), 2, 10)
        want = np.array([[[value(e, r, p, s) for e in (1, 2) for r in range(5)] for p in (0, 1)]
                         for s in u["steps"]])
        assert np.allclose(vals, want, rtol=1e-6)
    figure_sized = [c for i, kind, c in messages if i == 4 and len(c.get("data", {}).get("text/html", "")) > 10_000]
    assert len(figure_sized) == 1  # the one redraw when the cell finished, after both updates
    assert messages.index(next(m for m in messages if m[0] == 4 and m[2] is figure_sized[0])) > \
        messages.index(next(m for m in messages if m[0] == 4 and m[2] is feed[1]))


def test_the_executed_notebook_shows_bad_input_as_the_builds_messages(executed):
    notebook, _ = executed
    (typo,) = cell_html(notebook, 10)
    assert "placeholder ⟦alpah⟧ has no data in the DataFrame; did you mean ⟦alpha⟧?" in typo
    (columns,) = cell_html(notebook, 11)
    assert "column &#39;run&#39; missing" in columns and "<script" not in columns
    (nan,) = cell_html(notebook, 12)
    assert "300 value(s) are NaN or infinite" in nan and 'class="sg-strip"' in nan
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
