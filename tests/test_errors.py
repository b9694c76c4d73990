"""Bad input: every problem as path:line: message, all at once, and nothing half-written."""
from __future__ import annotations

import subprocess
import sys

from sitegen.build import Builder


def test_malformed_yaml_names_file_and_line(site):
    site.post("bad.md", "---\ntitle: ok\ntags: [unclosed\ndate: 2024-01-01\n---\nText.\n")
    errors = site.build_errors()
    assert any(e.startswith("content/bad.md:") and "malformed YAML" in e for e in errors), errors
    line = int(next(e for e in errors if "malformed YAML" in e).split(":")[1])
    assert 3 <= line <= 5


def test_missing_title(site):
    site.post("untitled.md", "---\ndate: 2024-01-01\n---\nJust text.\n")
    assert any(e.startswith("content/untitled.md:1:") and "no title" in e for e in site.build_errors())


def test_bad_date_points_at_its_line(site):
    site.post("d.md", "---\ntitle: T\ndate: 2024-13-45\n---\nText.\n")
    errors = site.build_errors()
    assert any(e.startswith("content/d.md:3:") and "not a date" in e for e in errors), errors


def test_duplicate_slugs_name_both_files(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\nslug: same\n---\nText.\n")
    site.post("b.md", "---\ntitle: B\ndate: 2024-01-01\nslug: same\n---\nText.\n")
    errors = site.build_errors()
    assert any(e.startswith("content/a.md:4:") and "content/b.md" in e for e in errors)
    assert any(e.startswith("content/b.md:4:") and "content/a.md" in e for e in errors)


def test_unknown_layout(site):
    # A warning since issue 13 (a Jekyll blog's layouts are not copied): the post uses 'post'.
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\nlayout: postt\n---\nText.\n")
    warnings = [str(w) for w in site.build().warnings]
    assert any(w.startswith("content/a.md:4: warning:") and "layout 'postt'" in w and "did you mean 'post'" in w
               for w in warnings), warnings


def test_unknown_directive_and_option_name_the_known_ones(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n\n```{nott}\nbody\n```\n\n"
                      "```{note}\n:colour: red\nbody\n```\n")
    errors = site.build_errors()
    assert any(e.startswith("content/a.md:7:") and "unknown directive '{nott}'" in e and "note" in e for e in errors), errors
    assert any(e.startswith("content/a.md:12:") and "unknown option ':colour:'" in e and "class" in e for e in errors), errors


def test_broken_links_and_anchors_are_errors(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nIntro.\n\n[gone](/nowhere/) and [bad anchor](#nope)\n"
                      "and [other](b.md).\n")
    errors = site.build_errors()
    assert any(e.startswith("content/a.md:7:") and "'/nowhere/'" in e for e in errors), errors
    assert any(e.startswith("content/a.md:7:") and "'#nope'" in e for e in errors), errors
    assert any(e.startswith("content/a.md:8:") and "b.md" in e for e in errors), errors


def test_jinja_syntax_error_in_user_template_has_file_and_line(site):
    site.write("templates/post.html", '{% extends "base.html" %}\n{% block main %}\n{{ post.title \n{% endblock %}\n')
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n")
    errors = site.build_errors()
    assert any(e.startswith("templates/post.html:") and "template error" in e for e in errors), errors


def test_jinja_runtime_error_in_user_template_has_file_and_line(site):
    site.write("templates/post.html", '{% extends "base.html" %}\n{% block main %}\n<p>ok</p>\n{{ post.no_such_field }}\n{% endblock %}\n')
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n")
    errors = site.build_errors()
    assert any(e.startswith("templates/post.html:4:") and "no_such_field" in e for e in errors), errors


def test_math_error_is_reported_with_line(site):
    # A warning, not an error (issue 13): an imported blog with one odd formula still builds.
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n\nBad $\\frac{a}{$ math.\n")
    warnings = [str(w) for w in site.build().warnings]
    assert any(w.startswith("content/a.md:7: warning:") and "formula" in w for w in warnings), warnings


def test_all_errors_of_a_build_are_reported_at_once(site):
    site.post("a.md", "---\ndate: 2024-01-01\n---\nText.\n")
    site.post("b.md", "---\ntitle: B\ndate: nope\n---\nText.\n")
    site.post("c.md", "---\ntitle: C\ndate: 2024-01-01\n---\n```{nope}\n```\n")
    errors = site.build_errors()
    assert {e.split(":")[0] for e in errors} >= {"content/a.md", "content/b.md", "content/c.md"}


def test_failed_build_leaves_previous_output_intact(site):
    site.post("a.md", "---\ntitle: Good\ndate: 2024-01-01\n---\nText.\n")
    site.build()
    before = {p.relative_to(site.out): p.read_bytes() for p in site.out.rglob("*") if p.is_file()}
    site.post("a.md", "---\ntitle: Good\ndate: 2024-01-01\n---\n[broken](/x/)\n")
    site.post("b.md", "---\ntitle: New\ndate: 2024-01-01\n---\nText.\n")
    site.build_errors()
    after = {p.relative_to(site.out): p.read_bytes() for p in site.out.rglob("*") if p.is_file()}
    assert before == after
    assert not list(site.root.glob(".*building*"))


def test_cli_prints_every_error_and_exits_non_zero(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\n[x](/missing/)\n")
    site.post("b.md", "---\ntitle: B\ndate: 20-20\n---\nText.\n")
    proc = subprocess.run([sys.executable, "-m", "sitegen", "build", str(site.root)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "content/a.md:5: broken link '/missing/'" in proc.stderr
    assert "content/b.md:3:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unterminated_front_matter_and_non_utf8(site):
    site.post("a.md", "---\ntitle: A\n")
    (site.root / "content" / "b.md").write_bytes(b"---\ntitle: B\n---\n\xff\xfe bad bytes\n")
    errors = site.build_errors()
    assert any(e.startswith("content/a.md:1:") and "never ends" in e for e in errors)
    assert any(e.startswith("content/b.md") and "UTF-8" in e for e in errors)


def test_bad_config_is_reported(site):
    site.write("sitegen.toml", 'title = "x"\nposts_per_page = "ten"\n')
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n")
    errors = site.build_errors()
    assert errors == ["sitegen.toml:2: 'posts_per_page' must be a int, got 'ten'"]


def test_incremental_rebuild_parses_only_the_edited_post(site):
    for i in range(3):
        site.post(f"p{i}.md", f"---\ntitle: P{i}\ndate: 2024-01-0{i + 1}\n---\nText {i}.\n")
    builder = Builder(site.root)
    first = builder.build()
    assert len(first.parsed) == 3
    site.post("p1.md", "---\ntitle: P1\ndate: 2024-01-02\n---\nEdited text.\n")
    second = Builder(site.root).build()  # a new process would load the cache from disk like this
    assert second.parsed == ["content/p1.md"]
    assert "Edited text." in site.page("p1/index.html")
    site.post("p2.md", "---\ntitle: P2 renamed\ndate: 2024-01-03\n---\nText 2.\n")
    (site.root / "content" / "p0.md").unlink()
    third = Builder(site.root).build()
    assert not (site.out / "p0").exists()
    assert "P2 renamed" in site.page("index.html") and "P0" not in site.page("index.html")
    assert third.parsed == ["content/p2.md"]


def test_control_characters_are_the_controls_and_noncharacters_html_forbids():
    """CONTROL is written for speed (see sitegen/errors.py): it must match exactly these, at every code point."""
    from sitegen.errors import CONTROL

    def forbidden(c: int) -> bool:
        return (c <= 0x08 or c == 0x0B or 0x0E <= c <= 0x1F or 0x7F <= c <= 0x9F or 0xFDD0 <= c <= 0xFDEF
                or c & 0xFFFE == 0xFFFE)

    every = "".join(map(chr, range(0x110000)))
    assert [m.start() for m in CONTROL.finditer(every)] == [c for c in range(0x110000) if forbidden(c)]
