"""How the experiment scripts fail and report progress: one line per mistake, never a traceback.

``--device cuda`` on a machine without CUDA (torch and JAX), an extra that is not installed (the
import is blocked for the run), a preset that does not exist; and the progress display on a terminal
and in a log.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Runs a script's main() with some top-level modules made unimportable, as on a machine without them.
BLOCKED = """
import sys
blocked = set(sys.argv[1].split(","))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
import importlib
module = importlib.import_module(sys.argv[2])
sys.argv = [sys.argv[2].rsplit(".", 1)[1], *sys.argv[3:]]
module.main(sys.argv[1:])
"""


def run(args, blocked=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": ""}
    if blocked:
        cmd = [sys.executable, "-c", BLOCKED, ",".join(blocked), *args]
    else:
        cmd = [sys.executable, "-m", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1
    return lines[-1]


def test_cuda_without_cuda_in_torch_says_which_devices_there_are(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = one_line_error(run(["experiments.hpo_sweep", "--preset", "tiny", "--device", "cuda", "--out",
                               str(tmp_path)]))
    assert line.startswith("hpo_sweep: error: --device cuda:") and "devices: cpu" in line
    assert "pass --device cpu or --device auto" in line
    assert not any(tmp_path.iterdir())   # nothing written


def test_cuda_without_a_gpu_backend_in_jax_says_which_devices_there_are(tmp_path):
    jax = pytest.importorskip("jax")
    try:
        jax.devices("gpu")
        pytest.skip("this machine has a GPU for JAX")
    except RuntimeError:
        pass
    line = one_line_error(run(["experiments.gp_loocv", "--preset", "tiny", "--device", "cuda", "--out",
                               str(tmp_path)]))
    assert line.startswith("gp_loocv: error: --device cuda:") and "no GPU backend" in line
    assert "cpu" in line and "pass --device cpu or --device auto" in line


def test_an_unknown_device_name_is_one_line_too(tmp_path):
    pytest.importorskip("torch")
    line = one_line_error(run(["experiments.hpo_sweep", "--preset", "tiny", "--device", "tpu", "--out",
                               str(tmp_path)]))
    assert "--device tpu" in line and "devices: cpu" in line


@pytest.mark.parametrize("script, blocked, extra", [
    ("experiments.hpo_sweep", ["torch"], "experiments"),
    ("experiments.gp_loocv", ["jax"], "experiments"),
    ("experiments.hpo_sweep", ["ray"], "cluster"),
])
def test_a_missing_extra_says_what_to_install(tmp_path, script, blocked, extra):
    args = [script, "--preset", "tiny", "--device", "cpu", "--out", str(tmp_path)]
    if blocked == ["ray"]:
        args += ["--parallel", "ray"]
    line = one_line_error(run(args, blocked=blocked))
    assert f"this script needs {blocked[0]}" in line and f"pip install -e '.[{extra}]'" in line


def test_a_bad_preset_lists_the_presets(tmp_path):
    proc = run(["experiments.hpo_sweep", "--preset", "huge", "--out", str(tmp_path)])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "argument --preset: invalid choice: 'huge' (choose from" in line
    assert all(name in line for name in ("tiny", "small", "full"))


# ---------------------------------------------------------------------------------- progress
class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_draws_a_bar_in_place_on_a_terminal():
    sys.path.insert(0, str(REPO))
    from experiments._common import Progress

    stream = Stream(tty=True)
    progress = Progress(4, "runs", label="sweep", stream=stream)
    for _ in range(4):
        progress.update()
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "sweep [########################] 4/4 runs" in text and "00:00 left" in text
    assert "sweep [######..................] 1/4 runs" in text


def test_progress_prints_whole_lines_in_a_log_the_first_every_interval_and_the_last():
    from experiments._common import Progress

    stream = Stream(tty=False)
    progress = Progress(100, "subsets", label="gp_loocv", stream=stream, every=3600)
    for _ in range(100):
        progress.update()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 2 and lines[0].startswith("gp_loocv: 1/100 subsets, ")
    assert lines[1].startswith("gp_loocv: 100/100 subsets, ") and lines[1].endswith("00:00 left")
