"""The PTB-XL benchmark protocol shared by the supervised chapters.

Strodthoff et al. (IEEE JBHI 2021), Sec. III: train on ``strat_fold`` 1–8, select on fold 9,
test on fold 10; standardise with statistics of the training folds only; train on random
2.5-s crops; at test time slide 2.5-s windows with 50 % overlap over the 10-s record and take the
maximum of the window scores. The epoch is chosen on the validation fold (macro AUROC), never on
the test fold.

:func:`prepare` splits and standardises a :class:`~ecgbook.data.ptbxl.PTBXLTask`;
:func:`train_and_test` trains any model with :func:`ecgbook.train.fit` and scores the test fold;
:func:`evaluate` turns test scores into result rows (macro AUROC with a bootstrap CI, per class).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn

from .data.ptbxl import PTBXLTask
from .metrics import accuracy, apply_thresholds, bootstrap_ci, choose_thresholds, f1_scores, macro_auroc
from .signal import Standardizer, crop
from .train import ArrayDataset, TrainConfig, TrainResult, fit, predict, seed_everything


@dataclass
class Prepared:
    """A task split into train / val / test, standardised with training statistics.

    ``X_*``: ``(records, leads, samples)`` float32 (standardised, unitless); ``Y_*``: ``(records, classes)``.
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    classes: list[str]
    standardizer: Standardizer
    fs: int

    def sizes(self) -> dict[str, int]:
        """Records per split."""
        return {"train": len(self.X_train), "val": len(self.X_val), "test": len(self.X_test)}


def prepare_arrays(X: np.ndarray, Y: np.ndarray, splits: dict[str, np.ndarray], classes: list[str],
                   fs: int, what: str = "dataset") -> Prepared:
    """Split ``X (records, leads, samples)`` / ``Y (records, classes)`` by the index arrays
    ``splits["train"|"val"|"test"]`` and standardise per lead with training statistics only.

    Raises ``ValueError`` naming ``what`` when a split is empty or the splits overlap.
    """
    empty = [name for name in ("train", "val", "test") if len(splits.get(name, [])) == 0]
    if empty:
        raise ValueError(f"{what}: no records in split(s) {empty} among the {len(Y)} present")
    ids = [set(map(int, splits[name])) for name in ("train", "val", "test")]
    if ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]:
        raise ValueError(f"{what}: train, validation and test splits overlap")
    parts = {name: np.asarray(X[splits[name]], dtype=np.float32) for name in ("train", "val", "test")}
    scaler = Standardizer().fit(parts["train"])
    return Prepared(scaler.transform(parts["train"]), Y[splits["train"]], scaler.transform(parts["val"]),
                    Y[splits["val"]], scaler.transform(parts["test"]), Y[splits["test"]], list(classes), scaler, fs)


def prepare(task: PTBXLTask) -> Prepared:
    """Split ``task`` by ``strat_fold`` (1–8 / 9 / 10) and standardise per lead with train statistics.

    Raises ``ValueError`` when a split is empty (e.g. a very small subset of records).
    """
    splits = {name: task.split(name) for name in ("train", "val", "test")}
    return prepare_arrays(task.X, task.Y, splits, task.classes, task.fs, what=f"PTB-XL {task.task}")


def multilabel_folds(Y: np.ndarray, k: int = 10, seed: int = 0) -> np.ndarray:
    """Assign records to ``k`` folds by iterative stratification of multi-label data.

    Sechidis, Tsoumakas, Vlahavas, "On the stratification of multi-label data", ECML PKDD 2011
    (Algorithm 1), the method behind PTB-XL's ``strat_fold``: repeatedly take the label with the
    fewest remaining records and deal its records to the folds that most lack it (ties: the fold
    that most lacks records, then at random). Records without labels are dealt last by size.

    ``Y``: ``(records, classes)`` 0/1. Returns ``(records,)`` fold numbers 1..k. Raises
    ``ValueError`` when there are fewer records than folds.
    """
    Y = np.asarray(Y).astype(bool)
    n = len(Y)
    if n < k:
        raise ValueError(f"multilabel_folds: {n} records cannot fill {k} folds")
    rng = np.random.default_rng(seed)
    want_records = np.full(k, n / k)
    want_labels = np.outer(np.full(k, 1 / k), Y.sum(0)).astype(float)
    fold = np.zeros(n, dtype=int)
    left = np.ones(n, dtype=bool)
    while left.any():
        counts = Y[left].sum(0)
        if counts.sum() == 0:
            break
        label = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        for i in rng.permutation(np.flatnonzero(left & Y[:, label])):
            need = want_labels[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[want_records[best] == want_records[best].max()]
            f = int(rng.choice(best))
            fold[i] = f + 1
            left[i] = False
            want_labels[f] -= Y[i]
            want_records[f] -= 1
    for i in rng.permutation(np.flatnonzero(left)):
        f = int(rng.choice(np.flatnonzero(want_records == want_records.max())))
        fold[i] = f + 1
        want_records[f] -= 1
    return fold


def random_crop(length: int) -> Callable:
    """Transform for :class:`~ecgbook.train.ArrayDataset`: a random crop of ``length`` samples."""
    return lambda x, rng: crop(x, length, start="random", rng=rng)


def val_auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro AUROC for epoch selection (classes without positives in validation are left out)."""
    value = macro_auroc(y_true, scores).value
    return value if np.isfinite(value) else 0.0


def window_scorer(fs: float, window_s: float = 2.5) -> Callable:
    """``scorer(model, X, device=None) -> (records, classes)``: max of sigmoid scores over windows of
    ``window_s`` seconds with 50 % overlap (the benchmark's test-time aggregation)."""
    window = int(round(window_s * fs))
    return partial(predict, window=window, stride=window // 2, aggregate="max")


@dataclass
class RunOutput:
    """What :func:`train_and_test` returns: the trained model, the fit, and sigmoid scores on validation and test."""

    model: nn.Module
    fit: TrainResult
    val_scores: np.ndarray
    test_scores: np.ndarray


def train_and_test(build: Callable[[], nn.Module], data: Prepared, *, epochs: int, batch_size: int, lr: float, seed: int,
                   window_s: float = 2.5, loss_fn: Callable | None = None, patience: int | None = 10,
                   checkpoint_dir: str | Path | None = None, device: str | None = None,
                   on_epoch_end: Callable | None = None) -> RunOutput:
    """Build a model (after seeding, so its initial weights depend on ``seed`` only), train it on
    random ``window_s`` crops, keep the best validation epoch, and score val and test.

    ``build()`` returns the untrained model; ``on_epoch_end`` is passed to :func:`ecgbook.train.fit`. Scores are sigmoid outputs aggregated (max) over windows of ``window_s`` seconds with 50 %
    overlap, shape ``(records, classes)``.
    """
    seed_everything(seed)
    model = build()
    window = int(round(window_s * data.fs))
    scorer = window_scorer(data.fs, window_s)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
                      checkpoint_dir=checkpoint_dir, device=device)
    result = fit(model, ArrayDataset(data.X_train, data.Y_train, crop=window, seed=seed),
                 data.X_val, data.Y_val, score_fn=val_auroc, cfg=cfg, loss_fn=loss_fn,
                 predict_fn=lambda m, X, dev: scorer(m, X, device=dev), on_epoch_end=on_epoch_end)
    return RunOutput(model, result, scorer(model, data.X_val, device=device), scorer(model, data.X_test, device=device))


def evaluate(y_true: np.ndarray, scores: np.ndarray, classes: list[str], *, y_val: np.ndarray | None = None,
             val_scores: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Test-fold metrics of one model on one task.

    Returns a dict with ``macro_auroc`` (point), ``ci_low``/``ci_high`` (95 % percentile bootstrap over
    test records), ``excluded_classes`` (no positive or no negative in the test fold), ``per_class``
    AUROC, and — when validation scores are given — sample-wise F1 and accuracy at per-class
    thresholds chosen on validation, and at the fixed threshold 0.5.
    """
    auc = macro_auroc(y_true, scores, classes)
    ci = bootstrap_ci(lambda t, s: macro_auroc(t, s).value, y_true, scores, n_boot=n_boot, seed=seed)
    out = {"macro_auroc": auc.value, "ci_low": ci.low, "ci_high": ci.high, "excluded_classes": auc.excluded,
           "per_class": dict(zip(classes, auc.per_class)), "n": int(len(y_true))}
    fixed = apply_thresholds(scores, np.full(len(classes), 0.5))
    out["f1_sample@0.5"] = f1_scores(y_true, fixed)["sample"]
    out["accuracy_sample@0.5"] = accuracy(y_true, fixed)["sample"]
    if y_val is not None and val_scores is not None:
        thresholds = choose_thresholds(y_val, val_scores, metric="f1", class_names=classes)
        pred = apply_thresholds(scores, thresholds)
        out["f1_sample@val"] = f1_scores(y_true, pred)["sample"]
        out["f1_macro@val"] = f1_scores(y_true, pred)["macro"]
    return out
