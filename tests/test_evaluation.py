"""ecgbook.evaluation: folds, parallel cross-validation identical to serial, choices on training data only."""
from __future__ import annotations

import numpy as np
import pytest

from ecgbook import evaluation as E
from ecgbook import transfer as T


def _features(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["N", "S", "V"] * (n // 3))
    shift = (y[:, None] == np.array(["N", "S", "V"])) * 1.2
    return {"shallow": rng.standard_normal((n, 6)), "deep": rng.standard_normal((n, 3)) + shift}, y


def _same(a: dict, b: dict):
    for key in ("index", "predictions", "fold"):
        np.testing.assert_array_equal(a[key], b[key])
    assert (a["accuracy"], a["macro_f1"], a["per_fold"]) == (b["accuracy"], b["macro_f1"], b["per_fold"])
    assert a["confusion"].equals(b["confusion"])


def test_parallel_cross_validation_equals_serial():
    features, y = _features()
    folds = E.stratified_folds(y, k=5, seed=1)
    for classifier in E.CLASSIFIERS:
        serial = E.cross_validate_features(features["deep"], y, folds, classifier, n_jobs=1)
        parallel = E.cross_validate_features(features["deep"], y, folds, classifier, n_jobs=2)
        _same(serial, parallel)
        assert 0.5 < serial["accuracy"] < 1.0          # a real, imperfect classification
    serial = T.cross_validate_selected_tap(features, y, folds, n_jobs=1)
    parallel = T.cross_validate_selected_tap(features, y, folds, n_jobs=2)
    assert serial["taps"] == parallel["taps"] and serial["selection"] == parallel["selection"]
    for name in E.CLASSIFIERS:
        _same(serial[name], parallel[name])
    with pytest.raises(ValueError, match="unknown classifier"):
        E.cross_validate_features(features["deep"], y, folds, "rbf", n_jobs=2)


def test_default_n_jobs_reads_the_environment(monkeypatch):
    monkeypatch.delenv("ECGBOOK_JOBS", raising=False)
    assert E.default_n_jobs() == -1
    monkeypatch.setenv("ECGBOOK_JOBS", "3")
    assert E.default_n_jobs() == 3
    monkeypatch.setenv("ECGBOOK_JOBS", "many")
    with pytest.raises(ValueError, match="ECGBOOK_JOBS"):
        E.default_n_jobs()


def test_inner_split_stays_inside_the_training_part_and_keeps_patients_apart():
    _, y = _features(n=96)
    groups = np.repeat(np.arange(32), 3)
    train = np.arange(72)
    fit, val = E.inner_split(y, train, val_fraction=0.25, seed=0)
    assert set(fit) | set(val) == set(train) and not set(fit) & set(val) and len(val) == 18
    fit, val = E.inner_split(y, train, groups=groups, val_fraction=0.25, seed=0)
    assert set(fit) | set(val) == set(train) and not set(groups[fit]) & set(groups[val])
    with pytest.raises(ValueError, match="val_fraction"):
        E.inner_split(y, train, val_fraction=0.6)


def test_check_folds_names_the_fault():
    folds = [(np.arange(5, 10), np.arange(5)), (np.arange(5), np.arange(5, 10))]
    np.testing.assert_array_equal(E.check_folds(folds, 10), [0] * 5 + [1] * 5)
    with pytest.raises(ValueError, match="both its training and test"):
        E.check_folds([(np.arange(6), np.arange(5, 10))], 10)
    with pytest.raises(ValueError, match="already tested"):
        E.check_folds(folds + folds, 10)
    with pytest.raises(ValueError, match="no test part"):
        E.check_folds(folds[:1], 10)
    assert (E.check_folds(folds[:1], 10, require_partition=False) == [0] * 5 + [-1] * 5).all()


def test_transfer_keeps_the_chapter_names():
    # chapters/03_transfer_learning.md imports these from ecgbook.transfer
    for name in ("BEAT_CLASSES", "SpectrogramSettings", "best_available_backbone", "cached_features",
                 "cross_validate_features", "cross_validate_selected_tap", "load_backbone", "mitdb_beat_set",
                 "patient_folds", "record_split", "spectrogram_images", "stratified_folds"):
        assert hasattr(T, name), name
    from ecgbook.data import mitdb
    from ecgbook.models import backbones
    from ecgbook import signal
    assert T.spectrogram_images is signal.spectrogram_images and T.load_backbone is backbones.load_backbone
    assert T.mitdb_beat_set is mitdb.mitdb_beat_set and T.patient_folds is E.patient_folds
