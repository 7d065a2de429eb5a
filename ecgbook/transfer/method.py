"""The technique's own step (Salem et al. 2018): which depth of the frozen CNN to read, chosen inside
each fold from its training part only. See :mod:`ecgbook.transfer`.
"""
from __future__ import annotations

from typing import Sequence

from ..evaluation import CLASSIFIERS, Folds, cross_validate_selected, select_features


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
