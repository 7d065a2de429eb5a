"""The runner's failure paths: a failed or interrupted chapter is never published, two runners
share one ``_build`` safely, flags a command does not use are refused, chapters run in parallel
(``--jobs``) in dependency order."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from ecgbook import __main__ as cli
from ecgbook import book
from ecgbook.data.download import file_lock

HEADER = ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
          "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n")


def _chapter(code: str, title: str = "A") -> str:
    cells = "".join(f"```{{code-cell}} ipython3\n{c}\n```\n\n" for c in code.split("\n#--\n"))
    return (HEADER + f"# {title}\n\n```{{code-cell}} ipython3\n:tags: [parameters]\nprofile = 'tutorial'\n```\n\n"
            + cells)


def _book(root: Path, chapters: dict[str, str]) -> Path:
    """A tiny project at ``root``: ``chapters/<stem>.md`` for each entry, the first one the root page."""
    (root / "chapters").mkdir(parents=True)
    stems = list(chapters)
    toc = f"format: jb-book\nroot: chapters/{stems[0]}\n"
    if stems[1:]:
        toc += "chapters:\n" + "".join(f"- file: chapters/{s}\n" for s in stems[1:])
    (root / "_toc.yml").write_text(toc)
    for stem, code in chapters.items():
        (root / "chapters" / f"{stem}.md").write_text(_chapter(code, stem))
    return root


def test_failed_chapter_is_kept_apart_and_build_refuses_it(tmp_path, monkeypatch):
    root = _book(tmp_path, {"a": "x = 1", "b": "y = 2"})
    monkeypatch.setenv("ECGBOOK_ROOT", str(root))
    stage = book.execute("smoke", root=root)
    assert json.loads((stage / "chapters" / "b.ipynb").read_text())["metadata"]["ecgbook_run"]["status"] == "ok"
    (root / "chapters" / "b.md").write_text(_chapter("y = 2\n#--\nraise ValueError('broken on purpose')"))
    with pytest.raises(RuntimeError) as info:
        book.execute("smoke", root=root)
    failed = stage / "chapters" / "b.failed.ipynb"
    assert "chapters/b.md" in str(info.value) and "broken on purpose" in str(info.value)
    assert str(failed) in str(info.value)
    assert not (stage / "chapters" / "b.ipynb").exists()  # the earlier good run is not published either
    assert "broken on purpose" in failed.read_text()
    assert not list((stage / "chapters").glob(".*"))  # no temporary files left
    with pytest.raises(RuntimeError) as info:
        book.build_html(stage, tmp_path / "html")
    assert "chapters/b.md: its run failed" in str(info.value) and str(failed) in str(info.value)
    assert "chapters/a.md" not in str(info.value)


def test_build_refuses_unmarked_and_other_profile_notebooks(tmp_path, monkeypatch):
    root = _book(tmp_path, {"a": "x = 1"})
    monkeypatch.setenv("ECGBOOK_ROOT", str(root))
    stage = book.execute("smoke", root=root)
    other = root / "_build" / "stage" / "classroom" / "chapters"
    other.mkdir(parents=True)
    (other / "a.ipynb").write_text((stage / "chapters" / "a.ipynb").read_text())
    with pytest.raises(RuntimeError, match=r"chapters/a.md: executed for profile 'smoke', not 'classroom'"):
        book.build_html(other.parent, tmp_path / "html")
    nb = json.loads((stage / "chapters" / "a.ipynb").read_text())
    del nb["metadata"]["ecgbook_run"]  # what papermill left in the published place before: no mark
    (stage / "chapters" / "a.ipynb").write_text(json.dumps(nb))
    with pytest.raises(RuntimeError, match=r"chapters/a.md: .* is not from a finished run"):
        book.build_html(stage, tmp_path / "html")


def test_interrupted_run_leaves_no_publishable_notebook(tmp_path, monkeypatch):
    import papermill

    root = _book(tmp_path, {"a": "x = 1"})
    stage = book.execute("smoke", root=root)
    out = stage / "chapters" / "a.ipynb"

    def interrupted(source, output, **kwargs):  # papermill writes its output as cells complete
        Path(output).write_text(Path(source).read_text())
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        book.execute("smoke", root=root)
    assert not out.exists() and (stage / "chapters" / "a.failed.ipynb").exists()
    assert not list((stage / "chapters").glob(".*"))


def test_second_runner_waits_for_the_first(tmp_path, capsys):
    root = _book(tmp_path, {"a": "x = 1"})
    stage = root / "_build" / "stage" / "smoke"
    stage.mkdir(parents=True)
    results = []
    with file_lock(stage):  # the first runner
        worker = threading.Thread(target=lambda: results.append(book.execute("smoke", root=root)))
        worker.start()
        time.sleep(1.5)
        assert not results and not (stage / "chapters" / "a.ipynb").exists()
    worker.join(120)
    assert results == [stage] and (stage / "chapters" / "a.ipynb").exists()
    assert "another runner is using" in capsys.readouterr().out


def test_two_runners_at_once_both_succeed(tmp_path):
    root = _book(tmp_path, {"a": "x = 1", "b": "y = 2"})
    (root / "ecgbook").mkdir()
    (root / "ecgbook" / "m.py").write_text("X = 1\n")  # staged by stage_package (rmtree + copy)
    errors = []

    def run():
        try:
            book.execute("smoke", root=root)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    stage = root / "_build" / "stage" / "smoke"
    for stem in "ab":
        assert json.loads((stage / "chapters" / f"{stem}.ipynb").read_text())["metadata"]["ecgbook_run"]
    assert (stage / "ecgbook" / "m.py").exists()


@pytest.mark.parametrize("argv, words", [
    (["build", "--no-run", "--chapters", "a"], "--chapters: not used by 'build' (with --no-run"),
    (["build", "--no-run", "--jobs", "2"], "--jobs: not used by 'build'"),
    (["data", "--chapters", "a"], "--chapters: not used by 'data'"),
    (["data", "--no-run"], "--no-run: not used by 'data'"),
    (["data", "--profile", "smoke"], "--profile: not used by 'data'"),
    (["run", "--no-run"], "--no-run: not used by 'run'"),
    (["run", "--jobs", "0"], "--jobs must be at least 1"),
])
def test_flags_a_command_does_not_use_are_refused(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_unwritable_build_folder_is_named(tmp_path, monkeypatch, capsys):
    root = _book(tmp_path, {"a": "x = 1"})
    monkeypatch.setenv("ECGBOOK_ROOT", str(root))
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):  # as for a read-only _build (the tests may run as root)
        if "_build" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert cli.main(["run", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write the staging folder {root / '_build' / 'stage' / 'smoke'}" in err
    assert "Traceback" not in err


STAMP = "import time, pathlib\n(pathlib.Path('..') / 'times').mkdir(exist_ok=True)\nt0 = time.time()"


def _timed(stem: str, body: str = "time.sleep(3)") -> str:
    return (f"{STAMP}\n#--\n{body}\n#--\n"
            f"(pathlib.Path('..') / 'times' / '{stem}').write_text(f'{{t0}} {{time.time()}}')")


def test_jobs_run_chapters_at_once_in_dependency_order(tmp_path, capsys):
    root = _book(tmp_path, {
        "02_baseline": _timed("02_baseline"),
        "03_other": _timed("03_other"),
        "05_mrmnet": _timed("05_mrmnet", "assert (pathlib.Path('..') / 'times' / '02_baseline').exists()"),
        "course": _timed("course", "assert len(list((pathlib.Path('..') / 'times').iterdir())) == 3"),
    })
    stage = book.execute("smoke", root=root, jobs=2)
    times = {p.name: [float(x) for x in p.read_text().split()] for p in (root / "times").iterdir()}
    assert times["02_baseline"][0] < times["03_other"][1] and times["03_other"][0] < times["02_baseline"][1]
    assert times["05_mrmnet"][0] > times["02_baseline"][1]
    assert times["course"][0] > max(t[1] for k, t in times.items() if k != "course")
    out = capsys.readouterr().out
    assert "executing chapters/02_baseline.md" in out and "chapters/05_mrmnet.md done in" in out
    assert " cell " not in out  # per-cell lines go to the logs
    assert "05_mrmnet cell 2/5" in (stage / "logs" / "05_mrmnet.log").read_text()
    for stem in times:
        assert json.loads((stage / "chapters" / f"{stem}.ipynb").read_text())["metadata"]["ecgbook_run"]


def test_jobs_a_failed_chapter_stops_its_dependants_only(tmp_path, capsys):
    root = _book(tmp_path, {
        "02_baseline": "raise ValueError('broken on purpose')",
        "03_other": "x = 1",
        "05_mrmnet": "x = 1",
    })
    with pytest.raises(RuntimeError) as info:
        book.execute("smoke", root=root, jobs=2)
    msg = str(info.value)
    assert "chapters/02_baseline.md: execution failed" in msg and "broken on purpose" in msg
    assert "05_mrmnet.md: not run" in msg and "03_other" not in msg
    chapters = root / "_build" / "stage" / "smoke" / "chapters"
    assert (chapters / "03_other.ipynb").exists() and (chapters / "02_baseline.failed.ipynb").exists()
    assert not (chapters / "02_baseline.ipynb").exists() and not (chapters / "05_mrmnet.ipynb").exists()
