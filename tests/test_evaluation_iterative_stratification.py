"""``evaluation.iterative_stratification`` (Sechidis et al. 2011, by groups) and ``rotation_split``."""
from __future__ import annotations

import numpy as np
import pytest

from ecgbook.evaluation import iterative_stratification, rotation_split

K = 10


@pytest.fixture(scope="module")
def synthetic():
    """3,000 records of 1,200 patients (1–5 records each), 12 labels from 30 % to 1 % prevalence,
    a patient's records sharing most of its labels (as in PTB-XL)."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 6, 1200)
    groups = np.repeat(np.arange(1200), sizes)
    prevalence = np.geomspace(0.3, 0.01, 12)
    patient_labels = rng.random((1200, 12)) < prevalence
    Y = patient_labels[groups] & (rng.random((len(groups), 12)) < 0.9)
    return Y.astype(np.uint8), np.array([f"p{g}" for g in groups])


def test_every_group_in_exactly_one_fold_and_never_split(synthetic):
    Y, groups = synthetic
    fold = iterative_stratification(Y, groups, k=K, seed=0)
    assert fold.shape == (len(Y),) and fold.min() == 0 and fold.max() == K - 1
    for g in np.unique(groups):
        assert len(np.unique(fold[groups == g])) == 1, f"group {g} split over folds"


def test_folds_are_balanced_per_label_and_in_size(synthetic):
    Y, groups = synthetic
    fold = iterative_stratification(Y, groups, k=K, seed=0)
    counts = np.stack([Y[fold == f].sum(0) for f in range(K)])        # (folds, labels)
    target = Y.sum(0) / K
    # every label within 20 % of a tenth in every fold, or within one patient's records (up to 5:
    # a patient is never split, so the rarest label moves in steps of up to 5 records)
    largest = np.bincount(np.unique(groups, return_inverse=True)[1]).max()
    assert (np.abs(counts - target) <= np.maximum(largest, 0.2 * target)).all(), np.abs(counts - target).max(0)
    sizes = np.bincount(fold, minlength=K)
    assert np.abs(sizes - len(Y) / K).max() <= 0.05 * len(Y) / K + 5
    # much better than dealing patients at random (the deviation iterative stratification removes)
    rng = np.random.default_rng(0)
    names, group_of = np.unique(groups, return_inverse=True)
    random_fold = rng.integers(0, K, len(names))[group_of]
    random_counts = np.stack([Y[random_fold == f].sum(0) for f in range(K)])
    assert np.abs(counts - target).mean() < 0.5 * np.abs(random_counts - target).mean()


def test_deterministic_with_a_seed_and_seed_matters(synthetic):
    Y, groups = synthetic
    a = iterative_stratification(Y, groups, k=K, seed=3)
    assert np.array_equal(a, iterative_stratification(Y, groups, k=K, seed=3))
    assert not np.array_equal(a, iterative_stratification(Y, groups, k=K, seed=4))


def test_without_groups_each_record_is_a_group_and_unlabelled_records_are_dealt():
    Y = np.zeros((25, 3), dtype=int)
    Y[:10, 0] = 1
    Y[10:15, 1] = 1                                                  # records 15-24: no label
    fold = iterative_stratification(Y, k=5, seed=0)
    assert np.bincount(fold, minlength=5).tolist() == [5] * 5
    assert np.bincount(fold[:10], minlength=5).tolist() == [2] * 5
    assert np.bincount(fold[10:15], minlength=5).tolist() == [1] * 5


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="fewer|cannot fill"):
        iterative_stratification(np.eye(3), ["a", "a", "b"], k=3)
    with pytest.raises(ValueError, match="entries"):
        iterative_stratification(np.eye(3), ["a", "b"], k=2)
    with pytest.raises(ValueError, match="0/1"):
        iterative_stratification(np.full((4, 2), 2), k=2)
    with pytest.raises(ValueError, match="labels"):
        iterative_stratification(np.zeros(4), k=2)


def test_rotation_split_keeps_validation_and_test_apart():
    fold = np.repeat(np.arange(K), 3)
    split = rotation_split(fold, 9)
    assert set(fold[split["test"]]) == {9} and set(fold[split["val"]]) == {0}
    assert set(fold[split["train"]]) == set(range(1, 9))
    assert sorted(np.concatenate(list(split.values()))) == list(range(len(fold)))
    with pytest.raises(ValueError, match="differ"):
        rotation_split(fold, 2, 2)
    with pytest.raises(ValueError, match="no records"):
        rotation_split(fold[fold != 5], 4, k=K)                        # validation fold 5 is empty
