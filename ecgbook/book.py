"""The book runner: execute every chapter of a profile with papermill, then build the HTML.

Chapters are Jupytext text files (``chapters/*.md``, MyST notebooks), the source of truth. The
runner converts each to a notebook in a staging folder (``_build/stage/<profile>/``; the text
files are never touched), executes it with papermill (``-p profile <profile>``, working folder
``chapters/``), and builds the staged book with Jupyter Book with execution off and Sphinx
warnings as errors, so the HTML shows exactly what papermill ran.

Used by ``python -m ecgbook`` (see :mod:`ecgbook.__main__`) and the Makefile.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import config

#: Files and folders of the book copied into the staging folder as they are.
BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")


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


def execute(profile: str, chapters: list[str] | None = None, root: Path | None = None) -> Path:
    """Execute the notebook chapters of ``profile`` into ``_build/stage/<profile>`` and return that folder.

    ``chapters`` restricts execution to chapter files whose stem contains one of the strings.
    Raises ``RuntimeError`` naming the chapter whose execution failed (the partly executed notebook
    stays in the staging folder for inspection).
    """
    import jupytext
    import nbformat
    import papermill

    root = root or config.project_root()
    stage = root / "_build" / "stage" / profile
    stage.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        if (root / name).exists():
            shutil.copy2(root / name, stage / name)
    os.environ["ECGBOOK_PROGRESS"] = "0"
    os.environ["ECGBOOK_PROFILE"] = profile
    for src in chapter_files(root, strict=not chapters):
        rel = src.relative_to(root)
        (stage / rel.parent).mkdir(parents=True, exist_ok=True)
        if not is_notebook(src):
            shutil.copy2(src, stage / rel)
            continue
        out = stage / rel.with_suffix(".ipynb")
        if chapters and not any(c in src.stem for c in chapters):
            continue
        nb = jupytext.read(src)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata.pop("jupytext", None)
        source = stage / rel.with_name(rel.stem + ".source.ipynb")
        nbformat.write(nb, source)
        t0 = time.perf_counter()
        print(f"[ecgbook] executing {rel} (profile {profile})", flush=True)
        try:
            papermill.execute_notebook(str(source), str(out), parameters={"profile": profile},
                                       kernel_name="python3", cwd=str(src.parent), progress_bar=False)
        except papermill.PapermillExecutionError as exc:
            raise RuntimeError(f"{rel}: execution failed ({exc.ename}: {exc.evalue}); see {out}") from exc
        finally:
            source.unlink(missing_ok=True)
        print(f"[ecgbook] {rel} done in {time.perf_counter() - t0:.0f} s", flush=True)
    return stage


def build_html(stage: Path, dest: Path) -> Path:
    """Build the staged book with Jupyter Book (``-W -n --keep-going``) and copy the HTML to ``dest``.

    Raises ``RuntimeError`` when a chapter has not been executed into ``stage``, or when the build
    fails or emits a Sphinx warning.
    """
    root = config.project_root()
    unexecuted = [f.relative_to(root) for f in chapter_files(root) if is_notebook(f)
                  and not (stage / f.relative_to(root).with_suffix(".ipynb")).exists()]
    if unexecuted:
        raise RuntimeError(f"not executed into {stage}: {[str(u) for u in unexecuted]}; run them first")
    executable = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(executable) if executable.exists() else "jupyter-book", "build", str(stage), "--path-output", str(stage),
           "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build of {stage} failed (exit {proc.returncode}); see the log above")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(stage / "_build" / "html", dest)
    return dest / "index.html"


def output_dir(profile: str, root: Path | None = None) -> Path:
    """Where a profile's HTML goes: ``_build/html`` for tutorial and paper, ``_build/smoke/html`` for smoke."""
    root = root or config.project_root()
    return root / "_build" / ("smoke/html" if profile == "smoke" else "html")
