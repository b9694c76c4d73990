"""What every output carries with it: the browser runtime (figures.js and notebook.js as one inline
script) and the figure styles, scoped to the notebook's own theme, because a notebook has no site to
load them from."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sitegen.figures.svg import json_island

PACKAGE = Path(__file__).resolve().parent.parent
_ASSETS: dict[str, str] = {}


def _runtime() -> str:
    """figures.js then notebook.js, as one inline script (the same file the site serves)."""
    if "js" not in _ASSETS:
        js = (PACKAGE / "static" / "figures.js").read_text(encoding="utf-8") + "\n" + \
             (PACKAGE / "static_notebook" / "notebook.js").read_text(encoding="utf-8")
        _ASSETS["js"] = js.replace("</script", "<\\/script")  # cannot end its own <script> element
    return _ASSETS["js"]


DARK = ':is(body[data-jp-theme-light="false"], body.vscode-dark, body.vscode-high-contrast:not(.vscode-high-contrast-light))'


def notebook_css() -> str:
    """figures.css for a notebook: its dark palette follows the notebook's theme (JupyterLab, VS Code)
    rather than the operating system's, and a few rules place the output. Every rule stays on .sg-*."""
    if "css" not in _ASSETS:
        css = (PACKAGE / "static" / "figures.css").read_text(encoding="utf-8")
        out, pos = [], 0
        for m in re.finditer(r"@media \(prefers-color-scheme: dark\) \{", css):
            depth, i = 1, m.end()
            while depth and i < len(css):
                depth += {"{": 1, "}": -1}.get(css[i], 0)
                i += 1
            out.append(css[pos:m.start()])
            for sel, decl in re.findall(r"([^{}]+)\{([^{}]*)\}", css[m.end():i - 1]):
                scoped = ", ".join(f"{DARK} {s.strip()}" for s in sel.split(",") if s.strip())
                out.append(f"{scoped} {{{decl}}}\n")
            pos = i
        out.append(css[pos:])
        out.append("\n/* notebook outputs */\n"
                   ".sg-nb .sg-figure { margin: .5rem 0; }\n"
                   ".sg-nb-problems { margin: .4rem 0; padding: .25rem .75rem; border-left: 4px solid #A63D0A; }\n"
                   ".sg-nb-problems.sg-nb-warnings { border-left-color: #E69F00; }\n"
                   ".sg-nb-problems ul { margin: .2rem 0; padding-left: 1.2rem; }\n"
                   ".sg-nb-feed { font-size: .85em; opacity: .85; margin: 0; }\n"
                   ".sg-nb-feed p { margin: 0; }\n")
        _ASSETS["css"] = "".join(out)
    return _ASSETS["css"]


def _css_island() -> str:
    css = notebook_css()
    version = hashlib.sha256(css.encode()).hexdigest()[:10]
    return json_island(css, "sg-nb-css").replace("<script ", f'<script data-v="{version}" ', 1)
