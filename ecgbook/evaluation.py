"""Evaluation of fixed features: folds, cross-validation, and choices made on training data only.

Shared by every chapter that fits a classical read-out on features it does not train — the
transfer-learning chapter (frozen ImageNet CNN features at several depths) and the
self-supervised chapters' linear probe (frozen encoder features).

Folds
    :func:`stratified_folds` (record-wise, class proportions kept), :func:`patient_folds` (all
    records of a patient in one fold), :func:`iterative_stratification` (multi-label, by patient;
    Sechidis et al. 2011) with :func:`rotation_split` (train / validation / test folds of one
    round), :func:`record_split` (one fixed train/test split, e.g. de Chazal's DS1 → DS2).
    A fold list is ``[(train_indices, test_indices), …]`` (:data:`Folds`); :func:`check_folds`
    validates one.
Cross-validation
    :func:`cross_validate_features` — a fresh :func:`make_classifier` pipeline (standardisation and
    a linear classifier) fitted on each fold's training part only, out-of-fold predictions pooled
    and scored (accuracy, macro F1, confusion matrix). Folds run in parallel (``n_jobs``) with
    results identical to a serial run.
Choices on the training part only (nested, no test leakage)
    :func:`inner_split` — a stratified (or patient-grouped) hold-out inside a training part;
    :func:`select_features` — the candidate feature set (e.g. a CNN depth, an encoder layer) whose
    classifier scores best on that hold-out; :func:`cross_validate_selected` — cross-validation
    with that choice redone inside every fold.

``n_jobs``: number of worker processes (:class:`joblib.Parallel`, loky backend: ``1`` runs
in this process, ``-1`` uses every core). ``None`` reads :func:`default_n_jobs` (environment
variable ``ECGBOOK_JOBS``, else every core). Each fit is deterministic (fixed ``random_state``),
so the result does not depend on ``n_jobs`` or on the order in which folds finish.

Sources: scikit-learn's :mod:`sklearn.model_selection`; nested selection as in Varma & Simon,
BMC Bioinformatics 7:91 (2006).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

CLASSIFIERS = ("linear_svm", "logreg")

#: A list of ``(train_indices, test_indices)`` pairs.
Folds = list[tuple[np.ndarray, np.ndarray]]


def default_n_jobs() -> int:
    """Worker processes used when ``n_jobs=None``: ``$ECGBOOK_JOBS`` if set, else ``-1`` (every core).

    Raises ``ValueError`` when ``ECGBOOK_JOBS`` is not an integer.
    """
    value = os.environ.get("ECGBOOK_JOBS", "").strip()
    if not value:
        return -1
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"ECGBOOK_JOBS={value!r}: expected an integer number of worker processes") from None


def _parallel(n_jobs: int | None) -> Parallel:
    return Parallel(n_jobs=default_n_jobs() if n_jobs is None else int(n_jobs))


# --------------------------------------------------------------------------- classifiers

def make_classifier(kind: str = "linear_svm", seed: int = 0, C: float = 1.0,
                    class_weight: str | None = None) -> Pipeline:
    """Standardised features then a linear classifier, the usual read-out of frozen features.

    Parameters
    ----------
    kind: ``'linear_svm'`` (:class:`sklearn.svm.LinearSVC`) or ``'logreg'`` (multinomial
        :class:`sklearn.linear_model.LogisticRegression`).
    seed: ``random_state`` of the solver.
    C: inverse regularisation strength.
    class_weight: ``None`` or ``'balanced'``.

    Returns
    -------
    Unfitted ``Pipeline([('scale', StandardScaler()), ('clf', …)])``.

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    if kind == "linear_svm":
        clf = LinearSVC(C=C, class_weight=class_weight, random_state=seed, max_iter=20000)
    elif kind == "logreg":
        clf = LogisticRegression(C=C, class_weight=class_weight, random_state=seed, max_iter=5000)
    else:
        raise ValueError(f"kind: unknown classifier {kind!r} (known: {', '.join(CLASSIFIERS)})")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


# --------------------------------------------------------------------------- folds

def stratified_folds(y, k: int = 10, seed: int = 0) -> Folds:
    """``k`` stratified folds (:class:`sklearn.model_selection.StratifiedKFold`, shuffled with ``seed``).

    Returns a list of ``(train_indices, test_indices)``; the test parts partition ``range(len(y))``.
    Raises ``ValueError`` (from scikit-learn) when a class has fewer than ``k`` members.
    """
    y = np.asarray(y)
    return [(tr, te) for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)]


def patient_folds(y, groups, k: int = 10, seed: int = 0) -> Folds:
    """``k`` patient-wise folds: all records of a patient (``groups``) fall in the same fold.

    :class:`sklearn.model_selection.StratifiedGroupKFold` (shuffled with ``seed``) keeps the class
    proportions as close as grouping allows. CinC 2017 publishes no patient identifiers, so there
    the record names are the only possible groups (record-wise folds).

    Raises
    ------
    ValueError
        ``groups`` and ``y`` differ in length, or there are fewer distinct groups than ``k``.
    """
    y, groups = np.asarray(y), np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"groups: {len(groups)} entries for {len(y)} labels")
    if len(np.unique(groups)) < k:
        raise ValueError(f"groups: {len(np.unique(groups))} distinct patients, fewer than k={k} folds")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, groups)]


def record_split(record, train_records: Sequence[str], test_records: Sequence[str]) -> Folds:
    """One train/test split by record membership, e.g. de Chazal's DS1 → DS2.

    Parameters
    ----------
    record: ``(n,)`` record name of each sample.
    train_records, test_records: disjoint record lists (e.g. :data:`ecgbook.data.mitdb.DS1`, ``DS2``).

    Returns
    -------
    ``[(train_indices, test_indices)]`` (a one-fold list, for :func:`cross_validate_features` with
    ``require_partition=False``); samples of other records are in neither part.

    Raises
    ------
    ValueError
        The record lists overlap, or one part holds no sample.
    """
    record = np.asarray(record).astype(str)
    train_records, test_records = [str(r) for r in train_records], [str(r) for r in test_records]
    shared = sorted(set(train_records) & set(test_records))
    if shared:
        raise ValueError(f"train_records and test_records share records {shared}")
    train, test = np.flatnonzero(np.isin(record, train_records)), np.flatnonzero(np.isin(record, test_records))
    if not len(train) or not len(test):
        raise ValueError(f"record_split: {len(train)} training and {len(test)} test samples; both must be non-empty")
    return [(train, test)]


def check_folds(folds: Folds, n: int, require_partition: bool = True) -> np.ndarray:
    """Validate a fold list over ``n`` samples and return the fold of each sample.

    Returns ``(n,)`` int: the index of the fold whose test part holds the sample, -1 for a sample
    tested by no fold (allowed only with ``require_partition=False``).

    Raises
    ------
    ValueError
        No fold, a fold with an empty training or test part, indices outside ``[0, n)``, a sample
        in both parts of a fold, a sample tested by two folds, or (with ``require_partition``)
        a sample tested by none.
    """
    fold_of = np.full(n, -1)
    for i, (train, test) in enumerate(folds):
        train, test = np.asarray(train), np.asarray(test)
        if len(test) == 0 or len(train) == 0:
            raise ValueError(f"folds: fold {i} has an empty training or test part")
        if train.min() < 0 or test.min() < 0 or max(train.max(), test.max()) >= n:
            raise ValueError(f"folds: fold {i} holds indices outside [0, {n})")
        if np.intersect1d(train, test).size:
            raise ValueError(f"folds: fold {i} has samples in both its training and test parts")
        if (fold_of[test] >= 0).any():
            raise ValueError(f"folds: fold {i} tests samples already tested by another fold")
        fold_of[test] = i
    if require_partition and (fold_of < 0).any():
        raise ValueError(f"folds: {(fold_of < 0).sum()} samples are in no test part")
    if not (fold_of >= 0).any():
        raise ValueError("folds: no fold given")
    return fold_of


def iterative_stratification(Y, groups=None, k: int = 10, seed: int = 0) -> np.ndarray:
    """Assign records to ``k`` folds by iterative stratification of multi-label data, by groups.

    Sechidis K, Tsoumakas G, Vlahavas I, "On the stratification of multi-label data", ECML PKDD
    2011, Algorithm 1, applied to groups (patients) instead of records, as the stratification
    behind PTB-XL's ``strat_fold`` does (Strodthoff et al. 2021; ``stratify.py`` of
    UARK-AICV/ECG_SSL_12Lead, ``data_preparation/stratify.py:3-108``). A group's label vector is
    the sum of its records' (how many of its records carry each label) and its size is its
    number of records. Then, while groups are left: take the label with the fewest records among
    the groups left (ties at random), and deal its groups, largest count first, each to the fold
    that most lacks that label (ties: the fold that most lacks records, then at random),
    updating every label's and the record count's remaining need of that fold. Groups with no
    label are dealt last to the folds that most lack records. Each fold wants ``1/k`` of every
    label's records and of all records.

    Parameters
    ----------
    Y: ``(records, labels)`` 0/1 or bool. Extra columns stratify on more than the classes (e.g.
        a one-hot of each record's source database).
    groups: ``(records,)`` group (patient) of each record; ``None``: every record is its own group
        (record-wise folds, for data without patient ids such as the Challenge 2020 headers).
    k: number of folds (≥ 2).
    seed: seed of the tie-breaks; the same inputs and seed give the same folds.

    Returns
    -------
    ``(records,)`` int fold of each record, ``0 … k-1``; all records of a group share a fold.

    Raises
    ------
    ValueError
        ``Y`` is not 2-D or not 0/1, ``groups`` has another length, ``k < 2``, or there are fewer
        groups than folds.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"iterative_stratification: Y must be (records, labels), got shape {Y.shape}")
    if Y.size and not np.isin(Y, (0, 1)).all():
        raise ValueError("iterative_stratification: Y must hold 0/1 labels")
    n = len(Y)
    if int(k) < 2:
        raise ValueError(f"iterative_stratification: k must be >= 2, got {k}")
    if groups is None:
        group_of = np.arange(n)
    else:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"iterative_stratification: groups has {groups.shape} entries for {n} records")
        _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1 if n else 0
    if n_groups < k:
        raise ValueError(f"iterative_stratification: {n_groups} groups cannot fill k={k} folds")
    rng = np.random.default_rng(seed)
    G = np.zeros((n_groups, Y.shape[1]))
    np.add.at(G, group_of, Y.astype(float))
    size = np.bincount(group_of, minlength=n_groups).astype(float)
    want_records = np.full(k, n / k)
    want_labels = np.outer(np.full(k, 1.0 / k), G.sum(0))
    fold_of_group = np.full(n_groups, -1)
    left = np.ones(n_groups, dtype=bool)

    def pick(candidates: np.ndarray) -> int:
        return int(candidates[0]) if len(candidates) == 1 else int(rng.choice(candidates))

    while left.any():
        remaining = G[left].sum(0)
        if not (remaining > 0).any():
            break
        rarest = np.flatnonzero(remaining == remaining[remaining > 0].min())
        label = pick(rarest)
        members = rng.permutation(np.flatnonzero(left & (G[:, label] > 0)))
        members = members[np.argsort(-G[members, label], kind="stable")]
        for g in members:
            need = want_labels[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[want_records[best] == want_records[best].max()]
            f = pick(best)
            fold_of_group[g] = f
            left[g] = False
            want_labels[f] -= G[g]
            want_records[f] -= size[g]
    for g in rng.permutation(np.flatnonzero(left)):
        f = pick(np.flatnonzero(want_records == want_records.max()))
        fold_of_group[g] = f
        want_records[f] -= size[g]
    return fold_of_group[group_of]


def rotation_split(fold, test_fold: int, val_fold: int | None = None, k: int | None = None) -> dict[str, np.ndarray]:
    """Training, validation and test indices of one round of ``k``-fold cross-validation.

    ``fold``: ``(records,)`` fold of each record, ``0 … k-1`` (:func:`iterative_stratification`);
    ``k``: number of folds (default ``fold.max() + 1``).
    The test part is ``test_fold``, the validation part ``val_fold`` (default ``(test_fold + 1) %
    k``: always another fold, so that thresholds and epochs are chosen on records the reported
    score never sees), the training part every other fold.

    Returns ``{"train", "val", "test"}`` sorted index arrays. Raises ``ValueError`` when a fold is
    out of range, the two folds are equal, or a part is empty.
    """
    fold = np.asarray(fold)
    k = int(fold.max()) + 1 if k is None else int(k)
    val_fold = (int(test_fold) + 1) % k if val_fold is None else int(val_fold)
    if not (0 <= int(test_fold) < k and 0 <= val_fold < k):
        raise ValueError(f"rotation_split: folds {test_fold} / {val_fold} outside 0..{k - 1}")
    if val_fold == int(test_fold):
        raise ValueError(f"rotation_split: the validation fold must differ from the test fold ({test_fold})")
    out = {"train": np.flatnonzero((fold != test_fold) & (fold != val_fold)),
           "val": np.flatnonzero(fold == val_fold), "test": np.flatnonzero(fold == test_fold)}
    empty = [name for name, idx in out.items() if not len(idx)]
    if empty:
        raise ValueError(f"rotation_split: no records in part(s) {empty} (test fold {test_fold}, val fold {val_fold})")
    return out


# --------------------------------------------------------------------------- cross-validation

def _fit_predict(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, classifier: str,
                 seed: int, classifier_kwargs: dict) -> np.ndarray:
    """Fit a fresh :func:`make_classifier` on ``train`` and predict ``test`` (one fold; runs in a worker)."""
    model = make_classifier(classifier, seed=seed, **classifier_kwargs).fit(X[train], y[train])
    return model.predict(X[test])


def _score_out_of_fold(y: np.ndarray, folds: Folds, fold_predictions: Sequence[np.ndarray],
                       fold_of: np.ndarray, labels) -> dict:
    """Pool each fold's test predictions and score them (see :func:`cross_validate_features`)."""
    predictions = np.empty_like(y)
    per_fold = []
    for (_, test), predicted in zip(folds, fold_predictions):
        test = np.asarray(test)
        predictions[test] = predicted
        per_fold.append({"accuracy": float(accuracy_score(y[test], predictions[test])),
                         "macro_f1": float(f1_score(y[test], predictions[test], average="macro", zero_division=0)),
                         "n_test": int(len(test))})
    index = np.flatnonzero(fold_of >= 0)
    truth, predicted = y[index], predictions[index]
    labels = list(np.unique(y) if labels is None else labels)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {"index": index, "predictions": predicted, "fold": fold_of[index],
            "accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
            "per_fold": per_fold,
            "confusion": pd.DataFrame(matrix, index=pd.Index(labels, name="true"),
                                      columns=pd.Index(labels, name="predicted"))}


def cross_validate_features(X, y, folds: Folds, classifier: str = "linear_svm", seed: int = 0,
                            labels: Sequence | None = None, require_partition: bool = True, *,
                            n_jobs: int | None = None, **classifier_kwargs) -> dict:
    """Out-of-fold predictions of :func:`make_classifier` over ``folds``.

    In each fold a fresh pipeline (scaler and classifier) is fitted on the training indices only
    and predicts the test indices. By default the test parts must cover every sample exactly once
    (cross-validation); with ``require_partition=False`` they need only be disjoint, which also
    evaluates a single train/test split such as de Chazal's DS1 → DS2 (:func:`record_split`).

    Parameters
    ----------
    X: ``(n, features)``.
    y: ``(n,)`` class labels (strings or ints).
    folds: from :func:`stratified_folds`, :func:`patient_folds` or :func:`record_split`.
    classifier, seed, classifier_kwargs: passed to :func:`make_classifier`.
    labels: class order of the confusion matrix (default: sorted unique ``y``).
    require_partition: demand that the test parts cover all samples.
    n_jobs: worker processes over the folds (module docstring); the result is the same for any value.

    Returns
    -------
    dict with ``index`` (sorted indices of the tested samples; ``arange(n)`` for a partition),
    ``predictions`` and ``fold`` (aligned with ``index``: predicted label and fold of each tested
    sample), ``accuracy``, ``macro_f1`` (over the pooled predictions), ``per_fold`` (list of
    ``{'accuracy', 'macro_f1', 'n_test'}``), ``confusion`` (DataFrame, rows truth, columns
    prediction).

    Raises
    ------
    ValueError
        Shapes disagree, a fold's train and test parts overlap or are empty, two test parts
        overlap, or (with ``require_partition``) the test parts do not cover the samples; an
        unknown classifier.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X {X.shape} must be (n, features) with n = len(y) = {len(y)}")
    fold_of = check_folds(folds, len(y), require_partition)
    make_classifier(classifier, seed=seed, **classifier_kwargs)  # a bad classifier fails here, not in a worker
    predictions = _parallel(n_jobs)(
        delayed(_fit_predict)(X, y, np.asarray(train), np.asarray(test), classifier, seed, classifier_kwargs)
        for train, test in folds)
    return _score_out_of_fold(y, folds, predictions, fold_of, labels)


# --------------------------------------------------------------------------- choices on the training part

def inner_split(y, train, groups=None, val_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split a training part once more, into an inner training part and an inner validation part.

    The hold-out is about ``val_fraction`` of the training samples, stratified by ``y``
    (:class:`~sklearn.model_selection.StratifiedKFold`, the first of ``round(1 / val_fraction)``
    shuffled folds), or of their groups when ``groups`` is given
    (:class:`~sklearn.model_selection.StratifiedGroupKFold`: no patient on both sides), so a
    choice made on it generalises across patients too. Samples outside ``train`` are not used.

    Parameters
    ----------
    y: ``(n,)`` labels of all samples.
    train: indices of the training part.
    groups: ``(n,)`` group (patient) of each sample, or ``None``.
    val_fraction: share held out, in (0, 0.5].
    seed: shuffling seed.

    Returns
    -------
    ``(fit_indices, val_indices)``: disjoint subsets of ``train`` (indices into ``y``).

    Raises
    ------
    ValueError
        ``val_fraction`` outside (0, 0.5], ``groups`` of the wrong length, too few groups, or (from
        scikit-learn) a class with fewer members than the inner folds need.
    """
    if not 0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction: must lie in (0, 0.5], got {val_fraction}")
    y, train = np.asarray(y), np.asarray(train)
    n_splits = int(round(1 / val_fraction))
    y_train = y[train]
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        inner_train, inner_val = next(splitter.split(np.zeros(len(train)), y_train))
    else:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise ValueError(f"groups: {len(groups)} entries for {len(y)} labels")
        if len(np.unique(groups[train])) < n_splits:
            raise ValueError(f"groups: {len(np.unique(groups[train]))} groups in the training part, "
                             f"fewer than the {n_splits} an inner split of val_fraction={val_fraction} needs")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        inner_train, inner_val = next(splitter.split(np.zeros(len(train)), y_train, groups[train]))
    return train[inner_train], train[inner_val]


def check_feature_sets(features: Mapping, n: int) -> dict[str, np.ndarray]:
    """``{name: (n, channels)}`` candidate feature sets as arrays; ``ValueError`` when empty or mis-shaped."""
    features = {name: np.asarray(X) for name, X in dict(features).items()}
    if not features:
        raise ValueError("features: no feature set given")
    for name, X in features.items():
        if X.ndim != 2 or len(X) != n:
            raise ValueError(f"features[{name!r}]: shape {X.shape}, expected (n={n}, channels)")
    return features


def select_features(
    features: Mapping,
    y,
    train,
    groups=None,
    classifier: str = "logreg",
    seed: int = 0,
    val_fraction: float = 0.25,
    **classifier_kwargs,
) -> tuple[str, dict[str, float]]:
    """Choose one of several candidate feature sets from the training samples alone.

    The training part is split by :func:`inner_split`; for each candidate a fresh
    :func:`make_classifier` pipeline is fitted on the inner training part and scored by
    the macro F1 on the inner validation part; the best candidate wins (the first one,
    in the mapping's order, on a tie). The samples outside ``train`` are never looked
    at, so the choice cannot leak test labels.

    Parameters
    ----------
    features: ``{name: (n, channels)}`` candidates (e.g. a CNN's taps, shallow to deep).
    y: ``(n,)`` labels.
    train: indices of the training samples.
    groups, val_fraction, seed: as :func:`inner_split`.
    classifier, classifier_kwargs: the selection classifier (:func:`make_classifier`).

    Returns
    -------
    ``(best_name, {name: inner-validation macro F1})``.

    Raises
    ------
    ValueError
        As :func:`inner_split` and :func:`check_feature_sets`.
    """
    if not 0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction: must lie in (0, 0.5], got {val_fraction}")
    y, train = np.asarray(y), np.asarray(train)
    features = check_feature_sets(features, len(y))
    fit_idx, val_idx = inner_split(y, train, groups, val_fraction, seed)
    scores = {}
    for name, X in features.items():
        model = make_classifier(classifier, seed=seed, **classifier_kwargs).fit(
            X[fit_idx], y[fit_idx]
        )
        scores[name] = float(
            f1_score(
                y[val_idx], model.predict(X[val_idx]), average="macro", zero_division=0
            )
        )
    best = max(scores, key=lambda name: scores[name])  # first maximum on a tie
    return best, scores


def cross_validate_selected(features: Mapping, y, folds: Folds, classifiers: Sequence[str] = CLASSIFIERS,
                            groups=None, selector: str = "logreg", seed: int = 0,
                            labels: Sequence | None = None, require_partition: bool = True,
                            val_fraction: float = 0.25, *, n_jobs: int | None = None,
                            **classifier_kwargs) -> dict:
    """Cross-validation with the feature set chosen inside each fold (nested, no test leakage).

    In every fold :func:`select_features` picks a candidate from the fold's training part only
    (inner hold-out, grouped by ``groups`` when given), then each classifier of ``classifiers`` is
    fitted on the whole training part with that candidate and predicts the test part.

    Parameters
    ----------
    features: ``{name: (n, channels)}``.
    y, folds, labels, require_partition: as :func:`cross_validate_features`.
    classifiers: classifiers fitted on the chosen features (:data:`CLASSIFIERS`).
    groups: ``(n,)`` patients for a grouped inner split (``None``: stratified only).
    selector, val_fraction: classifier and hold-out share used by :func:`select_features`.
    seed, classifier_kwargs: passed to :func:`make_classifier`.
    n_jobs: worker processes (module docstring): the folds' selections run in parallel, then
        every (classifier, fold) fit; the result is the same for any value.

    Returns
    -------
    dict: ``chosen`` (the candidate chosen in each fold), ``selection`` (each fold's ``{name:
    inner macro F1}``), and per classifier name the result dict of :func:`cross_validate_features`.

    Raises
    ------
    ValueError
        As :func:`cross_validate_features` and :func:`select_features`; an unknown classifier.
    """
    y = np.asarray(y)
    features = check_feature_sets(features, len(y))
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise ValueError(f"classifiers: {unknown or 'empty'} (known: {', '.join(CLASSIFIERS)})")
    fold_of = check_folds(folds, len(y), require_partition)
    if not 0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction: must lie in (0, 0.5], got {val_fraction}")
    parallel = _parallel(n_jobs)
    chosen = parallel(delayed(select_features)(features, y, np.asarray(train), groups, selector, seed,
                                               val_fraction, **classifier_kwargs) for train, _ in folds)
    out: dict = {"chosen": [name for name, _ in chosen], "selection": [scores for _, scores in chosen]}
    jobs = [(name, i) for name in classifiers for i in range(len(folds))]
    predictions = parallel(
        delayed(_fit_predict)(features[chosen[i][0]], y, np.asarray(folds[i][0]), np.asarray(folds[i][1]),
                              name, seed, classifier_kwargs) for name, i in jobs)
    for name in classifiers:
        per_fold = [p for (job_name, _), p in zip(jobs, predictions) if job_name == name]
        out[name] = _score_out_of_fold(y, folds, per_fold, fold_of, labels)
    return out
