"""Regenerate the code-highlighting block at the end of sitegen/static/style.css.

Pygments styles are not designed for our backgrounds, and several of their colours fail WCAG AA
contrast (axe flags them). This takes a light and a dark style and nudges every colour that is below
4.5:1 against our code background toward black or white until it passes.

    python scripts/code_colours.py > /tmp/code.css   # then replace the block in style.css
"""
from __future__ import annotations

import re

from pygments.formatters import HtmlFormatter

LIGHT_STYLE, LIGHT_BG = "friendly", "#f3f2ee"
DARK_STYLE, DARK_BG = "monokai", "#212226"


def luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def expand(colour: str) -> str:
    colour = colour.lower()
    return "#" + "".join(c * 2 for c in colour[1:]) if len(colour) == 4 else colour


def fix(colour: str, background: str, target: float = 4.6) -> str:
    colour = expand(colour)
    toward = 0 if luminance(expand(background)) > 0.5 else 255
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    for _ in range(100):
        candidate = "#" + "".join(f"{c:02x}" for c in rgb)
        if contrast(candidate, background) >= target:
            return candidate
        rgb = [round(c + (toward - c) * 0.08) for c in rgb]
    return "#000000" if toward == 0 else "#ffffff"


def block(style: str, background: str) -> list[str]:
    css = HtmlFormatter(style=style).get_style_defs(".highlight")
    lines = []
    for line in css.splitlines():
        if line.startswith(("pre {", ".highlight .hll", ".highlight {", "td.", "span.")) or "line-height" in line:
            continue
        line = re.sub(r"background-color: #[0-9a-fA-F]{3,6};?", "", line)
        line = re.sub(r"border: 1px solid #[0-9a-fA-F]{3,6};?", "", line)
        line = re.sub(r"(?<![-\w])color: (#[0-9a-fA-F]{3,6})", lambda m: f"color: {fix(m.group(1), background)}", line)
        lines.append(line)
    return lines


def main() -> None:
    print(f"/* Code colours: Pygments '{LIGHT_STYLE}' and '{DARK_STYLE}', adjusted to WCAG AA contrast by scripts/code_colours.py. */")
    print("\n".join(block(LIGHT_STYLE, LIGHT_BG)))
    print("@media (prefers-color-scheme: dark) {")
    print("\n".join("  " + line for line in block(DARK_STYLE, DARK_BG)))
    print("}")


if __name__ == "__main__":
    main()
