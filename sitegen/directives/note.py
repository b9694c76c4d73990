"""``{note}``, ``{tip}``, ``{warning}``: callouts whose body is ordinary Markdown.

    ```{note} Optional title
    Body in **Markdown**.
    ```
"""
from __future__ import annotations

from markdown_it.common.utils import escapeHtml

from sitegen.directives import Call, Directive, register


class Callout(Directive):
    options = ("class",)

    def __init__(self, name: str, default_title: str):
        self.name = name
        self.default_title = default_title
        self.summary = f"a '{default_title}' callout; the argument is an optional title, the body is Markdown"

    def render(self, call: Call, ctx) -> str:
        title = ctx.render_inline(call.argument, call.line) if call.argument else escapeHtml(self.default_title)
        body = ctx.render_fragment(call.body, call.body_line)
        extra = " ".join(escapeHtml(c) for c in call.options.get("class", "").split())
        cls = f"callout callout-{self.name}" + (f" {extra}" if extra else "")
        return (f'<aside class="{cls}" role="note">\n<p class="callout-title">{title}</p>\n'
                f"{body}</aside>\n")


for _name, _title in (("note", "Note"), ("tip", "Tip"), ("warning", "Warning")):
    register(Callout(_name, _title))
