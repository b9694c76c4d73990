"""What a Jekyll blog expects of its posts, in one place: permalinks, Jekyll's front matter,
Liquid inside posts, excerpts, and the old URLs that must keep working.

The build calls three hooks:

- :func:`resolve_posts` after loading: each post's URL from ``permalink`` (the site's, in
  ``sitegen.toml``, or the post's own), its redirects (a Jekyll ``.html`` URL, ``redirect_from``);
- :func:`preprocess` in the parse stage, before the Markdown: Liquid (when ``liquid = true``);
- :func:`excerpt` after it: the text before ``excerpt_separator``.

URLs. Jekyll's default permalink, ``/:categories/:year/:month/:day/:title.html``, names a file.
sitegen serves every post at a folder URL (its page and its figure data side by side), so a
permalink ending in ``.html`` gives the page at the same address without the extension
(``/2024/02/05/title/``) and writes a small page at the ``.html`` address that sends the reader
on (a meta refresh, with a link; a canonical link for search engines). Old links keep working on any
host, GitHub Pages included, which has no server-side redirects.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from sitegen import liquid
from sitegen.errors import Report

#: Jekyll's named permalink styles
STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
PLACEHOLDER = re.compile(r":([a-z_]+)")
DATE_PLACEHOLDERS = {"year", "month", "i_month", "day", "i_day", "short_year", "hour", "minute", "second",
                     "y_day", "short_month", "long_month", "short_day", "long_day", "week"}
OTHER_PLACEHOLDERS = {"title", "slug", "categories", "output_ext", "name"}
PRETTY_KEEP = set("._~!$&'()+,;=@")
NOT_POST_LAYOUTS = frozenset({"base", "index", "tag", "tags", "404", "redirect"})
SITE_KEY = "\0site"  # the site settings travel to the parse workers inside md_targets under this key


# ---------------------------------------------------------------------------------------------
# slugs and permalinks

def jekyll_slugify(text: str, pretty: bool = False, cased: bool = False) -> str:
    """Jekyll's ``Utils.slugify``: runs of other characters become one '-', ends trimmed.

    Default mode keeps letters and digits; pretty mode also ``._~!$&'()+,;=@``."""
    out, dash = [], False
    for c in str(text):
        if c.isalnum() or (pretty and c in PRETTY_KEEP):
            out.append(c)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    slug = "".join(out).strip("-")
    return slug if cased else slug.lower()


def categories_of(extra: dict) -> list[str]:
    """Jekyll's ``categories`` (a list, or words separated by spaces) and ``category``."""
    found: list[str] = []
    for key in ("category", "categories"):
        value = extra.get(key)
        if value is None:
            continue
        items = value.split() if isinstance(value, str) else value if isinstance(value, list) else [value]
        for item in items:
            name = str(item).strip().lower()
            if name and name not in found:
                found.append(name)
    return found


def expand_permalink(pattern: str, post, file_slug: str) -> str:
    """A permalink pattern filled in for ``post``. Raises ValueError naming what is wrong."""
    pattern = STYLES.get(pattern, pattern)
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    date = post.date
    unknown = [p for p in PLACEHOLDER.findall(pattern) if p not in DATE_PLACEHOLDERS | OTHER_PLACEHOLDERS]
    if unknown:
        raise ValueError(f"unknown placeholder ':{unknown[0]}' (known: :year, :month, :day, :title, :slug, "
                         ":categories, :output_ext, and Jekyll's other date parts)")
    if date is None and any(p in DATE_PLACEHOLDERS for p in PLACEHOLDER.findall(pattern)):
        raise ValueError("uses the date but the post has none; add 'date: YYYY-MM-DD' or use a permalink "
                         "without date parts")
    slug_source = post.extra.get("slug") if isinstance(post.extra.get("slug"), str) else None
    title = jekyll_slugify(slug_source or file_slug, pretty=True, cased=True)
    values = {"title": title, "name": jekyll_slugify(file_slug), "slug": jekyll_slugify(slug_source or file_slug),
              "categories": "/".join(categories_of(post.extra)), "output_ext": ".html"}
    if date is not None:
        values.update(
            year=f"{date.year:04d}", month=f"{date.month:02d}", i_month=str(date.month), day=f"{date.day:02d}",
            i_day=str(date.day), short_year=f"{date.year % 100:02d}", hour=f"{date.hour:02d}",
            minute=f"{date.minute:02d}", second=f"{date.second:02d}", y_day=f"{date.timetuple().tm_yday:03d}",
            short_month=date.strftime("%b"), long_month=date.strftime("%B"), short_day=date.strftime("%a"),
            long_day=date.strftime("%A"), week=f"{date.isocalendar()[1]:02d}")
    # Longest names first, so ':i_month' is not read as ':i' + '_month'.
    url = re.sub(r":(" + "|".join(sorted(values, key=len, reverse=True)) + ")", lambda m: values[m.group(1)], pattern)
    url = re.sub(r"/{2,}", "/", url)
    if ".." in url.split("/"):
        raise ValueError("must not contain '..'")
    return quote(url, safe="/!$&'()*+,;=:@~._-")


def page_url(url: str) -> tuple[str, str | None]:
    """(the folder URL the page is served at, the old URL that redirects there or None)."""
    if url.endswith("/index.html"):
        return url[: -len("index.html")], None
    if url.endswith(".html") or url.endswith(".htm"):
        return url.rsplit(".", 1)[0] + "/", url
    if not url.endswith("/"):
        return url + "/", None  # hosts answer /x with /x/ by themselves
    return url, None


# ---------------------------------------------------------------------------------------------
# hook 1: after loading

def resolve_posts(posts, config, report: Report) -> None:
    """Set each post's URL and redirects from the permalink settings; report bad permalinks."""
    site_pattern = getattr(config, "permalink", "") or ""
    if site_pattern and site_pattern not in STYLES and "/" not in site_pattern and ":" not in site_pattern:
        report.error("sitegen.toml", None, f"permalink {site_pattern!r} is neither a style "
                                           f"({', '.join(STYLES)}) nor a pattern such as '/:year/:month/:title/'")
        site_pattern = ""
    for post in posts:
        post.permalink = None
        post.redirects = []
        if len(post.tags) == 1 and " " in post.tags[0] and in_jekyll_folder(post):
            post.tags = post.tags[0].split()  # Jekyll's 'tags: gp jax' (sitegen's own rule is commas)
        own = post.extra.get("permalink")
        line = post.key_lines.get("permalink", 1)
        pattern = own if isinstance(own, str) and own.strip() else site_pattern
        if pattern is site_pattern and post.date is None and any(
                p in DATE_PLACEHOLDERS for p in PLACEHOLDER.findall(STYLES.get(pattern, pattern))):
            pattern = ""  # an undated post (a draft, a page-like post) keeps /<slug>/; loading warned already
        if own is not None and not (isinstance(own, str) and own.strip()):
            report.error(post.rel, line, f"permalink {own!r} must be a path such as /2024/02/my-post/")
        if pattern:
            stem = post.source.parent.name if post.is_bundle else post.source.stem
            m = re.match(r"^\d{4}-\d{2}-\d{2}-(.+)$", stem)
            file_slug = m.group(1) if m else stem
            try:
                url = expand_permalink(pattern.strip(), post, file_slug)
            except ValueError as exc:
                where = (post.rel, line) if pattern is own else ("sitegen.toml", None)
                report.error(where[0], where[1], f"permalink {pattern!r} {exc}"
                             + ("" if pattern is own else f" (for {post.rel})"))
                continue
            post.permalink, old = page_url(url)
            if old:
                post.redirects.append(old)
        redirect_from = post.extra.get("redirect_from")
        if redirect_from is not None:
            items = [redirect_from] if isinstance(redirect_from, str) else redirect_from
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                report.error(post.rel, post.key_lines.get("redirect_from", 1),
                             "redirect_from must be a path or a list of paths")
                continue
            for item in items:
                old = "/" + item.strip().lstrip("/")
                if old.rstrip("/") != post.url.rstrip("/") and old not in post.redirects:
                    post.redirects.append(quote(old, safe="/!$&'()*+,;=:@~._-%"))


def in_jekyll_folder(post) -> bool:
    """A post from content/_posts or content/_drafts: Jekyll's front-matter rules apply to it."""
    return any(part in ("_posts", "_drafts") for part in post.source.parts[-8:-1])


def redirect_path(url: str) -> str:
    """The output file of a redirect page for an old URL."""
    from urllib.parse import unquote

    rel = unquote(url.lstrip("/"))
    if not rel or rel.endswith("/"):
        return rel + "index.html"
    if "." not in rel.rsplit("/", 1)[-1]:
        return rel + "/index.html"
    return rel


# ---------------------------------------------------------------------------------------------
# hook 2: the parse stage

def site_settings(config, root: Path) -> dict:
    """What the parse stage needs to know of the site (picklable; compared to decide re-parsing)."""
    return {
        "liquid": bool(getattr(config, "liquid", False)),
        "excerpt_separator": getattr(config, "excerpt_separator", "") or "",
        "title": config.title, "description": config.description, "author": config.author,
        "root": str(root),
    }


class SiteResolver(liquid.Resolver):
    """Liquid's view of the site from inside one post's parse."""

    def __init__(self, post, ctx, targets: dict, settings: dict):
        self.post, self.ctx, self.targets, self.settings = post, ctx, targets, settings

    def _by_name(self) -> dict[str, tuple[str, str]]:
        names = self.targets.get("\0names")
        if names is None:
            names = {}
            for source, url in self.targets.items():
                if source.startswith("\0"):
                    continue
                path = Path(source)
                names.setdefault(path.name, (source, url))
                stem = path.parent.name if path.name.rsplit(".", 1)[0] == "index" else path.name.rsplit(".", 1)[0]
                names.setdefault(stem, (source, url))
            self.targets["\0names"] = names
        return names

    def _post(self, name: str) -> str | None:
        hit = self._by_name().get(name.rstrip("/").rsplit("/", 1)[-1])
        if hit is None:
            return None
        self.ctx.meta["md_links"][hit[0]] = hit[1]  # re-parse when that post's URL changes
        return hit[1]

    def post_url(self, name: str) -> str | None:
        return self._post(name)

    def link(self, path: str) -> str | None:
        clean = path.strip().lstrip("/")
        first = clean.split("/", 1)[0]
        if first in ("_posts", "_drafts", "content") or clean.lower().endswith((".md", ".markdown", ".mdown", ".mkd")):
            return self._post(clean)
        from sitegen.public import PUBLIC_DIR

        target = Path(self.settings["root"]) / PUBLIC_DIR / clean
        self.ctx.depend(target)  # a file added later fixes the link on the next build
        return "/" + quote(clean, safe="/!$&'()*+,;=:@~._-") if target.is_file() else None

    def variable(self, name: str):
        post, s = self.post, self.settings
        site = {"site.baseurl": "", "site.url": "", "site.title": s["title"], "site.description": s["description"],
                "site.author": s["author"]}
        if name in site:
            return site[name]
        if name == "page.title":
            return post.title
        if name == "page.url":
            return post.url
        if name == "page.date":
            return post.date.strftime("%Y-%m-%d") if post.date else ""
        if name.startswith("page."):
            value = post.extra.get(name[5:])
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return value
        raise KeyError(name)


LIQUID_HINT = re.compile(r"\{%-?\s*(post_url|link|highlight|raw|include|include_relative)\b|\{\{\s*site\.")


def preprocess(post, ctx, targets: dict) -> str:
    """The post's body ready for Markdown: its Liquid rendered when the site says ``liquid = true``."""
    settings = targets.get(SITE_KEY) or {}
    ctx.meta["md_links"][SITE_KEY] = settings  # settings changed: parse again
    body = post.body
    if not settings.get("liquid"):
        if "{" in body:
            m = LIQUID_HINT.search(body)
            if m:
                line = body.count("\n", 0, m.start()) + 1 + post.line_offset
                ctx.warn(line, f"'{m.group(0)}' looks like Jekyll's Liquid and is left as text: add "
                               "'liquid = true' to sitegen.toml to render it (sitegen import jekyll does)")
        return body
    if "{" not in body:
        return body
    text, errors = liquid.render(body, SiteResolver(post, ctx, targets, settings))
    for err in errors:
        line = err.line + post.line_offset
        (ctx.error if err.level == "error" else ctx.warn)(line, err.message)
    return text


def excerpt_separator(post, targets: dict) -> str:
    own = post.extra.get("excerpt_separator")
    if isinstance(own, str) and own:
        return own
    return (targets.get(SITE_KEY) or {}).get("excerpt_separator", "")


def excerpt(body: str, separator: str, ctx) -> str | None:
    """The excerpt's HTML: the paragraphs before ``separator`` (None: no separator there).

    Inline HTML, as the first-paragraph excerpt is: the paragraphs' contents joined, so that
    listings can put it in a <p>."""
    if not separator or separator not in body:
        return None
    from sitegen import markdown
    from sitegen.context import PageContext

    # A scratch context: the excerpt's problems and files are the page's own, reported once already.
    scratch = PageContext(path=ctx.path, root=ctx.root, source_dir=ctx.source_dir, config=ctx.config)
    scratch.meta.update({k: v for k, v in ctx.meta.items() if k in ("md_targets", "live", "tex_macros")})
    scratch.meta["md_links"] = {}
    md = markdown.markdown()
    env = {"ctx": scratch, "line_offset": 0}
    tokens = md.parse(body.split(separator, 1)[0], env)
    markdown._annotate(tokens, 0, scratch, env, md)
    parts = []
    for i, tok in enumerate(tokens):
        if tok.type == "footnote_block_open":
            break
        if tok.type == "inline" and i > 0 and tokens[i - 1].type == "paragraph_open":
            children = [c for c in tok.children or [] if c.type != "footnote_ref"]
            parts.append(md.renderer.renderInline(children, md.options, env))
    return " ".join(p for p in parts if p.strip())


def fallback_layouts(posts, layouts: set[str], report: Report) -> dict[str, str]:
    """Jekyll layouts the site has no template for (``layout: prediction_post``): those posts use
    ``post``, with one warning per layout name."""
    users: dict[str, list] = {}
    for post in posts:
        if post.layout not in layouts:
            users.setdefault(post.layout, []).append(post)
    from sitegen.errors import closest

    for name, group in sorted(users.items()):
        hint = closest(name, sorted(n for n in layouts if n not in NOT_POST_LAYOUTS and not n.startswith("_")))
        near = f" (did you mean '{hint[0]}'?)" if hint else ""
        first = group[0]
        shown = ", ".join(p.rel for p in group[:3]) + (f" and {len(group) - 3} more" if len(group) > 3 else "")
        report.warn(first.rel, first.key_lines.get("layout", 1),
                    f"no template for layout '{name}'{near} ({len(group)} post(s): {shown}); they use 'post'. "
                    f"Add templates/{name}.html to give them their own")
    return {name: "post" for name in users}


def redirect_pages(posts) -> dict[str, tuple]:
    """Output file -> (old URL, post) for every redirect page the posts need."""
    pages = {}
    for post in posts:
        for old in post.redirects:
            pages[redirect_path(old)] = (old, post)
    return pages
