"""The pages that list posts: the paginated index, a page per tag, the tags page, the Atom feed and
the sitemap, made from each post's summary (:class:`ListPages`, a part of :class:`sitegen.render.Renderer`).

A cold build of a large site makes thousands of list entries; the index and tag pages are rendered
in worker processes (:meth:`ListPages._render_deferred`), each written straight into the new tree.
"""
from __future__ import annotations

import datetime as dt
import html as htmllib
import os
import re

from markupsafe import Markup

from sitegen.stages import digest as _digest
from sitegen.stages import page_out as _page_out

#: fewer list pages than this to render: not worth starting processes
PARALLEL_LISTS = 24


class ListPages:
    #: while not None, :meth:`_emit` queues the pages it would render here (see :meth:`_render_deferred`)
    deferred: list | None = None
    #: the new site's folder, for pages rendered in workers (None: the parent writes them), and
    #: whether it is a spare tree (see sitegen/write.py)
    tree: str | None = None
    spare: bool = False

    def _render_deferred(self) -> None:
        """Render the queued pages, in workers when there are many (a cold build of a large site), each
        written straight into the new tree; in their places in :attr:`pages`, as if rendered in turn."""
        from sitegen.workers import run_indexed

        jobs, self.deferred = self.deferred, None
        self._jobs = jobs
        if len(jobs) >= PARALLEL_LISTS:
            for name in ("index.html", "tag.html", "tags.html"):  # compiled once, before the fork
                try:
                    self.env.get_template(name)
                except Exception:
                    pass  # reported when rendered
        try:
            results = run_indexed(self._deferred_page, len(jobs), self.builder.workers, PARALLEL_LISTS,
                                  self.tree, self.spare)
        finally:
            self._jobs = None
        for rel, page, problems in results:
            self.report.extend(problems)
            if page is None:
                del self.pages[rel]
            else:
                self.pages[rel] = page

    def _deferred_page(self, k: int):
        from sitegen.errors import Report

        rel, key, produce = self._jobs[k]
        site_report, self.report = self.report, Report()
        try:
            data = produce()
            return rel, None if data is None else _page_out(rel, key, data, None, None, False), self.report.problems
        finally:
            self.report = site_report

    def _summaries(self, entries) -> list[dict]:
        memo = self._memo("summary")
        out = []
        for post, pp in entries:
            hit = memo.get(post.rel)
            if hit is not None and hit[0] is post and hit[1] is pp:
                out.append(hit[2])
                continue
            from sitegen import thumbnail

            excerpt = (Markup(absolute_links(pp.excerpt_html, post.url)) if post.summary is None
                       else Markup.escape(post.summary))
            summary = {"url": post.url, "title": post.title, "date": post.date, "excerpt": excerpt,
                       "tags": post.tags, "draft": post.draft, "authors": post.authors,
                       "thumbnail": Markup(thumbnail.first_thumbnail(pp.html)) if "sg-figure" in pp.html else ""}
            memo[post.rel] = (post, pp, summary)
            out.append(summary)
        return out

    def _summary_keys(self, entries) -> list[str]:
        """Each entry's list item as a short key (what the index, tag and tags pages show of it): the
        list pages' keys are made of these, so a rebuild needs no summary but those of the posts that
        changed. Kept in the build cache with the stamp of the post's file and its parse's key (a
        post is what its file and the config, in base_key, make it); the ``_summaries`` of the
        posts whose key is not known are made all at once."""
        memo = self._memo("summary_key")
        kept = self.builder.cache.setdefault("summary_keys", {})
        base_key = self.base_key
        keys: list = [None] * len(entries)
        missing = []
        for k, (post, pp) in enumerate(entries):
            hit = memo.get(post.rel)
            if hit is not None and hit[0] is post and hit[1] is pp and hit[2] == base_key:
                keys[k] = hit[3]
                continue
            inputs = (base_key, pp.key, self._stamp_of(post))
            old = kept.get(post.rel)
            if old is not None and old[0] == inputs and inputs[2] is not None and inputs[1]:
                keys[k] = old[1]
                memo[post.rel] = (post, pp, base_key, old[1])
            else:
                missing.append(k)
        if missing:
            made = self._summaries([entries[k] for k in missing])
            for k, e in zip(missing, made):
                post, pp = entries[k]
                key = keys[k] = _digest(e["url"], e["title"], repr(e["date"]), str(e["excerpt"]), e["tags"],
                                        e["draft"], e["authors"], str(e["thumbnail"]))
                memo[post.rel] = (post, pp, base_key, key)
                kept[post.rel] = ((base_key, pp.key, self._stamp_of(post)), key)
        return keys

    def _key(self, name: str, inputs: tuple, compute) -> str:
        """``compute()``, unless ``inputs`` equal last build's (tuples compare items by identity
        first, so unchanged summaries cost a pointer comparison, not a hash of their text)."""
        memo = self._memo("keys")
        hit = memo.get(name)
        if hit is not None and hit[0] == inputs:
            return hit[1]
        key = compute()
        memo[name] = (inputs, key)
        return key

    def _index_pages(self, entries, base_key, summary_keys) -> None:
        per = self.config.posts_per_page
        chunks = [(entries[i:i + per], summary_keys[i:i + per]) for i in range(0, len(entries), per)] or [([], [])]
        total = len(chunks)
        for n, (chunk, keys) in enumerate(chunks, 1):
            url = "/" if n == 1 else f"/page/{n}/"
            prev_url = None if n == 1 else ("/" if n == 2 else f"/page/{n - 1}/")
            next_url = f"/page/{n + 1}/" if n < total else None
            key = _digest(base_key, "index", n, total, keys)
            rel = "index.html" if n == 1 else f"page/{n}/index.html"
            self._emit(rel, key, lambda chunk=chunk, url=url, n=n, prev_url=prev_url, next_url=next_url: self._render(
                "index.html", "the index", posts=self._summaries(chunk), page_number=n, page_count=total,
                prev_url=prev_url, next_url=next_url,
                **self._page_common(url, self.config.title if n == 1 else f"{self.config.title} (page {n})",
                                    self.config.description)))

    def _tag_pages(self, entries, base_key, summary_keys) -> None:
        from sitegen.content import slugify

        tags: dict[str, list] = {}
        names: dict[str, str] = {}
        slugs = self._memo("tag_slugs")
        for entry, key in zip(entries, summary_keys):
            for tag in entry[0].tags:
                slug = slugs.get(tag)
                if slug is None:
                    slug = slugs[tag] = slugify(tag)
                names.setdefault(slug, tag)
                tags.setdefault(slug, []).append((entry, key))
        for slug, items in tags.items():
            chunk = [entry for entry, _ in items]
            key = self._key(f"tag/{slug}", (base_key, names[slug], tuple(k for _, k in items)),
                            lambda items=items, slug=slug: _digest(base_key, "tag", slug, names[slug],
                                                                   [k for _, k in items]))
            self._emit(f"tags/{slug}/index.html", key, lambda chunk=chunk, slug=slug: self._render(
                "tag.html", f"tag '{names[slug]}'", tag=names[slug], posts=self._summaries(chunk),
                **self._page_common(f"/tags/{slug}/", f"Posts tagged {names[slug]}", self.config.description)))
        summary = sorted(((names[s], s, len(v)) for s, v in tags.items()), key=lambda t: t[0].lower())
        self._emit("tags/index.html", _digest(base_key, "tags", summary), lambda: self._render(
            "tags.html", "the tag list", tags=[{"name": n, "url": f"/tags/{s}/", "count": c} for n, s, c in summary],
            **self._page_common("/tags/", "Tags", self.config.description)))

    def _feed(self, entries, base_key) -> None:
        from sitegen import thumbnail

        items = [(p, pp) for p, pp in entries if not p.draft][: self.config.feed_entries]
        feed = []
        for post, pp in items:
            date = post.date or dt.datetime.fromtimestamp(os.stat(post.source).st_mtime).replace(microsecond=0)
            # content is a plain str, so it is autoescaped as Atom's type="html" wants
            feed.append({"post": post, "content": thumbnail.for_feed(pp.html, post.url, pp.files, self.config.absolute),
                         "published": date,
                         "updated": post.updated or date,
                         "summary": post.summary if post.summary is not None else text(pp.excerpt_html)})
        updated = max((e["updated"] for e in feed), default=dt.datetime(1970, 1, 1))
        key = _digest(base_key, "feed", [(e["post"].url, e["post"].title, repr(e["updated"]), pp.key)
                                         for e, (_, pp) in zip(feed, items)])
        self._emit("feed.xml", key, lambda: self._render("feed.xml", "the Atom feed", entries=feed, updated=updated))

    def _sitemap(self, posts, base_key) -> None:
        urls = [("/", None)] + [(p.url, p.updated or p.date) for p in posts if p.listed]
        key = self._key("sitemap", (base_key, tuple(urls)), lambda: _digest(
            base_key, "sitemap", [(u, repr(d)) for u, d in urls]))
        self._emit("sitemap.xml", key, lambda: self._render("sitemap.xml", "the sitemap", urls=urls))



def text(fragment: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


RELATIVE_ATTR = re.compile(r'''(\s(?:href|src)=")(?![a-zA-Z][a-zA-Z0-9+.-]*:|/|//)([^"]*)"''')


def absolute_links(fragment: str, base_url: str) -> str:
    """An excerpt shown on another page keeps pointing where it pointed on its own page."""
    return RELATIVE_ATTR.sub(lambda m: f'{m.group(1)}{base_url}{m.group(2)}"', fragment)


