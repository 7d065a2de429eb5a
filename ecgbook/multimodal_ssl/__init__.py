"""Multimodal self-supervised learning with self-knowledge distillation (Phan et al., IEEE BHI 2022).

Two modalities of the same 2.5-s, 12-lead window at 100 Hz — the time series and its
spectrogram — are each pretrained without labels by DINO (:mod:`ecgbook.ssl`), then fused by a
gate for classification (:class:`ecgbook.models.fusion.FusionClassifier`).

This module holds what is specific to the technique: the two modalities' DINO views
(:func:`time_views`, :func:`spectrogram_views`), the encoders at a named size
(:func:`build_encoder`), :func:`pretrain` (DINO or SimCLR through :func:`ecgbook.train.fit`),
the downstream classifiers (:func:`build_classifier`), the gate weights
(:func:`gate_weights`) and the threshold-optimism measurement (:func:`threshold_optimism`).
The paper's own evaluation, on the PhysioNet/CinC Challenge 2020 data (24 classes, ten folds by
patient, 5 random crops per record, window-mean scores, thresholds from a validation fold, the
Challenge metrics), is :func:`challenge2020_protocol` (``paper`` profile, ``challenge_root``).
Facts about the official code (UARK-AICV/ECG_SSL_12Lead) are cited ``file:line`` in the docstrings.

Modules (a package, as every technique): :mod:`.method` (views, encoders, pre-training,
classifiers, gate weights, threshold optimism), :mod:`.experiments` (the chapter's linear-probe
and fine-tuning runs as result rows), :mod:`.challenge2020` (the ``paper``-only protocol) and
:mod:`.comparison` (the methods of the side-by-side comparison, :mod:`ecgbook.comparison`);
every public name is imported here.
"""
from __future__ import annotations

from .method import (  # noqa: F401
    WINDOW,
    ENCODER_SIZES,
    build_encoder,
    ViewSettings,
    time_views,
    spectrogram_views,
    SpectrogramEncoder,
    PretrainResult,
    center_windows,
    probe_criterion,
    pretrain,
    save_encoder,
    build_classifier,
    gate_weights,
    threshold_optimism,
    pretraining_throughput,
)
from .challenge2020 import (  # noqa: F401
    CHALLENGE_TASK,
    CHALLENGE_METRICS,
    ChallengeFold,
    challenge_folds,
    challenge_fold,
    record_scores,
    challenge_fine_tune,
    challenge_rows,
    challenge_summary,
    challenge_builder,
    ChallengeRun,
    challenge2020_protocol,
    challenge2020_settings,
)
from .experiments import (  # noqa: F401
    PROBE_CS,
    PAIRS,
    SPLIT,
    frozen_encoders,
    probe_features,
    probe_rows,
    fine_tune_jobs,
    pooled_test_scores,
    paired_rows,
    gate_rows,
    optimism_rows,
    embedding_2d,
)

from .comparison import (  # noqa: F401
    BUDGET_KEYS,
    DinoEncoders,
    DinoProbe,
    DinoGateFineTune,
)

__all__ = [
    "BUDGET_KEYS",
    "DinoEncoders",
    "DinoProbe",
    "DinoGateFineTune",
    "PROBE_CS",
    "PAIRS",
    "SPLIT",
    "frozen_encoders",
    "probe_features",
    "probe_rows",
    "fine_tune_jobs",
    "pooled_test_scores",
    "paired_rows",
    "gate_rows",
    "optimism_rows",
    "embedding_2d",
    "WINDOW",
    "ENCODER_SIZES",
    "build_encoder",
    "ViewSettings",
    "time_views",
    "spectrogram_views",
    "SpectrogramEncoder",
    "PretrainResult",
    "center_windows",
    "probe_criterion",
    "pretrain",
    "save_encoder",
    "build_classifier",
    "gate_weights",
    "threshold_optimism",
    "pretraining_throughput",
    "CHALLENGE_TASK",
    "CHALLENGE_METRICS",
    "ChallengeFold",
    "challenge_folds",
    "challenge_fold",
    "record_scores",
    "challenge_fine_tune",
    "challenge_rows",
    "challenge_summary",
    "challenge_builder",
    "ChallengeRun",
    "challenge2020_protocol",
    "challenge2020_settings",
]
