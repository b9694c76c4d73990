"""The output folder is the build's and only the build's; the switch to a new site is atomic."""
from __future__ import annotations

import os
import time

import pytest

from sitegen.build import Builder
from sitegen.cli import main
from sitegen.errors import BuildError
from sitegen.output import MARKER


def _with_post(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n")
    for folder in ("data", "templates", "static", "experiments"):
        site.write(f"{folder}/keep.txt", f"the user's {folder}\n")
    return site


def _cli(capsys, *args) -> tuple[int, str]:
    code = main(["build", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.mark.parametrize("output", [".", "", "  ", "content", "data", "templates", "static", "experiments",
                                    "content/sub", "./data/", "..", "/"])
def test_output_that_would_replace_the_users_files_is_refused(site, capsys, output, tree):
    _with_post(site)
    site.write("sitegen.toml", f'title = "t"\nbase_url = "https://example.org/"\noutput = "{output}"\n')
    parent = site.root.parent
    before = tree.snapshot(parent)
    code, text = _cli(capsys, site.root)
    assert code == 1
    assert "Traceback" not in text
    assert "sitegen.toml:3: output" in text or "sitegen.toml:3: the output folder is empty" in text, text
    tree.assert_untouched(before, tree.snapshot(parent, temp=None))  # no temporary folder left either


@pytest.mark.parametrize("out", ["content", "data", ".", "..", "/"])
def test_out_option_is_checked_and_blamed(site, capsys, out, tree):
    _with_post(site)
    before = tree.snapshot(site.root.parent)
    cwd = os.getcwd()
    os.chdir(site.root)
    try:
        code, text = _cli(capsys, site.root, "--out", out)
    finally:
        os.chdir(cwd)
    assert code == 1 and "Traceback" not in text
    assert text.startswith(f"--out: output '{out}' "), text
    tree.assert_untouched(before, tree.snapshot(site.root.parent, temp=None))


def test_home_folder_is_refused(site, monkeypatch):
    _with_post(site)
    home = site.root.parent / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    errors = site.build_errors(out=home)
    assert errors == [f"--out: output '{home}' is your home folder: a build replaces its output folder whole; "
                      "choose a folder of its own for the built site, e.g. \"_site\""]
    errors = site.build_errors(out=home.parent)
    assert "holds your home folder" in errors[0]


def test_sibling_with_user_files_is_refused_not_deleted(site, tree):
    _with_post(site)
    sibling = site.root.parent / "sibling"
    (sibling / "notes").mkdir(parents=True)
    (sibling / "notes" / "todo.txt").write_text("mine\n")
    site.write("sitegen.toml", 'title = "t"\nbase_url = "https://example.org/"\noutput = "../sibling"\n')
    before = tree.snapshot(site.root.parent)
    errors = site.build_errors()
    assert errors == ["sitegen.toml:3: output '../sibling' already holds files that sitegen did not write "
                      f"(no {MARKER} marker in it); a build replaces its output folder whole. Choose a new or "
                      "empty folder, or move that folder's files away yourself if it is an old build"]
    tree.assert_untouched(before, tree.snapshot(site.root.parent, temp=None))


def test_new_empty_and_own_folders_are_accepted(site):
    _with_post(site)
    sibling = site.root.parent / "sibling"
    site.write("sitegen.toml", 'title = "t"\nbase_url = "https://example.org/"\noutput = "../sibling"\n')
    site.build(out=None)
    assert (sibling / MARKER).is_file() and (sibling / "a" / "index.html").is_file()
    site.build()  # its own output: replaced
    empty = site.root.parent / "empty"
    empty.mkdir()
    site.build(out=empty)
    assert (empty / "a" / "index.html").is_file()


def test_output_is_a_file(site):
    _with_post(site)
    (site.root / "out.txt").write_text("x")
    errors = site.build_errors(out=site.root / "out.txt")
    assert errors[0].startswith(f"--out: output '{site.root / 'out.txt'}' is a file, not a folder")


def test_an_older_versions_output_is_taken_over_through_the_cache(site):
    """An output written before the marker existed: the site's build cache says it wrote there."""
    _with_post(site)
    Builder(site.root).build()  # with the cache
    (site.out / MARKER).unlink()
    Builder(site.root).build()
    assert (site.out / MARKER).is_file()
    (site.out / MARKER).unlink()
    (site.root / ".sitegen-cache" / "build.sqlite").unlink()
    with pytest.raises(BuildError) as info:
        Builder(site.root).build()
    assert "already holds files that sitegen did not write" in str(info.value)


def test_config_errors_all_at_once_and_blamed_on_the_config(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nText.\n")
    site.write("sitegen.toml", 'title = "x\\u0000"\nbase_url = "javascript:alert(1)//"\nfeed_entries = -1\n'
                               'posts_per_page = 0\n')
    errors = site.build_errors()
    assert errors == [
        "sitegen.toml:1: 'title' holds a control character ('\\x00'); remove it",
        "sitegen.toml:2: base_url 'javascript:alert(1)//' must start with http:// or https://, not javascript:; "
        "write the address the site is published at, e.g. base_url = \"https://example.org/blog/\"",
        "sitegen.toml:3: 'feed_entries' must be at least 1 (the newest posts in the feed), got -1",
        "sitegen.toml:4: 'posts_per_page' must be at least 1",
    ]
    site.write("sitegen.toml", 'base_url = "example.org/blog"\n')
    assert site.build_errors() == [
        "sitegen.toml:1: base_url 'example.org/blog' has no scheme (http:// or https://); write the address the "
        "site is published at, e.g. base_url = \"https://example.org/blog/\""]


# ----------------------------------------------------------------------------------------------
# the switch

def test_rebuild_switches_whole_folders_and_cleans_up(site, tree):
    _with_post(site)
    site.build()
    inode = os.stat(site.out / "static").st_ino
    site.post("b.md", "---\ntitle: B\ndate: 2024-01-02\n---\nMore.\n")
    site.build()
    assert os.stat(site.out / "static").st_ino != inode  # a new tree, not files renamed into the old
    assert (site.out / "b" / "index.html").is_file()
    deadline = time.monotonic() + 10
    while [p for p in site.root.iterdir() if tree.TEMP.match(p.name)] and time.monotonic() < deadline:
        time.sleep(0.05)  # the replaced site is deleted in the background
    assert not [p for p in site.root.iterdir() if tree.TEMP.match(p.name)]


def test_unchanged_files_are_shared_with_the_previous_site(site):
    _with_post(site)
    site.post("b.md", "---\ntitle: B\ndate: 2024-01-02\n---\nMore.\n")
    site.post("c.md", "---\ntitle: C\ndate: 2024-01-03\n---\nMore.\n")
    Builder(site.root).build()
    page = site.out / "a" / "index.html"
    before = os.stat(page).st_ino
    site.post("c.md", "---\ntitle: C\ndate: 2024-01-03\n---\nEdited.\n")
    result = Builder(site.root).build()
    assert "c/index.html" in result.written
    assert "a/index.html" not in result.written
    assert os.stat(page).st_ino == before  # hard-linked, not written again


def test_leftovers_of_killed_builds_are_swept_and_never_published(site):
    _with_post(site)
    site.build()
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    leftovers = [f"._site.sitegen-new-{dead}-1", "._site.sitegen-old-1-2", f"._site.building-{dead}", "._site.old-7"]
    for name in leftovers:
        (site.root / name / "x").mkdir(parents=True)
        (site.root / name / "x" / "index.html").write_text("half")
    (site.out / ".index.html.tmp999").write_text("a staged file of an older version")
    site.build()
    assert not [n for n in leftovers if (site.root / n).exists()]
    assert not (site.out / ".index.html.tmp999").exists()
    assert not (site.out / "x").exists()


def test_a_cache_that_does_not_match_the_output_reuses_nothing(site):
    """Killed after its switch but before saving the cache: the output is newer than the cache says."""
    _with_post(site)
    Builder(site.root).build()
    (site.out / "a" / "index.html").write_text("not what the cache thinks")
    (site.out / MARKER).write_text('{"build": "another"}')
    Builder(site.root).build()
    assert "Text." in (site.out / "a" / "index.html").read_text()


def test_preview_writes_in_place_with_a_marker(site):
    _with_post(site)
    out = site.root / ".sitegen-cache" / "preview"
    Builder(site.root, out=out, preview=True).build(in_place=True)
    assert (out / MARKER).is_file() and (out / "a" / "index.html").is_file()
