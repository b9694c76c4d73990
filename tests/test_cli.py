"""The commands a user types: init, new, build."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sitegen", *args], cwd=cwd, capture_output=True, text=True)


def test_init_scaffolds_a_site_that_builds(tmp_path):
    target = tmp_path / "blog"
    proc = run("init", str(target))
    assert proc.returncode == 0, proc.stderr
    for rel in ("sitegen.toml", "content/hello.md", "netlify.toml", "data"):
        assert (target / rel).exists(), rel
    assert not (target / "templates").exists()
    proc = run("build", str(target))
    assert proc.returncode == 0, proc.stderr
    assert "Hello, sitegen" in (target / "_site" / "index.html").read_text()


def test_init_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    proc = run("init", str(tmp_path))
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert (tmp_path / "x.txt").read_text() == "keep me"


def test_init_with_templates_copies_them_to_override(tmp_path):
    proc = run("init", str(tmp_path / "s"), "--templates")
    assert proc.returncode == 0
    assert (tmp_path / "s" / "templates" / "post.html").exists()


def test_new_writes_a_draft_with_front_matter(tmp_path):
    run("init", str(tmp_path / "s"))
    proc = run("new", "Why my GP's lengthscales collapse", "--site", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "s" / "content" / "why-my-gps-lengthscales-collapse.md"
    text = path.read_text()
    assert text.startswith("---\ntitle: \"Why my GP's lengthscales collapse\"\ndate: ")
    assert "draft: true" in text
    # a draft is previewed with --drafts and left out otherwise
    run("build", str(tmp_path / "s"))
    assert not (tmp_path / "s" / "_site" / "why-my-gps-lengthscales-collapse").exists()
    run("build", str(tmp_path / "s"), "--drafts")
    assert (tmp_path / "s" / "_site" / "why-my-gps-lengthscales-collapse" / "index.html").exists()
    assert run("new", "Why my GP's lengthscales collapse", "--site", str(tmp_path / "s")).returncode == 1


def test_build_with_out_folder(tmp_path):
    run("init", str(tmp_path / "s"))
    proc = run("build", str(tmp_path / "s"), "--out", str(tmp_path / "public"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "public" / "index.html").exists()
    assert "built" in proc.stdout
