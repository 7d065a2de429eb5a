"""Metrics: hand-worked cases, sklearn as reference, and the failure paths."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ecgbook import metrics as M


@pytest.fixture
def random_scores():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, size=(60, 4))
    y_score = np.clip(y_true * 0.3 + rng.random((60, 4)), 0, 1)
    return y_true, y_score


# --------------------------------------------------------------------------- AUROC / AUPRC


def test_macro_auroc_matches_sklearn(random_scores):
    y_true, y_score = random_scores
    result = M.macro_auroc(y_true, y_score)
    per_class = [roc_auc_score(y_true[:, k], y_score[:, k]) for k in range(4)]
    assert result.excluded == []
    np.testing.assert_allclose(result.per_class, per_class)
    assert result.value == pytest.approx(roc_auc_score(y_true, y_score, average="macro"))


def test_macro_auroc_names_and_leaves_out_undefined_classes(random_scores):
    y_true, y_score = random_scores
    y_true = y_true.copy()
    y_true[:, 1] = 0  # no positive
    y_true[:, 3] = 1  # no negative
    result = M.macro_auroc(y_true, y_score, class_names=["NORM", "MI", "STTC", "CD"])
    assert result.excluded == ["MI", "CD"]
    assert "positive" in result.reasons["MI"] and "negative" in result.reasons["CD"]
    assert np.isnan(result.per_class[[1, 3]]).all()
    expected = np.mean([roc_auc_score(y_true[:, k], y_score[:, k]) for k in (0, 2)])
    assert result.value == pytest.approx(expected)
    assert not np.isnan(result.value)


def test_macro_auroc_all_classes_undefined_gives_nan_not_crash():
    with pytest.warns(UserWarning, match="undefined for every class"):
        result = M.macro_auroc(np.zeros((5, 2)), np.random.default_rng(0).random((5, 2)))
    assert np.isnan(result.value) and result.excluded == [0, 1]


def test_macro_auprc_hand_case():
    # scores 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    y_true = np.array([[1], [0], [1], [0]])
    y_score = np.array([[0.9], [0.8], [0.7], [0.1]])
    assert M.macro_auprc(y_true, y_score).value == pytest.approx(5 / 6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="y_score"):
        M.macro_auroc(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="y_true.*0/1"):
        M.macro_auroc(np.full((3, 2), 2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        M.macro_auroc(np.eye(2), np.array([[np.nan, 0], [0, 1]]))
    with pytest.raises(ValueError, match="y_pred"):
        M.f1_scores(np.eye(2), np.ones((2, 3)))


# --------------------------------------------------------------------------- F1, accuracy, F-beta


Y_TRUE = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
Y_PRED = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]])


def test_f1_hand_case():
    out = M.f1_scores(Y_TRUE, Y_PRED, class_names=["a", "b", "c"])
    np.testing.assert_allclose(out["per_class"][:2], [2 / 3, 2 / 3])
    assert out["excluded"] == ["c"]                      # nothing true, nothing predicted
    assert out["macro"] == pytest.approx(2 / 3)
    assert out["sample"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert out["sample"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="samples", zero_division=1))


def test_accuracy_hand_case():
    out = M.accuracy(Y_TRUE, Y_PRED)
    assert out["subset"] == pytest.approx(1 / 3)
    assert out["sample"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert out["per_label"] == pytest.approx(7 / 9)


def test_fbeta_gbeta_hand_case():
    # record weights 1/|T_i|: 1/2, 1, 1, 1
    y_true = np.array([[1, 1], [1, 0], [0, 1], [0, 1]])
    y_pred = np.array([[1, 1], [0, 1], [0, 1], [1, 0]])
    out = M.fbeta_gbeta(y_true, y_pred, beta=2)
    # class 0: TP .5, FP 1, FN 1 -> F2 = 2.5/7.5, G2 = .5/3.5; class 1: TP 1.5, FP 1, FN 1
    np.testing.assert_allclose(out["per_class_f"], [1 / 3, 0.6])
    np.testing.assert_allclose(out["per_class_g"], [1 / 7, 1 / 3])
    assert out["f_beta"] == pytest.approx((1 / 3 + 0.6) / 2)
    assert out["g_beta"] == pytest.approx(5 / 21)


def test_fbeta_undefined_class_left_out():
    out = M.fbeta_gbeta(np.array([[1, 0], [1, 0]]), np.array([[1, 0], [1, 0]]))
    assert np.isnan(out["per_class_f"][1]) and out["f_beta"] == 1.0


# --------------------------------------------------------------------------- challenge score

CLASSES = ["A", "426783006", "B"]
W = np.array([[1, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 1]])


def test_modified_confusion_hand_case():
    y_true = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
    y_pred = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]])
    expected = np.zeros((3, 3))
    expected[0, 0] = 1 + 0.5   # record 0 (union 1), record 1 (union {A, B})
    expected[2, 0] = 0.5       # record 1: true B, predicted A
    expected[1, 2] = 0.5       # record 2: true N, predicted B (union {N, B})
    np.testing.assert_allclose(M.modified_confusion(y_true, y_pred), expected)


def test_challenge_score_hand_case():
    y_true = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
    y_pred = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]])
    # observed 1.875, correct 3.25, inactive 0.25 + 1/3 + 1 = 19/12 -> (7/24) / (5/3) = 7/40
    assert M.challenge_score(y_true, y_pred, W, CLASSES) == pytest.approx(7 / 40)
    assert M.challenge_score(y_true, y_true, W, CLASSES) == pytest.approx(1.0)
    inactive = np.zeros_like(y_true)
    inactive[:, 1] = 1
    assert M.challenge_score(y_true, inactive, W, CLASSES) == pytest.approx(0.0)


def _reference_challenge_score(y_true, y_pred, weights, normal):
    """Loop transcription of the published definition, as an independent check."""
    def matrix(labels, outputs):
        a = np.zeros((labels.shape[1],) * 2)
        for t, o in zip(labels, outputs):
            norm = max(np.sum(t | o), 1)
            for j in np.flatnonzero(t):
                for k in np.flatnonzero(o):
                    a[j, k] += 1 / norm
        return a
    inactive = np.zeros_like(y_true)
    inactive[:, normal] = True
    obs, cor, ina = (np.sum(weights * matrix(y_true, p)) for p in (y_pred, y_true, inactive))
    return (obs - ina) / (cor - ina)


def test_challenge_score_matches_loop_reference():
    rng = np.random.default_rng(3)
    y_true = rng.random((40, 3)) < 0.4
    y_pred = rng.random((40, 3)) < 0.4
    assert M.challenge_score(y_true, y_pred, W, CLASSES) == pytest.approx(
        _reference_challenge_score(y_true, y_pred, W, 1))


def test_challenge_score_undefined_and_bad_normal():
    only_normal = np.array([[0, 1, 0], [0, 1, 0]])
    with pytest.warns(UserWarning, match="undefined"):
        assert np.isnan(M.challenge_score(only_normal, only_normal, W, CLASSES))
    with pytest.raises(ValueError, match="normal_class"):
        M.challenge_score(only_normal, only_normal, W, ["A", "B", "C"])
    # a merged class label "code|code" contains the normal class
    assert M.challenge_score(np.eye(3), np.eye(3), W, ["A", "426783006|999999", "B"]) == 1.0


# --------------------------------------------------------------------------- thresholds


def test_choose_thresholds_hand_case_and_default():
    y_true = np.array([[0, 0], [0, 0], [1, 0], [1, 0], [0, 0]])
    y_score = np.array([[0.1, 0.3], [0.2, 0.9], [0.7, 0.1], [0.8, 0.2], [0.75, 0.4]])
    with pytest.warns(UserWarning, match=r"\['none'\]"):
        thresholds = M.choose_thresholds(y_true, y_score, class_names=["AF", "none"])
    # F1 at 0.7: TP 2, FP 1 -> 0.8, the best; class without positives gets 0.5
    np.testing.assert_allclose(thresholds, [0.7, 0.5])
    np.testing.assert_array_equal(M.apply_thresholds(y_score, thresholds)[:, 0], [0, 0, 1, 1, 1])


def test_choose_thresholds_uses_only_validation_values_and_is_optimal(random_scores):
    y_true, y_score = random_scores
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every class has positives: no warning
        thresholds = M.choose_thresholds(y_true, y_score)
    for k in range(y_true.shape[1]):
        assert thresholds[k] in y_score[:, k]  # a validation score, nothing else
        best = max(f1_score(y_true[:, k], y_score[:, k] >= t) for t in y_score[:, k])
        assert f1_score(y_true[:, k], y_score[:, k] >= thresholds[k]) == pytest.approx(best)
    youden = M.choose_thresholds(y_true, y_score, metric="youden")
    assert all(youden[k] in y_score[:, k] for k in range(4))
    with pytest.raises(ValueError, match="metric"):
        M.choose_thresholds(y_true, y_score, metric="accuracy")


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_brackets_point_and_is_reproducible(random_scores):
    y_true, y_score = random_scores
    a = M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=200, seed=7)
    b = M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=200, seed=7)
    c = M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=200, seed=8)
    point, low, high = a
    assert point == pytest.approx(M.macro_auroc(y_true, y_score).value)
    assert low < point < high
    assert (a.low, a.high) == (b.low, b.high) and (a.low, a.high) != (c.low, c.high)
    assert a.n_valid == 200 and a.n_skipped == 0


def test_bootstrap_counts_undefined_resamples():
    y_true = np.array([1] + [0] * 9)
    y_score = np.linspace(1, 0, 10)
    result = M.bootstrap_ci(roc_auc_score, y_true, y_score, n_boot=100, seed=0)
    # P(the one positive is missing from a resample) = 0.9^10 ~ 0.35
    assert 10 < result.n_skipped < 60 and result.n_valid + result.n_skipped == 100
    assert result.low == result.high == result.point == 1.0


def test_paired_bootstrap_identical_models_and_better_model(random_scores):
    y_true, y_score = random_scores
    same = M.paired_bootstrap(M.macro_auroc, y_true, y_score, y_score, n_boot=100)
    assert same["diff"] == 0.0 and same["low"] == 0.0 and same["high"] == 0.0 and same["p_value"] == 1.0
    noise = np.random.default_rng(5).random(y_score.shape)
    better = M.paired_bootstrap(M.macro_auroc, y_true, y_score, noise, n_boot=200)
    assert better["diff"] > 0 and better["low"] > 0 and better["p_value"] < 0.05
    with pytest.raises(ValueError, match="same"):
        M.paired_bootstrap(M.macro_auroc, y_true, y_score, y_score[:, :2])


# --------------------------------------------------------------------------- rank AUROC, vectorised


@pytest.mark.parametrize("tied", [False, True])
def test_rank_auroc_equals_sklearn_on_random_and_tied_scores(tied):
    rng = np.random.default_rng(11)
    y_true = rng.random((252, 71)) < rng.uniform(0.01, 0.5, 71)
    y_true[:3, :] = True       # every class has a positive and a negative
    y_true[3:6, :] = False
    y_score = rng.random((252, 71)) + 0.5 * y_true
    if tied:                   # heavy ties: 4 distinct values per class, some classes constant
        y_score = np.round(y_score * 1.5) / 1.5
        y_score[:, :3] = 0.25
    expected = [roc_auc_score(y_true[:, k], y_score[:, k]) for k in range(71)]
    np.testing.assert_allclose(M.auroc_weighted(y_true, y_score)[0], expected, rtol=0, atol=1e-12)
    assert abs(M.macro_auroc(y_true, y_score).value - M.macro_auroc(y_true, y_score, method="sklearn").value) <= 1e-12
    # a weighted copy is the AUROC of the resample it counts
    resample = rng.integers(0, 252, 252)
    counts = np.bincount(resample, minlength=252)[None]
    t, s = y_true[resample], y_score[resample]
    got = M.auroc_weighted(y_true, y_score, counts)[0]
    for k in range(71):
        if 0 < t[:, k].sum() < len(t):
            assert abs(got[k] - roc_auc_score(t[:, k], s[:, k])) <= 1e-12
        else:
            assert np.isnan(got[k])


def test_rank_auroc_hand_case_with_ties():
    # positives 0.8, 0.5; negatives 0.5, 0.2: pairs (0.8>0.5) (0.8>0.2) (0.5=0.5 -> 1/2) (0.5>0.2) -> 3.5 / 4
    y_true = np.array([1, 0, 1, 0])
    y_score = np.array([0.8, 0.5, 0.5, 0.2])
    assert M.auroc_weighted(y_true, y_score)[0, 0] == 3.5 / 4
    with pytest.raises(ValueError, match="weights"):
        M.auroc_weighted(y_true, y_score, np.ones((2, 3)))
    with pytest.raises(ValueError, match="method"):
        M.macro_auroc(y_true, y_score, method="trapezoid")


def _slow_macro_auroc(t, s):
    """The reference the fast path replaces: one scikit-learn call per class and resample."""
    return M.macro_auroc(t, s, method="sklearn").value


def test_vectorised_bootstrap_equals_sklearn_per_resample(random_scores):
    y_true, y_score = random_scores
    y_true = y_true.copy()
    y_true[:4, 2] = [1, 0, 0, 0]
    y_true[4:, 2] = 0                                   # class 2: one positive, often absent from a resample
    for fix in (False, True):
        fast = M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=100, seed=3, fix_classes=fix)
        slow = M.bootstrap_ci(_slow_macro_auroc, y_true, y_score, n_boot=100, seed=3, fix_classes=fix)
        assert abs(fast.low - slow.low) <= 1e-12 and abs(fast.high - slow.high) <= 1e-12
        assert (fast.n_valid, fast.n_skipped, fast.n_redrawn) == (slow.n_valid, slow.n_skipped, slow.n_redrawn)
    b = np.random.default_rng(4).random(y_score.shape)
    fast = M.paired_bootstrap(M.macro_auroc, y_true, y_score, b, n_boot=100, seed=2)
    slow = M.paired_bootstrap(_slow_macro_auroc, y_true, y_score, b, n_boot=100, seed=2, fix_classes=True)
    for key in ("diff", "low", "high", "p_value"):
        assert abs(fast[key] - slow[key]) <= 1e-12
    assert fast["n_redrawn"] == slow["n_redrawn"] > 0


def test_bootstrap_fixes_the_class_set_by_redrawing():
    rng = np.random.default_rng(0)
    y_true = (rng.random((40, 3)) < 0.5).astype(int)
    y_true[:, 1] = 0
    y_true[[5, 17], 1] = 1                              # two positives in 40 records
    y_score = rng.random((40, 3)) + y_true
    seen = []

    def spy(t, s):
        seen.append(t.sum(0))
        return M.macro_auroc(t, s).value

    result = M.bootstrap_ci(spy, y_true, y_score, n_boot=200, seed=1, fix_classes=True)
    resampled = np.array(seen[1:])                      # seen[0] is the full data
    assert len(resampled) == 200 and ((resampled > 0) & (resampled < 40)).all()
    assert result.n_redrawn > 0 and result.n_skipped == 0
    # P(both positives missing) = (38/40)^40 ~ 0.13: without fixing, some resamples drop class 1
    loose = M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=200, seed=1, fix_classes=False)
    assert loose.n_redrawn == 0
    fixed = M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=200, seed=1)   # default for macro_auroc
    assert (fixed.low, fixed.high, fixed.n_redrawn) == (result.low, result.high, result.n_redrawn)
    # the kept resamples are the first defined ones of the same stream of draws
    rng = np.random.default_rng(1)
    draws = rng.integers(0, 40, (5000, 40))
    ok = [((y_true[d].sum(0) > 0) & (y_true[d].sum(0) < 40)).all() for d in draws]
    assert result.n_redrawn == int(np.flatnonzero(ok)[199]) + 1 - 200


def test_bootstrap_gives_up_redrawing_with_a_clear_error(monkeypatch):
    y_true = np.zeros((200, 2), int)
    y_true[:100, 0] = 1
    y_true[7, 1] = 1                                   # 1 positive in 200: kept ~63 % of the time
    y_score = np.random.default_rng(0).random((200, 2))
    monkeypatch.setattr(M, "MAX_DRAWS_PER_RESAMPLE", 1)
    with pytest.raises(ValueError, match="fix_classes=False"):
        M.bootstrap_ci(M.macro_auroc, y_true, y_score, n_boot=50)


# --------------------------------------------------------------------------- CinC 2017


def test_cinc2017_f1_hand_case():
    truth = ["N", "N", "A", "O", "~", "O"]
    pred = ["N", "A", "A", "O", "O", "~"]
    out = M.cinc2017_f1(truth, pred)
    assert (out["N"], out["A"], out["O"], out["~"]) == pytest.approx((2 / 3, 2 / 3, 1 / 2, 0.0))
    assert out["score"] == pytest.approx(11 / 18)
    with pytest.raises(ValueError, match="X"):
        M.cinc2017_f1(["N", "X"], ["N", "N"])


def test_confusion_frame():
    frame = M.confusion(["N", "A", "A"], ["N", "N", "A"], ["N", "A", "O"])
    assert frame.loc["A", "N"] == 1 and frame.loc["A", "A"] == 1 and frame.loc["O"].sum() == 0
    assert list(frame.index) == ["N", "A", "O"]
