"""TensorBoard event files: every run below a log folder, scalars by tag.

Records are read with TensorBoard's own loader
(``tensorboard.backend.event_processing.event_file_loader.RawEventFileLoader``: record framing
and checksums) and parsed with TensorBoard's ``Event`` protobuf class. Both kinds of scalar are
read: ``simple_value`` (PyTorch's ``SummaryWriter``, Lightning's ``TensorBoardLogger``, TF1) and
scalar tensors of the ``scalars`` plugin (TF2 ``tf.summary.scalar``, Flax's ``metric_writers``).

Not through ``EventAccumulator``: it keeps a reservoir *sample* of 10,000 values per tag by default
(a silent gap in a long run) and its bookkeeping costs more than the reading itself.

The checksums are the slow part of TensorBoard's pure-python reader; when ``google-crc32c`` (in the
``tensorboard`` extra) is installed, its C implementation is used for them, checked first against
the standard test vector.
"""
from __future__ import annotations

import os
from pathlib import Path

from sitegen.logs.common import LogError, Rows, need, run_labels

PREFIX = "events.out.tfevents"
EXTRA = "tensorboard"


def event_files(root: Path) -> dict[Path, list[Path]]:
    """Event files under ``root`` (a folder or one event file), grouped by the folder holding them."""
    if root.is_file():
        return {root.parent: [root]}
    found: dict[Path, list[Path]] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        names = sorted(f for f in files if f.startswith(PREFIX))
        if names:
            found[Path(folder)] = [Path(folder) / n for n in names]
    return found


def version() -> str:
    import tensorboard

    return f"tensorboard {tensorboard.__version__}"


_fast_crc = None


def _use_fast_crc() -> None:
    """Give TensorBoard's python record reader a C CRC-32C, if google-crc32c is installed."""
    global _fast_crc
    if _fast_crc is not None:
        return
    _fast_crc = False
    try:
        import google_crc32c
        from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as stub
    except ImportError:
        return
    if getattr(google_crc32c, "implementation", "c") != "c" or not hasattr(stub, "crc32c"):
        return
    if stub.crc32c(b"123456789") == google_crc32c.value(b"123456789") == 0xE3069283:
        stub.crc32c = google_crc32c.value
        _fast_crc = True


def read(root: Path, shown: str, experiment: str | None = None, run: str | None = None):
    """Every scalar under ``root`` as a long DataFrame (see :mod:`sitegen.logs.common`)."""
    need("tensorboard", EXTRA, "TensorBoard event files", shown)
    found = event_files(root)
    if not found:
        raise LogError(shown, f"no TensorBoard event files ({PREFIX}.*) in this folder or below it")
    base = root if root.is_dir() else root.parent
    rows = Rows()
    for folder, files in found.items():
        exp, name = run_labels(base, folder, experiment, run)
        tags: dict[str, tuple[list, list, list]] = {}
        for path in files:
            _read_file(path, _shown(shown, base, path), tags)
        for tag, (steps, values, times) in tags.items():
            rows.add(exp, name, tag, steps, values, wall_time=times)
    return rows.frame(shown, "TensorBoard log")


def _shown(shown: str, base: Path, path: Path) -> str:
    try:
        return str(Path(shown) / path.relative_to(base)) if path != base else shown
    except ValueError:
        return str(path)


def _read_file(path: Path, shown: str, tags: dict) -> None:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.util import tensor_util

    _use_fast_crc()
    size = path.stat().st_size
    used = 0
    records = 0
    scalar_tags: set[str] = set()   # tags whose first value said "scalars plugin" (TF2 writes it once)
    parse = Event.FromString
    try:
        for record in RawEventFileLoader(str(path)).Load():
            used += len(record) + 16   # length, its checksum, the record, its checksum
            records += 1
            event = parse(record)
            if not event.HasField("summary"):
                continue
            step, wall = event.step, event.wall_time
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    number = value.simple_value
                elif kind == "tensor":
                    if value.metadata.plugin_data.plugin_name == "scalars":
                        scalar_tags.add(value.tag)
                    elif value.tag not in scalar_tags:
                        continue
                    array = tensor_util.make_ndarray(value.tensor)
                    if array.size != 1:
                        continue
                    number = float(array.reshape(-1)[0])
                else:
                    continue
                entry = tags.get(value.tag)
                if entry is None:
                    entry = tags[value.tag] = ([], [], [])
                entry[0].append(step)
                entry[1].append(number)
                entry[2].append(wall)
    except Exception as exc:  # noqa: BLE001 - a damaged file of any kind is the author's to fix
        raise LogError(shown, f"cannot read this event file ({type(exc).__name__}: {exc}); "
                              "is it a TensorBoard event file?") from None
    if used != size:
        raise LogError(shown, f"truncated or damaged event file: its {records:,} whole record(s) end at byte "
                              f"{used:,} of {size:,}; if the run is still writing, wait for it to flush, "
                              "otherwise delete the file or cut it at that byte")
