"""What every experiment script shares: its command line, device choice and provenance sidecar.

Kept deliberately small so each script still reads top to bottom (the nanoGPT way): settings at the
top, a ``main()`` that trains and writes ``data/``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def parse_args(description: str, argv=None, extra=None, parallel: bool = False) -> argparse.Namespace:
    """``--preset small|full|tiny``, ``--device auto|cpu|cuda``, ``--seed``, ``--out``, ``--live``
    (and with ``parallel``, the options of :mod:`experiments._parallel`: ``--parallel``,
    ``--ray-address``, ``--workers``).

    ``tiny`` is what the tests use: seconds on one CPU core, same code path.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--preset", choices=["tiny", "small", "full"], default="small")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DATA, help="where tables, templates and provenance go")
    p.add_argument("--live", action="store_true",
                   help="stream traced rows while training, for `sitegen serve` to show live")
    if parallel:
        from experiments._parallel import add_arguments

        add_arguments(p)
    if extra:
        extra(p)
    return p.parse_args(argv)


def site_path(path) -> str:
    """``path`` as written into provenance: relative to the site (this repository) when inside it,
    so a record means the same on every machine; as given otherwise."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _command_arg(arg: str) -> str:
    if arg.startswith("/") and Path(arg).exists():
        return site_path(arg)
    if arg.startswith("--") and "=/" in arg:
        key, _, value = arg.partition("=")
        return f"{key}={_command_arg(value)}"
    return arg


class ScriptError(SystemExit):
    """A mistake in how a script was run (a device that is not here, an extra not installed): the
    script prints one line saying what to do instead and exits with status 2, no traceback."""

    def __init__(self, message: str):
        script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-m") else "experiment"
        print(f"{script}: error: {message}", file=sys.stderr, flush=True)
        super().__init__(2)


def require(module: str, extra: str = "experiments", package: str | None = None, *, load: bool = True):
    """Import ``module`` or stop with the install command of the extra that brings it. With
    ``load=False`` only check that it is installed (for a process that hands the work elsewhere
    and need not pay for the import)."""
    import importlib
    import importlib.util

    try:
        if load:
            return importlib.import_module(module)
        if importlib.util.find_spec(module) is not None:
            return None
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there, something it imports is broken: show that
    raise ScriptError(f"this script needs {package or module}, which is not installed; "
                      f"install it with: pip install -e '.[{extra}]'")


def _device_choice_error(name: str, here: list[str], library: str) -> ScriptError:
    return ScriptError(f"--device {name}: {library} sees no such device here (devices: {', '.join(here)}); "
                       f"pass --device {here[0]} or --device auto")


def torch_device(name: str):
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; anything else ends in one line."""
    torch = require("torch")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    here = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    try:
        device = torch.device(name)
    except RuntimeError:
        raise _device_choice_error(name, here, "torch") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "was built without CUDA" if torch.version.cuda is None else "finds no CUDA GPU"
            raise ScriptError(f"--device {name}: this torch ({torch.__version__}) {why} (devices: "
                              f"{', '.join(here)}); pass --device cpu or --device auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise _device_choice_error(name, here, "torch")
    elif device.type != "cpu":
        raise _device_choice_error(name, here, "torch")
    return device


def jax_device(name: str):
    """The JAX device for ``auto``, ``cpu``, ``cuda`` / ``gpu`` or ``cuda:N``."""
    jax = require("jax")
    if name == "auto":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            return jax.devices("cpu")[0]
    here = [str(d) for d in jax.devices()]
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "gpu") or (index and not index.isdigit()):
        raise _device_choice_error(name, here, "JAX")
    try:
        devices = jax.devices("gpu" if kind in ("cuda", "gpu") else "cpu")
    except RuntimeError:
        raise ScriptError(f"--device {name}: this JAX ({jax.__version__}) has no GPU backend (devices: "
                          f"{', '.join(here)}); pass --device cpu or --device auto") from None
    if int(index or 0) >= len(devices):
        raise _device_choice_error(name, here, "JAX")
    return devices[int(index or 0)]


class Progress:
    """Work done so far, for long runs: a bar redrawn in place on a terminal (done / total, rate,
    time left), plain lines every ``every`` seconds otherwise (CI logs, files), and a last line.

    Written here rather than taken from tqdm: tqdm writes carriage-return bars into logs that are
    not terminals, and CI logs want whole lines; this is forty lines with nothing to install.
    """

    def __init__(self, total: int, what: str = "runs", *, label: str | None = None, stream=None,
                 every: float = 15.0, tty: bool | None = None):
        self.total, self.what, self.done = int(total), what, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.label = label or (Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "progress")
        self.every = every
        self.started = self.last = time.monotonic()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = "?" if left != left else time.strftime("%H:%M:%S" if left >= 3600 else "%M:%S", time.gmtime(left))
        return (f"{self.done}/{self.total} {self.what}, {rate:.2f}/s, "
                f"{time.strftime('%M:%S', time.gmtime(elapsed))} elapsed, {eta} left")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty:
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self._line()}\x1b[K")
            self.stream.flush()
        elif now - self.last >= self.every or self.done == self.total or self.done == n:
            self.last = now
            print(f"{self.label}: {self._line()}", file=self.stream, flush=True)

    def write(self, text: str) -> None:
        """Print a line without breaking the bar."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        print(text, flush=True)
        if self.tty and self.done:
            self.update(0)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def script_hash(script: Path) -> str:
    return hashlib.sha256(Path(script).read_bytes()).hexdigest()


def library_versions(*names: str) -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for n in names:
        try:
            versions[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass
class Provenance:
    """Written as ``data/<script>.provenance.json`` beside the tables a script made.

    ``sitegen data`` reads it to tell which tables came from which script and whether that
    script changed since (``script_sha256``).
    """

    script: Path
    args: argparse.Namespace
    device: str = "cpu"
    libraries: tuple[str, ...] = ("numpy", "pandas", "pyarrow")
    outputs: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def write(self) -> Path:
        script = Path(self.script).resolve()
        rel = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
        record = {
            "script": str(rel),
            "script_sha256": script_hash(script),
            "git_commit": git_commit(),
            "preset": self.args.preset,
            "device": self.device,
            "seed": self.args.seed,
            "versions": library_versions(*self.libraries),
            "wall_time_s": round(time.time() - self.started, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, "-m", f"experiments.{script.stem}",
                                 *(_command_arg(a) for a in sys.argv[1:])]),
            "outputs": sorted(self.outputs),
            "results": self.results,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        }
        out = Path(self.args.out) / f"{script.stem}.provenance.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(out)
        return out

    def output(self, path: Path) -> Path:
        """Note a file this run wrote (relative to the data folder) and return it."""
        self.outputs.append(Path(path).name)
        return path
