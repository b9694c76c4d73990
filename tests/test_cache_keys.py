"""The list pages' keys are made of each listed post's summary key, kept in the build cache with the
stamp of the post's file and its parse's key: a new process rebuilding after an edit below a post's
excerpt renders no list page, and any edit that shows in a list (the excerpt, the title, a tag)
renders the lists that show it, as a build from nothing would."""
from __future__ import annotations

import pytest

from sitegen.build import Builder

POST = "---\ntitle: {title}\ndate: 2024-01-{day:02d}\ntags: [{tags}]\n---\n{first}\n\nMore about it.\n"



def _write(site, k, title=None, first=None, tags="all, t{k}", more=""):
    text = POST.format(title=title or f"Post {k}", day=k + 1, tags=tags.format(k=k % 2),
                       first=first or f"The excerpt of post {k}.")
    site.post(f"p{k}.md", text + more)


@pytest.fixture
def listed(site):
    for k in range(5):
        _write(site, k)
    Builder(site.root, workers=1).build()
    Builder(site.root, workers=1).build()
    return site


@pytest.mark.parametrize("edit, lists", [
    (dict(more="\nA new closing paragraph.\n"), set()),
    (dict(first="A new excerpt."), {"index.html", "tags/all/index.html", "tags/t0/index.html"}),
    (dict(title="A new title"), {"index.html", "tags/all/index.html", "tags/t0/index.html"}),
    (dict(tags="all, t1"), {"index.html", "tags/all/index.html", "tags/t0/index.html", "tags/t1/index.html",
                            "tags/index.html"}),
])
def test_a_list_page_is_rendered_again_when_what_it_shows_changed(listed, tmp_path, edit, lists):
    site = listed
    _write(site, 2, **edit)
    result = Builder(site.root, workers=1).build()
    assert {rel for rel in result.written if rel.startswith(("index", "tags/", "page/"))} == lists
    fresh = tmp_path / "fresh"
    Builder(site.root, out=fresh, use_cache=False, workers=1).build()
    assert site.contents() == site.contents(fresh)
