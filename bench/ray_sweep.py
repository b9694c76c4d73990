#!/usr/bin/env python3
"""The hyperparameter sweep in one process, in plain processes and on a local Ray, and Ray's cost per task.

Question: on this machine's cores, how much faster does ``hpo_sweep`` finish when its runs go out as
Ray tasks (``--parallel ray``, a local Ray started inside the script) than in one process
(``--parallel none``)? How close is that to what the cores give without Ray at all? And what does
one Ray task cost beyond its work?

* sweep: ``python -m experiments.hpo_sweep --preset PRESET --device cpu`` three ways, each a fresh
  process timed from start to exit (imports, Ray's start and the workers' imports included, since
  a user waits for them too), alternated ``--repeats`` times; the tables are checked identical:
  - one process (``--parallel none``), the script as a user without Ray runs it;
  - the ceiling: the same script with its tasks handed to two plain worker processes
    (multiprocessing, started fresh like Ray's, each task to whichever is free): what two cores
    give without Ray;
  - a local Ray (``--parallel ray``).
  The ratio is one-process wall / Ray wall (the goal on 2 cores: at least 1.7). For the parallel
  runs a timeline from the task spans the provenance records: seconds from the process's start to
  the first task (Python, imports, Ray's start, the workers' start), the tasks' span and the
  workers' busy share in it, the tail (last worker's end minus the first's) and the seconds after
  the last task (tables, provenance, Ray's shutdown). CPU: user + system of the run and every
  process it waited for (Ray's daemons are not waited for, so Ray's figure is low).
* overhead: ``--tasks`` empty tasks on a local Ray (started once, workers warmed by a first batch):
  (wall of the batch) / tasks x CPUs = the CPU-seconds Ray spends per task, and the round trip of
  one task alone.

Other processes on the machine skew both: the script prints the load average before and after;
compare runs taken close together (the alternation), not seconds across hours.

    python bench/ray_sweep.py --preset small --repeats 2
    python bench/ray_sweep.py --only overhead --tasks 400
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATIO = 1.7   # issue 18: hpo_sweep small, one process vs local Ray, on 2 cores
CEILING_PROCESSES = 2
MODES = ("none", "processes", "ray")
LABEL = {"none": "one process", "processes": f"{CEILING_PROCESSES} plain processes", "ray": "local Ray"}


def run_sweep(preset: str, mode: str, out: Path) -> dict:
    """One run of the sweep as a user starts it, in a fresh process: ``mode`` is ``none`` (one
    process), ``ray`` (a local Ray) or ``processes`` (the ceiling: plain processes, no Ray).
    Returns its wall time, the CPU time of it and every process it waited for, and when it began."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    hpo = ["--preset", preset, "--device", "cpu", "--out", str(out)]
    if mode == "processes":
        command = [sys.executable, str(Path(__file__).resolve()), "--plain-processes", str(CEILING_PROCESSES), "--", *hpo]
    else:
        command = [sys.executable, "-m", "experiments.hpo_sweep", "--parallel", mode, *hpo]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began, t0 = time.time(), time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"hpo_sweep ({mode}) failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "began": began}


def timeline(run: dict, how: dict) -> dict:
    """Where a parallel run's wall time went, from the task spans its provenance records: seconds
    from the process's start to the first task's start (Python, imports, Ray's start, the
    workers' start), the span of the tasks, the busy share of the workers while tasks ran, and
    the seconds after the last task (writing the tables)."""
    spans = [s for s in how.get("task_spans") or [] if s]
    if not spans:
        return {}
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    busy = sum(s[1] - s[0] for s in spans)
    slots = how.get("cpus") or how.get("processes") or 1   # one process: one slot
    per_worker = {}
    for worker, s in zip(how.get("workers") or [], how.get("task_spans") or []):
        if s:
            per_worker.setdefault(worker, []).append(s)
    firsts = sorted(min(x[0] for x in v) for v in per_worker.values())
    lasts = sorted(max(x[1] for x in v) for v in per_worker.values())
    out = {"to_first_task_s": first - run["began"], "first_tasks_s": [round(f - run["began"], 2) for f in firsts],
           "tasks_span_s": last - first, "busy_s": busy, "busy_share": busy / (slots * (last - first)),
           "tail_s": lasts[-1] - lasts[0] if len(lasts) > 1 else 0.0,
           "after_tasks_s": run["began"] + run["wall_s"] - last}
    if how.get("ray_started"):
        out["ray_start_from_process_start_s"] = [round(t - run["began"], 2) for t in how["ray_started"]]
    return out


def sweep(preset: str, repeats: int) -> dict:
    import pandas as pd

    runs = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for mode in MODES:    # alternated, so drifts in the machine's speed hit every way alike
                out = Path(tmp) / f"{mode}{r}"
                run = run_sweep(preset, mode, out)
                how = json.loads((out / "hpo_sweep.provenance.json").read_text())["results"]["parallel"]
                run["timeline"] = timeline(run, how)
                run["ray_start_s"] = how.get("ray_start_s")
                runs[mode].append(run)
                t = run["timeline"]
                extra = (f"; first task {t['to_first_task_s']:.1f} s after start, tasks {t['tasks_span_s']:.1f} s "
                         f"({100 * t['busy_share']:.0f}% busy), tail {t['tail_s']:.1f} s, after {t['after_tasks_s']:.1f} s"
                         if t else "")
                if run["ray_start_s"]:
                    at = t.get("ray_start_from_process_start_s") or [float("nan")] * 2
                    extra += f"; Ray start {run['ray_start_s']:.1f} s ({at[0]:.1f} to {at[1]:.1f} s after the process's start)"
                print(f"  {LABEL[mode]:18s} run {r + 1}: {run['wall_s']:6.1f} s wall, {run['cpu_s']:6.1f} s CPU{extra}",
                      flush=True)
        tables = {mode: pd.read_parquet(Path(tmp) / f"{mode}0" / "hpo_sweep.parquet") for mode in MODES}
        how = json.loads((Path(tmp) / "ray0" / "hpo_sweep.provenance.json").read_text())["results"]["parallel"]
    best = {mode: min(r["wall_s"] for r in runs[mode]) for mode in MODES}
    return {"preset": preset, "runs": runs, "best_s": best,
            "ratio_best": best["none"] / best["ray"], "ceiling_ratio": best["none"] / best["processes"],
            "ray_vs_ceiling": best["processes"] / best["ray"],
            "tables_identical": all(tables["none"].equals(tables[m]) for m in MODES),
            "ray_start_s": [r["ray_start_s"] for r in runs["ray"]], "ray_cpus": how.get("cpus")}


def _call_task(job):
    """A task in a plain worker process: ``(index, "module:function", shared, task)``."""
    from experiments._parallel import _function

    i, function, shared, task = job
    began = time.time()
    result = _function(function)(shared, task)
    return i, result, f"{os.getpid()}", (began, time.time())


def plain_processes(processes: int, argv: list) -> None:
    """``hpo_sweep`` with its tasks handed to ``processes`` plain worker processes (multiprocessing,
    started fresh like Ray's workers, each task to whichever is free): what these cores give
    without Ray, the ceiling a local Ray is measured against."""
    import multiprocessing

    import experiments._parallel as parallel
    from experiments import hpo_sweep

    def run_tasks(function, shared, tasks, args, on_result, **_):
        info = {"mode": "plain processes", "processes": processes, "tasks": len(tasks),
                "workers": [None] * len(tasks), "task_spans": [None] * len(tasks)}
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            jobs = [(i, function, shared, task) for i, task in enumerate(tasks)]
            for i, result, worker, span in pool.imap_unordered(_call_task, jobs):
                info["workers"][i], info["task_spans"][i] = worker, [round(t, 3) for t in span]
                on_result(i, result)
        return info

    parallel.run_tasks = run_tasks
    hpo_sweep.main(argv)


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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--plain-processes"]:   # the ceiling's own process (see run_sweep)
        return plain_processes(int(argv[1]), argv[3:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small", "full"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--only", choices=["sweep", "overhead"], default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    print(f"load average {' '.join(f'{v:.2f}' for v in result['load_before'])} on {result['cpus']} CPUs", flush=True)
    if args.only in (None, "overhead"):
        result["overhead"] = overhead(args.tasks)
        o = result["overhead"]
        print(f"overhead: {o['tasks']} empty tasks in {o['batch_s']:.2f} s = {o['per_task_ms']:.2f} ms each "
              f"({o['cpu_ms_per_task']:.1f} CPU-ms), one task's round trip {o['round_trip_ms_median']:.1f} ms, "
              f"Ray start {o['ray_start_s']:.1f} s", flush=True)
    if args.only in (None, "sweep"):
        result["sweep"] = sweep(args.preset, args.repeats)
        s = result["sweep"]
        b = s["best_s"]
        print(f"sweep {s['preset']} (best of {args.repeats}): one process {b['none']:.1f} s; "
              f"{LABEL['processes']} (the ceiling, no Ray) {b['processes']:.1f} s = {s['ceiling_ratio']:.2f}x; "
              f"local Ray ({s['ray_cpus']} CPUs) {b['ray']:.1f} s = {s['ratio_best']:.2f}x "
              f"({100 * s['ray_vs_ceiling']:.0f}% of the ceiling's speed); Ray's start "
              f"{', '.join(f'{v:.1f}' for v in s['ray_start_s'])} s; tables identical: {s['tables_identical']}")
        goal = GOAL_RATIO if s["preset"] == "small" else None
        met = s["ratio_best"] >= GOAL_RATIO
        print(f"goal one-process wall / local-Ray wall >= {GOAL_RATIO}x on 2 cores (hpo_sweep small): "
              + (f"measured {s['ratio_best']:.2f}x: {'met' if met else 'NOT met'} "
                 f"(the ceiling on this machine now: {s['ceiling_ratio']:.2f}x)" if goal else
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
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
