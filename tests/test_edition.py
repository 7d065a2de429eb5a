"""The student edition: chapters, notebooks and the built book without the exercises' solutions."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecgbook import edition

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("0*.md"))


def test_strip_solutions_keeps_the_exercises_and_the_text_after():
    text = ("Intro.\n\n```{exercise}\n:label: ex-a\n\nDo it.\n```\n\n"
            "````{solution} ex-a\n:class: dropdown\n\n```python\nx = 1\n```\n\nBecause.\n````\n\n"
            "After.\n\n:::{solution} ex-b\nColon-fenced answer.\n:::\n\nEnd.\n")
    out, n = edition.strip_solutions(text)
    assert n == 2
    assert "{solution}" not in out and "x = 1" not in out and "Because" not in out and "Colon-fenced" not in out
    assert "```{exercise}" in out and "Do it." in out and "After." in out and out.endswith("End.\n")
    assert "\n\n\n" not in out  # one blank line where a block was


def test_an_inner_shorter_fence_does_not_close_the_solution():
    text = "````{solution} ex\n```python\ncode\n```\nstill the solution\n````\nkept\n"
    out, n = edition.strip_solutions(text)
    assert (out, n) == ("kept\n", 1)


def test_an_unclosed_solution_is_refused_naming_the_source_and_line():
    with pytest.raises(ValueError, match=r"page\.md: the solution block opened on line 2"):
        edition.strip_solutions("text\n````{solution} ex\nanswer\n```\n", "page.md")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_solution_of_every_chapter_is_stripped_and_every_exercise_kept(chapter):
    text = chapter.read_text(encoding="utf-8")
    out, n = edition.strip_solutions(text, chapter.name)
    assert n == text.count("{solution}")
    assert "{solution}" not in out
    assert out.count("{exercise}") == text.count("{exercise}")
    # the text that is not a solution is untouched: every line of the output is in the chapter
    assert set(out.splitlines()) <= set(text.splitlines())


def test_student_copy_of_the_chapters_and_config(tmp_path):
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    src = ROOT / "chapters" / "01_data_primer.md"
    (book / "chapters" / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    (book / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    import jupytext
    import nbformat
    nbformat.write(jupytext.read(src), book / "chapters" / "01_data_primer.ipynb")
    removed = edition.student_copy(book, tmp_path / "student")
    assert removed == {"chapters/01_data_primer.md": 4, "chapters/01_data_primer.ipynb": 4}
    assert edition.solutions_left(tmp_path / "student") == []
    assert edition.solutions_left(book) == ["chapters/01_data_primer.ipynb", "chapters/01_data_primer.md"]
    config = yaml.safe_load((tmp_path / "student" / "_config.yml").read_text())
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["sphinx"]["extra_extensions"]  # the rest of the config is kept
    with pytest.raises(ValueError, match="must not be inside"):
        edition.student_copy(book, book / "student")


def test_solutions_left_finds_a_rendered_solution(tmp_path):
    (tmp_path / "page.html").write_text('<div class="solution dropdown admonition" id="s1">answer</div>')
    (tmp_path / "ok.html").write_text('<div class="exercise admonition">question</div>')
    assert edition.solutions_left(tmp_path) == ["page.html"]


def test_student_chapters_for_the_lab(tmp_path):
    (tmp_path / "chapters").mkdir()
    src = ROOT / "chapters" / "02_baseline_ptbxl.md"
    (tmp_path / "chapters" / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    out = edition.student_chapters(tmp_path)
    assert out == tmp_path / "_build" / "student" / "chapters"
    text = (out / src.name).read_text(encoding="utf-8")
    assert "{solution}" not in text and text.startswith("---\njupytext:")  # still a Jupytext notebook


def test_build_refuses_an_unknown_edition_and_student_output_folders():
    from ecgbook import book
    from ecgbook.__main__ import main

    for argv in (["build", "--edition", "pupil"], ["data", "--edition", "student"], ["run", "--edition", "student"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    assert book.output_dir("tutorial", ROOT, "student") == ROOT / "_build" / "student" / "html"
    assert book.output_dir("classroom", ROOT, "student") == ROOT / "_build" / "classroom" / "student" / "html"
    assert book.output_dir("classroom", ROOT) == ROOT / "_build" / "classroom" / "html"
