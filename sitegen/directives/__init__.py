"""Directives: MyST-style fenced blocks that turn into figures, callouts and other HTML.

An author writes::

    ```{name} argument
    :option: value
    body text
    ```

The markdown plugin (``sitegen.markdown``) parses that into a :class:`Call` and hands it to the
registered :class:`Directive` of that name, together with the page's
:class:`~sitegen.context.PageContext`. A directive returns HTML; it reports bad input through
``ctx.error(line, message)`` (or by raising :class:`~sitegen.errors.SiteError`) and never lets a
traceback reach the user. Inline roles (```{name}`content` ```) work the same way through :class:`Role`.

Adding a directive is one module with one class and a ``register(...)`` call, like a
markdown-it plugin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.context import PageContext


@dataclass
class Call:
    """One use of a directive in a post. Line numbers are 1-based lines of the post's file."""

    name: str
    argument: str
    options: dict[str, str]
    option_lines: dict[str, int]
    body: str
    line: int        # the opening fence
    body_line: int   # the first line of the body (after the options)

    def option_line(self, key: str) -> int:
        return self.option_lines.get(key, self.line)


class Directive:
    """Base class: set ``name`` and ``options`` and implement :meth:`render`."""

    name: str = ""
    options: tuple[str, ...] = ()
    #: a short line for error messages and the README reference
    summary: str = ""

    def render(self, call: Call, ctx: "PageContext") -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class Role:
    """An inline role, written ```{name}`content` ``` in prose."""

    name: str = ""
    summary: str = ""

    def render(self, content: str, line: int, ctx: "PageContext") -> str:  # pragma: no cover
        raise NotImplementedError


@dataclass
class Registry:
    directives: dict[str, Directive] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)


REGISTRY = Registry()


def register(directive: Directive) -> Directive:
    REGISTRY.directives[directive.name] = directive
    return directive


def register_role(role: Role) -> Role:
    REGISTRY.roles[role.name] = role
    return role


_loaded = False


def load_builtin() -> Registry:
    """Import the bundled directive modules (each registers itself) and return the registry. The
    markdown renderer calls this at the first directive or role it meets (the modules and the
    figures they import cost a one-post rebuild 45 ms), so it is cheap after the first call."""
    global _loaded
    if not _loaded:
        import importlib
        import pkgutil

        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return REGISTRY
