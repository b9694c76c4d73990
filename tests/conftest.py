"""Shared helpers: write a small site into a temporary folder and build it."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sitegen.build import Builder
from sitegen.errors import BuildError

REPO = Path(__file__).resolve().parent.parent


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
        kwargs.setdefault("use_cache", False)
        return Builder(self.root, **kwargs).build()

    def build_errors(self, **kwargs) -> list[str]:
        """Build expecting failure; returns every problem as 'path:line: message'."""
        with pytest.raises(BuildError) as info:
            self.build(**kwargs)
        return [str(p) for p in info.value.problems]

    def page(self, rel: str) -> str:
        return (self.out / rel).read_text(encoding="utf-8")


@pytest.fixture
def site(tmp_path) -> Site:
    s = Site(tmp_path / "site")
    s.write("sitegen.toml", 'title = "Test site"\nbase_url = "https://example.org/blog/"\n')
    return s
