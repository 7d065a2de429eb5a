"""The 1-D ResNet baseline of the PTB-XL benchmark (``resnet1d_wang``), in plain torch.

Source: Strodthoff, Wagner, Schaeffter, Samek, "Deep learning for ECG analysis: benchmarks and
insights from PTB-XL", IEEE JBHI 25(5), 2021 (code: ``models/resnet1d.py``, ``resnet1d_wang``),
after Wang, Yan, Oates, "Time series classification from scratch with deep neural networks",
IJCNN 2017. On the full PTB-XL it reaches macro AUROC 0.930 (superdiagnostic), 0.919 (all), 0.946
(rhythm) in the benchmark's Table.

Architecture (``inplanes=128``, kernel sizes 5 and 3, stem kernel 7, stride 1, no stem pooling):

============================  ==================================
stage                         output shape
============================  ==================================
input                         ``(batch, leads, samples)``
stem: conv7 → BN → ReLU       ``(batch, 128, samples)``
block 1 (stride 1)            ``(batch, 128, samples)``
block 2 (stride 2)            ``(batch, 128, ⌈samples/2⌉)``
block 3 (stride 2)            ``(batch, 128, ⌈samples/4⌉)``
concat pooling (avg ‖ max)    ``(batch, 256)``
head: BN, Dropout(.25), Linear(256→128), ReLU, BN, Dropout(.5), Linear(128→classes)
logits                        ``(batch, classes)``
============================  ==================================
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock1d(nn.Module):
    """Residual block: conv(k1, stride) → BN → ReLU → conv(k2) → BN, plus a (1×1 conv + BN) shortcut when shapes change.

    Input ``(batch, in_channels, samples)``; output ``(batch, channels, ⌈samples/stride⌉)``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, kernel_sizes=(5, 3)):
        super().__init__()
        k1, k2 = kernel_sizes
        self.conv1 = nn.Conv1d(in_channels, channels, k1, stride=stride, padding=(k1 - 1) // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, k2, padding=(k2 - 1) // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv1d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ConcatPool1d(nn.Module):
    """Global average and max pooling concatenated: ``(batch, C, samples)`` → ``(batch, 2C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)


class ResNet1dWang(nn.Module):
    """``resnet1d_wang`` of the PTB-XL benchmark for multi-label classification (logits, no sigmoid).

    Parameters
    ----------
    n_leads: input leads (12 for PTB-XL). n_classes: outputs.
    channels: feature maps per block (128 in the benchmark). blocks: residual blocks (3).
    dropout: the head's final dropout (0.5; the first is half of it, as in fastai's head).

    Input ``(batch, n_leads, samples)`` (samples ≥ 4), output ``(batch, n_classes)``.
    """

    def __init__(self, n_leads: int = 12, n_classes: int = 5, channels: int = 128, blocks: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(n_leads, channels, 7, padding=3, bias=False),
                                  nn.BatchNorm1d(channels), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[BasicBlock1d(channels, channels, stride=1 if i == 0 else 2)
                                      for i in range(blocks)])
        self.pool = ConcatPool1d()
        self.head = nn.Sequential(nn.BatchNorm1d(2 * channels), nn.Dropout(dropout / 2),
                                  nn.Linear(2 * channels, channels), nn.ReLU(inplace=True),
                                  nn.BatchNorm1d(channels), nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(batch, 2 * channels)``."""
        if x.ndim != 3:
            raise ValueError(
                f"expected (batch, leads, samples), got shape {tuple(x.shape)}")
        return self.pool(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
