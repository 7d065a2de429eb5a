"""The objectives of Oh et al. (CHIL 2022): lead layout (:data:`LEAD_SUBSETS`, zero-filled absent leads),
per-sample randomness (span masks, random lead masking), the wav2vec 2.0 loss, CMSC and their sum.

Sources (Jwoo5/fairseq-signals at commit 6b9e137): see :mod:`ecgbook.lead_agnostic_ssl`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from .. import distributed as dist
from ..data.records import LEAD_SUBSETS, STANDARD_LEADS, keep_leads, zero_fill  # noqa: F401 (re-exported)
from ..models.wav2vec2 import Wav2Vec2Config, perplexity

FS = 100
SEGMENT = 5 * FS
PAIR = 2 * SEGMENT
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
