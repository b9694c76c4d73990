"""The build cache file (sitegen/cache.py): a save writes only what changed, and a damaged,
truncated, foreign or half-saved file costs a full build, never a wrong site."""
from __future__ import annotations

import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitegen.build import Builder
from sitegen.cache import CacheFile

POSTS = 6


def _write_posts(site, tag: str) -> None:
    for i in range(POSTS):
        site.post(f"p{i}.md", f"---\ntitle: Post {i}\ndate: 2024-01-{i + 1:02d}\ntags: [t{i % 2}]\n---\n"
                              f"# Head {i}\n\n{tag} text of post {i}, see [the next](/p{(i + 1) % POSTS}/).\n\n"
                              f"```python\nx = {i}\n```\n\n$a_{i}^2$\n")



def _cache_file(site):
    return site.root / ".sitegen-cache" / "build.sqlite"


def _cached_build(site, tree):
    exclude = [site.out, site.root / ".sitegen-cache"]
    before = tree.snapshot(site.root, exclude)
    result = Builder(site.root, workers=1).build()
    tree.assert_untouched(before, tree.snapshot(site.root, exclude))
    return result


def _fresh(site, out):
    Builder(site.root, out=out, use_cache=False, workers=1).build()
    return site.contents(out)


@pytest.fixture
def cached_site(site, tree):
    """A site built twice with its cache (the second build takes the first's spare), then one post
    edited: what the next cached build must produce is what a build from nothing produces."""
    _write_posts(site, "old")
    _cached_build(site, tree)
    _cached_build(site, tree)
    site.post("p2.md", "---\ntitle: Post 2 again\ndate: 2024-01-03\n---\nEdited, with [a link](/p4/).\n")
    return site


def test_a_one_post_rebuild_reparses_that_post_and_saves_a_few_groups(cached_site, tree):
    site = cached_site
    store = CacheFile(_cache_file(site))
    cache, out_dir = store.load(_version(site))
    assert cache is not None and out_dir == str(site.out)
    before = _rows(site)
    result = _cached_build(site, tree)
    assert result.parsed == ["content/p2.md"]
    after = _rows(site)
    changed = {key for key in after if after[key] != before.get(key)}
    # the one post's load and parse; the pages that show it (its own, its neighbours', the lists) and their keys
    assert {key for key in changed if key[0] in ("posts", "parsed")} == {("posts", _shard("content/p2.md", site)),
                                                             ("parsed", _shard("content/p2.md"))}
    assert len(changed) < len(after) / 2, changed
    assert set(before) - set(after) == set()


def _shard(rel, site=None):
    from sitegen.cache import shard_of

    return shard_of(rel if site is None else str(site.root.resolve() / rel))  # (posts: by source path)


def _version(site):
    builder = Builder(site.root)
    builder._load_cache()
    return builder.cache["version"]


def _rows(site) -> dict:
    db = sqlite3.connect(_cache_file(site))
    try:
        return {(kind, shard): data for kind, shard, data in db.execute("SELECT kind, shard, data FROM shards")}
    finally:
        db.close()


def _damage_then_build(site, tmp_path, tree, damage) -> None:
    path = _cache_file(site)
    data = path.read_bytes()
    path.write_bytes(damage(data))
    _cached_build(site, tree)
    assert site.contents() == _fresh(site, tmp_path / "fresh")
    _cached_build(site, tree)  # and the cache written over the damaged one works
    assert site.contents() == _fresh(site, tmp_path / "fresh")


@pytest.mark.parametrize("damage", [
    lambda data: b"",
    lambda data: data[:len(data) // 2],
    lambda data: data[:100],
    lambda data: b"not a database at all\n" * 50,
    lambda data: data[:4096] + bytes(len(data) - 4096),
], ids=["empty", "half", "header only", "garbage", "zeroed after the first page"])
def test_a_damaged_cache_file_costs_a_full_build(cached_site, tmp_path, tree, damage):
    _damage_then_build(cached_site, tmp_path, tree, damage)


def test_a_flipped_byte_in_a_cached_post_is_caught(cached_site, tmp_path, tree):
    """SQLite does not check what a row holds: every group carries its CRC-32, so a changed byte in
    a post's cached text (or in its HTML, kept compressed) is never served."""
    site = cached_site
    db = sqlite3.connect(_cache_file(site))
    kind, shard, data = db.execute("SELECT kind, shard, data FROM shards WHERE kind = 'posts'").fetchone()
    at = data.index(b"old text of post")
    db.execute("UPDATE shards SET data = ? WHERE kind = ? AND shard = ?",
               (data[:at] + b"OLD" + data[at + 3:], kind, shard))
    db.commit()
    db.close()
    _cached_build(site, tree)
    assert site.contents() == _fresh(site, tmp_path / "fresh")
    assert b"OLD text" not in b"".join(site.contents().values())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1), length=st.integers(1, 64), value=st.integers(0, 255), truncate=st.booleans())
def test_any_damage_to_the_cache_file_gives_the_site_a_fresh_build_gives(cached_site, tmp_path, tree,
                                                                          where, length, value, truncate):
    site = cached_site
    path = _cache_file(site)
    saved = path.read_bytes()

    def damage(data):
        at = int(where * (len(data) - 1))
        if truncate:
            return data[:at]
        return data[:at] + bytes([value]) * length + data[at + length:]

    try:
        _damage_then_build(site, tmp_path, tree, damage)
    finally:
        path.write_bytes(saved)


def test_a_build_killed_while_saving_leaves_a_usable_cache(cached_site, tmp_path, tree):
    """Killed (os._exit, as SIGKILL) at each statement of the save: the next build gives the site a
    fresh build gives, whichever cache it finds."""
    site = cached_site
    import sitegen.cache as cache_module

    saved = {p: p.read_bytes() for p in (site.root / "content").iterdir()}
    statements = 0
    for limit in range(1, 40):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                original = cache_module.CacheFile._connect
                count = [0]

                class Dying:
                    def __init__(self, db):
                        self.db = db

                    def execute(self, *args):
                        return self._step(self.db.execute, args)

                    def executemany(self, *args):
                        return self._step(self.db.executemany, args)

                    def _step(self, method, args):
                        count[0] += 1
                        if count[0] == limit:
                            os._exit(137)
                        return method(*args)

                    def __getattr__(self, name):
                        return getattr(self.db, name)

                cache_module.CacheFile._connect = lambda self: Dying(original(self))
                Builder(site.root, workers=1).build()
                code = 0
            finally:
                os._exit(code)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if status == 0:
            break
        statements += 1
        assert status == 137
        _cached_build(site, tree)
        assert site.contents() == _fresh(site, tmp_path / "fresh")
        for p, data in saved.items():  # the same edit again for the next kill
            p.write_bytes(data)
        (site.root / "content" / "p2.md").write_text(f"---\ntitle: Post 2\ndate: 2024-01-03\n---\nKill {limit}.\n")
    assert statements > 5


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", ".", "..", "", "post.md", "é", "x y", "/"]), max_size=5),
                max_size=6), st.booleans())
def test_paths_come_back_from_a_saved_group_as_they_went_in(parts_list, absolute):
    """The cache pickles a path as its folder and name (sitegen.cache._dumps): every path, relative,
    absolute, with '..' or '//' in it, unpickles equal, of the same type, with the same str."""
    import pickle
    from pathlib import Path, PurePosixPath

    from sitegen.cache import _dumps

    paths = [Path(("/" if absolute else "") + "/".join(parts)) for parts in parts_list]
    paths.append(PurePosixPath("/a/b"))  # (a pure path is pickled the ordinary way)
    value = {"posts": [(p, str(p)) for p in paths], "same": paths[:1] * 2}
    back = pickle.loads(_dumps(value))
    assert back == value
    assert [(type(p), str(p)) for p, _ in back["posts"]] == [(type(p), str(p)) for p in paths]


@pytest.mark.parametrize("damage", [lambda data: data[:len(data) // 2], lambda data: data[:3],
                                    lambda data: data[:-40] + bytes(40), lambda data: b"junk"],
                         ids=["half", "three bytes", "zeroed tail", "junk"])
def test_damaged_compiled_templates_are_compiled_again(cached_site, tmp_path, tree, damage):
    """Jinja's compiled templates, kept in .sitegen-cache/templates-<version>/: a damaged file (its
    CRC-32 fails) is compiled again from the template, never run."""
    site = cached_site
    files = sorted((site.root / ".sitegen-cache").glob("templates-*/*"))
    assert files
    for f in files:
        f.write_bytes(damage(f.read_bytes()))
    _cached_build(site, tree)
    assert site.contents() == _fresh(site, tmp_path / "fresh")
    post_template = [f for f in files if len(f.read_bytes()) > 100]
    assert post_template  # the ones this build used, written again whole


def test_a_template_edit_is_not_hidden_by_its_compiled_copy(cached_site, tmp_path, tree):
    from sitegen.stages import PACKAGE_DIR

    site = cached_site
    shipped = (PACKAGE_DIR / "templates" / "post.html").read_text()
    site.write("templates/post.html", shipped.replace("</article>", "<p>from the site's own template</p></article>"))
    _cached_build(site, tree)
    assert "from the site's own template" in site.page("p2/index.html")
    assert site.contents() == _fresh(site, tmp_path / "fresh")


def test_an_output_named_by_the_old_pickle_cache_is_still_taken_over(site, tree):
    """Before build.sqlite the cache was .sitegen-cache/build.pickle: the output folder it names (an
    output from before the marker file) is still recognised as the build's own, and the pickle goes."""
    import pickle

    _write_posts(site, "old")
    site.out.mkdir(parents=True)
    (site.out / "index.html").write_text("an old build's page")
    old = site.root / ".sitegen-cache" / "build.pickle"
    old.parent.mkdir()
    old.write_bytes(pickle.dumps({"version": "old", "out_dir": str(site.out), "posts": {}}))
    _cached_build(site, tree)
    assert "Post 1" in site.page("index.html")
    assert not old.exists() and _cache_file(site).exists()


@settings(max_examples=50, deadline=None)
@given(st.text(), st.lists(st.tuples(st.sampled_from(["/", "/a/", "#x"]), st.none() | st.integers(1, 9)), max_size=6))
def test_a_parse_and_a_page_come_back_from_a_saved_group_as_they_went_in(html, links):
    """The cache keeps a parse's HTML compressed (read back when first asked for) and makes equal
    links and ids of a group's pages one object: neither changes what comes back."""
    import pickle

    from sitegen.cache import _dumps, _shared
    from sitegen.stages import Parsed

    parsed = Parsed(html=html, toc=[], excerpt_html="<p>x</p>", problems=[], deps={}, files={}, scripts=[],
                    md_links={}, key="k")
    back = pickle.loads(_dumps({"p": (None, parsed)}))["p"][1]
    assert "html" not in back.__dict__ and "toc" not in back.__dict__
    assert back == parsed and back.html == html and back.toc == [] and back.excerpt_html == "<p>x</p>"
    assert pickle.loads(_dumps({"p": (None, back)}))["p"][1].html == html  # (saved again once read)
    pages = {f"{k}.html": ("key", list(links), frozenset({"a", "b"}), None) for k in range(3)}
    assert pickle.loads(_dumps(_shared(pages, {}))) == pages
