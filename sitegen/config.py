"""Site settings: ``sitegen.toml`` at the site's root, every key optional."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from sitegen.errors import CONTROL, Problem, SiteError

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
    #: Jekyll's permalink for every post: a style (date, pretty, ordinal, none) or a pattern
    #: such as "/:year/:month/:day/:title/"; empty: /<slug>/ (see sitegen/jekyll.py)
    permalink: str = ""
    #: render the Liquid inside posts ({% post_url %}, {% highlight %}, {{ site.baseurl }})
    liquid: bool = False
    #: the excerpt is the text before this marker (e.g. "<!--more-->"); empty: the first paragraph
    excerpt_separator: str = ""
    #: parameters to pass through to templates as ``site.extra``
    extra: dict = field(default_factory=dict)
    root: Path = Path(".")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/"

    def absolute(self, path: str) -> str:
        return self.url + path.lstrip("/")


class ConfigError(SiteError):
    """Every problem of ``sitegen.toml`` at once (``problems``); the first is the exception's own."""

    def __init__(self, problems: list[Problem]):
        first = problems[0]
        super().__init__(first.path, first.line, first.message)
        self.problems = problems


def load_config(root: Path) -> Config:
    root = Path(root)
    path = root / CONFIG_NAME
    config = Config(root=root)
    if not path.exists():
        return config
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SiteError(CONFIG_NAME, None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                           "save the file as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise SiteError(CONFIG_NAME, line, f"invalid TOML: {exc}") from None
    problems: list[Problem] = []

    def error(key: str, message: str) -> None:
        problems.append(Problem(CONFIG_NAME, line_of(path, key), message))

    known = {f.name for f in fields(Config)} - {"root", "extra"}
    extra = {}
    for key, value in data.items():
        if key in known:
            expected = type(getattr(config, key))
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                error(key, f"'{key}' must be a {expected.__name__}, got {value!r}")
                continue
            if isinstance(value, str) and _control(value):
                error(key, f"'{key}' holds a control character ({_control(value)!r}); remove it")
                continue
            setattr(config, key, value)
        else:
            extra[key] = value
    config.extra = extra
    if config.posts_per_page < 1:
        error("posts_per_page", "'posts_per_page' must be at least 1")
    if config.feed_entries < 1:
        error("feed_entries", f"'feed_entries' must be at least 1 (the newest posts in the feed), "
                              f"got {config.feed_entries}")
    reason = base_url_problem(config.base_url)
    if reason:
        error("base_url", f"base_url {config.base_url!r} {reason}; write the address the site is published at, "
                          "e.g. base_url = \"https://example.org/blog/\"")
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    return config


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the site's address (None: it can). Feeds, sitemaps and canonical links
    need an absolute http(s) URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if not parts.scheme:
        return "has no scheme (http:// or https://)"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must start with http:// or https://, not {parts.scheme}:"
    if not parts.netloc or not parts.hostname:
        return "names no host"
    if any(c.isspace() for c in url) or "\\" in url:
        return "holds spaces or backslashes"
    if parts.query or parts.fragment:
        return "must not hold a query (?) or a fragment (#)"
    return None


def line_of(path: Path, key: str) -> int | None:
    """The line of ``key = ...`` in a TOML file (None if absent or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for i, line in enumerate(text.splitlines(), 1):
        if line.split("=")[0].strip().strip('"\'') == key:
            return i
    return None


def _control(text: str) -> str | None:
    m = CONTROL.search(text)
    return m.group() if m else None
