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


def parse_args(description: str, argv=None, extra=None) -> argparse.Namespace:
    """``--preset small|full|tiny``, ``--device auto|cpu|cuda``, ``--seed``, ``--out``, ``--live``.

    ``tiny`` is what the tests use: seconds on one CPU core, same code path.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--preset", choices=["tiny", "small", "full"], default="small")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DATA, help="where tables, templates and provenance go")
    p.add_argument("--live", action="store_true",
                   help="stream traced rows while training, for `sitegen serve` to show live")
    if extra:
        extra(p)
    return p.parse_args(argv)


def torch_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def jax_device(name: str):
    import jax

    if name == "auto":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            return jax.devices("cpu")[0]
    return jax.devices("gpu" if name == "cuda" else name)[0]


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
            "command": " ".join([Path(sys.executable).name, "-m", f"experiments.{script.stem}", *sys.argv[1:]]),
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
