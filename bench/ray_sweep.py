#!/usr/bin/env python3
"""The hyperparameter sweep in one process against the same sweep on a local Ray, and Ray's cost per task.

Question: on this machine's cores, how much faster does ``hpo_sweep`` finish when its runs go out as
Ray tasks (``--parallel ray``, a local Ray started inside the script) than in one process
(``--parallel none``)? And what does one Ray task cost beyond its work?

* sweep: ``python -m experiments.hpo_sweep --preset PRESET`` both ways, as subprocesses, wall time
  from start to exit (Ray's start-up and the workers' imports included, since a user waits for them
  too), alternating the two ways ``--repeats`` times; the tables are checked to be identical.
  The ratio is one-process wall / Ray wall (the goal on 2 cores: at least 1.7).
* overhead: ``--tasks`` empty tasks on a local Ray (started once, workers warmed by a first batch):
  (wall of the batch) / tasks x CPUs = the CPU-seconds Ray spends per task, and the round trip of
  one task alone.

Other processes on the machine skew both: the script reports the load average before and after.

    python bench/ray_sweep.py --preset small --repeats 1
    python bench/ray_sweep.py --only overhead --tasks 400
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATIO = 1.7   # issue 18: hpo_sweep small, one process vs local Ray, on 2 cores


def run_sweep(preset: str, mode: str, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "experiments.hpo_sweep", "--preset", preset, "--device", "cpu",
                           "--parallel", mode, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hpo_sweep --parallel {mode} failed:\n{proc.stderr[-3000:]}")
    return wall


def sweep(preset: str, repeats: int) -> dict:
    import pandas as pd

    walls = {"none": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for mode in ("none", "ray"):
                walls[mode].append(run_sweep(preset, mode, Path(tmp) / f"{mode}{r}"))
                print(f"  {mode:4s} run {r + 1}: {walls[mode][-1]:.1f} s", flush=True)
        same = pd.read_parquet(Path(tmp) / "none0" / "hpo_sweep.parquet").equals(
            pd.read_parquet(Path(tmp) / "ray0" / "hpo_sweep.parquet"))
        how = json.loads((Path(tmp) / "ray0" / "hpo_sweep.provenance.json").read_text())["results"]["parallel"]
    one, ray = min(walls["none"]), min(walls["ray"])
    return {"preset": preset, "one_process_s": walls["none"], "ray_s": walls["ray"], "ratio_best": one / ray,
            "tables_identical": bool(same), "ray_start_s": how.get("ray_start_s"), "ray_cpus": how.get("cpus")}


def noop(x):
    return x


def overhead(tasks: int) -> dict:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             object_store_memory=128 * 1024 ** 2)
    start = time.perf_counter() - t0
    try:
        remote = ray.remote(num_cpus=1)(noop)
        ray.get([remote.remote(i) for i in range(2 * os.cpu_count())])   # workers up and warm
        t0 = time.perf_counter()
        ray.get([remote.remote(i) for i in range(tasks)])
        batch = time.perf_counter() - t0
        singles = []
        for i in range(20):
            t0 = time.perf_counter()
            ray.get(remote.remote(i))
            singles.append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    cpus = os.cpu_count()
    return {"tasks": tasks, "ray_start_s": start, "batch_s": batch, "per_task_ms": 1000 * batch / tasks,
            "cpu_ms_per_task": 1000 * batch * cpus / tasks, "round_trip_ms_median": 1000 * sorted(singles)[10]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small", "full"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--only", choices=["sweep", "overhead"], default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    if args.only in (None, "overhead"):
        result["overhead"] = overhead(args.tasks)
        o = result["overhead"]
        print(f"overhead: {o['tasks']} empty tasks in {o['batch_s']:.2f} s = {o['per_task_ms']:.2f} ms each "
              f"({o['cpu_ms_per_task']:.1f} CPU-ms), one task's round trip {o['round_trip_ms_median']:.1f} ms, "
              f"Ray start {o['ray_start_s']:.1f} s", flush=True)
    if args.only in (None, "sweep"):
        result["sweep"] = sweep(args.preset, args.repeats)
        s = result["sweep"]
        print(f"sweep {s['preset']}: one process {min(s['one_process_s']):.1f} s, local Ray ({s['ray_cpus']} CPUs) "
              f"{min(s['ray_s']):.1f} s: {s['ratio_best']:.2f}x; tables identical: {s['tables_identical']}")
        goal = GOAL_RATIO if s["preset"] == "small" else None
        met = s["ratio_best"] >= GOAL_RATIO
        print(f"goal one-process wall / local-Ray wall >= {GOAL_RATIO}x on 2 cores (hpo_sweep small): "
              + (f"measured {s['ratio_best']:.2f}x: {'met' if met else 'NOT met'}" if goal else
                 f"not measured (this run is preset {s['preset']}; the goal is for small)"), flush=True)
        result["goal_met"] = met if goal else None
    if "overhead" in result:
        print(f"Ray's overhead per task (issue: report it): {result['overhead']['per_task_ms']:.2f} ms wall, "
              f"{result['overhead']['cpu_ms_per_task']:.1f} CPU-ms; round trip "
              f"{result['overhead']['round_trip_ms_median']:.1f} ms")
    result["load_after"] = os.getloadavg()
    print(f"load average before {' '.join(f'{v:.2f}' for v in result['load_before'])}, after "
          f"{' '.join(f'{v:.2f}' for v in result['load_after'])} on {result['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
