"""The README is a promise: every command and option it shows is one the program takes and one a test
runs, and what it says a command prints is what the command prints."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitegen import cli
from sitegen.content import load
from sitegen.live import preview_hint

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
TESTS = Path(__file__).resolve().parent


def shown_commands() -> list[list[str]]:
    """Every ``sitegen ...`` and ``python3 -m experiments...`` command the README shows, as tokens
    (in `code` and in ```sh blocks; [optional] brackets dropped)."""
    spans = re.findall(r"`([^`\n]+)`", README)
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        spans += [line.split("#", 1)[0] for line in block.splitlines()]
    out = []
    for span in spans:
        for part in re.split(r"&&|\|", span):
            part = part.replace("[", " ").replace("]", " ").strip()
            if part.startswith("sitegen ") or part.startswith("python3 -m experiments."):
                out.append(shlex.split(part))
    return out


def sitegen_options() -> list[tuple[str, str]]:
    """(subcommand, option) for every option the README shows with a sitegen command."""
    found = set()
    for tokens in shown_commands():
        if tokens[0] == "sitegen" and len(tokens) > 1:
            for t in tokens[2:]:
                if re.fullmatch(r"--?[a-z][a-z-]*", t):
                    found.add((tokens[1], t))
    return sorted(found)


def test_the_readme_shows_the_commands_it_documents():
    subcommands = {t[1] for t in shown_commands() if t[0] == "sitegen"}
    assert {"build", "serve", "new", "init", "data"} <= subcommands
    assert ("build", "--no-cache") in sitegen_options() and ("serve", "--open") in sitegen_options()


def test_every_command_and_option_in_the_readme_is_one_the_cli_takes():
    parser = cli.parser()
    commands = parser._subparsers._group_actions[0].choices
    for sub, option in sitegen_options():
        assert sub in commands, f"README shows `sitegen {sub}`, which is not a command"
        known = {s for action in commands[sub]._actions for s in action.option_strings}
        assert option in known, f"README shows `sitegen {sub} {option}`, which `sitegen {sub}` does not take"


class _Parsed(Exception):
    pass


def test_every_experiment_command_in_the_readme_parses(monkeypatch):
    import importlib

    from experiments import _common

    def parse_then_stop(*args, **kwargs):
        _common.parse_args(*args, **kwargs)  # exits (fails) on an option the script does not take
        raise _Parsed

    for tokens in shown_commands():
        if tokens[:2] == ["python3", "-m"]:
            module = tokens[2].split(".", 1)[1]
            assert (REPO / "experiments" / f"{module}.py").is_file(), tokens
            script = importlib.import_module(f"experiments.{module}")
            # the script's own parser (its extra options included), stopped before any work
            monkeypatch.setattr(script, "parse_args", parse_then_stop)
            with pytest.raises(_Parsed):
                script.main(tokens[3:])


def test_every_option_in_the_readme_is_run_by_some_test():
    sources = {p: p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py")}
    for sub, option in sitegen_options():
        runners = [p.name for p, text in sources.items()
                   if re.search(rf"""["']{re.escape(option)}["']""", text) and f'"{sub}"' in text]
        assert runners, f"no test runs `sitegen {sub} {option}` as the README shows it"


def test_the_live_training_hint_in_the_readme_is_what_a_trainer_prints(tmp_path):
    shown = re.search(r"# (sitegen: watch (\S+) train live at (\S+))", README)
    assert shown, "the README's live-training example"
    line, table, url = shown.groups()
    readers = [p for p in (REPO / "content").rglob("*.md")
               if re.search(rf"```{{expression}} {re.escape(table)}\b", p.read_text(encoding="utf-8"))]
    assert readers, f"no bundled post draws {table}"
    post = load(readers[0], REPO)
    post = post[0] if isinstance(post, tuple) else post
    # what `sitegen serve` records for trainers, for a site whose post reads the table
    (tmp_path / "content").mkdir()
    (tmp_path / Path(table).parent).mkdir(parents=True)
    (tmp_path / ".sitegen-cache").mkdir()
    (tmp_path / ".sitegen-cache" / "serve.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:8000/", "pid": os.getpid(), "host": socket.gethostname(),
         "pages": {table: [post.url]}}))
    assert preview_hint(tmp_path / table) == line
    assert url == "http://127.0.0.1:8000" + post.url


def _tiny_site(root: Path) -> Path:
    (root / "content").mkdir(parents=True)
    (root / "sitegen.toml").write_text('title = "Readme"\n')
    (root / "content" / "hello.md").write_text("---\ntitle: Hello\ndate: 2024-01-01\n---\n\nHi.\n")
    return root


def test_build_without_cache_on_one_worker(tmp_path):
    root = _tiny_site(tmp_path / "site")
    done = subprocess.run([sys.executable, "-m", "sitegen", "build", str(root), "--no-cache", "-j", "1"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (root / "_site" / "hello" / "index.html").is_file()
    assert not (root / ".sitegen-cache").exists()


def test_serve_open_opens_the_preview_in_the_browser(tmp_path):
    root = _tiny_site(tmp_path / "site")
    opened = tmp_path / "opened.txt"
    # Python's webbrowser runs $BROWSER with the URL in place of %s
    env = {**os.environ, "BROWSER": f"{sys.executable} -c \"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\" %s"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-u", "-m", "sitegen", "serve", str(root), "--port", str(port), "--open"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (opened.exists() and opened.read_text()):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        assert opened.read_text() == f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_data_import_labels_experiments_and_runs_as_the_readme_says(tmp_path):
    import pandas as pd

    log = tmp_path / "logs" / "lr-0.1" / "seed-0" / "metrics.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": 1.0}\n')
    for name, experiment, run, want in (("patterns", "{0}", "{-1}", ("lr-0.1", "metrics")),
                                        ("fixed", "adam", "{path}", ("adam", "lr-0.1/seed-0/metrics"))):
        done = subprocess.run([sys.executable, "-m", "sitegen", "data", "import", "logs", name,
                               "--experiment", experiment, "--run", run],
                              capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        table = pd.read_parquet(tmp_path / "data" / f"{name}.parquet")
        assert set(zip(table["experiment"], table["run"])) == {want}
