"""``sitegen import jekyll PATH [SITE]``: a Jekyll site's posts, files and settings as a sitegen site.

What comes over, unchanged: ``_posts/`` and ``_drafts/`` (into ``content/_posts/`` and
``content/_drafts/``, where the build reads them as Jekyll does), every file Jekyll would copy as it
is (``assets/``, ``images/``, ``CNAME``, ``favicon.ico``, ``.nojekyll``, ``_redirects`` ...) into
``public/``, and ``_config.yml``'s title, description, url + baseurl, author, permalink,
excerpt_separator and paginate into ``sitegen.toml`` (with ``liquid = true``). The deploy files
(``netlify.toml``, the GitHub Pages workflow) are written beside them.

What cannot come over (layouts, includes, Sass, plugins, pages, collections, data files) is reported in
one list, each with what to do about it. Nothing in PATH is changed.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Jekyll never copies these (its default 'exclude' list), and neither do we
DEFAULT_EXCLUDE = {"Gemfile", "Gemfile.lock", "gemfiles", "node_modules", "vendor", ".sass-cache",
                   ".jekyll-cache", ".jekyll-metadata", "_site", ".bundle", ".git", ".github", ".gitignore",
                   ".gitattributes", ".gitmodules", ".DS_Store", ".editorconfig", ".travis.yml", ".idea",
                   ".vscode", "package.json", "package-lock.json", "yarn.lock", "Rakefile", "Dockerfile",
                   "docker-compose.yml", "netlify.toml", ".ruby-version", ".tool-versions", "LICENSE", "LICENSE.md",
                   "README.md", "README", "CHANGELOG.md", "CONTRIBUTING.md", "CODE_OF_CONDUCT.md", ".pre-commit-config.yaml",
                   ".prettierrc", ".eslintrc", ".stylelintrc", ".rubocop.yml", "purgecss.config.js", "bin", "Makefile"}
#: underscored files that are served as they are (Netlify's)
UNDERSCORED_FILES = {"_redirects", "_headers"}
#: dotfiles that are published on purpose
DOTFILES = {".nojekyll", ".well-known", ".htaccess"}
#: what each of Jekyll's folders is, and what to do instead
FOLDERS = {
    "_layouts": "Jekyll layouts (theme templates): posts with a layout sitegen has no template for use 'post'; "
                "add templates/NAME.html to give them their own",
    "_includes": "Jekyll includes: a post that uses {% include %} gets an error naming the line, write its "
                 "content into the post",
    "_sass": "the theme's Sass: sitegen uses its own stylesheet (copy sitegen's templates with `sitegen init "
             "--templates` to restyle)",
    "_data": "Jekyll data files: sitegen's data/ holds traced tables for figures; site.data is not available",
    "_plugins": "Ruby plugins: not run; the build reports any tag they provided",
    "_site": "Jekyll's output: rebuilt by sitegen",
    "_pages": "standalone pages: sitegen has posts only; make a page a post (move it into content/)",
}
#: Jekyll plugins whose job sitegen does itself
PLUGINS_COVERED = {
    "jekyll-feed": "feed.xml is written by sitegen",
    "jekyll-sitemap": "sitemap.xml is written by sitegen",
    "jekyll-seo-tag": "sitegen's templates write the meta tags",
    "jekyll-redirect-from": "redirect_from works",
    "jekyll-paginate": "posts_per_page paginates the index",
    "jekyll-paginate-v2": "posts_per_page paginates the index",
    "jekyll-relative-links": "links to .md files become page links",
    "jemoji": None, "jekyll-mentions": None, "jekyll-gist": None, "jekyll-scholar": None,
    "jekyll-archives": None, "jekyll-toc": "sitegen makes a table of contents", "jekyll-github-metadata": None,
    "jekyll-optional-front-matter": None, "jekyll-titles-from-headings": "a post's first heading is its title",
    "jekyll-default-layout": "posts use the 'post' layout", "jekyll-readme-index": None,
    "jekyll-include-cache": None, "jekyll-remote-theme": None, "jekyll-katex": "math is rendered at build time",
}


@dataclass
class ImportReport:
    posts: int = 0
    drafts: int = 0
    files: int = 0
    left: list[str] = field(default_factory=list)       # what could not be brought, with why
    written: list[str] = field(default_factory=list)    # sitegen files written

    def cannot(self, what: str, why: str) -> None:
        self.left.append(f"{what}: {why}")


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _has_front_matter(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(5)
    except OSError:
        return False
    return head.startswith(b"---\n") or head.startswith(b"---\r\n") or head == b"---"


def _read_config(src: Path, report: ImportReport) -> dict:
    import yaml

    path = src / "_config.yml"
    if not path.exists():
        path = src / "_config.yaml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark is not None else path.name
        report.cannot(where, f"not readable YAML ({getattr(exc, 'problem', None) or exc}); settings not brought, "
                             "edit sitegen.toml by hand")
        return {}
    if not isinstance(data, dict):
        report.cannot(path.name, "not a mapping of settings; settings not brought")
        return {}
    return data


def _settings(config: dict, report: ImportReport) -> str:
    lines = ["# Imported from a Jekyll site by `sitegen import jekyll`. Every key is optional."]
    title = config.get("title")
    lines.append(f"title = {_toml_string(str(title) if title else 'My blog')}")
    description = config.get("description") or config.get("tagline")
    if description:
        lines.append(f"description = {_toml_string(' '.join(str(description).split()))}")
    url = str(config.get("url") or "").rstrip("/")
    baseurl = str(config.get("baseurl") or "").strip("/")
    if url:
        lines.append(f"base_url = {_toml_string(url + '/' + (baseurl + '/' if baseurl else ''))}")
    else:
        lines.append('base_url = "https://example.org/"   # set the address the site is published at')
        report.cannot("_config.yml url", "not set; write the published address as base_url in sitegen.toml "
                                         "(canonical links, feed and sitemap use it)")
    if baseurl:
        report.cannot(f"_config.yml baseurl /{baseurl}", "sitegen serves a site from its domain's root: on "
                                                         "GitHub Pages use a custom domain (public/CNAME) or a "
                                                         "user site (USER.github.io); {{ site.baseurl }} in posts "
                                                         "becomes empty")
    author = config.get("author")
    if isinstance(author, dict):
        author = author.get("name")
    if isinstance(author, str) and author:
        lines.append(f"author = {_toml_string(author)}")
    permalink = config.get("permalink") or "date"
    lines.append(f"permalink = {_toml_string(str(permalink))}   # Jekyll's URLs; .html ones get a redirect page")
    lines.append("liquid = true   # render {% post_url %}, {% highlight %}, {{ site.baseurl }} in posts")
    separator = config.get("excerpt_separator")
    if isinstance(separator, str) and separator and separator != "\n\n":
        lines.append(f"excerpt_separator = {_toml_string(separator)}")
    paginate = config.get("paginate")
    if paginate is None and isinstance(config.get("pagination"), dict):
        paginate = config["pagination"].get("per_page")
    if isinstance(paginate, int) and paginate > 0:
        lines.append(f"posts_per_page = {paginate}")
    if config.get("timezone"):
        report.cannot(f"_config.yml timezone {config['timezone']}", "dates are taken as written in the posts")
    plugins = list(config.get("plugins") or []) + list(config.get("gems") or [])
    for plugin in plugins:
        plugin = str(plugin)
        covered = PLUGINS_COVERED.get(plugin)
        if covered is None:
            report.cannot(f"plugin {plugin}", "not run by sitegen; the build reports any Liquid tag it provided")
    collections = config.get("collections") or {}
    for name in collections if isinstance(collections, (dict, list)) else []:
        if name != "posts":
            report.cannot(f"collection _{name}/", "sitegen has posts only; move its documents into content/ "
                                                  "with dates to make them posts")
    if config.get("theme") or config.get("remote_theme"):
        theme = config.get("theme") or config.get("remote_theme")
        report.cannot(f"theme {theme}", "sitegen uses its own templates (`sitegen init --templates` copies "
                                        "them to restyle)")
    return "\n".join(lines) + "\n"


def _copy(src: Path, dest: Path, report: ImportReport, rel: str) -> bool:
    if dest.exists():
        report.cannot(rel, f"{dest} exists already; kept it, copy by hand if it should be replaced")
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return True


def _copy_posts(src: Path, site: Path, folder: str, report: ImportReport) -> int:
    from sitegen.content import is_markdown

    base = src / folder
    count = 0
    if not base.is_dir():
        return 0
    for path in sorted(base.rglob("*")):
        if not path.is_file() or any(p.startswith(".") for p in path.relative_to(base).parts):
            continue
        rel = f"{folder}/{path.relative_to(base).as_posix()}"
        if is_markdown(path.name):
            if _copy(path, site / "content" / rel, report, rel):
                count += 1
        elif path.suffix.lower() in (".html", ".htm"):
            report.cannot(rel, "an HTML post: sitegen posts are Markdown; rename it to .md if its HTML has no "
                               "indented lines (Markdown would read them as code)")
        else:
            report.cannot(rel, "not a Markdown post")
    return count


def import_jekyll(src: Path, site: Path) -> ImportReport:
    """Bring the Jekyll site at ``src`` into the sitegen site at ``site``. Raises ValueError when
    ``src`` is not a Jekyll site or ``site`` is a sitegen site already."""
    src, site = Path(src).resolve(), Path(site).resolve()
    if not (src / "_posts").is_dir() and not (src / "_config.yml").is_file():
        raise ValueError(f"{src}: not a Jekyll site (no _config.yml and no _posts/)")
    if (site / "sitegen.toml").exists():
        raise ValueError(f"{site}: a sitegen site already (sitegen.toml exists); import into a new folder")
    report = ImportReport()
    config = _read_config(src, report)
    exclude = set(DEFAULT_EXCLUDE) | {str(e).strip("/") for e in config.get("exclude") or []}
    include = {str(i).strip("/") for i in config.get("include") or []}
    site.mkdir(parents=True, exist_ok=True)
    report.posts = _copy_posts(src, site, "_posts", report)
    report.drafts = _copy_posts(src, site, "_drafts", report)
    collections = config.get("collections") or {}
    collections = set(collections) if isinstance(collections, (dict, list)) else set()

    def excluded(rel: str, name: str) -> bool:
        from fnmatch import fnmatch

        return name in DEFAULT_EXCLUDE or any(rel == e or fnmatch(rel, e) or rel.startswith(e + "/") for e in exclude)

    def walk(folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path == site:
                continue  # importing into a folder inside the Jekyll site
            rel = path.relative_to(src).as_posix()
            name = path.name
            if rel in ("_posts", "_drafts", "_config.yml", "_config.yaml") or excluded(rel, name):
                continue
            included = rel in include or name in include
            if name.startswith("_") and not included and name not in UNDERSCORED_FILES:
                if name[1:] in collections:
                    continue  # reported with the collections
                if path.is_dir():
                    report.cannot(rel + "/", FOLDERS.get(name, "a Jekyll folder (names starting with '_' are "
                                                               "not published)"))
                else:
                    report.cannot(rel, "names starting with '_' are not published by Jekyll either")
                continue
            if name.startswith(".") and name not in DOTFILES and not included:
                continue
            if path.is_dir():
                if (path / "_posts").is_dir():
                    report.cannot(f"{rel}/_posts/", f"posts in a category folder: copy them into content/_posts/ "
                                                    f"and add 'categories: {name}' to keep their URLs")
                walk(path)
                continue
            suffix = path.suffix.lower()
            if suffix in (".scss", ".sass") or (suffix in (".css", ".js") and _has_front_matter(path)):
                report.cannot(rel, "the theme's stylesheet or script (processed by Jekyll): sitegen uses its own")
                continue
            if _has_front_matter(path):
                report.cannot(rel, "a page with front matter (a Jekyll page or feed): sitegen writes its index, "
                                   "feed, tags and 404 itself; to keep it as a post, move it into content/ with a "
                                   "date")
                continue
            if _copy(path, site / "public" / rel, report, rel):
                report.files += 1

    walk(src)
    config_text = _settings(config, report)
    (site / "sitegen.toml").write_text(config_text, encoding="utf-8")
    report.written.append("sitegen.toml")
    (site / "data").mkdir(exist_ok=True)
    from sitegen.scaffold import write_deploy_files

    report.written += write_deploy_files(site, overwrite=False)
    return report


def run(src: str, site: str) -> int:
    """The command: import, then print what came over and, in one list, what did not."""
    try:
        report = import_jekyll(Path(src), Path(site))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"imported {report.posts} post(s), {report.drafts} draft(s) and {report.files} file(s) served as they "
          f"are (public/) into {site}/; wrote {', '.join(report.written)}")
    if report.left:
        print(f"could not bring {len(report.left)} thing(s):")
        for item in report.left:
            print(f"  - {item}")
    print(f"next: `sitegen serve {site}` to preview, `sitegen build {site}` to build")
    return 0
