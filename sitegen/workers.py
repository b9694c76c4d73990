"""The per-post work of a build, run in worker processes: load a post, parse it, render its page and
write that page straight into the new site's folder.

:mod:`sitegen.build` decides what to do and gathers the results; this module does it, in forked
processes when there is enough of it (a pool costs more than it saves below
:data:`PARALLEL_THRESHOLD` posts), in the builder's own process otherwise. What a worker needs is
put in :data:`_WORK` before the fork, so it is shared copy-on-write instead of sent to each worker.
"""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from sitegen.content import Post, load
from sitegen.context import PageContext
from sitegen.errors import Problem
from sitegen.stages import PageOut, Parsed
from sitegen.stages import digest as _digest

PARALLEL_THRESHOLD = 64  # fewer posts than this to parse: not worth starting processes

_WORK: dict = {}


def stamp(path: str | Path) -> tuple[int, int] | None:
    """A file's modification time and size: what says it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def parse_post(post: Post, root: Path, md_targets: dict[str, str], live: bool = False,
               fragments: dict | None = None) -> Parsed:
    """``fragments``: the code blocks' and formulas' HTML of the post's previous parse, to reuse
    (see sitegen/markdown.py); what this parse makes of them comes back in ``Parsed.fragments``.
    None: neither reused nor kept (a build without a cache)."""
    from sitegen import jekyll, markdown

    ctx = PageContext(path=post.rel, root=root, source_dir=post.source.parent)
    if fragments is not None:
        ctx.meta["fragments"] = (fragments, {})
    ctx.meta["live"] = live
    ctx.meta["md_targets"] = md_targets
    ctx.meta["md_links"] = {}
    body = jekyll.preprocess(post, ctx, md_targets)  # Liquid, when the site asks for it
    rendered = markdown.render(body, ctx, post.line_offset)
    excerpt = jekyll.excerpt(body, jekyll.excerpt_separator(post, md_targets), ctx)
    if excerpt is not None:
        rendered.excerpt_html = excerpt
    if ctx.meta.get("has_figures"):
        from sitegen import thumbnail

        for stem, picture in thumbnail.pictures(rendered.html).items():  # still pictures for the feed
            ctx.add_file(stem, picture, ".svg")
    deps = {d: stamp(d) for d in sorted(ctx.deps)}
    return Parsed(
        html=rendered.html, toc=rendered.toc, excerpt_html=rendered.excerpt_html,
        problems=ctx.problems, deps=deps, files=ctx.files, scripts=ctx.scripts,
        md_links=ctx.meta["md_links"],
        data_mode=None if ctx.catalog is None else ("live" if live else "static"),
        reads_run=bool(ctx.meta.get("read_live")),
        fragments=None if fragments is None else ctx.meta["fragments"][1],
    )


def _post_job(job) -> tuple[int, Parsed | None, PageOut | None, list[Problem]]:
    """Parse a post if it changed, then render its page: the per-post work, run in a worker."""
    i, need_parse = job
    post = _WORK["posts"][i]
    try:
        if need_parse:
            fragments = _WORK.get("fragments")
            parsed = parse_post(post, _WORK["root"], _WORK["md_targets"], _WORK["live"],
                                None if fragments is None else fragments.get(post.rel, {}))
            parsed.key = _digest(post.source.read_bytes(), sorted(parsed.deps.items()),
                                 sorted(parsed.md_links.items()), _WORK["version"])
        else:
            parsed = _WORK["parsed"][post.rel][1]
        page, problems = _WORK["renderer"].render_post_page(post, parsed)
        if page is not None and _WORK.get("tree") is not None:
            page = _write_page(_WORK["tree"], f"{post.folder}index.html", page, _WORK.get("spare"))
        return i, (parsed if need_parse else None), page, problems
    except RecursionError:
        return i, None, None, [Problem(post.rel, None, "the post nests too deeply to render (thousands of nested "
                                                       "lists, quotes, brackets or parentheses?); flatten it")]
    except Exception as exc:  # a bug of ours must not hide the other posts' results
        import traceback

        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return i, None, None, [Problem(post.rel, None, f"internal error while rendering: {detail} "
                                                       "(please report this with the post attached)")]


def _write_page(tree: str, rel: str, page: PageOut, spare: bool = False) -> PageOut:
    """Write a page into the new site's folder (not yet the output: nothing a reader sees) and send
    back only what the parent needs to know about it. A write that fails is left to the parent,
    which writes the page again and reports the failure as every other failed write. In a spare
    tree (see :mod:`sitegen.write`) the old file is replaced, never written into: it may be a hard
    link to the served site's."""
    dest = f"{tree}/{rel}"
    try:
        if spare and os.path.lexists(dest):
            os.unlink(dest)
        folder = os.path.dirname(dest)
        try:
            os.mkdir(folder)  # a post's own folder, new in a cold build: one call, not makedirs' stat and mkdir
        except FileExistsError:
            pass  # (a file there: open fails below, as makedirs would have)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
        with open(dest, "wb") as f:
            f.write(page.data)
    except OSError:
        return page
    return PageOut(page.key, None, page.links, page.ids, page.source, written=True)


def run_posts(posts, jobs, workers: int, **work):
    """Yield ``(i, parsed, page, problems)`` for each ``(i, need_parse)`` job, in any order."""
    _WORK.update(posts=posts, **work)
    try:
        if workers > 1 and len(jobs) >= PARALLEL_THRESHOLD and sys.platform != "win32":
            _warm(work["renderer"], [posts[i] for i, _ in jobs])
            # small batches: the last one to finish keeps the other workers idle
            chunk = max(1, min(16, len(jobs) // (workers * 8)))
            yield from in_workers(_post_job, jobs, workers, chunk)
        else:
            threshold = gc.get_threshold()
            gc.set_threshold(WORKER_GC_THRESHOLD, *threshold[1:])
            try:
                for job in jobs:
                    yield _post_job(job)
            finally:
                gc.set_threshold(*threshold)
    finally:
        _WORK.clear()


def _warm(renderer, posts) -> None:
    """Set up once, before the fork, what every worker would otherwise set up for itself: the
    MarkdownIt instance, the highlighter's formatter, the math converter's imports, the page
    templates. The workers share it copy-on-write."""
    from sitegen import markdown

    markdown.markdown()
    markdown.warm(p.body for p in posts)
    for layout in {renderer.layout_fallback.get(p.layout, p.layout) for p in posts}:
        try:
            renderer.env.get_template(f"{layout}.html")
        except Exception:
            pass  # the worker reports it, with the post that uses it


def _warm_markdown(bodies=()) -> None:
    """The part of :func:`_warm` that needs no post: MarkdownIt with every directive module, the
    highlighter's formatter, the math converter; and the lexers of the languages ``bodies`` fence. A
    cold build of many posts needs them all; doing them while the posts load, on the core a worker
    leaves free now and then, takes them off the serial path (a lexer: 40 to 70 ms, made as soon as
    the first part of the posts to come back shows its language)."""
    from sitegen import markdown

    try:
        markdown.markdown()
        markdown.warm(bodies)
    except Exception:
        pass  # whatever fails here fails again where it is used, and is reported there


def run_indexed(fn, n: int, workers: int, threshold: int, tree: str | None = None, spare: bool = False):
    """``[fn(k) for k in range(n)]``, each ``(rel, page, problems)``; in forked workers when ``n`` is at
    least ``threshold``, which write each page into ``tree`` (when given) instead of sending it back."""
    if workers <= 1 or n < threshold or sys.platform == "win32":
        return [fn(k) for k in range(n)]
    _WORK.update(fn=fn, tree=tree, spare=spare)
    try:
        return list(in_workers(_indexed_job, range(n), workers, 1))
    finally:
        _WORK.clear()


def _indexed_job(k: int):
    rel, page, problems = _WORK["fn"](k)
    if page is not None and _WORK["tree"] is not None:
        page = _write_page(_WORK["tree"], rel, page, _WORK["spare"])
    return rel, page, problems


def _load_job(chunk: list[tuple[str, Path]]):
    root, folders = _WORK["root"], {}
    return [(key, load(path, root, folders)) for key, path in chunk]


def load_posts(todo: list[tuple[str, Path]], root: Path, workers: int):
    """``(key, (post, problems))`` for each ``(key, path)``: :func:`sitegen.content.load`, in
    workers when there are many (a cold build reads thousands of posts)."""
    if workers <= 1 or len(todo) < 4 * PARALLEL_THRESHOLD or sys.platform == "win32":
        folders: dict[str, str] = {}
        return [(key, load(path, root, folders)) for key, path in todo]
    _WORK.update(root=root)
    try:
        n = workers * 4
        chunks = [todo[k::n] for k in range(n)]
        loading = in_workers(_load_job, chunks, workers, 1)
        _warm_markdown()  # while the workers read: the parent would do it alone before the next fork
        loaded = []
        for part in loading:
            loaded.extend(part)
            _warm_markdown(post.body for _, (post, _) in part if post is not None)
        return loaded
    finally:
        _WORK.clear()


def in_workers(fn, items, workers: int, chunksize: int):
    """``map(fn, items)`` in ``workers`` forked processes (set up by :func:`_start_worker`), started
    now, results in order as they are iterated. concurrent.futures' executor, not multiprocessing's
    Pool: the Pool's thread that watches its workers also wakes whenever a result waits in the pipe,
    and until the result thread has read it polls the workers over and over (20,000 times for the 250
    batches of a 4,000-post build, 0.4 to 0.8 s of the parent's CPU taken from the workers on two
    cores); the executor's one thread reads each result as it comes."""
    from concurrent.futures import ProcessPoolExecutor

    executor = ProcessPoolExecutor(workers, mp_context=_fork_context(), initializer=_start_worker)
    try:
        results = executor.map(fn, items, chunksize=chunksize)  # (forks the workers, hands out the batches)
    except BaseException:
        _stop(executor)
        raise
    return _results(executor, results)


def _results(executor, results):
    # What comes back (posts, parses, pages) lives as long as the build: no pass of the cyclic
    # collector over it while it comes (a young-generation pass every 10,000 objects, and the
    # middle generation's over all of it: 0.2 s of the parent's CPU in a cold build of the bench
    # site); frozen after, where the build froze what it holds (see Builder.build, which thaws it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield from results
    except BaseException:
        _stop(executor)
        raise
    finally:
        if collecting:
            if gc.get_freeze_count():
                gc.freeze()
            gc.enable()
    executor.shutdown()


def _stop(executor) -> None:
    """After a failure or an interrupt: no new batch, and the workers ended now, as the Pool's
    terminate() did (the executor would let them finish their batches, seconds for a big list page)."""
    executor.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()


def _fork_context():
    import multiprocessing as mp

    return mp.get_context("fork")


#: allocations between two collections of the youngest generation in a worker (Python's default: 700).
#: Parsing and rendering a post allocates tens of thousands of short-lived objects, nearly all freed by
#: their reference counts; collecting every 700 of them scanned each survivor over and over (3 % of a
#: cold build's CPU, 0.5 s of 19 s in one process; 0.2 s with this and the shared objects frozen).
WORKER_GC_THRESHOLD = 10_000


def _start_worker() -> None:
    """In each worker: what the parent set up before the fork (modules, templates, posts) lives as
    long as the worker, so the cyclic collector leaves it out (``gc.freeze``), and it runs less often."""
    _ignore_interrupt()
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])


def _ignore_interrupt() -> None:
    """In workers: Ctrl-C is the parent's to handle (it stops the pool), not a traceback from every
    worker; and the pool's SIGTERM just ends a worker, whatever the parent made of it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
