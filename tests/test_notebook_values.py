"""``fig.update(df)`` with new values for a figure of the same shape sends those values, not a drawing:
what the message carries turns the drawing the browser holds into the new one exactly; any change of
shape redraws (sitegen/notebook/values.py)."""
from __future__ import annotations

import base64
import html as htmlmod
import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sitegen.notebook as nb
from sitegen import figure
from sitegen.notebook import values
from sitegen.notebook.draw import draw
from test_notebook import STEPS, TEMPLATE, deltas, rows, sent  # noqa: F401 (sent: a fixture)


def scaled(df, k=1.5, shift=0.0):
    out = df.copy()
    out["value"] = out["value"] * k + shift
    return out


def apply(old_html: str, msg: dict) -> str:
    """What the runtime does with a values message, done to the old drawing's markup (independently of
    values.split): the result must be the new drawing's markup."""
    x = np.frombuffer(base64.b64decode(msg["x"]), dtype="<u2").tolist()
    dots = iter(x)

    def circle(m):
        code = next(dots)
        if code == values.HIDDEN:
            return f'<circle cx="3"{m.group(2)} visibility="hidden"/>'
        return f'<circle cx="{code / 10:g}"{m.group(2)}/>'

    out = re.sub(r'<circle cx="([^"]*)"( cy="[^"]*" r="[^"]*")(?: visibility="hidden")?/>', circle, old_html)
    assert next(dots, None) is None
    out = out.replace(f'data-sg-rev="{msg["from"]}"', f'data-sg-rev="{msg["rev"]}"')
    strips = out.split('<svg class="sg-strip"')
    for i, axis in enumerate(msg.get("axes") or []):
        s = strips[i + 1]
        lo, hi, a, b, zero = axis
        s = re.sub(r'(<text class="sg-lo"[^>]*>)[^<]*', lambda m: m.group(1) + htmlmod.escape(a), s, count=1)
        s = re.sub(r'(<text class="sg-hi"[^>]*>)[^<]*', lambda m: m.group(1) + htmlmod.escape(b), s, count=1)
        s = re.sub(r'<line class="sg-zero"[^>]*/>', "", s)
        if zero is not None:
            h = re.search(r'<rect class="sg-bg"[^>]* height="([^"]*)"', s).group(1)
            s = re.sub(r'(<rect class="sg-bg"[^>]*/>)', lambda m: m.group(1) + (
                f'<line class="sg-zero" x1="{zero}" x2="{zero}" y1="0" y2="{h}" stroke="#888888" stroke-width="1"/>'), s)
        strips[i + 1] = s
    for i, label in enumerate(msg.get("labels") or []):
        if label is not None:
            esc = htmlmod.escape(label)
            strips[i + 1] = re.sub(r'aria-label="[^"]*"><title>[^<]*</title>',
                                   lambda m: f'aria-label="{esc}"><title>{esc}</title>', strips[i + 1], count=1)
    for i, (bx, bw, text) in enumerate(msg.get("bars") or []):
        s = strips[i + 1]
        if bx is not None:
            s = re.sub(r'<rect class="sg-bar" x="[^"]*"( y="[^"]*") width="[^"]*"',
                       lambda m: f'<rect class="sg-bar" x="{bx}"{m.group(1)} width="{bw}"', s)
        s = re.sub(r'(<text class="sg-val"[^>]*>)[^<]*', lambda m: m.group(1) + htmlmod.escape(text), s)
        strips[i + 1] = s
    return '<svg class="sg-strip"'.join(strips)


def without_island(html: str) -> str:
    return re.sub(r'<script type="application/json" class="sg-data">.*?</script>', "", html, flags=re.S)


def island(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" class="sg-data">(.*?)</script>', html, re.S).group(1))


def test_new_values_send_a_small_message_not_a_drawing(sent):
    fig = figure(rows(STEPS), TEMPLATE, interval=0)
    fig._ipython_display_()
    first = len(sent.log[0][2]["text/html"])
    new = rows(STEPS)
    new["value"] = np.sin(new["value"] * 3) * 5  # other frames, another axis, values across zero
    fig.update(new)
    assert [k for k, _ in fig.sent] == ["values"]
    kind, display, bundle = sent.log[-1]
    assert "-feed-" in display and "<svg" not in bundle["text/html"] and len(bundle["text/html"]) < first / 20
    (msg,) = deltas(bundle)
    fresh = draw("expression", new, TEMPLATE, {}, "tok")
    assert msg["kind"] == "values" and msg["final"] == island(fresh.html)["final"]
    assert msg["data"] == island(fresh.html)["data"]  # the animation frames of the new table
    assert [a[:2] for a in msg["axes"]] == [[p["lo"], p["hi"]] for p in island(fresh.html)["ph"]]
    assert all(a[4] is not None for a in msg["axes"])  # the zero lines the new axes need
    fig.update(new.copy())  # the same table again: nothing to send
    assert len(fig.sent) == 1
    nb._after_cell()  # the cell ends: the figure is drawn once from the whole table, for the saved notebook
    assert [k for k, _ in fig.sent] == ["values", "redraw"]


def test_without_steps_the_dots_and_their_numbers_travel(sent):
    start = rows([0]).drop(columns="step")
    fig = figure(start, TEMPLATE, interval=0)
    fig._ipython_display_()
    fig.update(scaled(start, 0.5))
    (msg,) = deltas(sent.log[-1][2])
    assert "data" not in msg and len(sent.log[-1][2]["text/html"]) < 1200


@pytest.mark.parametrize("change", ["new run", "new step", "nan warning", "log axis", "after growth", "chart"])
def test_a_change_of_shape_redraws(sent, change):
    base = rows(STEPS)
    kw = {"log": "auto"} if change == "log axis" else {}
    if change == "log axis":
        base["value"] = base["value"].abs() + 1
    fig = (nb.chart(base, x="step", y="value", series="param", interval=0) if change == "chart"
           else figure(base, TEMPLATE, interval=0, **kw))
    fig._ipython_display_()
    new = scaled(base, 1.1)
    if change == "new run":
        new = pd.concat([new, rows(STEPS, runs=[9])], ignore_index=True)
    elif change == "new step":
        new = scaled(rows(STEPS + [300]), 1.1)
    elif change == "nan warning":
        new.loc[0, "value"] = float("nan")
    elif change == "log axis":
        new["value"] = np.where(new["param"] == "alpha", 10.0 ** (new["value"] * 2), new["value"])
    elif change == "after growth":
        fig.append(rows([300]))  # the browser's copy grew live: it holds no drawing the server made
        new = scaled(rows(STEPS + [300]), 1.1)
    fig.update(new)
    assert fig.sent[-1][0] == "redraw"
    assert sent.log[-1][0] == "replace" and "-feed-" not in sent.log[-1][1]


def test_a_second_copy_shown_after_growth_gets_a_redraw(sent):
    fig = figure(rows(STEPS[:20]), TEMPLATE, interval=0)
    fig._ipython_display_()
    fig.append(rows(STEPS[20:]))
    fig._ipython_display_()  # this copy holds the drawing of the whole table; the first one grew
    fig.update(scaled(rows(STEPS), 2))
    assert fig.sent[-1][0] == "redraw"
    fig.update(scaled(rows(STEPS), 3))  # both copies now hold the same drawing
    assert fig.sent[-1][0] == "values"


shapes = st.sampled_from([(STEPS[:4], 5), (None, 5), (None, 1), (STEPS[:3], 1)])
numbers = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e-3, 1e-3), st.just(0.0),
                    st.just(float("nan")), st.just(float("inf")), st.floats(0.5, 2.0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, data=st.data())
def test_applying_the_message_to_the_old_drawing_gives_the_new_one(shape, data):
    steps, runs = shape

    def table():
        df = rows(steps or [0], runs=range(runs))
        df["value"] = data.draw(st.lists(numbers, min_size=len(df), max_size=len(df)))
        return df if steps else df.drop(columns="step")

    options = {"experiments": "1"} if runs == 1 else {}  # one run of one experiment: a bar and its number
    old = draw("expression", table(), TEMPLATE, options, "tok")
    new = draw("expression", table(), TEMPLATE, options, "tok")
    if not (old.ok and new.ok):
        return
    msg = values.message(values.split(old), values.split(new))
    if msg is None:  # another shape: then the drawings differ in more than what a message carries
        a, b = values.split(old), values.split(new)
        assert (a.shape, a.island_shape, a.problems) != (b.shape, b.island_shape, b.problems)
        return
    if msg == {}:
        assert old.html == new.html
        return
    assert without_island(apply(old.html, msg)) == without_island(new.html)
