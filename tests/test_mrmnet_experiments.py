"""The chapter-05 experiments helpers (ecgbook.mrmnet.experiments): the test diagnostic, the reuse
of the baseline chapter's runs and the released selection criterion, on hand-worked histories."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ecgbook import mrmnet
from ecgbook.protocol import RunOutput, prepare_arrays
from ecgbook.train import TrainResult


def _history(aurocs, f1s):
    """One row per epoch with the diagnostic of every head: aurocs/f1s are {head: [per epoch]}."""
    n = len(next(iter(aurocs.values())))
    return [{"epoch": e, **{f"diag_test_auroc_{h}": aurocs[h][e] for h in mrmnet.HEADS},
             **{f"diag_test_f1_{h}": f1s[h][e] for h in mrmnet.HEADS}} for e in range(n)]


def test_released_selection_picks_the_test_best_epoch_and_head():
    aurocs = {"logits": [0.80, 0.84, 0.82], "logits_high": [0.81, 0.83, 0.86], "logits_low": [0.70, 0.72, 0.71]}
    f1s = {"logits": [0.50, 0.55, 0.52], "logits_high": [0.40, 0.45, 0.46], "logits_low": [0.90, 0.20, 0.20]}
    # criterion AUROC + F1: logits 1.39 at epoch 1; high 1.32; low 1.60 at epoch 0 -> the low head, epoch 0
    run = RunOutput(None, TrainResult(history=_history(aurocs, f1s), best_epoch=1), None, None, seed=3)
    table, rows = mrmnet.released_selection([run], model="MRM-Net (paper)", task="rhythm")
    assert table == [{"seed": 3, "ours": 0.84, "released: AUROC + F1 on test": 0.70, "released head": "logits_low",
                      "released epoch": 0, "test-chosen epoch, AUROC only": 0.86}]
    per_seed = [r for r in rows if r["evaluation"] == "per seed"]
    assert [(r["protocol"], r["value"]) for r in per_seed] == [("released: AUROC + F1 on test", 0.70),
                                                               ("test-chosen epoch, AUROC only", 0.86)]
    assert per_seed[1]["inflation"] == pytest.approx(0.02) and per_seed[0]["inflation"] == pytest.approx(-0.14)
    means = [r for r in rows if r["evaluation"] == "mean over seeds"]
    assert len(means) == 2 and {r["protocol"] for r in means} == {r["protocol"] for r in per_seed}


def _prepared(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12, 300)).astype(np.float32)
    Y = np.zeros((n, 2), np.float32)
    Y[::2, 0], Y[1::2, 1] = 1, 1
    splits = {"train": np.arange(0, 12), "val": np.arange(12, 18), "test": np.arange(18, 24)}
    return prepare_arrays(X, Y, splits, ["A", "B"], fs=100, record_ids=np.arange(1000, 1000 + n))


def test_test_diagnostic_scores_every_head_and_returns_plain_numbers():
    data = _prepared()
    model = mrmnet.build_mrmnet(mrmnet.mrmnet_config("paper", 2), seed=0).eval()
    with torch.no_grad():
        row = mrmnet.test_diagnostic(data)(0, model)
    assert set(row) == {f"diag_test_{m}_{h}" for m in ("auroc", "f1") for h in mrmnet.HEADS}
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in row.values())


def test_stored_baseline_reused_only_on_the_same_records_and_settings(tmp_path):
    data = _prepared()
    params = {"epochs": 2, "lr": 0.01, "batch_size": 64}
    runs, why = mrmnet.stored_baseline("superdiagnostic", data, params, [0], "smoke", root=tmp_path)
    assert runs is None and why.startswith("trained here") and "baseline.json" in why  # no file yet
    stored = {"classes": ["A", "B"], "val_ids": list(range(1012, 1018)), "test_ids": list(range(1018, 1024)),
              "seeds": {"0": {"history": [{"epoch": 0}], "best_epoch": 0, "best_score": 0.7,
                              "val": np.zeros((6, 2)).tolist(), "test": np.ones((6, 2)).tolist(), "epochs": 2}}}
    doc = {"schema": "ecgbook.results/1", "chapter": "baseline", "profile": "smoke", "created": "2026-12-05T00:00:00Z",
           "provenance": {"commit": "abcdef1234567890", "wall_time_s": 1.0, "device": "cpu", "datasets": {}},
           "params": params, "metrics": [], "reference": [], "extra": {"runs": {"superdiagnostic": stored}}}
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "baseline.json").write_text(json.dumps(doc))
    runs, why = mrmnet.stored_baseline("superdiagnostic", data, params, [0], "smoke", root=tmp_path)
    assert why == "reused from the baseline chapter (commit abcdef12)" and runs[0].fit.best_score == 0.7
    runs, why = mrmnet.stored_baseline("superdiagnostic", data, {**params, "lr": 0.1}, [0], "smoke", root=tmp_path)
    assert runs is None and why == "the baseline chapter ran with other settings"
    runs, why = mrmnet.stored_baseline("superdiagnostic", data, params, [0, 1], "smoke", root=tmp_path)
    assert runs is None and "no run with seed 1" in why
    runs, why = mrmnet.stored_baseline("rhythm", data, params, [0], "smoke", root=tmp_path)
    assert runs is None and "rhythm" in why  # a task the baseline chapter did not run
