"""Evaluation metrics for multi-label and multi-class ECG classification.

Conventions
-----------
``y_true``
    ``(n_records, n_classes)`` multi-hot labels (0/1 or bool).
``y_score``
    ``(n_records, n_classes)`` real-valued scores (probabilities or logits); higher = more likely.
``y_pred``
    ``(n_records, n_classes)`` binary decisions, e.g. ``apply_thresholds(y_score, thresholds)``.

Macro averages never average NaN: a class on which a metric is undefined (no positive or no
negative record for AUROC, nothing true and nothing predicted for F1) is left out of the mean and
named in the result. Decision thresholds are chosen on validation data only
(:func:`choose_thresholds`); confidence intervals come from resampling records
(:func:`bootstrap_ci`, :func:`paired_bootstrap`).

Sources: the official evaluation code of the PhysioNet/CinC Challenges 2017, 2020 and 2021
(github.com/physionetchallenges; Clifford et al. 2017, Perez Alday et al. 2020, Reyna et al.
2021) and Strodthoff N et al., "Deep learning for ECG analysis: benchmarks and insights from
PTB-XL", IEEE JBHI 25 (2021).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_curve,
                             roc_auc_score, roc_curve)

#: SNOMED CT code of sinus rhythm, the "normal" class of the Challenges 2020/2021.
NORMAL_CLASS = "426783006"


# --------------------------------------------------------------------------- input checks


def _labels(name: str, y: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Validate a ``(n_records, n_classes)`` 0/1 matrix and return it as bool."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (n_records, n_classes) array, got shape {y.shape}")
    if n_classes is not None and y.shape[1] != n_classes:
        raise ValueError(f"{name}: {y.shape[1]} classes, expected {n_classes}")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"{name}: values must be 0/1 (multi-hot), found {np.unique(y)[:5]}")
        y = y.astype(bool)
    return y


def _scores(name: str, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != shape:
        raise ValueError(f"{name}: shape {y.shape}, expected {shape} (same as y_true)")
    if not np.isfinite(y).all():
        raise ValueError(f"{name}: contains NaN or infinite scores")
    return y


def _names(class_names: Sequence | None, n: int) -> list:
    if class_names is None:
        return list(range(n))
    names = list(class_names)
    if len(names) != n:
        raise ValueError(f"class_names: {len(names)} names for {n} classes")
    return names


# --------------------------------------------------------------------------- threshold-free


@dataclass
class MacroResult:
    """A macro-averaged metric with its per-class values.

    Attributes
    ----------
    value: mean of the defined per-class values; NaN when no class is defined.
    per_class: ``(n_classes,)`` per-class values, NaN for excluded classes.
    excluded: names (or indices) of the classes left out, with the reason in ``reasons``.
    class_names: names (or indices) of all classes, in column order.
    reasons: ``{class name: why it was excluded}``.
    """

    value: float
    per_class: np.ndarray
    excluded: list
    class_names: list
    reasons: dict = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    def as_series(self) -> pd.Series:
        """Per-class values indexed by class name."""
        return pd.Series(self.per_class, index=self.class_names)


def _macro(y_true, y_score, class_names, per_class_fn, what: str) -> MacroResult:
    y_true = _labels("y_true", y_true)
    y_score = _scores("y_score", y_score, y_true.shape)
    names = _names(class_names, y_true.shape[1])
    per_class = np.full(y_true.shape[1], np.nan)
    reasons = {}
    for k, name in enumerate(names):
        positives = int(y_true[:, k].sum())
        if positives == 0 or positives == len(y_true):
            reasons[name] = f"no {'positive' if positives == 0 else 'negative'} record"
            continue
        per_class[k] = per_class_fn(y_true[:, k], y_score[:, k])
    defined = ~np.isnan(per_class)
    if not defined.any():
        warnings.warn(f"{what}: undefined for every class (each lacks positives or negatives)", stacklevel=3)
    value = float(per_class[defined].mean()) if defined.any() else float("nan")
    return MacroResult(value, per_class, list(reasons), names, reasons)


def macro_auroc(y_true, y_score, class_names: Sequence | None = None) -> MacroResult:
    """Macro AUROC: mean over classes of the area under the ROC curve (one-vs-rest per class).

    Parameters
    ----------
    y_true: ``(n_records, n_classes)`` multi-hot labels.
    y_score: ``(n_records, n_classes)`` scores.
    class_names: optional names reported in ``excluded``/``class_names`` (default: indices).

    Returns
    -------
    :class:`MacroResult`. Classes without a positive or without a negative record have no AUROC;
    they are left out of the mean (per-class value NaN) and named in ``excluded``.

    Raises ``ValueError`` for mismatched shapes, non-0/1 labels or non-finite scores.
    Source: the term-wise macro AUC of Strodthoff et al. 2021 (PTB-XL benchmark),
    :func:`sklearn.metrics.roc_auc_score` per class.
    """
    return _macro(y_true, y_score, class_names, roc_auc_score, "macro AUROC")


def macro_auprc(y_true, y_score, class_names: Sequence | None = None) -> MacroResult:
    """Macro AUPRC: mean over classes of the average precision (step-wise area under the
    precision-recall curve, :func:`sklearn.metrics.average_precision_score`, which is how the
    Challenge 2020/2021 ``compute_auc`` integrates it).

    Classes without a positive or without a negative record are left out and named, as in
    :func:`macro_auroc`. Raises ``ValueError`` as :func:`macro_auroc`.
    """
    return _macro(y_true, y_score, class_names, average_precision_score, "macro AUPRC")


# --------------------------------------------------------------------------- thresholded


def _counts(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None = None):
    """Per-class (tp, fp, fn, tn), each record weighted by ``weight`` (default 1)."""
    w = np.ones(len(y_true)) if weight is None else weight
    t, p = y_true.astype(float), y_pred.astype(float)
    tp = (w[:, None] * t * p).sum(0)
    fp = (w[:, None] * (1 - t) * p).sum(0)
    fn = (w[:, None] * t * (1 - p)).sum(0)
    tn = (w[:, None] * (1 - t) * (1 - p)).sum(0)
    return tp, fp, fn, tn


def _ratio(num: np.ndarray, den: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out = np.full(np.shape(num), fill, dtype=float)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = _labels("y_true", y_true)
    return y_true, _labels("y_pred", y_pred, y_true.shape[1])


def _nanmean(values: np.ndarray) -> float:
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


def f1_scores(y_true, y_pred, class_names: Sequence | None = None) -> dict:
    """Macro and sample-wise F1 of multi-label decisions.

    ``macro``
        Mean over classes of F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k). A class with nothing true and
        nothing predicted has no F1: it is left out of the mean and named in ``excluded`` (as the
        Challenge 2020/2021 ``compute_f_measure`` does with NaN and ``nanmean``).
    ``sample``
        Mean over records of F1_i = 2 |T_i ∩ P_i| / (|T_i| + |P_i|), the "sample F1" of the PTB-XL
        benchmark and MRM-Net papers (:func:`sklearn.metrics.f1_score` with ``average="samples"``).
        A record with no true and no predicted label counts as 1 (perfect agreement); this equals
        sklearn's ``zero_division=1``.

    Returns ``{"macro", "sample", "per_class" (n_classes,), "excluded"}``.
    Raises ``ValueError`` for mismatched shapes or non-0/1 inputs.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    names = _names(class_names, y_true.shape[1])
    tp, fp, fn, _ = _counts(y_true, y_pred)
    per_class = _ratio(2 * tp, 2 * tp + fp + fn)
    inter = (y_true & y_pred).sum(1)
    sizes = y_true.sum(1) + y_pred.sum(1)
    per_record = _ratio(2 * inter, sizes, fill=1.0)
    return {"macro": _nanmean(per_class), "sample": float(per_record.mean()), "per_class": per_class,
            "excluded": [n for n, v in zip(names, per_class) if np.isnan(v)]}


def accuracy(y_true, y_pred) -> dict:
    """Three accuracies of multi-label decisions.

    ``subset``
        Fraction of records whose whole label set is predicted exactly (exact match; the
        Challenge 2020/2021 "accuracy", :func:`sklearn.metrics.accuracy_score` on multi-hot arrays).
    ``sample``
        Mean over records of |T_i ∩ P_i| / |T_i ∪ P_i| (example-based accuracy, Godbole & Sarawagi
        2004), the "accuracy" of multi-label ECG papers that also report sample F1; a record with
        empty truth and empty prediction counts as 1.
    ``per_label``
        Mean over records and classes of the binary agreement (1 − Hamming loss).

    PTB-XL papers that quote one "accuracy" for the multi-label tasks mostly mean ``sample`` or
    ``subset``; state which one is quoted. Returns ``{"subset", "sample", "per_label"}``.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    union = (y_true | y_pred).sum(1)
    sample = _ratio((y_true & y_pred).sum(1), union, fill=1.0)
    return {"subset": float((y_true == y_pred).all(1).mean()), "sample": float(sample.mean()),
            "per_label": float((y_true == y_pred).mean())}


def fbeta_gbeta(y_true, y_pred, beta: float = 2.0) -> dict:
    """F-beta and G-beta measures of the PhysioNet/CinC Challenge 2020 (unofficial phase).

    Each record contributes 1/max(|T_i|, 1) (|T_i| = its number of true labels) to the per-class
    TP, FP, FN of every class, then per class

        F_beta = (1 + beta²) TP / ((1 + beta²) TP + FP + beta² FN)
        G_beta = TP / (TP + FP + beta FN)

    A class whose denominator is 0 gets NaN and is left out of the macro mean.
    Source: ``compute_beta_measures`` in physionetchallenges/evaluation-2020 (beta = 2).

    Returns ``{"f_beta", "g_beta", "per_class_f" (n_classes,), "per_class_g" (n_classes,)}``.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    weight = 1.0 / np.maximum(y_true.sum(1), 1)
    tp, fp, fn, _ = _counts(y_true, y_pred, weight)
    b2 = beta ** 2
    f = _ratio((1 + b2) * tp, (1 + b2) * tp + fp + b2 * fn)
    g = _ratio(tp, tp + fp + beta * fn)
    return {"f_beta": _nanmean(f), "g_beta": _nanmean(g), "per_class_f": f, "per_class_g": g}


def modified_confusion(y_true, y_pred) -> np.ndarray:
    """The Challenge 2020/2021 multi-label confusion matrix ``(n_classes, n_classes)``.

    Entry (j, k) sums, over records with true class j and predicted class k, 1/|T_i ∪ P_i|
    (the number of distinct classes in the union of truth and prediction, at least 1).
    Source: ``compute_modified_confusion_matrix`` of the official evaluation code.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    union = np.maximum((y_true | y_pred).sum(1), 1)
    return y_true.T.astype(float) @ (y_pred / union[:, None])


def _class_index(classes: Sequence[str], code: str) -> int:
    for i, label in enumerate(classes):
        if code in str(label).split("|"):
            return i
    raise ValueError(f"normal_class: {code} is not among the classes {list(classes)}")


def challenge_score(y_true, y_pred, weights: np.ndarray, classes: Sequence[str],
                    normal_class: str = NORMAL_CLASS) -> float:
    """The PhysioNet/CinC Challenge 2020/2021 score.

    With A the :func:`modified_confusion` matrix and W the reward ``weights``,

        observed = Σ W ∘ A(truth, prediction)
        correct  = Σ W ∘ A(truth, truth)
        inactive = Σ W ∘ A(truth, only the normal class predicted for every record)
        score    = (observed − inactive) / (correct − inactive)

    so a perfect classifier scores 1 and the one that always says "sinus rhythm" scores 0.
    Sinus rhythm is handled only through the inactive classifier: no label is changed (the final
    2020 and 2021 code do not drop or add the normal label).

    Parameters
    ----------
    y_true, y_pred: ``(n_records, n_classes)`` multi-hot truth and decisions, columns in ``classes`` order.
    weights: ``(n_classes, n_classes)`` reward matrix (``ScoringTables.weights``).
    classes: class labels; the normal class is the one whose ``|``-separated codes include
        ``normal_class`` (``"426783006"``, also matching ``"426783006|…"``).

    Returns NaN (with a warning) when correct = inactive, e.g. every record is sinus rhythm
    only; the 2020 code returns NaN there, the 2021 code 0.

    Raises ``ValueError`` for shapes that disagree or a normal class absent from ``classes``.
    Source: ``compute_challenge_metric`` of physionetchallenges/evaluation-2020 and -2021.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    weights = np.asarray(weights, dtype=float)
    n = y_true.shape[1]
    if weights.shape != (n, n) or len(classes) != n:
        raise ValueError(f"weights {weights.shape} and classes ({len(classes)}) must match the {n} label columns")
    normal = _class_index(classes, str(normal_class))
    inactive_pred = np.zeros_like(y_true)
    inactive_pred[:, normal] = True
    observed = np.nansum(weights * modified_confusion(y_true, y_pred))
    correct = np.nansum(weights * modified_confusion(y_true, y_true))
    inactive = np.nansum(weights * modified_confusion(y_true, inactive_pred))
    if np.isclose(correct, inactive):
        warnings.warn("challenge score undefined: the correct and the inactive classifier score the same", stacklevel=2)
        return float("nan")
    return float((observed - inactive) / (correct - inactive))


# --------------------------------------------------------------------------- thresholds


def apply_thresholds(y_score, thresholds) -> np.ndarray:
    """Decisions ``y_score >= thresholds``: ``(n_records, n_classes)`` bool (thresholds ``(n_classes,)`` or scalar)."""
    y_score = np.asarray(y_score, dtype=float)
    return y_score >= np.asarray(thresholds, dtype=float)


def choose_thresholds(y_true_val, y_score_val, metric: str = "f1", class_names: Sequence | None = None,
                      default: float = 0.5) -> np.ndarray:
    """Per-class decision thresholds chosen on VALIDATION data.

    Thresholds tuned on the test set make the test score optimistic: pass the validation fold
    (e.g. PTB-XL ``strat_fold`` 9), never the test fold, and apply the result to the test scores
    with :func:`apply_thresholds`.

    Parameters
    ----------
    y_true_val: ``(n_records, n_classes)`` validation labels.
    y_score_val: ``(n_records, n_classes)`` validation scores.
    metric: ``"f1"`` (maximise the class's F1) or ``"youden"`` (maximise sensitivity + specificity − 1).
    class_names: names used in the warning.
    default: threshold of classes without a positive (or, for ``"youden"``, a negative)
        validation record (0.5, meant for probabilities); these classes are named in a warning.

    Returns ``(n_classes,)`` thresholds; a record is positive when its score is ``>=`` the threshold.
    Raises ``ValueError`` for an unknown ``metric`` or bad shapes.
    """
    if metric not in ("f1", "youden"):
        raise ValueError(f"metric={metric!r}: choose 'f1' or 'youden'")
    y_true = _labels("y_true_val", y_true_val)
    y_score = _scores("y_score_val", y_score_val, y_true.shape)
    names = _names(class_names, y_true.shape[1])
    thresholds = np.full(y_true.shape[1], float(default))
    defaulted = []
    for k in range(y_true.shape[1]):
        positives = int(y_true[:, k].sum())
        if positives == 0 or (metric == "youden" and positives == len(y_true)):
            defaulted.append(names[k])
            continue
        if metric == "f1":
            precision, recall, cut = precision_recall_curve(y_true[:, k], y_score[:, k])
            f1 = _ratio(2 * precision * recall, precision + recall, fill=0.0)[:-1]
            thresholds[k] = cut[int(np.argmax(f1))]
        else:
            fpr, tpr, cut = roc_curve(y_true[:, k], y_score[:, k])
            best = int(np.argmax(tpr[1:] - fpr[1:])) + 1  # cut[0] is +inf (predict nothing)
            thresholds[k] = cut[best]
    if defaulted:
        warnings.warn(f"choose_thresholds: no usable validation records for classes {defaulted}; "
                      f"their threshold is {default}", stacklevel=2)
    return thresholds


# --------------------------------------------------------------------------- bootstrap


@dataclass
class BootstrapResult:
    """Point estimate and percentile interval; unpacks as ``point, low, high``.

    Attributes: ``point``, ``low``, ``high``, ``n_valid`` (resamples used) and ``n_skipped``
    (resamples on which the metric was undefined: NaN or ``ValueError``).
    """

    point: float
    low: float
    high: float
    n_valid: int
    n_skipped: int

    def __iter__(self):
        return iter((self.point, self.low, self.high))


def _value(metric_fn: Callable, y_true, y_score, resample: bool = True) -> float:
    """Metric value as float. On a resample, an undefined metric (``ValueError``) gives NaN and
    the metric's warnings are silenced (the resample is counted, not reported); on the full data
    (``resample=False``) errors and warnings pass through."""
    with warnings.catch_warnings():
        if resample:
            warnings.simplefilter("ignore")
        try:
            value = metric_fn(y_true, y_score)
        except ValueError:
            if not resample:
                raise
            return float("nan")
    return float(value.value if isinstance(value, MacroResult) else value)


def _bootstrap(fn: Callable, arrays: tuple, n_boot: int, alpha: float, seed: int):
    """Evaluate ``fn(*arrays resampled by record)`` ``n_boot`` times; return the defined
    (non-NaN) values and their percentile interval (low, high)."""
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1 and alpha={alpha} in (0, 1)")
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    values = np.array([fn(*(a[i] for a in arrays)) for i in (rng.integers(0, n, n) for _ in range(n_boot))])
    valid = values[~np.isnan(values)]
    if valid.size == 0:
        raise ValueError("bootstrap: the metric is undefined on every resample")
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return valid, float(low), float(high)


def _records(**arrays) -> tuple:
    out = tuple(np.asarray(a) for a in arrays.values())
    lengths = {name: len(a) for name, a in zip(arrays, out)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays must have the same number of records: {lengths}")
    return out


def bootstrap_ci(metric_fn: Callable, y_true, y_score, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> BootstrapResult:
    """Percentile bootstrap confidence interval of a metric, resampling records with replacement.

    Parameters
    ----------
    metric_fn: ``metric_fn(y_true, y_score) -> float`` (or :class:`MacroResult`), e.g. :func:`macro_auroc`.
    y_true, y_score: arrays with records along axis 0 (``(n_records, …)``).
    n_boot: number of resamples; alpha: 1 − confidence level; seed: seeds ``numpy.random.default_rng``
        (same seed, same interval).

    Returns :class:`BootstrapResult` (``point, low, high = bootstrap_ci(...)``). Resamples where the
    metric is undefined (NaN or ``ValueError``, e.g. a resample with one class only) are skipped
    and counted in ``n_skipped``. A macro metric may average a different set of classes in some
    resamples (:func:`macro_auroc` leaves out classes without positives).

    Raises ``ValueError`` when the metric is undefined on the full data or on every resample,
    when the arrays differ in number of records, or for ``n_boot < 1`` / ``alpha`` outside (0, 1).
    Source: Efron & Tibshirani, An Introduction to the Bootstrap (1993), ch. 13.
    """
    y_true, y_score = _records(y_true=y_true, y_score=y_score)
    point = _value(metric_fn, y_true, y_score, resample=False)
    if np.isnan(point):
        raise ValueError("bootstrap_ci: the metric is undefined on the full data")
    valid, low, high = _bootstrap(lambda t, s: _value(metric_fn, t, s), (y_true, y_score), n_boot, alpha, seed)
    return BootstrapResult(point, low, high, int(valid.size), int(n_boot - valid.size))


def paired_bootstrap(metric_fn: Callable, y_true, score_a, score_b, n_boot: int = 1000,
                     alpha: float = 0.05, seed: int = 0) -> dict:
    """Paired bootstrap of the difference metric(A) − metric(B) of two models on the same records.

    Each resample scores both models on the same resampled records, so the interval reflects the
    difference, not the two models' separate uncertainties (e.g. the macro AUROC difference of
    two networks on the PTB-XL test fold).

    Returns ``{"diff", "low", "high", "p_value", "n_skipped"}``: the difference on the full data,
    its percentile interval, and a two-sided bootstrap p-value for "no difference",
    p = min(1, 2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0))) over the defined resampled differences Δ
    (1 when every Δ is 0).

    Raises ``ValueError`` as :func:`bootstrap_ci`, or when the score arrays differ in shape.
    """
    y_true, score_a, score_b = _records(y_true=y_true, score_a=score_a, score_b=score_b)
    if score_a.shape != score_b.shape:
        raise ValueError(f"score_a {score_a.shape} and score_b {score_b.shape} must have the same shape")

    def difference(t, a, b, resample=True):
        return _value(metric_fn, t, a, resample) - _value(metric_fn, t, b, resample)

    diff = difference(y_true, score_a, score_b, resample=False)
    if np.isnan(diff):
        raise ValueError("paired_bootstrap: the metric is undefined on the full data")
    deltas, low, high = _bootstrap(difference, (y_true, score_a, score_b), n_boot, alpha, seed)
    p_value = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    return {"diff": float(diff), "low": low, "high": high, "p_value": float(p_value),
            "n_skipped": int(n_boot - deltas.size)}


# --------------------------------------------------------------------------- multi-class (CinC 2017)


CINC2017_CLASSES = ("N", "A", "O", "~")


def confusion(y_true, y_pred, labels: Sequence) -> pd.DataFrame:
    """Confusion matrix of single-label predictions as a DataFrame (rows: truth, columns: prediction).

    Thin wrapper of :func:`sklearn.metrics.confusion_matrix` with ``labels`` fixing the order.
    """
    matrix = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=list(labels))
    return pd.DataFrame(matrix, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))


def cinc2017_f1(y_true_labels, y_pred_labels) -> dict:
    """Score of the PhysioNet/CinC Challenge 2017 (AF classification from a single-lead ECG).

    Labels are ``"N"`` (normal), ``"A"`` (AF), ``"O"`` (other rhythm), ``"~"`` (noisy). Per class,
    F1_c = 2 N_cc / (Σ_j N_cj + Σ_i N_ic) from the 4×4 confusion matrix N; the challenge score is
    (F1_N + F1_A + F1_O) / 3 (the noisy class is reported but not scored).

    Returns ``{"N", "A", "O", "~", "score"}``; a class absent from both truth and prediction has F1
    NaN, and then the score is NaN too. Raises ``ValueError`` for a label outside N, A, O, ~.
    Source: Clifford GD et al., CinC 44 (2017), section "Scoring"; ``score2017Challenge.m``.
    """
    y_true, y_pred = np.asarray(y_true_labels).astype(str), np.asarray(y_pred_labels).astype(str)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true_labels {y_true.shape} and y_pred_labels {y_pred.shape} must be equal-length 1-D")
    for name, y in (("y_true_labels", y_true), ("y_pred_labels", y_pred)):
        bad = sorted(set(y.tolist()) - set(CINC2017_CLASSES))
        if bad:
            raise ValueError(f"{name}: labels {bad} are not CinC 2017 classes {CINC2017_CLASSES}")
    matrix = confusion(y_true, y_pred, CINC2017_CLASSES).to_numpy().astype(float)
    f1 = _ratio(2 * np.diag(matrix), matrix.sum(0) + matrix.sum(1))
    out = {c: float(v) for c, v in zip(CINC2017_CLASSES, f1)}
    out["score"] = float(np.mean(f1[:3]))
    return out
