"""The book runner: execute every chapter of a profile with papermill, then build the HTML.

Chapters are Jupytext text files (``chapters/*.md``, MyST notebooks), the source of truth. The
runner converts each to a notebook in a staging folder (``_build/stage/<profile>/``; the text
files are never touched), executes it with papermill (``-p profile <profile>``, working folder
``chapters/``), and builds the staged book with Jupyter Book with execution off and Sphinx
warnings as errors, so the HTML shows exactly what papermill ran.

Used by ``python -m ecgbook`` (see :mod:`ecgbook.__main__`) and the Makefile.
"""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import config

#: Files of the book copied into the staging folder as they are.
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
#: Folders of the book copied into the staging folder (``_static``: the book's CSS).
BOOK_FOLDERS = ("_static",)
#: Pages that summarise the other chapters' results files (the course page's run-time table):
#: executed after every chapter, so that they read the run that is building the book.
SUMMARY_PAGES = ("course",)


def chapter_files(root: Path | None = None, strict: bool = True) -> list[Path]:
    """The chapter text files listed in ``_toc.yml``, in order (pages without code included).

    Raises ``FileNotFoundError`` for a listed chapter without a file, unless ``strict`` is false
    (then it is left out).
    """
    root = root or config.project_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        for key in ("chapters", "sections"):
            for entry in node.get(key, []) or []:
                if "file" in entry:
                    names.append(entry["file"])
                walk(entry)
        for part in node.get("parts", []) or []:
            walk(part)

    walk(toc)
    files = []
    for name in names:
        matches = [root / f"{name}{ext}" for ext in (".md", ".py", ".ipynb") if (root / f"{name}{ext}").exists()]
        if not matches and not strict:
            continue
        if not matches:
            raise FileNotFoundError(f"_toc.yml lists {name!r} but no {name}.md/.py/.ipynb exists")
        files.append(matches[0])
    return files


def is_notebook(path: Path) -> bool:
    """Whether a chapter text file is a Jupytext notebook (has a ``jupytext`` header with a kernel)."""
    head = path.read_text()[:2000]
    return "jupytext:" in head and "kernelspec:" in head


def notebook_chapters(root: Path | None = None) -> list[Path]:
    """The chapter files of ``_toc.yml`` that are notebooks (executed by the runner), in order."""
    return [f for f in chapter_files(root, strict=False) if is_notebook(f)]


def select_chapters(names: list[str] | None, root: Path | None = None) -> list[Path]:
    """The notebook chapters matching ``names`` (each a part of a file name, e.g. ``baseline`` or
    ``02_baseline_ptbxl``); all of them for ``None`` or an empty list.

    Raises ``ValueError`` listing the valid names when a name matches no notebook chapter.
    """
    available = notebook_chapters(root)
    if not names:
        return available
    unknown = [n for n in names if not any(n in f.stem for f in available)]
    if unknown:
        raise ValueError(f"unknown chapter name(s) {unknown}; valid names: "
                         f"{', '.join(f.stem for f in available)} (any part of one, e.g. 'baseline')")
    return [f for f in available if any(n in f.stem for n in names)]


def execution_order(files: list[Path]) -> list[Path]:
    """``files`` in the order the runner executes them: the table-of-contents order, with the
    :data:`SUMMARY_PAGES` moved to the end (they read the results files the chapters write)."""
    return sorted(files, key=lambda f: f.stem in SUMMARY_PAGES)  # stable: keeps the TOC order


class _Progress:
    """Prints one line per executed code cell: index, elapsed time of the cell and of the chapter."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self.t0 = self.t_cell = time.perf_counter()

    def start(self) -> None:
        self.t_cell = time.perf_counter()

    def complete(self, cell) -> None:
        if cell.cell_type != "code":
            return
        self.done += 1
        now = time.perf_counter()
        first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
        print(f"[ecgbook]   {self.label} cell {self.done}/{self.total}: {now - self.t_cell:6.1f} s "
              f"(total {now - self.t0:6.0f} s)  {first[:60]}", flush=True)


def _register_progress_engine() -> str:
    """Register (once) a papermill engine that reports each code cell as it completes."""
    from papermill.engines import NBClientEngine, papermill_engines

    class ProgressEngine(NBClientEngine):
        progress: _Progress | None = None

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            progress = cls.progress
            if progress is not None:
                start, complete = nb_man.cell_start, nb_man.cell_complete

                def cell_start(cell, cell_index=None, **kw):
                    progress.start()
                    return start(cell, cell_index, **kw)

                def cell_complete(cell, cell_index=None, **kw):
                    out = complete(cell, cell_index, **kw)
                    progress.complete(cell)
                    return out

                nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    if "ecgbook" not in papermill_engines._engines:
        papermill_engines.register("ecgbook", ProgressEngine)
    return "ecgbook"


def execute(profile: str, chapters: list[str] | None = None, root: Path | None = None) -> Path:
    """Execute the notebook chapters of ``profile`` into ``_build/stage/<profile>`` and return that folder.

    ``chapters`` restricts execution to chapter files whose stem contains one of the strings
    (:func:`select_chapters`: an unknown name raises ``ValueError`` listing the valid ones).
    Progress: a line per chapter and a line per code cell with its elapsed time.
    Raises ``RuntimeError`` naming the chapter whose execution failed (the partly executed notebook
    stays in the staging folder for inspection).
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.engines import papermill_engines

    root = root or config.project_root()
    selected = select_chapters(chapters, root)
    engine = _register_progress_engine()
    stage = root / "_build" / "stage" / profile
    stage.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        if (root / name).exists():
            shutil.copy2(root / name, stage / name)
    for name in BOOK_FOLDERS:
        if (root / name).is_dir():
            shutil.copytree(root / name, stage / name, dirs_exist_ok=True)
    stage_package(root, stage)
    os.environ["ECGBOOK_PROGRESS"] = "0"
    os.environ["ECGBOOK_PROFILE"] = profile
    for src in execution_order(chapter_files(root, strict=not chapters)):
        rel = src.relative_to(root)
        (stage / rel.parent).mkdir(parents=True, exist_ok=True)
        if not is_notebook(src):
            (stage / rel.with_suffix(".ipynb")).unlink(missing_ok=True)  # was a notebook before
            shutil.copy2(src, stage / rel)
            continue
        if (stage / rel).suffix != ".ipynb":
            (stage / rel).unlink(missing_ok=True)  # a text copy from when it was not a notebook
        out = stage / rel.with_suffix(".ipynb")
        if src not in selected:
            if not out.exists():  # keep links to it resolvable in a partial build: stage it unexecuted
                _stage_unexecuted(src, out)
                print(f"[ecgbook] {rel}: not executed (not in --chapters); staged without outputs", flush=True)
            continue
        nb = jupytext.read(src)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata.pop("jupytext", None)
        source = stage / rel.with_name(rel.stem + ".source.ipynb")
        nbformat.write(nb, source)
        t0 = time.perf_counter()
        print(f"[ecgbook] executing {rel} (profile {profile})", flush=True)
        n_code = sum(c.cell_type == "code" for c in nb.cells) + 1  # + papermill's injected parameters
        papermill_engines.get_engine(engine).progress = _Progress(rel.stem, n_code)
        try:
            papermill.execute_notebook(str(source), str(out), parameters={"profile": profile},
                                       kernel_name="python3", cwd=str(src.parent), progress_bar=False,
                                       engine_name=engine)
        except papermill.PapermillExecutionError as exc:
            raise RuntimeError(f"{rel}: execution failed ({exc.ename}: {exc.evalue}); see {out}") from exc
        finally:
            source.unlink(missing_ok=True)
            papermill_engines.get_engine(engine).progress = None
        hide_bookkeeping(out)
        print(f"[ecgbook] {rel} done in {time.perf_counter() - t0:.0f} s", flush=True)
    return stage


def stage_package(root: Path, stage: Path) -> None:
    """Copy the package's source (``ecgbook/**/*.py``) into the staging folder, so that the pages'
    ``literalinclude`` of ``../ecgbook/...`` shows the code of this checkout."""
    target = stage / "ecgbook"
    if not (root / "ecgbook").is_dir():
        return
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(root / "ecgbook", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


#: Cell tags whose cells are bookkeeping: the parameters and papermill's injected parameters.
BOOKKEEPING_TAGS = ("parameters", "injected-parameters")


def hide_bookkeeping(path: Path) -> None:
    """Tag the parameters cell and papermill's injected-parameters cell of an executed notebook
    ``remove-cell``, so the book shows neither (the reader sees the profile in the banner)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if any(t in tags for t in BOOKKEEPING_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        nbformat.write(nb, path)


def _stage_unexecuted(src: Path, out: Path) -> None:
    """Write ``src`` as a notebook without outputs at ``out`` (partial builds only)."""
    import jupytext
    import nbformat

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    nb.metadata["ecgbook_unexecuted"] = True
    nbformat.write(nb, out)


def build_html(stage: Path, dest: Path, allow_unexecuted: bool = False) -> Path:
    """Build the staged book with Jupyter Book (``-W -n --keep-going``) and copy the HTML to ``dest``.

    Raises ``RuntimeError`` when a chapter has not been executed into ``stage``, or when the build
    fails or emits a Sphinx warning.
    """
    root = config.project_root()
    unexecuted = [f.relative_to(root) for f in chapter_files(root) if is_notebook(f)
                  and not (stage / f.relative_to(root).with_suffix(".ipynb")).exists()]
    if unexecuted:
        raise RuntimeError(f"not executed into {stage}: {[str(u) for u in unexecuted]}; run them first")
    import nbformat

    placeholders = [f.relative_to(root) for f in chapter_files(root) if is_notebook(f)
                    and nbformat.read(stage / f.relative_to(root).with_suffix(".ipynb"), as_version=4)
                    .metadata.get("ecgbook_unexecuted")]
    if placeholders and not allow_unexecuted:
        raise RuntimeError(f"staged without outputs (a partial build): {[str(p) for p in placeholders]}; "
                           "execute them, or build with --chapters for a partial book")
    for p in placeholders:
        print(f"[ecgbook] note: {p} is shown without outputs (partial build)", flush=True)
    executable = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(executable) if executable.exists() else "jupyter-book", "build", str(stage), "--path-output", str(stage),
           "-W", "-n", "--keep-going", "--all"]  # --all: every page re-read, so no warning hides
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build of {stage} failed (exit {proc.returncode}); see the log above")
    problems = check_html(stage / "_build" / "html")
    if problems:
        raise RuntimeError("the built pages have rendering problems:\n  " + "\n  ".join(problems))
    leaks = output_problems(stage / "_build" / "html")
    for line in leaks:
        print(f"[ecgbook] output hygiene: {line}", flush=True)
    if leaks and os.environ.get("ECGBOOK_STRICT_OUTPUTS", "0") not in ("0", ""):
        raise RuntimeError(f"{len(leaks)} cell outputs show machine paths, downloads or warnings "
                           "(ECGBOOK_STRICT_OUTPUTS is set)")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(stage / "_build" / "html", dest)
    return dest / "index.html"


class _PageText(html.parser.HTMLParser):
    """Collects a page's visible text outside code (``pre``/``code``/``script``/``style``) and the
    ``src`` of its scripts."""

    SKIP = {"pre", "code", "script", "style", "textarea"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.lines: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            src = dict(attrs).get("src")
            if src:
                self.scripts.append(src)
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.lines.extend(data.splitlines())


#: Raw MyST that a reader should never see as text: a colon fence, or a backtick-fenced directive.
RAW_MYST = re.compile(r"^\s*(:::+\s*(\{[\w:-]+\})?|```+\s*\{[\w:-]+\})")
REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)


#: What a reader should not see in a cell's output: machine paths, download lines, library warnings.
OUTPUT_LEAKS = re.compile(r"(?<![\w.])/(?:root|home|work|tmp|Users|var/folders)/[^\s<\"']+"
                          r"|Downloading[: ]|\b[A-Z][A-Za-z]*Warning: ")


def output_problems(html_dir: Path) -> list[str]:
    """Cell outputs of the built pages that show a machine path, a download line or a library
    warning (one line each: page and the offending text)."""
    out = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        rel = page.relative_to(html_dir)
        if rel.parts[0] in ("_static", "_sources", "_images"):
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        for block in re.findall(r'<div class="cell_output[^"]*"(.*?)</div>\s*</div>', text, re.S):
            for m in OUTPUT_LEAKS.finditer(block):
                out.append(f"{rel}: {m.group(0)[:70]}")
    return out


def check_html(html_dir: Path) -> list[str]:
    """Problems of the built pages a reader would see: raw ``:::``/directive text outside code, and
    math (or any script) loaded from a remote URL, or a MathJax script missing from ``_static``.

    Returns one line per problem (page, line), empty when the pages are clean.
    """
    html_dir = Path(html_dir)
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir)
        if rel.parts[0] in ("_static", "_sources", "_images"):
            continue
        parser = _PageText()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for line in parser.lines:
            if RAW_MYST.match(line):
                problems.append(f"{rel}: raw MyST text {line.strip()[:60]!r}")
        for src in parser.scripts:
            if REMOTE.match(src):
                problems.append(f"{rel}: loads a script from a remote URL: {src}")
            elif "mathjax" in src.lower():
                local = (page.parent / src.split("?")[0]).resolve()
                if not local.is_file():
                    problems.append(f"{rel}: MathJax script {src} is not in the build")
    return problems


def output_dir(profile: str, root: Path | None = None) -> Path:
    """Where a profile's HTML goes: ``_build/html`` for tutorial (the default), else
    ``_build/<profile>/html`` (e.g. ``_build/smoke/html``, ``_build/classroom/html``)."""
    root = root or config.project_root()
    return root / "_build" / ("html" if profile == "tutorial" else f"{profile}/html")


#: Longest code line a reader sees without scrolling in the book's text column.
CODE_LINE_LIMIT = 88


def long_code_lines(path: Path, limit: int = CODE_LINE_LIMIT) -> list[tuple[int, int]]:
    """``(line number, length)`` of every code line longer than ``limit`` characters in the
    *visible* code cells of a MyST chapter (cells tagged ``remove-input`` or ``remove-cell`` are
    not shown, so they are skipped; ``hide-input`` cells can be opened, so they count)."""
    out = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```{code-cell}"):
            i += 1
            continue
        i += 1
        header = []
        if i < len(lines) and lines[i] == "---":  # YAML cell metadata
            i += 1
            while i < len(lines) and lines[i] != "---":
                header.append(lines[i])
                i += 1
            i += 1
        while i < len(lines) and lines[i].startswith(":") and not lines[i].startswith("::"):
            header.append(lines[i])
            i += 1
        hidden = any("remove-input" in h or "remove-cell" in h for h in header)
        while i < len(lines) and not lines[i].startswith("```"):
            if not hidden and len(lines[i]) > limit:
                out.append((i + 1, len(lines[i])))
            i += 1
        i += 1
    return out


_INCLUDE = re.compile(r"```\{literalinclude\} \.\./(\S+)\n:pyobject: (\S+)")
_SHOW_SOURCE = re.compile(r"pages\.show_source\((?:getattr\(\w+, \")?([\w.]+)")


def long_included_lines(path: Path, limit: int = CODE_LINE_LIMIT) -> list[str]:
    """Lines longer than ``limit`` characters in the package code a chapter shows.

    Checks each ``literalinclude`` of ``../ecgbook/…`` with ``:pyobject:`` (the whole
    object, docstring included) and each object passed to ``pages.show_source`` (as it
    renders it, docstring reduced to its summary), both through
    :func:`ecgbook.pages.source_markdown`. Returns one
    ``"<file>:<object>: line <n> (<length> characters)"`` per long line.

    Raises ``LookupError`` when a shown object cannot be found, so a renamed function
    fails here rather than as an empty block in the book.
    """
    import importlib
    import pkgutil

    from . import pages

    text = Path(path).read_text(encoding="utf-8")
    shown = []  # (label, object, docstring mode)
    for file, dotted in _INCLUDE.findall(text):
        obj = importlib.import_module(file.removesuffix(".py").replace("/", "."))
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise LookupError(
                    f"{Path(path).name}: {file} has no {dotted!r} to include"
                )
        shown.append((f"{file}:{dotted}", obj, "full"))
    package = importlib.import_module(__package__)
    modules = [
        info.name
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]
    for name in _SHOW_SOURCE.findall(text):
        last = name.split(".")[-1]
        found = (getattr(importlib.import_module(m), last, None) for m in modules)
        obj = next(
            (
                o
                for o in found
                if callable(o) and o.__module__.startswith(package.__name__)
            ),
            None,
        )
        if obj is None:
            raise LookupError(
                f"{Path(path).name}: pages.show_source({name}) names no package object"
            )
        shown.append((f"{obj.__module__}:{last}", obj, "summary"))
    out = []
    for label, obj, docstring in shown:
        lines = pages.source_markdown(obj, docstring=docstring).splitlines()[
            2:
        ]  # code only
        out += [
            f"{label}: line {k} ({len(line)} characters)"
            for k, line in enumerate(lines, 1)
            if len(line) > limit
        ]
    return out
