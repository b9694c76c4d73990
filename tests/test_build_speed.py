"""The shortcuts the build takes for speed give the same answers as the slow ways they replace."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitegen.build import Builder
from sitegen.paths import realpath_in as _realpath
from sitegen.stages import resolve_href as _resolve_href

PARTS = ["a", "b", "lnk", "flink.md", "x.md", "y.md", "..", ".", "missing"]


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True, exist_ok=True)
    (root / "real").mkdir(exist_ok=True)
    (root / "real" / "x.md").write_text("x")
    (root / "a" / "b" / "y.md").write_text("y")
    if not (root / "a" / "lnk").is_symlink():
        os.symlink("../real", root / "a" / "lnk")
        os.symlink("../../real/x.md", root / "a" / "b" / "flink.md")


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.sampled_from(PARTS), min_size=1, max_size=6), absolute=st.booleans())
@example(parts=["a", "a", "..", "lnk"], absolute=True)  # a link hidden behind a missing folder and '..'
def test_realpath_matches_path_resolve(tmp_path_factory, parts, absolute):
    root = tmp_path_factory.getbasetemp() / "realpath-tree"
    _tree(root)
    path = str(root.joinpath(*parts)) if absolute else os.path.relpath(root.joinpath(*parts))
    folders: dict[str, str] = {}
    assert _realpath(path, folders) == str(Path(path).resolve())
    assert _realpath(path, folders) == str(Path(path).resolve())  # the folder memo gives the same again


HREF = st.text(alphabet="/#?.%20abx:", max_size=12)


def _resolve_href_plain(base, href):
    # the definition before root-relative hrefs were memoised
    from urllib.parse import unquote, urljoin

    from sitegen.stages import EXTERNAL

    if not href or EXTERNAL.match(href):
        return None, None
    path, _, fragment = href.partition("#")
    path = path.partition("?")[0]
    anchor = unquote(fragment) or None
    if not path:
        return base, anchor
    if path.startswith("/"):
        return unquote(path), anchor
    return unquote(urljoin(base, path)), anchor


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(["/", "/a/", "/a/b.html", "/post-1/index.html"]), href=HREF)
def test_resolve_href_matches_the_plain_definition(base, href):
    assert _resolve_href(base, href) == _resolve_href_plain(base, href)


# -- the spare tree: the site a switch replaced, brought up to date by the next build ----------------

def _posts(site, n=6):
    for i in range(n):
        site.post(f"p{i}.md", f"---\ntitle: P{i}\ndate: 2024-01-{i + 1:02d}\ntags: [t{i % 2}]\n---\n"
                              f"Text of post {i}, linking [back](/p{max(i - 1, 0)}/).\n")



def _cached_build(site, tree):
    """A `sitegen build` with its cache (the conftest helper builds without one), checking that no
    file outside the output and the cache changed."""
    exclude = [site.out, site.root / ".sitegen-cache"]
    before = tree.snapshot(site.root, exclude)
    result = Builder(site.root).build()
    tree.assert_untouched(before, tree.snapshot(site.root, exclude))
    return result


def _with_spare(site, tree):
    """The posts built twice with the cache: the second build leaves the first one's site as the spare."""
    _posts(site)
    for _ in range(2):
        _cached_build(site, tree)
    return site.root / ".sitegen-cache" / "spare-site"


def test_a_spare_tree_is_brought_up_to_date_without_touching_the_served_site(site, tmp_path, tree):
    spare = _with_spare(site, tree)
    assert spare.is_dir()
    for step, (name, text) in enumerate([("p2.md", "Edited."), ("p9.md", "New."), ("p2.md", "Edited again.")]):
        # every file of the served site, hard-linked aside: a write into a shared file would show here
        served = tmp_path / f"served-{step}"
        before = site.contents()
        for rel in before:
            (served / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(site.out / rel, served / rel)
        site.post(name, f"---\ntitle: {name}\ndate: 2024-02-01\n---\n{text}\n")
        reused = os.stat(spare / "static").st_ino
        _cached_build(site, tree)
        assert site.contents(served) == before, "a build wrote into a file of the site it replaced"
        assert os.stat(site.out / "static").st_ino == reused  # the spare became the site
        assert site.contents() == site.contents(_fresh(site, tmp_path / f"fresh-{step}"))  # as if from nothing
    (site.root / "content" / "p9.md").unlink()
    _cached_build(site, tree)
    assert not (site.out / "p9").exists()
    assert site.contents() == site.contents(_fresh(site, tmp_path / "fresh-last"))


def _fresh(site, out):
    Builder(site.root, out=out, use_cache=False).build()
    return out


def test_a_spare_tree_that_does_not_match_its_record_is_not_used(site, tmp_path, tree):
    spare = _with_spare(site, tree)
    victim = next(p for p in spare.rglob("index.html"))
    victim.unlink()
    victim.write_text("tampered")  # (a new file: the served site's hard link is left alone)
    (spare / ".sitegen-output").write_text('{"build": "somebody else"}')
    site.post("p1.md", "---\ntitle: P1\ndate: 2024-01-02\n---\nEdited.\n")
    _cached_build(site, tree)
    assert site.contents() == site.contents(_fresh(site, tmp_path / "fresh"))


@pytest.fixture(params=["margin", "no margin"])
def clock(request, monkeypatch):
    """The spare's folders are listed only if changed since its build (sitegen/write.py): with the
    margin for coarse clocks, a test's folders are all listed; without it, only those changed."""
    if request.param == "no margin":
        from sitegen import write

        monkeypatch.setattr(write, "CLOCK_MARGIN", 0)
    return request.param


def _by_hand():
    import time

    time.sleep(0.05)  # (a change by hand comes after the build, on a clock that ticks)


def test_a_file_put_into_the_served_site_does_not_come_back_with_the_spare(site, tmp_path, tree, clock):
    """The spare is the site two builds ago: anything put into it by hand (a stray file, a folder, a
    link) must not reappear in a later site, which holds exactly what a build from nothing holds."""
    _posts(site)
    _cached_build(site, tree)
    _by_hand()
    (site.out / "stray.txt").write_text("put here by hand")
    (site.out / "p1" / "notes").mkdir()
    (site.out / "p1" / "notes" / "n.txt").write_text("and here")
    (site.out / "elsewhere").symlink_to(tmp_path)
    for step in range(3):  # the tree holding them becomes the spare, and then the site again
        site.post("p2.md", f"---\ntitle: P2\ndate: 2024-01-03\n---\nEdit {step}.\n")
        _cached_build(site, tree)
        assert site.contents() == site.contents(_fresh(site, tmp_path / f"fresh-{step}"))
        assert not os.path.lexists(site.out / "elsewhere")
        assert not (site.out / "p1" / "notes").exists()


def test_a_page_deleted_from_the_served_site_comes_back_in_later_sites(site, tmp_path, tree, clock):
    """The tree it was deleted from becomes the spare: its record names the page, so it is marked
    unknown and written again, not taken for there."""
    _posts(site)
    for _ in range(2):
        _cached_build(site, tree)
    _by_hand()
    (site.out / "p1" / "index.html").unlink()
    (site.out / "tags" / "t0" / "index.html").unlink()
    os.rmdir(site.out / "tags" / "t0")
    for step in range(3):
        site.post("p2.md", f"---\ntitle: P2\ndate: 2024-01-03\n---\nEdit {step}.\n")
        _cached_build(site, tree)
        assert site.contents() == site.contents(_fresh(site, tmp_path / f"fresh-{step}"))


def test_a_spare_folder_unchanged_since_its_build_is_not_listed(site, tree, monkeypatch):
    from sitegen import write

    monkeypatch.setattr(write, "CLOCK_MARGIN", 0)
    _posts(site)
    for _ in range(2):
        _cached_build(site, tree)
    _by_hand()
    listed = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": listed.append(os.fspath(path)) or scandir(path))
    site.post("p2.md", "---\ntitle: P2\ndate: 2024-01-03\n---\nEdited.\n")
    _cached_build(site, tree)
    tree_folders = [p for p in listed if ".sitegen-new" in p or "sitegen-new" in os.path.basename(p)]
    assert tree_folders and not any(p.endswith(("/p3", "/tags/t1")) for p in listed), listed

def test_list_pages_rendered_in_workers_are_the_ones_rendered_in_turn(site, tmp_path):
    """Enough index and tag pages to render them in worker processes (see sitegen/lists.py): the same
    bytes as one process makes, and a template error is reported the same way."""
    from sitegen.errors import BuildError
    from sitegen.lists import PARALLEL_LISTS

    site.write("sitegen.toml", 'title = "T"\nbase_url = "https://example.org/"\nposts_per_page = 1\n')
    for i in range(PARALLEL_LISTS + 4):
        site.post(f"p{i}.md", f"---\ntitle: P{i}\ndate: 2024-01-{i % 28 + 1:02d}\ntags: [t{i % 3}]\n---\nPost {i}.\n")
    one = site.contents(_built(site, tmp_path / "one", workers=1))
    two = site.contents(_built(site, tmp_path / "two", workers=2))
    assert one == two and sum(1 for rel in one if rel.startswith("page/")) >= PARALLEL_LISTS
    site.write("templates/tag.html", "{% extends 'base.html' %}{% block main %}{{ tag.nope.deeper }}{% endblock %}\n")
    errors = []
    for workers in (1, 2):
        with pytest.raises(BuildError) as info:
            _built(site, tmp_path / f"bad{workers}", workers=workers)
        errors.append(sorted(str(p) for p in info.value.problems))
    assert errors[0] == errors[1] and any("tag" in e for e in errors[0])


def _built(site, out, workers):
    Builder(site.root, out=out, use_cache=False, workers=workers).build()
    return out
