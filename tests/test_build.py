"""The built site as a reader and a feed reader see it."""
from __future__ import annotations

import re

import feedparser


def test_index_lists_posts_newest_first_with_dates_and_excerpts(site):
    site.post("old.md", """
        ---
        title: Older
        date: 2023-01-02
        ---
        The older first paragraph.
        """)
    site.post("new.md", """
        ---
        title: Newer
        date: 2024-05-06 7:00:00
        ---
        The newer first paragraph.

        Second paragraph not in the excerpt.
        """)
    site.build()
    index = site.page("index.html")
    assert index.index("Newer") < index.index("Older")
    assert "The newer first paragraph." in index
    assert "Second paragraph" not in index
    assert 'datetime="2024-05-06"' in index and "May 6, 2024" in index
    assert (site.out / "new" / "index.html").exists() and (site.out / "old" / "index.html").exists()


def test_title_from_first_heading_is_not_repeated(site):
    site.post("x.md", "# From the heading\n\nBody text.\n")
    site.build()
    page = site.page("x/index.html")
    assert "<title>From the heading" in page
    assert page.count("<h1") == 1 and "<h1>From the heading</h1>" in page
    assert 'id="from-the-heading"' not in page


def test_date_from_jekyll_file_name_and_slug_from_it(site):
    site.post("2024-02-05-my-post.md", "---\ntitle: T\n---\nText.\n")
    site.build()
    assert 'datetime="2024-02-05"' in site.page("my-post/index.html")


def test_undated_post_warns_and_is_listed_after_dated_ones(site):
    site.post("a.md", "---\ntitle: Undated one\n---\nText.\n")
    site.post("b.md", "---\ntitle: Dated one\ndate: 2001-01-01\n---\nText.\n")
    result = site.build()
    assert any("no date" in str(p) and p.path == "content/a.md" for p in result.warnings)
    index = site.page("index.html")
    assert index.index("Dated one") < index.index("Undated one")


def test_front_matter_slug_summary_authors_tags(site):
    site.post("x.md", """
        ---
        title: Custom
        date: 2024-01-01
        slug: elsewhere
        summary: A hand-written summary.
        authors: [Ada, Grace]
        tags: [Gaussian processes, jax]
        ---
        First paragraph.
        """)
    site.build()
    page = site.page("elsewhere/index.html")
    assert "Ada, Grace" in page
    assert 'content="A hand-written summary."' in page
    assert "A hand-written summary." in site.page("index.html")
    assert "Custom" in site.page("tags/gaussian-processes/index.html")
    assert 'href="/tags/gaussian-processes/"' in page


def test_drafts_left_out_of_production_and_marked_with_drafts(site):
    site.post("d.md", "---\ntitle: Secret draft\ndate: 2024-01-01\ndraft: true\n---\nText.\n")
    site.post("v.md", "---\ntitle: Invisible\ndate: 2024-01-01\nvisible: false\n---\nText.\n")
    site.post("p.md", "---\ntitle: Public\ndate: 2024-01-01\n---\nText.\n")
    site.build()
    assert not (site.out / "d").exists() and not (site.out / "v").exists()
    assert "Secret draft" not in site.page("index.html") and "Secret draft" not in site.page("feed.xml")
    site.build(drafts=True)
    assert "Secret draft" in site.page("index.html")
    assert "banner-draft" in site.page("d/index.html")
    assert "Secret draft" not in site.page("feed.xml")


def test_under_construction_is_built_with_banner_but_unlisted(site):
    site.post("wip.md", "---\ntitle: Half done\ndate: 2024-01-01\nunder_construction: true\n---\nText.\n")
    site.build()
    assert "Work in progress" in site.page("wip/index.html")
    for listing in ("index.html", "feed.xml", "sitemap.xml"):
        assert "Half done" not in site.page(listing) and "/wip/" not in site.page(listing)


def test_comments_and_share_blocks_follow_front_matter(site):
    site.post("on.md", "---\ntitle: On\ndate: 2024-01-01\ncomments: true\nshare: true\n---\nText.\n")
    site.post("off.md", "---\ntitle: Off\ndate: 2024-01-01\n---\nText.\n")
    site.build()
    assert 'class="comments"' in site.page("on/index.html") and 'class="share"' in site.page("on/index.html")
    assert 'class="comments"' not in site.page("off/index.html") and 'class="share"' not in site.page("off/index.html")


def test_folder_post_keeps_its_images_and_relative_links(site):
    site.post("bundle/index.md", "---\ntitle: Bundle\ndate: 2024-01-01\n---\n![plot](plot.svg)\n")
    (site.root / "content" / "bundle" / "plot.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    site.build()
    assert 'src="plot.svg"' in site.page("bundle/index.html")
    assert (site.out / "bundle" / "plot.svg").exists()
    # the excerpt on the index points at the image in the post's folder
    assert 'src="/bundle/plot.svg"' in site.page("index.html")


def test_links_to_markdown_files_become_page_links(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-01-01\n---\nSee [B](b.md#part).\n")
    site.post("b.md", "---\ntitle: B\ndate: 2024-01-01\n---\n## Part\n\nText.\n")
    site.build()
    assert 'href="/b/#part"' in site.page("a/index.html")


def test_atom_feed_has_ids_dates_and_full_content(site):
    site.post("a.md", "---\ntitle: Feed me & more\ndate: 2024-03-04\ntags: [x]\n---\nHello *feed*.\n")
    site.build()
    feed = feedparser.parse(site.page("feed.xml"))
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.id == "https://example.org/blog/" and feed.feed.updated.startswith("2024-03-04")
    entry = feed.entries[0]
    assert entry.title == "Feed me & more"
    assert entry.id == "https://example.org/blog/a/" and entry.link == "https://example.org/blog/a/"
    assert entry.updated.startswith("2024-03-04") and entry.published.startswith("2024-03-04")
    assert "<em>feed</em>" in entry.content[0].value


def test_feed_content_drops_sidenotes_but_keeps_the_notes(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-03-04\n---\nClaim[^1].\n\n[^1]: The unique note text.\n")
    site.build()
    content = feedparser.parse(site.page("feed.xml")).entries[0].content[0].value
    assert content.count("The unique note text.") == 1 and 'class="sidenote"' not in content
    assert site.page("a/index.html").count("The unique note text.") == 2  # margin note + end note


def test_sitemap_robots_404_and_meta_tags(site):
    site.post("a.md", "---\ntitle: Meta <check>\ndate: 2024-03-04\nsummary: About it.\n---\nText.\n")
    site.build()
    sitemap = site.page("sitemap.xml")
    assert "<loc>https://example.org/blog/a/</loc>" in sitemap and "<lastmod>2024-03-04</lastmod>" in sitemap
    assert "Sitemap: https://example.org/blog/sitemap.xml" in site.page("robots.txt")
    assert "Page not found" in site.page("404.html")
    page = site.page("a/index.html")
    assert '<link rel="canonical" href="https://example.org/blog/a/">' in page
    assert '<meta property="og:title" content="Meta &lt;check&gt;">' in page
    assert '<meta name="twitter:description" content="About it.">' in page
    assert '<meta property="og:type" content="article">' in page


def test_assets_are_fingerprinted(site):
    site.post("a.md", "---\ntitle: A\ndate: 2024-03-04\n---\nText.\n")
    site.build()
    css = re.search(r'href="/static/(style\.[0-9a-f]{10}\.css)"', site.page("a/index.html"))
    assert css and (site.out / "static" / css.group(1)).exists()


def test_user_template_overrides_default_and_custom_layout(site):
    site.write("templates/wide.html", '{% extends "post.html" %}{% block main %}<div class="wide">{{ content }}</div>{% endblock %}')
    site.post("a.md", "---\ntitle: A\ndate: 2024-03-04\nlayout: wide\nextra_field: 42\n---\nText.\n")
    site.build()
    assert '<div class="wide"><p>Text.</p>' in site.page("a/index.html")


def test_front_matter_text_is_escaped_but_author_html_is_allowed(site):
    site.post("a.md", '---\ntitle: "<script>alert(1)</script>"\ndate: 2024-03-04\ntags: ["<b>x</b>"]\n---\n'
                      '<span class="mine">raw html</span>\n')
    site.build()
    page = site.page("a/index.html")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page
    assert '<span class="mine">raw html</span>' in page


def test_index_is_paginated(site):
    site.write("sitegen.toml", 'title = "T"\nposts_per_page = 2\n')
    for i in range(5):
        site.post(f"p{i}.md", f"---\ntitle: Post {i}\ndate: 2024-01-0{i + 1}\n---\nText.\n")
    site.build()
    assert "Page 1 of 3" in site.page("index.html")
    assert "Post 0" in site.page("page/3/index.html")
    assert 'href="/page/2/"' in site.page("index.html")
