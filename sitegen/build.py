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

import hashlib
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

from sitegen.config import load_config
from sitegen.content import Post, discover, load
from sitegen.context import PageContext
from sitegen.errors import BuildError, Problem, Report, SiteError
from sitegen.paths import realpath_in
from sitegen.stages import CACHE_NAME, PACKAGE_DIR, RESERVED_URLS, BuildResult, PageOut, Parsed
from sitegen.stages import resolve_href as _resolve_href
from sitegen.stages import digest as _digest

PARALLEL_THRESHOLD = 64  # fewer posts than this to parse: not worth starting processes


def _code_version() -> str:
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.relative_to(PACKAGE_DIR).parts[0].removesuffix(".py") not in ("trace", "expr", "serve", "cli"):
            # (not used by the build itself)
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


#: how long the preview keeps a figure's old data file after a redraw replaced it (seconds)
STALE_DATA_GRACE = 30.0


def _stamp(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


# ----------------------------------------------------------------------------------------------
# the parse stage (runs in workers)

_WORK: dict = {}


def _parse_post(post: Post, root: Path, md_targets: dict[str, str], live: bool = False) -> Parsed:
    from sitegen import markdown

    ctx = PageContext(path=post.rel, root=root, source_dir=post.source.parent)
    ctx.meta["live"] = live
    ctx.meta["md_targets"] = md_targets
    ctx.meta["md_links"] = {}
    from sitegen import jekyll

    body = jekyll.preprocess(post, ctx, md_targets)  # Liquid, when the site asks for it
    rendered = markdown.render(body, ctx, post.line_offset)
    excerpt = jekyll.excerpt(body, jekyll.excerpt_separator(post, md_targets), ctx)
    if excerpt is not None:
        rendered.excerpt_html = excerpt
    if ctx.meta.get("has_figures"):
        from sitegen import thumbnail

        for stem, picture in thumbnail.pictures(rendered.html).items():  # still pictures for the feed
            ctx.add_file(stem, picture, ".svg")
    deps = {d: _stamp(d) for d in sorted(ctx.deps)}
    return Parsed(
        html=rendered.html, toc=rendered.toc, excerpt_html=rendered.excerpt_html,
        problems=ctx.problems, deps=deps, files=ctx.files, scripts=ctx.scripts,
        md_links=ctx.meta["md_links"],
        data_mode=None if ctx.catalog is None else ("live" if live else "static"),
        reads_run=bool(ctx.meta.get("read_live")),
    )


def _post_job(job) -> tuple[int, Parsed | None, PageOut | None, list[Problem]]:
    """Parse a post if it changed, then render its page: the per-post work, run in a worker."""
    i, need_parse = job
    post = _WORK["posts"][i]
    try:
        if need_parse:
            parsed = _parse_post(post, _WORK["root"], _WORK["md_targets"], _WORK["live"])
            parsed.key = _digest(post.source.read_bytes(), sorted(parsed.deps.items()),
                                 sorted(parsed.md_links.items()), _WORK["version"])
        else:
            parsed = _WORK["parsed"][post.rel][1]
        page, problems = _WORK["renderer"].render_post_page(post, parsed)
        return i, (parsed if need_parse else None), page, problems
    except RecursionError:
        return i, None, None, [Problem(post.rel, None, "the post nests too deeply to render (thousands of nested "
                                                       "lists, quotes, brackets or parentheses?); flatten it")]
    except Exception as exc:  # a bug of ours must not hide the other posts' results
        import traceback

        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return i, None, None, [Problem(post.rel, None, f"internal error while rendering: {detail} "
                                                       "(please report this with the post attached)")]


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
        self._hint: set[str] | None = None     # files changed since the previous build, if known
        self._scanned = False                  # a build in this process has checked every post
        self._post_paths: list[Path] | None = None
        self._resolved: dict[str, str] = {}
        self._swept = False                    # leftovers of a killed in-place write removed
        self._cached_out: str | None = None    # the output folder the cache on disk was written for

    # -- cache ------------------------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        return self.root / CACHE_NAME / "build.pickle"

    def _load_cache(self) -> None:
        if self.cache_loaded:
            return
        self.cache_loaded = True
        self.cache = {"version": _code_version(), "posts": {}, "parsed": {}, "pages": {}}
        if not self.cache_path.exists():
            return
        if not self.use_cache:
            self._cached_out = _peek_out_dir(self.cache_path)
            return
        try:
            with open(self.cache_path, "rb") as f:
                cached = pickle.load(f)
            self._cached_out = cached.get("out_dir")  # whatever the version: it says where we wrote
            if cached.get("version") == self.cache["version"]:
                self.cache = cached
        except Exception:
            pass  # a damaged cache only costs a full build

    def save_cache(self) -> None:
        """Write the parse and render cache to disk (``autosave`` does it after every build)."""
        self._save_cache()

    def _save_cache(self) -> None:
        if not self.use_cache:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump(self.cache, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.cache_path)
        gitignore = self.cache_path.parent / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n")

    # -- the build --------------------------------------------------------------------------------
    def build(self, in_place: bool = False, changed=None) -> BuildResult:
        """Build the site. Raises :class:`BuildError` with every problem if anything is wrong.

        ``changed``: every file created, modified or deleted since this Builder's previous build
        (the preview server's watcher knows them). Files not in it are trusted to be as they were,
        which spares stat-ing thousands of posts, data files and outputs per keystroke-save.
        None (the default) checks everything.
        """
        t0 = time.perf_counter()
        self._load_cache()
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
        renderer.check_layouts()
        renderer.prepare()
        parsed_now = self._process_posts(posts, renderer, report)
        pages = renderer.render_all()
        self._check_links(pages, report)

        from sitegen.provenance_hook import stale_data_warnings

        report.extend(stale_data_warnings(self.root, self.cache["parsed"], posts))
        problems = sorted(set(report.problems), key=lambda p: (p.path, p.line or 0, p.message))
        if any(p.level == "error" for p in problems):
            raise BuildError(problems)
        try:
            written, removed = self._write(pages, out_dir, in_place)
        except OSError as exc:  # a full disk, a read-only folder: the previous site is still whole
            what = exc.strerror or str(exc)
            where = f" ({exc.filename})" if exc.filename else ""
            raise BuildError([Problem(str(out_dir), None, f"cannot write the site: {what}{where}; "
                                                          "the previous site was left as it was")]) from None
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
        posts, seen = [], set()
        for path in self._post_sources(cache):
            key = str(path)
            seen.add(key)
            hit = cache.get(key)
            stamp = hit[0] if hint is not None and hit is not None and key not in hint else _stamp(path)
            if hit and hit[0] == stamp:
                post, problems = hit[1], hit[2]
            else:
                post, problems = load(path, self.root)
                cache[key] = (stamp, post, problems)
            report.extend(problems)
            if post is not None:
                posts.append(post)
        for key in set(cache) - seen:
            del cache[key]
        return posts

    def _post_sources(self, cache) -> list[Path]:
        """The post files: last build's list when the changed files cannot have altered it."""
        hint, known = self._hint, self._post_paths
        if hint is not None and known is not None:
            content = str(self.root / "content") + os.sep
            # Any other change in content/ (a new file, a deleted one, a folder) needs a fresh look.
            if all(not h.startswith(content) or (h in cache and os.path.isfile(h)) for h in hint):
                return known
        self._skipped: list[tuple[str, str]] = []
        self._post_paths = discover(self.root / "content", self._skipped)
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
        for p in posts:
            source = str(p.source)
            real = resolved.get(source)
            if real is None:
                real = resolved[source] = realpath_in(source, folders)
            targets[real] = p.url
        from sitegen.jekyll import SITE_KEY

        targets[SITE_KEY] = getattr(self, "_site_settings", None)
        return targets

    def _process_posts(self, posts: list[Post], renderer, report: Report) -> list[str]:
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
            for i, parsed, page, problems in self._run_jobs(posts, jobs, md_targets, renderer):
                post = posts[i]
                report.extend(problems)
                if parsed is not None:
                    parsed_cache[post.rel] = (self._post_stamp(post), parsed)
                    parsed_now.append(post.rel)
                elif page is None:
                    parsed_cache.pop(post.rel, None)  # crashed: parse it again next time
                if page is not None:
                    renderer.add_post_page(post, page)
        live = {p.rel for p in posts}
        for rel in set(parsed_cache) - live:
            del parsed_cache[rel]
        for post in posts:
            entry = parsed_cache.get(post.rel)
            if entry:
                report.extend(entry[1].problems)
        self._scanned = True
        return sorted(parsed_now)

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

    def _run_jobs(self, posts, jobs, md_targets, renderer):
        _WORK.update(posts=posts, root=self.root, md_targets=md_targets, renderer=renderer, live=self.preview,
                     parsed=self.cache["parsed"], version=self.cache["version"])
        try:
            if self.workers > 1 and len(jobs) >= PARALLEL_THRESHOLD and sys.platform != "win32":
                import multiprocessing as mp

                ctx = mp.get_context("fork")
                chunk = max(1, len(jobs) // (self.workers * 8))
                with ctx.Pool(self.workers, initializer=_ignore_interrupt) as pool:
                    yield from pool.imap_unordered(_post_job, jobs, chunksize=chunk)
            else:
                for job in jobs:
                    yield _post_job(job)
        finally:
            _WORK.clear()

    # -- stage 4: links -----------------------------------------------------------------------------
    def _check_links(self, pages: dict[str, PageOut], report: Report) -> None:
        ids_by_page = {path: page.ids for path, page in pages.items()}
        seen: set[str] = set()
        old = self.cache.get("pages", {})
        # A page that did not change needs no new check unless a page it could link to changed its ids
        # or pages came or went (the previous build checked it against the same site).
        same_site = set(old) == set(pages) and all(
            page.data is None or old[rel][2] == page.ids for rel, page in pages.items() if rel.endswith(".html"))
        # Posts first: a broken link in an excerpt is reported once, at the post it came from.
        for path, page in sorted(pages.items(), key=lambda kv: kv[1].source is None):
            if same_site and page.data is None:
                continue
            base = "/" + path
            for href, line in page.links:
                target, anchor = _resolve_href(base, href)
                if target is None:
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
                    continue
                key = f"{target}#{anchor}"
                if page.source is None and key in seen:
                    continue
                seen.add(key)
                report.error(page.source or path, line, message)

    # -- stage 5: write ------------------------------------------------------------------------------
    def _write(self, pages: dict[str, PageOut], out_dir: Path, in_place: bool):
        """Write the site: into a fresh folder swapped in whole at the end (``sitegen build``; see
        :mod:`sitegen.output`), or in place, each changed file staged and renamed (the preview)."""
        import secrets

        old_pages = self.cache.get("pages", {})
        build_id = secrets.token_hex(8)
        if in_place:
            written, removed = self._write_staged(pages, out_dir, old_pages, build_id)
        else:
            written, removed = self._write_swap(pages, out_dir, old_pages, build_id)
        self.cache["pages"] = {rel: (page.key, page.links, page.ids, page.source) for rel, page in pages.items()}
        self.cache["out_dir"] = str(out_dir)
        self.cache["build_id"] = build_id
        return written, removed

    def _write_staged(self, pages, out_dir: Path, old_pages, build_id: str):
        from sitegen import output

        out_dir.mkdir(parents=True, exist_ok=True)
        if not self._swept:
            output.sweep_staged(out_dir)  # what a killed write left half-staged
            self._swept = True
        marker = out_dir / output.MARKER
        staged: list[tuple[Path, Path]] = []
        try:
            trusted = self._hint is not None  # the previous build wrote them; nothing else touches them
            for rel, page in pages.items():
                if page.data is None and trusted:
                    continue
                dest = out_dir / rel
                if page.data is None and dest.exists():
                    continue
                if page.data is None:
                    raise RuntimeError(f"missing unchanged output {rel}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
                tmp.write_bytes(page.data)
                staged.append((tmp, dest))
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        # Half renamed, the folder matches no build: a marker naming none says so to the next one.
        _replace_bytes(marker, output.marker_bytes("in-progress"))
        for tmp, dest in staged:
            os.replace(tmp, dest)
        removed = []
        unlinked = False
        now = time.monotonic()
        for rel in set(old_pages) - set(pages):
            if self.preview and rel.endswith(".bin"):
                # An open tab may be fetching the figure data its page named a moment ago, while a
                # training run redraws the figure every quarter second: let the old data outlive it.
                self._doomed.setdefault(rel, now)
                removed.append(rel)
                continue
            try:
                (out_dir / rel).unlink()
                removed.append(rel)
                unlinked = True
            except FileNotFoundError:
                pass
        for rel, since in list(self._doomed.items()):
            if rel in pages:
                del self._doomed[rel]
            elif now - since > STALE_DATA_GRACE:
                del self._doomed[rel]
                (out_dir / rel).unlink(missing_ok=True)
        if unlinked:
            _prune_empty_dirs(out_dir)
        _replace_bytes(marker, output.marker_bytes(build_id))
        return [str(dest.relative_to(out_dir)) for _, dest in staged], sorted(removed)

    def _write_swap(self, pages, out_dir: Path, old_pages, build_id: str):
        from sitegen import output

        output.recover(out_dir)
        output.sweep(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        new = output.temp_name(out_dir, "new")
        new.mkdir()
        written = []
        try:
            made_dirs = {new}
            for rel, page in pages.items():
                dest = new / rel
                if dest.parent not in made_dirs:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    made_dirs.add(dest.parent)
                if page.data is None:
                    output.link_or_copy(out_dir / rel, dest)
                    continue
                dest.write_bytes(page.data)
                written.append(rel)
            (new / output.MARKER).write_bytes(output.marker_bytes(build_id))  # last: the tree is complete
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        old = output.switch(new, out_dir)
        if old is not None:
            output.remove_later(old)
        return written, sorted(set(old_pages) - set(pages))


def _replace_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _ignore_interrupt() -> None:
    """In parse workers: Ctrl-C is the parent's to handle (it stops the pool), not a traceback
    from every worker; and the pool's SIGTERM just ends a worker, whatever the parent made of it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _peek_out_dir(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return pickle.load(f).get("out_dir")
    except Exception:
        return None


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        if not dirnames and not filenames and Path(dirpath) != root:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
