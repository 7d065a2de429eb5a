"""MRM-Net in the side-by-side comparison (chapter 07, :mod:`ecgbook.comparison`).

The chapter's default variant, ``paper`` (Huang et al., arXiv:2406.16928, 2024: features exchanged
between the two resolutions after every stage; :func:`~ecgbook.models.mrmnet.mrmnet_config`), with
its mutual-learning objective (:func:`~ecgbook.models.mrmnet.mrmnet_loss`: BCE on both heads +
Bernoulli KL between them + feature alignment), trained from scratch on the lead set's channels with
the book's PTB-XL protocol (:class:`~ecgbook.comparison.SupervisedMethod`): the epoch is kept on the
validation fold, never on the test fold as the released ``main_mul.py`` does.
"""
from __future__ import annotations

from ..comparison import SupervisedMethod
from ..models.mrmnet import MRMNet, build_mrmnet, mrmnet_config, mrmnet_loss

#: The variant compared (the chapter's default, ``chapters/05_mrmnet.md``).
VARIANT = "paper"
NAME = "mrmnet"


def build(n_leads: int, n_classes: int) -> MRMNet:
    """MRM-Net, ``paper`` configuration, for input ``(batch, n_leads, samples)`` and ``n_classes``
    sigmoid outputs. Raises ``ValueError`` (from :class:`~ecgbook.models.mrmnet.MRMNetConfig`) for a
    non-positive ``n_leads`` or ``n_classes``."""
    return build_mrmnet(mrmnet_config(VARIANT, n_classes, n_leads=n_leads))


def method(epochs: int, batch_size: int, lr: float, patience: int | None = None) -> SupervisedMethod:
    """MRM-Net as a :class:`~ecgbook.comparison.SupervisedMethod` (name ``"mrmnet"``, family
    ``"supervised"``, lead input ``"lead set"``): :func:`build` trained with the ``paper`` variant's
    :class:`~ecgbook.models.mrmnet.MutualLearningLoss` for ``epochs`` (one-cycle AdamW at peak ``lr``,
    ``batch_size`` random 2.5-s crops, early stop after ``patience`` epochs without a better
    validation macro AUROC; ``None``: never). The reported score is the average of the two heads'
    logits. Raises ``ValueError`` for non-positive ``epochs``, ``batch_size`` or ``lr``."""
    for label, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if not value > 0:
            raise ValueError(f"mrmnet.comparison.method: {label} must be positive, got {value!r}")
    return SupervisedMethod(
        NAME, build, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, loss_fn=mrmnet_loss(VARIANT),
        chapter="mrmnet",
        description=("MRM-Net as the paper describes it (feature exchange after every stage, mutual learning "
                     "with a per-class Bernoulli KL), trained from scratch on the lead set's channels; "
                     "epoch kept on validation, not on the test set as the released code does"))
