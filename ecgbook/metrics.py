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
named in the result. Two conventions differ for the macro AUPRC of a class without a negative
record (:func:`macro_auprc`): the book's (PTB-XL chapters) leaves it out, the Challenge 2020/2021
``compute_auc`` counts it as 1 and keeps it in the mean (:func:`challenge_metrics` uses that one).
Decision thresholds are chosen on validation data only (:func:`choose_thresholds`).

Confidence intervals come from resampling records (:func:`bootstrap_ci`, :func:`paired_bootstrap`).
The macro AUROC of every resample is computed at once by a rank statistic on record counts
(:func:`auroc_weighted`, equal to scikit-learn's ``roc_auc_score`` within 1e-12), and a macro
metric's class set is fixed to the classes defined on the full test fold: a resample in which one
of them has no positive or no negative record is redrawn (``fix_classes``).

Sources: the official evaluation code of the PhysioNet/CinC Challenges 2017, 2020 and 2021
(github.com/physionetchallenges; Clifford et al. 2017, Perez Alday et al. 2020, Reyna et al.
2021) and Strodthoff N et al., "Deep learning for ECG analysis: benchmarks and insights from
PTB-XL", IEEE JBHI 25 (2021).
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             hamming_loss, jaccard_score, precision_recall_curve, roc_auc_score, roc_curve)

from .data.challenge import NORMAL_CLASS  # noqa: F401  (SNOMED CT sinus rhythm; public here too)


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


# --------------------------------------------------------------------------- rank AUROC (vectorised)

#: Upper bound on ``resamples × records × classes`` held in memory at once by :func:`auroc_weighted`.
_AUROC_CHUNK = 4_000_000


def auroc_weighted(y_true, y_score, weights=None) -> np.ndarray:
    """Per-class AUROC of many weighted copies of one data set at once (Mann–Whitney U, ties ½).

    With ``w`` a row of ``weights`` (how many times each record is counted, e.g. the record counts
    of one bootstrap resample), the AUROC of class ``k`` is

        AUROC_k = Σ_{i pos, j neg} w_i w_j ([s_i > s_j] + ½ [s_i = s_j]) / (Σ_{pos} w_i · Σ_{neg} w_j)

    the probability that a random positive outscores a random negative, ties counted as ½ — the
    normalised Mann–Whitney U statistic, which equals the trapezoidal area under the ROC curve
    (:func:`sklearn.metrics.roc_auc_score`) exactly. Each class's scores are sorted once; every
    weighted copy then costs one cumulative sum, so all classes and all resamples are computed
    with NumPy in one pass (no Python loop over classes or resamples). With integer weights every
    sum is an exact integer or half-integer in float64, so the result is the correctly rounded
    ratio.

    Parameters
    ----------
    y_true: ``(n_records, n_classes)`` multi-hot labels (or ``(n_records,)`` for one class).
    y_score: ``(n_records, n_classes)`` finite scores, same shape.
    weights: ``(n_copies, n_records)`` non-negative record weights (default: one copy, all ones).
        The bootstrap passes each resample's record counts ``np.bincount(resample, minlength=n)``.

    Returns
    -------
    ``(n_copies, n_classes)`` float64; NaN where a copy has no positive or no negative weight in
    the class (AUROC undefined).

    Raises ``ValueError`` for mismatched shapes, non-0/1 labels, non-finite scores or bad weights.
    Source: Mann & Whitney (1947); Hanley & McNeil, Radiology 143 (1982), eq. 2 (AUC = U / (n₁n₀)).
    """
    y_true = _labels("y_true", y_true)
    y_score = _scores("y_score", y_score, y_true.shape)
    n, n_classes = y_true.shape
    weights = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"weights: shape {weights.shape}, expected (n_copies, {n})")
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError("weights: must be finite and non-negative")
    order = np.argsort(y_score, axis=0, kind="stable")                 # (n, C)
    s = np.take_along_axis(y_score, order, 0)
    positive = np.take_along_axis(y_true, order, 0)                     # (n, C) bool, sorted by score
    index = np.broadcast_to(np.arange(n)[:, None], (n, n_classes))
    starts = np.ones((n, n_classes), bool)
    starts[1:] = s[1:] != s[:-1]                                        # first element of a tie group
    ends = np.ones((n, n_classes), bool)
    ends[:-1] = starts[1:]                                              # last element of a tie group
    first = np.maximum.accumulate(np.where(starts, index, 0), axis=0)   # group start of each position
    last = np.minimum.accumulate(np.where(ends, index, n - 1)[::-1], axis=0)[::-1]
    out = np.empty((len(weights), n_classes))
    step = max(1, _AUROC_CHUNK // max(1, n * n_classes))
    for lo in range(0, len(weights), step):
        w = weights[lo:lo + step][:, order]                             # (b, n, C), sorted like s
        neg = np.where(positive, 0.0, w)
        pos = w - neg
        below = np.cumsum(neg, axis=1)                                  # negative weight at or below
        strictly = np.take_along_axis(below - neg, first[None], 1)      # … strictly below the group
        within = np.take_along_axis(below, last[None], 1)               # … up to the group's end
        u = (pos * (strictly + within)).sum(1) / 2                      # ties count ½
        pairs = pos.sum(1) * below[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + step] = np.where(pairs > 0, u / np.where(pairs > 0, pairs, 1), np.nan)
    return out


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


def _macro(y_true, y_score, class_names, per_class_fn, what: str, all_classes: bool = False) -> MacroResult:
    """Macro mean of a per-class metric over the classes with a positive and a negative record.

    ``per_class_fn(y_true_k, y_score_k) -> float`` is called per defined class, or, with
    ``all_classes``, ``per_class_fn(y_true, y_score) -> (n_classes,)`` once for every class."""
    y_true = _labels("y_true", y_true)
    y_score = _scores("y_score", y_score, y_true.shape)
    names = _names(class_names, y_true.shape[1])
    values = per_class_fn(y_true, y_score) if all_classes else None
    per_class = np.full(y_true.shape[1], np.nan)
    reasons = {}
    for k, name in enumerate(names):
        positives = int(y_true[:, k].sum())
        if positives == 0 or positives == len(y_true):
            reasons[name] = f"no {'positive' if positives == 0 else 'negative'} record"
            continue
        per_class[k] = values[k] if values is not None else per_class_fn(y_true[:, k], y_score[:, k])
    defined = ~np.isnan(per_class)
    if not defined.any():
        warnings.warn(f"{what}: undefined for every class (each lacks positives or negatives)", stacklevel=3)
    value = float(per_class[defined].mean()) if defined.any() else float("nan")
    return MacroResult(value, per_class, list(reasons), names, reasons)


def macro_auroc(y_true, y_score, class_names: Sequence | None = None, *, method: str = "rank") -> MacroResult:
    """Macro AUROC: mean over classes of the area under the ROC curve (one-vs-rest per class).

    Parameters
    ----------
    y_true: ``(n_records, n_classes)`` multi-hot labels.
    y_score: ``(n_records, n_classes)`` scores.
    class_names: optional names reported in ``excluded``/``class_names`` (default: indices).
    method: ``"rank"`` (default): every class at once by the rank statistic of
        :func:`auroc_weighted` (ties ½); ``"sklearn"``: one :func:`sklearn.metrics.roc_auc_score`
        call per class (the reference; equal to ``"rank"`` within 1e-12, about 100× slower inside a
        bootstrap).

    Returns
    -------
    :class:`MacroResult`. Classes without a positive or without a negative record have no AUROC;
    they are left out of the mean (per-class value NaN) and named in ``excluded``.

    Raises ``ValueError`` for mismatched shapes, non-0/1 labels, non-finite scores or an unknown
    ``method``.
    Source: the term-wise macro AUC of Strodthoff et al. 2021 (PTB-XL benchmark),
    :func:`sklearn.metrics.roc_auc_score` per class.
    """
    if method == "sklearn":
        return _macro(y_true, y_score, class_names, roc_auc_score, "macro AUROC")
    if method != "rank":
        raise ValueError(f"method={method!r}: choose 'rank' or 'sklearn'")
    return _macro(y_true, y_score, class_names, lambda t, s: auroc_weighted(t, s)[0], "macro AUROC",
                  all_classes=True)


def macro_auprc(y_true, y_score, class_names: Sequence | None = None, *,
                convention: str = "book") -> MacroResult:
    """Macro AUPRC: mean over classes of the average precision (step-wise area under the
    precision-recall curve, :func:`sklearn.metrics.average_precision_score`, which is how the
    Challenge 2020/2021 ``compute_auc`` integrates it: Σ_j (recall_j − recall_{j−1}) precision_j
    over the distinct score values).

    Parameters
    ----------
    y_true, y_score, class_names: as :func:`macro_auroc`.
    convention: what happens to a class without a negative record (every record positive):

        ``"book"`` (default; the PTB-XL chapters)
            it is left out of the mean and named in ``excluded``, like a class without a positive
            and like :func:`macro_auroc` — its AUPRC does not depend on the model.
        ``"challenge"`` (the PhysioNet/CinC Challenge 2020/2021 convention)
            its AUPRC is 1 (precision is 1 at every threshold) and it stays in the mean, as the
            official ``compute_auc`` does (``evaluate_12ECG_score.py`` of evaluation-2020 at
            8ad0242, ``evaluate_model.py`` of evaluation-2021 at e2a75fc: precision = TP / (TP + FP)
            with FP = 0, then ``np.nanmean``).

        Under both, a class without a positive record has no AUPRC (recall undefined; NaN in the
        official code) and is left out and named.

    Raises ``ValueError`` as :func:`macro_auroc`, or for an unknown ``convention``.
    """
    if convention not in ("book", "challenge"):
        raise ValueError(f"convention={convention!r}: choose 'book' or 'challenge'")
    result = _macro(y_true, y_score, class_names, average_precision_score, "macro AUPRC")
    if convention == "challenge":
        y = _labels("y_true", y_true)
        no_negative = [k for k, name in enumerate(result.class_names)
                       if name in result.reasons and y[:, k].all()]
        if no_negative:
            per_class = result.per_class.copy()
            per_class[no_negative] = 1.0
            kept = {result.class_names[k] for k in no_negative}
            reasons = {name: why for name, why in result.reasons.items() if name not in kept}
            result = MacroResult(float(np.nanmean(per_class)), per_class, list(reasons), result.class_names, reasons)
    return result


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
        A record with no true and no predicted label counts as 1 (perfect agreement):
        sklearn's ``zero_division=1``.

    Computed by :func:`sklearn.metrics.f1_score` (``average=None, zero_division=nan`` per class,
    ``average="samples", zero_division=1`` per record).

    Returns ``{"macro", "sample", "per_class" (n_classes,), "excluded"}``.
    Raises ``ValueError`` for mismatched shapes or non-0/1 inputs.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    names = _names(class_names, y_true.shape[1])
    per_class = np.asarray(f1_score(y_true, y_pred, average=None, zero_division=np.nan), dtype=float)
    sample = float(f1_score(y_true, y_pred, average="samples", zero_division=1.0))
    return {"macro": _nanmean(per_class), "sample": sample, "per_class": per_class,
            "excluded": [n for n, v in zip(names, per_class) if np.isnan(v)]}


def accuracy(y_true, y_pred) -> dict:
    """Three accuracies of multi-label decisions.

    ``subset``
        Fraction of records whose whole label set is predicted exactly (exact match; the
        Challenge 2020/2021 "accuracy", :func:`sklearn.metrics.accuracy_score` on multi-hot arrays).
    ``sample``
        Mean over records of |T_i ∩ P_i| / |T_i ∪ P_i| (example-based accuracy, Godbole & Sarawagi
        2004), the "accuracy" of multi-label ECG papers that also report sample F1; a record with
        empty truth and empty prediction counts as 1 (:func:`sklearn.metrics.jaccard_score`,
        ``average="samples", zero_division=1``).
    ``per_label``
        Mean over records and classes of the binary agreement (1 − :func:`sklearn.metrics.hamming_loss`).

    PTB-XL papers that quote one "accuracy" for the multi-label tasks mostly mean ``sample`` or
    ``subset``; state which one is quoted. Returns ``{"subset", "sample", "per_label"}``.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return {"subset": float(accuracy_score(y_true, y_pred)),
            "sample": float(jaccard_score(y_true, y_pred, average="samples", zero_division=1.0)),
            "per_label": float(1.0 - hamming_loss(y_true, y_pred))}


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
                    normal_class: str = NORMAL_CLASS, *, undefined: str = "zero") -> float:
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

    undefined: what to return when the score is undefined, correct = inactive (e.g. every record
        is sinus rhythm only): ``"zero"`` (default) returns 0.0, as the official code does at the
        commits the book pins (``if correct_score != inactive_score: … else: normalized_score =
        0.0`` in ``compute_challenge_metric``, both years); ``"nan"`` returns NaN instead, so that
        an undefined score cannot pass for the inactive classifier's. Both warn. The test is exact
        equality, as in the official code.

    Raises ``ValueError`` for shapes that disagree, a normal class absent from ``classes`` or an
    unknown ``undefined``.
    Source: ``compute_challenge_metric`` of physionetchallenges/evaluation-2020
    (``evaluate_12ECG_score.py``, commit 8ad0242) and -2021 (``evaluate_model.py``, commit e2a75fc).
    """
    if undefined not in ("zero", "nan"):
        raise ValueError(f"undefined={undefined!r}: choose 'zero' (the official code) or 'nan'")
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
    if correct == inactive:
        value = 0.0 if undefined == "zero" else float("nan")
        warnings.warn(f"challenge score undefined: the correct and the inactive classifier score the same; "
                      f"returning {value} (undefined={undefined!r})", stacklevel=2)
        return value
    return float((observed - inactive) / (correct - inactive))


def challenge_metrics(y_true, y_score, y_pred, weights: np.ndarray, classes: Sequence[str],
                      normal_class: str = NORMAL_CLASS, *, undefined: str = "zero") -> dict:
    """The PhysioNet/CinC Challenge 2020/2021 metrics of one model, with the official conventions.

    Parameters
    ----------
    y_true: ``(n_records, n_classes)`` multi-hot truth (columns in ``classes`` order).
    y_score: ``(n_records, n_classes)`` scores (for AUROC/AUPRC).
    y_pred: ``(n_records, n_classes)`` binary decisions (thresholds chosen on validation data).
    weights, classes, normal_class, undefined: as :func:`challenge_score`.

    Returns
    -------
    ``{"macro_auroc", "macro_auprc", "accuracy", "macro_f1", "f_beta", "g_beta", "challenge_score",
    "excluded_auroc", "excluded_auprc"}``: :func:`macro_auroc`; :func:`macro_auprc` with
    ``convention="challenge"`` (a class without a negative record counts 1); the exact-match
    ``accuracy``; the macro F1 (``compute_f_measure``); F2 and G2 of the 2020 unofficial phase
    (:func:`fbeta_gbeta`, beta = 2; the 2021 code no longer reports them); :func:`challenge_score`.

    Raises ``ValueError`` as the functions it calls.
    Source: ``evaluate_12ECG_score.py`` (evaluation-2020, 8ad0242), ``evaluate_model.py``
    (evaluation-2021, e2a75fc).
    """
    auroc = macro_auroc(y_true, y_score, classes)
    auprc = macro_auprc(y_true, y_score, classes, convention="challenge")
    beta = fbeta_gbeta(y_true, y_pred, beta=2.0)
    return {"macro_auroc": auroc.value, "macro_auprc": auprc.value,
            "accuracy": accuracy(y_true, y_pred)["subset"], "macro_f1": f1_scores(y_true, y_pred)["macro"],
            "f_beta": beta["f_beta"], "g_beta": beta["g_beta"],
            "challenge_score": challenge_score(y_true, y_pred, weights, classes, normal_class, undefined=undefined),
            "excluded_auroc": auroc.excluded, "excluded_auprc": auprc.excluded}


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

    Attributes: ``point``, ``low``, ``high``, ``n_valid`` (resamples used), ``n_skipped``
    (resamples on which the metric was undefined: NaN or ``ValueError``) and ``n_redrawn``
    (resamples drawn and discarded because a class of the fixed class set lacked a positive or a
    negative, see ``fix_classes`` of :func:`bootstrap_ci`).
    """

    point: float
    low: float
    high: float
    n_valid: int
    n_skipped: int
    n_redrawn: int = 0

    def __iter__(self):
        return iter((self.point, self.low, self.high))


#: Largest average number of draws per kept resample before :func:`bootstrap_ci` gives up
#: redrawing (``fix_classes``); reached only when some class has one or two positives in
#: hundreds of records together with several such classes.
MAX_DRAWS_PER_RESAMPLE = 2000


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


def _unwrap(metric_fn: Callable) -> tuple[Callable, dict]:
    """``(function, keyword arguments)`` of a plain function or a :func:`functools.partial` of one."""
    if isinstance(metric_fn, functools.partial) and not metric_fn.args:
        return metric_fn.func, dict(metric_fn.keywords)
    return metric_fn, {}


def _is_macro(metric_fn: Callable) -> bool:
    """Whether ``metric_fn`` is :func:`macro_auroc` / :func:`macro_auprc` (or a partial of one)."""
    return _unwrap(metric_fn)[0] in (macro_auroc, macro_auprc)


def _is_rank_auroc(metric_fn: Callable) -> bool:
    """Whether the bootstrap may compute ``metric_fn`` with :func:`auroc_weighted` on record counts."""
    fn, kwargs = _unwrap(metric_fn)
    return fn is macro_auroc and set(kwargs) <= {"class_names", "method"} and kwargs.get("method", "rank") == "rank"


def _record_counts(resamples: np.ndarray, n: int) -> np.ndarray:
    """``(k, n)`` resampled record indices → ``(k, n)`` how often each record was drawn."""
    k = len(resamples)
    flat = (resamples + n * np.arange(k)[:, None]).ravel()
    return np.bincount(flat, minlength=k * n).reshape(k, n)


def _draw(rng: np.random.Generator, n: int, n_boot: int, required: np.ndarray | None):
    """``n_boot`` resamples ``(n_boot, n)`` of ``n`` records drawn with replacement.

    With ``required`` (``(n, k)`` 0/1 labels of the classes that must stay defined), a resample
    in which one of them has no positive or no negative record is discarded and drawn again,
    so every kept resample averages the same classes. Resamples come from one stream of
    ``rng.integers``: the same as drawing them one by one. Returns ``(resamples, n_redrawn)``."""
    if required is None or required.shape[1] == 0:
        return rng.integers(0, n, (n_boot, n)), 0
    required = required.astype(float)
    kept, n_kept, drawn, limit = [], 0, 0, MAX_DRAWS_PER_RESAMPLE * n_boot
    while n_kept < n_boot:
        if drawn >= limit:
            rare = required.sum(0)
            raise ValueError(
                f"bootstrap: only {n_kept} of {drawn:,} resamples kept every class defined (fewest positives: "
                f"{int(rare.min())} of {n} records); leave the rarest classes out, or pass fix_classes=False")
        block = rng.integers(0, n, (min(max(4 * (n_boot - n_kept), 1024), limit - drawn), n))
        drawn += len(block)
        positives = _record_counts(block, n) @ required
        ok = ((positives > 0) & (positives < n)).all(1)
        kept.append(block[ok][:n_boot - n_kept])
        n_kept += len(kept[-1])
        if n_kept == n_boot:  # draws after the last kept one are not counted as redrawn
            drawn -= len(block) - (np.flatnonzero(ok)[len(kept[-1]) - 1] + 1)
    return np.concatenate(kept), drawn - n_boot


def _defined_classes(y_true: np.ndarray, fix_classes: bool | None, metric_fns: Sequence[Callable]):
    """The ``(n, k)`` labels of the classes a resample must keep defined, or ``None`` (no fixing)."""
    if fix_classes is None:
        fix_classes = all(_is_macro(fn) for fn in metric_fns)
    if not fix_classes:
        return None
    labels = _labels("y_true", y_true)
    positives = labels.sum(0)
    return labels[:, (positives > 0) & (positives < len(labels))]


def _bootstrap(fn: Callable, arrays: tuple, n_boot: int, alpha: float, seed: int,
               required: np.ndarray | None = None, on_counts: Callable | None = None):
    """Evaluate ``fn(*arrays resampled by record)`` on ``n_boot`` resamples (or, with
    ``on_counts``, ``on_counts(record counts (n_boot, n)) -> (n_boot,)`` all at once); return the
    defined (non-NaN) values, their percentile interval (low, high) and the number redrawn."""
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1 and alpha={alpha} in (0, 1)")
    n = len(arrays[0])
    resamples, redrawn = _draw(np.random.default_rng(seed), n, n_boot, required)
    if on_counts is not None:
        values = on_counts(_record_counts(resamples, n))
    else:
        values = np.array([fn(*(a[i] for a in arrays)) for i in resamples])
    valid = values[~np.isnan(values)]
    if valid.size == 0:
        raise ValueError("bootstrap: the metric is undefined on every resample")
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return valid, float(low), float(high), redrawn


def _macro_auroc_on_counts(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Macro AUROC of every resample (``counts`` ``(n_boot, n)``) at once: the mean of the classes
    defined in each resample (NaN when none is)."""
    per_class = auroc_weighted(y_true, y_score, counts)
    defined = ~np.isnan(per_class)
    total = np.where(defined, per_class, 0.0).sum(1)
    n_defined = defined.sum(1)
    return np.where(n_defined > 0, total / np.maximum(n_defined, 1), np.nan)


def _records(**arrays) -> tuple:
    out = tuple(np.asarray(a) for a in arrays.values())
    lengths = {name: len(a) for name, a in zip(arrays, out)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays must have the same number of records: {lengths}")
    return out


def bootstrap_ci(metric_fn: Callable, y_true, y_score, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0, *, fix_classes: bool | None = None) -> BootstrapResult:
    """Percentile bootstrap confidence interval of a metric, resampling records with replacement.

    Parameters
    ----------
    metric_fn: ``metric_fn(y_true, y_score) -> float`` (or :class:`MacroResult`), e.g. :func:`macro_auroc`.
        Pass :func:`macro_auroc` itself (or ``functools.partial(macro_auroc, class_names=...)``),
        not a lambda around it: then every resample is computed at once by :func:`auroc_weighted`
        (about 100× faster than one scikit-learn call per class and resample, same values).
    y_true, y_score: arrays with records along axis 0 (``(n_records, …)``).
    n_boot: number of resamples; alpha: 1 − confidence level; seed: seeds ``numpy.random.default_rng``
        (same seed, same interval).
    fix_classes: keep the class set of a macro average fixed. When true, the classes averaged are
        those defined on the full data (a positive and a negative record), and a resample in which
        one of them has no positive or no negative is discarded and drawn again (counted in
        ``n_redrawn``), as the PTB-XL benchmark's ``get_appropriate_bootstrap_samples`` does; so
        every resample averages the same classes. ``None`` (default): true for
        :func:`macro_auroc` and :func:`macro_auprc` (or partials of them), false for any other
        function. ``False``: resamples are never redrawn, and a macro metric averages whichever
        classes are defined in each resample. Needs 0/1 labels in ``y_true`` when true.

    Returns :class:`BootstrapResult` (``point, low, high = bootstrap_ci(...)``). Resamples where the
    metric is undefined (NaN or ``ValueError``, e.g. a resample with one class only) are skipped
    and counted in ``n_skipped``.

    Raises ``ValueError`` when the metric is undefined on the full data or on every resample,
    when the arrays differ in number of records, for ``n_boot < 1`` / ``alpha`` outside (0, 1),
    or when redrawing cannot keep every class defined (more than
    :data:`MAX_DRAWS_PER_RESAMPLE` draws per resample on average).
    Source: Efron & Tibshirani, An Introduction to the Bootstrap (1993), ch. 13; Strodthoff et al.
    2021, code ``utils.get_appropriate_bootstrap_samples`` (redrawing).
    """
    y_true, y_score = _records(y_true=y_true, y_score=y_score)
    point = _value(metric_fn, y_true, y_score, resample=False)
    if np.isnan(point):
        raise ValueError("bootstrap_ci: the metric is undefined on the full data")
    required = _defined_classes(y_true, fix_classes, [metric_fn])
    on_counts = None
    if _is_rank_auroc(metric_fn):
        on_counts = lambda counts: _macro_auroc_on_counts(y_true, y_score, counts)  # noqa: E731
    valid, low, high, redrawn = _bootstrap(lambda t, s: _value(metric_fn, t, s), (y_true, y_score), n_boot,
                                           alpha, seed, required, on_counts)
    return BootstrapResult(point, low, high, int(valid.size), int(n_boot - valid.size), int(redrawn))


def paired_bootstrap(metric_fn: Callable, y_true, score_a, score_b, n_boot: int = 1000,
                     alpha: float = 0.05, seed: int = 0, *, fix_classes: bool | None = None) -> dict:
    """Paired bootstrap of the difference metric(A) − metric(B) of two models on the same records.

    Each resample scores both models on the same resampled records, so the interval reflects the
    difference, not the two models' separate uncertainties (e.g. the macro AUROC difference of
    two networks on the PTB-XL test fold). ``metric_fn`` and ``fix_classes`` as in
    :func:`bootstrap_ci` (pass :func:`macro_auroc` itself for the fast path and a fixed class set).

    Returns ``{"diff", "low", "high", "p_value", "n_skipped", "n_redrawn"}``: the difference on the
    full data, its percentile interval, and a two-sided bootstrap p-value for "no difference",
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
    required = _defined_classes(y_true, fix_classes, [metric_fn])
    on_counts = None
    if _is_rank_auroc(metric_fn):
        on_counts = lambda counts: (_macro_auroc_on_counts(y_true, score_a, counts)  # noqa: E731
                                    - _macro_auroc_on_counts(y_true, score_b, counts))
    deltas, low, high, redrawn = _bootstrap(difference, (y_true, score_a, score_b), n_boot, alpha, seed,
                                            required, on_counts)
    p_value = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    return {"diff": float(diff), "low": low, "high": high, "p_value": float(p_value),
            "n_skipped": int(n_boot - deltas.size), "n_redrawn": int(redrawn)}


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
