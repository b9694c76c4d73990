"""The bad-input corpus: one small site per careless or hostile input of issue #12.

Each case is built through the CLI in this process. It must give its expected `path:line: message`
(an error: exit 1 and no output written; a warning: exit 0), never a traceback or an "internal
error", and leave every file outside the output byte-identical (the output folder cases are in
tests/test_output.py, the kills in tests/test_kill.py, the notebook API at the end here).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from sitegen.cli import main

FRONT = "---\ntitle: A\ndate: 2024-01-01\n---\n"
CONFIG = 'title = "t"\nbase_url = "https://example.org/"\n'
CSV = "experiment,run,step,param,value\n1,0,0,w,1.0\n1,0,1,w,2.0\n"


def laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "---\ntitle: A\n" + "\n".join(lines) + "\n---\nText.\n"


@dataclass
class Case:
    name: str
    files: dict                      # path -> text, bytes, or ("symlink", target under the outside folder)
    expect: str                      # the start of one printed problem line
    level: str = "error"             # "error": exit 1, nothing written; "warning": built; "ok": built, silent
    also: list = field(default_factory=list)  # more text the output must hold
    category: str = "silent"         # "traceback", "hang", "silent": how the issue found it


def post(body: str, front: str = FRONT) -> dict:
    return {"content/a.md": front + body}


CASES = [
    # -- front matter: tracebacks and hangs before ----------------------------------------------------
    Case("year 1", post("Text.\n", "---\ntitle: A\ndate: 0001-01-01\n---\n"),
         "content/a.md:3: date 0001-01-01 is out of range; write a year from 1000 to 9999", category="traceback"),
    Case("updated in year 1", post("Text.\n", "---\ntitle: A\ndate: 2024-01-01\nupdated: 0001-01-01\n---\n"),
         "content/a.md:4: updated 0001-01-01 is out of range", category="traceback"),
    Case("year 1 in the file name", {"content/0001-01-01-old.md": "---\ntitle: A\n---\nText.\n"},
         "content/0001-01-01-old.md: date 0001-01-01 is out of range", category="traceback"),
    Case("billion laughs", {"content/a.md": laughs()},
         "content/a.md:2: front matter holds more than 10,000 values once its YAML aliases", category="hang"),
    Case("alias holding itself", post("Text.\n", "---\ntitle: A\nx: &x [1, *x]\n---\n"),
         "content/a.md:2: front matter nests more than 50 levels deep, or a YAML alias refers to itself",
         category="hang"),
    Case("YAML nested 100,000 deep", post("Text.\n", "---\ntitle: A\nx: " + "[" * 100_000 + "]" * 100_000 + "\n---\n"),
         "content/a.md:2: front matter nests lists or mappings more than 50 levels deep", category="traceback"),
    Case("slug index.html", post("Text.\n", "---\ntitle: A\nslug: index.html\ndate: 2024-01-01\n---\n"),
         "content/a.md:3: URL '/index.html/' is reserved by the site", category="traceback"),
    Case("slug robots.txt", post("Text.\n", "---\ntitle: A\nslug: robots.txt\ndate: 2024-01-01\n---\n"),
         "content/a.md:3: URL '/robots.txt/' is reserved by the site", category="traceback"),
    Case("slug 404.html", post("Text.\n", "---\ntitle: A\nslug: 404.html\ndate: 2024-01-01\n---\n"),
         "content/a.md:3: URL '/404.html/' is reserved by the site", category="traceback"),
    Case("slug sitemap.xml", post("Text.\n", "---\ntitle: A\nslug: sitemap.xml\ndate: 2024-01-01\n---\n"),
         "content/a.md:3: URL '/sitemap.xml/' is reserved by the site", category="traceback"),
    Case("a post folder named index.html", {"content/index.html/index.md": FRONT + "Text.\n"},
         "built", level="ok", category="traceback"),
    Case("slug of 300 characters", post("Text.\n", "---\ntitle: A\nslug: " + "a" * 300 + "\ndate: 2024-01-01\n---\n"),
         "content/a.md:3: slug is 300 characters long; keep it to 100", category="traceback"),
    Case("file name of 200 characters", {"content/" + "b" * 200 + ".md": FRONT + "Text.\n"},
         "content/" + "b" * 200 + ".md: the file name makes a slug of 200 characters", category="traceback"),
    Case("tag of 300 characters", post("Text.\n", "---\ntitle: A\ntags: [" + "t" * 300 + "]\ndate: 2024-01-01\n---\n"),
         "content/a.md:3: tag 'tttttttttttttttttttt'... is 300 characters long; keep tags to 100",
         category="traceback"),
    # -- {metric}: recursion, a huge format, an unclosed role ---------------------------------------------
    Case("metric nested 5,000 deep", {**post("X {metric}`data/p.json: " + "(" * 5000 + "1" + ")" * 5000 + "`.\n"),
                                      "data/p.json": '{"x": 1}'},
         "content/a.md:5: metric: the expression nests parentheses or signs more than 50 deep", category="traceback"),
    Case("metric minus signs 5,000 deep", {**post("X {metric}`data/p.json: " + "-" * 5000 + "1`.\n"),
                                           "data/p.json": '{"x": 1}'},
         "content/a.md:5: metric: the expression nests parentheses or signs more than 50 deep", category="traceback"),
    Case("provenance JSON nested 100,000 deep", {**post("X {metric}`data/p.json: x`.\n"),
                                                 "data/p.json": '{"x": 1, "y": ' + "[" * 100_000 + "]" * 100_000 + "}"},
         "content/a.md:5: data/p.json: JSON nested too deeply to read", category="traceback"),
    Case("metric field width 200,000,000", {**post("X {metric}`data/p.json: x | 200000000.2f`.\n"),
                                            "data/p.json": '{"x": 1}'},
         "content/a.md:5: metric: '200000000.2f' asks for a width or precision above 100", category="hang"),
    Case("metric precision of 5,000 digits", {**post("X {metric}`data/p.json: x | ." + "9" * 5000 + "f`.\n"),
                                              "data/p.json": '{"x": 1}'},
         "content/a.md:5: metric: '.9999999999",
         category="hang"),
    Case("metric without its closing backtick", {**post("X {metric}`data/p.json: x y.\n"), "data/p.json": '{"x": 1}'},
         "content/a.md:5: warning: {metric}` has no closing backtick", level="warning"),
    # -- titles -----------------------------------------------------------------------------------------
    Case("title as a list", post("Text.\n", "---\ntitle: [a, b]\ndate: 2024-01-01\n---\n"),
         "content/a.md:2: title must be text, not a list"),
    Case("title as a mapping", post("Text.\n", "---\ntitle: {a: b}\ndate: 2024-01-01\n---\n"),
         "content/a.md:2: title must be text, not a mapping"),
    Case("NUL in the title", post("Text.\n", '---\ntitle: "a\\0b"\ndate: 2024-01-01\n---\n'),
         "content/a.md:2: 'title' holds the control character U+0000; remove it"),
    Case("NUL in a tag", post("Text.\n", '---\ntitle: A\ntags: ["a\\x01"]\ndate: 2024-01-01\n---\n'),
         "content/a.md:3: 'tags' holds the control character U+0001; remove it"),
    Case("control character in a heading title", post("# Tit\x02le\n\nText.\n", "---\ndate: 2024-01-01\n---\n"),
         "content/a.md: the title heading holds the control character U+0002"),
    # -- paths leaving the site ----------------------------------------------------------------------------
    Case("metric path leaving the site", post("X {metric}`../outside/p.json: x`.\n"),
         "content/a.md:5: '../outside/p.json' leads outside the site's folder"),
    Case("chart path leaving the site", post("```{chart} ../../outside/secret.csv\n```\n"),
         "content/a.md:5: '../../outside/secret.csv' leads outside the site's folder"),
    Case("absolute data path", post("```{chart} {outside}/secret.csv\n```\n"),
         "content/a.md:5: '{outside}/secret.csv' leads outside the site's folder"),
    Case("template leaving the site", {**post("```{expression} data/t.csv\n:template: ../outside/m.expr\n```\n"),
                                       "data/t.csv": CSV},
         "content/a.md:6: '../outside/m.expr' leads outside the site's folder"),
    Case("data symlink leaving the site", {**post("```{chart} data/t.csv\n```\n"),
                                           "data/t.csv": ("symlink", "secret.csv")},
         "content/a.md:5: 'data/t.csv' leads outside the site's folder"),
    Case("post symlink leaving the site", {"content/a.md": ("symlink", "post.md")},
         "content/a.md: a symlink: this post leads outside the site's folder"),
    Case("bundle file symlink leaving the site", {"content/b/index.md": FRONT + "Text.\n",
                                                  "content/b/secret.csv": ("symlink", "secret.csv")},
         "content/b/secret.csv: a symlink: this bundle file leads outside the site's folder"),
    Case("public file symlink leaving the site", {**post("Text.\n"), "public/secret.csv": ("symlink", "secret.csv")},
         "public/secret.csv: a symlink: this file leads outside the site's folder"),
    Case("bundle holding its own index.html", {"content/b/index.md": FRONT + "Text.\n",
                                               "content/b/index.html": "<p>mine</p>"},
         "content/b/index.html: the post's page is /b/index.html, so this file of its folder would replace it"),
    # -- Markdown an author wants to hear about ---------------------------------------------------------------
    Case("unclosed code fence", post("Before.\n\n```python\nx = 1\n\nThe rest of the post.\n"),
         "content/a.md:7: warning: this code fence (```) is never closed", level="warning"),
    Case("undefined footnote", post("Text[^nope].\n"),
         "content/a.md:5: warning: footnote [^nope] is never defined", level="warning"),
    Case("unbalanced math", post("Text $\\frac{a}{b$ more.\n"),
         "content/a.md:5: warning: cannot convert the formula '\\frac{a}{b' to MathML (1 '{' never closed)",
         level="warning"),
    Case("literal ref marker in prose", post("X \x02ref:foo:1\x03 y.\n"),
         "content/a.md:5: warning: the text holds the control character U+0002", level="warning"),
    # -- templates ---------------------------------------------------------------------------------------------
    Case("template of 110,000 placeholders", {**post("```{expression} data/t.csv\n:template: data/big.expr\n```\n"),
                                              "data/t.csv": CSV, "data/big.expr": "⟦w⟧ + " * 110_000},
         "data/big.expr:1: more than 2,000 placeholders in one template", category="hang"),
    # -- sitegen.toml --------------------------------------------------------------------------------------------
    Case("feed_entries = -1", {**post("Text.\n"), "sitegen.toml": CONFIG + "feed_entries = -1\n"},
         "sitegen.toml:3: 'feed_entries' must be at least 1"),
    Case("base_url javascript:", {**post("Text.\n"), "sitegen.toml": 'base_url = "javascript:alert(1)//"\n'},
         "sitegen.toml:1: base_url 'javascript:alert(1)//' must start with http:// or https://"),
    Case("base_url without a scheme", {**post("Text.\n"), "sitegen.toml": 'base_url = "example.org/blog/"\n'},
         "sitegen.toml:1: base_url 'example.org/blog/' has no scheme"),
    Case("non-UTF-8 post", {"content/a.md": b"---\ntitle: A\n---\n\xff\xfe\n"},
         "content/a.md: not UTF-8 text"),
    Case("non-UTF-8 config", {**post("Text.\n"), "sitegen.toml": b"title = '\xff'\n"},
         "sitegen.toml: not UTF-8 text"),
]


def _make(root, files: dict, outside) -> None:
    (root / "sitegen.toml").write_text(CONFIG)
    for rel, value in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, tuple):
            os.symlink(outside / value[1], path)
        elif isinstance(value, bytes):
            path.write_bytes(value)
        else:
            path.write_text(value.replace("{outside}", str(outside)), encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys, tree):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(CSV)
    (outside / "p.json").write_text('{"x": 1}')
    (outside / "m.expr").write_text("⟦w⟧")
    (outside / "post.md").write_text(FRONT + "Secret.\n")
    root = tmp_path / "site"
    root.mkdir()
    _make(root, case.files, outside)
    out = root / "_site"
    before = tree.snapshot(tmp_path, exclude=[out, root / ".sitegen-cache"])
    code = main(["build", str(root)])
    printed = capsys.readouterr()
    text = printed.err + printed.out
    assert "Traceback" not in text and "internal error" not in text, text
    expect = case.expect.replace("{outside}", str(outside))
    if case.level == "error":
        assert code == 1, text
        assert not out.exists(), "a failed build wrote its output"
    else:
        assert code == 0, text
        assert out.is_dir()
    if case.level == "ok":
        assert "warning" not in text and "built" in text, text
    else:
        lines = text.splitlines()
        assert any(line.startswith(expect) for line in lines), f"expected {expect!r} in:\n{text}"
    for more in case.also:
        assert more in text
    tree.assert_untouched(before, tree.snapshot(tmp_path, exclude=[out, root / ".sitegen-cache"]))


def test_a_literal_ref_marker_is_not_taken_for_a_reference(site):
    site.post("a.md", FRONT + "X \x02ref:foo:1\x03 y.\n")
    result = site.build()
    page = site.page("a/index.html")
    assert "\x02" not in page and "\x03" not in page and "ref:foo:1" in page
    assert not [p for p in result.problems if p.level == "error"]


def test_thousands_of_same_headings_get_the_ids_they_always_had(site):
    site.post("a.md", FRONT + "## A\n\n## A\n\n## A-1\n\n" + "## Same\n\n" * 3000)
    site.build()
    page = site.page("a/index.html")
    for id_ in ("a", "a-1", "a-1-1", "same", "same-1", "same-2999"):
        assert f'id="{id_}"' in page
    assert 'id="same-3000"' not in page


# -- the notebook API ------------------------------------------------------------------------------------

@pytest.fixture
def table():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({"experiment": [1, 1], "run": [0, 1], "step": [0, 0], "param": ["w", "w"],
                         "value": [1.0, 2.0]})


def test_notebook_interval_that_is_not_a_number(table):
    from sitegen import figure

    fig = figure(table, "y = ⟦w⟧", interval="abc")
    assert repr(fig) == ("<sitegen expression (not drawn: interval='abc' must be a number of seconds (0 or more), "
                         "e.g. interval=0.5)>")
    assert "interval='abc'" in fig._repr_mimebundle_()["text/plain"]


def test_notebook_multiindex_columns(table):
    import pandas as pd

    from sitegen import figure

    wide = table.copy()
    wide.columns = pd.MultiIndex.from_tuples([("a", c) for c in table.columns])
    text = fig_text = repr(figure(wide, "y = ⟦w⟧"))
    assert "MultiIndex columns" in text and "flatten them first" in fig_text


def test_plain_python_repr_says_why_a_figure_was_not_drawn(table):
    from sitegen import figure

    assert repr(figure(table, "y = ⟦nope⟧")) == (
        "<sitegen expression (not drawn: error: template line 1: placeholder ⟦nope⟧ has no data in the "
        "DataFrame (parameters: w))>")


def test_outside_with_kept_folders_says_what_realpath_says(tmp_path):
    """paths.outside resolving each folder once (a build loading its posts) finds the same links out."""
    from sitegen.paths import outside

    site, away = tmp_path / "site", tmp_path / "away"
    (site / "content" / "in").mkdir(parents=True)
    away.mkdir()
    (away / "p.md").write_text("x")
    (site / "content" / "a.md").write_text("x")
    (site / "content" / "in" / "b.md").write_text("x")
    (site / "content" / "link.md").symlink_to(away / "p.md")
    (site / "content" / "inner.md").symlink_to(site / "content" / "a.md")
    (site / "content" / "out").symlink_to(away)
    (site / "content" / "back").symlink_to(site / "content" / "in")
    names = ["a.md", "in/b.md", "link.md", "inner.md", "out/p.md", "back/b.md", "missing.md", "out/missing.md",
             "in/../a.md", "out/../a.md"]
    folders: dict = {}
    for name in names * 2:  # the second time from the kept folders
        path = site / "content" / name
        assert outside(site, path, folders) == outside(site, path), name
    assert [n for n in names if outside(site, site / "content" / n, folders)] == ["link.md", "out/p.md",
                                                                                   "out/missing.md", "out/../a.md"]
