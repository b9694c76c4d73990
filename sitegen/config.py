"""Site settings: ``sitegen.toml`` at the site's root, every key optional."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from sitegen.errors import SiteError

CONFIG_NAME = "sitegen.toml"


@dataclass
class Config:
    title: str = "A sitegen site"
    description: str = ""
    base_url: str = "http://localhost:8000/"
    author: str = ""
    language: str = "en"
    output: str = "_site"
    posts_per_page: int = 20
    feed_entries: int = 20
    #: parameters to pass through to templates as ``site.extra``
    extra: dict = field(default_factory=dict)
    root: Path = Path(".")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/"

    def absolute(self, path: str) -> str:
        return self.url + path.lstrip("/")


def load_config(root: Path) -> Config:
    root = Path(root)
    path = root / CONFIG_NAME
    config = Config(root=root)
    if not path.exists():
        return config
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise SiteError(CONFIG_NAME, line, f"invalid TOML: {exc}") from None
    known = {f.name for f in fields(Config)} - {"root", "extra"}
    extra = {}
    for key, value in data.items():
        if key in known:
            expected = type(getattr(config, key))
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise SiteError(CONFIG_NAME, _line_of(path, key),
                                f"'{key}' must be a {expected.__name__}, got {value!r}")
            setattr(config, key, value)
        else:
            extra[key] = value
    config.extra = extra
    if config.posts_per_page < 1:
        raise SiteError(CONFIG_NAME, _line_of(path, "posts_per_page"), "'posts_per_page' must be at least 1")
    return config


def _line_of(path: Path, key: str) -> int | None:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.split("=")[0].strip() == key:
            return i
    return None
