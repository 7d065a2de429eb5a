"""The comparison machinery of the side-by-side chapter (ecgbook.comparison) on the mirror's PTB-XL."""
from __future__ import annotations

import numpy as np
import pytest

from ecgbook import comparison as C
from ecgbook.data.ptbxl import PTBXL


@pytest.fixture(scope="module")
def data():
    return C.ComparisonData.from_task(PTBXL(fs=100, max_records=400).task("superdiagnostic"))


class ScoreMethod(C.Method):
    """A stand-in for a technique: scores = labels × ``signal`` + Gaussian noise (seeded by cell and
    fold), so its true quality is known; optional history for the health checks."""

    family = "linear probe"
    lead_input = "zero-filled"

    def __init__(self, name, signal, control=None, history=None):
        self.name, self.signal, self.control, self.history = name, signal, control, history
        self.pretrained_on = None

    def pretrain(self, data, records):
        self.pretrained_on = np.array(records)
        return {"records": len(records)}

    def run(self, data, split, train, cell):
        rng = np.random.default_rng([cell.seed, split.test_fold, int(cell.label_fraction * 100), cell.leads])
        scores = {k: data.Y[idx] * self.signal + rng.normal(size=data.Y[idx].shape) for k, idx in
                  (("val", split.val), ("test", split.test))}
        return C.MethodRun(scores["val"], scores["test"], self.history, best_epoch=len(self.history or []) - 1
                           if self.history else None, epochs=len(self.history or []) or None)


def test_val_fold_is_another_held_out_fold():
    assert [C.val_fold_of(t) for t in (7, 8, 9, 10)] == [10, 7, 8, 9]
    with pytest.raises(ValueError, match="test_fold 3"):
        C.val_fold_of(3)


def test_splits_are_disjoint_and_pretraining_never_sees_held_out_folds(data):
    pre = data.pretraining_records()
    assert len(pre) and not np.isin(data.strat_fold[pre], C.HELD_OUT_FOLDS).any()
    for t in (9, 10):
        s = data.split(t)
        assert set(data.strat_fold[s.test]) == {t} and set(data.strat_fold[s.val]) == {C.val_fold_of(t)}
        assert not set(s.train) & set(s.val) and not set(s.train) & set(s.test)
        assert len(s.train) + len(s.val) + len(s.test) == len(data)


def test_label_fractions_are_nested_patient_wise_and_the_same_for_every_method(data):
    s = data.split(10)
    small, large, full = (data.labelled(s, f) for f in (0.1, 0.5, 1.0))
    assert set(small) < set(large) < set(full) == set(s.train)
    outside = set(s.train) - set(small)
    assert not set(data.patient_id[small]) & set(data.patient_id[list(outside)])
    assert np.array_equal(small, data.labelled(s, 0.1))


def test_a_split_without_records_names_the_folds():
    d = C.ComparisonData.from_task(PTBXL(fs=100, max_records=400).task("superdiagnostic"))
    d.strat_fold = np.where(d.strat_fold == 9, 1, d.strat_fold)
    with pytest.raises(ValueError, match="no validation records"):
        d.split(10)


def test_grid_cells():
    cells = C.grid_cells([0.1, 1.0], [12, 1], [0, 1])
    assert {(c.label_fraction, c.leads) for c in cells} == {(0.1, 12), (1.0, 12), (0.1, 1), (1.0, 1)}
    assert len(cells) == 8
    tutorial = {(c.label_fraction, c.leads) for c in C.grid_cells([0.01, 0.1, 1.0], [12, 6, 3, 2, 1], [0])}
    assert len(tutorial) == 9 and (0.01, 6) not in tutorial and (1.0, 3) in tutorial
    with pytest.raises(ValueError, match="lead sets \\[4\\]"):
        C.grid_cells([1.0], [12, 4], [0])
    with pytest.raises(ValueError, match="outside"):
        C.grid_cells([0.0], [12], [0])


def test_grid_pools_out_of_fold_and_states_only_what_the_bootstrap_supports(data):
    good = ScoreMethod("good", 3.0, control="noise")
    same = ScoreMethod("same", 3.0)
    noise = ScoreMethod("noise", 0.0)
    cells = C.grid_cells([1.0], [12], [0, 1])
    grid = C.run_grid([noise, good, same], data, test_folds=[9, 10], cells=cells)
    assert np.array_equal(good.pretrained_on, data.pretraining_records())
    y = grid.y()
    assert len(y) == sum(len(data.split(t).test) for t in (9, 10))
    assert np.array_equal(grid.ecg_ids(), np.concatenate([data.ecg_id[data.split(t).test] for t in (9, 10)]))
    rows = C.cell_rows(grid, data.classes, baseline="noise", n_boot=200, task="superdiagnostic")
    pooled = {r["model"]: r for r in rows if r["evaluation"] == "pooled over seeds"}
    assert pooled["good"]["value"] > 0.9 and abs(pooled["noise"]["value"] - 0.5) < 0.1
    assert pooled["good"]["n"] == len(y) and pooled["good"]["seeds"] == 2
    vs = {(r["model"], r["evaluation"]): r for r in rows if r["metric"] == "delta_macro_auroc"}
    assert vs["good", "vs baseline"]["direction"] == 1 and vs["good", "vs baseline"]["ci_low"] > 0
    assert vs["good", "vs random init"]["model_b"] == "noise"
    assert ("same", "vs random init") not in vs
    best = C.best_method(rows, 1.0, 12, grid=grid, classes=data.classes, n_boot=200)
    assert best["best"] in ("good", "same") and not best["significant"]
    assert {best["best"], *best["tied"]} == {"good", "same"}
    assert "no significant difference" in C.verdict_text(best)


def test_a_flagged_run_blocks_its_comparisons_and_leaves_the_winner_board(data):
    rising = [{"epoch": e, "val_score": 0.6 + 0.05 * e, "train_loss": 1.0 - 0.1 * e} for e in range(5)]
    flagged = ScoreMethod("flagged", 5.0, history=rising)
    noise = ScoreMethod("noise", 0.0)
    grid = C.run_grid([noise, flagged], data, test_folds=[10], cells=C.grid_cells([1.0], [12], [0]))
    rows = C.cell_rows(grid, data.classes, baseline="noise", n_boot=100)
    pooled = {r["model"]: r for r in rows if r["evaluation"] == "pooled over seeds"}
    assert pooled["flagged"]["flagged_runs"] == 1 and "KEPT LAST EPOCH" in pooled["flagged"]["health"]
    delta = next(r for r in rows if r["model"] == "flagged" and r["evaluation"] == "vs baseline")
    assert delta["blocked"]
    best = C.best_method(rows, 1.0, 12)
    assert best["best"] == "noise" and best["unhealthy"] == ["flagged"]


def test_repeated_names_and_wrong_shapes_are_refused(data):
    with pytest.raises(ValueError, match="repeat"):
        C.run_grid([ScoreMethod("a", 1.0), ScoreMethod("a", 1.0)], data, test_folds=[10],
                   cells=C.grid_cells([1.0], [12], [0]))

    class Short(ScoreMethod):
        def run(self, data, split, train, cell):
            out = super().run(data, split, train, cell)
            out.test_scores = out.test_scores[:-1]
            return out

    with pytest.raises(ValueError, match="short: test scores of shape"):
        C.run_grid([Short("short", 1.0)], data, test_folds=[10], cells=C.grid_cells([1.0], [12], [0]))


def test_the_baseline_trains_on_the_lead_set_channels(data):
    method = C.baseline(epochs=1, batch_size=64, lr=1e-2)
    split = data.split(10)
    run = method.run(data, split, data.labelled(split, 1.0), C.Cell(1.0, 1, 0))
    assert run.test_scores.shape == (len(split.test), len(data.classes))
    assert len(run.history) == 1 and run.epochs == 1
    assert method.parameters(5, leads=1) < method.parameters(5, leads=12)
