"""Reading a TensorBoard log folder: sitegen.logs against TensorBoard's own loader, and the imported parquet.

    python bench/log_readers.py                       # 60 runs x 10,000 steps x 20 tags (12M scalars)
    python bench/log_readers.py --steps 500 --keep /tmp/tb   # smaller, keep the folder for reruns

The folder is written the way PyTorch's SummaryWriter writes it (one event per scalar, simple_value,
TensorBoard's EventFileWriter), one run per ``lr-K/seed-S`` folder. Each reader runs in a fresh
process (so no import or checksum patch carries over), timed from the call to a complete table:

* ``sitegen.logs.read``: the reader the build and ``sitegen data import`` use;
* TensorBoard's ``EventAccumulator`` with ``size_guidance={"scalars": 0}`` (keep every value; the
  default keeps a 10,000-value sample per tag), ``Reload()`` and ``Scalars(tag)`` for every tag of every
  run: what a script using TensorBoard's loader does, stopping at its lists of ScalarEvents;
* the same with google-crc32c's checksums patched in, to separate the checksum from the rest;
* ``pandas.read_parquet`` of the table ``sitegen data import`` writes (and the import's own time).

Each is reported in CPU seconds of its process (comparable on a shared, loaded machine) and wall seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_run(folder: str, steps: int, tags: int, seed: int) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from sitegen.logs.tensorboard import _use_fast_crc

    _use_fast_crc()   # the writer checksums each record too; only speeds up making the folder
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(size=(steps, tags)), axis=0)
    writer = EventFileWriter(folder, max_queue_size=100_000, flush_secs=1_000)
    names = [f"metric/{k:02d}" for k in range(tags)]
    t0 = 1.7e9
    for step in range(steps):
        for k in range(tags):
            writer.add_event(Event(wall_time=t0 + step, step=step,
                                   summary=Summary(value=[Summary.Value(tag=names[k], simple_value=values[step, k])])))
    writer.close()


def make_folder(root: Path, runs: int, steps: int, tags: int, workers: int) -> None:
    jobs = [(str(root / f"lr-{r % 6}" / f"seed-{r // 6}"), steps, tags, r) for r in range(runs)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_run, *zip(*jobs)))


READERS = {
    "sitegen": """
from sitegen import logs
df = logs.read(FOLDER)
rows = len(df)
""",
    "tensorboard": """
import os
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
rows = 0
for folder, dirs, files in sorted(os.walk(FOLDER)):
    if any(f.startswith("events.out.tfevents") for f in files):
        acc = EventAccumulator(folder, size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            rows += len(acc.Scalars(tag))
""",
    "parquet": """
import pandas as pd
df = pd.read_parquet(TABLE)
rows = len(df)
""",
}


#: imported before the clock starts, in every reader's process: the time is reading, not importing
PRELUDE = """
import pandas, pyarrow.parquet
import sitegen.logs, sitegen.logs.tensorboard
from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.compat.proto import event_pb2
from tensorboard.util import tensor_util
"""


def timed(name: str, folder: Path, table: Path, fast_crc: bool = False) -> tuple[float, float, int]:
    code = ("import time, json\nFOLDER, TABLE = %r, %r\n" % (str(folder), str(table))
            + ("from sitegen.logs.tensorboard import _use_fast_crc\n_use_fast_crc()\n" if fast_crc else "")
            + PRELUDE + "start, cpu = time.perf_counter(), time.process_time()\n" + READERS[name]
            + "print(json.dumps([time.perf_counter() - start, time.process_time() - cpu, rows]))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    seconds, cpu, rows = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, cpu, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes writing the folder")
    ap.add_argument("--keep", type=Path, help="write (or reuse) the log folder here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sitegen-logbench-"))
    folder = args.keep or tmp / "runs"
    try:
        if not (folder.is_dir() and any(folder.rglob("events.out.tfevents*"))):
            start = time.perf_counter()
            make_folder(folder, args.runs, args.steps, args.tags, args.workers)
            print(f"wrote {args.runs} runs x {args.steps:,} steps x {args.tags} tags in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        site = tmp / "site"
        site.mkdir()
        start = time.perf_counter()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "sitegen", "data", "import", str(folder), "runs", "--site", str(site)],
                       check=True, env=env, capture_output=True)
        imported = time.perf_counter() - start
        table = site / "data" / "runs.parquet"
        print(f"event files: {size / 2**20:.1f} MiB; imported parquet: {table.stat().st_size / 2**20:.1f} MiB "
              f"(sitegen data import, whole command: {imported:.1f} s)", flush=True)
        results = {}
        for label, name, fast in (("sitegen.logs.read", "sitegen", False),
                                  ("EventAccumulator (as shipped)", "tensorboard", False),
                                  ("EventAccumulator + google-crc32c", "tensorboard", True),
                                  ("read_parquet (imported)", "parquet", False)):
            times = []
            for _ in range(args.repeat):
                seconds, cpu, rows = timed(name, folder, table, fast)
                times.append((cpu, seconds))
            cpu, seconds = min(times)
            results[label] = cpu
            print(f"{label:34s} {cpu:9.2f} s CPU {seconds:9.2f} s wall  {rows:,} values "
                  f"({rows / cpu / 1e6:.2f} M/s of CPU)", flush=True)
        ours = results["sitegen.logs.read"]
        print(f"CPU time, sitegen.logs.read vs EventAccumulator: {results['EventAccumulator (as shipped)'] / ours:.2f}x faster; "
              f"vs the same with C checksums: {results['EventAccumulator + google-crc32c'] / ours:.2f}x; "
              f"read_parquet is {ours / results['read_parquet (imported)']:.0f}x faster than reading the logs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
