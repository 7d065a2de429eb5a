"""SE-ResNet34 on 2-D spectrograms: the spectrogram encoder of Phan et al. (BHI 2022).

As the official code (UARK-AICV/ECG_SSL_12Lead ``models/seresnet2d.py`` and
``models/spectrogram_model.py:8-10``): torchvision's ResNet with squeeze-and-excitation basic
blocks (Hu et al., CVPR 2018; reduction 16) in stages ``[3, 4, 6, 3]`` of widths 64, 128, 256,
512, the first conv replaced by ``Conv2d(12, 64, kernel 7, stride 2, padding 3)`` so that the 12
leads are the input channels, max-pooling (3, stride 2), global average pooling → 512 features.
Plain torch (torchvision cannot be imported with this project's torch); initialised as
torchvision's ResNet (Kaiming normal, fan-out; BN weight 1, bias 0).

Input ``(batch, leads, freqs, frames)`` (13 × 21 for a 2.5-s window at 100 Hz, STFT nperseg 25);
output ``(batch, out_features)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class SELayer(nn.Module):
    """Squeeze-and-excitation: channel gates from the global mean, ``(b, c, h, w)`` → same shape."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class SEBasicBlock(nn.Module):
    """conv3×3 (stride) → BN → ReLU → conv3×3 → BN → SE, plus the shortcut (1×1 conv + BN when shape changes)."""

    def __init__(self, ni: int, nf: int, stride: int = 1, reduction: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(nf)
        self.se = SELayer(nf, reduction)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(ni, nf, 1, stride=stride, bias=False), nn.BatchNorm2d(nf))
                           if stride != 1 or ni != nf else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + self.downsample(x))


class SEResNet2d(nn.Module):
    """The spectrogram encoder: ``(batch, leads, freqs, frames)`` → ``(batch, out_features)``.

    Parameters
    ----------
    leads: input channels (12 leads).
    layers: blocks per stage (SE-ResNet34: ``(3, 4, 6, 3)``).
    widths: stage widths (``(64, 128, 256, 512)``); ``out_features = widths[-1]``.
    reduction: SE reduction (16).
    """

    def __init__(self, leads: int = 12, layers: Sequence[int] = (3, 4, 6, 3),
                 widths: Sequence[int] = (64, 128, 256, 512), reduction: int = 16):
        super().__init__()
        if len(layers) != len(widths) or leads < 1:
            raise ValueError(f"SEResNet2d: {len(layers)} stages but {len(widths)} widths (leads={leads})")
        self.leads = leads
        self.stem = nn.Sequential(nn.Conv2d(leads, widths[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, ni = [], widths[0]
        for i, (n, w) in enumerate(zip(layers, widths)):
            stages.append(nn.Sequential(*[SEBasicBlock(ni if j == 0 else w, w, stride=2 if (i > 0 and j == 0) else 1,
                                                       reduction=reduction) for j in range(n)]))
            ni = w
        self.stages = nn.Sequential(*stages)
        self.out_features = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if s.ndim != 4 or s.shape[1] != self.leads:
            raise ValueError(f"SEResNet2d: expected (batch, {self.leads}, freqs, frames), got {tuple(s.shape)}")
        return self.stages(self.stem(s)).mean(dim=(2, 3))


def se_resnet34(leads: int = 12, **kwargs) -> SEResNet2d:
    """The official sizes: stages (3, 4, 6, 3), widths (64, 128, 256, 512) → 512 features."""
    return SEResNet2d(leads, layers=(3, 4, 6, 3), **kwargs)
