"""Lead-agnostic self-supervised learning: wav2vec 2.0 + CMSC + random lead masking (Oh et al., CHIL 2022).

Oh J, Chung H, Kwon J-m, Hong D-g, Choi E. "Lead-agnostic self-supervised learning for local and
global representations of electrocardiogram". Conference on Health, Inference, and Learning (CHIL),
PMLR 174:338-353, 2022 (arXiv 2203.06889). Official code: ``Jwoo5/fairseq-signals`` at commit
6b9e137 (``examples/w2v_cmsc``); the facts used here, at that commit (``fairseq_signals/`` left out
of the paths below), and the chapter ``chapters/06_lead_agnostic_ssl.md``:

* configuration ``examples/w2v_cmsc/config/pretraining/w2v_cmsc_rlm.yaml``: random lead masking
  with probability 0.5 on every segment (lines 17-20), ``normalize: false`` (21),
  ``loss_weights: [0.1, 10]`` (41), Adam and fixed learning rate (43-56), ``mask_prob: 0.65`` (62);
* span mask: ``data/data_utils.py:18-140`` (``compute_mask_indices``), called with
  ``min_masks=2`` at ``models/transformer.py:158-172``; span length 10 at line 68;
* random lead masking: ``data/ecg/augmentations.py:182-218`` (``RandomLeadsMask``: each of the
  12 leads zeroed with probability ``mask_leads_prob``, line 200);
* wav2vec 2.0 loss: ``criterions/wav2vec2_criterion.py:260-282`` (InfoNCE plus the weighted extra
  losses, each times the number of masked steps), extra losses at
  ``models/wav2vec2/wav2vec2.py:425-437`` (diversity ``(GV - perplexity) / GV``, feature penalty);
* CMSC: ``criterions/wav2vec2_criterion.py:284-327`` (L2-normalised mean-pooled context,
  positives where ``patient_id`` matches, symmetric cross-entropy), temperature 0.1 at
  ``criterions/cmsc_criterion.py:24-26``, pooling at ``models/wav2vec2/wav2vec2_cmsc.py:28-37``;
* pairs of adjacent segments: ``data/ecg/preprocess/convert_to_cmsc_manifest.py:67-75``, segment
  position ``i % 2`` at ``data/ecg/cmsc_ecg_dataset.py:176``.

The pieces, each tested in ``tests/test_lead_agnostic_ssl.py``:

* lead layout: :data:`LEAD_SUBSETS`, :func:`zero_fill`, :func:`keep_leads` (absent leads are zeros
  at their place in the 12-lead layout);
* randomness drawn per sample (:func:`sample_generator`): :func:`span_mask`, :func:`rlm_keep`,
  :func:`draw_randomness` — so a step depends on the samples, not on how a batch is split over
  processes;
* objectives: :func:`wav2vec2_loss` (contrastive + 0.1 diversity + 10 feature penalty),
  :func:`cmsc_loss` (positives from ids, :func:`cmsc_positives`), :func:`pretrain_loss` (their sum, DDP-aware);
* the mixed-lead corpus :func:`build_corpus` (PTB-XL folds 1-8, CinC 2017, MIT-BIH DS1) and the
  pre-training loop :func:`pretrain`;
* downstream: :func:`embed`, the shared :func:`ecgbook.ssl.linear_probe` and label fractions,
  :func:`fine_tune` (official: conv frozen, 5-s crops), patient identification
  (:func:`gallery_probe_split`, :func:`identify`), and the crop-level leak (:func:`crop_splits`);
* the official identification protocol (``paper`` profile, needs Challenge 2021 data): recordings
  (:func:`challenge2021_recordings`), ArcFace fine-tuning with recordings as identities
  (:func:`arcface_finetune`, :class:`~ecgbook.models.arcface.ArcFaceHead`) and the PTB-XL test on
  one 5-s crop per record (:func:`identification_ptbxl_crops`); tested in ``tests/test_arcface.py``.

Sampling frequency: 100 Hz throughout (PTB-XL's ``records100``; CinC 2017 and MIT-BIH resampled);
segments of 5 s (500 samples); a pair is 10 s (two adjacent, non-overlapping segments). Signals
stay in mV without standardisation, as the official configs (``normalize: false``), so that a
zero-filled lead means "absent" for every model.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import config, distributed as dist
from .device import pick_device
from .data.records import STANDARD_LEADS
from .models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder, Wav2Vec2Pretrainer, W2VClassifier, perplexity
from .train import Task

FS = 100
SEGMENT = 5 * FS
PAIR = 2 * SEGMENT
#: The lead subsets of the downstream evaluation (names in the 12-lead layout).
LEAD_SUBSETS = {
    12: tuple(STANDARD_LEADS),
    6: ("I", "II", "III", "aVR", "aVL", "aVF"),
    3: ("I", "II", "V2"),
    2: ("I", "II"),
    1: ("I",),
}


# ----------------------------------------------------------------------------------------------
# Lead layout
# ----------------------------------------------------------------------------------------------
def zero_fill(x: np.ndarray, leads, layout=STANDARD_LEADS) -> np.ndarray:
    """Place ``x`` ``(..., len(leads), samples)`` into the 12-lead ``layout``, absent leads zero.

    Lead ``leads[i]`` goes to row ``layout.index(leads[i])``. Raises ``ValueError`` for a lead not
    in the layout, a repeated lead, or a shape that does not match ``leads``.
    """
    x = np.asarray(x, dtype=np.float32)
    leads = list(leads)
    if x.ndim < 2 or x.shape[-2] != len(leads):
        raise ValueError(f"zero_fill: x has shape {x.shape}, expected (..., {len(leads)} leads, samples)")
    unknown = [l for l in leads if l not in layout]
    if unknown or len(set(leads)) != len(leads):
        raise ValueError(f"zero_fill: leads {leads} must be distinct names of the layout {list(layout)}")
    out = np.zeros(x.shape[:-2] + (len(layout), x.shape[-1]), dtype=np.float32)
    out[..., [list(layout).index(l) for l in leads], :] = x
    return out


def keep_leads(x, subset, layout=STANDARD_LEADS):
    """Zero every lead of ``x`` ``(..., 12, samples)`` not in ``subset`` (lead names); positions kept.

    Works on NumPy arrays and torch tensors (a copy). Raises ``ValueError`` for an unknown lead.
    """
    unknown = [l for l in subset if l not in layout]
    if unknown:
        raise ValueError(f"keep_leads: unknown lead(s) {unknown}; layout is {list(layout)}")
    keep = np.isin(np.array(layout), list(subset))
    if isinstance(x, torch.Tensor):
        return x * torch.as_tensor(keep, dtype=x.dtype, device=x.device)[:, None]
    out = np.array(x, dtype=np.float32, copy=True)
    out[..., ~keep, :] = 0.0
    return out


# ----------------------------------------------------------------------------------------------
# Per-sample randomness
# ----------------------------------------------------------------------------------------------
def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU generator whose stream depends only on ``(seed, epoch, index)`` (the sample's global index)."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def span_mask(
    steps: int,
    p: float = 0.65,
    length: int = 10,
    generator: torch.Generator | None = None,
    min_masks: int = 2,
) -> torch.Tensor:
    """wav2vec 2.0 span mask of one sequence: ``(steps,)`` bool.

    As fairseq ``compute_mask_indices`` (``mask_type="static"``, overlaps allowed): ``n
    = max(min_masks, int(p * steps / length + u))`` span starts (``u`` uniform,
    probabilistic rounding) drawn without replacement from the ``steps - length`` first
    positions, each masking ``length`` steps. ``p`` is the share of steps chosen as span
    *starts* times the span length, so with overlaps the masked share is below ``p``
    (about 0.49 of the steps for p 0.65, span 10). Raises ``ValueError`` when ``steps <=
    length``."""
    if steps <= length:
        raise ValueError(f"span_mask: {steps} steps cannot hold a span of {length}")
    n = max(
        min_masks, int(p * steps / length + torch.rand((), generator=generator).item())
    )
    n = min(n, steps - length)
    starts = torch.randperm(steps - length, generator=generator)[:n]
    mask = torch.zeros(steps, dtype=torch.bool)
    mask[(starts[:, None] + torch.arange(length)[None, :]).reshape(-1)] = True
    return mask


def rlm_keep(
    n_leads: int = 12, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random lead masking: ``(n_leads,)`` bool, each lead kept independently with
    probability ``1 - p``.

    Source: fairseq-signals ``data/ecg/augmentations.py`` ``RandomLeadsMask``
    (``survivors = uniform(size=12) >= mask_leads_prob``), applied to every segment
    (``p: [1.0]`` in the config)."""
    return torch.rand(n_leads, generator=generator) >= p


def draw_randomness(indices, *, seed: int, epoch: int, steps: int, cfg: Wav2Vec2Config, rlm_p: float | None,
                    n_leads: int = 12, w2v: bool = True) -> dict:
    """All random draws of one pre-training step, one generator per sample ``indices`` (global ids).

    Returns ``keep`` ``(B, n_leads)`` (all True without RLM), and when ``w2v``: ``mask`` ``(B, T)``,
    ``negatives_u`` ``(B, T, K)``, ``gumbel`` ``(B, T, G, V)``.
    """
    keeps, masks, negs, gums = [], [], [], []
    for i in indices:
        g = sample_generator(seed, epoch, int(i))
        keeps.append(rlm_keep(n_leads, rlm_p, g) if rlm_p else torch.ones(n_leads, dtype=torch.bool))
        if w2v:
            masks.append(span_mask(steps, cfg.mask_prob, cfg.mask_length, g))
            negs.append(torch.rand(steps, cfg.num_negatives, generator=g))
            u = torch.rand(steps, cfg.latent_groups, cfg.latent_vars, generator=g).clamp_(1e-10, 1 - 1e-7)
            gums.append(-torch.log(-torch.log(u)))
    out = {"keep": torch.stack(keeps)}
    if w2v:
        out.update(mask=torch.stack(masks), negatives_u=torch.stack(negs), gumbel=torch.stack(gums))
    return out


# ----------------------------------------------------------------------------------------------
# Objectives
# ----------------------------------------------------------------------------------------------
def wav2vec2_loss(
    out: dict, diversity_weight: float = 0.1, penalty_weight: float = 10.0
) -> dict:
    """wav2vec 2.0 objective from a :class:`~ecgbook.models.wav2vec2.Wav2Vec2Pretrainer`
    output.

    ``contrastive`` = mean over masked steps of ``-log softmax(logits)[0]`` (InfoNCE,
    cosine / 0.1, target in column 0); ``diversity`` = ``(G V - perplexity(mean
    softmax)) / (G V)`` with the average over all masked steps of the (global) batch;
    ``penalty`` = mean squared conv feature. ``loss = contrastive + 0.1 diversity + 10
    penalty`` (``loss_weights: [0.1, 10]`` in ``w2v_cmsc_rlm.yaml``; fairseq scales each
    term by the number of masked steps and divides the gradient by it, which is this
    mean form). Under DDP the means are global (:func:`ecgbook.distributed.global_mean`,
    :func:`~ecgbook.distributed.all_reduce_with_grad`).

    Returns a dict of float32 tensors: ``loss``, ``contrastive``, ``diversity``,
    ``penalty``, ``prob_perplexity``, ``code_perplexity``, ``accuracy`` (share of masked
    steps whose target wins)."""
    logits, valid = out["logits"].float(), out["valid"]
    lv = logits[valid]
    nll = -lv.log_softmax(-1)[:, 0]
    contrastive = dist.global_mean(nll.sum(), lv.shape[0])
    prob_sum = dist.all_reduce_with_grad(out["prob_sum"])
    n = dist.global_count(out["n"])
    gv = prob_sum.numel()
    prob_ppl = perplexity(prob_sum, n)
    diversity = (gv - prob_ppl) / gv
    penalty = dist.global_mean(out["features_pen_sum"], out["features_numel"])
    with torch.no_grad():
        code_ppl = perplexity(out["hard_sum"], out["n"])
        accuracy = (lv.argmax(-1) == 0).float().mean()
    loss = contrastive + diversity_weight * diversity + penalty_weight * penalty
    return {
        "loss": loss,
        "contrastive": contrastive,
        "diversity": diversity,
        "penalty": penalty,
        "prob_perplexity": prob_ppl.detach(),
        "code_perplexity": code_ppl,
        "accuracy": accuracy,
    }


def cmsc_positives(ids, segment):
    """CMSC's positive mask: ``P[i, j]`` is true when the ``i``-th first segment and the
    ``j``-th second segment of a batch carry the same id.

    ``ids`` and ``segment`` ``(N,)`` (NumPy arrays or torch tensors): the identity
    (recording, or patient for the ablation) and position (0: first 5 s of a pair, 1:
    next 5 s) of each segment. Returns ``(N₀, N₁)`` bool, rows the segments with
    position 0 and columns those with position 1, each in batch order. Built from the
    ids, never from positions in the batch: two pairs cut from one recording are
    positives of each other."""
    if not isinstance(ids, torch.Tensor):
        ids, segment = np.asarray(ids), np.asarray(segment)
    first, second = segment == 0, segment == 1
    return ids[first][:, None] == ids[second][None, :]


def cmsc_loss(
    z: torch.Tensor,
    ids: torch.Tensor,
    segment: torch.Tensor,
    temp: float = 0.1,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Contrastive multi-segment coding (CMSC; Kiyasseh et al., ICML 2021), as in
    fairseq-signals.

    ``z`` ``(N, D)`` pooled representations; ``ids`` ``(N,)`` integer identity
    (recording, or patient for the patient ablation); ``segment`` ``(N,)`` 0 for the
    first, 1 for the second segment of a pair. With ``a = z[segment == 0]`` and ``b =
    z[segment == 1]`` L2-normalised, ``S = a b^T / temp``; the positives are ``P[i, j] =
    ids_a[i] == ids_b[j]`` — built from the ids, so two pairs cut from one recording are
    positives of each other. The loss is ``1/2 mean_{P}(-log softmax_rows(S)) + 1/2
    mean_{P^T}(-log softmax_rows(S^T))``. Source: ``criterions/wav2vec2_criterion.py``
    (``wav2vec2_with_cmsc``), ``criterions/cmsc_criterion.py``. Raises ``ValueError``
    when a side has no segment."""
    z = z.float()
    z = z / torch.clamp(z.detach().norm(dim=-1, keepdim=True), min=eps)
    first, second = segment == 0, segment == 1
    if not first.any() or not second.any():
        raise ValueError("cmsc_loss needs segments of both positions (segment 0 and 1)")
    a, b = z[first], z[second]
    sim = a @ b.T / temp
    pos = cmsc_positives(ids, segment)
    loss_rows = -sim.log_softmax(-1)[pos].mean()
    loss_cols = -sim.T.log_softmax(-1)[pos.T].mean()
    return 0.5 * loss_rows + 0.5 * loss_cols


@dataclass
class Objective:
    """Which terms a pre-training run uses (one row of the ablation grid).

    ``w2v``: wav2vec 2.0 (span masking + quantised contrastive + diversity + penalty); ``cmsc``:
    the global objective; ``rlm``: random lead masking probability (``None``: off); ``cmsc_ids``:
    ``"recording"`` (official) or ``"patient"`` (ablation: recordings of one patient are positives).
    """

    w2v: bool = True
    cmsc: bool = True
    rlm: float | None = 0.5
    cmsc_ids: str = "recording"
    cmsc_temp: float = 0.1

    @property
    def name(self) -> str:
        parts = (["W2V"] if self.w2v else []) + (["CMSC"] if self.cmsc else []) + (["RLM"] if self.rlm else [])
        return "+".join(parts) + ("(patient)" if self.cmsc and self.cmsc_ids == "patient" else "")


#: The ablation grid of the paper (Table 2-3 layout): name -> objective.
METHODS = {
    "W2V": Objective(w2v=True, cmsc=False, rlm=None),
    "W2V+RLM": Objective(w2v=True, cmsc=False, rlm=0.5),
    "W2V+CMSC": Objective(w2v=True, cmsc=True, rlm=None),
    "W2V+CMSC+RLM": Objective(w2v=True, cmsc=True, rlm=0.5),
    "CMSC": Objective(w2v=False, cmsc=True, rlm=None),
    "CMSC+RLM": Objective(w2v=False, cmsc=True, rlm=0.5),
    "W2V+CMSC(patient)+RLM": Objective(w2v=True, cmsc=True, rlm=0.5, cmsc_ids="patient"),
}


def objective(name: str) -> Objective:
    """The :class:`Objective` of a method name of :data:`METHODS`; ``ValueError`` when unknown."""
    if name not in METHODS:
        raise ValueError(f"unknown pre-training method {name!r}; expected one of {list(METHODS)}")
    return METHODS[name]


def pretrain_loss(model, pairs: torch.Tensor, index: torch.Tensor, ids: torch.Tensor, obj: Objective, *,
                  seed: int, epoch: int) -> tuple[torch.Tensor, dict]:
    """The loss of one step on ``pairs`` ``(P, 12, 2 * segment)`` with global pair ``index`` ``(P,)``.

    Each pair gives segments ``2 i`` (first 5 s) and ``2 i + 1`` (next 5 s); all randomness is drawn
    per segment from :func:`sample_generator` (``seed``, ``epoch``, segment index), so the value
    does not depend on how a global batch is split over processes. ``ids`` ``(P,)`` int identity
    for CMSC (gathered over ranks). Returns ``(loss, parts)`` with float parts for logging.
    """
    core = dist.unwrap(model)
    p, leads, samples = pairs.shape
    half = samples // 2
    segs = pairs.view(p, leads, 2, half).permute(0, 2, 1, 3).reshape(2 * p, leads, half)
    seg_index = (2 * index[:, None] + torch.arange(2)[None, :]).reshape(-1)
    steps = core.encoder.time_steps(half)
    r = draw_randomness(seg_index.tolist(), seed=seed, epoch=epoch, steps=steps, cfg=core.cfg, rlm_p=obj.rlm,
                        n_leads=leads, w2v=obj.w2v)
    device = pairs.device
    segs = segs * r["keep"].to(device, segs.dtype)[..., None]
    use_amp = device.type == "cuda"
    parts, loss = {}, torch.zeros((), device=device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        if obj.w2v:
            out = model(segs, r["mask"].to(device), r["negatives_u"].to(device), r["gumbel"].to(device))
            pooled = out["pooled"]
        else:
            out, pooled = None, model(segs, None)["pooled"]
    if obj.w2v:
        terms = wav2vec2_loss(out)
        loss = loss + terms["loss"]
        parts.update({k: float(v.detach()) for k, v in terms.items() if k != "loss"})
        parts["temp"] = float(out["temp"])
    if obj.cmsc:
        seg_ids = ids.to(device).repeat_interleave(2)
        position = torch.arange(2, device=device).repeat(p)
        z = dist.gather_with_grad(pooled.float())
        c = cmsc_loss(z, dist.gather(seg_ids), dist.gather(position), obj.cmsc_temp)
        loss = loss + c
        parts["cmsc"] = float(c.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts


# ----------------------------------------------------------------------------------------------
# Mixed-lead corpus
# ----------------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Pre-training pairs at 100 Hz in the 12-lead layout.

    ``X`` ``(pairs, 12, 1000)`` float32 mV (absent leads zero); ``recording`` and ``patient``
    ``(pairs,)`` string ids (``"ptbxl:17"``, ``"cinc2017:A00001"``, ``"mitdb:201"``); ``source``
    ``(pairs,)`` dataset name; ``leads`` per source: the leads present.
    """

    X: np.ndarray
    recording: np.ndarray
    patient: np.ndarray
    source: np.ndarray
    leads: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)

    def ids(self, kind: str = "recording") -> np.ndarray:
        """``(pairs,)`` int64 codes of ``recording`` or ``patient`` ids (for CMSC positives)."""
        if kind not in ("recording", "patient"):
            raise ValueError(f"ids kind must be 'recording' or 'patient', not {kind!r}")
        values = self.recording if kind == "recording" else self.patient
        return pd.factorize(values)[0].astype(np.int64)

    def subset(self, keep) -> "Corpus":
        keep = np.asarray(keep)
        return Corpus(np.asarray(self.X[keep]), self.recording[keep], self.patient[keep], self.source[keep], self.leads)

    def summary(self) -> pd.DataFrame:
        """Pairs, recordings, patients and leads per source."""
        df = pd.DataFrame({"source": self.source, "recording": self.recording, "patient": self.patient})
        out = df.groupby("source").agg(pairs=("recording", "size"), recordings=("recording", "nunique"),
                                       patients=("patient", "nunique"))
        out["leads"] = [", ".join(self.leads.get(s, [])) for s in out.index]
        out["hours"] = out["pairs"] * PAIR / FS / 3600
        return out


def pairs_of(signal: np.ndarray, max_pairs: int | None = None) -> np.ndarray:
    """Cut ``(leads, samples)`` at 100 Hz into 10-s windows ``(n, leads, 1000)`` (non-overlapping;
    with ``max_pairs``, that many windows evenly spread over the recording)."""
    n = signal.shape[-1] // PAIR
    if n == 0:
        return np.zeros((0, signal.shape[0], PAIR), np.float32)
    starts = np.arange(n) * PAIR
    if max_pairs is not None and n > max_pairs:
        starts = np.linspace(0, signal.shape[-1] - PAIR, max_pairs).astype(int)
    return np.stack([signal[:, s:s + PAIR] for s in starts]).astype(np.float32)


def _ptbxl_part(max_records):
    from .data.ptbxl import PTBXL
    db = PTBXL(fs=FS, max_records=max_records)
    task = db.task("all")
    train = task.split("train")           # folds 1-8 only: 9 and 10 never enter pre-training
    return (np.asarray(task.X[train], np.float32), np.array([f"ptbxl:{i}" for i in task.ecg_id[train]]),
            np.array([f"ptbxl:{int(p)}" for p in task.patient_id[train]]), list(STANDARD_LEADS),
            task.manifest_hash)


def _cinc_part(max_records, max_pairs_per_record):
    from .data.cinc2017 import CinC2017
    from .signal import resample
    db = CinC2017()
    names = db.records[:max_records] if max_records else db.records
    X, rec = [], []
    for name in tqdm(names, desc="CinC 2017 pairs", disable=not config.progress_enabled()):
        sig = resample(db.read(name).signal, 300.0, FS)
        pairs = pairs_of(zero_fill(sig, ["I"]), max_pairs_per_record)
        X.append(pairs)
        rec += [f"cinc2017:{name}"] * len(pairs)
    rec = np.array(rec)
    # patient identities are not published: each recording is its own identity (stated on the page)
    return np.concatenate(X), rec, rec.copy(), ["I (handheld, lead-I-like)"], f"{len(names)} records"


def _mitdb_part(max_pairs_per_record):
    from .data.mitdb import DS1, MITBIH, record_to_patient
    from .signal import resample
    db = MITBIH()
    X, rec, pat, present = [], [], [], set()
    for name in DS1:                       # DS2 stays out of pre-training: it is evaluated on
        r = db.read(name)
        slots = {"MLII": "II"}
        keep = [i for i, l in enumerate(r.leads) if slots.get(l, l) in STANDARD_LEADS]
        leads = [slots.get(r.leads[i], r.leads[i]) for i in keep]
        present.update(r.leads[i] for i in keep)
        sig = resample(r.signal[keep], 360.0, FS)
        pairs = pairs_of(zero_fill(sig, leads), max_pairs_per_record)
        X.append(pairs)
        rec += [f"mitdb:{name}"] * len(pairs)
        pat += [f"mitdb:{record_to_patient(name)}"] * len(pairs)
    return np.concatenate(X), np.array(rec), np.array(pat), sorted(present) + ["(MLII placed as II)"], "DS1"


def build_corpus(sources=("ptbxl", "cinc2017", "mitdb"), *, ptbxl_records: int | None = None,
                 cinc_records: int | None = None, cinc_pairs_per_record: int | None = None,
                 mitdb_pairs_per_record: int | None = None, cache: bool = True) -> Corpus:
    """The mixed-lead pre-training corpus, cached in ``<data>/cache/lassl-corpus-<hash>/``.

    ``ptbxl``: folds 1-8 of the PTB-XL records present (12 leads, one pair per 10-s record);
    ``cinc2017``: PhysioNet/CinC Challenge 2017 (one handheld lead placed as lead I, 300 → 100 Hz,
    consecutive 10-s windows); ``mitdb``: MIT-BIH DS1 records only (two leads at their place,
    ``MLII`` as II, 360 → 100 Hz). The ``*_records`` / ``*_pairs_per_record`` caps make smaller
    corpora. Under DDP call it inside :func:`ecgbook.distributed.main_first`. The cache is written
    atomically (``.part`` files renamed). Raises ``ValueError`` for an unknown source.
    """
    unknown = set(sources) - {"ptbxl", "cinc2017", "mitdb"}
    if unknown:
        raise ValueError(f"unknown corpus source(s) {sorted(unknown)}")
    key = json.dumps([sorted(sources), ptbxl_records, cinc_records, cinc_pairs_per_record, mitdb_pairs_per_record, 1])
    folder = config.data_dir() / "cache" / f"lassl-corpus-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if cache and (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        X = np.load(folder / "X.npy", mmap_mode="r")
        return Corpus(X, np.array(meta["recording"]), np.array(meta["patient"]), np.array(meta["source"]), meta["leads"])
    parts, leads, provenance = [], {}, {}
    if "ptbxl" in sources:
        X, rec, pat, l, h = _ptbxl_part(ptbxl_records)
        parts.append((X, rec, pat, "PTB-XL")); leads["PTB-XL"] = l; provenance["PTB-XL"] = h
    if "cinc2017" in sources:
        X, rec, pat, l, h = _cinc_part(cinc_records, cinc_pairs_per_record)
        parts.append((X, rec, pat, "CinC 2017")); leads["CinC 2017"] = l; provenance["CinC 2017"] = h
    if "mitdb" in sources:
        X, rec, pat, l, h = _mitdb_part(mitdb_pairs_per_record)
        parts.append((X, rec, pat, "MIT-BIH DS1")); leads["MIT-BIH DS1"] = l; provenance["MIT-BIH DS1"] = h
    X = np.concatenate([p[0] for p in parts]).astype(np.float32)
    corpus = Corpus(X, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                    np.concatenate([[p[3]] * len(p[0]) for p in parts]), leads)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "X.npy.part"
        with open(tmp, "wb") as f:
            np.save(f, X)
        os.replace(tmp, folder / "X.npy")
        meta = {"recording": corpus.recording.tolist(), "patient": corpus.patient.tolist(),
                "source": corpus.source.tolist(), "leads": leads, "provenance": provenance}
        (folder / "meta.json.part").write_text(json.dumps(meta))
        os.replace(folder / "meta.json.part", folder / "meta.json")
    return corpus


# ----------------------------------------------------------------------------------------------
# Pre-training loop
# ----------------------------------------------------------------------------------------------
@dataclass
class PretrainConfig:
    """Settings of :func:`pretrain`.

    Official (``w2v_cmsc_rlm.yaml``): Adam (0.9, 0.98), eps 1e-6, weight decay 0.01, fixed lr 5e-5,
    batch 64 per GPU on 4 GPUs, ``update_freq 2``, 200 epochs. The short CPU runs use a larger lr
    with linear warm-up and cosine decay; ``anneal_to_end`` makes the Gumbel temperature reach its
    end value (0.5) at the last update instead of decaying by 0.999995 per update (which would
    barely move in a few thousand updates).
    """

    epochs: int = 200
    batch_size: int = 64          # pairs per step and process (2 segments each)
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.0           # share of the updates spent warming up
    schedule: str = "fixed"       # "fixed" or "cosine"
    grad_accum: int = 1
    grad_clip: float | None = None
    anneal_to_end: bool = False
    seed: int = 0
    max_steps: int | None = None


def _lr_factor(step: int, total: int, cfg: PretrainConfig) -> float:
    warm = int(cfg.warmup * total)
    if warm and step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def pretrain(model: Wav2Vec2Pretrainer, corpus: Corpus, obj: Objective, cfg: PretrainConfig, *,
             device: torch.device | None = None, checkpoint: str | Path | None = None) -> dict:
    """Pre-train ``model`` on ``corpus`` with objective ``obj``; returns ``{"history", "segments_per_s", ...}``.

    Works in one process and under ``torchrun`` (DDP over :func:`ecgbook.distributed.init`; each
    rank takes its share of every global batch through a ``DistributedSampler``; rank 0 logs and
    saves). ``history``: one row per epoch with every loss term, the codebook perplexities, the
    Gumbel temperature and the throughput. ``checkpoint``: where rank 0 writes the final weights
    (:func:`ecgbook.models.wav2vec2.save_pretrained`). Raises ``FloatingPointError`` on a
    non-finite loss.
    """
    from torch.utils.data import DataLoader, TensorDataset
    from .models.wav2vec2 import save_pretrained
    device = pick_device(device)
    torch.manual_seed(cfg.seed)
    net = dist.wrap(model, device, find_unused_parameters=not obj.w2v)
    ids = torch.as_tensor(corpus.ids(obj.cmsc_ids))
    dataset = TensorDataset(torch.arange(len(corpus)))
    sampler = dist.sampler(dataset, shuffle=True, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(corpus) >= cfg.batch_size * dist.world_size(), generator=gen)
    steps_per_epoch = max(1, len(loader) // cfg.grad_accum)
    total = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    if cfg.anneal_to_end and obj.w2v:
        q = model.quantizer
        q.temp_decay = (q.min_temp / q.max_temp) ** (1.0 / max(1, total))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.98),
                            eps=1e-6, weight_decay=cfg.weight_decay)
    history, update, seen, train_time = [], 0, 0, 0.0
    X = corpus.X
    bar = tqdm(range(cfg.epochs), desc=f"pretrain {obj.name}", disable=not (config.progress_enabled() and dist.is_main()))
    for epoch in bar:
        if sampler is not None:
            sampler.set_epoch(epoch)
        gen.manual_seed(cfg.seed + epoch)
        net.train()
        sums, count, t0 = {}, 0, time.perf_counter()
        for i, (index,) in enumerate(loader):
            pairs = torch.as_tensor(np.asarray(X[index.numpy()]), device=device)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(update, total, cfg)
            if obj.w2v:
                model.set_num_updates(update)
            loss, parts = pretrain_loss(net, pairs, index, ids[index], obj, seed=cfg.seed, epoch=epoch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pre-training loss is {float(loss)} at epoch {epoch}, batch {i}")
            (loss / cfg.grad_accum).backward()
            if (i + 1) % cfg.grad_accum == 0:
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                update += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            seen += 2 * len(index) * dist.world_size()
            if update >= total:
                break
        elapsed = time.perf_counter() - t0
        train_time += elapsed
        row = {"epoch": epoch, **{k: v / max(count, 1) for k, v in sums.items()}, "updates": update,
               "lr": opt.param_groups[0]["lr"], "epoch_time_s": elapsed,
               "segments_per_s": 2 * count * cfg.batch_size * dist.world_size() / max(elapsed, 1e-9)}
        history.append(row)
        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.3f}")
        if update >= total:
            break
    if checkpoint and dist.is_main():
        save_pretrained(model, checkpoint, {"objective": asdict(obj), "history": history})
    dist.barrier()
    return {"history": history, "segments_per_s": seen / max(train_time, 1e-9), "updates": update,
            "wall_time_s": train_time}


def pretraining_throughput(size: str = "tutorial", batch_size: int = 16, steps: int = 3, method: str = "W2V+CMSC+RLM",
                           device: str | None = None) -> float:
    """Segments per second of pre-training steps on random data (for ``benchmarks/run.py``).

    Builds a model of ``size``, runs one warm-up step and ``steps`` timed steps of ``method`` on
    ``batch_size`` random 10-s pairs, and returns segments (5 s) per second.
    """
    from .models.wav2vec2 import wav2vec2_config
    dev = pick_device(device)
    torch.manual_seed(0)
    model = Wav2Vec2Pretrainer(wav2vec2_config(size)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pairs = torch.randn(batch_size, 12, PAIR, device=dev) * 0.3
    index, ids = torch.arange(batch_size), torch.arange(batch_size)
    obj = objective(method)
    t0 = 0.0
    for s in range(steps + 1):
        if s == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss, _ = pretrain_loss(model, pairs, index, ids, obj, seed=0, epoch=s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * batch_size * steps / (time.perf_counter() - t0)


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
    import copy
    from . import protocol

    def build():
        enc = copy.deepcopy(encoder) if encoder is not None else Wav2Vec2Encoder(cfg)
        return W2VClassifier(enc, len(data.classes), freeze=freeze)

    return protocol.train_and_test(build, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                   window_s=SEGMENT / FS, patience=None)


def prepared_subset(task, subset, splits: dict | None = None):
    """A :class:`ecgbook.protocol.Prepared` of a PTB-XL task with only ``subset`` leads (others zero),
    in mV without standardisation; splits are ``strat_fold`` 1-8 / 9 / 10 unless given."""
    from .protocol import Prepared
    splits = splits or {name: task.split(name) for name in ("train", "val", "test")}
    X = {k: keep_leads(np.asarray(task.X[v], np.float32), subset) for k, v in splits.items()}
    Y = {k: task.Y[v] for k, v in splits.items()}
    return Prepared(X["train"], Y["train"], X["val"], Y["val"], X["test"], Y["test"], list(task.classes), None, task.fs)


# ----------------------------------------------------------------------------------------------
# Patient identification
# ----------------------------------------------------------------------------------------------
def gallery_probe_split(patient, order, max_probes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gallery = each patient's first record by ``order`` (e.g. recording date); probes = the later ones.

    Only patients with at least two records take part; ties in ``order`` keep the input order.
    ``max_probes``: keep only each patient's next ``max_probes`` records as probes (``1``: the
    official protocol's gallery/probe pair; ``None``: every later record). Returns sorted index
    arrays ``(gallery, probes)`` into the inputs. (The official ``manifest_identification.py``
    takes the first two files in file-system order, lines 61-84; we use the recording date.)
    Raises ``ValueError`` for ``max_probes < 1``, and when no patient has two or more records
    (e.g. one recording per patient: there is nothing to identify), naming the counts.
    """
    if max_probes is not None and max_probes < 1:
        raise ValueError(f"gallery_probe_split: max_probes must be >= 1 or None, got {max_probes}")
    df = pd.DataFrame({"patient": np.asarray(patient), "order": np.asarray(order)})
    df["i"] = np.arange(len(df))
    df = df.sort_values(["patient", "order", "i"], kind="stable")
    rank = df.groupby("patient").cumcount().to_numpy()
    size = df.groupby("patient")["i"].transform("size").to_numpy()
    keep = size >= 2
    if not keep.any():
        raise ValueError(f"gallery_probe_split: 0 of {df['patient'].nunique()} patients have 2 or more recordings "
                         f"({len(df)} recordings); identification needs a gallery and a later probe recording "
                         "of the same patient")
    gallery = df["i"].to_numpy()[keep & (rank == 0)]
    later = rank > 0 if max_probes is None else (rank > 0) & (rank <= max_probes)
    probes = df["i"].to_numpy()[keep & later]
    return np.sort(gallery), np.sort(probes)


def identify(gallery_z, gallery_id, probe_z, probe_id, ks=(1, 5)) -> dict:
    """Top-k identification accuracy by cosine similarity of embeddings.

    ``gallery_z`` ``(G, D)`` with identities ``gallery_id`` ``(G,)`` (distinct), ``probe_z``
    ``(P, D)`` with ``probe_id``. A probe counts as found at ``k`` when its identity's gallery entry
    is among the ``k`` most similar. Returns ``{"top1": ..., "top5": ..., "chance_top1": 1/G, ...,
    "gallery": G, "probes": P}``. Raises ``ValueError`` when a probe's identity is not in the gallery,
    the gallery repeats an identity, or the gallery or the probes are empty (no accuracy to report).
    """
    gallery_id, probe_id = np.asarray(gallery_id), np.asarray(probe_id)
    if not len(gallery_id) or not len(probe_id):
        raise ValueError(f"identify: {len(gallery_id)} gallery and {len(probe_id)} probe recordings; identification "
                         "needs at least one of each (patients with 2 or more recordings)")
    if len(set(gallery_id.tolist())) != len(gallery_id):
        raise ValueError("identify: the gallery repeats an identity")
    pos = {g: i for i, g in enumerate(gallery_id.tolist())}
    missing = [p for p in probe_id.tolist() if p not in pos]
    if missing:
        raise ValueError(f"identify: probe identities {missing[:5]} are not in the gallery")
    g = np.asarray(gallery_z, np.float64)
    p = np.asarray(probe_z, np.float64)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    sim = p @ g.T
    true = np.array([pos[i] for i in probe_id.tolist()])
    true_sim = sim[np.arange(len(p)), true]
    rank = (sim > true_sim[:, None]).sum(1)          # 0 = best; ties count in the probe's favour
    out = {"gallery": len(g), "probes": len(p)}
    for k in ks:
        out[f"top{k}"] = float(np.mean(rank < k))
        out[f"chance_top{k}"] = min(1.0, k / len(g))
    return out


def mitdb_halves(names, *, crops: int = 5, leads_slot: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Within-recording identification data from MIT-BIH records: ``crops`` 5-s crops evenly spread
    over each half of each record, 100 Hz, 12-lead layout. Returns ``(X (records, 2, crops, 12, 500),
    names)``: ``X[:, 0]`` first half, ``X[:, 1]`` second half."""
    from .data.mitdb import MITBIH
    from .signal import resample
    db = MITBIH()
    slots = leads_slot or {"MLII": "II"}
    out = []
    for name in names:
        r = db.read(name)
        keep = [i for i, l in enumerate(r.leads) if slots.get(l, l) in STANDARD_LEADS]
        sig = zero_fill(resample(r.signal[keep], 360.0, FS), [slots.get(r.leads[i], r.leads[i]) for i in keep])
        half = sig.shape[-1] // 2
        rec = []
        for h in range(2):
            starts = np.linspace(h * half, (h + 1) * half - SEGMENT, crops).astype(int)
            rec.append(np.stack([sig[:, s:s + SEGMENT] for s in starts]))
        out.append(np.stack(rec))
    return np.stack(out).astype(np.float32), np.array(list(names))


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
def _auroc_row(y, scores, classes, *, n_boot: int, boot_seed: int, **fields) -> dict:
    from .metrics import bootstrap_ci, macro_auroc
    auc = macro_auroc(y, scores, classes)
    ci = bootstrap_ci(macro_auroc, y, scores, n_boot=n_boot, seed=boot_seed)
    return {"metric": "macro_auroc", "value": auc.value, "ci_low": ci.low, "ci_high": ci.high, "split": "test",
            "n": int(len(y)), "excluded_classes": list(auc.excluded), **fields}


def probe_subsets(encoders: dict, task, subsets, *, n_boot: int, seed: int = 0, label_fractions=(1.0,),
                  device=None) -> tuple[list[dict], dict]:
    """Linear probe (:func:`ecgbook.ssl.linear_probe`) of every encoder on every lead subset of a
    PTB-XL ``task`` (folds 1-8 / 9 / 10), at the shared patient-disjoint nested label fractions
    (:func:`ecgbook.ssl.label_fraction_subsets` of the training folds, same ``seed`` for every method).

    ``encoders``: name -> :class:`Wav2Vec2Encoder` (frozen). Returns ``(rows, scores)`` with
    ``scores[(name, leads)]`` = test scores at 100 % of the labels (or the largest fraction), for
    paired comparisons.
    """
    from .ssl import label_fraction_subsets, linear_probe
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
                rows.append(_auroc_row(task.Y[splits["test"]], res.test_scores, task.classes, n_boot=n_boot,
                                       boot_seed=seed, model=name, task=task.task, leads=n_leads,
                                       evaluation="linear_probe", label_fraction=float(fraction), seed=seed,
                                       train_records=int(len(subset)), C=res.C, val_auroc=res.val_auroc))
    return rows, scores


def paired_rows(scores: dict, y_test, pairs, *, n_boot: int, seed: int = 0, task: str = "", evaluation: str = "") -> list[dict]:
    """Paired bootstrap ``Δ macro AUROC = A - B`` on the same test records for each ``(key_a, key_b)``.

    Keys are ``(model, leads)`` (or ``(model, leads, seed)``; then the scores are first averaged over
    the seeds present for that ``(model, leads)``, as the seeds helper pools them).
    """
    from .metrics import macro_auroc, paired_bootstrap

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
                rows.append(_auroc_row(data.Y_test, run.test_scores, data.classes, n_boot=n_boot, boot_seed=seed, model=name,
                                       task=task.task, leads=n_leads, evaluation="fine_tune", label_fraction=1.0,
                                       seed=seed, best_epoch=run.fit.best_epoch, val_auroc=run.fit.best_score,
                                       samples_per_s=run.fit.samples_per_s))
    return rows, scores, histories


def baseline_subsets(task, subsets, seeds, *, epochs: int, batch_size: int, lr: float, n_boot: int) -> tuple[list[dict], dict]:
    """``resnet1d_wang`` trained from scratch on each lead subset (benchmark protocol: 2.5-s crops,
    max over windows; mV input, absent leads zero, as every model of this chapter)."""
    from . import protocol
    from .models.resnet1d import ResNet1dWang
    rows, scores = [], {}
    for n_leads in subsets:
        data = prepared_subset(task, LEAD_SUBSETS[n_leads])
        for seed in seeds:
            run = protocol.train_and_test(lambda: ResNet1dWang(n_classes=len(data.classes)), data, epochs=epochs,
                                          batch_size=batch_size, lr=lr, seed=seed, patience=None)
            scores[("resnet1d_wang", n_leads, seed)] = run.test_scores
            rows.append(_auroc_row(data.Y_test, run.test_scores, data.classes, n_boot=n_boot, boot_seed=seed,
                                   model="resnet1d_wang", task=task.task, leads=n_leads, evaluation="supervised",
                                   label_fraction=1.0, seed=seed, best_epoch=run.fit.best_epoch))
    return rows, scores


def identification_ptbxl(encoders: dict, X, patient, dates, strat_fold, subsets, *, folds=(9, 10), device=None):
    """Zero-shot patient identification on PTB-XL records of ``folds`` (never seen in pre-training).

    Gallery: each patient's first ECG by recording date; probes: the later ones; cosine similarity
    of pooled embeddings (:func:`identify`). Returns ``(rows, example)`` where ``example`` holds one
    probe's ranked gallery for the page.
    """
    keep = np.flatnonzero(np.isin(strat_fold, folds))
    g, p = gallery_probe_split(np.asarray(patient)[keep], np.asarray(dates)[keep])
    g, p = keep[g], keep[p]
    rows, example = [], None
    for name, enc in encoders.items():
        for n_leads in subsets:
            Z = embed(enc, keep_leads(np.asarray(X[np.concatenate([g, p])], np.float32), LEAD_SUBSETS[n_leads]),
                      device=device)
            res = identify(Z[:len(g)], np.asarray(patient)[g], Z[len(g):], np.asarray(patient)[p])
            for k in (1, 5):
                rows.append({"metric": f"top{k}_accuracy", "value": res[f"top{k}"], "chance": res[f"chance_top{k}"],
                             "model": name, "task": "patient_identification_ptbxl", "leads": n_leads,
                             "evaluation": "identification", "gallery": res["gallery"], "probes": res["probes"],
                             "split": f"folds {','.join(map(str, folds))}"})
            if example is None and len(p):
                gz = Z[:len(g)] / np.linalg.norm(Z[:len(g)], axis=1, keepdims=True)
                pz = Z[len(g)] / np.linalg.norm(Z[len(g)])
                order = np.argsort(-(gz @ pz))[:5]
                example = {"model": name, "leads": n_leads, "probe_patient": int(np.asarray(patient)[p[0]]),
                           "ranked_gallery_patients": [int(np.asarray(patient)[g][i]) for i in order],
                           "similarities": [float((gz @ pz)[i]) for i in order]}
    return rows, example


def identification_mitdb(encoders: dict, names, *, crops: int = 5, device=None) -> list[dict]:
    """Within-recording identification across the halves of MIT-BIH records (DS2: never pre-trained on,
    except that record 202's patient gave DS1's record 201 to the corpus: ``mitdb.same_patient_pairs``).

    Gallery: the mean embedding of ``crops`` 5-s crops of each record's first half; probes: each
    crop of its second half. An easier task than patient identification (same session).
    """
    X, rec = mitdb_halves(names, crops=crops)
    rows = []
    for name, enc in encoders.items():
        Z = embed(enc, X.reshape(-1, 12, SEGMENT), device=device).reshape(len(rec), 2, crops, -1)
        res = identify(Z[:, 0].mean(1), rec, Z[:, 1].reshape(-1, Z.shape[-1]), np.repeat(rec, crops))
        for k in (1, 5):
            rows.append({"metric": f"top{k}_accuracy", "value": res[f"top{k}"], "chance": res[f"chance_top{k}"],
                         "model": name, "task": "recording_identification_mitdb_ds2", "leads": 2,
                         "evaluation": "identification", "gallery": res["gallery"], "probes": res["probes"]})
    return rows


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
    from .data.challenge import list_records, read_challenge_record
    from .data.records import RecordError
    from .signal import resample
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
    import copy
    from .models.wav2vec2 import W2VArcFace
    from .train import ArrayDataset, TrainConfig, fit
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


def leak_rows(encoder, cfg: Wav2Vec2Config, task, *, name: str, n_boot: int, seed: int = 0, fine_tune_epochs: int = 0,
              batch_size: int = 64, lr: float = 1e-3) -> list[dict]:
    """The same model evaluated on a crop-level split (official manifests) and a patient-level split.

    Every PTB-XL record of ``task`` gives two 5-s crops (with its labels); :func:`crop_splits` cuts
    them 80/10/10 at crop level or patient level. A linear probe (and, with ``fine_tune_epochs``, the
    official fine-tuning) is trained and tested on each; the rows say how many test crops have a
    sibling crop of their recording in training.
    """
    from .protocol import Prepared
    from .ssl import linear_probe
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
        rows.append(_auroc_row(Y[s["test"]], res["test_scores"], task.classes, n_boot=n_boot, boot_seed=seed,
                               evaluation="linear_probe", **common))
        if fine_tune_epochs:
            data = Prepared(crops[s["train"]], Y[s["train"]], crops[s["val"]], Y[s["val"]], crops[s["test"]],
                            Y[s["test"]], list(task.classes), None, FS)
            run = fine_tune(encoder, cfg, data, epochs=fine_tune_epochs, batch_size=batch_size, lr=lr, seed=seed)
            rows.append(_auroc_row(Y[s["test"]], run.test_scores, task.classes, n_boot=n_boot, boot_seed=seed,
                                   evaluation="fine_tune", **common))
    return rows


# ----------------------------------------------------------------------------------------------
# Command line (single process or torchrun)
# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    """``python -m ecgbook.lead_agnostic_ssl pretrain --profile P --method M --out ckpt.pt``.

    Under ``torchrun --nproc_per_node N`` every process joins the group; rank 0 builds the corpus
    cache while the others wait, each rank trains on its share of every global batch
    (``--batch-size`` pairs per process; ``--grad-accum`` steps per update), and rank 0 prints the
    history and writes the checkpoint.
    """
    import argparse
    from . import profiles
    from .models.wav2vec2 import wav2vec2_config

    def positive(kind):
        def parse(text):
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or value <= 0:
                raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a finite number'}"
                                                 f" > 0, got {text!r}")
            return value
        return parse

    parser = argparse.ArgumentParser(prog="python -m ecgbook.lead_agnostic_ssl")
    parser.add_argument("command", choices=["pretrain"])
    parser.add_argument("--profile", default="tutorial", choices=profiles.PROFILE_NAMES)
    parser.add_argument("--method", default="W2V+CMSC+RLM", choices=list(METHODS))
    parser.add_argument("--out", required=True, help="checkpoint path (written by rank 0)")
    parser.add_argument("--epochs", type=positive(int), help="default: the profile's pretrain_epochs")
    parser.add_argument("--batch-size", type=positive(int), help="default: the profile's pretrain_batch_size")
    parser.add_argument("--grad-accum", type=positive(int), default=1)
    parser.add_argument("--lr", type=positive(float), help="default: the profile's pretrain_lr")
    args = parser.parse_args(argv)
    out = Path(args.out).absolute()
    folder = next(p for p in out.parents if p.exists())  # missing folders are created on writing
    if out.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"argument --out: {args.out!r} is a folder or cannot be written ({folder} "
                     f"{'is not a writable folder' if not out.is_dir() else 'exists'}); give a checkpoint file path")
    try:
        dist.environment()
        P = profiles.resolve("lead_agnostic_ssl", args.profile, pretrain_epochs=args.epochs,
                             pretrain_batch_size=args.batch_size, pretrain_lr=args.lr)
    except ValueError as e:
        parser.error(str(e))
    device = dist.init()
    try:
        with dist.main_first():
            corpus = build_corpus(ptbxl_records=P["ptbxl_records"], cinc_records=P["cinc_records"],
                                  cinc_pairs_per_record=P["cinc_pairs_per_record"],
                                  mitdb_pairs_per_record=P["mitdb_pairs_per_record"])
        torch.manual_seed(P["seed"])
        model = Wav2Vec2Pretrainer(wav2vec2_config(P["size"]))
        cfg = PretrainConfig(epochs=P["pretrain_epochs"], batch_size=P["pretrain_batch_size"],
                             lr=P["pretrain_lr"], grad_accum=args.grad_accum, seed=P["seed"],
                             warmup=P["pretrain_warmup"], schedule=P["pretrain_schedule"],
                             anneal_to_end=P["anneal_to_end"])
        res = pretrain(model, corpus, objective(args.method), cfg, device=device, checkpoint=args.out)
        if dist.is_main():
            print(pd.DataFrame(res["history"]).round(4).to_string(index=False))
            print(f"{res['segments_per_s']:.1f} segments/s over {dist.world_size()} process(es); checkpoint {args.out}")
    finally:
        dist.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
