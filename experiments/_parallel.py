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

import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
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
    try:
        return importlib.util.find_spec("ray") is not None
    except ImportError:
        return False


def uses_ray(args) -> bool:
    """Whether this run fans out through Ray (a missing ``ray`` where one was asked for ends here)."""
    if args.ray_address or args.parallel == "ray":
        if not ray_installed():
            require("ray", extra="cluster")   # says how to install it
        return True
    if args.parallel == "none":
        return False
    return args.preset != "tiny" and ray_installed()


def _function(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Cluster:
    """Ray, being started (or joined) in a background thread while the driver prepares its tasks:
    the driver's own imports and set-up overlap Ray's start instead of following it.

    ``start(args)`` gives one (or ``None`` when this run does not use Ray); hand it to
    :func:`run_tasks`, which stops it in the background once the tasks are done, and :meth:`close`
    it in a ``finally`` (waits for Ray to be stopped; also stops a Ray whose run failed before its
    tasks).

    The thread lives until Ray is stopped, and stops it itself: Ray's processes are bound to die
    with the thread that started them (Linux's parent-death signal is per thread).
    """

    def __init__(self, args):
        self.args, self.info, self.error = args, None, None
        self._ready, self._release = threading.Event(), threading.Event()
        _quiet_thread_warning()
        if threading.current_thread() is threading.main_thread():
            # what Ray itself does when started from the main thread: SIGTERM ends the script
            # through its finally blocks, which stop Ray
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        self.thread = threading.Thread(target=self._start, name="ray-start", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        try:
            self.info = _init_ray(self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by wait()
            self.error = exc
        finally:
            self._ready.set()
        self._release.wait()
        if self.info is not None:
            import ray

            ray.shutdown()

    def wait(self) -> dict:
        self._ready.wait()
        if self.error is not None:
            raise self.error
        return self.info

    def release(self) -> None:
        """Stop Ray in the background (it takes a second or two of waiting on its processes),
        while the driver writes its tables; :meth:`close` waits for it."""
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self.thread.join()


def _quiet_thread_warning() -> None:
    """Ray warns that it sets no SIGTERM handler when started off the main thread; the Cluster
    sets one itself, so the warning would only mislead."""
    import logging

    class Drop(logging.Filter):
        def filter(self, record):
            return not record.getMessage().startswith("SIGTERM handler is not set")

    logger = logging.getLogger("ray._private.worker")
    if not any(type(f).__name__ == "Drop" for f in logger.filters):
        logger.addFilter(Drop())


def start(args) -> Cluster | None:
    """Begin starting (or joining) Ray when this run uses it; ``None`` otherwise."""
    return Cluster(args) if uses_ray(args) else None


def run_tasks(function: str, shared, tasks: list, args, on_result, *, task_cpus: float = 1.0,
              cluster: Cluster | None = None) -> dict:
    """Call ``function(shared, task)`` for every task; ``on_result(index, result)`` as each ends.

    ``function`` is ``"module:name"``. Returns how the tasks ran (for provenance): mode, nodes,
    CPUs, the seconds Ray took to start, and which worker process (``host:pid``) delivered each task.
    ``cluster`` is a Ray already being started by :func:`start`; without one, one is started here
    when the run uses Ray.
    """
    if cluster is None and not uses_ray(args):
        fn = _function(function)
        spans = []
        for i, task in enumerate(tasks):
            began = time.time()
            result = fn(shared, task)
            spans.append([round(began, 3), round(time.time(), 3)])
            on_result(i, result)
        return {"mode": "one process", "tasks": len(tasks), "task_spans": spans}
    own = cluster is None
    cluster = cluster or Cluster(args)
    try:
        return _run_on_ray(function, shared, tasks, cluster.wait(), on_result, task_cpus)
    finally:
        # a cluster handed in is stopped in the background, and its owner waits for that at its end
        cluster.close() if own else cluster.release()


def _call(function: str, shared, task):
    """What a Ray worker runs: the task, and who ran it (so a test can tell a retried task's
    worker from the one that died)."""
    import socket

    began = time.time()
    result = _function(function)(shared, task)
    return {"result": result, "worker": f"{socket.gethostname()}:{os.getpid()}", "span": (began, time.time())}


# A worker's torch, BLAS and OpenMP use one thread: the tasks already fill every core.
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _init_ray(args) -> dict:
    """Start a local Ray (or join ``args.ray_address``); returns what provenance records of it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # nothing leaves the machine
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    t0, began = time.perf_counter(), time.time()
    import ray

    try:
        if args.ray_address:
            runtime_env = {"working_dir": str(ROOT), "excludes": EXCLUDES, "env_vars": THREADS}
            ray.init(address=args.ray_address, runtime_env=runtime_env, logging_level="WARNING",
                     log_to_driver=False)
        else:
            # The local workers inherit the raylet's environment, and the raylet this process's: so
            # the settings go there for the moment of the start, not into a runtime_env, whose
            # workers Ray would start only when the first task comes (its prestarted ones lack it).
            path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
            with _environment({**THREADS, "PYTHONPATH": path}):
                # worker_niceness 0: Ray runs its workers at nice 15 by default, below everything
                # else on the machine; a sweep is the work here, at the priority of one process.
                ray.init(num_cpus=args.workers or os.cpu_count(), include_dashboard=False,
                         logging_level="WARNING", log_to_driver=False, object_store_memory=128 * 1024 ** 2,
                         _system_config={"worker_niceness": 0})
    except Exception as exc:  # noqa: BLE001 - Ray raises plain Exception when a node times out starting
        where = f"the Ray cluster at {args.ray_address}" if args.ray_address else "a local Ray"
        raise ScriptError(f"could not start or join {where}: {str(exc).splitlines()[0]}") from None
    started = time.perf_counter() - t0
    return {"mode": "ray", "address": args.ray_address or "local",
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": int(ray.cluster_resources().get("CPU", 0)), "ray_start_s": round(started, 2),
            "ray_started": [round(began, 3), round(began + started, 3)], "retries_allowed": RETRIES}


@contextlib.contextmanager
def _environment(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_on_ray(function, shared, tasks, started: dict, on_result, task_cpus) -> dict:
    import ray

    info = {**started, "tasks": len(tasks)}
    remote = ray.remote(num_cpus=task_cpus, max_retries=RETRIES)(_call)
    workers = info["workers"] = [None] * len(tasks)
    spans = info["task_spans"] = [None] * len(tasks)   # (start, end) of each task in its worker, epoch seconds
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
            spans[i] = [round(t, 3) for t in result["span"]]
            on_result(i, result["result"])
    return info
