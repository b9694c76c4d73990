"""sitegen: a static-site generator for model-visualization essays."""

__version__ = "0.1.0"
