"""The side-by-side chapter's package: methods of a profile, tables, figures and sentences from rows."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from test_comparison import ScoreMethod  # noqa: E402

from ecgbook import comparison as C  # noqa: E402
from ecgbook import profiles, side_by_side  # noqa: E402
from ecgbook.data.ptbxl import PTBXL  # noqa: E402
from ecgbook.side_by_side import report  # noqa: E402


@pytest.fixture(scope="module")
def run():
    data = C.ComparisonData.from_task(PTBXL(fs=100, max_records=400).task("superdiagnostic"))
    rising = [{"epoch": e, "val_score": 0.6 + 0.05 * e} for e in range(4)]
    methods = [ScoreMethod("resnet1d_wang", 1.0), ScoreMethod("good", 3.0, control="noise"),
               ScoreMethod("noise", 0.0), ScoreMethod("flagged", 1.0, history=rising)]
    grid = C.run_grid(methods, data, test_folds=[9, 10], cells=C.grid_cells([0.1, 1.0], [12, 1], [0, 1]))
    rows = C.cell_rows(grid, data.classes, baseline="resnet1d_wang", n_boot=100)
    bests = [C.best_method(rows, f, n, grid=grid, classes=data.classes, n_boot=100) for f, n in grid.cells()]
    return data, grid, rows, bests, {m.name: m.family for m in methods}


def test_every_profile_builds_its_methods_with_the_baseline_first():
    for profile in profiles.PROFILE_NAMES:
        P = profiles.resolve("side_by_side", profile)
        methods = side_by_side.build_methods(P, dino_budget=profiles.resolve("multimodal_ssl", profile),
                                             w2v_budget=profiles.resolve("lead_agnostic_ssl", profile))
        names = [m.name for m in methods]
        assert names[0] == "resnet1d_wang" and len(set(names)) == len(names)
        assert {m.control for m in methods if m.control} <= set(names)
    P = dict(profiles.resolve("side_by_side", "smoke"), controls=False)
    methods = side_by_side.build_methods(P, dino_budget=profiles.resolve("multimodal_ssl", "smoke"),
                                         w2v_budget=profiles.resolve("lead_agnostic_ssl", "smoke"))
    assert not {m.control for m in methods if m.control} & {m.name for m in methods}


def test_a_run_without_the_baseline_or_with_an_unknown_group_is_refused():
    P = profiles.resolve("side_by_side", "smoke")
    budgets = dict(dino_budget=profiles.resolve("multimodal_ssl", "smoke"),
                   w2v_budget=profiles.resolve("lead_agnostic_ssl", "smoke"))
    with pytest.raises(ValueError, match="resnet1d_wang"):
        side_by_side.build_methods(dict(P, methods=["mrmnet"]), **budgets)
    with pytest.raises(ValueError, match="nosuch"):
        side_by_side.build_methods(dict(P, methods=["resnet1d_wang", "nosuch"]), **budgets)
    with pytest.raises(ValueError, match="'methods'"):
        profiles.resolve("side_by_side", "smoke", methods=["nosuch"])
    with pytest.raises(ValueError, match="'test_folds'"):
        profiles.resolve("side_by_side", "smoke", test_folds=[3])


def test_leaderboard_marks_follow_the_paired_rows_and_the_health(run):
    _, _, rows, _, _ = run
    board = report.leaderboard(rows)
    assert list(board.columns) == ["10 % · 12 leads", "100 % · 12 leads", "10 % · 1 lead", "100 % · 1 lead"]
    assert all(v.endswith("▲") for v in board.loc["good"])
    assert all(v.endswith("▼") for v in board.loc["noise"])
    assert all(v.endswith("⚠") for v in board.loc["flagged"])
    assert all(v[-1].isdigit() for v in board.loc["resnet1d_wang"])
    details = report.details(rows)
    assert len(details) == 4 * 4 and set(details.query("method == 'flagged'")["health"]) == {"kept last epoch"}


def test_winner_sentences_and_figure_come_from_the_rows(run):
    _, _, rows, bests, families = run
    assert all(b["best"] == "good" and b["significant"] for b in bests)
    text = report.summary_markdown(rows, bests, baseline="resnet1d_wang")
    assert text.count("**good**") == 4 and "Significantly below resnet1d_wang: noise" in text
    assert "No conclusion against resnet1d_wang for flagged" in text
    fig = report.plot_which_method(bests, families)
    assert any("good" in t.get_text() for t in fig.axes[0].texts)
    for axis in ("label_fraction", "leads"):
        assert report.plot_curves(rows, axis=axis).axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="axis"):
        report.plot_curves(rows, axis="seed")


def test_data_sentence_counts_the_records_of_each_role(run):
    data = run[0]
    P = {"test_folds": [9, 10], "fractions": [0.1, 1.0], "seeds": [0, 1]}
    text = side_by_side.data_markdown(data, P)
    s = data.split(10)
    assert f"{len(data.pretraining_records()):,} records of folds 1–6" in text
    assert f"test fold 10: {len(s.test):,} test" in text
    assert f"(test fold 9): 10 % = {len(data.labelled(data.split(9), 0.1)):,}, 100 % = {len(data.split(9).train):,}" in text


def test_leak_table_shows_every_measured_leak_and_says_what_did_not_run():
    table = side_by_side.leak_table(side_by_side.leak_rows("classroom"))
    assert {"primer", "transfer", "mrmnet", "multimodal_ssl", "lead_agnostic_ssl"} <= set(table.chapter)
    assert not table.effect.str.contains("not run").any()
    paper = side_by_side.leak_table(side_by_side.leak_rows("paper"))
    assert paper.effect.eq("not run in this profile").all()
