"""ArcFace: the additive angular margin head (Deng, Guo, Xue, Zafeiriou, CVPR 2019, eq. 3).

With L2-normalised features ``f_i`` and class weights ``W_j``, ``cos θ_j = W_j^T f_i / (|W_j| |f_i|)``
and the logits of sample ``i`` with identity ``y_i`` are::

    s · cos(θ_y + m)   for the target class y_i
    s · cos θ_j        for every other class j

trained with softmax cross-entropy. The margin ``m`` (radians) pushes each identity's features
into a narrower cone around its weight vector; the scale ``s`` sets the softmax temperature.

As in the official code of Oh et al. (CHIL 2022), ``Jwoo5/fairseq-signals`` at 6b9e137
(``criterions/arcface_criterion.py`` lines 46-66, ``models/identification/arcface.py`` lines
28-34 and 67-71), when ``θ_y + m > π`` — where ``cos(θ + m)`` would stop decreasing in θ — the
target logit is ``s · (cos θ_y - m sin m)`` instead (the InsightFace ``th``/``mm`` rule, *not*
"easy margin"): ``th = cos(π - m)``, the switch happens at ``cos θ_y <= th``, and
``mm = sin(π - m) · m`` (the first-order expansion of ``cos(θ + m)`` with ``sin θ`` taken at
``θ = π - m``). The target logit so keeps decreasing in θ over ``[0, π]``, with a step down at
``θ = π - m`` (from ``cos π = -1`` to ``-cos m - m sin m``). The cosines are clamped
to ``[-1, 1]``; ``sin θ = sqrt(max(1 - cos² θ, eps))`` (fairseq-signals takes the square root
of ``1 - cos²`` without the floor, whose gradient is infinite at ``|cos θ| = 1``). The class
weights are initialised as there: uniform in ``[-1, 1]``, ``renorm_(2, 1, 1e-5) · 1e5``.
The code here is written anew.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ArcFaceHead(nn.Module):
    """Additive angular margin logits over ``n_classes`` identities.

    Parameters
    ----------
    dim: feature size ``D``.
    n_classes: number of identities ``C`` (the rows of ``weight``, ``(C, D)``).
    scale: ``s`` (official identification config: 192).
    margin: ``m`` in radians (official: 1.0); ``0 <= m < π/2``.

    ``forward(features (B, D), target (B,) int64 or None) -> logits (B, C)`` float32, computed
    outside autocast: ``s cos θ`` everywhere, and ``s cos(θ_y + m)`` (or ``s (cos θ_y - m sin m)``
    when ``θ_y + m > π``) at each sample's target column when ``target`` is given. Without a
    target (evaluation) no margin is applied. :meth:`cosine` returns the ``(B, C)`` cosines.

    Raises ``ValueError`` for a margin outside ``[0, π/2)``, a non-positive scale, features that
    are not ``(B, D)`` or a target of another length or (on CPU; on CUDA the gather asserts) out
    of ``[0, C)``.
    Source: Deng et al. 2019, eq. 3; fairseq-signals (module docstring).
    """

    def __init__(self, dim: int, n_classes: int, scale: float = 192.0, margin: float = 1.0, eps: float = 1e-7):
        super().__init__()
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"ArcFaceHead: margin must be in [0, pi/2) radians, got {margin}")
        if scale <= 0:
            raise ValueError(f"ArcFaceHead: scale must be positive, got {scale}")
        self.dim, self.n_classes, self.scale, self.margin, self.eps = int(dim), int(n_classes), float(scale), \
            float(margin), float(eps)
        self.weight = nn.Parameter(torch.empty(self.n_classes, self.dim))
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th = math.cos(math.pi - margin)          # cos θ <= th  <=>  θ + m >= π
        self.mm = math.sin(math.pi - margin) * margin

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_classes={self.n_classes}, scale={self.scale}, margin={self.margin}"

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` float32 cosine similarity of each feature to each class weight, in ``[-1, 1]``."""
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"ArcFaceHead: features must be (batch, {self.dim}), got {tuple(features.shape)}")
        with torch.autocast(device_type=features.device.type, enabled=False):
            f = F.normalize(features.float(), dim=1, eps=1e-12)
            w = F.normalize(self.weight.float(), dim=1, eps=1e-12)
            return (f @ w.T).clamp(-1.0, 1.0)

    def target_logit(self, cos_y: torch.Tensor) -> torch.Tensor:
        """``cos(θ + m)`` of target cosines ``cos_y`` (any shape), with the ``θ + m > π`` rule (unscaled)."""
        sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp_min(self.eps))
        return torch.where(cos_y > self.th, cos_y * self.cos_m - sin_y * self.sin_m, cos_y - self.mm)

    def logits_from_cosine(self, cos: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled logits ``(B, C)`` from cosines ``cos`` ``(B, C)`` (margin at ``target`` when given)."""
        if target is None:
            return cos * self.scale
        target = target.long().view(-1)
        if target.shape[0] != cos.shape[0]:
            raise ValueError(f"ArcFaceHead: {cos.shape[0]} features but {target.shape[0]} targets")
        if target.device.type != "cuda" and target.numel() and (int(target.min()) < 0
                                                               or int(target.max()) >= self.n_classes):
            raise ValueError(f"ArcFaceHead: targets must lie in [0, {self.n_classes}), got "
                             f"[{int(target.min())}, {int(target.max())}]")
        with torch.autocast(device_type=cos.device.type, enabled=False):
            idx = target[:, None]
            margin = self.target_logit(cos.float().gather(1, idx))
            return cos.float().scatter(1, idx, margin) * self.scale

    def forward(self, features: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_from_cosine(self.cosine(features), target)
