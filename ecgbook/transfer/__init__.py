"""Transfer learning from ImageNet CNNs to ECG spectrograms (Salem, Taheri & Yuan, BioCAS 2018).

The pipeline of the paper (arXiv 1812.04693): an ECG excerpt becomes a spectrogram image, a CNN
pretrained on ImageNet and kept frozen turns the image into feature vectors taken at several
depths, and a classical classifier is trained on those vectors with ten-fold cross-validation.
The technique's choice of depth — which tap of the frozen CNN to read — is made inside each fold
from its training part only (:func:`select_tap`, :func:`cross_validate_selected_tap`).

The pieces live in the layer they belong to, and are re-exported here under the names the
chapter uses:

* spectrogram images — :mod:`ecgbook.signal` (:class:`SpectrogramSettings`,
  :func:`spectrogram_images`, :func:`spectrogram_image`, :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`);
* the frozen backbones and the feature cache — :mod:`ecgbook.models.backbones`
  (:func:`load_backbone`, :func:`best_available_backbone`, :class:`Backbone`,
  :func:`extract_features`, :func:`cached_features`, :class:`FeatureSet`);
* folds, cross-validation and choices on training data — :mod:`ecgbook.evaluation`
  (:func:`make_classifier`, :func:`stratified_folds`, :func:`patient_folds`, :func:`record_split`,
  :func:`cross_validate_features`), shared with the self-supervised chapters' linear probe;
* the class-capped MIT-BIH four-class beat set (AAMI N, S, V, F) — :mod:`ecgbook.data.mitdb`
  (:func:`mitdb_beat_set`, :func:`cap_per_class`, :class:`BeatSet`, :data:`BEAT_CLASSES`).

Modules (a package, as every technique): :mod:`.method` (the choice of depth inside each fold,
:func:`select_tap` and :func:`cross_validate_selected_tap`) and :mod:`.comparison` (the technique
adapted to 12-lead PTB-XL as a method of the side-by-side comparison, :mod:`ecgbook.comparison`;
imported from there); the pieces above are imported here from their layers, with every public name.
"""
from __future__ import annotations

from ..data.mitdb import BEAT_CLASSES, BeatSet, cap_per_class, mitdb_beat_set
from ..evaluation import (CLASSIFIERS, Folds, cross_validate_features, make_classifier,  # noqa: F401
                          patient_folds, record_split, select_features, stratified_folds)
from ..models.backbones import (BACKBONES, FEATURE_CACHE_VERSION, LITE_MEAN, LITE_STD, WEIGHTS, Backbone,
                                FeatureSet, best_available_backbone, cached_features, extract_features,
                                feature_cache_dir, load_backbone)
from ..signal import IMAGENET_MEAN, IMAGENET_STD, SpectrogramSettings, spectrogram_image, spectrogram_images
from .method import cross_validate_selected_tap, select_tap

__all__ = [
    "BACKBONES", "BEAT_CLASSES", "CLASSIFIERS", "FEATURE_CACHE_VERSION", "IMAGENET_MEAN", "IMAGENET_STD",
    "LITE_MEAN", "LITE_STD", "WEIGHTS", "Backbone", "BeatSet", "FeatureSet", "Folds", "SpectrogramSettings",
    "best_available_backbone", "cached_features", "cap_per_class", "cross_validate_features",
    "cross_validate_selected_tap", "extract_features", "feature_cache_dir", "load_backbone", "make_classifier",
    "mitdb_beat_set", "patient_folds", "record_split", "select_tap", "spectrogram_image", "spectrogram_images",
    "stratified_folds",
]
