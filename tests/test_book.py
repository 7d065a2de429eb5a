"""The book runner: chapter selection, per-cell progress, the rendered-page check, Jupyter settings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgbook import __main__ as cli
from ecgbook import book

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_chapter_fails_listing_valid_names(capsys):
    with pytest.raises(ValueError) as info:
        book.select_chapters(["nonsense"])
    assert "01_data_primer" in str(info.value) and "'nonsense'" in str(info.value)
    assert cli.main(["run", "--profile", "smoke", "--chapters", "nonsense"]) == 1
    err = capsys.readouterr().err
    assert "unknown chapter name" in err and "02_baseline_ptbxl" in err


def test_select_chapters_by_part_of_the_name():
    assert [f.stem for f in book.select_chapters(["baseline"])] == ["02_baseline_ptbxl"]
    assert len(book.select_chapters(None)) == len(book.notebook_chapters())
    assert all(book.is_notebook(f) for f in book.notebook_chapters())


def test_course_page_runs_after_the_chapters_whose_run_times_it_shows():
    files = book.chapter_files()
    order = [f.stem for f in book.execution_order(files)]
    assert order[-1] == "course" and "course" in [f.stem for f in files[:-1]]
    assert [s for s in order if s != "course"] == [f.stem for f in files if f.stem != "course"]


def test_output_dirs():
    assert book.output_dir("tutorial", ROOT) == ROOT / "_build" / "html"
    assert book.output_dir("classroom", ROOT) == ROOT / "_build" / "classroom" / "html"
    assert book.output_dir("smoke", ROOT) == ROOT / "_build" / "smoke" / "html"


def _page(tmp_path: Path, name: str, body: str, head: str = "") -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><head>{head}</head><body>{body}</body></html>")


def test_check_html_finds_raw_myst_and_remote_math(tmp_path):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("//")
    local = '<script defer src="_static/mathjax/tex-chtml.js"></script>'
    _page(tmp_path, "good.html", "<p>text</p><pre>:::{note}\nin code is fine\n:::</pre>", local)
    assert book.check_html(tmp_path) == []
    _page(tmp_path, "raw.html", "<p>:::{warning}\nThis page was executed\n:::</p>", local)
    _page(tmp_path, "cdn.html", "<p>ok</p>",
          '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>')
    _page(tmp_path, "sub/missing.html", "<p>ok</p>", '<script src="../_static/mathjax/tex-svg.js"></script>')
    _page(tmp_path, "fence.html", "<p>```{exercise}</p>", local)
    problems = "\n".join(book.check_html(tmp_path))
    assert "raw.html: raw MyST text ':::{warning}'" in problems
    assert "cdn.html: loads a script from a remote URL" in problems
    assert "sub/missing.html: MathJax script" in problems
    assert "fence.html: raw MyST" in problems
    assert "good.html" not in problems


def test_runner_prints_a_line_per_cell(tmp_path, capsys):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: chapters/a\n")
    (tmp_path / "chapters" / "a.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n# A\n\n"
        "```{code-cell} ipython3\n:tags: [parameters]\nprofile = 'tutorial'\n```\n\n"
        "```{code-cell} ipython3\nx = profile.upper()\n```\n")
    stage = book.execute("smoke", root=tmp_path)
    out = capsys.readouterr().out
    assert "executing chapters/a.md (profile smoke)" in out
    assert "a cell 3/3" in out and "x = profile.upper()" in out
    nb = json.loads((stage / "chapters" / "a.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "profile = \"smoke\"" in "".join(injected[0]["source"])
    for cell in nb["cells"]:
        tags = cell["metadata"].get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            assert "remove-cell" in tags


def test_jupyter_opens_chapters_as_notebooks(monkeypatch):
    settings = ROOT / ".jupyter" / "labconfig" / "default_setting_overrides.json"
    viewers = json.loads(settings.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook" and viewers["myst"] == "Jupytext Notebook"
    from jupyter_server.services.config.manager import ConfigManager

    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(ROOT / ".jupyter"))
    loaded = ConfigManager(config_dir_name="labconfig").get("default_setting_overrides")
    assert loaded["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Jupytext Notebook"


def test_config_renders_markdown_as_myst_and_math_offline():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["config"]["nb_render_markdown_format"] == "myst"
    assert {"sphinx_exercise", "sphinx-mathjax-offline"} <= set(cfg["sphinx"]["extra_extensions"])
    reqs = (ROOT / "requirements.txt").read_text()
    assert "sphinx-exercise" in reqs and "sphinx-mathjax-offline" in reqs


#: Chapters whose shown code must fit the text column (others join as they adopt the pattern).
COLUMN_CHECKED = ("00_introduction", "01_data_primer", "02_baseline_ptbxl", "03_transfer_learning",
                  "04_multimodal_ssl", "05_mrmnet", "06_lead_agnostic_ssl", "course", "glossary")


@pytest.mark.parametrize("stem", COLUMN_CHECKED)
def test_shown_code_fits_the_column(stem):
    path = ROOT / "chapters" / f"{stem}.md"
    assert book.long_code_lines(path) == [], f"{path.name}: code lines over {book.CODE_LINE_LIMIT}"


@pytest.mark.parametrize("stem", COLUMN_CHECKED)
def test_package_code_shown_in_a_chapter_fits_the_column(stem):
    """``literalinclude`` / ``pages.show_source`` put package code in the page: it must fit too."""
    path = ROOT / "chapters" / f"{stem}.md"
    assert book.long_included_lines(path) == []


def test_long_included_lines_finds_long_lines_and_missing_objects(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```{literalinclude} ../ecgbook/book.py\n:pyobject: long_included_lines\n```\n")
    assert book.long_included_lines(page) == []
    assert book.long_included_lines(page, limit=60)[0].startswith("ecgbook/book.py:long_included_lines: line")
    page.write_text("```python\npages.show_source(book.long_code_lines)\n```\n")
    assert book.long_included_lines(page, limit=40)  # its summary line is longer than 40
    page.write_text("```{literalinclude} ../ecgbook/book.py\n:pyobject: no_such_function\n```\n")
    with pytest.raises(LookupError, match="no_such_function"):
        book.long_included_lines(page)
    page.write_text("pages.show_source(signal.no_such_function)\n")
    with pytest.raises(LookupError, match="no_such_function"):
        book.long_included_lines(page)


def test_long_code_lines_skips_hidden_cells(tmp_path):
    page = tmp_path / "p.md"
    long = "x = " + "1 + " * 30 + "1"
    page.write_text(f"```{{code-cell}} ipython3\n{long}\n```\n\n"
                    f"```{{code-cell}} ipython3\n:tags: [remove-input]\n{long}\n```\n\n"
                    f"```{{code-cell}} ipython3\n---\ntags: [remove-cell]\n---\n{long}\n```\n")
    assert book.long_code_lines(page) == [(2, len(long))]


@pytest.mark.parametrize("parameters, words", [
    ({"max_records": -5}, ["'max_records'", "≥ 1", "-5"]),
    ({"mitdb_records": "abc"}, ["'mitdb_records'", "integer", "'abc'"]),
])
def test_wrong_papermill_parameter_fails_in_the_first_cell(tmp_path, parameters, words):
    import jupytext
    import nbformat
    import papermill

    nb = jupytext.read(ROOT / "chapters" / "01_data_primer.md")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "primer.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"profile": "smoke", **parameters}, progress_bar=False,
                                   cwd=str(ROOT / "chapters"))
    assert info.value.ename == "ValueError"
    for w in words:
        assert w in info.value.evalue
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    failed = [c for c in out.cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert "from ecgbook import profiles" in failed[0].source  # before any heavy import


def test_output_problems_finds_paths_downloads_and_warnings(tmp_path):
    out = '<div class="cell_output docutils container"><div class="output stream">{}</div>\n</div>'
    _page(tmp_path, "clean.html", out.format("<pre>macro AUROC 0.851; see results/smoke/x.json</pre>"))
    _page(tmp_path, "leaky.html", out.format("<pre>wrote /work/wt/book/results/smoke/x.json\n"
                                             "Downloading: \"https://x/y.pth\"\n"
                                             "pylabtools.py:170: UserWarning: constrained</pre>"))
    _page(tmp_path, "code.html", "<pre>path = '/home/me/data'</pre>")  # shown code is not an output
    problems = book.output_problems(tmp_path)
    assert all(p.startswith("leaky.html") for p in problems) and len(problems) == 3


def test_every_chapter_shows_its_banner_and_run_times():
    """The profile banner and the run times come from ``pages.header``: the cell that calls it
    must keep its output (``remove-input``, not ``remove-cell``), or the page hides both."""
    for path in book.notebook_chapters():
        if path.stem == "course":
            continue
        text = path.read_text(encoding="utf-8")
        cells = text.split("```{code-cell}")[1:]
        calls = [c for c in cells if "pages.header(" in c.split("```")[0]]
        assert calls, f"{path.name}: no pages.header(...) call"
        assert "pages.setup()" in text, f"{path.name}: no pages.setup() (warnings would reach the page)"
        for cell in calls:
            head = cell.split("```")[0].split("\n\n")[0]
            assert "remove-cell" not in head, f"{path.name}: pages.header runs in a remove-cell cell"
