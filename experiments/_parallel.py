"""Independent runs fanned out as Ray tasks, or run one after another in this process.

A script hands :func:`run_tasks` a function (by its module path, so Ray ships a reference, not the
code), one value every task shares and a list of tasks. Each task returns its results; the driver
gets them as tasks finish, in whatever order, and writes the tables itself. So:

* ``--parallel auto`` (the default): a local Ray on this machine's cores when ``ray`` is installed
  (``pip install -e '.[cluster]'``), one process otherwise. The ``tiny`` preset runs in one process:
  its seconds of work would not pay for starting Ray.
* ``--parallel ray``: Ray or a one-line error saying how to install it; ``--parallel none``: one process.
* ``--ray-address ADDRESS``: join a running cluster (``ray start --head`` on one machine, ``ray start
  --address`` on the others). The code goes along as Ray's ``working_dir`` (this repository without
  its data, site and tests), so the other machines need only the same Python packages.

A task whose worker dies (killed, out of memory, a node lost) is run again by Ray, up to
``RETRIES`` times; a task's results only reach the driver when the whole task has finished, and
the driver keeps the first result of each task, so a finished run is never lost or counted twice.
Results must not depend on which process computes them: every run seeds itself from the script's
seed and its own index.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import time

from experiments._common import ROOT, ScriptError, require

RETRIES = 3   # runs of a task after its worker died, before the script gives up
# what a cluster's working_dir leaves out: tables, the built site, caches, tests
EXCLUDES = ["data/", "_site/", ".git/", "tests/", ".sitegen-cache/", "*.parquet", "__pycache__/", "*.egg-info/",
            ".venv/", "build/", ".pytest_cache/"]


def add_arguments(p) -> None:
    p.add_argument("--parallel", choices=["auto", "ray", "none"], default="auto",
                   help="auto: a local Ray when ray is installed (not for --preset tiny); ray: require it; "
                        "none: one process")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join a running Ray cluster (host:port, or 'auto') instead of starting a local one")
    p.add_argument("--workers", type=int, default=0,
                   help="CPUs the local Ray uses (default: all of this machine's)")


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def uses_ray(args) -> bool:
    """Whether this run fans out through Ray (a missing ``ray`` where one was asked for ends here)."""
    if args.ray_address or args.parallel == "ray":
        require("ray", extra="cluster")
        return True
    if args.parallel == "none":
        return False
    return args.preset != "tiny" and ray_installed()


def _function(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def run_tasks(function: str, shared, tasks: list, args, on_result, *, task_cpus: float = 1.0) -> dict:
    """Call ``function(shared, task)`` for every task; ``on_result(index, result)`` as each ends.

    ``function`` is ``"module:name"``. Returns how the tasks ran (for provenance): mode, nodes,
    CPUs, the seconds Ray took to start, and which worker process (``host:pid``) delivered each task.
    """
    if not uses_ray(args):
        fn = _function(function)
        for i, task in enumerate(tasks):
            on_result(i, fn(shared, task))
        return {"mode": "one process", "tasks": len(tasks)}
    return _run_on_ray(function, shared, tasks, args, on_result, task_cpus)


def _call(function: str, shared, task):
    """What a Ray worker runs: the task, and who ran it (so a test can tell a retried task's
    worker from the one that died)."""
    import socket

    return {"result": _function(function)(shared, task), "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _run_on_ray(function, shared, tasks, args, on_result, task_cpus) -> dict:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # nothing leaves the machine
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    try:
        if args.ray_address:
            runtime_env = {"working_dir": str(ROOT), "excludes": EXCLUDES, "env_vars": threads}
            ray.init(address=args.ray_address, runtime_env=runtime_env, logging_level="WARNING",
                     log_to_driver=False)
        else:
            path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=args.workers or os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False, object_store_memory=128 * 1024 ** 2,
                     runtime_env={"env_vars": {**threads, "PYTHONPATH": path}})
    except Exception as exc:  # noqa: BLE001 - Ray raises plain Exception when a node times out starting
        where = f"the Ray cluster at {args.ray_address}" if args.ray_address else "a local Ray"
        raise ScriptError(f"could not start or join {where}: {str(exc).splitlines()[0]}") from None
    started = time.perf_counter() - t0
    info = {"mode": "ray", "address": args.ray_address or "local", "tasks": len(tasks),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": int(ray.cluster_resources().get("CPU", 0)), "ray_start_s": round(started, 2),
            "retries_allowed": RETRIES}
    remote = ray.remote(num_cpus=task_cpus, max_retries=RETRIES)(_call)
    workers = info["workers"] = [None] * len(tasks)
    try:
        shared_ref = ray.put(shared)
        refs = [remote.remote(function, shared_ref, task) for task in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        pending, delivered = list(refs), set()
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=10.0)
            for ref in ready:
                i = index[ref]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                    raise ScriptError(f"task {i} of {len(tasks)} failed (after up to {RETRIES} retries "
                                      f"when its worker died): {first}") from None
                if i in delivered:   # never twice, whatever Ray does
                    continue
                delivered.add(i)
                workers[i] = result["worker"]
                on_result(i, result["result"])
    finally:
        ray.shutdown()
    return info
