"""Figures drawn from traced data: parsing templates, scales, SVG, the animation encoding.

Everything here is a pure function of data and options (no page, no disk): the directives in
``sitegen.directives`` and the notebook view wire it to pages. Modules:

- :mod:`~sitegen.figures.template`: the ``⟦name | settings⟧`` placeholder syntax
- :mod:`~sitegen.figures.scale`: scales, ticks, number formatting
- :mod:`~sitegen.figures.strips`: expression figures (inline strip plots per placeholder)
- :mod:`~sitegen.figures.lines`: line charts with bands and legends
- :mod:`~sitegen.figures.encode`: the compact animation data the browser fetches
- :mod:`~sitegen.figures.page`: what both directives share (captions, numbering, the figure element);
  their options are read in :mod:`sitegen.directives.options`, never here
"""
