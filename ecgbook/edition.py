"""The student edition: the book and the lab notebooks without the exercises' solutions.

Solutions are sphinx-exercise ``{solution}`` directives in the chapters' Markdown (see
``chapters/*.md``), fenced with backticks or colons::

    ````{solution} ex-primer-leads
    :class: dropdown
    ...
    ````

:func:`strip_solutions` removes every such block from a text, :func:`strip_notebook` from the
Markdown cells of a notebook, and :func:`student_copy` writes a copy of a staged book (or of the
``chapters/`` folder, for ``make lab EDITION=student``) in which no solution is left: not in the
HTML, not in the downloadable sources (``_sources``) and not in the notebooks a student opens.
The copy's ``_config.yml`` also sets sphinx-exercise's ``hide_solutions`` (a second guard: a
solution the stripping missed is still not rendered). Used by :mod:`ecgbook.book` and the
Makefile's ``EDITION=student``.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

EDITIONS = ("teacher", "student")
#: A solution as sphinx-exercise renders it in HTML (a block with the class ``solution``).
_RENDERED = re.compile(r'class="[^"]*\bsolution\b')
#: Opening fence of a solution directive: 3 or more backticks or colons, then ``{solution}``.
_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution\}")


def strip_solutions(text: str, source: str = "text") -> tuple[str, int]:
    """``text`` without its ``{solution}`` blocks, and how many were removed.

    A block runs from its opening fence (e.g. ``````{solution} ex-1``) to the first later line
    that is only the same fence character, at least as many times (MyST's closing rule), so a
    shorter inner code fence does not end it. A blank line left where a block was is merged with
    its neighbour.

    Raises ``ValueError`` naming ``source`` and the line when a solution block is never closed
    (stripping the rest of the page would lose the chapter's text).
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    removed = 0
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        fence = match.group("fence")
        closing = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        if end is None:
            raise ValueError(f"{source}: the solution block opened on line {i + 1} is never closed "
                             f"(expected a line of {fence!r})")
        removed += 1
        i = end + 1
        if out and not out[-1].strip() and i < len(lines) and not lines[i].strip():
            i += 1  # one blank line where the block was, not two
    return "".join(out), removed


def strip_notebook(path: Path) -> int:
    """Remove the solution blocks from the Markdown cells of the notebook at ``path`` (in place,
    written atomically); returns how many were removed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    removed = 0
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        cell.source, n = strip_solutions(cell.source, f"{path} cell {k}")
        removed += n
    if removed:
        tmp = path.with_name(path.name + ".part")
        nbformat.write(nb, tmp)
        tmp.replace(path)
    return removed


def _hide_in_config(config: Path) -> None:
    doc = yaml.safe_load(config.read_text()) or {}
    doc.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    config.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def student_copy(source: Path, dest: Path) -> dict[str, int]:
    """Copy the folder ``source`` (a staged book, or ``chapters/``) to ``dest`` without solutions.

    Every ``.md`` and ``.ipynb`` below ``dest`` is stripped (:func:`strip_solutions`), and a
    ``_config.yml`` at its top sets ``hide_solutions: true``. ``dest`` is replaced as a whole.
    Returns ``{relative path: solutions removed}`` for the files that had any.

    Raises ``ValueError`` when ``dest`` is ``source`` or inside it (the copy would copy itself).
    """
    source, dest = Path(source).resolve(), Path(dest).resolve()
    if dest == source or source in dest.parents:
        raise ValueError(f"the student edition's folder {dest} must not be inside {source}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints", "__pycache__"))
    removed = {}
    for path in sorted(dest.rglob("*")):
        if path.suffix == ".md":
            text, n = strip_solutions(path.read_text(encoding="utf-8"), str(path.relative_to(dest)))
            if n:
                path.write_text(text, encoding="utf-8")
        elif path.suffix == ".ipynb":
            n = strip_notebook(path)
        else:
            continue
        if n:
            removed[str(path.relative_to(dest))] = n
    if (dest / "_config.yml").exists():
        _hide_in_config(dest / "_config.yml")
    return removed


def solutions_left(folder: Path) -> list[str]:
    """Files below ``folder`` (``.md``, ``.ipynb``, ``.html``, ``.txt`` sources) that still hold a
    solution: a ``{solution}`` directive or sphinx-exercise's rendered ``solution`` block."""
    hits = []
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix not in (".md", ".ipynb", ".html", ".txt") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "{solution}" in text or _RENDERED.search(text):
            hits.append(str(path.relative_to(folder)))
    return hits


def student_chapters(root: Path | None = None) -> Path:
    """Write the chapters without solutions to ``<root>/_build/student/chapters`` (for
    ``make lab EDITION=student``) and return that folder; the notebooks open there as in
    ``chapters/`` (the package, data and results are found through :mod:`ecgbook.config`)."""
    from . import config

    root = Path(root or config.project_root())
    return _chapters_copy(root / "chapters", root / "_build" / "student" / "chapters")


def _chapters_copy(source: Path, dest: Path) -> Path:
    student_copy(source, dest)
    left = solutions_left(dest)
    if left:
        raise RuntimeError(f"solutions left in the student chapters: {left}")
    return dest
