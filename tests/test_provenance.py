"""`sitegen data` tells which script made each table and warns when that script changed since."""
from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from sitegen.errors import SiteError
from sitegen.provenance import describe, find_experiment, list_tables, run_experiment, stale_warnings

SCRIPT = textwrap.dedent("""\
    import sys
    from pathlib import Path
    args = sys.argv[1:]
    out = Path("data")
    out.mkdir(exist_ok=True)
    (out / "made.txt").write_text(" ".join(args))
    sys.exit(3 if "--preset" in args and args[args.index("--preset") + 1] == "full" else 0)
""")


@pytest.fixture
def site(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "__init__.py").write_text("")
    (tmp_path / "experiments" / "_common.py").write_text("")
    (tmp_path / "experiments" / "toy.py").write_text(SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("toy.parquet", "toy.expr", "handmade.csv"):
        (data / name).write_bytes(b"x")
    record = {
        "script": "experiments/toy.py",
        "script_sha256": hashlib.sha256(SCRIPT.encode()).hexdigest(),
        "preset": "small", "device": "cpu", "created": "2026-01-02T03:04:05Z",
        "outputs": ["toy.expr", "toy.parquet", "gone.parquet"],
        "results": {"final_loss": 0.5},
    }
    (data / "toy.provenance.json").write_text(json.dumps(record))
    return tmp_path


def test_list_tables_reports_each_experiment_and_tables_without_provenance(site):
    infos = list_tables(site)
    assert [i.name for i in infos] == ["toy", "handmade.csv"]
    toy, handmade = infos
    assert toy.script == "experiments/toy.py" and toy.preset == "small" and toy.device == "cpu"
    assert toy.created == "2026-01-02T03:04:05Z"
    assert toy.outputs == ["toy.expr", "toy.parquet", "gone.parquet"]
    assert toy.missing_outputs == ["gone.parquet"]
    assert toy.stale is False and toy.results == {"final_loss": 0.5}
    assert handmade.path == "data/handmade.csv" and not handmade.has_provenance and not handmade.stale


def test_a_changed_or_missing_script_makes_its_tables_stale(site):
    (site / "experiments" / "toy.py").write_text(SCRIPT + "# a change\n")
    toy = list_tables(site)[0]
    assert toy.stale and "experiments/toy.py changed since" in toy.reason
    (site / "experiments" / "toy.py").unlink()
    toy = list_tables(site)[0]
    assert toy.stale and "no longer exists" in toy.reason


def test_an_unreadable_record_is_reported_not_raised(site):
    (site / "data" / "broken.provenance.json").write_text("{not json")
    broken = [i for i in list_tables(site) if i.name == "broken"][0]
    assert broken.stale and "unreadable provenance record" in broken.reason


def test_stale_warnings_name_the_used_table_and_how_to_refresh_it(site):
    assert stale_warnings(site, ["data/toy.parquet"]) == []
    (site / "experiments" / "toy.py").write_text(SCRIPT + "# a change\n")
    problems = stale_warnings(site, ["data/toy.parquet", site / "data" / "toy.parquet", "data/handmade.csv"])
    assert len(problems) == 1
    (problem,) = problems
    assert problem.level == "warning" and problem.path == "data/toy.parquet"
    assert "experiments/toy.py changed since" in problem.message
    assert "sitegen data run toy --preset small" in problem.message
    assert str(problem).startswith("data/toy.parquet: warning: ")


def test_run_experiment_runs_the_script_as_a_module_in_the_site_root(site):
    assert run_experiment(site, "toy", preset="tiny", device="cpu") == 0
    assert (site / "data" / "made.txt").read_text() == "--preset tiny --device cpu"
    assert run_experiment(site, "toy", preset="full") == 3


def test_run_experiment_explains_an_unknown_name_or_preset_without_running_anything(site, capsys):
    assert run_experiment(site, "tyo") == 2
    err = capsys.readouterr().err
    assert err.startswith("experiments/tyo.py: no experiment named 'tyo'; did you mean 'toy'?")
    assert run_experiment(site, "_common") == 2
    assert "no experiment named '_common'" in capsys.readouterr().err
    assert run_experiment(site, "toy", preset="huge") == 2
    assert "unknown preset 'huge'; use one of tiny, small, full" in capsys.readouterr().err
    assert not (site / "data" / "made.txt").exists()
    with pytest.raises(SiteError, match="did you mean 'toy'"):
        find_experiment(site, "tyo")
    assert find_experiment(site, "experiments/toy.py") == site / "experiments" / "toy.py"


def test_describe_says_what_made_a_table_and_whether_it_is_stale(site):
    toy, handmade = list_tables(site)
    text = describe(toy)
    assert text.startswith("toy: experiments/toy.py, preset small on cpu, made 2026-01-02T03:04:05Z")
    assert "toy.parquet" in text and "(missing: gone.parquet)" in text and "STALE" not in text
    assert describe(handmade) == "data/handmade.csv  (no provenance record: not written by an experiment script)"
    (site / "experiments" / "toy.py").write_text(SCRIPT + "# a change\n")
    assert "STALE: experiments/toy.py changed since" in describe(list_tables(site)[0])
    assert "sitegen data run toy --preset small" in describe(list_tables(site)[0])


def test_data_run_live_starts_the_script_streaming(site):
    from sitegen.cli import main

    assert main(["data", "run", "toy", "--live", "--preset", "tiny", "--site", str(site)]) == 0
    assert (site / "data" / "made.txt").read_text().split() == ["--preset", "tiny", "--device", "auto", "--live"]
