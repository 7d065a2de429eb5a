"""Downstream evaluation of pre-trained encoders on PTB-XL: embeddings, linear probes and fine-tuning
per lead subset and label fraction, paired comparisons, and the crop-level leak.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .. import protocol
from ..metrics import macro_auroc, paired_bootstrap
from ..models.resnet1d import ResNet1dWang
from ..models.wav2vec2 import W2VClassifier, Wav2Vec2Config, Wav2Vec2Encoder
from ..protocol import Prepared
from ..ssl import label_fraction_subsets, linear_probe
from .objectives import FS, LEAD_SUBSETS, SEGMENT, keep_leads

# ----------------------------------------------------------------------------------------------
# Downstream
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def embed(encoder: Wav2Vec2Encoder, X: np.ndarray, *, window: int = SEGMENT, batch_size: int = 128,
          device: torch.device | str | None = None) -> np.ndarray:
    """Pooled embeddings ``(records, D)``: the mean over the non-overlapping ``window``-sample windows
    of each record ``X`` ``(records, 12, samples)`` of the encoder's time-averaged context."""
    device = torch.device(device) if device else next(encoder.parameters()).device
    encoder.eval().to(device)
    n, leads, samples = X.shape
    k = max(1, samples // window)
    out = []
    for lo in range(0, n, batch_size):
        x = torch.as_tensor(np.asarray(X[lo:lo + batch_size], np.float32), device=device)
        w = x[..., :k * window].reshape(x.shape[0], leads, k, window).permute(0, 2, 1, 3).reshape(-1, leads, window)
        z = encoder(w)["x"].float().mean(1).view(x.shape[0], k, -1).mean(1)
        out.append(z.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.cfg.embed_dim), np.float32)


def fine_tune(encoder: Wav2Vec2Encoder | None, cfg: Wav2Vec2Config, data, *, epochs: int, batch_size: int, lr: float,
              seed: int, freeze: str = "conv"):
    """The official fine-tuning: conv encoder frozen, Transformer and a mean-pool linear head trained.

    ``encoder``: a pre-trained encoder (copied) or ``None`` for random initialisation; ``data``: a
    :class:`ecgbook.protocol.Prepared` (unstandardised mV, absent leads zero). Trains on random 5-s
    crops with :func:`ecgbook.protocol.train_and_test` (epoch chosen on fold 9), scores are the
    max over 5-s windows with 50 % overlap. Returns its :class:`~ecgbook.protocol.RunOutput`.
    """

    def build():
        enc = copy.deepcopy(encoder) if encoder is not None else Wav2Vec2Encoder(cfg)
        return W2VClassifier(enc, len(data.classes), freeze=freeze)

    return protocol.train_and_test(build, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                   window_s=SEGMENT / FS, patience=None)


def prepared_subset(task, subset, splits: dict | None = None):
    """A :class:`ecgbook.protocol.Prepared` of a PTB-XL task with only ``subset`` leads (others zero),
    in mV without standardisation; splits are ``strat_fold`` 1-8 / 9 / 10 unless given."""
    splits = splits or {name: task.split(name) for name in ("train", "val", "test")}
    X = {k: keep_leads(np.asarray(task.X[v], np.float32), subset) for k, v in splits.items()}
    Y = {k: task.Y[v] for k, v in splits.items()}
    return Prepared(X["train"], Y["train"], X["val"], Y["val"], X["test"], Y["test"], list(task.classes), None, task.fs)

# ----------------------------------------------------------------------------------------------
# The leak of crop-level splits
# ----------------------------------------------------------------------------------------------
def crop_splits(patient, crops_per_record: int = 2, *, level: str = "crop", fractions=(0.8, 0.1, 0.1),
                seed: int = 42) -> dict:
    """Train/valid/test indices over the ``records * crops_per_record`` crops (crop ``r * c + j``).

    ``level="crop"``: the crops are shuffled and cut 80/10/10 with no grouping, as the official
    ``manifest.py`` / ``manifest_physionet2021.py`` do without ``--group-by`` (so crops of one
    recording land on both sides); ``"patient"``: whole patients go to one side. Returns
    ``{"train", "val", "test"}`` arrays of crop indices.
    """
    if level not in ("crop", "patient"):
        raise ValueError(f"level must be 'crop' or 'patient', not {level!r}")
    patient = np.asarray(patient)
    n = len(patient) * crops_per_record
    rng = np.random.default_rng(seed)
    if level == "crop":
        order = rng.permutation(n)
        n_val, n_test = int(n * fractions[1]), int(n * fractions[2])
        n_train = n - n_val - n_test
        return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
                "test": np.sort(order[n_train + n_val:])}
    groups = np.unique(patient)
    rng.shuffle(groups)
    g_val, g_test = int(len(groups) * fractions[1]), int(len(groups) * fractions[2])
    g_train = len(groups) - g_val - g_test
    side = {g: (0 if i < g_train else 1 if i < g_train + g_val else 2) for i, g in enumerate(groups)}
    crop_side = np.repeat([side[p] for p in patient], crops_per_record)
    return {name: np.flatnonzero(crop_side == s) for s, name in enumerate(("train", "val", "test"))}


def crops_of(X: np.ndarray, crops_per_record: int = 2, length: int = SEGMENT) -> np.ndarray:
    """Non-overlapping crops ``(records * crops, leads, length)`` of ``X`` ``(records, leads, samples)``,
    crop ``r * crops + j`` = record ``r``'s ``j``-th."""
    X = np.asarray(X, np.float32)
    n, leads, samples = X.shape
    if samples < crops_per_record * length:
        raise ValueError(f"crops_of: records hold {samples} samples (record index 0 of {n}), fewer than "
                         f"{crops_per_record} crops x {length} samples = {crops_per_record * length}")
    return X[..., :crops_per_record * length].reshape(n, leads, crops_per_record, length).transpose(0, 2, 1, 3) \
        .reshape(n * crops_per_record, leads, length)


# ----------------------------------------------------------------------------------------------
# The chapter's experiments (result rows of schema ecgbook.results/1)
# ----------------------------------------------------------------------------------------------
def probe_subsets(encoders: dict, task, subsets, *, n_boot: int, seed: int = 0, label_fractions=(1.0,),
                  device=None) -> tuple[list[dict], dict]:
    """Linear probe (:func:`ecgbook.ssl.linear_probe`) of every encoder on every lead subset of a
    PTB-XL ``task`` (folds 1-8 / 9 / 10), at the shared patient-disjoint nested label fractions
    (:func:`ecgbook.ssl.label_fraction_subsets` of the training folds, same ``seed`` for every method).

    ``encoders``: name -> :class:`Wav2Vec2Encoder` (frozen). Returns ``(rows, scores)`` with
    ``scores[(name, leads)]`` = test scores at 100 % of the labels (or the largest fraction), for
    paired comparisons.
    """
    splits = {name: task.split(name) for name in ("train", "val", "test")}
    fractions = label_fraction_subsets(task.patient_id[splits["train"]], tuple(label_fractions), seed=seed)
    top = max(fractions)
    X = np.asarray(task.X, np.float32)
    Y_train = task.Y[splits["train"]]
    rows, scores = [], {}
    for name, enc in encoders.items():
        for n_leads in subsets:
            Z = embed(enc, keep_leads(X, LEAD_SUBSETS[n_leads]), device=device)
            Z_train = Z[splits["train"]]
            for fraction, subset in sorted(fractions.items()):
                res = linear_probe(Z_train[subset], Y_train[subset], Z[splits["val"]], task.Y[splits["val"]],
                                   Z[splits["test"]], seed=seed)
                if fraction == top:
                    scores[(name, n_leads)] = res.test_scores
                rows.append(protocol.auroc_row(task.Y[splits["test"]], res.test_scores, task.classes, n_boot=n_boot,
                                       boot_seed=seed, model=name, task=task.task, leads=n_leads,
                                       evaluation="linear_probe", label_fraction=float(fraction), seed=seed,
                                       train_records=int(len(subset)), C=res.C, val_auroc=res.val_auroc))
    return rows, scores


def paired_rows(scores: dict, y_test, pairs, *, n_boot: int, seed: int = 0, task: str = "", evaluation: str = "") -> list[dict]:
    """Paired bootstrap ``Δ macro AUROC = A - B`` on the same test records for each ``(key_a, key_b)``.

    Keys are ``(model, leads)`` (or ``(model, leads, seed)``; then the scores are first averaged over
    the seeds present for that ``(model, leads)``, as the seeds helper pools them).
    """

    def pooled(key):
        if key in scores:
            return scores[key]
        found = [v for k, v in scores.items() if k[:len(key)] == key]
        if not found:
            raise KeyError(f"no scores for {key}")
        return np.mean(found, axis=0)

    rows = []
    for a, b in pairs:
        res = paired_bootstrap(macro_auroc, y_test, pooled(a), pooled(b), n_boot=n_boot, seed=seed)
        rows.append({"metric": "delta_macro_auroc", "value": res["diff"], "ci_low": res["low"], "ci_high": res["high"],
                     "p_value": res["p_value"], "model": f"{a[0]} - {b[0]}", "model_a": a[0], "model_b": b[0],
                     "leads": a[1], "task": task, "evaluation": evaluation, "split": "test", "n": int(len(y_test))})
    return rows


def finetune_subsets(encoders: dict, cfg: Wav2Vec2Config, task, subsets, seeds, *, epochs: int, batch_size: int,
                     lr: float, n_boot: int) -> tuple[list[dict], dict, dict]:
    """Official-style fine-tuning (conv frozen) per encoder (``None`` = random init), lead subset and seed.

    Returns ``(rows, scores, histories)``; ``scores[(name, leads, seed)]``.
    """
    rows, scores, histories = [], {}, {}
    for n_leads in subsets:
        data = prepared_subset(task, LEAD_SUBSETS[n_leads])
        for name, enc in encoders.items():
            for seed in seeds:
                run = fine_tune(enc, cfg, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
                scores[(name, n_leads, seed)] = run.test_scores
                histories[(name, n_leads, seed)] = run.fit.history
                rows.append(protocol.auroc_row(data.Y_test, run.test_scores, data.classes, n_boot=n_boot, boot_seed=seed, model=name,
                                       task=task.task, leads=n_leads, evaluation="fine_tune", label_fraction=1.0,
                                       seed=seed, best_epoch=run.fit.best_epoch, val_auroc=run.fit.best_score,
                                       samples_per_s=run.fit.samples_per_s))
    return rows, scores, histories


def baseline_subsets(task, subsets, seeds, *, epochs: int, batch_size: int, lr: float,
                     n_boot: int) -> tuple[list[dict], dict, dict]:
    """``resnet1d_wang`` trained from scratch on each lead subset (benchmark protocol: 2.5-s crops,
    max over windows; mV input, absent leads zero, as every model of this chapter).

    Returns ``(rows, scores, histories)``; ``scores[("resnet1d_wang", leads, seed)]``, and the
    per-epoch ``histories`` under the same keys (for :mod:`ecgbook.health`).
    """
    rows, scores, histories = [], {}, {}
    for n_leads in subsets:
        data = prepared_subset(task, LEAD_SUBSETS[n_leads])
        for seed in seeds:
            run = protocol.train_and_test(lambda: ResNet1dWang(n_classes=len(data.classes)), data, epochs=epochs,
                                          batch_size=batch_size, lr=lr, seed=seed, patience=None)
            scores[("resnet1d_wang", n_leads, seed)] = run.test_scores
            histories[("resnet1d_wang", n_leads, seed)] = run.fit.history
            rows.append(protocol.auroc_row(data.Y_test, run.test_scores, data.classes, n_boot=n_boot, boot_seed=seed,
                                   model="resnet1d_wang", task=task.task, leads=n_leads, evaluation="supervised",
                                   label_fraction=1.0, seed=seed, best_epoch=run.fit.best_epoch))
    return rows, scores, histories

def leak_rows(encoder, cfg: Wav2Vec2Config, task, *, name: str, n_boot: int, seed: int = 0, fine_tune_epochs: int = 0,
              batch_size: int = 64, lr: float = 1e-3) -> list[dict]:
    """The same model evaluated on a crop-level split (official manifests) and a patient-level split.

    Every PTB-XL record of ``task`` gives two 5-s crops (with its labels); :func:`crop_splits` cuts
    them 80/10/10 at crop level or patient level. A linear probe (and, with ``fine_tune_epochs``, the
    official fine-tuning) is trained and tested on each; the rows say how many test crops have a
    sibling crop of their recording in training.
    """
    crops = crops_of(np.asarray(task.X, np.float32), 2)
    Y = np.repeat(task.Y, 2, axis=0)
    record = np.repeat(np.arange(len(task.Y)), 2)
    Z = embed(encoder, crops, device=next(encoder.parameters()).device)
    rows = []
    for level in ("crop", "patient"):
        s = crop_splits(task.patient_id, 2, level=level, seed=seed)
        shared = np.isin(record[s["test"]], record[s["train"]]).mean()
        res = linear_probe(Z[s["train"]], Y[s["train"]], Z[s["val"]], Y[s["val"]], Z[s["test"]], seed=seed)
        res = {"test_scores": res.test_scores}
        common = dict(model=name, task=task.task, leads=12, split_level=level, seed=seed, label_fraction=1.0,
                      test_crops_with_train_sibling=float(shared))
        rows.append(protocol.auroc_row(Y[s["test"]], res["test_scores"], task.classes, n_boot=n_boot, boot_seed=seed,
                               evaluation="linear_probe", **common))
        if fine_tune_epochs:
            data = Prepared(crops[s["train"]], Y[s["train"]], crops[s["val"]], Y[s["val"]], crops[s["test"]],
                            Y[s["test"]], list(task.classes), None, FS)
            run = fine_tune(encoder, cfg, data, epochs=fine_tune_epochs, batch_size=batch_size, lr=lr, seed=seed)
            rows.append(protocol.auroc_row(Y[s["test"]], run.test_scores, task.classes, n_boot=n_boot, boot_seed=seed,
                                   evaluation="fine_tune", **common))
    return rows
