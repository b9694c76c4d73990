"""What the build's two stages share, so that neither imports the other.

:mod:`sitegen.build` runs the stages and writes the site; :mod:`sitegen.render` turns parsed posts
into pages. Both speak of a parsed post (:class:`Parsed`, what the parse cache holds), output files
(:class:`PageOut`) and the result (:class:`BuildResult`), key the incremental cache with
:func:`digest`, and find the package's default templates and static files under :data:`PACKAGE_DIR`.
"""
from __future__ import annotations

import hashlib
import html as htmllib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urljoin  # here, not in resolve_href: called per link, the import cost more than the work

from sitegen.errors import Problem

#: the installed package: its default templates/ and static/ live here
PACKAGE_DIR = Path(__file__).resolve().parent
#: the site's cache folder (parse cache, the preview's output), beside content/
CACHE_NAME = ".sitegen-cache"
#: the site's own files and folders at its root: no post may take their URL
RESERVED_URLS = frozenset({"static", "tags", "page", "feed.xml", "index.html", "404.html", "robots.txt",
                           "sitemap.xml", ".sitegen-output"})


def digest(*parts) -> str:
    """A short content key for anything with a stable ``repr`` (strings, numbers, tuples, sorted lists)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


@dataclass
class PageOut:
    """One output file and what the link checker needs to know about it."""

    key: str
    data: bytes | None                       # None: unchanged, take it from the previous output
    links: list[tuple[str, int | None]] = field(default_factory=list)
    ids: frozenset = frozenset()
    source: str | None = None                # the post it came from, for messages
    written: bool = False                    # a worker already wrote it into the new tree (data is None)


@dataclass
class Parsed:
    """The parse stage's result for one post (picklable, cached)."""

    html: str
    toc: list[dict]
    excerpt_html: str
    problems: list[Problem]
    deps: dict[str, tuple[int, int] | None]  # file -> stamp when read
    files: dict[str, bytes]
    scripts: list[str]
    md_links: dict[str, str]                 # linked source -> URL it resolved to
    key: str = ""
    #: None: read no data; "live": drawn by the preview, runs still training read from their parts;
    #: "static": drawn from finished tables only. A page drawn one way is never reused the other way.
    data_mode: str | None = None
    reads_run: bool = False                  # read a run still training: redrawn whenever in doubt
    #: the HTML of each code block and formula, for the post's next parse to reuse (see
    #: sitegen/markdown.py); the builder keeps it apart in the cache (None in the parse cache)
    fragments: dict | None = None

    def __getattr__(self, name: str):
        """``html``, ``toc`` and ``excerpt_html`` of a parse read from the build cache, where they are
        kept together, compressed (see :func:`packed`): unpacked when one is first asked for (a
        rebuild asks for those of a few posts of thousands)."""
        if name in PACKED:
            state = self.__dict__
            data = state.pop("_packed", None)
            if data is not None:
                import pickle
                import zlib

                for key, value in zip(PACKED, pickle.loads(zlib.decompress(data))):
                    state.setdefault(key, value)
                return state[name]
        raise AttributeError(name)


#: what the build cache keeps of a parse in one compressed blob: most of its bytes and objects
PACKED = ("html", "toc", "excerpt_html")


def packed(parsed: Parsed):
    """How the build cache pickles a :class:`Parsed`: its HTML, table of contents and excerpt
    compressed together (level 1), everything else as it is."""
    state = dict(parsed.__dict__)
    if all(key in state for key in PACKED):
        import pickle
        import zlib

        values = tuple(state.pop(key) for key in PACKED)
        state["_packed"] = zlib.compress(pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL), 1)
    return _unpacked, (state,)


def _unpacked(state: dict) -> Parsed:
    parsed = Parsed.__new__(Parsed)
    parsed.__dict__.update(state)
    return parsed


@dataclass
class BuildResult:
    out_dir: Path
    problems: list[Problem]
    pages: int
    written: list[str]
    removed: list[str]
    parsed: list[str]
    seconds: float

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


# -- the links and ids of an output file, for the link checker ------------------------------------------
#: what an href or src attribute is, and an id: the value of each match, left to right, not overlapping
HREF = re.compile(r"""\s(?:href|src)\s*=\s*"([^"]*)\"""")
IDS = re.compile(r"""\sid\s*=\s*"([^"]*)\"""")
# The same found from the attribute's name: a pattern that begins with a literal is searched for that
# literal, where one that begins with \s tries every character (3-4x the time on a page).
_HREF_NAMES = (re.compile(r"""href\s*=\s*"([^"]*)\""""), re.compile(r"""src\s*=\s*"([^"]*)\""""))
_ID_NAME = (re.compile(r"""id\s*=\s*"([^"]*)\""""),)


def attribute_values(text: str, names=_HREF_NAMES) -> list[str]:
    """``HREF.findall(text)`` (or ``IDS``'s with ``names=_ID_NAME``), found faster: the leftmost match of
    any name's pattern counts if whitespace precedes it; if not, the search goes on from the character
    after its start, as findall's would."""
    out: list[str] = []
    pos = 0
    found = [p.search(text) for p in names]
    while True:
        best = None
        for k, m in enumerate(found):
            if m is not None and m.start() < pos:
                m = found[k] = names[k].search(text, pos)
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        if best is None:
            return out
        start = best.start()
        if start > 0 and text[start - 1].isspace():  # what \s matches (both are Py_UNICODE_ISSPACE)
            out.append(best.group(1))
            pos = best.end()
        else:
            pos = start + 1


def page_out(rel: str, key: str, data, source, link_lines, binary: bool) -> PageOut:
    """An output file plus what the link checker needs: its ids and its links (with source lines)."""
    text = None
    if isinstance(data, str):
        text, data = data, data.encode("utf-8")  # (the text kept: not decoded again below)
    links, ids = [], frozenset()
    if not binary and rel.endswith(".html"):
        if text is None:
            text = data.decode("utf-8")
        ids = frozenset(htmllib.unescape(i) for i in attribute_values(text, _ID_NAME))
        links = [(htmllib.unescape(h), link_lines(h) if link_lines else None) for h in attribute_values(text)]
    return PageOut(key, data, links, ids, source)


EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def resolve_href(base: str, href: str) -> tuple[str | None, str | None]:
    """An internal href as a site path and anchor; (None, None) for external links."""
    if not href or href[0] == "/" and href[:2] != "//" or EXTERNAL.match(href):
        return _resolve_absolute(href)  # the same on every page: worked out once per build
    path, _, fragment = href.partition("#")
    path = path.partition("?")[0]
    anchor = unquote(fragment) or None
    if not path:
        return base, anchor
    return unquote(urljoin(base, path)), anchor


@lru_cache(maxsize=16384)
def _resolve_absolute(href: str) -> tuple[str | None, str | None]:
    """:func:`resolve_href` for an href that does not depend on the page: empty, external, or from the root."""
    if not href or EXTERNAL.match(href):
        return None, None
    path, _, fragment = href.partition("#")
    return unquote(path.partition("?")[0]), unquote(fragment) or None
