"""Shared helpers: write a small site into a temporary folder and build it."""
from __future__ import annotations

import hashlib
import os
import re
import textwrap
from pathlib import Path

import pytest

from sitegen.build import Builder
from sitegen.errors import BuildError

REPO = Path(__file__).resolve().parent.parent


#: the folders a build works in beside its output (the new site, the replaced one being deleted;
#: and the names older versions used)
BUILD_TEMP = re.compile(r"^\..+\.(?:sitegen-(?:new|old)-\d+-\d+|building-\d+|old-\d+)$")


def snapshot_tree(root, exclude=(), temp=BUILD_TEMP) -> dict[str, tuple]:
    """Every file, folder and symlink under ``root`` (but not under the ``exclude`` paths, nor the
    build's own temporary folders beside its output, ``temp``) with its content hash, so a test can
    assert that a build changed nothing outside its output (see :func:`assert_untouched`)."""
    root = Path(root)
    skip = {os.path.realpath(p) for p in exclude}
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if (os.path.realpath(full) in skip and not os.path.islink(full)) or (temp and temp.match(d)):
                continue
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            else:
                found[rel] = ("dir",)
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            elif os.path.realpath(full) not in skip:
                with open(full, "rb") as f:
                    found[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
    return found


def assert_untouched(before: dict, after: dict) -> None:
    """A readable failure naming what a build added, removed or changed outside its output."""
    added = sorted(set(after) - set(before))
    lost = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or lost or changed), f"outside the output: added {added}, lost {lost}, changed {changed}"


class Site:
    def __init__(self, root: Path):
        self.root = root
        self.out = root / "_site"

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def post(self, name: str, text: str) -> Path:
        return self.write(f"content/{name}", text)

    def build(self, **kwargs):
        """Build, checking that no file outside the output (and the build cache) changed."""
        kwargs.setdefault("use_cache", False)
        builder = Builder(self.root, **kwargs)
        out = kwargs.get("out") or self.out
        exclude = [out, self.root / ".sitegen-cache"]
        before = snapshot_tree(self.root, exclude)
        try:
            return builder.build()
        finally:
            assert_untouched(before, snapshot_tree(self.root, exclude))

    def build_errors(self, **kwargs) -> list[str]:
        """Build expecting failure; returns every problem as 'path:line: message'."""
        with pytest.raises(BuildError) as info:
            self.build(**kwargs)
        return [str(p) for p in info.value.problems]

    def page(self, rel: str) -> str:
        return (self.out / rel).read_text(encoding="utf-8")

    def contents(self, folder: Path | None = None) -> dict[str, bytes]:
        """Every file of a built site (the output, or ``folder``) with its bytes, the output marker
        aside: two builds made the same site when these are equal."""
        folder = self.out if folder is None else Path(folder)
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                if p.is_file() and p.name != ".sitegen-output"}


@pytest.fixture
def site(tmp_path) -> Site:
    s = Site(tmp_path / "site")
    s.write("sitegen.toml", 'title = "Test site"\nbase_url = "https://example.org/blog/"\n')
    return s


@pytest.fixture
def tree():
    """The helpers above for a test module (``from conftest import`` is ambiguous beside
    tests/browser/conftest.py): ``tree.snapshot(root, exclude=[out])``, ``tree.assert_untouched(a, b)``,
    ``tree.TEMP``."""
    import types

    return types.SimpleNamespace(snapshot=snapshot_tree, assert_untouched=assert_untouched, TEMP=BUILD_TEMP)
