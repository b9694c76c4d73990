"""sitegen: a static-site generator for model-visualization essays."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from sitegen import figure, chart`` in a notebook, without ``import sitegen`` loading them
    (or pandas) for the builder."""
    if name in ("figure", "chart"):
        from sitegen import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'sitegen' has no attribute {name!r}")
