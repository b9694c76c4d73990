"""The build: posts -> pages -> a complete site, written atomically.

Read top to bottom, :meth:`Builder.build` does:

1. load the config and every post (front matter validated; cached by file stamp);
2. parse each post's Markdown to HTML (directives, math, code) — in worker processes, and only
   for posts whose source or any file they read changed (content-hash cache);
3. render every page through Jinja2 templates (post pages, paginated index, tags, feed, sitemap,
   404, robots.txt), skipping pages whose inputs did not change;
4. check every internal link and anchor;
5. if nothing failed, write the site: into a fresh folder swapped in at the end (``sitegen build``),
   or in place, file by file (the preview server). A failed build writes nothing.

The build graph — which files each post read — is kept in the parse cache (``Parsed.deps``), so a
rebuild re-parses only the posts whose source or inputs changed.
"""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import time
from pathlib import Path

from sitegen.config import load_config
from sitegen.content import Post, discover
from sitegen.errors import BuildError, Problem, Report, SiteError
from sitegen.paths import realpath_in
from sitegen.stages import CACHE_NAME, PACKAGE_DIR, RESERVED_URLS, BuildResult, PageOut
from sitegen.stages import resolve_href as _resolve_href
from sitegen.workers import stamp as _stamp


#: the libraries whose output lands in the pages: another version of one must not reuse a page,
#: a parse or a highlighted code block made by the one before
LIBRARIES = ("markdown_it", "mdit_py_plugins", "pygments", "latex2mathml", "jinja2", "markupsafe", "yaml")


def _code_version() -> str:
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.relative_to(PACKAGE_DIR).parts[0].removesuffix(".py") not in ("trace", "expr", "serve", "cli"):
            # (not used by the build itself)
            h.update(path.read_bytes())
    h.update(repr(_library_stamps()).encode())
    return h.hexdigest()[:16]


def _library_stamps() -> list:
    """Where each of :data:`LIBRARIES` is installed and its package file's stamp (an upgrade writes
    the file again), found without importing it (Pygments and latex2mathml cost a one-post rebuild
    0.1 s when nothing needs them)."""
    from importlib.util import find_spec

    stamps = []
    for name in LIBRARIES:
        try:
            origin = find_spec(name).origin
            st = os.stat(origin)
            stamps.append((name, origin, st.st_mtime_ns, st.st_size, st.st_ino))
        except Exception:
            stamps.append((name, None))
    return stamps


#: allocations between two passes of the cyclic collector over the youngest objects while building
#: (Python's default: 700; see Builder.build)
BUILD_GC_THRESHOLD = 10_000


# ----------------------------------------------------------------------------------------------

class Builder:
    """Builds one site. Keep the object around (as the preview server does) for fast rebuilds."""

    def __init__(self, root: str | Path = ".", out: str | Path | None = None, drafts: bool = False,
                 workers: int | None = None, use_cache: bool = True, preview: bool = False):
        self.root = Path(root).resolve()
        self._out_arg = out
        self.drafts = drafts or preview
        self.preview = preview
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.use_cache = use_cache
        self.cache: dict = {}
        self.cache_loaded = False
        self.last_result: BuildResult | None = None
        self.last_posts: list[Post] = []
        self._doomed: dict[str, float] = {}   # the preview's old figure data, deleted after a grace period
        #: write the cache after every build; the preview server turns this off and calls
        #: save_cache() when idle, so the write is not between a save and the reload
        self.autosave = True
        #: what the renderer computed last time, keyed by the identity of its inputs (in memory only)
        self.memo: dict = {}
        #: remember what each post produced for the next build of this object (False: there is none)
        self.keep_memo = True
        self._hint: set[str] | None = None     # files changed since the previous build, if known
        self._scanned = False                  # a build in this process has checked every post
        self._post_paths: list[str] | None = None
        self._resolved: dict[str, str] = {}
        self._swept = False                    # leftovers of a killed in-place write removed
        self._cached_out: str | None = None    # the output folder the cache on disk was written for
        #: each post parsed since the last save -> its code and math HTML (None: the post is gone)
        self._fragments: dict[str, dict | None] = {}

    # -- cache ------------------------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        return self.root / CACHE_NAME / "build.sqlite"

    def _cache_file(self):
        if getattr(self, "_store", None) is None or self._store.path != self.cache_path:
            from sitegen.cache import CacheFile

            self._store = CacheFile(self.cache_path)
        return self._store

    def _load_cache(self) -> None:
        if self.cache_loaded:
            return
        self.cache_loaded = True
        self.cache = {"version": _code_version(), "posts": {}, "parsed": {}, "pages": {}}
        store = self._cache_file()
        if not self.use_cache:
            self._cached_out = store.out_dir() or _legacy_out_dir(self.cache_path.parent / "build.pickle")
            return
        cached, self._cached_out = store.load(self.cache["version"])  # (out_dir: where we wrote, whatever the version)
        if cached is not None:
            self.cache = cached
        elif self._cached_out is None:
            self._cached_out = _legacy_out_dir(self.cache_path.parent / "build.pickle")

    def save_cache(self) -> None:
        """Write the parse and render cache to disk (``autosave`` does it after every build)."""
        self._save_cache()

    def _save_cache(self) -> None:
        if not self.use_cache:
            return
        self._cache_file().save(self.cache, self._fragments)
        self._fragments = {}
        templates = getattr(self, "_templates", None)
        if templates is not None and hasattr(templates, "flush"):
            templates.flush()
        gitignore = self.cache_path.parent / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n")
        old = self.cache_path.parent / "build.pickle"  # the cache of versions before build.sqlite
        if old.exists():
            old.unlink()

    # -- the build --------------------------------------------------------------------------------
    def build(self, in_place: bool = False, changed=None) -> BuildResult:
        """Build the site. Raises :class:`BuildError` with every problem if anything is wrong.

        ``changed``: every file created, modified or deleted since this Builder's previous build
        (the preview server's watcher knows them). Files not in it are trusted to be as they were,
        which spares stat-ing thousands of posts, data files and outputs per keystroke-save.
        None (the default) checks everything.
        """
        t0 = time.perf_counter()
        # The cache's half a million objects live through the build: kept out of the cyclic
        # collector's way (its passes over them took a fifth of a one-post rebuild's CPU time at
        # 4,000 posts): no pass while they are made (one would follow at once, over all of them),
        # then frozen, and handed back to it when the build ends.
        collecting = gc.isenabled()
        freeze = collecting and gc.get_freeze_count() == 0
        gc.disable()
        try:
            self._load_cache()
        finally:
            if freeze:
                gc.freeze()
            if collecting:
                gc.enable()
        # What the build makes besides (pages, keys, summaries) is mostly freed by reference counts:
        # a young-generation pass every 700 allocations, 150 of them in a one-post rebuild, found little.
        threshold = gc.get_threshold()
        gc.set_threshold(max(threshold[0], BUILD_GC_THRESHOLD), *threshold[1:])
        try:
            return self._build(in_place, changed, t0)
        finally:
            gc.set_threshold(*threshold)
            if freeze:
                gc.unfreeze()

    def _build(self, in_place: bool, changed, t0: float) -> BuildResult:
        self._hint = None
        if changed is not None and self._scanned:
            self._hint = {str(c) for c in changed}
        report = Report()
        try:
            config = load_config(self.root)
        except SiteError as exc:
            raise BuildError(getattr(exc, "problems", [exc.problem])) from None
        out_dir = self._output(config, report)

        posts = self._load_posts(report)
        self._check_found(posts, report)
        from sitegen import jekyll

        jekyll.resolve_posts(posts, config, report)
        self._site_settings = jekyll.site_settings(config, self.root)
        posts = self._check_posts(posts, report)
        from sitegen.render import Renderer

        renderer = Renderer(self, config, posts, out_dir, report)
        self._templates = getattr(renderer.env, "bytecode_cache", None)  # (written with the cache)
        renderer.check_layouts()
        renderer.prepare()
        tree, self._spare_pages = None, None
        try:
            if not in_place and not any(p.level == "error" for p in report.problems):
                from sitegen.write import start_tree

                try:  # the workers write the post pages into it as they go
                    tree, self._spare_pages = start_tree(out_dir, self.cache.pop("spare", None))
                except OSError as exc:
                    raise _cannot_write(exc, out_dir) from None
            parsed_now = self._process_posts(posts, renderer, report, tree)
            renderer.tree, renderer.spare = (None if tree is None else str(tree)), self._spare_pages is not None
            pages = renderer.render_all()
            self._check_links(pages, report)

            from sitegen.provenance_hook import stale_data_warnings

            report.extend(stale_data_warnings(self.root, self.cache["parsed"], posts))
            problems = sorted(set(report.problems), key=lambda p: (p.path, p.line or 0, p.message))
            if any(p.level == "error" for p in problems):
                raise BuildError(problems)
            try:
                written, removed = self._write(pages, out_dir, in_place, tree)
            except OSError as exc:
                raise _cannot_write(exc, out_dir) from None
        finally:
            if tree is not None and os.path.lexists(tree):  # not switched in: a failed build writes nothing
                shutil.rmtree(tree, ignore_errors=True)
        if self.keep_memo:
            renderer.remember(self.cache["parsed"])
        if self.autosave:
            self._save_cache()
        result = BuildResult(out_dir, problems, len(pages), written, removed, parsed_now,
                             time.perf_counter() - t0)
        self.last_result = result
        self.last_posts = posts
        return result

    def _output(self, config, report: Report) -> Path:
        """The output folder, symlinks resolved, after :func:`sitegen.output.check` agreed to it."""
        from sitegen import output
        from sitegen.config import CONFIG_NAME, line_of

        if self._out_arg is not None:
            shown, where = str(self._out_arg), ("--out", None)
            given = Path(self._out_arg)
            given = given if given.is_absolute() else Path.cwd() / given
        else:
            shown, where = config.output, (CONFIG_NAME, line_of(self.root / CONFIG_NAME, "output"))
            given = self.root / config.output
        owned = [self._cached_out, self.cache.get("out_dir"), str(self.root / CACHE_NAME)]
        problems = output.check(self.root, given, where, shown, owned)
        report.extend(problems)
        out_dir = Path(os.path.realpath(given)) if shown.strip() and "\x00" not in shown else self.root / "_site"
        if self.cache.get("pages") and (self.cache.get("out_dir") != str(out_dir)
                                        or output.read_marker(out_dir).get("build") != self.cache.get("build_id")):
            # The folder is not what this cache wrote last (a build killed after its switch, another
            # version, a hand edit): reuse nothing from it.
            self.cache["pages"] = {}
        return out_dir

    # -- stage 1: load ------------------------------------------------------------------------------
    def _load_posts(self, report: Report) -> list[Post]:
        cache = self.cache["posts"]
        hint = self._hint
        posts, seen, todo = [], set(), []
        sources = self._post_sources(cache)
        for key in sources:
            seen.add(key)
            hit = cache.get(key)
            stamp = hit[0] if hint is not None and hit is not None and key not in hint else _stamp(key)
            if not (hit and hit[0] == stamp):
                todo.append((key, stamp))
        if todo:
            from sitegen.workers import load_posts

            loaded = dict(load_posts([(key, Path(key)) for key, _ in todo], self.root, self.workers))
            for key, stamp in todo:
                cache[key] = (stamp, *loaded[key])
        for key in sources:
            _, post, problems = cache[key]
            report.extend(problems)
            if post is not None:
                posts.append(post)
        for key in set(cache) - seen:
            del cache[key]
        return posts

    def _post_sources(self, cache) -> list[str]:
        """The post files' paths: last build's list when the changed files cannot have altered it."""
        hint, known = self._hint, self._post_paths
        if hint is not None and known is not None:
            content = str(self.root / "content") + os.sep
            # Any other change in content/ (a new file, a deleted one, a folder) needs a fresh look.
            if all(not h.startswith(content) or (h in cache and os.path.isfile(h)) for h in hint):
                return known
        self._skipped: list[tuple[str, str]] = []
        self._plain: set[str] = set()
        self._post_paths = discover(self.root / "content", self._skipped, self._plain)
        return self._post_paths

    def _check_found(self, posts: list[Post], report: Report) -> None:
        """A content/ folder that holds files but yields no post is a mistake (posts named *.txt,
        a folder without index.md), never a silent empty site."""
        skipped = getattr(self, "_skipped", None)
        if posts or not skipped or self._post_paths:
            return
        shown = "; ".join(f"{name} ({why})" for name, why in skipped[:20])
        more = f"; and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        report.error("content", None, f"no post found: {len(skipped)} file(s) or folder(s) skipped: {shown}{more}. "
                                      "A post is a Markdown file (.md, .markdown, .mdown, .mkd) in content/ "
                                      "or content/_posts/, or a folder holding index.md")

    def _check_posts(self, posts: list[Post], report: Report) -> list[Post]:
        if not self.drafts:
            posts = [p for p in posts if not p.draft]
        by_url: dict[str, Post] = {}
        for post in posts:
            other = by_url.get(post.url)
            if other is not None:
                for a, b in ((post, other), (other, post)):
                    key = "permalink" if "permalink" in a.key_lines else "slug"
                    report.error(a.rel, a.key_lines.get(key, 1),
                                 f"duplicate URL '{a.url}': {b.rel} uses it too; give one of them another '{key}:'")
            else:
                by_url[post.url] = post
        for url, p in by_url.items():
            first = url.strip("/").split("/")[0]
            if first in RESERVED_URLS or url == "/":
                key = "permalink" if "permalink" in p.key_lines else "slug"
                report.error(p.rel, p.key_lines.get(key, 1), f"URL '{url}' is reserved by the site; choose another {key}")
        return posts

    # -- stage 2: parse -----------------------------------------------------------------------------
    def _md_targets(self, posts: list[Post]) -> dict[str, str]:
        resolved = self._resolved
        targets = {}
        folders: dict[str, str] = {}
        plain = getattr(self, "_plain", ())  # files the listing said are no links: their folder's real path
        for p in posts:
            source = str(p.source)
            real = resolved.get(source)
            if real is None:
                real = resolved[source] = realpath_in(source, folders, source in plain)
            targets[real] = p.url
        from sitegen.jekyll import SITE_KEY

        targets[SITE_KEY] = getattr(self, "_site_settings", None)
        return targets

    def _process_posts(self, posts: list[Post], renderer, report: Report, tree: Path | None = None) -> list[str]:
        """Parse the posts that changed and render the post pages whose inputs changed, in workers."""
        md_targets = self._md_targets(posts)
        parsed_cache = self.cache["parsed"]
        jobs = []
        renderer.md_targets = md_targets
        for i, post in enumerate(posts):
            hit = parsed_cache.get(post.rel)
            if hit is not None and renderer.carry_post(post, hit):
                continue
            if hit is not None and self._parsed_valid(post, hit, md_targets):
                if not renderer.reuse_post_page(post, hit[1]):
                    jobs.append((i, False))
            else:
                jobs.append((i, True))
        parsed_now = []
        if jobs:
            from sitegen.workers import run_posts

            fragments = self._old_fragments([posts[i].rel for i, again in jobs if again]) if self.use_cache else None
            for i, parsed, page, problems in run_posts(
                    posts, jobs, self.workers, root=self.root, md_targets=md_targets, renderer=renderer,
                    live=self.preview, parsed=parsed_cache, version=self.cache["version"], fragments=fragments,
                    tree=None if tree is None else str(tree), spare=self._spare_pages is not None):
                post = posts[i]
                report.extend(problems)
                if parsed is not None:
                    if parsed.fragments is not None:  # kept apart, read only when the post is parsed again
                        self._fragments[post.rel], parsed.fragments = parsed.fragments, None
                    parsed_cache[post.rel] = (self._post_stamp(post), parsed)
                    parsed_now.append(post.rel)
                elif page is None:
                    parsed_cache.pop(post.rel, None)  # crashed: parse it again next time
                if page is not None:
                    renderer.add_post_page(post, page)
        live = {p.rel for p in posts}
        for rel in set(parsed_cache) - live:
            del parsed_cache[rel]
            if self.use_cache:
                self._fragments[rel] = None
        for kind in ("post_keys", "summary_keys"):
            kept_keys = self.cache.setdefault(kind, {})
            for rel in set(kept_keys) - live:
                del kept_keys[rel]
        for post in posts:
            entry = parsed_cache.get(post.rel)
            if entry:
                report.extend(entry[1].problems)
        self._scanned = True
        return sorted(parsed_now)

    def _old_fragments(self, rels: list[str]) -> dict[str, dict]:
        """The fragments of the posts parsed before that are parsed again (see Parsed.fragments)."""
        parsed_cache = self.cache["parsed"]
        rels = [rel for rel in rels if rel in parsed_cache]
        found = {rel: self._fragments[rel] or {} for rel in rels if rel in self._fragments}
        rest = [rel for rel in rels if rel not in found]
        if rest:
            found.update(self._cache_file().fragments(rest, self.cache["version"]))
        return found

    def _post_stamp(self, post: Post):
        loaded = self.cache["posts"].get(str(post.source))  # the stamp of the text that was loaded
        return (loaded[0] if loaded else _stamp(post.source), post.line_offset)

    def _parsed_valid(self, post: Post, hit, md_targets) -> bool:
        stamp, parsed = hit
        if stamp != self._post_stamp(post):
            return False
        if parsed.data_mode is not None and parsed.data_mode != ("live" if self.preview else "static"):
            return False
        hint = self._hint
        if parsed.reads_run and (hint is None or not hint.isdisjoint(parsed.deps)):
            return False  # whether the trainer still runs is in no file's stamp: look again
        deps = parsed.deps if hint is None else parsed.deps.keys() & hint
        if any(_stamp(dep) != parsed.deps[dep] for dep in deps):
            return False
        return not parsed.md_links or all(md_targets.get(src) == url for src, url in parsed.md_links.items())

    # -- stage 4: links -----------------------------------------------------------------------------
    def _check_links(self, pages: dict[str, PageOut], report: Report) -> None:
        ids_by_page = {path: page.ids for path, page in pages.items()}
        seen: set[str] = set()
        old = self.cache.get("pages", {})
        # A page that did not change needs no new check unless a page it could link to changed its ids
        # or pages came or went (the previous build checked it against the same site).
        same_site = set(old) == set(pages) and all(
            page.data is None and not page.written or old[rel][2] == page.ids
            for rel, page in pages.items() if rel.endswith(".html"))
        # Most links (the header's, the tags', the neighbours') are on every page: each href that means
        # the same on every page, and each target, is checked once.
        good_hrefs: set[str] = set()
        good_targets: set[tuple[str, str | None]] = set()
        # Posts first: a broken link in an excerpt is reported once, at the post it came from.
        for path, page in sorted(pages.items(), key=lambda kv: kv[1].source is None):
            if same_site and page.data is None and not page.written:
                continue
            base = "/" + path
            for href, line in page.links:
                if href in good_hrefs:
                    continue
                target, anchor = _resolve_href(base, href)
                absolute = not href or href[0] == "/" and href[:2] != "//" or target is None
                if target is None or (target, anchor) in good_targets:
                    if absolute:
                        good_hrefs.add(href)
                    continue
                candidates = [target] if not target.endswith("/") else [target + "index.html"]
                if not target.endswith("/") and "." not in target.rsplit("/", 1)[-1]:
                    candidates.append(target + "/index.html")
                found = next((c.lstrip("/") for c in candidates if c.lstrip("/") in pages), None)
                if found is None:
                    message = f"broken link '{href}': no page or file {target} in the site"
                elif anchor and found.endswith(".html") and anchor not in ids_by_page[found]:
                    message = f"broken link '{href}': {found} has no element with id '{anchor}'"
                else:
                    good_targets.add((target, anchor))
                    if absolute:
                        good_hrefs.add(href)
                    continue
                key = f"{target}#{anchor}"
                if page.source is None and key in seen:
                    continue
                seen.add(key)
                report.error(page.source or path, line, message)

    # -- stage 5: write ------------------------------------------------------------------------------
    def _write(self, pages: dict[str, PageOut], out_dir: Path, in_place: bool, tree: Path | None = None):
        """Write the site: into a fresh folder swapped in whole at the end (``sitegen build``; see
        :mod:`sitegen.write`), or in place, each changed file staged and renamed (the preview)."""
        import secrets

        from sitegen import write

        old_pages = self.cache.get("pages", {})
        build_id = secrets.token_hex(8)
        if in_place:
            written, removed = write.write_staged(self, pages, out_dir, old_pages, build_id)
        else:
            keep = self.cache_path.parent / write.SPARE if self.use_cache else None
            written, removed, spare = write.write_swap(pages, out_dir, old_pages, build_id, tree,
                                                       self._spare_pages, keep,
                                                       self.cache.get("build_id"))
            if spare is not None:
                self.cache["spare"] = spare
        self.cache["pages"] = {rel: (page.key, page.links, page.ids, page.source) for rel, page in pages.items()}
        self.cache["out_dir"] = str(out_dir)
        self.cache["build_id"] = build_id
        return written, removed


def _cannot_write(exc: OSError, out_dir: Path) -> BuildError:
    """A full disk, a read-only folder: the previous site is still whole."""
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return BuildError([Problem(str(out_dir), None, f"cannot write the site: {what}{where}; "
                                                   "the previous site was left as it was")])


def _legacy_out_dir(path: Path) -> str | None:
    """The output folder named by the cache of versions before build.sqlite (a pickle), if any."""
    if not path.exists():
        return None
    try:
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f).get("out_dir")
    except Exception:
        return None
