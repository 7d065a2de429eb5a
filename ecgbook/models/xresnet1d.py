"""xresnet1d: the 1-D "bag of tricks" ResNet of the PTB-XL benchmark, as the time-series encoder
of Phan et al. (BHI 2022).

Architecture as in the official code (UARK-AICV/ECG_SSL_12Lead ``models/xresnet1d.py``, itself
from Strodthoff et al.'s ``ecg_ptbxl_benchmarking``, after He et al., "Bag of Tricks", CVPR 2019),
with ``models/signal_model.py:7-12`` on top:

- stem: three conv–BN–ReLU layers, kernel 5, channels leads → 32 → 32 → 64, the first with
  stride 2 (the official model swaps in ``Conv1d(12, 32, 5, stride 2, padding 2)``), then
  max-pooling (3, stride 2);
- four stages of bottleneck blocks ``layers = [3, 4, 6, 3]`` (xresnet1d50), kernel 5, inner
  width 64 in every stage (the official code's ``block_szs = [64, 64, 64, 64]``, not the image
  ResNet's 64…512), expansion 4 → 256 output channels; stride 2 from the second stage on, the
  shortcut average-pooled (ceil mode) and projected by a 1×1 conv when the width changes; the last
  BN of each residual branch starts at zero;
- concat pooling (max ⊕ mean over time) → ``2 × 256 = 512`` features.

Plain torch; weights initialised as the official ``init_cnn`` (Kaiming normal, zero bias).
Input ``(batch, leads, samples)`` of any length ≥ about 16 samples; output ``(batch, features)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv_bn(ni: int, nf: int, kernel_size: int, stride: int = 1, act: bool = True, zero_bn: bool = False) -> nn.Sequential:
    """Conv1d (no bias, 'same' padding) → BatchNorm1d → ReLU (when ``act``); BN weight 0 when ``zero_bn``."""
    bn = nn.BatchNorm1d(nf)
    nn.init.constant_(bn.weight, 0.0 if zero_bn else 1.0)
    nn.init.constant_(bn.bias, 1e-3)  # as the official _get_norm
    layers = [nn.Conv1d(ni, nf, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False), bn]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck1d(nn.Module):
    """1×1 → k (stride) → 1×1 conv branch plus a shortcut (avg-pool when strided, 1×1 conv when the width changes).

    ``(batch, ni, L)`` → ``(batch, nf, ceil(L / stride))``.
    """

    def __init__(self, ni: int, nh: int, nf: int, stride: int = 1, kernel_size: int = 5):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(ni, nh, 1), conv_bn(nh, nh, kernel_size, stride=stride),
                                   conv_bn(nh, nf, 1, act=False, zero_bn=True))
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(2, ceil_mode=True))
        if ni != nf:
            shortcut.append(conv_bn(ni, nf, 1, act=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class ConcatPool1d(nn.Module):
    """Max and mean over time, concatenated: ``(batch, C, L)`` → ``(batch, 2C)`` (max first, as the official code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(-1), x.mean(-1)], dim=1)


class XResNet1d(nn.Module):
    """The time-series encoder: ``(batch, leads, samples)`` → ``(batch, out_features)``.

    Parameters
    ----------
    leads: input leads (12).
    layers: bottleneck blocks per stage (xresnet1d50: ``(3, 4, 6, 3)``).
    width: inner width of every stage (official 64); output channels ``width × expansion``.
    expansion: bottleneck expansion (4).
    kernel_size: kernel of the stem and of the blocks' middle convs (5).
    stem: stem channels (official ``(32, 32, 64)``).

    ``out_features = 2 × width × expansion`` (512 for the official sizes).
    """

    def __init__(self, leads: int = 12, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64, expansion: int = 4,
                 kernel_size: int = 5, stem: Sequence[int] = (32, 32, 64)):
        super().__init__()
        if leads < 1 or not layers or width < 1:
            raise ValueError(f"XResNet1d: bad sizes leads={leads}, layers={layers}, width={width}")
        chans = [leads, *stem]
        self.stem = nn.Sequential(*[conv_bn(chans[i], chans[i + 1], kernel_size, stride=2 if i == 0 else 1)
                                    for i in range(len(stem))], nn.MaxPool1d(3, stride=2, padding=1))
        blocks, ni = [], stem[-1]
        for i, n in enumerate(layers):
            stage = []
            for j in range(n):
                stage.append(Bottleneck1d(ni, width, width * expansion, stride=2 if (i > 0 and j == 0) else 1,
                                          kernel_size=kernel_size))
                ni = width * expansion
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*blocks)
        self.pool = ConcatPool1d()
        self.out_features = 2 * width * expansion
        self.leads = leads
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.leads:
            raise ValueError(f"XResNet1d: expected (batch, {self.leads}, samples), got {tuple(x.shape)}")
        return self.pool(self.blocks(self.stem(x)))


def xresnet1d50(leads: int = 12, **kwargs) -> XResNet1d:
    """The official sizes: stages (3, 4, 6, 3), width 64, expansion 4, kernel 5 → 512 features."""
    return XResNet1d(leads, layers=(3, 4, 6, 3), **kwargs)
