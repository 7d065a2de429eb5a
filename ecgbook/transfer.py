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
"""
from __future__ import annotations

from typing import Sequence

from .data.mitdb import BEAT_CLASSES, BeatSet, cap_per_class, mitdb_beat_set
from .evaluation import (CLASSIFIERS, Folds, cross_validate_features, cross_validate_selected,
                         make_classifier, patient_folds, record_split, select_features, stratified_folds)
from .models.backbones import (BACKBONES, FEATURE_CACHE_VERSION, LITE_MEAN, LITE_STD, WEIGHTS, Backbone,
                               FeatureSet, best_available_backbone, cached_features, extract_features,
                               feature_cache_dir, load_backbone)
from .signal import IMAGENET_MEAN, IMAGENET_STD, SpectrogramSettings, spectrogram_image, spectrogram_images

__all__ = [
    "BACKBONES", "BEAT_CLASSES", "CLASSIFIERS", "FEATURE_CACHE_VERSION", "IMAGENET_MEAN", "IMAGENET_STD",
    "LITE_MEAN", "LITE_STD", "WEIGHTS", "Backbone", "BeatSet", "FeatureSet", "Folds", "SpectrogramSettings",
    "best_available_backbone", "cached_features", "cap_per_class", "cross_validate_features",
    "cross_validate_selected_tap", "extract_features", "feature_cache_dir", "load_backbone", "make_classifier",
    "mitdb_beat_set", "patient_folds", "record_split", "select_tap", "spectrogram_image", "spectrogram_images",
    "stratified_folds",
]


def select_tap(features, y, train, groups=None, classifier: str = "logreg", seed: int = 0,
               val_fraction: float = 0.25, **classifier_kwargs) -> tuple[str, dict[str, float]]:
    """Choose a feature tap (depth of the frozen CNN) from the training samples alone.

    The training indices are split once more, into an inner training part and an inner
    validation part of about ``val_fraction`` of them (stratified; grouped by ``groups``, e.g.
    patients, when given, so that the choice is made across patients too:
    :func:`ecgbook.evaluation.inner_split`). For each tap a fresh :func:`make_classifier` pipeline
    is fitted on the inner training part and scored by the macro F1 on the inner validation part;
    the tap with the best score wins (the shallowest one on a tie). The samples outside ``train``
    are never looked at, so the choice cannot leak test labels.
    (:func:`ecgbook.evaluation.select_features` with the taps as candidates.)

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
    return select_features(features, y, train, groups, classifier, seed, val_fraction, **classifier_kwargs)


def cross_validate_selected_tap(features, y, folds: Folds, classifiers: Sequence[str] = CLASSIFIERS,
                                groups=None, selector: str = "logreg", seed: int = 0,
                                labels: Sequence | None = None, require_partition: bool = True,
                                val_fraction: float = 0.25, *, n_jobs: int | None = None,
                                **classifier_kwargs) -> dict:
    """Cross-validation with the tap chosen inside each fold (nested, no test leakage).

    In every fold :func:`select_tap` picks a tap from the fold's training part only (inner
    hold-out, grouped by ``groups`` when given), then each classifier of ``classifiers`` is
    fitted on the whole training part at that tap and predicts the test part
    (:func:`ecgbook.evaluation.cross_validate_selected` with the taps as candidates).

    Parameters
    ----------
    features: ``{tap: (n, channels)}``.
    y, folds, labels, require_partition: as :func:`cross_validate_features`.
    classifiers: classifiers fitted at the chosen tap (:data:`CLASSIFIERS`).
    groups: ``(n,)`` patients for a grouped inner split (``None``: stratified only).
    selector, val_fraction: classifier and hold-out share used by :func:`select_tap`.
    seed, classifier_kwargs: passed to :func:`make_classifier`.
    n_jobs: worker processes over the folds (:mod:`ecgbook.evaluation`); same result for any value.

    Returns
    -------
    dict: ``taps`` (the tap chosen in each fold), ``selection`` (each fold's ``{tap: inner macro
    F1}``), and per classifier name the result dict of :func:`cross_validate_features`.

    Raises
    ------
    ValueError
        As :func:`cross_validate_features` and :func:`select_tap`; an unknown classifier.
    """
    out = cross_validate_selected(features, y, folds, classifiers, groups, selector, seed, labels,
                                  require_partition, val_fraction, n_jobs=n_jobs, **classifier_kwargs)
    return {"taps": out.pop("chosen"), **out}
