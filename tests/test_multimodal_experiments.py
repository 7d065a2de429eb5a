"""The chapter-04 experiments helpers (ecgbook.multimodal_ssl.experiments): jobs, rows, pairing."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ecgbook import multimodal_ssl as mm
from ecgbook.metrics import macro_auroc


def _labels(n, seed):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < 0.4).astype(np.float32)
    Y[0], Y[1] = 1, 0  # every class has a positive and a negative
    return Y


def _data(task="superdiagnostic"):
    return {task: SimpleNamespace(Y_train=_labels(60, 0), Y_val=_labels(30, 1), Y_test=_labels(40, 2),
                                  classes=["A", "B", "C"])}


def test_fine_tune_jobs_curve_first_then_the_table_at_full_labels():
    jobs = mm.fine_tune_jobs(["superdiagnostic", "rhythm"], ["dino_gate", "random_gate"], ["dino_time", "baseline"],
                             [0.1, 1.0], [0, 1])
    curve = [(t, m, f, s) for t in ["superdiagnostic"] for m in ["dino_gate", "random_gate"]
             for f in [0.1, 1.0] for s in [0, 1]]
    assert jobs[:8] == curve
    assert jobs[8:] == [("superdiagnostic", "dino_time", 1.0, 0), ("superdiagnostic", "baseline", 1.0, 0),
                        ("rhythm", "dino_gate", 1.0, 0), ("rhythm", "random_gate", 1.0, 0)]
    assert len(set(jobs)) == len(jobs)


def test_paired_rows_pool_seeds_and_skip_what_did_not_run():
    data = _data()
    y = data["superdiagnostic"].Y_test
    rng = np.random.default_rng(3)
    good = y + rng.normal(0, 0.3, y.shape)
    noise = [rng.random(y.shape) for _ in range(2)]
    scores = {("dino_gate", "fine_tune", "superdiagnostic", 1.0, 0): good,
              ("dino_gate", "fine_tune", "superdiagnostic", 1.0, 1): good + 0.01,
              ("random_gate", "fine_tune", "superdiagnostic", 1.0, 0): noise[0],
              ("random_gate", "fine_tune", "superdiagnostic", 1.0, 1): noise[1],
              ("dino_gate", "linear_probe", "superdiagnostic", 1.0, 0): good,
              ("baseline", "fine_tune", "superdiagnostic", 1.0, 0): noise[0]}
    pooled, n = mm.pooled_test_scores(scores, "random_gate", "fine_tune", "superdiagnostic", 1.0)
    assert n == 2 and np.allclose(pooled, (noise[0] + noise[1]) / 2)
    assert mm.pooled_test_scores(scores, "dino_spec", "fine_tune", "superdiagnostic", 1.0) == (None, 0)
    rows = mm.paired_rows(scores, data, ["superdiagnostic"], [1.0], n_boot=200)
    # only the pairs with both sides run; the baseline never in the linear probe
    assert [(r["model"], r["evaluation"]) for r in rows] == [("dino_gate - random_gate", "fine_tune"),
                                                             ("dino_gate - baseline", "fine_tune")]
    r = rows[0]
    expected = macro_auroc(y, (good + good + 0.01) / 2).value - macro_auroc(y, pooled).value
    assert r["value"] == pytest.approx(expected) and r["ci_low"] > 0 and r["metric"] == "paired_delta_macro_auroc"
    assert r["seed"] == "mean over seeds" and r["split"] == mm.SPLIT


def test_probe_rows_one_row_per_feature_set_and_fraction():
    data = _data()
    rng = np.random.default_rng(4)
    d = data["superdiagnostic"]
    feats = {("superdiagnostic", name): [np.hstack([3 * w * Y, rng.normal(size=(len(Y), 5))])
                                         for Y in (d.Y_train, d.Y_val, d.Y_test)]
             for name, w in (("dino_time", 1.0), ("random_time", 0.0))}
    subsets = {"superdiagnostic": {0.5: np.arange(30), 1.0: np.arange(60)}}
    rows, scores = mm.probe_rows(feats, data, subsets, n_boot=50)
    assert [(r["model"], r["label_fraction"], r["train_records"]) for r in rows] == [
        ("dino_time", 0.5, 30), ("dino_time", 1.0, 60), ("random_time", 0.5, 30), ("random_time", 1.0, 60)]
    assert set(scores) == {(m, "linear_probe", "superdiagnostic", f, 0) for m in ("dino_time", "random_time")
                           for f in (0.5, 1.0)}
    by = {(r["model"], r["label_fraction"]): r for r in rows}
    assert by["dino_time", 1.0]["value"] > 0.9 > by["random_time", 1.0]["value"]  # features with signal win
    assert all(r["C"] in mm.PROBE_CS and r["ci_low"] <= r["value"] <= r["ci_high"] for r in rows)


def test_embedding_2d_is_a_projection_on_principal_axes():
    rng = np.random.default_rng(5)
    train, test = rng.normal(size=(50, 6)), rng.normal(size=(20, 6))
    test[:, 0] *= 10  # the first principal axis is feature 0
    xy = mm.embedding_2d({("t", "dino_time"): [train, None, test]}, "t")
    assert xy.shape == (20, 2)
    assert abs(np.corrcoef(xy[:, 0], test[:, 0])[0, 1]) > 0.95
