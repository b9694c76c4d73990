"""Which experiment made which table in data/, and whether it is out of date.

Every experiment script writes ``data/<script>.provenance.json`` beside its tables (see
``experiments/_common.py``): the script's path and sha256, the preset, the device, when, and the
files it wrote. From those this module answers three questions for ``sitegen data`` and the build:

* :func:`list_tables` — what is in data/, made by what, and is it stale (the script changed since,
  or is gone)?
* :func:`run_experiment` — run one script again (``python -m experiments.NAME --preset ...``).
* :func:`stale_warnings` — warnings for the tables a build used whose script changed since.

Builder side: no torch or jax, only the standard library.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sitegen.errors import Problem, SiteError, closest

SIDECAR_SUFFIX = ".provenance.json"
TABLE_SUFFIXES = (".parquet", ".csv", ".expr")
PRESETS = ("tiny", "small", "full")


@dataclass
class TableInfo:
    """One experiment's provenance record, or one file in data/ that no record claims.

    For an experiment: ``name`` is the script's stem and ``path`` its sidecar. For a file without
    provenance: ``name`` and ``path`` are the file's, ``script`` is None.
    """

    name: str
    path: str                              # relative to the site root
    script: str | None = None              # e.g. "experiments/silent_bug.py"
    preset: str | None = None
    device: str | None = None
    created: str | None = None
    outputs: list[str] = field(default_factory=list)   # file names in data/
    missing_outputs: list[str] = field(default_factory=list)
    stale: bool = False
    reason: str | None = None              # why stale (or why the record is unreadable)
    command: str | None = None
    results: dict = field(default_factory=dict)
    source: str | None = None              # for a table imported from a log (sitegen data import)
    reader: str | None = None              # the reader and its version, for an imported table

    @property
    def has_provenance(self) -> bool:
        return self.script is not None or self.source is not None

    @property
    def refresh(self) -> str:
        """The command that makes this table again."""
        if self.source is not None:
            return self.command or f"sitegen data import {self.source} {self.name}"
        return f"sitegen data run {self.name} --preset {self.preset or 'small'}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def read_sidecar(sidecar: Path, root: Path) -> TableInfo:
    """One provenance record, with ``stale`` worked out against the script on disk now."""
    name = sidecar.name[: -len(SIDECAR_SUFFIX)]
    info = TableInfo(name=name, path=_rel(sidecar, root))
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        info.stale = True
        info.reason = f"unreadable provenance record ({exc}); run the experiment again to rewrite it"
        return info
    if "import" in record and "script" not in record:
        return _imported(info, record, sidecar, root)
    info.script = str(record.get("script") or f"experiments/{name}.py")
    info.preset = record.get("preset")
    info.device = record.get("device")
    info.created = record.get("created")
    info.command = record.get("command")
    info.results = record.get("results") or {}
    info.outputs = [str(o) for o in record.get("outputs") or []]
    info.missing_outputs = [o for o in info.outputs if not (sidecar.parent / o).exists()]
    script = Path(info.script)
    if not script.is_absolute():
        script = root / script
    if not script.is_file():
        info.stale = True
        info.reason = f"{info.script} no longer exists"
    elif record.get("script_sha256") != _sha256(script):
        info.stale = True
        info.reason = f"{info.script} changed since these tables were made ({info.created or 'unknown time'})"
    return info


def _imported(info: TableInfo, record: dict, sidecar: Path, root: Path) -> TableInfo:
    """A table `sitegen data import` made from a log: stale when the log's files changed."""
    from sitegen.logs.importer import staleness

    details = record.get("import") if isinstance(record.get("import"), dict) else {}
    info.source = str(details.get("source") or "?")
    info.reader = str(details.get("reader_version") or details.get("reader") or "?")
    info.created = record.get("created")
    info.command = record.get("command")
    info.results = record.get("results") or {}
    info.outputs = [str(o) for o in record.get("outputs") or []]
    info.missing_outputs = [o for o in info.outputs if not (sidecar.parent / o).exists()]
    info.reason = staleness(record, root)
    info.stale = info.reason is not None
    return info


def list_tables(root: Path) -> list[TableInfo]:
    """Every provenance record in ``root/data`` (sorted by name), then every table or template
    there that no record lists among its outputs."""
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        return []
    infos = [read_sidecar(p, root) for p in sorted(data.glob("*" + SIDECAR_SUFFIX))]
    claimed = {o for info in infos for o in info.outputs}
    for path in sorted(data.iterdir()):
        if path.is_file() and path.suffix in TABLE_SUFFIXES and path.name not in claimed:
            infos.append(TableInfo(name=path.name, path=_rel(path, root)))
    return infos


def experiment_names(root: Path) -> list[str]:
    folder = Path(root) / "experiments"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))


def find_experiment(root: Path, name: str) -> Path:
    """The script ``experiments/NAME.py`` under ``root``; :class:`SiteError` with a did-you-mean
    hint when there is none. ``NAME`` may also be written ``NAME.py`` or ``experiments/NAME.py``."""
    root = Path(root)
    name = name[:-3] if name.endswith(".py") else name
    name = name.removeprefix("experiments.").removeprefix("experiments/")
    script = root / "experiments" / f"{name}.py"
    if script.is_file() and not name.startswith("_"):
        return script
    names = experiment_names(root)
    hint = closest(name, names)
    message = f"no experiment named {name!r}"
    if hint:
        message += f"; did you mean {' or '.join(repr(h) for h in hint)}?"
    message += f" (experiments: {', '.join(names) or 'none in experiments/'})"
    raise SiteError(f"experiments/{name}.py", None, message)


def run_experiment(root: Path, name: str, preset: str = "small", device: str = "auto",
                   extra_args: list[str] | tuple[str, ...] = ()) -> int:
    """Run ``python -m experiments.NAME --preset PRESET --device DEVICE`` in ``root``.

    Returns the script's exit code. An unknown experiment or preset is reported on stderr as
    ``path: message`` (with a did-you-mean hint) and gives exit code 2, without running anything.
    """
    root = Path(root)
    try:
        script = find_experiment(root, name)
        if preset not in PRESETS:
            raise SiteError(_rel(script, root), None,
                            f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    command = [sys.executable, "-m", f"experiments.{script.stem}", "--preset", preset, "--device", device,
               *extra_args]
    return subprocess.run(command, cwd=root).returncode


def describe(info: TableInfo) -> str:
    """Two lines for ``sitegen data``: what made it and when, then the files it wrote."""
    if not info.has_provenance and not info.reason:
        return f"{info.path}  (no provenance record: not written by an experiment script)"
    if info.source is not None:
        head = f"{info.name}: imported from {info.source} by {info.reader}"
    else:
        head = f"{info.name}: {info.script or info.path}"
    if info.preset or info.device:
        head += f", preset {info.preset or '?'} on {info.device or '?'}"
    if info.created:
        head += f", made {info.created}"
    if info.stale:
        head += f"\n  STALE: {info.reason}"
        if info.has_provenance:
            head += f"; refresh with: {info.refresh}"
    files = ", ".join(info.outputs)
    if info.missing_outputs:
        files += f" (missing: {', '.join(info.missing_outputs)})"
    return head + (f"\n  {files}" if files else "")


def stale_warnings(root: Path, used_paths) -> list[Problem]:
    """A warning for each used table or template whose experiment script changed since it was made.

    ``used_paths`` are the data files a build read (absolute, or relative to ``root``). Files with
    no provenance record get no warning: a hand-made CSV is fine.
    """
    root = Path(root)
    data = (root / "data").resolve()
    made_by: dict[str, TableInfo] = {}
    for info in list_tables(root):
        for output in info.outputs:
            made_by[output] = info
    problems = []
    seen = set()
    for used in used_paths:
        path = Path(used)
        if not path.is_absolute():
            path = root / path
        path = path.resolve()
        if path.parent != data or path in seen:
            continue
        seen.add(path)
        info = made_by.get(path.name)
        if info is None or not info.stale:
            continue
        rerun = info.refresh
        problems.append(Problem(_rel(path, root), None,
                                f"{info.reason}; rerun it to refresh this data: {rerun}", "warning"))
    return problems
