"""A figure's problems in the cell: the build's messages, with option names as Python keywords, as
plain HTML (shown by every notebook, trusted or not) and as text."""
from __future__ import annotations

from sitegen.errors import Problem
from sitegen.figures.svg import esc
from sitegen.notebook.keywords import _python_names


def _where(problem: Problem) -> str:
    return f"template line {problem.line}: " if problem.line else ""


def _clean(message: str, kind: str, known: tuple[str, ...]) -> str:
    for prefix in (f"{kind}: ", "expression: ", "chart: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    return _python_names(message, known)


def problems_html(problems: list[Problem], kind: str, known: tuple[str, ...], drawn: bool) -> str:
    """Errors and warnings as plain HTML (no script or style needed, so every notebook shows them)."""
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level != "error"]
    out = []
    if errors:
        items = "".join(f"<li>{esc(_where(p) + _clean(p.message, kind, known))}</li>" for p in errors)
        out.append(f'<div class="sg-nb-problems" role="alert"><p><strong>Figure not drawn.</strong> '
                   f'Fix this and run the cell again:</p><ul>{items}</ul></div>')
    if warnings:
        items = "".join(f"<li>{esc(_where(p) + _clean(p.message, kind, known))}</li>" for p in warnings)
        out.append(f'<div class="sg-nb-problems sg-nb-warnings"><p><strong>Warning{"s" if len(warnings) > 1 else ""}'
                   f'</strong>:</p><ul>{items}</ul></div>')
    return "".join(out)


def problems_text(problems: list[Problem], kind: str, known: tuple[str, ...]) -> str:
    lines = []
    for p in problems:
        label = "error" if p.level == "error" else "warning"
        lines.append(f"{label}: {_where(p)}{_clean(p.message, kind, known)}")
    return "\n".join(lines)


def _problem_box(message: str) -> str:
    return (f'<div class="sg-nb-problems" role="alert"><p><strong>Figure not drawn.</strong> '
            f'Fix this and run the cell again:</p><ul><li>{esc(message)}</li></ul></div>')
