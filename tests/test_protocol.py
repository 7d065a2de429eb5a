"""The shared supervised protocol: splits, standardisation, multi-label folds, windowed scoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgbook import protocol


def test_prepare_arrays_standardises_with_train_statistics_only():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(30, 2, 50)).astype(np.float32)
    X[20:] += 100.0  # test records far away: must not shift the training statistics
    Y = rng.integers(0, 2, size=(30, 3))
    splits = {"train": np.arange(15), "val": np.arange(15, 20), "test": np.arange(20, 30)}
    d = protocol.prepare_arrays(X, Y, splits, ["a", "b", "c"], fs=100)
    np.testing.assert_allclose(d.X_train.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(d.X_train.std(axis=(0, 2)), 1, atol=1e-4)
    assert d.X_test.mean() > 40  # transformed with the train statistics, not re-centred
    assert d.sizes() == {"train": 15, "val": 5, "test": 10}


def test_prepare_arrays_rejects_empty_and_overlapping_splits():
    X, Y = np.zeros((6, 1, 8), np.float32), np.zeros((6, 1))
    with pytest.raises(ValueError, match=r"no records in split\(s\) \['val'\]"):
        protocol.prepare_arrays(X, Y, {"train": [0, 1], "val": [], "test": [2]}, ["a"], 100)
    with pytest.raises(ValueError, match="overlap"):
        protocol.prepare_arrays(X, Y, {"train": [0, 1], "val": [1], "test": [2]}, ["a"], 100)


def test_multilabel_folds_balance_labels_and_sizes():
    rng = np.random.default_rng(1)
    prevalence = np.array([0.3, 0.2, 0.1, 0.05, 0.02])
    Y = (rng.random((1000, 5)) < prevalence).astype(int)
    folds = protocol.multilabel_folds(Y, k=10, seed=0)
    assert set(folds) == set(range(1, 11))
    assert np.bincount(folds)[1:].max() - np.bincount(folds)[1:].min() <= 2
    per_fold = np.array([Y[folds == f].sum(0) for f in range(1, 11)])
    # each label is spread within one record of its ideal share per fold
    assert (np.abs(per_fold - Y.sum(0) / 10) <= 1.5).all()
    # random assignment would typically be far less even for the rare labels
    np.testing.assert_array_equal(folds, protocol.multilabel_folds(Y, k=10, seed=0))
    with pytest.raises(ValueError, match="cannot fill 10 folds"):
        protocol.multilabel_folds(Y[:5], k=10)


def test_window_scorer_max_aggregation():
    class Constant(torch.nn.Module):
        def forward(self, x):  # logit = mean of the window's first lead -> sigmoid per window
            return x[:, 0].mean(-1, keepdim=True).repeat(1, 2)

    X = np.zeros((1, 1, 400), np.float32)
    X[0, 0, 300:] = 5.0  # only late windows see the high values
    scores = protocol.window_scorer(fs=100, window_s=1.0)(Constant(), X, device="cpu")
    assert scores.shape == (1, 2)
    assert scores[0, 0] == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-5)  # window 300–400
