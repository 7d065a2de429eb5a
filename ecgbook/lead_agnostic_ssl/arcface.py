"""The official patient-identification protocol (``paper`` profile): ArcFace fine-tuning of an encoder on
Challenge 2021 recordings (fairseq-signals' tri-stage schedule), tested on PTB-XL with one 5-s crop per
record.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import config
from ..data.challenge import list_records, read_challenge_record
from ..data.records import RecordError, STANDARD_LEADS
from ..models.wav2vec2 import W2VArcFace, Wav2Vec2Config, Wav2Vec2Encoder
from ..signal import resample
from ..batches import ArrayDataset
from ..train import Task, TrainConfig, fit
from .downstream import embed
from .identification import gallery_probe_split, identify
from .objectives import FS, LEAD_SUBSETS, SEGMENT, keep_leads


# ----------------------------------------------------------------------------------------------
# ArcFace identification: the official protocol (fine-tuned on Challenge 2021, tested on PTB-XL)
# ----------------------------------------------------------------------------------------------
#: Challenge 2021 ``training/`` sources left out by default: ``ptb`` and ``st_petersburg_incart``
#: as ``preprocess_physionet2021.py`` does (README line 47: long records, 1000 / 257 Hz), and
#: ``ptb-xl``, whose patients are the test set (the official default ``--subset`` keeps it, line 29).
CHALLENGE2021_EXCLUDE = ("ptb", "st_petersburg_incart", "ptb-xl")


@dataclass
class ChallengeRecordings:
    """Challenge 2021 recordings for identity training, 100 Hz, 12-lead layout.

    ``X`` ``(n, 12, samples)`` float32 mV (the first ``seconds`` s of each recording);
    ``recording`` ``(n,)`` path relative to the root without extension (the identity: every
    recording is its own); ``source`` ``(n,)`` top folder (``cpsc_2018``, ``georgia``, …);
    ``skipped`` reason -> number of recordings left out.
    """

    X: np.ndarray
    recording: np.ndarray
    source: np.ndarray
    skipped: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)


def challenge2021_recordings(root, *, seconds: float = 2 * SEGMENT / FS, exclude=CHALLENGE2021_EXCLUDE,
                             max_recordings: int | None = None, seed: int = 0) -> ChallengeRecordings:
    """Read the Challenge 2021 recordings under ``root`` (recursively) for ArcFace training.

    Every ``.hea`` under ``root`` (:func:`ecgbook.data.challenge.list_records`) whose top folder
    is not in ``exclude`` is read with :func:`~ecgbook.data.challenge.read_challenge_record`
    (leads reordered to the 12-lead layout), resampled to 100 Hz and cut to its first ``seconds``
    s (default 10 s). Recordings shorter than ``seconds`` are left out (not padded, so that a
    random 5-s crop never holds padding), and so are recordings whose signal holds NaN (as the
    official ``preprocess_physionet2021.py``, lines 158-160); both are counted in ``skipped``.
    ``max_recordings``: a seeded random subset of that many headers (sorted by path), for smaller runs.

    Returns a :class:`ChallengeRecordings`. Raises ``FileNotFoundError`` when ``root`` is not a
    folder or holds no recording outside ``exclude``; :class:`~ecgbook.data.records.RecordError`
    (or ``ChallengeFormatError``) naming the file for any other unreadable record; ``ValueError``
    when no recording is long enough.
    """
    root = Path(root)
    headers = list_records(root)

    def source_of(h):
        rel = h.relative_to(root)
        return rel.parts[0] if len(rel.parts) > 1 else root.name

    headers = [h for h in headers if source_of(h) not in set(exclude)]
    if not headers:
        raise FileNotFoundError(f"{root}: no Challenge records outside the excluded sources {list(exclude)}")
    if max_recordings is not None and max_recordings < len(headers):
        pick = np.sort(np.random.default_rng(seed).choice(len(headers), size=max_recordings, replace=False))
        headers = [headers[i] for i in pick]
    length = int(round(seconds * FS))
    X = np.empty((len(headers), len(STANDARD_LEADS), length), np.float32)
    names, sources, skipped, k = [], [], {}, 0
    for h in tqdm(headers, desc="Challenge 2021", unit="record", disable=not config.progress_enabled()):
        try:
            record, _ = read_challenge_record(h, leads=STANDARD_LEADS)
        except RecordError as exc:
            if "contains NaN" not in str(exc):
                raise
            skipped["signal holds NaN"] = skipped.get("signal holds NaN", 0) + 1
            continue
        if record.signal.shape[1] < seconds * record.fs:
            key = f"shorter than {seconds:g} s"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        sig = resample(record.signal, record.fs, FS) if record.fs != FS else record.signal
        if sig.shape[1] < length:               # a rounding sample short after resampling
            sig = np.pad(sig, ((0, 0), (0, length - sig.shape[1])), mode="edge")
        X[k] = sig[:, :length]
        names.append(str(h.relative_to(root).with_suffix("")))
        sources.append(source_of(h))
        k += 1
    if k == 0:
        raise ValueError(f"{root}: no recording of at least {seconds:g} s (skipped: {skipped})")
    return ChallengeRecordings(X[:k], np.array(names), np.array(sources), skipped)


def tri_stage_factor(step: int, total: int, phases=(0.1, 0.2, 0.7), init_scale: float = 0.01,
                     final_scale: float = 0.01) -> float:
    """Learning-rate factor of fairseq's ``tri_stage`` schedule at update ``step`` of ``total``.

    Linear warm-up from ``init_scale`` to 1 over ``phases[0]`` of the updates, hold at 1 over
    ``phases[1]``, exponential decay to ``final_scale`` over ``phases[2]``, then ``final_scale``.
    Source: fairseq-signals ``optim/lr_scheduler/tri_stage_lr_scheduler.py`` (lines 97-120,
    126-167; ``init_lr_scale`` and ``final_lr_scale`` default 0.01, lines 37-44). The official
    config sets the phases over ``max_update: 320000`` while ``max_epoch: 100`` usually ends the
    run first; here they are fractions of the updates actually run.
    """
    warm, hold, decay = (int(total * p) for p in phases)
    if step < warm:
        return init_scale + (1.0 - init_scale) * step / warm
    if step < warm + hold:
        return 1.0
    if step <= warm + hold + decay:
        return math.exp(math.log(final_scale) * (step - warm - hold) / max(decay, 1))
    return final_scale


class ArcFaceTask(Task):
    """The :class:`ecgbook.train.Task` of :func:`arcface_finetune`.

    ``loss``: leads outside ``keep`` ``(12,)`` bool zeroed, pooled embedding, float32 cosines
    (outside autocast), cross-entropy of the margin logits (mean over the batch, as the official
    criterion's sum divided by the sample size); parts ``accuracy`` (argmax of the cosines, no
    margin) and ``lr``. The learning rate of each update is set here (``"tri_stage"``:
    :func:`tri_stage_factor` over the run's updates; ``"constant"``), so :func:`ecgbook.train.fit`
    runs with its constant schedule and its history's ``lr`` is the base value; ``train_lr`` is the
    one used. No validation data: ``validate`` returns ``epochs_done``, so the last epoch is kept.
    """

    criterion, mode = "epochs_done", "max"
    labels = {"train_loss": "ArcFace cross-entropy (margin logits), mean over steps",
              "train_accuracy": "training-crop accuracy of the cosine argmax (no margin)",
              "train_lr": "learning rate used (tri-stage or constant); 'lr' is fit's constant base"}

    def __init__(self, keep: torch.Tensor, lr: float, schedule: str = "tri_stage"):
        if schedule not in ("tri_stage", "constant"):
            raise ValueError(f"schedule must be 'tri_stage' or 'constant', not {schedule!r}")
        self.keep, self.lr, self.schedule = keep, float(lr), schedule
        self.epoch, self.opt, self.total = 0, None, 1

    def setup(self, model, optimizer, *, steps_per_epoch, total_steps, device):
        self.opt, self.total, self.keep = optimizer, total_steps, self.keep.to(device)
        self._set_lr(0)

    def _set_lr(self, step: int) -> None:
        factor = tri_stage_factor(step, self.total) if self.schedule == "tri_stage" else 1.0
        for g in self.opt.param_groups:
            g["lr"] = self.lr * factor

    def param_groups(self, model):          # Adam (0.9, 0.98), eps 1e-8, no weight decay (official)
        return [{"params": [p for p in model.parameters() if p.requires_grad], "betas": (0.9, 0.98),
                 "eps": 1e-8, "weight_decay": 0.0}]

    def on_epoch_start(self, model, epoch):
        self.epoch = epoch

    def loss(self, model, batch):
        x, y = batch
        y = y.long()
        z = model.pooled(x * self.keep[:, None].to(x.dtype))
        cos = model.head.cosine(z)                          # float32, outside autocast
        loss = F.cross_entropy(model.head.logits_from_cosine(cos, y), y)
        with torch.no_grad():
            acc = (cos.argmax(1) == y).float().mean()
        return loss, {"accuracy": acc, "lr": self.opt.param_groups[0]["lr"]}

    def on_step(self, model, step):
        self._set_lr(step + 1)

    def validate(self, model, device):
        return {"epochs_done": float(self.epoch + 1)}


@dataclass
class ArcFaceRun:
    """What :func:`arcface_finetune` returns: the fine-tuned ``encoder`` (eval mode), the whole
    ``model`` (:class:`~ecgbook.models.wav2vec2.W2VArcFace`), the per-epoch ``history`` and the
    :class:`ecgbook.train.TrainResult` ``fit``."""

    encoder: Wav2Vec2Encoder
    model: nn.Module
    history: list
    fit: object


def arcface_finetune(encoder: Wav2Vec2Encoder | None, recordings, *, cfg: Wav2Vec2Config | None = None,
                     leads=LEAD_SUBSETS[12], epochs: int = 1, batch_size: int = 128, lr: float = 3e-5,
                     scale: float = 192.0, margin: float = 1.0, schedule: str = "tri_stage", seed: int = 0,
                     device=None) -> ArcFaceRun:
    """Fine-tune an encoder for identification with an ArcFace head, each recording its own identity.

    ``recordings``: a :class:`ChallengeRecordings` (:func:`challenge2021_recordings`) or an array
    ``(n, 12, samples)`` float32 mV at 100 Hz, ``samples >= 500``; identity ``i`` = recording
    ``i`` (the official ``preprocess_physionet2021.py`` gives every file its own ``patient_id``,
    lines 83-85 and 178). Each epoch draws one random 5-s crop of every recording (seeded by
    ``(seed, epoch)``; the official code instead stores every non-overlapping 5-s crop as an item,
    lines 179-188). Leads outside ``leads`` are zeroed (their place kept).

    Model (:class:`~ecgbook.models.wav2vec2.W2VArcFace`): a copy of ``encoder`` (``None``: a new
    encoder of ``cfg``, seeded), conv feature encoder frozen, dropout 0 / attention dropout 0 /
    activation dropout 0.1 / input dropout 0, mean over time, ArcFace ``scale`` 192 and ``margin``
    1.0 (``identification.yaml`` lines 40-43, 66-71; ``TransformerFinetuningConfig`` in
    ``models/transformer.py`` lines 250-253). Trained with :func:`ecgbook.train.fit`: Adam
    (0.9, 0.98), eps 1e-8, no weight decay, no gradient clipping, ``lr`` 3e-5 with the tri-stage
    schedule (:func:`tri_stage_factor`; ``schedule="constant"`` for a fixed lr), bf16 autocast on
    CUDA only and the loss in float32; no validation set: the last epoch is kept (the official run
    validates on the PTB-XL test gallery itself).

    Returns an :class:`ArcFaceRun` (history rows: ``train_loss``, ``train_accuracy``,
    ``train_lr``, ...). Raises ``ValueError`` for recordings that are not ``(n, 12, >= 500)``,
    fewer than 2 identities, an unknown lead or ``schedule``, or neither ``encoder`` nor ``cfg``.
    """
    if schedule not in ("tri_stage", "constant"):
        raise ValueError(f"schedule must be 'tri_stage' or 'constant', not {schedule!r}")
    X = recordings.X if isinstance(recordings, ChallengeRecordings) else recordings
    if np.ndim(X) != 3 or X.shape[1] != len(STANDARD_LEADS) or X.shape[2] < SEGMENT:
        raise ValueError(f"arcface_finetune: recordings must be (n, 12, >= {SEGMENT}) at {FS} Hz, got {np.shape(X)}")
    if len(X) < 2 or len(X) > 2 ** 24:
        raise ValueError(f"arcface_finetune: needs 2 to 2**24 recordings (identities), got {len(X)}")
    if encoder is None and cfg is None:
        raise ValueError("arcface_finetune: pass an encoder or a cfg for a new one")
    keep = torch.as_tensor(keep_leads(np.ones((len(STANDARD_LEADS), 1), np.float32), leads)[:, 0] > 0)
    torch.manual_seed(seed)
    enc = copy.deepcopy(encoder) if encoder is not None else Wav2Vec2Encoder(cfg)
    enc.set_dropouts(dropout=0.0, attention_dropout=0.0, activation_dropout=0.1, dropout_input=0.0)
    model = W2VArcFace(enc, len(X), scale=scale, margin=margin, freeze="conv")
    data = ArrayDataset(X, np.arange(len(X), dtype=np.float32), seed=seed, crop=SEGMENT)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.0, patience=None, seed=seed,
                       device=str(device) if device is not None else None, grad_clip=None, schedule="constant")
    res = fit(model, data, task=ArcFaceTask(keep, lr, schedule), cfg=tcfg)
    model.eval()
    return ArcFaceRun(model.encoder, model, res.history, res)


def one_crop_per_record(X, *, seed: int = 0, length: int = SEGMENT) -> tuple[np.ndarray, np.ndarray]:
    """One random ``length``-sample crop of every record of ``X`` ``(records, leads, samples)``.

    Start of record ``r`` = ``default_rng(seed).integers(0, samples - length + 1, records)[r]``
    (one draw for all records, so a record's crop does not depend on which others are used); the
    official ``preprocess_ptbxl.py`` draws one random 5-s crop per ECG (lines 82, 102-107).
    Returns ``(crops (records, leads, length) float32, starts (records,))``. Raises
    ``ValueError`` when the records are shorter than ``length``.
    """
    n, leads, samples = np.shape(X)
    if samples < length:
        raise ValueError(f"one_crop_per_record: records of {samples} samples are shorter than {length}")
    starts = np.random.default_rng(seed).integers(0, samples - length + 1, size=n)
    out = np.empty((n, leads, length), np.float32)
    for i, s in enumerate(starts):
        out[i] = X[i, :, s:s + length]
    return out, starts


def identification_ptbxl_crops(encoders: dict, X, patient, dates, strat_fold, subsets, *, folds=(9, 10),
                               max_probes: int | None = 1, seed: int = 0, device=None) -> list[dict]:
    """Patient identification on PTB-XL with the official protocol's data: one 5-s crop per record.

    Records of ``folds`` (``None``: all), patients with at least two of them; gallery = each
    patient's first ECG by ``dates`` (recording date), probes = the next ``max_probes`` (``1``: the
    official gallery/probe pair, which takes the first two files in file-system order —
    ``manifest_identification.py`` lines 61-84; ``None``: every later ECG); each record is one
    seeded random 5-s crop (:func:`one_crop_per_record`) of ``X`` ``(records, 12, samples)``.
    Top-1 / top-5 by cosine similarity of the pooled embeddings (:func:`identify`; the official
    code compares the vectors of cosines to the training identities' ArcFace weights instead).

    ``encoders``: name -> encoder (evaluated on every subset of ``subsets``) or name -> ``{n_leads:
    encoder}`` (an ArcFace model fine-tuned per lead subset; only those subsets). Returns rows with
    the fields of :func:`identification_ptbxl` (``task="patient_identification_ptbxl_5s_crop"``).
    """
    patient, dates = np.asarray(patient), np.asarray(dates)
    keep = np.arange(len(patient)) if folds is None else np.flatnonzero(np.isin(np.asarray(strat_fold), folds))
    g, p = gallery_probe_split(patient[keep], dates[keep], max_probes=max_probes)
    g, p = keep[g], keep[p]
    crops, _ = one_crop_per_record(X, seed=seed)
    both = np.concatenate([g, p])
    split = "all folds" if folds is None else f"folds {','.join(map(str, folds))}"
    rows = []
    for name, enc in encoders.items():
        per_subset = enc if isinstance(enc, dict) else {n: enc for n in subsets}
        for n_leads in subsets:
            if n_leads not in per_subset:
                continue
            Z = embed(per_subset[n_leads], keep_leads(crops[both], LEAD_SUBSETS[n_leads]), device=device)
            res = identify(Z[:len(g)], patient[g], Z[len(g):], patient[p])
            for k in (1, 5):
                rows.append({"metric": f"top{k}_accuracy", "value": res[f"top{k}"], "chance": res[f"chance_top{k}"],
                             "model": name, "task": "patient_identification_ptbxl_5s_crop", "leads": n_leads,
                             "evaluation": "identification", "gallery": res["gallery"], "probes": res["probes"],
                             "split": split})
    return rows
