"""Page helpers for the chapters: the header (profile banner and run times), clean tables, quiet
outputs and figures laid out for the book's text column.

A chapter calls, in one hidden (``remove-input``) cell after its parameters::

    from ecgbook import pages
    pages.setup()                     # figure style for the column, quiet warnings and loggers
    pages.header("baseline", profile) # the banner + run time per profile, from the results files

and shows tables with ``pages.show_table(df)``. Figures get their number, caption and alt text
from the cell's ``mystnb: figure:`` metadata (as in ``chapters/02_baseline_ptbxl.md``); the
helpers here only make them legible at the column's width (about 680 px).

Nothing here is typed by hand: run times come from ``results/<profile>/<chapter>.json``
(``provenance.wall_time_s``), written by the chapter's own runs.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from . import config, profiles, results

#: Profiles in the order the run-time line lists them.
RUN_ORDER = ("smoke", "classroom", "tutorial", "paper")

#: Width of the book's text column in inches at the figures' 100 dpi layout (≈ 680 px).
COLUMN_INCHES = 6.8

#: Matplotlib settings for figures that stay legible when shown at the column's width.
STYLE = {
    "figure.figsize": (COLUMN_INCHES, 3.4),
    "figure.dpi": 100,
    "savefig.dpi": 150,  # the inline PNG is 1.5× the column: sharp when opened at full size
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

#: Loggers whose INFO lines (downloads, cache hits) stay out of a page's outputs.
QUIET_LOGGERS = ("ecgbook", "matplotlib", "PIL", "urllib3", "filelock", "numexpr")


def setup() -> None:
    """Prepare a chapter's outputs: column-sized matplotlib style, retina-free PNG output, no
    progress bars, library warnings and download/info log lines kept out of the page.

    Call it once, in a hidden cell, before the first figure. Safe outside IPython (then only the
    style and the filters are set).
    """
    import matplotlib

    matplotlib.rcParams.update(STYLE)
    os.environ["ECGBOOK_PROGRESS"] = "0"
    # Library warnings (a matplotlib UserWarning from IPython, scikit-learn's convergence and
    # small-class notes) are not the reader's business; the chapter states what matters in prose.
    for category in (UserWarning, FutureWarning, DeprecationWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category)
    try:
        from sklearn.exceptions import ConvergenceWarning
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        pass
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from IPython import get_ipython
        ip = get_ipython()
        if ip is not None:
            ip.run_line_magic("matplotlib", "inline")
            ip.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
            ip.run_line_magic("config", "InlineBackend.print_figure_kwargs = {'bbox_inches': 'tight'}")
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        pass


def run_times(chapter: str, root: Path | None = None) -> pd.DataFrame:
    """Wall time of the last run of ``chapter`` under each profile that has a results file.

    Returns a DataFrame indexed by profile (in :data:`RUN_ORDER`) with columns ``seconds``,
    ``device``, ``date`` (UTC day of the run), ``commit`` (first 8 characters) and ``problem``
    (``""``, or why the file is unusable); empty when the chapter was never run. Reads
    ``results/<profile>/<chapter>.json`` (``provenance.wall_time_s``) through
    :func:`ecgbook.results.read_results`, so a file that is corrupt, of another schema, written by
    another chapter or profile, or with a bad wall time is reported as a row with ``seconds`` NaN,
    ``device`` ``"unreadable results file"`` and the reason in ``problem``, never skipped or
    counted silently.
    """
    base = root or config.results_dir()
    rows = {}
    for prof in RUN_ORDER:
        path = base / prof / f"{chapter}.json"
        if not path.is_file():
            continue
        try:
            doc = results.read_results(chapter, prof, root=base)
            prov = doc["provenance"]
            rows[prof] = {"seconds": float(prov["wall_time_s"]), "device": prov["device"],
                          "date": str(doc.get("created", ""))[:10], "commit": prov["commit"][:8], "problem": ""}
        except (results.ResultsError, OSError) as exc:
            reason = exc.reason if isinstance(exc, results.ResultsError) else f"{type(exc).__name__}: {exc.strerror or exc}"
            rows[prof] = {"seconds": float("nan"), "device": "unreadable results file", "date": "", "commit": "",
                          "problem": reason}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["seconds", "device", "date", "commit", "problem"])


#: The chapters' results names (:func:`ecgbook.profiles.chapters`) in book order, with the page
#: each belongs to (``chapters/<page>.md``, whose ``pages.header`` call uses that name).
CHAPTER_PAGES = {"primer": "01_data_primer", "baseline": "02_baseline_ptbxl",
                 "transfer": "03_transfer_learning", "multimodal_ssl": "04_multimodal_ssl",
                 "mrmnet": "05_mrmnet", "lead_agnostic_ssl": "06_lead_agnostic_ssl",
                 "side_by_side": "07_side_by_side"}


def run_time_table(root: Path | None = None, *, strict: bool = False) -> pd.DataFrame:
    """Wall time of the last run of every chapter under each profile (the course page's table).

    One row per chapter in book order (:data:`CHAPTER_PAGES`; column ``chapter`` is the page's
    number and name, e.g. ``"02 baseline ptbxl"``), one column per profile that has at least one
    results file (:data:`RUN_ORDER`), each cell ``"<duration> on <device>"``, ``"not run"``, or
    ``"unreadable: <reason>"`` for a file :func:`ecgbook.results.read_results` refuses, and a last
    row ``whole book`` with the sum over the chapters, ``"not every chapter run"``, or, when every
    chapter ran but some file is unreadable, ``"≥ <sum of the readable ones>: <chapters> unreadable,
    not counted"``. Reads ``results/<profile>/<chapter>.json`` through :func:`run_times`.

    Raises
    ------
    ecgbook.results.ResultsError
        With ``strict=True``, for the first unreadable file (named), instead of the visible note.
    """
    times = {chapter: run_times(chapter, root) for chapter in CHAPTER_PAGES}
    if strict:
        base = root or config.results_dir()
        for chapter, t in times.items():
            for prof, r in t.iterrows():
                if r.problem:
                    raise results.ResultsError(base / prof / f"{chapter}.json", r.problem)
    profs = [p for p in RUN_ORDER if any(p in t.index for t in times.values())]
    names = {c: f"{page.partition('_')[0]} {page.partition('_')[2].replace('_', ' ')}"
             for c, page in CHAPTER_PAGES.items()}
    rows = []
    for chapter in CHAPTER_PAGES:
        row = {"chapter": names[chapter]}
        t = times[chapter]
        for prof in profs:
            if prof not in t.index:
                row[prof] = "not run"
            elif t.loc[prof, "problem"]:
                row[prof] = f"unreadable: {t.loc[prof, 'problem']}"
            else:
                row[prof] = f"{format_duration(t.loc[prof, 'seconds'])} on {t.loc[prof, 'device']}"
        rows.append(row)
    total = {"chapter": "whole book (sum)"}
    for prof in profs:
        run = [c for c in CHAPTER_PAGES if prof in times[c].index]
        bad = [c for c in run if times[c].loc[prof, "problem"]]
        secs = sum(times[c].loc[prof, "seconds"] for c in run if c not in bad)
        if len(run) < len(CHAPTER_PAGES):
            total[prof] = "not every chapter run"
        elif bad:
            total[prof] = f"≥ {format_duration(secs)}: {', '.join(names[c] for c in bad)} unreadable, not counted"
        else:
            total[prof] = format_duration(secs)
    rows.append(total)
    return pd.DataFrame(rows, columns=["chapter", *profs])


def format_duration(seconds: float) -> str:
    """``"8 s"``, ``"4.5 min"``, ``"36 min"``, ``"1 h 12 min"``; ``"?"`` for NaN."""
    if seconds != seconds:  # NaN
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 10:
        return f"{minutes:.1f} min"
    if minutes < 60:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(round(minutes % 60))} min"


def run_time_line(chapter: str, root: Path | None = None) -> str:
    """One Markdown line: the chapter's last measured wall time per profile, with the device.

    E.g. ``**Run time** (last run of each profile, read from its results file): smoke 1.2 min on
    cpu · tutorial 36 min on cpu (2 threads)``; says so when the chapter has never been run.
    """
    times = run_times(chapter, root)
    if times.empty:
        return "**Run time:** not measured yet (no results file for this chapter)."
    parts = [f"{prof} {format_duration(r.seconds)} on {r.device}" for prof, r in times.iterrows()]
    return "**Run time** (last run of each profile, read from its results file): " + " · ".join(parts)


REFERENCE_PROFILE = "tutorial"
"""The profile whose committed results are "the reference run" beside a smaller profile's page."""


def reference_run(chapter: str, profile: str, root: Path | None = None) -> dict | None:
    """The reference run of ``chapter`` beside a page executed with ``profile``: the committed
    ``results/tutorial/<chapter>.json`` (read with :func:`ecgbook.results.read_results`), or
    ``None`` when ``profile`` is ``tutorial`` or ``paper`` (the page is itself a reference) or when
    no reference run is committed. Raises :class:`ecgbook.results.ResultsError` for a reference
    file that exists but is unusable (never silently skipped)."""
    if profile not in RUN_ORDER:
        raise ValueError(f"reference_run: unknown profile {profile!r}; expected one of {RUN_ORDER}")
    if RUN_ORDER.index(profile) >= RUN_ORDER.index(REFERENCE_PROFILE):
        return None
    try:
        return results.read_results(chapter, REFERENCE_PROFILE, root=root)
    except FileNotFoundError:
        return None


def reference_run_markdown(chapter: str, profile: str, root: Path | None = None, *,
                           shown_below: bool = False) -> str:
    """One sentence naming the reference run of ``chapter`` (:func:`reference_run`): its profile,
    records, device, wall time and commit, and where its numbers are (``shown_below``: "the table
    below" too). ``""`` when the page is itself a reference; says so when none is committed."""
    if profile in RUN_ORDER and RUN_ORDER.index(profile) >= RUN_ORDER.index(REFERENCE_PROFILE):
        return ""
    doc = reference_run(chapter, profile, root)
    if doc is None:
        return f"No `{REFERENCE_PROFILE}` reference run of this chapter is committed yet."
    prov = doc["provenance"]
    data = "; ".join(f"{name}: {d['records']:,} records" for name, d in (prov.get("datasets") or {}).items()
                     if isinstance(d, dict) and "records" in d)
    where = f"`results/{REFERENCE_PROFILE}/{chapter}.json`" + (" and the table below" if shown_below else "")
    return (f"The reference run is this chapter's `{REFERENCE_PROFILE}` profile ({data + ', ' if data else ''}"
            f"{prov['device']}, {format_duration(float(prov['wall_time_s']))}, commit {prov['commit'][:7]}); "
            f"its numbers are in {where}.")


def results_link(chapter: str, profile: str) -> str:
    """An HTML link, from a chapter page of the built book, to this profile's results file of
    ``chapter`` (served by the book: :func:`ecgbook.book.publish_results`)."""
    return (f'<a href="../_static/results-files/{profile}/{chapter}.json" download>'
            f"results/{profile}/{chapter}.json</a>")


def header_markdown(chapter: str, profile: str, root: Path | None = None) -> str:
    """The MyST text of :func:`header`: the profile banner, then the run-time line and a link to
    download the results file every number on the page comes from."""
    return (profiles.banner(profile) + "\n\n" + run_time_line(chapter, root)
            + f"\n\n**Results file** (every number on this page): {results_link(chapter, profile)}")


def _header_id(chapter: str) -> str:
    return f"ecgbook-header-{chapter}"


def header(chapter: str, profile: str, root: Path | None = None) -> None:
    """Display the page header: the profile's banner (a MyST admonition) and the run times.

    At the top of a run the run times are those of the *previous* runs recorded in the results
    files; the chapter calls :func:`header_update` once it has written its results, which rewrites
    this output in place (an IPython display id, applied by the notebook executor) so that the
    executed page shows this run's own time. Chapter names are those of :mod:`ecgbook.profiles`.
    """
    from IPython.display import Markdown, display

    display(Markdown(header_markdown(chapter, profile, root)), display_id=_header_id(chapter))


def header_update(chapter: str, profile: str, root: Path | None = None) -> None:
    """Rewrite the output of :func:`header` with the run times as they are now, i.e. with the
    results file this run has just written (call it after ``write_results``)."""
    from IPython.display import Markdown, update_display

    update_display(Markdown(header_markdown(chapter, profile, root)), display_id=_header_id(chapter))


def tidy_table(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A copy of ``df`` ready to show: floats rounded to ``digits``, integral float columns as
    integers, and column names with underscores replaced by spaces (in every level of a
    MultiIndex, which stays one, so the HTML shows a spanning header, not tuples). The index
    is kept."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_float_dtype(s):
            finite = s.dropna()
            if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 1e12 and s.notna().all():
                out[col] = s.astype("int64")
            else:
                out[col] = s.round(digits)
    def name(c):
        if isinstance(c, float):  # e.g. a label fraction: 0.1, not 0.100000
            return f"{c:g}"
        return c.replace("_", " ") if isinstance(c, str) else c

    if isinstance(out.columns, pd.MultiIndex):  # kept as levels: the HTML spans the top level
        out.columns = pd.MultiIndex.from_tuples([tuple(name(x) for x in c) for c in out.columns],
                                                names=out.columns.names)
    else:
        out.columns = [name(c) for c in out.columns]
    return out


def table_html(df: pd.DataFrame, digits: int = 3, index: bool | None = None) -> str:
    """HTML of a table for the page: :func:`tidy_table`, with the index hidden when it is a plain
    0…n-1 integer index (``index=None``) or when ``index=False``; floats shown with ``digits``
    decimals and thousands separators for integers."""
    data = tidy_table(df, digits)
    if index is None:
        index = not isinstance(df.index, pd.RangeIndex)
    styler = data.style.format(precision=digits, thousands=",", na_rep="–")
    if not index:
        styler = styler.hide(axis="index")
    return styler.to_html()


def show_table(df: pd.DataFrame, digits: int = 3, index: bool | None = None) -> None:
    """Display a clean table: no stray integer index, floats rounded to ``digits`` decimals.

    ``index=None`` shows the index only when it carries names (not a plain ``RangeIndex``).
    Returns nothing, so a cell ending with it shows the table once.
    """
    from IPython.display import HTML, display

    display(HTML(table_html(df, digits, index)))


_PATH = re.compile(r"(?<![\w.])(/(?:[\w.+-]+/)+[\w.+-]*)")


def scrub_paths(text: str) -> str:
    """``text`` with absolute machine paths shortened to the part below the project, the data
    folder or the results folder (``<project>/results/tutorial/x.json`` →
    ``results/tutorial/x.json``); other absolute paths become their last two parts."""
    anchors = [(str(config.results_dir()), "results"), (str(config.data_dir()), "data"),
               (str(config.project_root()), ".")]

    def short(match: re.Match) -> str:
        path = match.group(1)
        for base, name in anchors:
            if path == base or path.startswith(base + "/"):
                rest = path[len(base):].lstrip("/")
                return f"{name}/{rest}" if name != "." else rest
        parts = [p for p in path.split("/") if p]
        return "…/" + "/".join(parts[-2:])

    return _PATH.sub(short, text)


@contextlib.contextmanager
def quiet():
    """Run a block with its printed lines, warnings and log lines kept out of the page.

    What it caught is available as the yielded ``io.StringIO`` (``.getvalue()``), e.g. to check a
    message. Exceptions still propagate (with their full message).
    """
    buffer = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.INFO)
        try:
            yield buffer
        finally:
            logging.disable(previous)


def source_markdown(obj, docstring: str = "summary") -> str:
    """The source of a package function or class as a MyST code block, headed by its file.

    ``docstring``: ``"summary"`` keeps only the docstring's first line, ``"none"`` drops it,
    ``"full"`` keeps it. Uses :func:`inspect.getsource`, so the page shows the code of the
    object as imported (wherever a module moved it), never a copy. Raises ``TypeError`` for an
    object without Python source.
    """
    import ast
    import inspect
    import textwrap

    if docstring not in ("summary", "none", "full"):
        raise ValueError(f"docstring: expected 'summary', 'none' or 'full', got {docstring!r}")
    source = textwrap.dedent(inspect.getsource(obj))
    lines = source.splitlines()
    if docstring != "full":
        node = ast.parse(source).body[0]
        first = node.body[0] if getattr(node, "body", None) else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            indent = " " * first.col_offset
            summary = first.value.value.strip().splitlines()[0].strip()
            keep = [f'{indent}"""{summary}"""'] if docstring == "summary" else []
            lines = lines[:first.lineno - 1] + keep + lines[first.end_lineno:]
    path = Path(inspect.getsourcefile(obj)).resolve()
    try:
        where = path.relative_to(config.PACKAGE_DIR.parent)
    except ValueError:
        where = path.name
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", "?"))
    return f"`{where}`, `{name}`:\n\n```python\n" + "\n".join(lines) + "\n```"


def show_source(obj, docstring: str = "summary") -> None:
    """Display :func:`source_markdown` (use in a ``remove-input`` cell)."""
    from IPython.display import Markdown, display

    display(Markdown(source_markdown(obj, docstring)))
