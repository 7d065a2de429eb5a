"""Batched, seeded ECG augmentations in torch, run on the device the batch is on.

Every function takes a batch ``x`` of shape ``(batch, leads, samples)`` (the spectrogram ones
``(batch, leads, freqs, frames)``) and an optional CPU :class:`torch.Generator`, and returns a
new tensor of the same dtype and device; the input is never modified. All random numbers are
drawn on the CPU from ``generator`` and then moved to ``x.device``, so a seeded augmentation
gives the same result on CPU and GPU, and each item of the batch gets its own draw.

Sources: the time-series augmentations follow the official code of Phan et al. (BHI 2022),
``utils/timeseries_transformations.py`` of UARK-AICV/ECG_SSL_12Lead (``TRandomResizedCrop``,
``TTimeOut_difflead``, ``TGaussianNoise``, ``TChannelResize``), themselves after Mehari &
Strodthoff, "Self-supervised representation learning from 12-lead ECG data" (Comput. Biol. Med.
2022); the spectrogram ones follow ``utils/DINO_dataloader.py`` of the same repository
(``random_crop`` + ``crop_padding``, ``spec_time_cutout``, ``spec_freq_cutout``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def _check(x: torch.Tensor, ndim: int, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        shape = "(batch, leads, samples)" if ndim == 3 else "(batch, leads, freqs, frames)"
        raise ValueError(f"{what}: expected shape {shape}, got {tuple(x.shape)}")
    return x


def _range(r: Sequence[float], what: str, low: float = 0.0, high: float | None = 1.0) -> tuple[float, float]:
    a, b = float(r[0]), float(r[1])
    if not (a <= b) or a < low or (high is not None and b > high):
        raise ValueError(f"{what}: range {r} must satisfy {low} <= low <= high" + (f" <= {high}" if high else ""))
    return a, b


def _uniform(n, r: tuple[float, float], generator, device) -> torch.Tensor:
    """``n`` (int or shape) uniform draws in ``[r0, r1]`` on the CPU, moved to ``device`` (float32)."""
    shape = (n,) if isinstance(n, int) else tuple(n)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return (r[0] + (r[1] - r[0]) * u).to(device=device, dtype=torch.float32)


def _spans(n_rows: int, length: int, ratio: tuple[float, float], generator, device):
    """Per row: a span of ``int(ratio * length)`` steps at a random start; returns (start, width) long tensors."""
    width = (_uniform(n_rows, ratio, generator, "cpu") * length).long().clamp(0, length)
    start = (torch.rand(n_rows, generator=generator, dtype=torch.float64) * (length - width + 1)).long()
    start = torch.minimum(start, length - width)
    return start.to(device), width.to(device)


def random_crop(x: torch.Tensor, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random window of ``samples`` samples from each item: ``(batch, leads, S)`` → ``(batch, leads, samples)``.

    Raises ``ValueError`` when ``samples`` exceeds the items' length.
    """
    _check(x, 3, "random_crop")
    b, _, n = x.shape
    if not 0 < samples <= n:
        raise ValueError(f"random_crop: cannot take {samples} samples from items of {n}")
    start = torch.randint(0, n - samples + 1, (b,), generator=generator).to(x.device)
    index = start[:, None] + torch.arange(samples, device=x.device)[None]
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))


def random_resized_crop(x: torch.Tensor, scale: Sequence[float] = (0.5, 1.0), out_samples: int | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a random fraction ``scale`` of each item's samples at a random position and resize it
    (linear interpolation) to ``out_samples`` (default: the input length).

    ``(batch, leads, S)`` → ``(batch, leads, out_samples)``. DINO's global views use scale
    0.5–1.0, local views 0.1–0.5 (official ``DINO_signal.py:236``). The official
    ``TRandomResizedCrop`` scatters the crop's samples to random sorted positions and interpolates
    between them (a random time warp); we resize uniformly.
    """
    _check(x, 3, "random_resized_crop")
    lo, hi = _range(scale, "random_resized_crop scale")
    if lo <= 0:
        raise ValueError(f"random_resized_crop: scale {scale} must be > 0")
    b, leads, n = x.shape
    out = int(out_samples or n)
    length = (_uniform(b, (lo, hi), generator, "cpu").double() * n).round().clamp(2, n)
    length = length.double()
    start = torch.rand(b, generator=generator, dtype=torch.float64) * (n - length)
    start, length = start.to(x.device), length.to(x.device)
    steps = torch.linspace(0, 1, out, device=x.device, dtype=torch.float64)
    pos = start[:, None] + steps[None] * (length[:, None] - 1)          # (batch, out), in [0, n-1]
    left = pos.floor().long().clamp(0, n - 1)
    right = (left + 1).clamp(max=n - 1)
    frac = (pos - left.to(pos.dtype)).to(x.dtype)[:, None, :]
    gl = torch.gather(x, 2, left[:, None, :].expand(-1, leads, -1))
    gr = torch.gather(x, 2, right[:, None, :].expand(-1, leads, -1))
    return gl + (gr - gl) * frac


def time_out(x: torch.Tensor, ratio: Sequence[float] = (0.2, 0.4), generator: torch.Generator | None = None) -> torch.Tensor:
    """Per item and lead, set a random span of ``ratio`` × samples to zero (its own span per lead).

    Official ``TTimeOut_difflead`` with ``to_crop_ratio_range`` [0.2, 0.4] (``DINO_signal.py:226, 238``).
    """
    _check(x, 3, "time_out")
    r = _range(ratio, "time_out ratio")
    b, leads, n = x.shape
    start, width = _spans(b * leads, n, r, generator, x.device)
    t = torch.arange(n, device=x.device)[None]
    mask = (t >= start[:, None]) & (t < (start + width)[:, None])
    return x.masked_fill(mask.view(b, leads, n), 0.0)


def gaussian_noise(x: torch.Tensor, sigma: Sequence[float] = (0.005, 0.025), lead_scale=None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add white Gaussian noise, its standard deviation drawn uniformly in ``sigma`` per item.

    ``lead_scale``: optional ``(leads,)`` factors multiplying σ per lead, e.g. ``1 / std`` of the
    per-lead standardiser so that σ is in mV on standardised inputs (the official code adds the
    noise in mV before normalising: ``TGaussianNoise``, ``DINO_dataloader.py:98-99``).
    """
    _check(x, 3, "gaussian_noise")
    r = _range(sigma, "gaussian_noise sigma", high=None)
    b, leads, n = x.shape
    s = _uniform(b, r, generator, x.device)[:, None, None]
    if lead_scale is not None:
        scale = torch.as_tensor(lead_scale, dtype=torch.float32, device=x.device).reshape(1, -1, 1)
        if scale.shape[1] != leads:
            raise ValueError(f"gaussian_noise: lead_scale has {scale.shape[1]} values for {leads} leads")
        s = s * scale
    noise = torch.randn((b, leads, n), generator=generator).to(x.device)
    return x + (s * noise).to(x.dtype)


def amplitude_scale(x: torch.Tensor, factor: Sequence[float] = (0.5, 2.0), generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiply each lead by a gain drawn log-uniformly in ``factor`` (official ``TChannelResize``)."""
    _check(x, 3, "amplitude_scale")
    lo, hi = _range(factor, "amplitude_scale factor", low=1e-6, high=None)
    b, leads, _ = x.shape
    log_gain = _uniform((b, leads), (float(torch.tensor(lo).log()), float(torch.tensor(hi).log())), generator, x.device)
    return x * log_gain.exp().to(x.dtype)[..., None]


def lead_mask(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero whole leads, each with probability ``p``; at least one lead of each item is kept."""
    _check(x, 3, "lead_mask")
    if not 0 <= p < 1:
        raise ValueError(f"lead_mask: p={p} must be in [0, 1)")
    b, leads, _ = x.shape
    drop = torch.rand((b, leads), generator=generator) < p
    keep_one = torch.randint(0, leads, (b,), generator=generator)
    drop[torch.arange(b), keep_one] = False
    return x.masked_fill(drop.to(x.device)[..., None], 0.0)


def spec_time_crop(s: torch.Tensor, scale: Sequence[float], generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep a random run of ``scale`` × frames of each item (all leads), zero the rest, and centre
    the run in the frame axis (official ``random_crop`` + ``crop_padding``, ``DINO_dataloader.py:336-358``;
    global views 0.6–1.0, local 0.3–0.6, ``:526-527``). Shape kept: ``(batch, leads, freqs, frames)``.
    """
    _check(s, 4, "spec_time_crop")
    lo, hi = _range(scale, "spec_time_crop scale")
    b, leads, f, t = s.shape
    width = (_uniform(b, (lo, hi), generator, "cpu") * t).long().clamp(1, t)
    start = torch.minimum((torch.rand(b, generator=generator, dtype=torch.float64) * (t - width + 1)).long(), t - width)
    left = (t - width) // 2
    # output frame j takes input frame j - left + start when 0 <= j - left < width
    j = torch.arange(t)[None]
    src = (j - left[:, None] + start[:, None])
    valid = (j >= left[:, None]) & (j < (left + width)[:, None])
    src = src.clamp(0, t - 1).to(s.device)
    out = torch.gather(s, 3, src[:, None, None, :].expand(-1, leads, f, -1))
    return out * valid.to(s.device)[:, None, None, :].to(s.dtype)


def spec_time_cutout(s: torch.Tensor, ratio: Sequence[float] = (0.1, 0.35), generator: torch.Generator | None = None) -> torch.Tensor:
    """Per item and lead, zero a random run of ``ratio`` × frames (official ``spec_time_cutout``,
    ``DINO_dataloader.py:302-312``)."""
    _check(s, 4, "spec_time_cutout")
    r = _range(ratio, "spec_time_cutout ratio")
    b, leads, f, t = s.shape
    start, width = _spans(b * leads, t, r, generator, s.device)
    j = torch.arange(t, device=s.device)[None]
    mask = (j >= start[:, None]) & (j < (start + width)[:, None])
    return s.masked_fill(mask.view(b, leads, 1, t), 0.0)


def spec_freq_cutout(s: torch.Tensor, bins: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per item and lead, zero ``bins`` adjacent frequency rows at a random position (official
    ``spec_freq_cutout`` zeroes one row per lead, ``DINO_dataloader.py:314-322``; the official code
    builds it but never applies it, ``:533-534``)."""
    _check(s, 4, "spec_freq_cutout")
    b, leads, f, t = s.shape
    if not 0 < bins <= f:
        raise ValueError(f"spec_freq_cutout: bins={bins} must be in 1..{f}")
    start = torch.randint(0, f - bins + 1, (b * leads,), generator=generator).to(s.device)
    k = torch.arange(f, device=s.device)[None]
    mask = (k >= start[:, None]) & (k < (start + bins)[:, None])
    return s.masked_fill(mask.view(b, leads, f, 1), 0.0)


#: Augmentations by name (for configuration files and notes).
AUGMENTATIONS: dict[str, Callable] = {
    "random_crop": random_crop, "random_resized_crop": random_resized_crop, "time_out": time_out,
    "gaussian_noise": gaussian_noise, "amplitude_scale": amplitude_scale, "lead_mask": lead_mask,
    "spec_time_crop": spec_time_crop, "spec_time_cutout": spec_time_cutout, "spec_freq_cutout": spec_freq_cutout,
}
