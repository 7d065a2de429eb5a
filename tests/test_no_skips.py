"""Missing data fails, never skips (the promise of ``conftest.py``): tests take the real data through
conftest's ``mirror`` and ``challenge_samples`` fixtures, which call ``pytest.fail``. The only skips
left are marks with a stated reason (a CUDA-only case on a machine without a GPU).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: A skip decided inside a test or fixture (``pytest.skip(...)``, ``pytest.importorskip(...)``): the
#: way a missing folder or package used to pass silently.
SKIP_CALL = re.compile(r"\bpytest\s*\.\s*(?:skip|importorskip)\s*\(")
#: ``skipif`` marks: allowed, with ``reason=`` on the same or the next line.
SKIPIF = re.compile(r"\bskipif\s*\(")


def skip_problems(folder: Path = TESTS) -> list[str]:
    """``file:line: text`` of every skip call, and of every ``skipif`` without a ``reason=``."""
    hits = []
    for path in sorted(folder.glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            code = line.split("#", 1)[0]
            near = " ".join(lines[i:i + 2])
            if SKIP_CALL.search(code) or (SKIPIF.search(code) and "reason=" not in near):
                hits.append(f"{path.name}:{i + 1}: {line.strip()}")
    return hits


def test_skip_scan_on_hand_written_files(tmp_path):
    (tmp_path / "test_a.py").write_text(
        "import pytest\n"
        "def f(p):\n"
        "    if not p.is_dir():\n"
        "        pytest.skip('absent')\n"
        "x = pytest.importorskip('iterstrat')\n"
        "ok = pytest.mark.skipif(True, reason='needs a CUDA GPU')\n"
        "bad = pytest.mark.skipif(True)\n"
        "# pytest.skip( in a comment is fine\n")
    assert skip_problems(tmp_path) == ["test_a.py:4: pytest.skip('absent')",
                                       "test_a.py:5: x = pytest.importorskip('iterstrat')",
                                       "test_a.py:7: bad = pytest.mark.skipif(True)"]


def test_no_skip_calls_in_the_tests():
    hits = skip_problems()
    assert not hits, ("tests must fail on missing data (conftest's mirror / challenge_samples fixtures), and "
                      "a skipif must say why:\n" + "\n".join(hits))


def test_missing_challenge_samples_fail_the_tests_that_need_them(tmp_path):
    """Run two tests that read the Challenge-format records with ``ECGBOOK_SAMPLES`` pointing nowhere:
    both fail, naming the missing folder (they used to be skipped)."""
    env = {**os.environ, "ECGBOOK_SAMPLES": str(tmp_path / "absent"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs",
           "tests/test_arcface.py::test_challenge_recordings_end_to_end",
           "tests/test_challenge2020_protocol.py::test_loader_reads_every_source_with_24_classes"]
    run = subprocess.run(cmd, cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 errors" in out or "2 failed" in out, out
    assert "skipped" not in out, out
    assert f"records missing at {tmp_path / 'absent' / 'challenge-2021'}" in out, out
