"""A figure outside a site: one self-contained HTML file (``figure(...).save_html("model.html")``).

The file holds everything it shows: the figure as the build draws it (server-rendered SVG at the final
step), its animation data inline as a ``data:`` URL (figures.js decodes it without fetching), and the
runtime and stylesheet inline. It opens from ``file://``, offline, with nothing fetched, animation
included; a Content-Security-Policy is not a concern there (the site's pages keep theirs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sitegen.figures.svg import esc

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.notebook.handle import _Handle

PACKAGE = Path(__file__).resolve().parent

#: the little page around the figure: readable type, light and dark, the figure as wide as it needs
PAGE_CSS = """
:root { color-scheme: light dark; --bg: #fdfdfd; --text: #1a1a1a; --muted: #5c5c5c; --rule: #bbb; }
@media (prefers-color-scheme: dark) { :root { --bg: #16171a; --text: #e6e6e6; --muted: #a8a8a8; --rule: #555; } }
body { margin: 0; background: var(--bg); color: var(--text); font: 17px/1.55 Georgia, "Times New Roman", serif; }
main { max-width: 64rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font: 600 1.35rem/1.3 system-ui, sans-serif; margin: 0 0 1rem; }
.sg-controls, .sg-step, .sg-key, figcaption { font-family: system-ui, sans-serif; }
.sg-expr { overflow-x: auto; }
"""


def page_html(figure_html: str, title: str = "") -> str:
    """The whole file for one drawn figure (the ``<figure>`` element a directive or a cell renders)."""
    css = (PACKAGE / "static" / "figures.css").read_text(encoding="utf-8")
    js = (PACKAGE / "static" / "figures.js").read_text(encoding="utf-8")
    js = js.replace("</script", "<\\/script")  # cannot end its own element
    css = css.replace("</style", "<\\/style")
    heading = f"<h1>{esc(title)}</h1>\n" if title else ""
    return ("<!doctype html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title or 'Figure')}</title>\n"
            f"<style>{PAGE_CSS}{css}</style>\n</head>\n<body>\n<main>\n{heading}{figure_html}\n</main>\n"
            f"<script>{js}</script>\n</body>\n</html>\n")


@dataclass
class SavedPage:
    """What :func:`save_html` wrote (shown in the cell); ``problem`` says why nothing was written."""

    path: str = ""
    size: int = 0
    problem: str = ""

    def _repr_mimebundle_(self, include=None, exclude=None):
        if self.problem:
            return {"text/plain": f"error: {self.problem}",
                    "text/html": f'<p class="sg-nb-problems" role="alert"><strong>Not saved.</strong> {esc(self.problem)}</p>'}
        text = f"Saved {self.path} ({self.size / 1024:,.0f} KB): one page with everything inside; open it from disk."
        return {"text/plain": text, "text/html": f"<p>{esc(text)}</p>"}

    def __str__(self) -> str:
        return self.path


def save_html(handle: "_Handle", path, title: str | None = None) -> SavedPage:
    """Write ``handle``'s figure (a notebook :class:`~sitegen.notebook.Figure` or ``Chart``) to ``path``
    as one self-contained page."""
    drawn = handle._render()
    if handle._problem:
        return SavedPage(problem=handle._problem)
    if drawn is None or not drawn.ok:
        first = next((p.message for p in (drawn.problems if drawn else []) if p.level == "error"),
                     "the figure has no rows yet")
        return SavedPage(problem=f"nothing written: {first}")
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        target = target.with_suffix(".html")
    data = page_html(drawn.html, title or "").encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        return SavedPage(problem=f"could not write {target}: {exc.strerror or exc}")
    return SavedPage(str(target), len(data))
