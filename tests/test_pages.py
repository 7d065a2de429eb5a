"""Page helpers: run times read from results files, clean tables, path scrubbing."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from ecgbook import pages
from ecgbook.results import ResultsError


def _write(root, profile, chapter, seconds, device="cpu", **changes):
    (root / profile).mkdir(parents=True, exist_ok=True)
    doc = {"schema": "ecgbook.results/1", "chapter": chapter, "profile": profile,
           "created": "2026-12-01T10:00:00+00:00",
           "provenance": {"wall_time_s": seconds, "device": device, "commit": "0123456789abcdef", "datasets": {}},
           "params": {}, "metrics": [], "reference": [], "extra": {}, **changes}
    (root / profile / f"{chapter}.json").write_text(json.dumps(doc))


def test_run_times_from_results_files(tmp_path):
    assert pages.run_times("baseline", tmp_path).empty
    assert "not measured yet" in pages.run_time_line("baseline", tmp_path)
    _write(tmp_path, "tutorial", "baseline", 2186.9, "cpu (2 threads)")
    _write(tmp_path, "smoke", "baseline", 42.0)
    (tmp_path / "classroom").mkdir()
    (tmp_path / "classroom" / "baseline.json").write_text("{broken")
    times = pages.run_times("baseline", tmp_path)
    assert list(times.index) == ["smoke", "classroom", "tutorial"]
    assert times.loc["tutorial", "seconds"] == 2186.9 and times.loc["tutorial", "commit"] == "01234567"
    assert np.isnan(times.loc["classroom", "seconds"]) and "unreadable" in times.loc["classroom", "device"]
    assert "not valid JSON" in times.loc["classroom", "problem"] and times.loc["tutorial", "problem"] == ""
    line = pages.run_time_line("baseline", tmp_path)
    assert "smoke 42 s on cpu" in line and "tutorial 36 min on cpu (2 threads)" in line and "classroom ?" in line
    head = pages.header_markdown("baseline", "smoke", tmp_path)
    assert head.startswith(":::{warning}") and "Run time" in head


def test_run_time_table_in_book_order_with_the_whole_book(tmp_path):
    for k, chapter in enumerate(pages.CHAPTER_PAGES):
        _write(tmp_path, "classroom", chapter, 60.0 * (k + 1), "cpu (2 threads)")
    _write(tmp_path, "tutorial", "baseline", 2186.9)
    table = pages.run_time_table(tmp_path)
    assert list(table.columns) == ["chapter", "classroom", "tutorial"]  # no column for smoke: never run
    assert list(table["chapter"]) == ["01 data primer", "02 baseline ptbxl", "03 transfer learning",
                                      "04 multimodal ssl", "05 mrmnet", "06 lead agnostic ssl",
                                      "07 side by side", "whole book (sum)"]
    assert table.loc[1, "classroom"] == "2.0 min on cpu (2 threads)" and table.loc[1, "tutorial"] == "36 min on cpu"
    assert table.loc[0, "tutorial"] == "not run"
    assert table.iloc[-1]["classroom"] == "28 min" and table.iloc[-1]["tutorial"] == "not every chapter run"


def test_run_time_table_never_sums_a_bad_file(tmp_path):
    for k, chapter in enumerate(pages.CHAPTER_PAGES):
        _write(tmp_path, "classroom", chapter, 60.0 * (k + 1))
        _write(tmp_path, "tutorial", chapter, 600.0)
    _write(tmp_path, "classroom", "baseline", -120.0)                       # a negative wall time
    copied = (tmp_path / "tutorial" / "transfer.json").read_bytes()  # the tutorial's file copied to classroom/
    (tmp_path / "classroom" / "transfer.json").write_bytes(copied)
    _write(tmp_path, "tutorial", "mrmnet", 600.0, schema="ecgbook.results/2")
    (tmp_path / "tutorial" / "primer.json").write_bytes(b"\xff\xfe{}")
    table = pages.run_time_table(tmp_path).set_index("chapter")
    assert table.loc["02 baseline ptbxl", "classroom"].startswith("unreadable: provenance.wall_time_s is -120.0")
    assert table.loc["03 transfer learning", "classroom"].startswith(
        "unreadable: written by profile 'tutorial', expected profile 'classroom'")
    assert table.loc["05 mrmnet", "tutorial"].startswith("unreadable: schema 'ecgbook.results/2'")
    assert table.loc["01 data primer", "tutorial"].startswith("unreadable: not UTF-8")
    # the readable classroom files: 60 + 240 + 300 + 360 + 420 s; the bad ones are named and not counted
    assert table.loc["whole book (sum)", "classroom"] == (
        "≥ 23 min: 02 baseline ptbxl, 03 transfer learning unreadable, not counted")
    assert table.loc["whole book (sum)", "tutorial"] == "≥ 50 min: 01 data primer, 05 mrmnet unreadable, not counted"
    with pytest.raises(ResultsError, match="primer.json: not UTF-8") as info:  # the first in book order
        pages.run_time_table(tmp_path, strict=True)
    assert info.value.path == tmp_path / "tutorial" / "primer.json"


def test_committed_results_files_are_all_readable():
    """The course page's table in strict mode over the repository's own results/ (committed files)."""
    from ecgbook.config import project_root

    table = pages.run_time_table(project_root() / "results", strict=True)
    assert "tutorial" in table.columns
    assert not table.drop(columns="chapter").apply(lambda c: c.str.contains("unreadable")).any().any()


def test_every_results_chapter_has_its_page():
    from ecgbook import profiles
    from ecgbook.config import project_root

    assert sorted(pages.CHAPTER_PAGES) == profiles.chapters()
    for chapter, page in pages.CHAPTER_PAGES.items():
        text = (project_root() / "chapters" / f"{page}.md").read_text(encoding="utf-8")
        assert f'pages.header("{chapter}"' in text, f"{page}.md does not show the header of {chapter!r}"


def test_tables_with_two_header_levels_show_levels_not_tuples():
    df = pd.DataFrame([[0.8681, 0.88], [0.8772, 0.9]], index=["MRM-Net", "resnet1d_wang"],
                      columns=pd.MultiIndex.from_tuples([("rhythm", "mean_sd"), ("rhythm", "pooled")]))
    tidy = pages.tidy_table(df)
    assert list(tidy.columns) == [("rhythm", "mean sd"), ("rhythm", "pooled")]
    html = pages.table_html(df)
    assert "('rhythm'" not in html and html.count(">rhythm<") == 1 and "0.868" in html
    fractions = pd.DataFrame([[0.7, 0.8]], columns=[0.1, 1.0], index=["W2V"])
    assert list(pages.tidy_table(fractions).columns) == ["0.1", "1"]
    assert "0.100000" not in pages.table_html(fractions)


def test_format_duration():
    assert pages.format_duration(8.2) == "8 s"
    assert pages.format_duration(270) == "4.5 min"
    assert pages.format_duration(2186.9) == "36 min"
    assert pages.format_duration(4320) == "1 h 12 min"
    assert pages.format_duration(float("nan")) == "?"


def test_tables_drop_the_range_index_and_round():
    df = pd.DataFrame({"model_name": ["a", "b"], "macro_auroc": [0.91234, 0.85], "records": [10.0, 2000.0]})
    html = pages.table_html(df)
    assert "0.912" in html and "0.91234" not in html and "2,000" in html and "model name" in html
    assert "<th id=\"T_" in html or "<th" in html
    assert 'class="row_heading' not in html  # the 0…n-1 index is hidden
    named = pages.table_html(df.set_index("model_name"))
    assert 'class="row_heading' in named
    tidy = pages.tidy_table(df)
    assert tidy["records"].dtype == "int64" and tidy["macro auroc"].iloc[0] == 0.912


def test_scrub_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("ECGBOOK_RESULTS", str(tmp_path / "res"))
    text = f"wrote {tmp_path}/res/tutorial/x.json and /opt/other/place/file.csv"
    assert pages.scrub_paths(text) == "wrote results/tutorial/x.json and …/place/file.csv"


def test_quiet_keeps_prints_and_warnings_out():
    with pages.quiet() as caught:
        print("downloading …")
        warnings.warn("noise", UserWarning)
    assert "downloading" in caught.getvalue()


def test_setup_sets_the_column_style():
    import matplotlib

    pages.setup()
    assert tuple(matplotlib.rcParams["figure.figsize"]) == pages.STYLE["figure.figsize"]
    warnings.resetwarnings()


def test_source_markdown_shows_the_package_code():
    from ecgbook import signal

    text = pages.source_markdown(signal.derive_limb_leads)
    assert text.startswith("`ecgbook/signal.py`, `derive_limb_leads`:")
    assert '"""Compute leads III, aVR, aVL and aVF from leads I and II."""' in text
    assert "Einthoven" not in text  # the rest of the docstring is dropped
    assert '"III": ii - i' in text and text.endswith("```")
    assert "Einthoven" in pages.source_markdown(signal.derive_limb_leads, docstring="full")
    assert '"""' not in pages.source_markdown(signal.derive_limb_leads, docstring="none")


def test_the_reference_run_beside_a_smaller_profile(tmp_path):
    assert pages.reference_run("baseline", "classroom", tmp_path) is None
    assert pages.reference_run_markdown("baseline", "classroom", tmp_path) == (
        "No `tutorial` reference run of this chapter is committed yet.")
    _write(tmp_path, "tutorial", "baseline", 4086.0, "cpu (2 threads)",
           provenance={"wall_time_s": 4086.0, "device": "cpu (2 threads)", "commit": "0123456789abcdef",
                       "datasets": {"ptb-xl-1.0.3-100hz": {"manifest_hash": "x", "records": 1987}}})
    assert pages.reference_run("baseline", "smoke", tmp_path)["profile"] == "tutorial"
    md = pages.reference_run_markdown("baseline", "classroom", tmp_path, shown_below=True)
    assert md == ("The reference run is this chapter's `tutorial` profile (ptb-xl-1.0.3-100hz: 1,987 records, "
                  "cpu (2 threads), 1 h 8 min, commit 0123456); its numbers are in "
                  "`results/tutorial/baseline.json` and the table below.")
    for itself in ("tutorial", "paper"):  # a reference page has no reference beside it
        assert pages.reference_run("baseline", itself, tmp_path) is None
        assert pages.reference_run_markdown("baseline", itself, tmp_path) == ""
    (tmp_path / "tutorial" / "baseline.json").write_text("{broken")
    with pytest.raises(ResultsError, match="baseline.json"):  # an unusable reference is an error, not "none"
        pages.reference_run("baseline", "classroom", tmp_path)
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        pages.reference_run("baseline", "huge", tmp_path)


def test_the_header_shows_this_runs_time_once_the_results_are_written(tmp_path):
    """pages.header displays under a display id; header_update, after write_results, rewrites that
    output in the executed notebook (nbclient applies update_display_data), so the banner's run
    times include the run on the page instead of the previous one."""
    import nbformat
    from nbclient import NotebookClient

    root = str(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"from pathlib import Path\nfrom ecgbook import pages\n"
                                  f"pages.header('primer', 'smoke', Path({root!r}))"),
        nbformat.v4.new_code_cell(f"from ecgbook.results import write_results\n"
                                  f"write_results('primer', 'smoke', metrics=[], params={{}}, seed=0, device='cpu',"
                                  f" datasets={{}}, wall_time_s=42.0, root=Path({root!r}))"),
        nbformat.v4.new_code_cell(f"pages.header_update('primer', 'smoke', Path({root!r}))"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    first = "".join(o["data"]["text/markdown"] for o in nb.cells[0].outputs if "text/markdown" in o.get("data", {}))
    assert "smoke 42 s on cpu" in first and "not measured yet" not in first
    assert not any("text/markdown" in o.get("data", {}) for o in nb.cells[2].outputs)  # it updates, adds nothing


def test_every_page_links_its_results_file_and_the_book_serves_it(tmp_path):
    from ecgbook import book

    head = pages.header_markdown("baseline", "classroom", tmp_path)
    assert '<a href="../_static/results-files/classroom/baseline.json" download>' in head
    _write(tmp_path, "classroom", "baseline", 10.0)
    _write(tmp_path, "classroom", "mrmnet", 10.0)
    stage = tmp_path / "stage" / "classroom"
    (stage / "_static" / "results-files" / "classroom").mkdir(parents=True)
    (stage / "_static" / "results-files" / "classroom" / "old.json").write_text("{}")  # a chapter no longer run
    copied = book.publish_results(stage, "classroom", results_root=tmp_path)
    assert sorted(p.name for p in copied) == ["baseline.json", "mrmnet.json"]
    served = stage / "_static" / "results-files" / "classroom"
    assert sorted(p.name for p in served.iterdir()) == ["baseline.json", "mrmnet.json"]
    assert json.loads((served / "baseline.json").read_text())["chapter"] == "baseline"
    assert book.publish_results(tmp_path / "stage" / "smoke", "smoke", results_root=tmp_path) == []
