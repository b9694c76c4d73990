"""What a directive may ask of the page it is rendered into.

A :class:`PageContext` lives for one render of one post. It collects everything the render
produced besides HTML: problems, files read (the build graph uses them to know what to rebuild),
files to write beside the page (figure data), scripts the page needs, numbered captions and
labels for cross-references.
"""
from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitegen.errors import Problem


@dataclass
class Label:
    label: str
    kind: str      # "Visualization", "Chart", ...
    number: int
    anchor: str    # the HTML id to link to
    line: int


@dataclass
class PageContext:
    #: path of the post as shown in messages (relative to the site root)
    path: str
    #: the site's root folder (where content/, data/, templates/ live)
    root: Path
    #: the folder holding the post's source (for relative paths)
    source_dir: Path
    #: the data catalog (``sitegen.data.Catalog``); created lazily so pages without data stay light
    catalog: Any = None
    #: site configuration (``sitegen.config.Config``)
    config: Any = None
    problems: list[Problem] = field(default_factory=list)
    #: absolute paths of every file this render read besides the post itself
    deps: set[str] = field(default_factory=set)
    #: files to write into the page's output folder: name -> bytes
    files: dict[str, bytes] = field(default_factory=dict)
    #: static assets (by name in sitegen/static or the site's static/) the page must load
    scripts: list[str] = field(default_factory=list)
    labels: dict[str, Label] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)
    #: free-form flags the template may read (e.g. {"has_figures": True})
    meta: dict[str, Any] = field(default_factory=dict)
    #: the Markdown renderer (:mod:`sitegen.markdown`, set when it renders the page): directives
    #: render Markdown nested in them through :meth:`render_inline` and :meth:`render_fragment`
    markup: Any = None

    # -- Markdown nested in a directive -----------------------------------------------
    def render_inline(self, text: str, line: int) -> str:
        """A directive's title or caption as inline HTML (math, roles, ``{ref}``), by the page's renderer;
        escaped text when the page has none."""
        if self.markup is None:
            return html.escape(text)
        return self.markup.render_inline(text, self, line)

    def render_fragment(self, text: str, line: int) -> str:
        """A directive's body as HTML, by the page's renderer; an escaped paragraph when the page has none."""
        if self.markup is None:
            return f"<p>{html.escape(text)}</p>\n"
        return self.markup.render_fragment(text, self, line)

    # -- problems -------------------------------------------------------------------
    def error(self, line: int | None, message: str, path: str | None = None) -> None:
        self.problems.append(Problem(path or self.path, line, message, "error"))

    def warn(self, line: int | None, message: str, path: str | None = None) -> None:
        self.problems.append(Problem(path or self.path, line, message, "warning"))

    # -- files ----------------------------------------------------------------------
    def resolve(self, relpath: str) -> Path:
        """A path written in a post: relative to the post's folder if it exists there, else to the site root."""
        p = Path(relpath)
        if p.is_absolute():
            return p
        beside = self.source_dir / p
        if beside.exists():
            return beside
        return self.root / p

    def display(self, path: Path) -> str:
        """A path as shown in messages: relative to the site root when possible."""
        try:
            return str(Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def depend(self, path: Path | str) -> None:
        self.deps.add(str(Path(path).resolve()))

    def add_file(self, stem: str, data: bytes, suffix: str) -> str:
        """Write ``data`` beside the page under a content-hashed name; returns the relative URL."""
        digest = hashlib.sha256(data).hexdigest()[:10]
        name = f"{stem}.{digest}{suffix}"
        self.files[name] = data
        return name

    def use_script(self, name: str) -> None:
        if name not in self.scripts:
            self.scripts.append(name)

    # -- numbering, ids and labels ----------------------------------------------------
    def next_number(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def unique_id(self, base: str) -> str:
        """An HTML id not used before on this page."""
        candidate, n = base, 1
        while candidate in self._ids:
            n += 1
            candidate = f"{base}-{n}"
        self._ids.add(candidate)
        return candidate

    def add_label(self, label: str, kind: str, number: int, anchor: str, line: int) -> None:
        if label in self.labels:
            self.error(line, f"label '{label}' is already used on line {self.labels[label].line}; "
                             "give each figure its own :label:")
            return
        self.labels[label] = Label(label, kind, number, anchor, line)
