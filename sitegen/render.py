"""Pages from parsed posts: Jinja2 templates, the index, tags, feed, sitemap and assets.

Templates come from the site's ``templates/`` folder first, then the defaults shipped in
``sitegen/templates/``, so a user overrides any one of them by writing a file of that name.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html as htmllib
import os
import re
import traceback
from pathlib import Path

from markupsafe import Markup

from sitegen.content import is_markdown
from sitegen.paths import bundle_files, symlink_refused
from sitegen.stages import IDS, PACKAGE_DIR, PageOut
from sitegen.stages import page_out as _page_out
from sitegen.stages import digest as _digest
from sitegen.errors import Problem
from sitegen.lists import ListPages, text as _text

ASSET_TYPES = {".css", ".js"}


class Renderer(ListPages):
    def __init__(self, builder, config, posts, out_dir: Path, report):
        self.builder = builder
        self.config = config
        self.posts = posts
        self.out_dir = out_dir
        self.report = report
        self.root = builder.root
        self.template_digest = self._template_digest()
        self.config_digest = _digest(sorted((k, repr(v)) for k, v in vars(config).items()), builder.drafts,
                                     builder.preview)
        self.env = self._shared_environment()
        self.old_pages = builder.cache.get("pages", {})
        self.pages: dict[str, PageOut] = {}
        self.assets: dict[str, str] = {}
        self.md_targets: dict[str, str] = {}
        #: posts whose page and files were carried over from the previous build unchanged
        self.carried: set[str] = set()
        #: layouts without a template -> the one used instead (see check_layouts)
        self.layout_fallback: dict[str, str] = {}
        #: post page keys kept between processes (see post_page_key), and each source's loaded stamp
        self.kept_keys: dict = builder.cache.setdefault("post_keys", {})
        self.loaded_posts: dict = builder.cache.get("posts", {})
        trusted = getattr(builder, "_hint", None) is not None and builder.cache.get("out_dir") == str(out_dir)
        self._carry = self._memo("carry") if trusted else None

    # -- templates ------------------------------------------------------------------------------------
    def _template_dirs(self) -> list[Path]:
        dirs = []
        if (self.root / "templates").is_dir():
            dirs.append(self.root / "templates")
        dirs.append(PACKAGE_DIR / "templates")
        return dirs

    def _memo(self, name: str) -> dict:
        """Last build's results, for a Builder kept alive across builds (the preview server)."""
        return getattr(self.builder, "memo", {}).setdefault(name, {})

    def _shared_environment(self):
        """Last build's Jinja environment while templates and config are unchanged: compiling the
        templates again would cost more than rendering the one page a preview edit changes."""
        memo = self._memo("env")
        key = (self.template_digest, self.config_digest, tuple(str(d) for d in self._template_dirs()))
        if memo.get("key") == key:
            env = memo["env"]
            env.globals["asset"] = self.asset_url
            return env
        env = self._environment()
        memo.update(key=key, env=env)
        return env

    def _environment(self):
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        compiled = None
        builder = self.builder
        if getattr(builder, "use_cache", False) and hasattr(builder, "cache_path"):
            from sitegen.cache import template_cache

            compiled = template_cache(builder.cache_path.parent / f"templates-{builder.cache['version']}")
        env = Environment(
            loader=FileSystemLoader([str(d) for d in self._template_dirs()]),
            autoescape=select_autoescape(["html", "xml"], default_for_string=True),
            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, bytecode_cache=compiled,
            # no stat of the template file at each page (and of base.html it extends): an environment
            # is kept only while the templates' digest is the same (see _shared_environment)
            auto_reload=False,
        )
        env.globals["asset"] = self.asset_url
        env.filters["isodate"] = lambda d: d.strftime("%Y-%m-%d") if d else ""
        env.filters["longdate"] = lambda d: f"{d:%B} {d.day}, {d.year}" if d else ""
        env.filters["rfc3339"] = lambda d: (d or dt.datetime(1970, 1, 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = self.config  # not self: a kept environment must not keep a whole build alive
        env.filters["absolute"] = lambda u: config.absolute(u)
        from sitegen.content import slugify

        env.filters["tagslug"] = slugify
        env.filters["striptags_text"] = lambda s: " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", str(s))).split())
        return env

    def _template_digest(self) -> str:
        h = hashlib.sha256()
        for d in self._template_dirs():
            for path in sorted(d.rglob("*")):
                if path.is_file():
                    h.update(str(path.relative_to(d)).encode())
                    h.update(path.read_bytes())
        return h.hexdigest()[:16]

    def template_files(self) -> list[str]:
        return [str(p) for d in self._template_dirs() for p in d.rglob("*") if p.is_file()]

    def check_layouts(self) -> None:
        """A layout without a template (a Jekyll blog's 'prediction_post') falls back to 'post',
        with one warning per layout name (sitegen/jekyll.py)."""
        from sitegen.jekyll import fallback_layouts

        names = set()
        for d in self._template_dirs():
            names.update(p.stem for p in d.glob("*.html"))
        self.layout_fallback = fallback_layouts(self.posts, names, self.report)

    def _render(self, name: str, where: str, **context) -> str | None:
        from jinja2 import TemplateError, TemplateSyntaxError

        try:
            return self.env.get_template(name).render(site=self.config, **context)
        except TemplateSyntaxError as exc:
            path = self._template_path(exc.filename or exc.name or name)
            self.report.error(path, exc.lineno, f"template error: {exc.message}")
        except TemplateError as exc:
            path, line = self._template_frame(exc, name)
            self.report.error(path, line, f"template error while rendering {where}: {exc}")
        except Exception as exc:
            path, line = self._template_frame(exc, name)
            self.report.error(path, line, f"template error while rendering {where}: "
                                          f"{type(exc).__name__}: {exc}")
        return None

    def _template_path(self, filename: str) -> str:
        try:
            return str(Path(filename).resolve().relative_to(self.root))
        except ValueError:
            return str(filename)

    def _template_frame(self, exc, name) -> tuple[str, int | None]:
        dirs = [str(d) for d in self._template_dirs()]
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if any(frame.filename.startswith(d) for d in dirs):
                return self._template_path(frame.filename), frame.lineno
        return f"templates/{name}", None

    # -- assets -----------------------------------------------------------------------------------------
    def collect_assets(self) -> None:
        sources = {}
        for d in (PACKAGE_DIR / "static", self.root / "static"):
            if d.is_dir():
                for path in sorted(d.rglob("*")):
                    if path.is_file() and not path.name.startswith("."):
                        sources[str(path.relative_to(d))] = path
        for name, path in sources.items():
            data = path.read_bytes()
            p = Path(name)
            if p.suffix == ".js" and path.parent == PACKAGE_DIR / "static" and not self.builder.preview:
                data = _minified(data)  # our runtime keeps its comments in the source, not on the wire
            # The preview keeps plain names, so a stylesheet edit rewrites only the stylesheet
            # (no page changes its <link>) and the open tab can swap it without reloading.
            if p.suffix in ASSET_TYPES and not self.builder.preview:
                fingerprint = hashlib.sha256(data).hexdigest()[:10]
                out = f"static/{p.with_name(f'{p.stem}.{fingerprint}{p.suffix}')}"
            else:
                out = f"static/{name}"
            self.assets[name] = "/" + out
            self._emit(out, _digest(data), lambda data=data: data, binary=True)

    def asset_url(self, name: str) -> str:
        try:
            return self.assets[name]
        except KeyError:
            raise LookupError(f"no static file '{name}' in sitegen/static or the site's static/") from None

    @property
    def stylesheets(self) -> list[str]:
        names = [n for n in self.assets if n.endswith(".css") and "/" not in n]
        names.sort(key=lambda n: (n != "style.css", n))
        return [self.assets[n] for n in names]

    # -- output helpers ------------------------------------------------------------------------------------
    def _emit(self, rel: str, key: str, produce, source: str | None = None, binary: bool = False,
              link_lines=None) -> None:
        if self._reuse(rel, key):
            return
        if self.deferred is not None:  # rendered later, maybe in workers (see sitegen/lists.py)
            self.pages[rel] = None  # (its place, kept in order)
            self.deferred.append((rel, key, produce))
            return
        data = produce()
        if data is not None:
            self.pages[rel] = _page_out(rel, key, data, source, link_lines, binary)

    def _reuse(self, rel: str, key: str) -> bool:
        """Keep last build's file when its inputs did not change."""
        old = self.old_pages.get(rel)
        if old is not None and old[0] == key and self._old_exists(rel, key):
            self.pages[rel] = PageOut(key, None, old[1], old[2], old[3])
            return True
        return False

    def _old_exists(self, rel: str, key: str) -> bool:
        if self.builder.cache.get("out_dir") != str(self.out_dir):
            return False
        spare = getattr(self.builder, "_spare_pages", None)
        if spare is not None and spare.get(rel) == key:
            return True  # the new site's tree holds this very file already (see sitegen/write.py)
        # Told which files changed, the builder trusts its own output to be where it wrote it.
        return getattr(self.builder, "_hint", None) is not None or os.path.exists(f"{self.out_dir}/{rel}")

    # -- pages ----------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything post pages need to know about the whole site, before any is rendered."""
        self.collect_assets()
        from sitegen.public import public_files

        self.public = public_files(self.root)
        self.sorted_posts = self._ordered()
        self.listed = [p for p in self.sorted_posts if p.listed or (self.builder.drafts and p.draft)]
        self.base_key = (self.template_digest, self.config_digest, _digest(sorted(self.assets.items())))
        self.position = {p.rel: i for i, p in enumerate(self.listed)}
        self.neighbours = _Neighbours(self.listed, self.position)

    def _ordered(self) -> list:
        """The posts newest first. Sorting 4,000 posts on every preview rebuild adds up, so the
        order is reused while every post's sort key is what it was."""
        memo = self._memo("order")
        keys = memo.setdefault("keys", {})
        sort_keys = []
        for post in self.posts:
            hit = keys.get(post.rel)
            if hit is None or hit[0] is not post:
                hit = keys[post.rel] = (post, _sort_key(post))
            sort_keys.append(hit[1])
        sort_keys = tuple(sort_keys)
        if memo.get("sort_keys") != sort_keys:
            memo["sort_keys"] = sort_keys
            memo["permutation"] = sorted(range(len(sort_keys)), key=sort_keys.__getitem__)
        if len(keys) > 2 * len(self.posts) + 100:
            live = {p.rel for p in self.posts}
            for rel in [r for r in keys if r not in live]:
                del keys[rel]
        posts = self.posts
        return [posts[i] for i in memo["permutation"]]

    def post_page_key(self, post, pp) -> str:
        # Same post, same parse, same neighbours (all by identity): same key, without hashing again.
        adjacent = self.neighbours.adjacent(post.rel)
        memo = self._memo("post_key")
        hit = memo.get(post.rel)
        if (hit is not None and hit[0] is post and hit[1] is pp and hit[2] == self.base_key
                and hit[3][0] is adjacent[0] and hit[3][1] is adjacent[1]):
            return hit[4]
        # A new process (the CLI) has no such memo: the key kept in the build cache with the stamps
        # of the files it came from serves as long as they are the same (a post is what its file and
        # the config make it; the config is in base_key; a neighbour shows its URL and title).
        inputs = (self.base_key, pp.key, self._stamp_of(post), self._stamp_of(adjacent[0]),
                  self._stamp_of(adjacent[1]))
        kept = self.kept_keys.get(post.rel)
        if kept is not None and kept[0] == inputs and inputs[2] is not None:
            key = kept[1]
        else:
            key = _digest(self.base_key, pp.key, post.title, repr(post.date), repr(post.updated), post.summary,
                          post.authors, post.tags, post.layout, post.draft, post.under_construction,
                          post.comments, post.share, sorted((k, repr(v)) for k, v in post.extra.items()),
                          self.neighbours.get(post.rel))
            self.kept_keys[post.rel] = (inputs, key)
        memo[post.rel] = (post, pp, self.base_key, adjacent, key)
        return key

    def _stamp_of(self, post):
        """(rel, the stamp of the file it was loaded from), or None (no post, or no stamp known)."""
        if post is None:
            return None
        loaded = self.loaded_posts.get(str(post.source))
        return (post.rel, loaded[0]) if loaded else None

    def reuse_post_page(self, post, pp) -> bool:
        return self._reuse(f"{post.folder}index.html", self.post_page_key(post, pp))

    def render_post_page(self, post, pp) -> tuple[PageOut | None, list[Problem]]:
        """Render one post's page. Runs in worker processes, so problems are returned, not reported."""
        from sitegen.errors import Report

        # In-process (few posts) this is the builder's renderer: its own report must survive.
        site_report, self.report = self.report, Report()
        try:
            return self._render_post_page(post, pp)
        finally:
            self.report = site_report

    def _render_post_page(self, post, pp) -> tuple[PageOut | None, list[Problem]]:
        newer, older = self.neighbours.get(post.rel, (None, None))
        summary = post.summary if post.summary is not None else _text(pp.excerpt_html)
        html = self._render(
            f"{self.layout_fallback.get(post.layout, post.layout)}.html", post.rel, post=post,
            content=Markup(pp.html), toc=pp.toc,
            summary=summary, newer=newer, older=older,
            **self._page_common(post.url, post.title, summary, pp.scripts),
        )
        if html is None:
            return None, self.report.problems
        body = post.body
        body_lines = body.split("\n")
        found: dict[str, int | None] = {}

        def link_line(href):
            # The href as written; else its file name (Liquid wrote the rest: {{ site.baseurl }}/a.png).
            # Most of a page's links (the header, tags, neighbours) are not in the body at all: one test
            # on the whole body rules them out, and each href is looked up once per page.
            if href in found:
                return found[href]
            line_no = None
            tail = href.rstrip("/").rsplit("/", 1)[-1]
            for needle in (href, tail if len(tail) > 3 else None):
                if needle and needle in body:
                    line_no = next((i + 1 + post.line_offset for i, line in enumerate(body_lines) if needle in line),
                                   None)
                    if line_no is not None:
                        break
            found[href] = line_no
            return line_no

        page = _page_out(f"{post.folder}index.html", self.post_page_key(post, pp), html, post.rel, link_line, False)
        return page, self.report.problems

    def add_post_page(self, post, page: PageOut) -> None:
        self.pages[f"{post.folder}index.html"] = page

    # -- carrying posts over between preview rebuilds -----------------------------------------------
    def carry_post(self, post, hit) -> bool:
        """Take a post's page and files as the previous build left them, if nothing they came from
        changed: the same post and parse (by identity), no changed file among the post's inputs,
        the same neighbours, templates, config and assets. Only when the builder was told which
        files changed (the preview); a rebuild after one save then skips the other posts outright."""
        if self._carry is None:
            return False
        prev = self._carry.get(post.rel)
        if prev is None or prev[0] is not post or prev[1] is not hit or prev[2] != self.base_key:
            return False
        newer, older = self.neighbours.adjacent(post.rel)
        if prev[3] is not newer or prev[4] is not older:
            return False
        parsed = hit[1]
        if parsed.deps and not self.builder._hint.isdisjoint(parsed.deps):
            return False
        if parsed.md_links and any(self.md_targets.get(src) != url for src, url in parsed.md_links.items()):
            return False
        self.pages.update(prev[5])
        self.carried.add(post.rel)
        return True

    def remember(self, parsed_cache) -> None:
        """After a successful write: what each post produced, for :meth:`carry_post` next time."""
        memo = self._memo("carry")
        if len(memo) > len(self.posts) + len(self.carried) // 10 + 16:
            live = {p.rel for p in self.posts}
            for rel in [r for r in memo if r not in live]:
                del memo[rel]
        for post in self.posts:
            if post.rel in self.carried or post.is_bundle:
                continue
            hit = parsed_cache.get(post.rel)
            page = self.pages.get(f"{post.folder}index.html")
            if hit is None or page is None:
                memo.pop(post.rel, None)
                continue
            outputs = {}
            for rel in [f"{post.folder}index.html"] + [f"{post.folder}{name}" for name in hit[1].files]:
                out = self.pages.get(rel)
                if out is None:
                    break
                outputs[rel] = PageOut(out.key, None, out.links, out.ids, out.source)  # (as it is now on disk)
            else:
                newer, older = self.neighbours.adjacent(post.rel)
                memo[post.rel] = (post, hit, self.base_key, newer, older, outputs)
                continue
            memo.pop(post.rel, None)

    def render_all(self) -> dict[str, PageOut]:
        """Every page but the post pages themselves (see render_post_page), and the posts' files."""
        parsed = {rel: entry[1] for rel, entry in self.builder.cache["parsed"].items()}
        carried = self.carried
        for post in self.sorted_posts:
            if post.rel in carried:
                continue
            pp = parsed.get(post.rel)
            if pp is not None:
                self._post_files(post, pp)
        entries = [(p, parsed.get(p.rel)) for p in self.listed]
        entries = [(p, pp) for p, pp in entries if pp is not None]
        base_key = self.base_key
        summary_keys = self._summary_keys(entries)
        self.deferred = []
        self._index_pages(entries, base_key, summary_keys)
        self._tag_pages(entries, base_key, summary_keys)
        self._feed(entries, base_key)
        self._sitemap(self.sorted_posts, base_key)  # (an entry per post: in a worker too, not after them)
        self._render_deferred()
        self._simple("404.html", "404.html", base_key, page_url="/404.html")
        if "robots.txt" not in self.public:
            self._emit("robots.txt", _digest(base_key, "robots"),
                       lambda: f"User-agent: *\nAllow: /\nSitemap: {self.config.absolute('sitemap.xml')}\n")
        self._redirect_pages(base_key)
        self._public_files()
        return self.pages

    def _redirect_pages(self, base_key) -> None:
        """A page at each old URL of a post (a Jekyll '.html' permalink, 'redirect_from') that sends
        the reader on: GitHub Pages has no server-side redirects."""
        from sitegen.jekyll import redirect_pages

        for rel, (old, post) in redirect_pages(self.posts).items():
            if rel in self.pages:
                line = post.key_lines.get("redirect_from", post.key_lines.get("permalink", 1))
                self.report.error(post.rel, line, f"the old URL {old} would replace /{rel}, which the site "
                                                  "generates; remove it from redirect_from or change the permalink")
                continue
            self._emit(rel, _digest(base_key, "redirect", old, post.url, post.title), lambda post=post: self._render(
                "redirect.html", f"the redirect from {old}", target=post.url,
                **self._page_common(post.url, post.title, f"{post.title} has moved to {post.url}")))

    def _public_files(self) -> None:
        """``public/``: served at the root as they are (see sitegen/public.py), after every generated
        page so that a clash is found here, whichever came first."""
        from sitegen.public import OVERRIDABLE, PUBLIC_DIR

        for rel, path in self.public.items():
            if symlink_refused(self.root, path, f"{PUBLIC_DIR}/{rel}", self.report):
                continue
            if rel in self.pages and rel not in OVERRIDABLE:
                made_by = self.pages[rel].source or "the site"
                self.report.error(f"{PUBLIC_DIR}/{rel}", None,
                                  f"would replace /{rel}, which {made_by} generates; rename or move the file")
                continue
            try:
                stat = os.stat(path)
            except OSError:
                continue
            key = _digest("public", str(path), stat.st_mtime_ns, stat.st_size)
            if self._reuse(rel, key):
                continue
            data = path.read_bytes()
            # An HTML file's ids can be linked to; its own links are the author's business.
            ids = (frozenset(htmllib.unescape(i) for i in IDS.findall(data.decode("utf-8", "replace")))
                   if rel.endswith(".html") else frozenset())
            self.pages[rel] = PageOut(key, data, [], ids, None)

    def _page_common(self, url: str, title: str, description: str, scripts=()) -> dict:
        return {
            "page_url": url, "canonical": self.config.absolute(url), "page_title": title,
            "description": description, "stylesheets": self.stylesheets,
            "scripts": [self.asset_url(s) for s in scripts], "preview": self.builder.preview,
        }

    def _post_files(self, post, pp) -> None:
        memo = self._memo("file_keys")
        hit = memo.get(post.rel)
        if hit is None or hit[0] is not pp:
            hit = memo[post.rel] = (pp, [(name, _digest(data)) for name, data in pp.files.items()])
        for name, key in hit[1]:
            self._emit(f"{post.folder}{name}", key, lambda name=name: pp.files[name], binary=True)
        for rel, path in bundle_files(self.root, post, self.report, is_markdown):  # none unless a bundle
            stamp = os.stat(path)
            self._emit(f"{post.folder}{rel}", _digest(str(path), stamp.st_mtime_ns, stamp.st_size),
                       lambda path=path: path.read_bytes(), binary=True)

    def _simple(self, template: str, rel: str, base_key, page_url: str) -> None:
        self._emit(rel, _digest(base_key, rel), lambda: self._render(
            template, rel, **self._page_common(page_url, "Page not found", self.config.description)))


def _neighbour(post):
    return {"url": post.url, "title": post.title} if post else None


class _Neighbours:
    """Each listed post's newer and older neighbour, worked out when asked (most never are)."""

    def __init__(self, listed, position):
        self.listed = listed
        self.position = position

    def adjacent(self, rel):
        i = self.position.get(rel)
        if i is None:
            return (None, None)
        newer = self.listed[i - 1] if i > 0 else None
        older = self.listed[i + 1] if i + 1 < len(self.listed) else None
        return (newer, older)

    def get(self, rel, default=None):
        if rel not in self.position:
            return default
        newer, older = self.adjacent(rel)
        return (_neighbour(newer), _neighbour(older))


def _sort_key(post):
    # Newest first; undated posts after every dated one, by title.
    if post.date is None:
        return (1, 0, post.title.lower())
    return (0, -post.date.timestamp(), post.title.lower())


def _minified(data: bytes) -> bytes:
    """A bundled script without comments and spaces (rjsmin: a small, long-kept minifier that only
    removes, never renames, so what runs is what the source says); unchanged if it is missing."""
    try:
        import rjsmin
    except ImportError:  # pragma: no cover - a dependency; the plain file works as well
        return data
    return rjsmin.jsmin(data.decode("utf-8")).encode("utf-8") + b"\n"
