"""No machine paths in what the project ships: the package, the chapters, the READMEs, the benchmarks,
the CI files. A path such as ``/work/notes/x.md`` or ``/home/alice/...`` exists on one machine only;
sources are cited by repository, commit and file:line instead, and the offline mirror by its role
(``data/README.md``). Test inputs under ``tests/`` are left out: some are machine paths on purpose.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What is scanned: folders (recursively) and single files, relative to the project root.
SCANNED = ("ecgbook", "chapters", "benchmarks", ".github", ".ci", "README.md", "results/README.md",
           "data/README.md", ".jupyter/README.md", "Makefile", "pyproject.toml", "_config.yml", "_toc.yml",
           "requirements.txt")
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".sh", ".json", ".bib", ""}
#: ``/work/``, ``/root/``, ``/home/<user>/``, ``/Users/<user>/`` at the start of a path (not inside a URL
#: or a relative path such as ``a/work/b``), and references to the helpers' ``shared/README``.
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|root)/|(?<![\w.~/-])/(?:home|Users)/[\w.-]+/|shared/README")


def machine_paths(root: Path = ROOT, scanned=SCANNED) -> list[str]:
    """``file:line: text`` of every line under ``scanned`` that holds a machine path."""
    files = []
    for name in scanned:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in TEXT_SUFFIXES
                      and not {"__pycache__", ".ipynb_checkpoints", "_build"} & set(p.parts)]
    hits = []
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    return hits


@pytest.mark.parametrize("text", [
    "facts in ``/work/notes/lassl.md``", "see /work/shared/README.md", "cache at /root/.cache/x",
    "(``/home/me/ecgbook/results/x.json``)", "'/Users/bob/data'", "the mirror (../shared/README.md)",
])
def test_matcher_finds_machine_paths(text):
    assert MACHINE_PATH.search(text)


@pytest.mark.parametrize("text", [
    "https://github.com/work/x", "results/tutorial/x.json", "ECGBOOK_MIRROR=../shared/mirror",
    "jupytext -o /tmp/baseline.ipynb", "a/work/b", "/home is a folder", "~/work/x",
    "``fairseq_signals/models/wav2vec2/wav2vec2.py:425-437``",
])
def test_matcher_leaves_other_text(text):
    assert not MACHINE_PATH.search(text)


def test_machine_paths_names_file_and_line(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text('"""Doc.\n\nSee /work/notes/x.md.\n"""\n')
    (tmp_path / "pkg" / "ok.py").write_text("x = 'results/x.json'\n")
    (tmp_path / "README.md").write_text("run from /home/alice/ecgbook/\n")
    assert machine_paths(tmp_path, ("pkg", "README.md", "absent")) == [
        "pkg/m.py:3: See /work/notes/x.md.", "README.md:1: run from /home/alice/ecgbook/"]


def test_no_machine_paths_in_the_package_chapters_and_readmes():
    hits = machine_paths()
    assert not hits, "machine paths (cite repository, commit and file:line instead):\n" + "\n".join(hits)
