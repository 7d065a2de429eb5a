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

from . import claims, config

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
            progress = kwargs.pop("ecgbook_progress", None) or cls.progress
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


#: Chapters that read another chapter's results files (stem part -> stem parts it waits for):
#: the MRM-Net chapter reuses the baseline chapter's runs (``chapters/05_mrmnet.md``, "The baseline
#: here is the baseline chapter's"); the side-by-side chapter's leak table reads chapters 03–06
#: (``ecgbook.side_by_side.leaks``). The :data:`SUMMARY_PAGES` wait for every other chapter.
DEPENDS_ON = {"05_mrmnet": ("02_baseline",),
              "07_side_by_side": ("03_transfer", "04_multimodal", "05_mrmnet", "06_lead_agnostic")}


def failed_path(out: Path) -> Path:
    """Where a failed or interrupted chapter run leaves its partial notebook for inspection
    (``<x>.failed.ipynb`` beside the staged ``<x>.ipynb``); the build never publishes it."""
    return out.with_name(out.stem + ".failed.ipynb")


def _run_chapter(src: Path, out: Path, profile: str, engine: str, log: Path | None = None) -> float:
    """Execute one chapter into ``out`` atomically; return the seconds it took.

    The notebook is executed into a uniquely named temporary file beside ``out``; on success it is
    marked ``ecgbook_run: {status: ok, profile, seconds}`` and moved onto ``out`` with
    :func:`os.replace`. On any failure or interruption ``out`` is removed (the build refuses the
    chapter) and the partial notebook is kept as :func:`failed_path`. With ``log``, the per-cell
    progress lines go to that file (parallel runs), else to the console.

    Raises ``RuntimeError`` naming the chapter and the failed notebook; re-raises
    ``KeyboardInterrupt``.
    """
    import contextlib
    import tempfile

    import jupytext
    import nbformat
    import papermill

    rel = Path(out.parent.name) / src.name
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    fd, source = tempfile.mkstemp(prefix=f".{src.stem}.", suffix=".source.ipynb", dir=out.parent)
    os.close(fd)
    fd, running = tempfile.mkstemp(prefix=f".{src.stem}.", suffix=".running.ipynb", dir=out.parent)
    os.close(fd)
    source, running = Path(source), Path(running)
    nbformat.write(nb, source)
    t0 = time.perf_counter()
    n_code = sum(c.cell_type == "code" for c in nb.cells) + 1  # + papermill's injected parameters
    with contextlib.ExitStack() as stack:
        if log is not None:
            fh = stack.enter_context(open(log, "w", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(fh))
            stack.enter_context(contextlib.redirect_stderr(fh))
        try:
            papermill.execute_notebook(str(source), str(running), parameters={"profile": profile},
                                       kernel_name="python3", cwd=str(src.parent), progress_bar=False,
                                       engine_name=engine, ecgbook_progress=_Progress(src.stem, n_code))
            hide_bookkeeping(running)
            done = nbformat.read(running, as_version=4)
            done.metadata["ecgbook_run"] = {"status": "ok", "profile": profile,
                                            "seconds": round(time.perf_counter() - t0, 1)}
            nbformat.write(done, running)
            os.replace(running, out)
            failed_path(out).unlink(missing_ok=True)
        except BaseException as exc:
            out.unlink(missing_ok=True)
            failed = failed_path(out)
            if running.exists() and running.stat().st_size:
                os.replace(running, failed)
            if isinstance(exc, papermill.PapermillExecutionError):
                raise RuntimeError(f"{rel}: execution failed ({exc.ename}: {exc.evalue}); "
                                   f"partial notebook (not published): {failed}") from exc
            raise
        finally:
            source.unlink(missing_ok=True)
            running.unlink(missing_ok=True)
    return time.perf_counter() - t0


def _worker(src: str, out: str, profile: str, log: str) -> float:
    """A parallel runner's process: one chapter, progress lines to ``log`` (:func:`_run_chapter`)."""
    os.environ["ECGBOOK_PROGRESS"] = "0"
    os.environ["ECGBOOK_PROFILE"] = profile
    return _run_chapter(Path(src), Path(out), profile, _register_progress_engine(), Path(log))


def _waits_for(src: Path, todo: list[Path]) -> list[Path]:
    """The chapters of ``todo`` that ``src`` must wait for (:data:`DEPENDS_ON`, :data:`SUMMARY_PAGES`)."""
    if src.stem in SUMMARY_PAGES:
        return [f for f in todo if f != src and f.stem not in SUMMARY_PAGES]
    needs = [d for key, deps in DEPENDS_ON.items() if key in src.stem for d in deps]
    return [f for f in todo if f != src and any(d in f.stem for d in needs)]


def _run_parallel(jobs_list: list[tuple[Path, Path]], profile: str, stage: Path, jobs: int) -> list[str]:
    """Run ``(source, staged notebook)`` pairs in up to ``jobs`` processes, in dependency order;
    return the failures (one line each). A chapter whose prerequisite failed is not run."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    logs = stage / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pending = [src for src, _ in jobs_list]
    outs = dict(jobs_list)
    failures, failed, running = [], [], {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for src in list(pending):
                blockers = _waits_for(src, pending + list(running.values()) + failed)
                if any(b in failed for b in blockers):  # a chapter it reads failed: not run
                    pending.remove(src)
                    failed.append(src)
                    failures.append(f"{src.parent.name}/{src.name}: not run (a chapter it reads failed)")
                    continue
                if blockers or len(running) >= jobs:
                    continue
                pending.remove(src)
                log = logs / f"{src.stem}.log"
                print(f"[ecgbook] executing {src.parent.name}/{src.name} (profile {profile}; log {log})",
                      flush=True)
                running[pool.submit(_worker, str(src), str(outs[src]), profile, str(log))] = src
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                src = running.pop(fut)
                try:
                    seconds = fut.result()
                    print(f"[ecgbook] {src.parent.name}/{src.name} done in {seconds:.0f} s", flush=True)
                except Exception as exc:  # noqa: BLE001 - reported; the others go on
                    failed.append(src)
                    failures.append(str(exc))
                    print(f"[ecgbook] {src.parent.name}/{src.name} FAILED: {exc}", flush=True)
    return failures


def execute(profile: str, chapters: list[str] | None = None, root: Path | None = None,
            jobs: int = 1) -> Path:
    """Execute the notebook chapters of ``profile`` into ``_build/stage/<profile>`` and return that folder.

    ``chapters`` restricts execution to chapter files whose stem contains one of the strings
    (:func:`select_chapters`: an unknown name raises ``ValueError`` listing the valid ones).
    ``jobs``: how many chapters run at once, each in its own process, in dependency order
    (:data:`DEPENDS_ON`, the :data:`SUMMARY_PAGES` last); with ``jobs > 1`` the per-cell lines go
    to ``_build/stage/<profile>/logs/<chapter>.log`` and the console shows a line per chapter.
    Progress (``jobs == 1``): a line per chapter and a line per code cell with its elapsed time.

    Each chapter is executed into a temporary file and replaces the staged notebook only on
    success (marked ``ecgbook_run: {status: ok, profile}``, which :func:`build_html` requires); a
    failed or interrupted one leaves no staged notebook, only ``<x>.failed.ipynb``. A second runner
    on the same staging folder waits for the first (a file lock; it prints that it waits).

    Raises ``RuntimeError`` naming the chapter(s) whose execution failed, or the staging folder
    when it cannot be written.
    """
    from filelock import Timeout

    from .files import file_lock

    root = root or config.project_root()
    selected = select_chapters(chapters, root)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    engine = _register_progress_engine()
    stage = root / "_build" / "stage" / profile
    try:
        stage.mkdir(parents=True, exist_ok=True)
        lock = file_lock(stage)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(f"[ecgbook] another runner is using {stage}; waiting for it to finish", flush=True)
            lock.acquire()
    except PermissionError as exc:
        raise RuntimeError(f"cannot write the staging folder {stage} ({exc.strerror}); "
                           "make the _build folder writable or remove it") from exc
    try:
        return _execute_locked(profile, chapters, root, selected, engine, stage, jobs)
    finally:
        lock.release()


def _execute_locked(profile, chapters, root, selected, engine, stage, jobs) -> Path:
    """:func:`execute` once it holds the staging folder's lock."""
    for name in BOOK_FILES:
        if (root / name).exists():
            shutil.copy2(root / name, stage / name)
    for name in BOOK_FOLDERS:
        if (root / name).is_dir():
            shutil.copytree(root / name, stage / name, dirs_exist_ok=True)
    stage_package(root, stage)
    os.environ["ECGBOOK_PROGRESS"] = "0"
    os.environ["ECGBOOK_PROFILE"] = profile
    todo = []
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
        todo.append((src, out))
    if jobs > 1:
        failures = _run_parallel(todo, profile, stage, jobs)
        if failures:
            raise RuntimeError(f"{len(failures)} chapter(s) failed (not published):\n  " + "\n  ".join(failures))
        return stage
    for src, out in todo:
        rel = src.relative_to(root)
        print(f"[ecgbook] executing {rel} (profile {profile})", flush=True)
        seconds = _run_chapter(src, out, profile, engine)
        print(f"[ecgbook] {rel} done in {seconds:.0f} s", flush=True)
    return stage


def publish_results(stage: Path, profile: str, results_root: Path | None = None) -> list[Path]:
    """Copy ``results/<profile>/*.json`` into the staged book's ``_static/results-files/<profile>/``
    (not ``_static/results/``: Sphinx applies the book's ``exclude_patterns``, which name
    ``results``, to static files too), so that the HTML serves each chapter's results file next to
    its page (the link in
    :func:`ecgbook.pages.header_markdown`). Returns the copied files (none when nothing ran yet)."""
    src = (results_root or config.results_dir()) / profile
    dst = stage / "_static" / "results-files" / profile
    if dst.exists():
        shutil.rmtree(dst)  # files of chapters no longer run must not linger
    copied = []
    for f in sorted(src.glob("*.json")) if src.is_dir() else []:
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst / f.name)
        copied.append(dst / f.name)
    return copied


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


def build_html(stage: Path, dest: Path, allow_unexecuted: bool = False, edition: str = "teacher") -> Path:
    """Build the staged book with Jupyter Book (``-W -n --keep-going``) and copy the HTML to ``dest``.

    ``edition="student"`` builds a copy of the stage without the exercises' solutions
    (:func:`ecgbook.edition.student_copy`, in ``<stage>.student``) and checks that the HTML holds
    none (``RuntimeError`` naming the pages otherwise).

    Before the build, the prose of every page is checked against its results file
    (:func:`ecgbook.claims.check_stage`: record counts, folds, label fractions, what ran, the
    directions of paired differences).

    Raises ``RuntimeError`` naming each chapter that has not been executed into ``stage`` by a
    finished run of the profile ``stage.name`` (no ``ecgbook_run: {status: ok}`` mark, a failed or
    interrupted run, another profile), each sentence of a page that its results file contradicts
    (chapter, cell, sentence, the result), or when the build fails or emits a Sphinx warning.
    """
    root = config.project_root()
    import nbformat

    problems, placeholders = [], []
    for f in chapter_files(root):
        if not is_notebook(f):
            continue
        rel = f.relative_to(root)
        staged = stage / rel.with_suffix(".ipynb")
        if not staged.exists():
            failed = failed_path(staged)
            problems.append(f"{rel}: its run failed or was interrupted (partial notebook, not published: "
                            f"{failed})" if failed.exists() else f"{rel}: not executed into {stage}")
            continue
        meta = nbformat.read(staged, as_version=4).metadata
        run = meta.get("ecgbook_run") or {}
        if meta.get("ecgbook_unexecuted"):
            placeholders.append(rel)
        elif run.get("status") != "ok":
            problems.append(f"{rel}: {staged} is not from a finished run")
        elif run.get("profile") != stage.name:
            problems.append(f"{rel}: executed for profile {run.get('profile')!r}, not {stage.name!r}")
    if problems:
        raise RuntimeError("chapters not ready to publish (run them first):\n  " + "\n  ".join(problems))
    if placeholders and not allow_unexecuted:
        raise RuntimeError(f"staged without outputs (a partial build): {[str(p) for p in placeholders]}; "
                           "execute them, or build with --chapters for a partial book")
    for p in placeholders:
        print(f"[ecgbook] note: {p} is shown without outputs (partial build)", flush=True)
    contradictions = claims.check_stage(stage)
    if contradictions:
        raise RuntimeError(f"{len(contradictions)} sentence(s) of the pages contradict their results files "
                           "(ecgbook.claims):\n  " + "\n  ".join(contradictions))
    publish_results(stage, stage.name)
    from . import edition as editions

    if edition not in editions.EDITIONS:
        raise ValueError(f"edition must be one of {editions.EDITIONS}, got {edition!r}")
    if edition == "student":
        stage = stage.parent / f"{stage.name}.student"
        removed = editions.student_copy(stage.parent / stage.name.removesuffix(".student"), stage)
        print(f"[ecgbook] student edition: {sum(removed.values())} solutions removed from "
              f"{len(removed)} files, in {stage}", flush=True)
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
    if edition == "student":
        left = editions.solutions_left(stage / "_build" / "html")
        if left:
            raise RuntimeError(f"the student edition still shows solutions in: {left}")
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


def output_dir(profile: str, root: Path | None = None, edition: str = "teacher") -> Path:
    """Where a profile's HTML goes: ``_build/html`` for tutorial (the default), else
    ``_build/<profile>/html`` (e.g. ``_build/smoke/html``, ``_build/classroom/html``); the
    student edition in ``student/html`` instead of ``html`` (``_build/student/html``,
    ``_build/classroom/student/html``)."""
    root = root or config.project_root()
    leaf = "student/html" if edition == "student" else "html"
    return root / "_build" / (leaf if profile == "tutorial" else f"{profile}/{leaf}")


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
        if not info.name.endswith(".__main__")  # importing an entry point runs it
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
