"""Self-supervised learning shared by the self-supervised chapters.

Objectives
    :class:`DINOHead`, :class:`DINOLoss`, :class:`DINOModel` (student, EMA teacher, centring),
    :class:`DINOTask` (runs through :func:`ecgbook.train.fit`), the schedules
    (:func:`cosine_schedule`, :func:`teacher_temperature_schedule`), :func:`ema_update`, the
    collapse diagnostics (:func:`collapse_warnings`); SimCLR's :func:`nt_xent` and
    :class:`SimCLRTask`. Sources: Caron et al., "Emerging properties in self-supervised vision
    transformers" (ICCV 2021) and its ``main_dino.py``; Chen et al., "A simple framework for
    contrastive learning of visual representations" (ICML 2020).

Downstream evaluation, identical for every method
    :func:`label_fraction_subsets` (patient-disjoint, nested 1 % ⊂ 10 % ⊂ 100 %),
    :func:`pooled_features`, :func:`linear_probe` (frozen encoder, logistic regression, C chosen on
    validation) and :func:`fine_tune` (all weights, the PTB-XL protocol of :mod:`ecgbook.protocol`).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .metrics import macro_auroc
from .train import Task, pick_device, to_float32, window_starts

# ============================================================================ schedules


def cosine_schedule(base: float, final: float, total_steps: int, warmup_steps: int = 0,
                    start_warmup: float = 0.0) -> np.ndarray:
    """``(total_steps,)`` values: linear warm-up from ``start_warmup`` to ``base`` over
    ``warmup_steps``, then a half cosine from ``base`` to ``final`` (DINO ``utils.cosine_scheduler``).

    Raises ``ValueError`` when ``warmup_steps`` exceeds ``total_steps``.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"cosine_schedule: warmup_steps={warmup_steps} must be in 0..total_steps={total_steps}")
    warm = np.linspace(start_warmup, base, warmup_steps) if warmup_steps else np.array([])
    n = total_steps - warmup_steps
    steps = np.arange(n)
    rest = final + 0.5 * (base - final) * (1 + np.cos(np.pi * steps / max(n, 1)))
    return np.concatenate([warm, rest])


def teacher_temperature_schedule(warmup_temp: float, temp: float, warmup_epochs: int, epochs: int) -> np.ndarray:
    """``(epochs,)`` teacher temperatures: linear from ``warmup_temp`` to ``temp`` over
    ``warmup_epochs``, then ``temp`` (DINO ``DINOLoss.teacher_temp_schedule``)."""
    warmup_epochs = min(int(warmup_epochs), int(epochs))
    return np.concatenate([np.linspace(warmup_temp, temp, warmup_epochs), np.full(epochs - warmup_epochs, temp)])


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``θ_t ← m θ_t + (1 − m) θ_s`` for every parameter (buffers are left alone, as
    DINO).

    Raises ``ValueError`` when the two modules' parameters differ in number or shape.
    """
    pt, ps = list(teacher.parameters()), list(student.parameters())
    if len(pt) != len(ps):
        raise ValueError(
            f"ema_update: teacher has {len(pt)} parameters, student {len(ps)}"
        )
    for t, s in zip(pt, ps):
        if t.shape != s.shape:
            raise ValueError(
                f"ema_update: shape mismatch {tuple(t.shape)} vs {tuple(s.shape)}"
            )
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)


# ============================================================================ DINO


class DINOHead(nn.Module):
    """Projection head: MLP ``in → hidden → hidden → bottleneck`` (GELU), L2 normalisation, then a
    weight-normalised linear layer to ``out_dim`` prototypes without bias (DINO
    ``vision_transformer.DINOHead``; official ECG code ``DINO_signal.py:111-145`` with hidden 512,
    bottleneck 128, ``out_dim`` 65,536).

    With ``norm_last_layer`` the prototypes' norms are fixed at 1 (``weight_g`` frozen).
    ``(batch, in_dim)`` → ``(batch, out_dim)`` float logits (before temperature).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 512, bottleneck_dim: int = 128,
                 nlayers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
        for _ in range(max(nlayers, 2) - 2):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        v = torch.empty(out_dim, bottleneck_dim)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))  # nn.Linear's default, as DINO's last layer
        self.last_v = nn.Parameter(v)
        self.last_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1, p=2)
        w = self.last_g * F.normalize(self.last_v, dim=1)
        return F.linear(z, w)


class DINOLoss(nn.Module):
    """DINO's cross-entropy between the centred, sharpened teacher and the student, over
    every pair of different views, averaged over the pairs (``main_dino.py``
    ``DINOLoss``):

    .. math:: \\mathcal L = \\frac{1}{|P|}\\sum_{(g, v) \\in P} \\frac1B\\sum_b
              -\\sum_k \\operatorname{softmax}\\big((t_{g,b} - c)/\\tau_t\\big)_k
              \\log\\operatorname{softmax}(s_{v,b}/\\tau_s)_k,

    ``P`` = pairs of a global view ``g`` (teacher) and any view ``v ≠ g`` (student). The
    centre is ``c ← m c + (1 − m) mean_b t_b`` over the teacher outputs of the batch
    (divided once by the batch size; the official ECG code divides twice,
    ``DINO_signal.py:197-198``).

    Parameters: ``out_dim`` K, ``n_global`` (2), ``student_temp`` (0.1),
    ``center_momentum`` (0.9), ``centering`` (False only to demonstrate collapse)."""

    def __init__(
        self,
        out_dim: int,
        n_global: int = 2,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        centering: bool = True,
    ):
        super().__init__()
        self.n_global, self.student_temp, self.center_momentum = (
            n_global,
            student_temp,
            center_momentum,
        )
        self.centering = centering
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self,
        student_out: torch.Tensor,
        teacher_out: torch.Tensor,
        teacher_temp: float,
        update_center: bool = True,
    ) -> tuple[torch.Tensor, dict]:
        """``student_out`` ``(n_views × B, K)``, ``teacher_out`` ``(n_global × B, K)``,
        views stacked in order (the first ``n_global`` student views are the global
        views the teacher saw).

        Returns ``(loss, diagnostics)``: the float32 loss and detached scalars
        ``teacher_entropy`` (mean entropy of the teacher's distributions, nats),
        ``teacher_mean_entropy`` (entropy of their batch mean) and ``kl`` (mean
        KL(teacher ‖ student) over the pairs). Updates the centre when ``update_center``
        (training)."""
        student_out, teacher_out = student_out.float(), teacher_out.float().detach()
        n_views = student_out.shape[0] // (teacher_out.shape[0] // self.n_global)
        s_logp = F.log_softmax(student_out / self.student_temp, dim=-1).chunk(n_views)
        centred = teacher_out - self.center if self.centering else teacher_out
        q_all = F.softmax(centred / teacher_temp, dim=-1)
        q = q_all.chunk(self.n_global)
        total, pairs = student_out.new_zeros(()), 0
        for iq, qi in enumerate(q):
            for v, lp in enumerate(s_logp):
                if v == iq:
                    continue
                total = total + torch.sum(-qi * lp, dim=-1).mean()
                pairs += 1
        loss = total / pairs
        with torch.no_grad():
            ent = -(q_all * torch.log(q_all.clamp_min(1e-12))).sum(-1).mean()
            mean_q = q_all.mean(0)
            mean_ent = -(mean_q * torch.log(mean_q.clamp_min(1e-12))).sum()
            diag = {
                "teacher_entropy": ent,
                "teacher_mean_entropy": mean_ent,
                "kl": loss.detach() - ent,
            }
        if update_center and self.centering:
            self.update_center(teacher_out)
        return loss, diag

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """``c ← m c + (1 − m) · mean over the batch of the teacher outputs``."""
        batch_center = teacher_out.float().mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(
            batch_center, alpha=1 - self.center_momentum
        )


class MultiCrop(nn.Module):
    """Encoder + head applied to a list of views; views of equal shape share one forward pass
    (DINO ``utils.MultiCropWrapper``). ``forward(views) -> (sum of batch sizes, K)`` in view order."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        feats, i = [], 0
        while i < len(views):
            j = i
            while j < len(views) and views[j].shape == views[i].shape:
                j += 1
            feats.append(self.encoder(torch.cat(list(views[i:j]))))
            i = j
        return self.head(torch.cat(feats))


class DINOModel(nn.Module):
    """Student and teacher (same architecture; the teacher starts as a copy and never receives
    gradients) plus the loss with its centre, in one module so that the kept checkpoint holds all.

    ``encoder`` must expose ``out_features``. ``teacher.encoder`` is the representation used downstream.
    """

    def __init__(self, encoder: nn.Module, out_dim: int = 65536, hidden_dim: int = 512, bottleneck_dim: int = 128,
                 student_temp: float = 0.1, center_momentum: float = 0.9, centering: bool = True):
        super().__init__()
        self.student = MultiCrop(encoder, DINOHead(encoder.out_features, out_dim, hidden_dim, bottleneck_dim))
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.loss = DINOLoss(out_dim, 2, student_temp, center_momentum, centering)


@dataclass
class DINOConfig:
    """DINO settings (defaults: DINO's ``main_dino.py`` and the official ECG code).

    ``momentum``: base EMA momentum, cosine-increased to ``momentum_end`` (DINO: 0.996 → 1; the
    official ECG code keeps 0.996 fixed, ``DINO_signal.py:304, 340``). Teacher temperature: linear
    from ``warmup_teacher_temp`` to ``teacher_temp`` over ``warmup_teacher_temp_epochs`` (DINO's
    defaults 0.04 → 0.04, i.e. none; its README suggests 0.04 → 0.07 over 30 epochs).
    Weight decay cosine from ``weight_decay`` to ``weight_decay_end`` on weights (not biases/norms).
    ``freeze_last_layer`` epochs with the prototypes frozen.
    """

    out_dim: int = 65536
    hidden_dim: int = 512
    bottleneck_dim: int = 128
    n_local: int = 8
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    center_momentum: float = 0.9
    centering: bool = True
    momentum: float = 0.996
    momentum_end: float = 1.0
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    freeze_last_layer: int = 1


def _decay_groups(module: nn.Module) -> list[dict]:
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad and not name.endswith("last_v"):
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or name.endswith("last_g") else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class DINOTask(Task):
    """DINO pretraining as a :class:`ecgbook.train.Task` for :func:`ecgbook.train.fit`.

    Parameters
    ----------
    make_views:
        ``make_views(x, n_local, generator) -> (global_views, local_views)``: lists of tensors on
        ``x``'s device from a batch ``x`` of windows; the teacher sees the global views only.
    epochs:
        The run's epochs (teacher temperature schedule).
    cfg:
        :class:`DINOConfig`.
    val_X:
        Validation windows ``(records, leads, samples)`` for the self-supervised validation loss
        (fixed views, seed 0, centre not updated). Only for monitoring unless no ``probe``.
    probe:
        ``probe(teacher_encoder, device) -> float`` (higher is better, e.g. a linear probe's
        validation macro AUROC): the criterion ``val_probe`` selecting the kept epoch.
    seed:
        Seed of the views (per step: ``(seed, step)``, so a resumed run draws the same views).
    """

    labels = {"val_dino_loss": "DINO loss on validation windows (fixed views; monitoring)",
              "val_probe": "linear-probe macro AUROC on the validation fold (selection)",
              "train_teacher_entropy": "mean entropy of the teacher distribution (nats)",
              "train_teacher_mean_entropy": "entropy of the batch-mean teacher distribution (nats)",
              "train_kl": "mean KL(teacher || student) over view pairs (nats)"}

    def __init__(self, make_views: Callable, epochs: int, cfg: DINOConfig | None = None, val_X: np.ndarray | None = None,
                 probe: Callable | None = None, seed: int = 0, val_batch: int = 256):
        self.make_views, self.epochs, self.cfg = make_views, int(epochs), cfg or DINOConfig()
        self.val_X, self.probe, self.seed, self.val_batch = val_X, probe, int(seed), val_batch
        self.criterion, self.mode = ("val_probe", "max") if probe is not None else ("val_dino_loss", "min")
        self.temps = teacher_temperature_schedule(self.cfg.warmup_teacher_temp, self.cfg.teacher_temp,
                                                  self.cfg.warmup_teacher_temp_epochs, self.epochs)
        self.epoch, self.step = 0, 0

    def param_groups(self, model: DINOModel):
        return _decay_groups(model.student)

    def setup(self, model, optimizer, *, steps_per_epoch, total_steps, device):
        self.optimizer = optimizer
        self.momentum = cosine_schedule(self.cfg.momentum, self.cfg.momentum_end, total_steps)
        self.wd = cosine_schedule(self.cfg.weight_decay, self.cfg.weight_decay_end, total_steps)
        self.optimizer.param_groups[0]["weight_decay"] = float(self.wd[min(self.step, total_steps - 1)])

    def on_epoch_start(self, model: DINOModel, epoch: int) -> None:
        self.epoch = epoch
        model.student.head.last_v.requires_grad_(epoch >= self.cfg.freeze_last_layer)

    def _views(self, x: torch.Tensor, seed) -> tuple[list, list]:
        g = torch.Generator().manual_seed(int(seed))
        return self.make_views(x, self.cfg.n_local, g)

    def loss(self, model: DINOModel, batch):
        x = batch if isinstance(batch, torch.Tensor) else batch[0]
        global_views, local_views = self._views(x, self.seed * 1_000_003 + self.step)
        s = to_float32(model.student(global_views + local_views))
        with torch.no_grad():
            t = to_float32(model.teacher(global_views))
        with torch.autocast(x.device.type, enabled=False):
            loss, diag = model.loss(s, t, float(self.temps[min(self.epoch, len(self.temps) - 1)]))
        return loss, diag

    def on_step(self, model: DINOModel, step: int) -> None:
        self.step = step + 1
        ema_update(model.teacher, model.student, float(self.momentum[min(step, len(self.momentum) - 1)]))
        self.optimizer.param_groups[0]["weight_decay"] = float(self.wd[min(self.step, len(self.wd) - 1)])

    @torch.no_grad()
    def validate(self, model: DINOModel, device) -> dict:
        out = {}
        if self.val_X is not None:
            total, n = 0.0, 0
            for i, lo in enumerate(range(0, len(self.val_X), self.val_batch)):
                x = torch.as_tensor(np.asarray(self.val_X[lo:lo + self.val_batch], dtype=np.float32), device=device)
                gv, lv = self._views(x, 7919 + i)
                loss, _ = model.loss(to_float32(model.student(gv + lv)), to_float32(model.teacher(gv)),
                                     float(self.temps[min(self.epoch, len(self.temps) - 1)]), update_center=False)
                total, n = total + float(loss) * len(x), n + len(x)
            out["val_dino_loss"] = total / max(n, 1)
        if self.probe is not None:
            out["val_probe"] = float(self.probe(model.teacher.encoder, device))
        if self.criterion not in out:
            raise ValueError("DINOTask: give val_X or probe to validate")
        return out

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state.get("step", 0))


def collapse_warnings(history: Sequence[dict], out_dim: int, *, name: str = "", uniform_frac: float = 0.9,
                      dominant_frac: float = 0.1, kl_min: float = 1e-3) -> list[str]:
    """Warnings when the last epoch of a DINO run shows a collapse (Caron et al. 2021, Sec. 5.3):

    - uniform: the teacher's mean entropy exceeds ``uniform_frac · log K`` (sharpening too weak,
      e.g. a teacher temperature far too high);
    - one prototype: the entropy of the batch-mean teacher distribution is below
      ``dominant_frac · log K`` (every window to the same prototype, e.g. no centring);
    - the student–teacher KL is below ``kl_min`` nats (nothing left to learn: both collapse modes).

    ``history`` rows need ``train_teacher_entropy``, ``train_teacher_mean_entropy``, ``train_kl``.
    Returns ``[]`` for a healthy run.
    """
    if not history:
        return []
    last = history[-1]
    log_k = math.log(out_dim)
    tag = f"{name}: " if name else ""
    out = []
    ent, mean_ent, kl = (float(last.get(k, float("nan"))) for k in
                         ("train_teacher_entropy", "train_teacher_mean_entropy", "train_kl"))
    if ent > uniform_frac * log_k:
        out.append(f"UNIFORM COLLAPSE — {tag}teacher entropy {ent:.2f} nats of at most log K = {log_k:.2f}: "
                   "the teacher output is near uniform")
    if mean_ent < dominant_frac * log_k:
        out.append(f"ONE-PROTOTYPE COLLAPSE — {tag}the batch-mean teacher distribution has entropy {mean_ent:.2f} "
                   f"nats (log K = {log_k:.2f}): every window goes to the same few prototypes")
    if kl < kl_min:
        out.append(f"NO SIGNAL — {tag}student–teacher KL {kl:.2e} nats: the student already matches the teacher")
    return out


# ============================================================================ SimCLR


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy on two views ``(B, d)`` each
    (Chen et al. 2020, Eq. 1): each of the 2B embeddings must pick its partner among the other
    2B − 1. The self-similarity is masked out exactly (the official ECG code subtracts e¹ from the
    denominator instead of exp(1/τ), ``SIMCLR_signal.py:74``). Returns a float32 scalar.
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLRModel(nn.Module):
    """Encoder + projection ``Linear(d, 512) → ReLU → Linear(512, 128)`` (official ``SIMCLR_signal.py:31-47, 118``; τ 0.1 at ``:152``).
    ``forward(x) -> (batch, 128)`` projections."""

    def __init__(self, encoder: nn.Module, hidden_dim: int = 512, out_dim: int = 128):
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Sequential(nn.Linear(encoder.out_features, hidden_dim), nn.ReLU(inplace=True),
                                        nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(x))


class SimCLRTask(Task):
    """SimCLR pretraining as a :class:`ecgbook.train.Task`: two global views per window
    (``make_views(x, 0, generator)[0]``), NT-Xent at ``temperature``; the encoder AND the projection
    head are trained (the official code optimises only the encoder, ``SIMCLR_signal.py:125``).
    Criterion: the NT-Xent loss on fixed validation views (``val_nt_xent``, lower is better) or a
    ``probe(encoder, device)`` (``val_probe``)."""

    labels = {"val_nt_xent": "NT-Xent on validation windows (fixed views)",
              "val_probe": "linear-probe macro AUROC on the validation fold (selection)"}

    def __init__(self, make_views: Callable, temperature: float = 0.1, val_X: np.ndarray | None = None,
                 probe: Callable | None = None, seed: int = 0, val_batch: int = 256):
        self.make_views, self.temperature, self.val_X, self.probe = make_views, temperature, val_X, probe
        self.seed, self.val_batch, self.step = int(seed), val_batch, 0
        self.criterion, self.mode = ("val_probe", "max") if probe is not None else ("val_nt_xent", "min")

    def loss(self, model: SimCLRModel, batch):
        x = batch if isinstance(batch, torch.Tensor) else batch[0]
        v1, v2 = self.make_views(x, 0, torch.Generator().manual_seed(self.seed * 1_000_003 + self.step))[0][:2]
        z = to_float32(model(torch.cat([v1, v2])))
        with torch.autocast(x.device.type, enabled=False):
            return nt_xent(z[:len(x)], z[len(x):], self.temperature)

    def on_step(self, model, step: int) -> None:
        self.step = step + 1

    @torch.no_grad()
    def validate(self, model: SimCLRModel, device) -> dict:
        out = {}
        if self.val_X is not None:
            total, n = 0.0, 0
            for i, lo in enumerate(range(0, len(self.val_X), self.val_batch)):
                x = torch.as_tensor(np.asarray(self.val_X[lo:lo + self.val_batch], dtype=np.float32), device=device)
                if len(x) < 2:
                    continue
                v1, v2 = self.make_views(x, 0, torch.Generator().manual_seed(7919 + i))[0][:2]
                z = to_float32(model(torch.cat([v1, v2])))
                total, n = total + float(nt_xent(z[:len(x)], z[len(x):], self.temperature)) * len(x), n + len(x)
            out["val_nt_xent"] = total / max(n, 1)
        if self.probe is not None:
            out["val_probe"] = float(self.probe(model.encoder, device))
        return out

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state.get("step", 0))


# ============================================================================ downstream


def label_fraction_subsets(
    patient_id, fractions: Sequence[float] = (0.01, 0.1, 1.0), seed: int = 0
) -> dict[float, np.ndarray]:
    """Nested, patient-disjoint label-fraction subsets of the training records.

    Patients are put in one random order (``numpy.random.default_rng(seed)``); the
    subset of fraction ``f`` is the shortest prefix of that order whose records number
    at least ``max(1, round(f × records))``. Hence every subset holds whole patients (a
    patient's records are all in or all out), the subsets are nested (1 % ⊂ 10 % ⊂ 100
    %), and they depend on ``(patient_id, fractions, seed)`` only — identical for every
    method and training seed.

    ``patient_id``: ``(records,)`` of the training folds. Returns ``{f: sorted record
    indices}``. Raises ``ValueError`` for a fraction outside (0, 1] or no records."""
    pid = np.asarray(patient_id)
    if pid.ndim != 1 or len(pid) == 0:
        raise ValueError(
            "label_fraction_subsets: patient_id must be a non-empty 1-D array, "
            f"got shape {pid.shape}"
        )
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"label_fraction_subsets: fractions {bad} outside (0, 1]")
    patients, inverse = np.unique(pid, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(patients))
    rank = np.empty(len(patients), dtype=int)
    rank[order] = np.arange(len(patients))
    counts = np.bincount(inverse)[order]  # records per patient, in the random order
    cum = np.cumsum(counts)
    out = {}
    for f in fractions:
        need = max(1, int(round(f * len(pid))))
        k = int(np.searchsorted(cum, need)) + 1  # patients taken
        out[float(f)] = np.flatnonzero(rank[inverse] < k)
    return out


@torch.no_grad()
def pooled_features(encode: Callable, X: np.ndarray, *, window: int = 250, stride: int = 125, batch_size: int = 256,
                    device: torch.device | str | None = None) -> np.ndarray:
    """Features of records ``X (records, leads, samples)`` → ``(records, dim)``: ``encode`` (an
    ``nn.Module`` or callable ``(batch, leads, window) -> (batch, dim)``) on every window of
    ``window`` samples every ``stride`` (the last window flush with the end), averaged per record.
    Modules run in eval mode on ``device`` (default: CUDA when present); float32 output.
    """
    device = pick_device(device) if not isinstance(device, torch.device) else device
    if isinstance(encode, nn.Module):
        encode.eval().to(device)
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"pooled_features: X must be (records, leads, samples), got {X.shape}")
    starts = window_starts(X.shape[-1], window, stride)
    w = min(window, X.shape[-1])
    out = []
    for lo in range(0, len(X), batch_size):
        x = torch.as_tensor(np.asarray(X[lo:lo + batch_size], dtype=np.float32), device=device)
        wins = torch.cat([x[..., s:s + w] for s in starts])                       # (windows × b, leads, w)
        f = to_float32(encode(wins)).reshape(len(starts), len(x), -1).mean(0)
        out.append(f.cpu().numpy())
    return np.concatenate(out).astype(np.float32)


@dataclass
class ProbeResult:
    """What :func:`linear_probe` returns: probabilities ``(records, classes)`` on val and test, the
    chosen ``C``, its validation macro AUROC and the validation AUROC of every ``C`` tried."""

    val_scores: np.ndarray
    test_scores: np.ndarray
    C: float
    val_auroc: float
    val_auroc_per_C: dict = field(default_factory=dict)
    constant_classes: list = field(default_factory=list)


def linear_probe(F_train, Y_train, F_val, Y_val, F_test, *, Cs: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0),
                 seed: int = 0, max_iter: int = 1000) -> ProbeResult:
    """Linear probe of frozen features: one L2-regularised logistic regression per class
    (scikit-learn, lbfgs) on features standardised with training statistics; ``C`` (inverse
    regularisation) chosen by the validation macro AUROC, ties to the smaller ``C``.

    ``F_*``: ``(records, dim)``; ``Y_*``: ``(records, classes)`` 0/1. A class with no positive (or
    no negative) in the training subset gets a constant score (its training prevalence) and is
    listed in ``constant_classes``. Raises ``ValueError`` for mismatched shapes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    F_train, F_val, F_test = (np.asarray(a, dtype=np.float64) for a in (F_train, F_val, F_test))
    Y_train, Y_val = np.asarray(Y_train).astype(int), np.asarray(Y_val).astype(int)
    if len(F_train) != len(Y_train) or len(F_val) != len(Y_val) or Y_train.shape[1] != Y_val.shape[1]:
        raise ValueError(f"linear_probe: shapes F_train {F_train.shape}, Y_train {Y_train.shape}, "
                         f"F_val {F_val.shape}, Y_val {Y_val.shape} do not match")
    scaler = StandardScaler().fit(F_train)
    A, B, T = scaler.transform(F_train), scaler.transform(F_val), scaler.transform(F_test)
    n_classes = Y_train.shape[1]
    constant = [k for k in range(n_classes) if Y_train[:, k].min() == Y_train[:, k].max()]

    def fit_predict(C):
        val, test = np.zeros((len(B), n_classes)), np.zeros((len(T), n_classes))
        for k in range(n_classes):
            if k in constant:
                val[:, k] = test[:, k] = Y_train[:, k].mean()
                continue
            clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(A, Y_train[:, k])
            val[:, k], test[:, k] = clf.predict_proba(B)[:, 1], clf.predict_proba(T)[:, 1]
        return val, test

    best, per_C = None, {}
    for C in Cs:
        val, test = fit_predict(C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auc = macro_auroc(Y_val, val).value
        auc = auc if np.isfinite(auc) else 0.0
        per_C[float(C)] = float(auc)
        if best is None or auc > best[0]:
            best = (auc, C, val, test)
    auc, C, val, test = best
    return ProbeResult(val.astype(np.float32), test.astype(np.float32), float(C), float(auc), per_C, constant)


def fine_tune(build: Callable[[], nn.Module], data, subset: np.ndarray, *, epochs: int, batch_size: int, lr: float,
              seed: int, device: str | None = None, patience: int | None = None,
              checkpoint_dir: str | Path | None = None):
    """Fine-tune all weights of ``build()`` (e.g. a classifier around pretrained encoders) on the
    training records ``subset`` of ``data`` (:class:`ecgbook.protocol.Prepared`), with the PTB-XL
    protocol of :func:`ecgbook.protocol.train_and_test` (random 2.5-s crops, AdamW one-cycle,
    epoch kept by validation macro AUROC, windowed max-aggregated scores). Returns its
    :class:`~ecgbook.protocol.RunOutput`. The batch size shrinks to the subset size when larger.
    """
    from .protocol import train_and_test

    subset = np.asarray(subset, dtype=int)
    if subset.size == 0:
        raise ValueError("fine_tune: the label-fraction subset is empty")
    part = dataclasses.replace(data, X_train=np.asarray(data.X_train)[subset], Y_train=np.asarray(data.Y_train)[subset])
    return train_and_test(build, part, epochs=epochs, batch_size=min(batch_size, len(subset)), lr=lr, seed=seed,
                          patience=patience, checkpoint_dir=checkpoint_dir, device=device)
