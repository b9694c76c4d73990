"""Posts: a Markdown file (or ``slug/index.md`` folder) -> validated :class:`Post`.

Front matter is YAML between ``---`` lines. Every problem names the file and the line of the
offending key, so an author can jump straight to it.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote  # here, not in Post.folder: asked per page, the import cost more than the work

from sitegen.errors import CONTROL, Problem  # noqa: F401  (CONTROL: for markdown too)

JEKYLL_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
SLUG_OK = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
KNOWN_KEYS = {
    "title", "date", "slug", "excerpt", "summary", "author", "authors", "tags", "layout",
    "draft", "visible", "under_construction", "comments", "share", "updated", "description", "published",
}
BOOL_KEYS = ("draft", "visible", "under_construction", "comments", "share", "published")
#: a slug or a tag's URL name is a folder name, and file systems stop at 255 bytes
MAX_SLUG = 100
#: front matter after YAML aliases are expanded ("billion laughs"), and how deep it may nest
MAX_VALUES = 10_000
MAX_DEPTH = 50
#: the years a date may have (the feed, the sitemap and sorting need four-digit years)
YEARS = (1000, 9999)
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
#: with a UTC offset, as Jekyll writes them ('2015-03-25 16:00:00 +0100'); read as UTC, which is what
#: GitHub Pages builds in, so a post keeps the date (and URL) Jekyll gave it there
ZONED_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z")


@dataclass
class Post:
    source: Path            # the .md file
    rel: str                # its path relative to the site root, for messages
    title: str
    slug: str
    body: str               # Markdown without front matter
    line_offset: int        # file lines before ``body``
    date: dt.datetime | None = None
    updated: dt.datetime | None = None
    summary: str | None = None
    authors: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    layout: str = "post"
    draft: bool = False
    under_construction: bool = False
    comments: bool = False
    share: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    key_lines: dict[str, int] = field(default_factory=dict)
    is_bundle: bool = False  # content/slug/index.md with files beside it
    #: the page's URL when a permalink sets it (always a folder URL, '/2024/02/05/title/'); see jekyll.py
    permalink: str | None = None
    #: old URLs that get a page sending the reader here (a Jekyll '.html' URL, 'redirect_from')
    redirects: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.permalink or f"/{self.slug}/"

    @property
    def folder(self) -> str:
        """Where the page and its files are written, relative to the output folder ('slug/')."""
        return unquote(self.url.lstrip("/"))

    @property
    def listed(self) -> bool:
        """Shown on the index and in the feed."""
        return not self.draft and not self.under_construction


#: every extension people give Markdown files (Jekyll's kramdown reads all of them)
MARKDOWN_EXTENSIONS = (".md", ".markdown", ".mdown", ".mkd")
#: Jekyll's folders, read as they are when copied into content/: posts, and drafts (always drafts)
JEKYLL_FOLDERS = ("_posts", "_drafts")


def is_markdown(name: str) -> bool:
    return name.lower().endswith(MARKDOWN_EXTENSIONS)


def is_bundle_index(path: Path) -> bool:
    return is_markdown(path.name) and path.name.rsplit(".", 1)[0] == "index"


def discover(content_dir: Path, skipped: list[tuple[str, str]] | None = None,
             plain: set[str] | None = None) -> list[str]:
    """Every post source: Markdown files (``.md``, ``.markdown``, ``.mdown``, ``.mkd``), ``*/index.md``
    bundles, and the Markdown files of Jekyll's ``_posts/`` and ``_drafts/`` folders: their paths,
    sorted.

    Other names starting with '.' or '_' are skipped (editor files, drafts folders). One scandir per
    level instead of a recursive glob: a 4,000-post site is listed on every rebuild. ``skipped``, if
    given, receives ``(name, why)`` for every entry that is not a post, for the "no post" error;
    ``plain``, if given, the posts known from the listing to be files, not symbolic links."""
    if not content_dir.is_dir():
        return []
    found = []

    def skip(path: str, why: str) -> None:
        if skipped is not None:
            skipped.append((os.path.relpath(path, content_dir.parent), why))

    with os.scandir(content_dir) as entries:
        for entry in entries:
            if entry.name in JEKYLL_FOLDERS and entry.is_dir():
                for dirpath, dirnames, filenames in os.walk(entry.path):
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                    for name in filenames:
                        if is_markdown(name) and not name.startswith((".", "_")):
                            found.append(os.path.join(dirpath, name))
                        elif not name.startswith("."):
                            skip(os.path.join(dirpath, name), "not a Markdown file (.md, .markdown, .mdown, .mkd)")
                continue
            if entry.name.startswith((".", "_")):
                skip(entry.path, "names starting with '.' or '_' are skipped")
                continue
            if entry.is_file():
                if is_markdown(entry.name):
                    found.append(entry.path)
                    if plain is not None and not entry.is_symlink():
                        plain.add(entry.path)  # (the listing says so: no lstat needed to know it)
                else:
                    skip(entry.path, "not a Markdown file (.md, .markdown, .mdown, .mkd)")
            elif entry.is_dir():
                index = next((os.path.join(entry.path, "index" + ext) for ext in MARKDOWN_EXTENSIONS
                              if os.path.isfile(os.path.join(entry.path, "index" + ext))), None)
                if index is not None:
                    found.append(index)
                else:
                    skip(entry.path, "a folder without index.md (a post with files beside it is "
                                     "content/<slug>/index.md)")
    # Paths as strings, sorted as Paths sort (part by part): making and comparing 4,000 Path
    # objects cost a one-post rebuild a tenth of a second, and the build needs Paths only for the
    # posts it reads.
    found.sort(key=lambda path: path.split(os.sep))
    return found


def is_jekyll_draft(path: Path) -> bool:
    """A file of a ``content/_drafts/`` folder: Jekyll's drafts, shown only with --drafts."""
    return "_drafts" in path.parts[:-1]


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter or None, body, number of lines before the body)."""
    if not text.startswith("---"):
        return None, text, 0
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1:]), i + 1
    return "\n".join(lines[1:]), "", -1  # unterminated


def _key_lines(front: str) -> dict[str, int]:
    out = {}
    for i, line in enumerate(front.split("\n")):
        m = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = i + 2  # +1 for the opening ---, +1 for 1-based lines
    return out


def _parse_date(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        for fmt in DATE_FORMATS:
            try:
                return dt.datetime.strptime(value.strip(), fmt)
            except ValueError:
                continue
        for fmt in ZONED_DATE_FORMATS:
            try:
                return _parse_date(dt.datetime.strptime(value.strip(), fmt))
            except ValueError:
                continue
    return None


def _string_list(value) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    return None


@lru_cache(maxsize=8192)  # the same tags and headings come back on every page: 44,000 calls for 4,000 posts
def slugify(text: str) -> str:
    """Stable, readable ids and slugs: lowercase ASCII words joined by '-'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[\s_-]+", "-", text).strip("-") or "section"


def slug_from_path(path: Path) -> tuple[str, dt.datetime | None]:
    stem = path.parent.name if is_bundle_index(path) else path.stem
    m = JEKYLL_NAME.match(stem)
    date = None
    if m:
        try:
            date = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            stem = m.group(4)
        except ValueError:
            pass
    return slugify(stem), date


def first_heading(body: str) -> tuple[str | None, str]:
    """The first ``# `` heading outside code fences, and the body without it (lines kept)."""
    lines = body.split("\n")
    fence = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        m = re.match(r"^(`{3,}|~{3,})", stripped)
        if m:
            if fence is None:
                fence = m.group(1)[0] * len(m.group(1))
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is None and re.match(r"^# +\S", line):
            title = re.sub(r"\s+#+\s*$", "", line[1:].strip())
            lines[i] = ""
            return title, "\n".join(lines)
    return None, body


def _flow_depth(front: str) -> int:
    """How deep ``[`` and ``{`` nest (quotes ignored: an over-estimate). libyaml recurses once per
    level and crashes the process far below what would fit in memory, so this is checked first."""
    depth = deepest = 0
    for ch in front:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}" and depth:
            depth -= 1
    return deepest


def _expanded_size(value, depth: int = 0, memo: dict | None = None) -> int:
    """How many values ``value`` holds with every YAML alias written out; stops counting past
    MAX_VALUES. Shared parts are counted once per use but computed once, so this is linear in the
    loaded data, not in its expansion. Raises RecursionError past MAX_DEPTH (or for a value that
    holds itself)."""
    if not isinstance(value, (list, dict)):
        return 1
    if depth > MAX_DEPTH:
        raise RecursionError
    memo = {} if memo is None else memo
    hit = memo.get(id(value))
    if hit is not None:
        return hit
    items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
    total = 1
    for item in items:
        total += _expanded_size(item, depth + 1, memo)
        if total > MAX_VALUES:
            break
    memo[id(value)] = total
    return total


def _control_in(value) -> str | None:
    """A forbidden control character anywhere in a front-matter value (first found), else None."""
    if isinstance(value, str):
        m = CONTROL.search(value)
        return m.group() if m else None
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _control_in(item)
            if found:
                return found
    return None


def _check_year(date: dt.datetime | None) -> bool:
    return date is None or YEARS[0] <= date.year <= YEARS[1]


def _yaml_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present

    class Loader(base):
        """Dates stay text, so an impossible date gets our message with its line, not a crash."""

    Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    return Loader


_LOADER = None


def load(path: Path, root: Path, folders: dict[str, str] | None = None) -> tuple[Post | None, list[Problem]]:
    """Read and validate one post. Returns the post (None if unusable) and its problems. ``folders``:
    resolved folders kept between calls, for loading many posts (see :func:`sitegen.paths.outside`)."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _yaml_loader()
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    problems: list[Problem] = []

    def error(line, msg):
        problems.append(Problem(rel, line, msg, "error"))

    def warn(line, msg):
        problems.append(Problem(rel, line, msg, "warning"))

    from sitegen.paths import outside, outside_message

    real = outside(root, path, folders)
    if real is not None:
        error(None, outside_message("a symlink", real, "post"))
        return None, problems
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        error(None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8")
        return None, problems
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    front, body, offset = split_front_matter(text)
    meta: dict = {}
    key_lines: dict[str, int] = {}
    if offset == -1:
        error(1, "front matter starts with '---' but never ends; close it with a line holding only '---'")
        return None, problems
    if front is not None:
        key_lines = _key_lines(front)
        if _flow_depth(front) > MAX_DEPTH:
            error(2, f"front matter nests lists or mappings more than {MAX_DEPTH} levels deep; flatten it")
            return None, problems
        try:
            loaded = yaml.load(front, Loader=_LOADER) if front.strip() else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 2 if mark is not None else 1
            reason = getattr(exc, "problem", None) or str(exc)
            error(line, f"malformed YAML front matter: {reason}; check indentation and quote values containing ':'")
            return None, problems
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            error(2, "front matter must be 'key: value' lines, not a list or a single value")
            return None, problems
        try:
            too_big = _expanded_size(loaded) > MAX_VALUES
        except RecursionError:
            error(2, f"front matter nests more than {MAX_DEPTH} levels deep, or a YAML alias refers to itself")
            return None, problems
        if too_big:
            error(2, f"front matter holds more than {MAX_VALUES:,} values once its YAML aliases (*name) are "
                     "expanded; write the values out, or keep such data in data/")
            return None, problems
        meta = {str(k): v for k, v in loaded.items()}
        for key, value in meta.items():
            bad = _control_in(value)
            if bad:
                error(key_lines.get(key, 2), f"'{key}' holds the control character U+{ord(bad):04X}; remove it")

    def line_of(key):
        return key_lines.get(key, 1 if front is not None else None)

    slug, name_date = slug_from_path(path)
    if "slug" in meta:
        if not isinstance(meta["slug"], str) or not SLUG_OK.match(meta["slug"]):
            error(line_of("slug"), f"slug {meta['slug']!r} must be lowercase letters, digits, '-', '_' or '.'")
        elif len(meta["slug"]) > MAX_SLUG:
            error(line_of("slug"), f"slug is {len(meta['slug'])} characters long; keep it to {MAX_SLUG}")
        else:
            slug = meta["slug"]
    if len(slug) > MAX_SLUG and "slug" not in meta:
        error(None, f"the file name makes a slug of {len(slug)} characters; rename the file or set a "
                    f"'slug:' of at most {MAX_SLUG}")

    title = meta.get("title")
    if isinstance(title, (list, dict)):
        error(line_of("title"), f"title must be text, not a {'list' if isinstance(title, list) else 'mapping'}; "
                                "quote it if it holds ':', '[' or '{': title: \"...\"")
        title = "?"
    elif title is not None and not isinstance(title, str):
        title = str(title)
    if not title:
        heading, body = first_heading(body)
        title = heading
    if title and CONTROL.search(title) and "title" not in meta:
        error(None, f"the title heading holds the control character U+{ord(CONTROL.search(title).group()):04X}; "
                    "remove it")
    if not title:
        error(1, "the post has no title: add 'title: ...' to the front matter or start the text with a '# Heading'")

    date = None
    if "date" in meta:
        date = _parse_date(meta["date"])
        if date is None:
            error(line_of("date"), f"date {meta['date']!r} is not a date; write YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'")
    elif name_date is not None:
        date = name_date
    elif not is_jekyll_draft(path):  # Jekyll's drafts have no date until they are posted
        warn(None, "the post has no date: add 'date: YYYY-MM-DD' (undated posts are listed after dated ones)")
    if not _check_year(date):
        error(line_of("date") if "date" in meta else None,
              f"date {date.year:04d}-{date.month:02d}-{date.day:02d} is out of range; write a year from {YEARS[0]} to {YEARS[1]}")
        date = None
    updated = None
    if "updated" in meta:
        updated = _parse_date(meta["updated"])
        if updated is None:
            error(line_of("updated"), f"updated {meta['updated']!r} is not a date; write YYYY-MM-DD")
        elif not _check_year(updated):
            error(line_of("updated"), f"updated {updated.year:04d}-{updated.month:02d}-{updated.day:02d} is out of range; write a year from "
                                      f"{YEARS[0]} to {YEARS[1]}")

    summary = meta.get("summary", meta.get("excerpt"))
    if summary is not None and not isinstance(summary, str):
        error(line_of("summary" if "summary" in meta else "excerpt"), "summary/excerpt must be text")
        summary = None

    authors = _string_list(meta.get("authors", meta.get("author")))
    if authors is None:
        error(line_of("authors" if "authors" in meta else "author"), "author(s) must be a name or a list of names")
        authors = []
    tags = _string_list(meta.get("tags"))
    if tags is None:
        error(line_of("tags"), "tags must be a list of words, e.g. tags: [gp, jax]")
        tags = []
    for tag in tags:
        if len(tag) > MAX_SLUG:
            error(line_of("tags"), f"tag {tag[:20]!r}... is {len(tag)} characters long; keep tags to {MAX_SLUG}")

    layout = meta.get("layout", "post")
    if not isinstance(layout, str) or not re.match(r"^[\w-]+$", layout):
        error(line_of("layout"), f"layout {layout!r} must be a template name such as 'post'")
        layout = "post"

    flags = {}
    for key in BOOL_KEYS:
        if key in meta and not isinstance(meta[key], bool):
            error(line_of(key), f"'{key}' must be true or false, got {meta[key]!r}")
        flags[key] = bool(meta.get(key)) if isinstance(meta.get(key), bool) else None

    # Jekyll: 'published: false' keeps a post out of the site; a file of _drafts/ is a draft
    draft = (bool(flags["draft"]) or flags["visible"] is False or flags["published"] is False
             or is_jekyll_draft(path))
    extra = {k: v for k, v in meta.items() if k not in KNOWN_KEYS}
    if any(p.level == "error" for p in problems):
        return None, problems
    post = Post(
        source=path, rel=rel, title=title, slug=slug, body=body, line_offset=offset,
        date=date, updated=updated, summary=summary, authors=authors, tags=tags, layout=layout,
        draft=draft, under_construction=bool(flags["under_construction"]),
        comments=bool(flags["comments"]), share=bool(flags["share"]), extra=extra,
        key_lines=key_lines, is_bundle=is_bundle_index(path),
    )
    return post, problems
