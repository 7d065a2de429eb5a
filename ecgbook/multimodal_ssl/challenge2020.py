"""The paper's own evaluation (``paper`` profile, ``challenge_root``): the PhysioNet/CinC Challenge
2020 training data, 24 scored classes, ten folds by patient (:func:`challenge2020_protocol`).
See :mod:`ecgbook.multimodal_ssl`.
"""
from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from torch import nn

from ..batches import ArrayDataset, predict
from ..data.challenge import load_challenge2020
from ..evaluation import iterative_stratification, rotation_split
from ..metrics import apply_thresholds, challenge_metrics, choose_thresholds, f1_scores, fbeta_gbeta
from ..models.fusion import Spectrogram
from ..models.resnet1d import ResNet1dWang
from ..protocol import RunOutput, val_auroc
from ..signal import STD_FLOOR, Standardizer
from ..ssl import DINOConfig
from ..train import TrainConfig, fit, seed_everything
from .method import (WINDOW, ViewSettings, build_classifier, build_encoder, pretrain, probe_criterion,
                     save_encoder)

# ============================================================================ Challenge 2020 protocol
#
# The paper's own evaluation (paper profile, ``challenge_root``): the PhysioNet/CinC Challenge 2020
# training data, 24 scored classes, ten folds. Facts of the official code (UARK-AICV/ECG_SSL_12Lead):
# equivalent classes merged, first code kept (experiments/run_ensembled.py:42-45); 2.5-s items,
# 5 random crops per training record and epoch (:48, :72-74), evaluation chunks of 2.5 s every
# 1.25 s (:53-54, :76-78) whose sigmoid scores are averaged per record (:164-170); BCE on logits
# (:95); the kept epoch is the best AUROC on the fold it reports (:177-189), and the thresholds
# are searched on that same fold (threshold_search.py:65-150). Here the validation fold is always
# another fold than the test fold.

CHALLENGE_TASK = "challenge2020"
#: Metrics of a Challenge 2020 result row, as :func:`ecgbook.metrics.challenge_metrics` names them.
CHALLENGE_METRICS = ("macro_auroc", "macro_auprc", "accuracy", "macro_f1", "f_beta", "g_beta", "challenge_score")


@dataclass
class ChallengeFold:
    """One round of the Challenge 2020 cross-validation, standardised with training statistics.

    ``X_*``: ``(records, 12, samples)`` float32, standardised per lead with the mean and standard
    deviation of the training part's valid samples, padding kept at 0; ``Y_*``: ``(records, 24)``
    uint8; ``L_*``: ``(records,)`` valid samples; ``names``: record names per part;
    ``test_fold`` / ``val_fold``: the folds (0-based) of the test and validation parts.
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    L_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    L_val: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    L_test: np.ndarray
    classes: list[str]
    standardizer: object
    fs: float
    test_fold: int
    val_fold: int
    names: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Records per part."""
        return {"train": len(self.X_train), "val": len(self.X_val), "test": len(self.X_test)}


def _masked_standardizer(X: np.ndarray, lengths: np.ndarray, chunk: int = 1024):
    """A :class:`~ecgbook.signal.Standardizer` whose per-lead mean and std pool only the valid
    samples of zero-padded records."""

    total = np.zeros(X.shape[1])
    square = np.zeros(X.shape[1])
    count = 0
    cols = np.arange(X.shape[-1])
    for lo in range(0, len(X), chunk):
        x = np.asarray(X[lo:lo + chunk], dtype=np.float64)
        mask = (cols[None, :] < np.asarray(lengths[lo:lo + chunk])[:, None])[:, None, :]
        total += (x * mask).sum(axis=(0, 2))
        square += (x * x * mask).sum(axis=(0, 2))
        count += int(mask.sum())
    mean = total / count
    scaler = Standardizer()
    scaler.mean = mean
    scaler.std = np.maximum(np.sqrt(np.maximum(square / count - mean ** 2, 0.0)), STD_FLOOR)
    return scaler


def challenge_folds(data, k: int = 10, seed: int = 0, by_source: bool = True) -> np.ndarray:
    """``(records,)`` fold (0 … k-1) of every record of a :class:`~ecgbook.data.challenge.Challenge2020Data`.

    :func:`ecgbook.evaluation.iterative_stratification` (Sechidis et al. 2011) by ``data.groups``
    (patients where known, else records: the Challenge headers have no patient id), on the 24
    classes and, with ``by_source``, a one-hot of the source database too, so that every fold
    holds each source in proportion (the official code stratifies each source separately,
    ``data_extraction_without_preprocessing.py:96-105``, and by record). Raises ``ValueError``
    when there are fewer groups than folds.
    """

    Y = np.asarray(data.Y)
    if by_source:
        Y = np.concatenate([Y, data.source_onehot()], axis=1)
    return iterative_stratification(Y, data.groups, k=k, seed=seed)


def challenge_fold(data, fold: np.ndarray, test_fold: int, val_fold: int | None = None, k: int = 10) -> ChallengeFold:
    """Split ``data`` (:class:`~ecgbook.data.challenge.Challenge2020Data`) into the training,
    validation and test parts of one round (:func:`ecgbook.evaluation.rotation_split`: test
    ``test_fold``, validation ``val_fold``, default the next fold, training the other eight), and
    standardise per lead with the training part's valid samples only. Raises ``ValueError`` for
    an empty part or equal folds."""

    split = rotation_split(fold, test_fold, val_fold, k=k)
    scaler = _masked_standardizer(data.X[split["train"]], data.lengths[split["train"]])
    parts = {}
    for name, idx in split.items():
        X = scaler.transform(np.asarray(data.X[idx], dtype=np.float32)).astype(np.float32)
        L = data.lengths[idx]
        X *= (np.arange(X.shape[-1])[None, :] < L[:, None])[:, None, :]  # padding stays 0
        parts[name] = (X, np.asarray(data.Y[idx]), L)
    val_fold = (int(test_fold) + 1) % k if val_fold is None else int(val_fold)
    return ChallengeFold(*parts["train"], *parts["val"], *parts["test"], classes=list(data.classes),
                         standardizer=scaler, fs=data.fs, test_fold=int(test_fold), val_fold=val_fold,
                         names={n: [data.names[i] for i in idx] for n, idx in split.items()})


def record_scores(model: nn.Module, X: np.ndarray, lengths: np.ndarray | None = None, *, window: int = WINDOW,
                  stride: int | None = None, device=None, batch_size: int = 256) -> np.ndarray:
    """Sigmoid scores ``(records, classes)`` of ``model`` on records ``X (records, leads, samples)``:
    the **mean** over 2.5-s windows every 1.25 s (``stride`` default ``window // 2``) that lie inside
    each record (``lengths``), as the official evaluation averages its chunks' scores per record
    (``run_ensembled.py:53-54, 164-170``). :func:`ecgbook.train.predict` with ``aggregate="mean"``."""
    return predict(model, X, window=window, stride=stride or window // 2, aggregate="mean", lengths=lengths,
                   device=device, batch_size=batch_size)


def challenge_fine_tune(build: Callable[[], nn.Module], fold: ChallengeFold, *, epochs: int, batch_size: int,
                        lr: float, seed: int, crops_per_record: int = 5, device: str | None = None,
                        checkpoint_dir: str | Path | None = None):
    """Fine-tune all weights of ``build()`` on the training part of ``fold``.

    Each epoch serves ``crops_per_record`` random 2.5-s crops of every training record, each
    inside the record's valid samples (official ``sample_items_per_record=5``,
    ``run_ensembled.py:74``; ``batch_size`` counts crops, the official one records, so its batch
    of B records is ``5 B`` crops here); BCE on logits; AdamW one-cycle as the supervised chapters;
    the epoch kept is the best validation-fold macro AUROC of the window-mean scores
    (:func:`record_scores`). Returns :class:`ecgbook.protocol.RunOutput` with validation and test
    scores ``(records, classes)``.
    """

    seed_everything(seed)
    model = build()
    train_set = ArrayDataset(fold.X_train, fold.Y_train, crop=WINDOW, seed=seed, crops_per_record=crops_per_record,
                             lengths=fold.L_train)
    cfg = TrainConfig(epochs=epochs, batch_size=min(batch_size, len(train_set)), lr=lr, seed=seed, patience=None,
                      checkpoint_dir=checkpoint_dir, overwrite=checkpoint_dir is not None, device=device)
    result = fit(model, train_set, fold.X_val, fold.Y_val, score_fn=val_auroc, cfg=cfg,
                 predict_fn=lambda m, X, dev: record_scores(m, X, fold.L_val, device=dev))
    return RunOutput(model, result, record_scores(model, fold.X_val, fold.L_val, device=device),
                     record_scores(model, fold.X_test, fold.L_test, device=device), seed=seed, epochs=epochs)


def challenge_rows(y_val: np.ndarray, val_scores: np.ndarray, y_test: np.ndarray, test_scores: np.ndarray,
                   tables, *, model: str, test_fold: int, val_fold: int, seed: int,
                   threshold_metric: str = "f1") -> tuple[list[dict], dict]:
    """Challenge 2020 metrics of one model on one test fold, thresholds from the validation fold.

    Per-class thresholds maximising each class's F1 (``threshold_metric="f1"``) or Youden's J are
    chosen on the validation fold (:func:`ecgbook.metrics.choose_thresholds`; a class without a
    validation positive keeps 0.5), applied to the test scores, and the test fold is scored by
    :func:`ecgbook.metrics.challenge_metrics`: macro AUROC, macro AUPRC (the Challenge's
    convention), accuracy (exact match), macro F1, F2 and G2 (``compute_beta_measures``), and the
    Challenge 2020 score (``evaluate_12ECG_score.py`` of evaluation-2020).

    ``y_*``: ``(records, 24)`` 0/1; ``*_scores``: ``(records, 24)``; ``tables``:
    :class:`~ecgbook.data.challenge.ScoringTables` (classes, weights, abbreviations).

    Returns ``(rows, info)``: one ``ecgbook.results/1`` row per metric of
    :data:`CHALLENGE_METRICS` (``task`` ``"challenge2020"``), each with ``excluded_classes`` (the
    abbreviations of the classes left out of that macro mean: no positive or no negative for
    AUROC, no positive for AUPRC, nothing true and nothing predicted for F1/F2/G2; ``[]`` for
    accuracy and the score). A value that is undefined for every class, or a Challenge score with
    correct = inactive (every test record sinus rhythm only), is ``None`` with ``undefined`` saying
    why — never a NaN in a mean. ``info``: thresholds and the classes that kept the default.

    Raises ``ValueError`` for shapes that do not match ``tables``.
    """


    classes, abbr = list(tables.classes), list(tables.abbreviations)
    y_test, y_val = np.asarray(y_test).astype(int), np.asarray(y_val).astype(int)
    if y_test.shape[1] != len(classes) or np.shape(test_scores) != y_test.shape or np.shape(val_scores) != y_val.shape:
        raise ValueError(f"challenge_rows: labels {y_test.shape} / scores {np.shape(test_scores)} (test), "
                         f"{y_val.shape} / {np.shape(val_scores)} (val) do not match the {len(classes)} classes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        thresholds = choose_thresholds(y_val, val_scores, metric=threshold_metric, class_names=abbr)
        pred = apply_thresholds(test_scores, thresholds)
        m = challenge_metrics(y_test, test_scores, pred, tables.weights, classes, tables.normal_class, undefined="nan")
    name = dict(zip(classes, abbr))
    f1 = f1_scores(y_test, pred, class_names=abbr)
    beta = fbeta_gbeta(y_test, pred, beta=2.0)
    excluded = {"macro_auroc": [name[c] for c in m["excluded_auroc"]],
                "macro_auprc": [name[c] for c in m["excluded_auprc"]],
                "macro_f1": list(f1["excluded"]),
                "f_beta": [a for a, v in zip(abbr, beta["per_class_f"]) if np.isnan(v)],
                "g_beta": [a for a, v in zip(abbr, beta["per_class_g"]) if np.isnan(v)],
                "accuracy": [], "challenge_score": []}
    rows = []
    for metric in CHALLENGE_METRICS:
        value = m[metric]
        row = {"model": model, "task": CHALLENGE_TASK, "metric": metric,
               "value": float(value) if np.isfinite(value) else None, "ci_low": None, "ci_high": None,
               "split": f"test fold {test_fold}", "n": int(len(y_test)), "evaluation": "fine_tune",
               "label_fraction": 1.0, "seed": seed, "test_fold": int(test_fold), "val_fold": int(val_fold),
               "thresholds_tuned_on": f"fold {val_fold} (validation)", "excluded_classes": excluded[metric]}
        if row["value"] is None:
            row["undefined"] = ("correct and inactive classifiers score the same (every test record is "
                                "sinus rhythm only)" if metric == "challenge_score"
                                else "undefined for every class in this test fold")
        rows.append(row)
    info = {"thresholds": dict(zip(abbr, np.asarray(thresholds, dtype=float).round(6).tolist())),
            "threshold_default_classes": [a for a, k in zip(abbr, y_val.sum(0)) if k == 0]}
    return rows, info


def challenge_summary(rows: Sequence[dict]) -> list[dict]:
    """Mean ± sd over test folds (and seeds) of :func:`challenge_rows` rows, per model and metric.

    Each summary row has ``value`` (mean of the defined values), ``sd`` (ddof 1, ``None`` for one),
    ``folds`` (how many values), ``undefined_folds`` (the ``(test_fold, seed)`` pairs whose value
    was ``None``: counted out, never averaged as NaN) and ``evaluation: "mean over test folds"``.
    """
    groups: dict[tuple, list] = {}
    for r in rows:
        if r.get("task") == CHALLENGE_TASK and "test_fold" in r:
            groups.setdefault((r["model"], r["metric"]), []).append(r)
    out = []
    for (model, metric), rs in groups.items():
        good = np.array([r["value"] for r in rs if r["value"] is not None], dtype=float)
        out.append({"model": model, "task": CHALLENGE_TASK, "metric": metric,
                    "value": float(good.mean()) if good.size else None,
                    "sd": float(good.std(ddof=1)) if good.size > 1 else None, "folds": int(good.size),
                    "undefined_folds": [[r["test_fold"], r["seed"]] for r in rs if r["value"] is None],
                    "evaluation": "mean over test folds", "label_fraction": 1.0, "split": "test folds",
                    "seed": "mean over folds and seeds"})
    return out


def challenge_builder(method: str, n_classes: int, *, size: str, spectrogram: Spectrogram,
                      encoder_files: dict | None = None) -> Callable[[], nn.Module]:
    """``build() -> model`` for a method name of the chapter: ``"baseline"`` (``resnet1d_wang``) or
    ``"<init>_<kind>"`` with init ``dino`` / ``simclr`` / ``random`` and kind ``time`` / ``spec`` /
    ``gate`` / ``concat`` (:func:`build_classifier`); pretrained encoders from ``encoder_files``
    (``{"dino_time": path, …}``). Raises ``ValueError`` for an unknown method or a missing encoder."""

    if method == "baseline":
        return lambda: ResNet1dWang(n_leads=12, n_classes=n_classes)
    init, _, kind = method.partition("_")
    if init not in ("dino", "simclr", "random") or kind not in ("time", "spec", "gate", "concat"):
        raise ValueError(f"unknown method {method!r}; expected baseline or "
                         "<dino|simclr|random>_<time|spec|gate|concat>")
    states = {"time_state": None, "spec_state": None}
    if init != "random":
        files = encoder_files or {}
        for modality in ("time", "spec"):
            if kind in (modality, "gate", "concat"):
                key = f"{init}_{modality}"
                if key not in files:
                    raise ValueError(f"method {method!r} needs the pretrained encoder {key!r}")
                states[f"{modality}_state"] = files[key]
    return lambda: build_classifier(kind, n_classes, size=size, spectrogram=spectrogram, **states)[0]


def _pretraining_needed(methods: Sequence[str]) -> list[tuple[str, str, str]]:
    need = []
    for name, modality, method in (("dino_time", "time", "dino"), ("dino_spec", "spec", "dino"),
                                   ("simclr_time", "time", "simclr")):
        init = name.split("_")[0]
        if any(m.startswith(init + "_") and m.split("_", 1)[1] in (modality, "gate", "concat") for m in methods):
            need.append((name, modality, method))
    return need


@dataclass
class ChallengeRun:
    """What :func:`challenge2020_protocol` returns: per-fold ``rows`` and fold-mean ``summary`` rows
    (schema ``ecgbook.results/1``), and ``extra`` (data, folds, thresholds, pretraining, timing)."""

    rows: list
    summary: list
    extra: dict

    def table(self):
        """``model × metric`` table of ``mean ± sd (n)`` over the test folds."""

        cells = {}
        for r in self.summary:
            v, sd = r["value"], r["sd"]
            text = "–" if v is None else (f"{v:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
                                          + f" (n={r['folds']})")
            cells.setdefault(r["model"], {})[r["metric"]] = text
        return pd.DataFrame(cells).T.reindex(columns=list(CHALLENGE_METRICS))


def challenge2020_protocol(root: str | Path | None = None, *, data=None,
                           methods: Sequence[str] = ("dino_gate", "random_gate"),
                           encoder_size: str = "paper", out_dim: int = 65536, n_local: int = 8,
                           local_samples: int | None = None, momentum: float = 0.996, pretrain_epochs: int = 100,
                           pretrain_batch: int = 196, pretrain_lr: float = 5e-4, ft_epochs: int = 50,
                           ft_batch: int = 128, ft_lr: float = 1e-3, baseline_lr: float = 1e-2,
                           seeds: Sequence[int] = (0,), test_folds: Sequence[int] | None = None, k: int = 10,
                           fold_seed: int = 0, seconds: float = 10.0, crops_per_record: int = 5,
                           patient_ids: dict | None = None, threshold_metric: str = "f1",
                           device: str | None = None, checkpoint_root: str | Path | None = None) -> ChallengeRun:
    """The paper's evaluation: the PhysioNet/CinC Challenge 2020 training data, ten-fold.

    1. Data: every Challenge-format record under ``root`` (all sources,
       :func:`ecgbook.data.challenge.load_challenge2020`: 100 Hz, first ``seconds`` s, the 24
       scored classes with the equivalent ones merged by the official tables), or ``data`` given.
    2. Folds: :func:`challenge_folds` — ``k`` folds by iterative stratification grouped by patient
       (records are their own group where no patient id is known: the Challenge headers have
       none; pass ``patient_ids``, e.g. :func:`~ecgbook.data.challenge.ptbxl_patient_ids`).
    3. For every test fold ``t`` of ``test_folds`` (default all ``k``): validation fold ``t + 1``
       (mod k), training the other folds (:func:`challenge_fold`); the DINO (and SimCLR) encoders
       the ``methods`` need are pretrained on the training part only (one random 2.5-s window per
       record and epoch; epoch kept by a validation-fold linear probe), then each method is
       fine-tuned per seed (:func:`challenge_fine_tune`: ``crops_per_record`` random 2.5-s crops
       per record and epoch), scored by the window mean (2.5 s, stride 1.25 s) per record, its
       thresholds chosen on the validation fold, and the test fold scored (:func:`challenge_rows`).

    Parameters mirror the chapter's (``encoder_size`` … ``ft_lr``; DINO's lr is ``pretrain_lr ×
    pretrain_batch / 256``); ``baseline_lr`` is ``resnet1d_wang``'s. ``checkpoint_root``: where
    pretraining checkpoints and encoders go (default: a temporary folder, deleted at the end).

    Returns a :class:`ChallengeRun`. Raises ``ValueError`` when neither or both of ``root`` and
    ``data`` are given, for an unknown method or fold, and the errors of the loader (naming the
    faulty file).
    """


    if (root is None) == (data is None):
        raise ValueError("challenge2020_protocol: pass root (a Challenge training folder) or data, not both")
    if data is None:
        data = load_challenge2020(root, seconds=seconds, patient_ids=patient_ids)
    test_folds = list(range(k)) if test_folds is None else [int(t) for t in test_folds]
    if any(not 0 <= t < k for t in test_folds):
        raise ValueError(f"challenge2020_protocol: test folds {test_folds} outside 0..{k - 1}")
    for m in methods:  # an unknown method fails here, before any training
        challenge_builder(m, len(data.classes), size=encoder_size, spectrogram=Spectrogram(),
                          encoder_files={n: None for n in ("dino_time", "dino_spec", "simclr_time")})
    fold = challenge_folds(data, k=k, seed=fold_seed)
    dino_cfg = DINOConfig(out_dim=out_dim, n_local=n_local, momentum=momentum)
    lr = pretrain_lr * pretrain_batch / 256
    warmup = min(10, max(pretrain_epochs // 5, 0))
    started = time.perf_counter()
    rows, extra = [], {"records": len(data), "classes": list(data.abbreviations), "dropped": data.dropped,
                       "sources": {s: int(n) for s, n in zip(*np.unique(data.sources, return_counts=True))},
                       "groups": int(len(np.unique(data.groups))),
                       "fold_sizes": np.bincount(fold, minlength=k).tolist(),
                       "folds": {}, "seconds": seconds, "fs": data.fs}
    tmp = tempfile.TemporaryDirectory(prefix="challenge2020-") if checkpoint_root is None else None
    ckpt_root = Path(tmp.name if tmp else checkpoint_root)
    try:
        for t in test_folds:
            part = challenge_fold(data, fold, t, k=k)
            spectrogram = Spectrogram().fit(part.X_train[..., :max(WINDOW, int(part.L_train.min()))])
            views = ViewSettings(local_samples=local_samples, lead_scale=1.0 / part.standardizer.std)
            info = {"val_fold": part.val_fold, "sizes": part.sizes(), "pretraining": {}, "runs": {}}
            files = {}
            for name, modality, method in _pretraining_needed(methods):
                seed_everything(0)
                base_probe = probe_criterion(modality, part.X_train, part.Y_train, part.X_val, part.Y_val, spectrogram,
                                             lengths_train=part.L_train, lengths_val=part.L_val)
                res = pretrain(modality, build_encoder(modality, encoder_size), part.X_train, method=method,
                               epochs=pretrain_epochs, batch_size=min(pretrain_batch, len(part.X_train)), lr=lr,
                               dino=dino_cfg, views=views, spectrogram=spectrogram, X_val=part.X_val,
                               probe=lambda enc, dev, p=base_probe: float(np.nan_to_num(p(enc, dev))),
                               warmup_epochs=warmup, seed=0, checkpoint_dir=ckpt_root / f"fold{t}" / name,
                               device=device, lengths=part.L_train, val_lengths=part.L_val)
                files[name] = save_encoder(res.encoder, ckpt_root / f"fold{t}" / f"{name}.pt")
                info["pretraining"][name] = {"best_epoch": res.fit.best_epoch, "best_probe_auroc": res.fit.best_score,
                                             "windows_per_s": res.windows_per_s, "wall_time_s": res.wall_time_s}
            for method in methods:
                build = challenge_builder(method, len(data.classes), size=encoder_size, spectrogram=spectrogram,
                                          encoder_files=files)
                for s in seeds:
                    t0 = time.perf_counter()
                    out = challenge_fine_tune(build, part, epochs=ft_epochs, batch_size=ft_batch,
                                              lr=baseline_lr if method == "baseline" else ft_lr, seed=int(s),
                                              crops_per_record=crops_per_record, device=device)
                    fold_rows, th = challenge_rows(part.Y_val, out.val_scores, part.Y_test, out.test_scores,
                                                   data.tables,
                                                   model=method, test_fold=t, val_fold=part.val_fold, seed=int(s),
                                                   threshold_metric=threshold_metric)
                    for r in fold_rows:
                        r.update(best_epoch=out.fit.best_epoch, val_macro_auroc=out.fit.best_score)
                    rows += fold_rows
                    info["runs"][f"{method}/seed{s}"] = {**th, "best_epoch": out.fit.best_epoch,
                                                          "wall_time_s": round(time.perf_counter() - t0, 2)}
            extra["folds"][str(t)] = info
    finally:
        if tmp is not None:
            tmp.cleanup()
    extra["wall_time_s"] = round(time.perf_counter() - started, 2)
    return ChallengeRun(rows, challenge_summary(rows), extra)


def challenge2020_settings(P: dict) -> dict:
    """Keyword arguments of :func:`challenge2020_protocol` from the chapter's resolved parameters
    ``P`` (:func:`ecgbook.profiles.resolve`): the encoders, DINO, fine-tuning and seeds of the
    profile, the methods of ``curve_methods`` (plus ``simclr_time`` only when ``simclr``), and
    ``baseline_lr`` for ``resnet1d_wang``."""
    methods = [m for m in P["curve_methods"] if P["simclr"] or not m.startswith("simclr")]
    return {"methods": methods, "encoder_size": P["encoder_size"], "out_dim": P["out_dim"], "n_local": P["n_local"],
            "local_samples": P["local_samples"], "momentum": P["momentum"],
            "pretrain_epochs": P["pretrain_epochs"], "pretrain_batch": P["pretrain_batch"],
            "pretrain_lr": P["pretrain_lr"], "ft_epochs": P["ft_epochs"], "ft_batch": P["ft_batch"],
            "ft_lr": P["ft_lr"], "baseline_lr": P["baseline_lr"], "seeds": list(P["seeds"])}
