"""The site's figures in a Jupyter notebook, and live while a model trains.

    from sitegen import figure, chart

    fig = figure(df, "y = ⟦w⟧ * x + ⟦b⟧", log="w")   # df: a traced table, long or wide
    fig                                              # shown in the cell
    for step in range(1000):
        ...
        fig.append(rows)                             # only these rows travel to the browser
    fig.save("data/linear")                          # data/linear.parquet + data/linear.expr for a post

A figure here is drawn by the same code as on the site: the ``{expression}`` and ``{chart}``
directives render it from the DataFrame (options are the directive's options, written as Python
keywords: ``max_runs=5`` for ``:max-runs: 5``), so a notebook shows the same SVG and reports the same
problems as a build, as readable text in the cell. The browser runtime (``static/figures.js``) and its
styles travel inside the output, because a notebook has no site to load them from.

How an output reaches the reader, and why:

- Each output holds the figure twice: as live HTML with inline SVG (shown once the runtime runs) and as
  one static SVG picture in an ``<img>`` (shown when it does not). JupyterLab and Notebook 7 run scripts
  only in outputs they trust (made in this session), and sanitise the others, removing inline SVG,
  styles and scripts but keeping images; the picture is what a reopened, untrusted notebook shows.
- Live updates travel as small messages in a second output (``update_display`` on one display id per
  figure and cell), read by the runtime the figure already loaded: only new rows, as float32 values
  per dot, plus an axis when it must widen. An ipykernel comm would need a frontend extension in
  JupyterLab (plain HTML outputs cannot open one) and does not survive a page reload; display updates
  work in every frontend that shows HTML, with nothing to install, and nbclient records them.
- ``fig.update(df)`` with a table of the same shape (the same runs, parameters and steps; only values
  differ) sends new values for the drawing the browser holds, not a drawing: each dot's position, the
  axes' ends and printed scale, the tooltips' numbers and the animation frames, as the server drew them
  for the new table (``values``), so the figure ends as a full redraw would draw it. Anything else
  (a new run, another step, a new warning) redraws the figure.
- When the cell that sent updates finishes, the figure's own outputs are redrawn once from the whole
  table (``settle=False`` turns this off), so the saved notebook holds the final figure, not the first.

pandas is imported inside functions, like the rest of the builder; this module never imports
``sitegen.build``.

The package, one concern per module: ``keywords`` (arguments -> directive options), ``draw`` (the
directive renders a DataFrame), ``picture`` (the static SVG image), ``bundle`` (the runtime and styles
every output carries), ``problems`` (messages in the cell), ``transport`` (IPython display), ``handle``
(a shown figure and its live updates), ``views`` (Figure and Chart), ``live_expression`` (what a live
update of an expression sends), ``values`` (new values for a drawing of the same shape).
"""
from __future__ import annotations

# the names tests and scripts reach for as sitegen.notebook.NAME, as before the split
import time  # noqa: F401
from sitegen.figures.svg import esc  # noqa: F401
from sitegen.notebook import transport  # noqa: F401
from sitegen.notebook.handle import Saved  # noqa: F401
from sitegen.notebook.keywords import INTERVAL, OWN, SOURCE, option_text  # noqa: F401
from sitegen.notebook.transport import Transport, _after_cell  # noqa: F401
from sitegen.notebook.views import Chart, Figure

__all__ = ["figure", "chart", "Figure", "Chart"]


# -- public API ------------------------------------------------------------------------------------
def figure(data=None, template: str | None = None, **options) -> "Figure":
    """An expression figure: ``template`` (the model as text, ``⟦name⟧`` where each parameter goes)
    with every parameter of ``data`` drawn in place.

    ``data`` is a pandas DataFrame of traced values: long (``experiment``, ``run``, ``step``, ``param``,
    ``value``) or wide (one column per parameter, index columns such as ``i_config``, ``i_timestep``).
    It may be left out and sent later with :meth:`Figure.append`. ``options`` are the
    ``{expression}`` directive's options as keywords (``log="lengthscale*"``, ``max_runs=5``,
    ``steps=(0, 5000)``, ``range={"w": (0, 1)}``, ``columns={"run": "seed"}``, ``caption="..."``),
    plus ``name`` (what messages call the table), ``settle`` (redraw from the whole table when a cell
    that sent live updates ends; default True) and ``interval`` (seconds between live messages).
    """
    return Figure(data, template=template, **options)


def chart(data=None, **options) -> "Chart":
    """A line chart of ``data`` with the ``{chart}`` directive's options as keywords
    (``x="step"``, ``y="loss"``, ``series="model"``, ``run="seed"``, ``logy=True``, ``band=(10, 90)``).

    A chart redraws in full when rows arrive (its drawing holds at most 500 points per line, not the
    table), at most once per ``interval`` seconds.
    """
    return Chart(data, **options)
