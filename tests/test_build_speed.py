"""The shortcuts the build takes for speed give the same answers as the slow ways they replace."""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

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
