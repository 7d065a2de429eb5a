"""MRM-Net: the Multi-Resolution Mutual Learning Network for multi-label ECG classification, in plain torch.

Source: Huang, Wang, Feng, Wang, Wang, Zhou, "A Multi-Resolution Mutual Learning Network for
Multi-Label ECG Classification", arXiv:2406.16928 (2024); authors' code
https://github.com/wxhdf/MRM (``models/duibi.py`` class ``Dui1``, ``models/attention.py``,
``main_mul.py``; read at commit ``289a24f``).

What the paper describes
------------------------
A multi-scale convolution module (convolution blocks with different kernel sizes) turns the ECG
``X ∈ R^{leads × samples}`` into feature maps at two time resolutions, ``Z1`` (high) and ``Z2``
(low). A *dual-resolution attention architecture* processes them in parallel; through attention the
high-resolution branch focuses on subtle waveform changes and the low-resolution branch on overall
rhythm patterns. A *feature complementary mechanism* "introduces mutual feature learning after each
layer of the feature extractor", so that the features of the two resolutions reinforce each other
instead of being simply added or concatenated (which, the authors argue, lets the low-resolution
features be neglected). Evaluated on PTB-XL and CPSC2018. Statements about the paper here are
limited to its abstract and method overview; concrete layer sizes, the attention design and the loss
come from the released code (below) or are documented choices.

This implementation (``exchange="every_stage"``, the ``paper`` configuration)
-----------------------------------------------------------------------------
* **Stem** (shared): conv(k=11) → BN → ReLU → conv(k=7) → BN → ReLU → max-pool ×2.
* **Entries** (multi-scale convolution module): each branch is entered through parallel
  convolutions with kernel sizes ``kernel_sizes`` (default 3/7/11/17), **summed**, then BN → ReLU
  → dropout. The high entry keeps the stem's resolution (``⌈L/2⌉``) with ``width`` channels; the
  low entry has stride 2 (``⌈L/4⌉``, half the time resolution) and ``low_width_mult × width``
  channels.
* **Stages**: each branch has one residual block per stage (conv → BN → ReLU → conv → BN →
  attention, plus shortcut, ReLU); the stride of stage *i* is ``stage_strides[i]`` in *both*
  branches, so the low branch always has half the high branch's time resolution.
* **Dual-resolution attention**: in every residual block of both branches, CBAM-style channel
  attention (shared MLP on average- and max-pooled channels, reduction 8) followed by temporal
  attention (conv(k=7) on the channel-wise mean and max, sigmoid).
* **Feature complementary mechanism** (exchange): after each stage, high → low through a strided
  conv(k=3, stride 2) → BN, low → high through a 1×1 conv → BN then nearest-neighbour upsampling to
  the high branch's length; both are **added** to the other branch's stage output (computed from the
  pre-exchange features, so the exchange is symmetric).
* **Heads**: global average pooling per branch, a linear projection of the low branch's pooled
  features to the common feature size ``D`` (= ``width`` by default; the high branch needs none),
  dropout, linear classifier. ``logits`` (the reported prediction) is the average of the two heads'
  logits (``prediction="mean_logit"``, default); ``"mean_prob"`` averages the probabilities instead
  (returned as the logit of the averaged probability), ``"high"``/``"low"`` report one head.
* **Objective** (:class:`MutualLearningLoss`): BCE on each head + ``kl_weight`` × symmetric KL
  between the heads' tempered predictions + ``feat_weight`` × symmetric KL between the tempered
  softmax of the branches' pooled features (``T = 4``, weights 0.1 and 0.01, as in ``main_mul.py``).
* **Size** (defaults, 5 classes, ``L = 1000``): about 0.73 M parameters and 0.13 G multiply-adds
  per record (``resnet1d_wang`` of :mod:`ecgbook.models.resnet1d`: 0.47 M and 0.25 G).

Where the paper, the released code and this module differ
---------------------------------------------------------
1. **Exchange between branches.** The paper exchanges features after every layer. The released
   ``Dui1`` never does: ``attention.Scale_Fusion`` (strided conv(k=3) → BN → ReLU high → low,
   conv(k=3) → BN → upsample ×2 low → high, added — the design used here, minus that ReLU and with a
   1×1 conv) is defined and even instantiated (``self.scale_f``, with widths 128/256 that do not
   match the branches' 64/128), but its call is commented out. Each branch of ``Dui1`` has its own
   classifier (``fc1``, ``fc2``). In
   the released model the branches share only the stem and meet only **at the end**, through the
   mutual-learning loss on the final features and outputs. The ``released`` configuration reproduces
   that (``exchange="none"`` plus the mutual loss); ``exchange="end"`` is a third option, a single
   architectural exchange after the last stage.
2. **Output KL for multi-label targets.** The released ``DistillKL`` takes ``softmax`` over the
   classes (``F.kl_div(log_softmax(y_s/T), softmax(y_t/T), size_average=False) · T² / batch``, used
   in both directions), although each class is an independent sigmoid trained with BCE. A softmax is
   blind to a shift of all logits (heads with logits ``z`` and ``z + c`` give KL = 0 while every
   sigmoid probability differs), so the default here is a per-class Bernoulli KL
   (``kl_mode="bernoulli"``); the released form is ``kl_mode="softmax"`` (used by the ``released``
   loss preset, :func:`mrmnet_loss`).
3. **Features for the alignment term.** The released code flattens the final feature maps
   (``(B, 64·L/2)`` and ``(B, 128·L/4)`` — the same number of values by construction) and applies the
   softmax KL over all channel × time values; here the globally pooled (and, for the low branch,
   projected) features ``(B, D)`` are used.
4. **Attention placement.** Released: one ``Fusion_block`` per branch after the branch body, in which
   channel attention (CBAM MLP without the inner ReLU, BN) and spatial attention (conv k=7, BN) act
   in *parallel* on the same input, are concatenated, layer-normalised and fused by residual blocks;
   ECA and SE blocks sit inside the low branch's body only, and ``ECALayer`` never applies its conv
   (it gates by ``h_sigmoid`` of the channel mean). Here: sequential CBAM-style attention in every
   residual block of both branches.
5. **Multi-scale entry.** Released ``BaseScale``: kernels 3/13/23/33 **averaged** (identical to
   summing once followed by BN), plus a parallel conv(k=3) path, at the stem's full resolution, then
   max-pool ×2 (high: stride 1, 64 channels → ``L/2``; low: stride 2, 128 channels → ``L/4``). Here
   the entries act on the stem's half-resolution output, so the kernel lengths are roughly halved
   (3/7/11/17) and the extra k=3 path is omitted. Note that summing centred parallel convolutions is
   the same linear map as one convolution of the longest kernel (:class:`MultiKernelConv`); only
   concatenation (InceptionTime-style) would give the branches separate outputs.
6. **Stem and depth.** Released stem: four conv blocks (k = 11/7/5/3, 16 → 32 → 64 → 64 channels),
   each followed by ``MaxPool1d(2, stride=1, padding=1)``, which *lengthens* the signal by one sample
   per block (1000 → 1004); the branches then keep a constant resolution through 3 (high) or 7 (low)
   blocks plus the fusion block (about 1.8 M parameters used for 5 classes, with many more defined
   but unused — hence :func:`count_parameters`). Here: two conv blocks and a max-pool ×2, one block per stage,
   stride-2 stages to keep CPU cost low and the receptive field long.
7. **Heads and reported prediction.** Released: average pooling → LayerNorm → linear per branch;
   ``main_mul.py`` reports each head separately and keeps the epoch where the better of the two heads
   does best *on the test set*. Here: no LayerNorm, and one reported prediction (the average).
8. **Training** (released ``config.py``/``main_mul.py``, for reference): Adam, lr 1e-3, batch 96,
   40 epochs; a MultiStepLR scheduler is created but never stepped.

Shapes are in the docstring of :class:`MRMNet`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from .common import count_parameters  # noqa: F401  (public here too)

EXCHANGE_MODES = ("every_stage", "end", "none")
BRANCH_MODES = ("both", "high", "low")
PREDICTION_MODES = ("mean_logit", "mean_prob", "high", "low")
KL_MODES = ("bernoulli", "softmax")
FEAT_MODES = ("softmax", "mse")
MIN_SAMPLES = 64


@dataclass(frozen=True, kw_only=True)
class MRMNetConfig:
    """Hyper-parameters of :class:`MRMNet` (all keyword-only; validated on construction).

    Parameters
    ----------
    n_classes : int
        Number of labels (multi-label sigmoid outputs).
    n_leads : int
        Input leads (12 for PTB-XL / CPSC2018).
    width : int
        Channels of the high-resolution branch (and of the stem).
    low_width_mult : int
        The low-resolution branch has ``low_width_mult * width`` channels.
    stage_strides : tuple of int
        One entry per stage (its length is the number of stages): the temporal stride of that stage's
        residual block, applied in both branches.
    kernel_sizes : tuple of int
        Odd kernel lengths (samples of the half-rate stem output) of the parallel entry convolutions.
    stem_kernel_sizes : tuple of int
        Odd kernel lengths of the stem's convolutions (at the input rate).
    block_kernel_size : int
        Odd kernel length of the residual blocks' convolutions.
    exchange : {"every_stage", "end", "none"}
        Feature exchange between the branches: after every stage (paper), after the last stage only,
        or never (released code: the branches meet only in the loss).
    attention : bool
        Channel + temporal attention in every residual block.
    attention_reduction : int
        Reduction ratio of the channel-attention MLP.
    branches : {"both", "high", "low"}
        Which branches are built; single-branch ablations need ``exchange="none"``.
    prediction : {"mean_logit", "mean_prob", "high", "low"}
        How ``logits`` is formed from the two heads (ignored with a single branch).
    feat_dim : int or None
        Size ``D`` of the features used by the heads and the alignment term (``None``: ``width``).
    dropout : float
        Dropout probability after the entries and before the classifiers, in ``[0, 1)``.

    Raises
    ------
    ValueError
        When a field is out of range or the combination is inconsistent (the message names it).
    """

    n_classes: int
    n_leads: int = 12
    width: int = 48
    low_width_mult: int = 2
    stage_strides: tuple[int, ...] = (1, 2, 2)
    kernel_sizes: tuple[int, ...] = (3, 7, 11, 17)
    stem_kernel_sizes: tuple[int, ...] = (11, 7)
    block_kernel_size: int = 5
    exchange: str = "every_stage"
    attention: bool = True
    attention_reduction: int = 8
    branches: str = "both"
    prediction: str = "mean_logit"
    feat_dim: int | None = None
    dropout: float = 0.2

    def __post_init__(self) -> None:
        for name in ("n_classes", "n_leads", "width", "low_width_mult", "attention_reduction"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MRMNetConfig.{name} must be a positive integer, got {value!r}")
        if self.feat_dim is not None and (not isinstance(self.feat_dim, int) or self.feat_dim < 1):
            raise ValueError(f"MRMNetConfig.feat_dim must be None or a positive integer, got {self.feat_dim!r}")
        for name in ("stage_strides", "kernel_sizes", "stem_kernel_sizes"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if not value or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ValueError(f"MRMNetConfig.{name} must be a non-empty tuple of positive integers, got {value!r}")
        for name in ("kernel_sizes", "stem_kernel_sizes"):
            if any(k % 2 == 0 for k in getattr(self, name)):
                raise ValueError(f"MRMNetConfig.{name} must hold odd kernel lengths, got {getattr(self, name)!r}")
        if len(set(self.kernel_sizes)) != len(self.kernel_sizes):
            raise ValueError(f"MRMNetConfig.kernel_sizes must be distinct, got {self.kernel_sizes!r}")
        if self.block_kernel_size < 1 or self.block_kernel_size % 2 == 0:
            raise ValueError(f"MRMNetConfig.block_kernel_size must be odd and positive, got {self.block_kernel_size!r}")
        for name, allowed in (("exchange", EXCHANGE_MODES), ("branches", BRANCH_MODES),
                              ("prediction", PREDICTION_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"MRMNetConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.branches != "both" and self.exchange != "none":
            raise ValueError(f"MRMNetConfig.exchange={self.exchange!r} needs both branches; "
                             f"branches={self.branches!r} requires exchange='none'")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MRMNetConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def low_width(self) -> int:
        """Channels of the low-resolution branch."""
        return self.low_width_mult * self.width

    @property
    def n_stages(self) -> int:
        """Number of stages (``len(stage_strides)``)."""
        return len(self.stage_strides)

    @property
    def resolved_feat_dim(self) -> int:
        """The feature size ``D`` (``feat_dim``, or ``width`` when it is ``None``)."""
        return self.width if self.feat_dim is None else self.feat_dim

    def exchange_stages(self) -> tuple[int, ...]:
        """Indices (0-based) of the stages followed by a feature exchange."""
        if self.exchange == "every_stage":
            return tuple(range(self.n_stages))
        if self.exchange == "end":
            return (self.n_stages - 1,)
        return ()


class ConvBNReLU(nn.Sequential):
    """conv(k, stride, "same"-style padding ``k // 2``) → BN → ReLU.

    Input ``(batch, in_channels, n)``; output ``(batch, out_channels, ⌈n/stride⌉)`` (odd ``k``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )


class MultiKernelConv(nn.Module):
    """Parallel convolutions of several kernel lengths, summed, then BN → ReLU → dropout.

    The multi-scale entry of a branch (paper: multi-scale convolution module; released code:
    ``BaseScale``, which averages — identical to summing once BN follows). Each kernel length ``k``
    has its own weight ``weight_k{k}`` of shape ``(out_channels, in_channels, k)``. Since every
    branch is centred (padding ``k // 2``), the sum of the branches is exactly one convolution of
    length ``max(k)`` whose kernel is the sum of the zero-padded branch kernels; the forward pass
    computes it that way (one conv instead of ``len(kernel_sizes)``) while the parameters — and so
    the optimisation — stay those of the parallel branches.

    Input ``(batch, in_channels, n)``; output ``(batch, out_channels, ⌈n/stride⌉)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...], stride: int,
                 dropout: float):
        super().__init__()
        self.kernel_sizes, self.stride = tuple(kernel_sizes), stride
        for k in self.kernel_sizes:
            weight = nn.Parameter(torch.empty(out_channels, in_channels, k))
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv1d's default initialisation
            self.register_parameter(f"weight_k{k}", weight)
        self.bn = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def merged_weight(self) -> torch.Tensor:
        """The equivalent single kernel ``(out_channels, in_channels, max(kernel_sizes))``."""
        k_max = max(self.kernel_sizes)
        return sum(F.pad(getattr(self, f"weight_k{k}"), ((k_max - k) // 2, (k_max - k) // 2))
                   for k in self.kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k_max = max(self.kernel_sizes)
        out = F.conv1d(x, self.merged_weight(), stride=self.stride, padding=k_max // 2)
        return self.dropout(self.relu(self.bn(out)))


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``x · σ(MLP(avgpool x) + MLP(maxpool x))`` with a shared 1×1-conv MLP.

    Source: Woo et al., "CBAM", ECCV 2018, Eq. 2 (1-D version). Shape-preserving:
    ``(batch, channels, n)`` → same.
    """

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv1d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.mlp(x.mean(dim=-1, keepdim=True)) + self.mlp(x.amax(dim=-1, keepdim=True))
        return x * torch.sigmoid(gate)


class TemporalAttention(nn.Module):
    """CBAM spatial (here: temporal) attention: ``x · σ(conv_k([mean_c x ; max_c x]))``.

    Source: Woo et al., "CBAM", ECCV 2018, Eq. 3 (1-D version). Shape-preserving.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(summary))


class ResidualBlock(nn.Module):
    """conv(k, stride) → BN → ReLU → conv(k) → BN → [channel → temporal attention] (+ shortcut) → ReLU.

    The shortcut is identity, or 1×1 conv(stride) → BN when ``stride > 1``.
    Input ``(batch, channels, n)``; output ``(batch, channels, ⌈n/stride⌉)``.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int, attention: bool, reduction: int):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.attention = (nn.Sequential(ChannelAttention(channels, reduction), TemporalAttention())
                          if attention else nn.Identity())
        self.shortcut = (nn.Identity() if stride == 1 else
                         nn.Sequential(nn.Conv1d(channels, channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm1d(channels)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + self.shortcut(x))


class FeatureExchange(nn.Module):
    """Feature complementary mechanism: each branch adds the other's features.

    ``high' = high + up(low)`` with ``up`` = 1×1 conv → BN → nearest upsampling to the
    high length; ``low' = low + down(high)`` with ``down`` = conv(k=3, stride 2) → BN.
    Both use the pre-exchange features. Released counterpart: ``attention.Scale_Fusion``
    (defined, never called by ``Dui1``).

    Inputs ``high (batch, C_h, n)`` and ``low (batch, C_l, ⌈n/2⌉)``; outputs of the same
    shapes."""

    def __init__(self, high_channels: int, low_channels: int):
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv1d(high_channels, low_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(low_channels),
        )
        self.up = nn.Sequential(
            nn.Conv1d(low_channels, high_channels, 1, bias=False),
            nn.BatchNorm1d(high_channels),
        )

    def forward(
        self, high: torch.Tensor, low: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        to_high = F.interpolate(self.up(low), size=high.shape[-1], mode="nearest")
        return high + to_high, low + self.down(high)


class BranchHead(nn.Module):
    """Global average pooling → (linear projection to ``D``) → dropout → linear classifier.

    Input ``(batch, channels, n)``; returns ``pooled (batch, channels)``, ``feat (batch, D)`` and
    ``logits (batch, n_classes)``. The projection is the identity when ``channels == D``.
    """

    def __init__(self, channels: int, feat_dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.project = nn.Identity() if channels == feat_dim else nn.Linear(channels, feat_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feat_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = x.mean(dim=-1)
        feat = self.project(pooled)
        return pooled, feat, self.classifier(self.dropout(feat))


@dataclass
class MRMNetOutput:
    """What :meth:`MRMNet.forward` returns; also readable as a mapping (``out["logits"]``).

    Attributes
    ----------
    logits : Tensor ``(batch, n_classes)``
        The reported prediction (see ``MRMNetConfig.prediction``; the present head with one branch).
    logits_high, logits_low : Tensor ``(batch, n_classes)`` or None
        Each head's logits (``None`` for a branch that is not built).
    feat_high, feat_low : Tensor ``(batch, D)`` or None
        Pooled (projected) features of each branch, the inputs of the heads' classifiers.
    """

    logits: torch.Tensor
    logits_high: torch.Tensor | None
    logits_low: torch.Tensor | None
    feat_high: torch.Tensor | None
    feat_low: torch.Tensor | None

    def __getitem__(self, key: str) -> torch.Tensor | None:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(f"MRMNetOutput has no entry {key!r}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        """Names of the entries."""
        return [f.name for f in fields(self)]


def combine_logits(logits_high: torch.Tensor, logits_low: torch.Tensor, mode: str) -> torch.Tensor:
    """Combine the two heads' logits ``(batch, n_classes)`` into the reported logits (same shape).

    ``"mean_logit"``: ``(z_h + z_l) / 2``. ``"mean_prob"``: the logit of ``(σ(z_h) + σ(z_l)) / 2``,
    computed stably in log space. ``"high"``/``"low"``: one head.

    Raises
    ------
    ValueError
        For an unknown ``mode``.
    """
    if mode == "mean_logit":
        return 0.5 * (logits_high + logits_low)
    if mode == "mean_prob":
        log_p = torch.logaddexp(F.logsigmoid(logits_high), F.logsigmoid(logits_low))
        log_q = torch.logaddexp(F.logsigmoid(-logits_high), F.logsigmoid(-logits_low))
        return log_p - log_q
    if mode == "high":
        return logits_high
    if mode == "low":
        return logits_low
    raise ValueError(f"prediction mode must be one of {PREDICTION_MODES}, got {mode!r}")


class MRMNet(nn.Module):
    """MRM-Net: two resolution branches with attention, exchanging features, each with a head.

    Input ``(batch, n_leads, L)`` (any ``L ≥ 64``; PTB-XL at 100 Hz: ``L = 1000``). Shapes, with
    ``w = width``, ``2w = low_width``, ``D = feat_dim`` and ``s_i = stage_strides[i]``; the numbers
    are the defaults (``w = 48``, strides 1/2/2) for ``L = 1000``:

    ==============================  =============================================  ==============
    stage (``forward_stages`` key)  shape                                          L = 1000
    ==============================  =============================================  ==============
    input                           ``(B, n_leads, L)``                            (B, 12, 1000)
    ``stem`` (conv11, conv7, pool)  ``(B, w, ⌈L/2⌉)``                              (B, 48, 500)
    ``high_entry`` (stride 1)       ``(B, w, ⌈L/2⌉)``                              (B, 48, 500)
    ``low_entry`` (stride 2)        ``(B, 2w, ⌈L/4⌉)``                             (B, 96, 250)
    ``stage{i}_high`` (i = 1..S)    ``(B, w, ⌈L/(2·s_1⋯s_i)⌉)``                    500, 250, 125
    ``stage{i}_low``                ``(B, 2w, ⌈L/(4·s_1⋯s_i)⌉)``                   250, 125, 63
    ``pooled_high`` / ``_low``      ``(B, w)`` / ``(B, 2w)``                       (B, 48)/(B, 96)
    ``feat_high`` / ``feat_low``    ``(B, D)`` (low: linear 2w → D)                (B, 48)
    ``logits_high`` / ``_low``      ``(B, n_classes)``                             (B, C)
    ``logits``                      ``(B, n_classes)`` (combination of the heads)  (B, C)
    ==============================  =============================================  ==============

    ``stage{i}_*`` are the outputs after that stage's exchange; where an exchange follows the stage,
    the pre-exchange outputs are also recorded as ``stage{i}_high_local`` / ``stage{i}_low_local``.
    With ``branches="high"`` (``"low"``) only the high (low) entries exist.

    Parameters
    ----------
    config : MRMNetConfig
        The hyper-parameters.
    """

    def __init__(self, config: MRMNetConfig):
        super().__init__()
        if not isinstance(config, MRMNetConfig):
            raise TypeError(f"MRMNet needs an MRMNetConfig, got {type(config).__name__}")
        self.config = config
        w, wl, d = config.width, config.low_width, config.resolved_feat_dim
        stem = [ConvBNReLU(config.n_leads if i == 0 else w, w, k) for i, k in enumerate(config.stem_kernel_sizes)]
        self.stem = nn.Sequential(*stem, nn.MaxPool1d(2, ceil_mode=True))
        self.has_high = config.branches in ("both", "high")
        self.has_low = config.branches in ("both", "low")

        def stages(channels: int) -> nn.ModuleList:
            return nn.ModuleList(ResidualBlock(channels, config.block_kernel_size, s, config.attention,
                                               config.attention_reduction) for s in config.stage_strides)

        if self.has_high:
            self.high_entry = MultiKernelConv(w, w, config.kernel_sizes, 1, config.dropout)
            self.high_stages = stages(w)
            self.high_head = BranchHead(w, d, config.n_classes, config.dropout)
        if self.has_low:
            self.low_entry = MultiKernelConv(w, wl, config.kernel_sizes, 2, config.dropout)
            self.low_stages = stages(wl)
            self.low_head = BranchHead(wl, d, config.n_classes, config.dropout)
        self.exchanges = nn.ModuleDict({str(i): FeatureExchange(w, wl) for i in config.exchange_stages()})

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"MRMNet input must be a tensor (batch, leads, samples), got {shape}")
        if x.shape[1] != self.config.n_leads:
            raise ValueError(f"MRMNet input has {x.shape[1]} leads, the model expects n_leads={self.config.n_leads}")
        if x.shape[2] < MIN_SAMPLES:
            raise ValueError(f"MRMNet input has {x.shape[2]} samples; at least {MIN_SAMPLES} are needed")

    def _run(self, x: torch.Tensor, record: dict[str, torch.Tensor] | None) -> MRMNetOutput:
        self._check_input(x)

        def keep(name: str, tensor: torch.Tensor | None) -> None:
            if record is not None and tensor is not None:
                record[name] = tensor

        s = self.stem(x)
        keep("stem", s)
        h = self.high_entry(s) if self.has_high else None
        l = self.low_entry(s) if self.has_low else None
        keep("high_entry", h)
        keep("low_entry", l)
        for i in range(self.config.n_stages):
            h = self.high_stages[i](h) if h is not None else None
            l = self.low_stages[i](l) if l is not None else None
            if str(i) in self.exchanges:
                keep(f"stage{i + 1}_high_local", h)
                keep(f"stage{i + 1}_low_local", l)
                h, l = self.exchanges[str(i)](h, l)
            keep(f"stage{i + 1}_high", h)
            keep(f"stage{i + 1}_low", l)
        pooled_high = feat_high = logits_high = pooled_low = feat_low = logits_low = None
        if h is not None:
            pooled_high, feat_high, logits_high = self.high_head(h)
        if l is not None:
            pooled_low, feat_low, logits_low = self.low_head(l)
        if logits_high is not None and logits_low is not None:
            logits = combine_logits(logits_high, logits_low, self.config.prediction)
        else:
            logits = logits_high if logits_high is not None else logits_low
        for name, tensor in (("pooled_high", pooled_high), ("feat_high", feat_high), ("logits_high", logits_high),
                             ("pooled_low", pooled_low), ("feat_low", feat_low), ("logits_low", logits_low),
                             ("logits", logits)):
            keep(name, tensor)
        return MRMNetOutput(logits=logits, logits_high=logits_high, logits_low=logits_low,
                            feat_high=feat_high, feat_low=feat_low)

    def forward(self, x: torch.Tensor) -> MRMNetOutput:
        """Classify ECGs ``x (batch, n_leads, samples)`` (mV); see the class docstring for shapes.

        Raises
        ------
        ValueError
            When ``x`` is not 3-D, has the wrong number of leads, or fewer than 64 samples.
        """
        return self._run(x, None)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model and return every intermediate output by name (keys as in the class table).

        Meant for inspection and tests; raises like :meth:`forward`.
        """
        record: dict[str, torch.Tensor] = {}
        self._run(x, record)
        return record


def build_mrmnet(config: MRMNetConfig, seed: int | None = None) -> MRMNet:
    """Build :class:`MRMNet` from ``config``; with ``seed``, initialise under that seed.

    The seed is applied inside :func:`torch.random.fork_rng`, so the global RNG state is left as it
    was. Two calls with the same config and seed give identical weights.
    """
    if seed is None:
        return MRMNet(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MRMNet(config)


_NAMED_CONFIGS: dict[str, dict] = {
    "paper": {},
    "released": {"exchange": "none"},
    "high_only": {"branches": "high", "exchange": "none"},
    "low_only": {"branches": "low", "exchange": "none"},
    "no_attention": {"attention": False},
    "no_mutual": {},
}
_NAMED_LOSSES: dict[str, dict] = {
    "paper": {},
    "released": {"kl_mode": "softmax", "feat_mode": "softmax"},
    "high_only": {},
    "low_only": {},
    "no_attention": {},
    "no_mutual": {"mutual": False},
}
CONFIG_NAMES = tuple(_NAMED_CONFIGS)


def mrmnet_config(name: str, n_classes: int, **overrides) -> MRMNetConfig:
    """The model configuration of a named variant, with optional field overrides.

    Names: ``paper`` (exchange after every stage), ``released`` (the authors' code: no architectural
    exchange, the branches meet only in the mutual-learning loss at the end), ``high_only``,
    ``low_only``, ``no_attention``, and ``no_mutual`` (the ``paper`` model; the difference is in the
    loss, see :func:`mrmnet_loss`).

    Raises
    ------
    KeyError
        For an unknown name (the message lists the known ones).
    ValueError
        For invalid overrides (from :class:`MRMNetConfig`).
    """
    if name not in _NAMED_CONFIGS:
        raise KeyError(f"unknown MRM-Net configuration {name!r}; known: {', '.join(CONFIG_NAMES)}")
    return replace(MRMNetConfig(n_classes=n_classes), **{**_NAMED_CONFIGS[name], **overrides})


def mrmnet_loss(name: str, **overrides) -> "MutualLearningLoss":
    """The :class:`MutualLearningLoss` that goes with a named variant (see :func:`mrmnet_config`).

    ``released`` uses the released code's softmax KL on outputs and features; ``no_mutual`` turns the
    mutual terms off (plain BCE on both heads); the others use the defaults.

    Raises
    ------
    KeyError
        For an unknown name.
    """
    if name not in _NAMED_LOSSES:
        raise KeyError(f"unknown MRM-Net configuration {name!r}; known: {', '.join(CONFIG_NAMES)}")
    return MutualLearningLoss(**{**_NAMED_LOSSES[name], **overrides})


def symmetric_bernoulli_kl(
    logits_a: torch.Tensor, logits_b: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric KL between per-class Bernoulli distributions of tempered sigmoid
    outputs.

    With ``a = z_a / T``, ``b = z_b / T``, ``p = σ(a)``, ``q = σ(b)``, per class
    ``KL(Ber(p)‖Ber(q)) + KL(Ber(q)‖Ber(p)) = (p − q)(a − b)`` (the log-odds differences
    telescope); summed over classes, averaged over the batch and multiplied by ``T²``
    (Hinton et al. 2015, distillation). Exactly 0 when the logits agree, positive
    otherwise.

    Parameters
    ----------
    logits_a, logits_b : Tensor ``(batch, n_classes)``
        Logits of the two heads.
    temperature : float
        ``T > 0``.

    Returns
    -------
    Tensor
        A scalar.
    """
    a, b = logits_a / temperature, logits_b / temperature
    per_class = (torch.sigmoid(a) - torch.sigmoid(b)) * (a - b)
    return per_class.sum(dim=1).mean() * temperature**2


def symmetric_softmax_kl(logits_a: torch.Tensor, logits_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric KL between the tempered softmax distributions over the last dimension.

    ``KL(p‖q) + KL(q‖p) = Σ_i (p_i − q_i)(log p_i − log q_i)`` with ``p = softmax(z_a / T)``,
    ``q = softmax(z_b / T)``; averaged over the batch and multiplied by ``T²``. Equals the released
    ``DistillKL(T)(a, b) + DistillKL(T)(b, a)`` (``main_mul.py``). Exactly 0 for equal inputs.

    Parameters
    ----------
    logits_a, logits_b : Tensor ``(batch, n)``
        Logits (or features) whose softmax is compared.
    temperature : float
        ``T > 0``.

    Returns
    -------
    Tensor
        A scalar.
    """
    log_p = F.log_softmax(logits_a / temperature, dim=-1)
    log_q = F.log_softmax(logits_b / temperature, dim=-1)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1).mean() * temperature ** 2


class LossParts(dict):
    """The named parts of a loss, kept as detached scalar tensors so that computing them costs no
    host synchronisation. Reading an entry (``parts["kl"]``, ``.items()``, ``.values()``) returns a
    Python float (one synchronisation, when you look); :meth:`tensors` returns the tensors
    (what :func:`ecgbook.train.fit` accumulates on the device)."""

    def __getitem__(self, key):
        return float(super().__getitem__(key))

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def tensors(self) -> dict:
        """``{name: detached scalar tensor or float}`` without synchronising."""
        return dict(super().items())


class MutualLearningLoss(nn.Module):
    """The MRM-Net objective: BCE on each head plus mutual-learning terms between the branches.

    ``total = BCE(z_h, y) + BCE(z_l, y) + kl_weight · KL_sym(z_h, z_l) + feat_weight · F(f_h, f_l)``

    * BCE: :func:`torch.nn.functional.binary_cross_entropy_with_logits`, mean over batch and classes.
    * ``KL_sym`` on the heads' logits: ``kl_mode="bernoulli"`` (default) treats each class as a
      Bernoulli with ``p = σ(z / T)`` (:func:`symmetric_bernoulli_kl`: summed over classes, batch
      mean, ``× T²``) — the right distribution for independent sigmoid outputs; ``"softmax"`` is the
      released code's ``DistillKL`` over the classes (:func:`symmetric_softmax_kl`), which ignores a
      common shift of all logits.
    * ``F`` on the pooled features ``(batch, D)``: ``feat_mode="softmax"`` (default, released code)
      is :func:`symmetric_softmax_kl` over the feature dimension at temperature ``T``; ``"mse"`` is
      the squared distance between L2-normalised features (summed over ``D``, batch mean).
    * Both directions keep their gradients (no ``detach``), as in the released code, so each branch
      is pulled towards the other.

    Defaults ``kl_weight=0.1``, ``feat_weight=0.01``, ``temperature=4.0`` are the released
    ``main_mul.py`` values (``mutual_loss1 * 0.01 + mutual_loss2 * 0.1`` with ``DistillKL(T=4.0)``).
    With ``mutual=False`` (both heads still trained) or a single-branch output, only the BCE terms
    remain. The parts report the *unweighted* ``kl`` and ``feat`` values (0.0 when not computed) and
    ``bce_low``/``bce_high`` = 0.0 for an absent branch.

    Every term is computed in float32 outside autocast: bf16 logits and features (a forward pass
    under bf16 autocast on GPU) are cast up first, so the loss equals its float32 value for the
    same outputs.

    Parameters
    ----------
    kl_weight, feat_weight : float
        Non-negative weights of the output and feature terms.
    temperature : float
        Positive temperature ``T``.
    mutual : bool
        Whether the mutual terms are used.
    kl_mode : {"bernoulli", "softmax"}
        Distribution of the heads' tempered predictions (see above).
    feat_mode : {"softmax", "mse"}
        Feature-alignment term (see above).

    Raises
    ------
    ValueError
        For invalid settings (at construction) or mismatched output/target shapes (in ``forward``).
    """

    def __init__(self, kl_weight: float = 0.1, feat_weight: float = 0.01, temperature: float = 4.0,
                 mutual: bool = True, kl_mode: str = "bernoulli", feat_mode: str = "softmax"):
        super().__init__()
        if kl_weight < 0 or feat_weight < 0:
            raise ValueError(f"MutualLearningLoss weights must be >= 0, got kl_weight={kl_weight}, "
                             f"feat_weight={feat_weight}")
        if not temperature > 0:
            raise ValueError(f"MutualLearningLoss.temperature must be > 0, got {temperature}")
        if kl_mode not in KL_MODES:
            raise ValueError(f"MutualLearningLoss.kl_mode must be one of {KL_MODES}, got {kl_mode!r}")
        if feat_mode not in FEAT_MODES:
            raise ValueError(f"MutualLearningLoss.feat_mode must be one of {FEAT_MODES}, got {feat_mode!r}")
        self.kl_weight, self.feat_weight, self.temperature = kl_weight, feat_weight, temperature
        self.mutual, self.kl_mode, self.feat_mode = mutual, kl_mode, feat_mode

    def output_divergence(self, logits_high: torch.Tensor, logits_low: torch.Tensor) -> torch.Tensor:
        """Unweighted symmetric KL between the heads' tempered predictions (a scalar)."""
        kl = symmetric_bernoulli_kl if self.kl_mode == "bernoulli" else symmetric_softmax_kl
        return kl(logits_high, logits_low, self.temperature)

    def feature_divergence(self, feat_high: torch.Tensor, feat_low: torch.Tensor) -> torch.Tensor:
        """Unweighted feature-alignment term between ``(batch, D)`` features (a scalar)."""
        if feat_high.shape != feat_low.shape:
            raise ValueError(f"feature alignment needs equal shapes, got feat_high {tuple(feat_high.shape)} "
                             f"and feat_low {tuple(feat_low.shape)}")
        if self.feat_mode == "softmax":
            return symmetric_softmax_kl(feat_high, feat_low, self.temperature)
        diff = F.normalize(feat_high, dim=-1) - F.normalize(feat_low, dim=-1)
        return diff.pow(2).sum(dim=-1).mean()

    def forward(
        self,
        output: MRMNetOutput | Mapping[str, torch.Tensor | None],
        target: torch.Tensor,
    ) -> tuple[torch.Tensor, LossParts]:
        """Compute the loss.

        Parameters
        ----------
        output : MRMNetOutput or mapping
            Needs ``logits_high``, ``logits_low`` (either may be None), ``feat_high``,
            ``feat_low``.
        target : Tensor ``(batch, n_classes)``
            Multi-hot labels in ``[0, 1]``.

        Returns
        -------
        loss : Tensor
            Scalar total.
        parts : LossParts
            ``bce_high``, ``bce_low``, ``kl``, ``feat`` (unweighted) and ``total``, read
            as floats (``0.0`` for a term not computed); held as detached float32
            tensors, so the loss costs no host synchronisation per step.
        """
        # every term in float32, whatever the outputs' autocast dtype (bf16 on GPU)
        heads = {name: output[f"logits_{name}"] for name in ("high", "low")}
        present = {name: z.float() for name, z in heads.items() if z is not None}
        if not present:
            raise ValueError(
                "MutualLearningLoss: the output has neither logits_high nor logits_low"
            )
        target = target.float()
        parts = LossParts(bce_high=0.0, bce_low=0.0, kl=0.0, feat=0.0)
        total = None
        with torch.autocast(device_type=target.device.type, enabled=False):
            for name, z in present.items():
                if z.shape != target.shape:
                    raise ValueError(
                        f"MutualLearningLoss: logits_{name} has shape "
                        f"{tuple(z.shape)} but the target has {tuple(target.shape)}"
                    )
                bce = F.binary_cross_entropy_with_logits(z, target)
                parts[f"bce_{name}"] = bce.detach()
                total = bce if total is None else total + bce
            if self.mutual and len(present) == 2:
                kl = self.output_divergence(present["high"], present["low"])
                feat = self.feature_divergence(
                    output["feat_high"].float(), output["feat_low"].float()
                )
                parts["kl"], parts["feat"] = kl.detach(), feat.detach()
                total = total + self.kl_weight * kl + self.feat_weight * feat
        parts["total"] = total.detach()
        return total, parts
