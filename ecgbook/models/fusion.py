"""The spectrogram front end and the two-modality classifiers of Phan et al. (BHI 2022).

- :func:`stft_magnitude` / :class:`Spectrogram`: ``|STFT|`` of each lead (Hann window, ``nperseg``
  25, hop 13, zero boundary padding: exactly ``scipy.signal.stft(x, fs=100, window="hann",
  nperseg=25)`` as in the official ``utils/DINO_dataloader.py:517``), 13 frequencies × 21 frames
  for a 2.5-s window at 100 Hz, then normalised per lead with statistics fitted on the training
  folds (the official code uses hard-coded constants, ``DINO_dataloader.py:378-381``: a mean per
  lead and one standard deviation for all leads). Computed in torch, batched, on the batch's
  device, so a classifier takes the plain time series and sliding-window prediction works as for
  any 1-D model.
- :class:`FusionClassifier`: time-series encoder ⊕ spectrogram encoder, fused by a **gate**
  ``g = softmax(W [h_t ; h_s]) ∈ R²``, ``h = [g₀ h_t ; g₁ h_s]`` (official
  ``models/ensemble_model.py:34-40, 56-60``) or by plain concatenation, then the official head
  ``Linear(d, d/2) → Linear(d/2, classes)`` (two linear layers, no non-linearity between them).
- :class:`ModalityClassifier`: one encoder and the same head (time series or spectrogram alone).
- :func:`load_encoder_state`: load a pretrained encoder checkpoint with every key matched
  (the official fusion model loads with ``strict=False`` and matches none, ``ensemble_model.py:20-32``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import signal

FS = 100.0  # Hz: the sampling frequency of the paper's inputs (the frequencies are not used here)


def stft_magnitude(x: torch.Tensor, nperseg: int = 25) -> torch.Tensor:
    """``|STFT|`` of every lead: ``(batch, leads, samples)`` → ``(batch, leads, nperseg//2 + 1, frames)``.

    :func:`ecgbook.signal.stft_magnitude` (``torch.stft``) without the log: equals
    ``np.abs(scipy.signal.stft(x, window="hann", nperseg=nperseg)[2])`` (periodic Hann window,
    overlap ``nperseg // 2``, ``boundary="zeros"``, ``padded=True``, scaled by 1 / sum of the
    window), in float32. Raises ``ValueError`` when ``x`` is not 3-D.
    """
    if x.ndim != 3:
        raise ValueError(f"stft_magnitude: expected (batch, leads, samples), got {tuple(x.shape)}")
    return signal.stft_magnitude(x, FS, nperseg, log=False)


class Spectrogram(nn.Module):
    """Normalised spectrogram modality: ``(batch, leads, samples)`` → ``(batch, leads, freqs, frames)``.

    ``(|STFT| − mean[lead]) / std[lead]`` with buffers ``mean``/``std`` ``(leads,)`` set by
    :meth:`fit` on training windows (saved in the state dict). Unfitted: mean 0, std 1.
    """

    def __init__(self, leads: int = 12, nperseg: int = 25):
        super().__init__()
        self.nperseg = nperseg
        self.register_buffer("mean", torch.zeros(leads))
        self.register_buffer("std", torch.ones(leads))

    @torch.no_grad()
    def fit(self, X, window: int = 250, batch_size: int = 512) -> "Spectrogram":
        """Fit per-lead mean and std of ``|STFT|`` over non-overlapping ``window``-sample windows of
        training records ``X (records, leads, samples)``. Returns ``self``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 3 or X.shape[1] != len(self.mean) or X.shape[2] < window:
            raise ValueError(f"Spectrogram.fit: expected (records, {len(self.mean)}, >= {window}), got {X.shape}")
        starts = range(0, X.shape[2] - window + 1, window)
        total = torch.zeros(len(self.mean), dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        count = 0
        for lo in range(0, len(X), batch_size):
            for s in starts:
                mag = stft_magnitude(torch.from_numpy(X[lo:lo + batch_size, :, s:s + window]), self.nperseg).double()
                total += mag.sum(dim=(0, 2, 3))
                total_sq += (mag ** 2).sum(dim=(0, 2, 3))
                count += mag.shape[0] * mag.shape[2] * mag.shape[3]
        mean = total / count
        std = (total_sq / count - mean ** 2).clamp_min(0).sqrt().clamp_min(1e-8)
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag = stft_magnitude(x, self.nperseg)
        return (mag - self.mean[None, :, None, None]) / self.std[None, :, None, None]


def official_head(in_features: int, n_classes: int) -> nn.Sequential:
    """``Linear(d, d // 2) → Linear(d // 2, classes)`` (official ``ensemble_model.py:37-40``)."""
    return nn.Sequential(nn.Linear(in_features, in_features // 2), nn.Linear(in_features // 2, n_classes))


class FusionClassifier(nn.Module):
    """Two encoders fused by a gate (or concatenation) and a classifier head.

    Parameters
    ----------
    time_encoder: ``(batch, leads, samples)`` → ``(batch, d_t)``, with attribute ``out_features``.
    spec_encoder: ``(batch, leads, freqs, frames)`` → ``(batch, d_s)``, with ``out_features``.
    spectrogram: the :class:`Spectrogram` front end (its normalisation fitted on training folds).
    n_classes: outputs.
    fusion: ``"gate"`` (softmax gate over the two modalities) or ``"concat"``.

    ``forward(x (batch, leads, samples))`` returns ``{"logits": (batch, classes), "gate": (batch, 2) or None}``.
    """

    def __init__(self, time_encoder: nn.Module, spec_encoder: nn.Module, spectrogram: Spectrogram, n_classes: int,
                 fusion: str = "gate"):
        super().__init__()
        if fusion not in ("gate", "concat"):
            raise ValueError(f"FusionClassifier: fusion={fusion!r}; choose 'gate' or 'concat'")
        self.time_encoder, self.spec_encoder, self.spectrogram = time_encoder, spec_encoder, spectrogram
        self.fusion = fusion
        d = time_encoder.out_features + spec_encoder.out_features
        self.gate_fc = nn.Linear(d, 2) if fusion == "gate" else None
        self.head = official_head(d, n_classes)

    def fuse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused features ``(batch, d_t + d_s)`` and gate weights ``(batch, 2)``
        (``None`` for concat)."""
        h_t = self.time_encoder(x)
        h_s = self.spec_encoder(self.spectrogram(x))
        if self.gate_fc is None:
            return torch.cat([h_t, h_s], dim=1), None
        g = torch.softmax(self.gate_fc(torch.cat([h_t, h_s], dim=1)).float(), dim=1).to(
            h_t.dtype
        )
        return torch.cat([g[:, :1] * h_t, g[:, 1:] * h_s], dim=1), g

    def forward(self, x: torch.Tensor) -> dict:
        h, g = self.fuse(x)
        return {"logits": self.head(h), "gate": g}


class ModalityClassifier(nn.Module):
    """One encoder and the official head; ``spectrogram`` given: the encoder sees the spectrogram of ``x``.

    ``forward(x (batch, leads, samples)) -> (batch, classes)`` logits.
    """

    def __init__(self, encoder: nn.Module, n_classes: int, spectrogram: Spectrogram | None = None):
        super().__init__()
        self.encoder, self.spectrogram = encoder, spectrogram
        self.head = official_head(encoder.out_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.spectrogram(x) if self.spectrogram is not None else x))


def load_encoder_state(encoder: nn.Module, source) -> int:
    """Load a pretrained encoder's weights (a state dict or a checkpoint path read with
    ``torch.load(weights_only=True)``) with EVERY key matched; return the number of tensors loaded.

    Raises ``RuntimeError`` naming the missing and unexpected keys (no silent ``strict=False``).
    """
    state = torch.load(Path(source), map_location="cpu", weights_only=True) if isinstance(source, (str, Path)) else source
    result = encoder.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        where = f" from {source}" if isinstance(source, (str, Path)) else ""
        raise RuntimeError(f"load_encoder_state{where}: {len(result.missing_keys)} missing keys "
                           f"{result.missing_keys[:5]}, {len(result.unexpected_keys)} unexpected {result.unexpected_keys[:5]}")
    return len(state)
