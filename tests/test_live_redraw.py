"""A running experiment's redraw reads only its new parts (sitegen.columnar.PartCache) and draws exactly
what a cold preview of the same parts draws: after an append, a rewritten part, a part taken away, and a
writer killed (SIGKILL) in the middle of a part."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sitegen import columnar
from sitegen.build import Builder
from sitegen.errors import BuildError
from test_live import FakeRun, site  # noqa: F401  (the fixture)

POST = textwrap.dedent("""\
    ---
    title: Live
    date: 2024-01-01
    ---

    ```{expression} data/run.parquet
    :label: the-run
    :caption: A run.
    y = ⟦w⟧ * x + ⟦b⟧
    ```
    """)


def page(out: Path) -> dict[str, bytes]:
    """The post's page and the animation data it fetches, by name."""
    folder = out / "live"
    html = (folder / "index.html").read_bytes()
    data = {name.decode(): (folder / name.decode()).read_bytes() for name in re.findall(rb"frames\.[0-9a-f]+\.bin", html)}
    assert data, "the figure fetches its animation"
    return {"index.html": html, **data}


def cold(site_dir: Path, tmp_path: Path, name: str) -> dict[str, bytes]:
    """A fresh preview of a copy of the site (its own catalog: nothing cached)."""
    copy = tmp_path / f"cold-{name}"
    shutil.copytree(site_dir, copy, ignore=shutil.ignore_patterns(".sitegen-cache"))
    Builder(copy, out=tmp_path / f"cold-{name}-out", preview=True).build()
    return page(tmp_path / f"cold-{name}-out")


@pytest.fixture
def live_site(site):  # noqa: F811
    (site / "content" / "live.md").write_text(POST)
    return site


def test_a_new_part_is_read_alone_and_draws_what_a_cold_preview_draws(live_site, tmp_path, monkeypatch):
    run = FakeRun(live_site / "data" / "run.parquet")
    for _ in range(3):
        run.part()
    builder = Builder(live_site, out=tmp_path / "preview", preview=True)
    builder.build()
    read = []
    real = columnar._piece
    monkeypatch.setattr(columnar, "_piece", lambda table, *a: read.append(table.num_rows) or real(table, *a))
    run.part()
    builder.build(in_place=True)
    assert read == [30], "only the new part is read"
    warm = page(tmp_path / "preview")
    assert b"shown up to step 19" in warm["index.html"]
    assert warm == cold(live_site, tmp_path, "append")


def test_a_rewritten_or_removed_part_draws_what_a_cold_preview_draws(live_site, tmp_path):
    run = FakeRun(live_site / "data" / "run.parquet")
    for _ in range(3):
        run.part()
    builder = Builder(live_site, out=tmp_path / "preview", preview=True)
    builder.build()
    second = run.folder / "part-00002.parquet"
    frame = pd.read_parquet(second)
    frame["value"] = frame["value"] * 10 - 3
    frame.loc[frame.index[:4], "run"] = 7            # a dot the other parts never had
    tmp = run.folder / ".rewrite.tmp"
    frame.to_parquet(tmp)
    os.replace(tmp, second)
    os.utime(second, ns=(1, 1))                      # a new stamp even within the clock's resolution
    builder.build(in_place=True)
    rewritten = page(tmp_path / "preview")
    assert rewritten == cold(live_site, tmp_path, "rewrite")
    (run.folder / "part-00001.parquet").unlink()
    builder.build(in_place=True)
    assert page(tmp_path / "preview") == cold(live_site, tmp_path, "remove") != rewritten


WRITER = textwrap.dedent("""\
    import sys, time
    data = open(sys.argv[1], "rb").read()
    with open(sys.argv[2], "wb") as out:
        out.write(data[: len(data) // 2])
        out.flush()
        print("half", flush=True)
        time.sleep(60)
    """)


def test_a_writer_killed_in_the_middle_of_a_part_leaves_the_last_good_drawing(live_site, tmp_path):
    run = FakeRun(live_site / "data" / "run.parquet")
    run.part()
    run.part()
    builder = Builder(live_site, out=tmp_path / "preview", preview=True)
    builder.build()
    before = page(tmp_path / "preview")
    source = run.folder / "part-00002.parquet"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source),
                               str(run.folder / f".part-00003.parquet.{os.getpid()}.tmp")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "half"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    result = builder.build(in_place=True)
    assert not [p for p in result.problems if p.level == "error"]
    assert page(tmp_path / "preview") == before


def test_parts_whose_columns_differ_get_the_pandas_paths_message(live_site, tmp_path):
    run = FakeRun(live_site / "data" / "run.parquet")
    run.part()
    frame = pd.read_parquet(run.folder / "part-00001.parquet")
    frame["run"] = frame["run"].astype(str) + "x"   # text runs after numbers
    frame["step"] += 100
    frame.to_parquet(run.folder / "part-00002.parquet")
    with pytest.raises(BuildError) as err:
        Builder(live_site, out=tmp_path / "preview", preview=True).build()
    assert any("content/live.md:6: data/run.parquet: the parts of the running experiment do not fit together"
               in str(p) for p in err.value.problems)
