"""MRM-Net, the technique of chapter 05 (Huang et al., arXiv:2406.16928, 2024; authors' code
``wxhdf/MRM`` at commit ``289a24f``).

The network and its mutual-learning loss are models (:mod:`ecgbook.models.mrmnet`, where the
paper's facts and the released code's are cited) and are imported here under the names the
chapter uses; the chapter's protocol (PTB-XL folds, seeds, paired comparisons) is the book's
shared one (:mod:`ecgbook.protocol`).

Modules (a package, as every technique): :mod:`.experiments` (the per-epoch test diagnostic that
never selects, the reuse of the baseline chapter's runs, and what the released selection criterion
would have reported) and :mod:`.comparison` (MRM-Net as a method of the side-by-side comparison,
:mod:`ecgbook.comparison`; imported from there, ``ecgbook.mrmnet.comparison.method``); every public
name of :mod:`.experiments` is imported here.
"""
from __future__ import annotations

from ..models.common import count_parameters
from ..models.mrmnet import (CONFIG_NAMES, MRMNet, MRMNetConfig, MutualLearningLoss, build_mrmnet, mrmnet_config,
                             mrmnet_loss, symmetric_bernoulli_kl)
from .experiments import HEADS, released_selection, stored_baseline, test_diagnostic

__all__ = [
    "CONFIG_NAMES", "HEADS", "MRMNet", "MRMNetConfig", "MutualLearningLoss", "build_mrmnet", "count_parameters",
    "mrmnet_config", "mrmnet_loss", "released_selection", "stored_baseline", "symmetric_bernoulli_kl",
    "test_diagnostic",
]
