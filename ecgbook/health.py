"""Run health: warnings a reader should see beside a training run's numbers.

A number from a run that has not converged, that diverged, or whose seed disagrees with the
others does not support a conclusion. This module turns a run's per-epoch history (the
``history`` of :class:`ecgbook.train.TrainResult`: one dict per epoch with ``epoch``,
``train_loss``, ``val_loss``, ``val_score``) and a set of per-seed results into plain-language
warnings:

- :func:`check_history` — the kept epoch is the last one trained (a longer budget might have
  found a better one); the validation score is still rising over the last epochs (the curve has
  not flattened); the run diverged (a NaN or infinite loss) or its validation score stayed at
  chance level (macro AUROC ≈ 0.5), or it never improved on its first epoch.
- :func:`seed_outliers` / :func:`check_seeds` — a seed whose value lies far from the others
  (leave-one-out robust distance, with an absolute floor so that three nearly equal seeds do not
  raise warnings over the third decimal).
- :data:`BLOCKING_TAGS`, :func:`blocking`, :func:`flagged_runs`, :func:`verdict_markdown` — which
  warnings mean a run's numbers support no conclusion, which runs they name, and the page's
  verdict counted in runs (not in warnings).

The thresholds are the book's choices, not a published standard; every function takes them as
keyword arguments and its docstring states the default.
"""
from __future__ import annotations

import math
from typing import Hashable, Mapping, Sequence

import numpy as np

#: Defaults shared by the chapters (macro AUROC in [0, 1]).
RISING_WINDOW = 3      # epochs inspected at the end of a curve
RISING_TOL = 0.005     # gain of the best validation score within the window that counts as "rising"
CHANCE = 0.5           # validation macro AUROC of a model that has learned nothing
CHANCE_MARGIN = 0.05   # best validation score within this margin of chance: "at chance"
OUTLIER_K = 3.0        # robust distances (scaled MAD of the other seeds) that make an outlier
OUTLIER_MIN_GAP = 0.02  # ... and at least this far from the other seeds' median (absolute)
FIRST_EPOCH_MIN = 3    # epochs trained before "kept the first epoch" counts as a failure to learn

#: Tags of warnings after which a run's numbers support no conclusion (the run did not converge,
#: failed, or collapsed); ``SEED OUTLIER`` is not among them (a comparison's sign rule covers a seed
#: that disagrees). The collapse tags are those of :func:`ecgbook.ssl.collapse_warnings`.
BLOCKING_TAGS = ("DIVERGED", "AT CHANCE", "KEPT FIRST EPOCH", "NO GAIN", "KEPT LAST EPOCH", "STILL RISING",
                 "UNIFORM COLLAPSE", "ONE-PROTOTYPE COLLAPSE", "NO SIGNAL")


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def check_history(history: Sequence[Mapping], *, best_epoch: int | None = None, name: str = "",
                  score_key: str = "val_score", loss_keys: Sequence[str] = ("train_loss", "val_loss"),
                  higher_is_better: bool = True, window: int = RISING_WINDOW, tol: float = RISING_TOL,
                  chance: float | None = CHANCE, chance_margin: float = CHANCE_MARGIN,
                  max_epochs: int | None = None, first_epoch_min: int = FIRST_EPOCH_MIN,
                  min_gain: float | None = None) -> list[str]:
    """Warnings about one training run, from its per-epoch ``history``.

    Parameters
    ----------
    history:
        One mapping per epoch, in order, with ``"epoch"`` and ``score_key`` (the validation
        criterion, e.g. macro AUROC) and optionally the ``loss_keys`` (``None``/NaN allowed: a
        NaN loss is what this function looks for).
    best_epoch:
        The epoch whose weights were kept; default: the epoch of the best finite score.
    name:
        Prefix of every warning (e.g. ``"rhythm, MRM-Net, seed 1"``).
    higher_is_better:
        ``False`` for a criterion to minimise (e.g. a validation loss); ``chance`` is then ignored.
    window, tol:
        *Still rising*: the best score of the last ``window`` epochs beats the best score before
        them by more than ``tol`` (default 3 epochs, 0.005). Needs ``2 * window`` epochs at least.
    chance, chance_margin:
        *At chance*: the best validation score is below ``chance + chance_margin`` (default
        0.5 + 0.05, macro AUROC). ``chance=None`` disables the check.
    max_epochs:
        The epoch budget. When given, *kept epoch is last* is reported only when the run used its
        whole budget (a run stopped early has, by construction, a better epoch before its last);
        when ``None`` the last epoch of ``history`` is taken as the budget's last.
    first_epoch_min:
        *Kept first epoch*: the kept epoch is the first of at least ``first_epoch_min`` epochs
        trained (default 3): training never improved on it, so the run learned nothing it kept.
    min_gain:
        *No gain* (off by default): the kept epoch, a later one, beats the first epoch by no more
        than ``min_gain`` after at least ``first_epoch_min`` epochs — e.g. a pre-training whose
        selecting probe moves by noise only (chapter 04 passes :data:`RISING_TOL`).

    Returns
    -------
    list of str, one sentence per problem (empty when the run looks healthy), each starting
    with a short tag in capitals: ``DIVERGED``, ``AT CHANCE``, ``KEPT FIRST EPOCH``, ``NO GAIN``,
    ``KEPT LAST EPOCH``, ``STILL RISING``.

    Raises
    ------
    ValueError
        ``history`` is empty, a row lacks ``epoch`` or ``score_key``, or ``best_epoch`` is not
        one of its epochs.
    """
    if not history:
        raise ValueError("check_history: empty history (no epoch was trained)")
    for i, row in enumerate(history):
        missing = [k for k in ("epoch", score_key) if k not in row]
        if missing:
            raise ValueError(f"check_history: history row {i} lacks {missing}: {dict(row)}")
    prefix = f"{name}: " if name else ""
    epochs = [int(row["epoch"]) for row in history]
    scores = np.array([float(row[score_key]) if _finite(row[score_key]) else np.nan for row in history])
    sign = 1.0 if higher_is_better else -1.0
    out: list[str] = []

    bad = [(int(row["epoch"]), key) for row in history for key in loss_keys
           if key in row and not _finite(row[key])]
    bad += [(e, score_key) for e, s in zip(epochs, scores) if np.isnan(s)]
    if bad:
        epoch, key = bad[0]
        out.append(f"DIVERGED — {prefix}{key} is NaN or infinite from epoch {epoch} on "
                   f"({len({e for e, _ in bad})} epoch(s) affected); the run's numbers are not usable.")
    finite = ~np.isnan(scores)
    if not finite.any():
        return out
    best_value = float(np.max(sign * scores[finite]) * sign)
    if best_epoch is None:
        best_epoch = epochs[int(np.nanargmax(sign * scores))]
    if best_epoch not in epochs:
        raise ValueError(f"check_history: best_epoch {best_epoch} is not in the history's epochs "
                         f"{epochs[0]}..{epochs[-1]}")
    if higher_is_better and chance is not None and best_value < chance + chance_margin:
        out.append(f"AT CHANCE — {prefix}the best validation score ({score_key}) is {best_value:.3f}, within "
                   f"{chance_margin} of chance ({chance}): the model has learned (almost) nothing.")

    if best_epoch == epochs[0] and len(history) >= first_epoch_min:
        out.append(f"KEPT FIRST EPOCH — {prefix}the kept epoch ({best_epoch}) is the first of {len(history)}: "
                   f"the validation score ({score_key}) never improved on it, so training added nothing.")
    elif min_gain is not None and len(history) >= first_epoch_min and not np.isnan(scores[0]):
        kept = float(scores[epochs.index(best_epoch)])
        if sign * (kept - scores[0]) <= min_gain:
            out.append(f"NO GAIN — {prefix}the kept epoch ({best_epoch}) scores {kept:.3f} ({score_key}), within "
                       f"{min_gain} of the first epoch's {scores[0]:.3f} after {len(history)} epochs: "
                       "training moved the score by noise only.")
    budget_used = max_epochs is None or len(history) >= max_epochs
    if best_epoch == epochs[-1] and budget_used and len(history) > 1:
        out.append(f"KEPT LAST EPOCH — {prefix}the kept epoch ({best_epoch}) is the last one trained: "
                   "a longer budget might find a better one.")
    if len(history) >= 2 * window:
        recent = sign * scores[-window:]
        before = sign * scores[:-window]
        if np.isfinite(recent).any() and np.isfinite(before).any():
            gain = float(np.nanmax(recent) - np.nanmax(before))
            if gain > tol:
                out.append(f"STILL RISING — {prefix}the validation score ({score_key}) gained {gain:+.3f} over the "
                           f"last {window} epochs (more than {tol}): the curve has not flattened.")
    return out


def _as_mapping(values) -> dict:
    if isinstance(values, Mapping):
        return dict(values)
    return dict(enumerate(values))


def seed_outliers(values: Mapping[Hashable, float] | Sequence[float], *, k: float = OUTLIER_K,
                  min_gap: float = OUTLIER_MIN_GAP) -> list:
    """The seeds whose value lies far from the other seeds' values.

    Leave-one-out: seed *i* is an outlier when ``|x_i − median(others)| > max(k · s_i, min_gap)``
    with ``s_i = 1.4826 · MAD(others)`` (the median absolute deviation scaled to a normal
    standard deviation). The absolute floor ``min_gap`` (default 0.02 macro AUROC) keeps three
    seeds that agree to the second decimal from raising warnings; with two other seeds the MAD is
    half their distance. Non-finite values are outliers.

    ``values``: ``{seed: value}`` or a sequence (its indices are the seeds). Returns the outlier
    seeds, in input order (empty with fewer than 3 values: no "others" to compare with).
    """
    values = _as_mapping(values)
    keys = list(values)
    x = np.array([float(values[key]) if _finite(values[key]) else np.nan for key in keys])
    if len(x) < 3:
        return [key for key, v in zip(keys, x) if np.isnan(v)]
    out = []
    for i, key in enumerate(keys):
        if np.isnan(x[i]):
            out.append(key)
            continue
        others = np.delete(x, i)
        others = others[~np.isnan(others)]
        if others.size < 2:
            continue
        med = float(np.median(others))
        spread = 1.4826 * float(np.median(np.abs(others - med)))
        if abs(x[i] - med) > max(k * spread, min_gap):
            out.append(key)
    return out


def check_seeds(values: Mapping[Hashable, float] | Sequence[float], *, name: str = "",
                what: str = "test macro AUROC", k: float = OUTLIER_K,
                min_gap: float = OUTLIER_MIN_GAP) -> list[str]:
    """Warnings (tag ``SEED OUTLIER``) for the seeds :func:`seed_outliers` finds, naming the seed,
    its value and the other seeds' median; empty when every seed agrees with the others."""
    values = _as_mapping(values)
    prefix = f"{name}: " if name else ""
    out = []
    for key in seed_outliers(values, k=k, min_gap=min_gap):
        others = [float(v) for s, v in values.items() if s != key and _finite(v)]
        median = f"{np.median(others):.3f}" if others else "n/a"
        value = float(values[key]) if _finite(values[key]) else float("nan")
        out.append(f"SEED OUTLIER — {prefix}seed {key} gives {what} {value:.3f}, far from the other "
                   f"seeds (median {median}): one seed would tell a different story.")
    return out


def plot_seed_curves(curves: Mapping[str, Sequence[tuple]], *, score_key: str = "val_score",
                     ylabel: str = "validation macro AUROC", columns: int = 2, panel_size=(3.4, 2.4)):
    """Validation curves of several seeds, one panel per model/task, kept epochs marked.

    ``curves``: ``{panel title: [(seed, history, best_epoch), ...]}`` (``history`` as in
    :func:`check_history`). Each seed is a line; its kept epoch a filled dot. Panels are laid out
    ``columns`` wide (default 2, legible in the ~680-px text column). Returns the
    ``matplotlib`` figure.
    """
    import matplotlib.pyplot as plt

    n = max(len(curves), 1)
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows),
                             squeeze=False, sharey=False, constrained_layout=True)
    for ax, (title, runs) in zip(axes.flat, curves.items()):
        for i, (seed, history, best_epoch) in enumerate(runs):
            x = [row["epoch"] for row in history]
            y = [row[score_key] if _finite(row.get(score_key)) else np.nan for row in history]
            line, = ax.plot(x, y, lw=1.4, label=f"seed {seed}")
            if best_epoch in x:
                ax.plot(best_epoch, y[x.index(best_epoch)], "o", color=line.get_color(), ms=5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, title="dot: kept epoch", title_fontsize=8)
    return fig


def tag(warning: str) -> str:
    """The tag of a warning (``"KEPT LAST EPOCH"`` in ``"KEPT LAST EPOCH — rhythm, seed 1: ..."``)."""
    return warning.split(" — ", 1)[0]


def blocking(warnings: Sequence[str]) -> list[str]:
    """The warnings whose tag is in :data:`BLOCKING_TAGS`: after them a run supports no conclusion."""
    return [w for w in warnings if tag(w) in BLOCKING_TAGS]


def flagged_runs(warnings: Sequence[str]) -> dict[str, list[str]]:
    """``{run name: [tags]}`` of the runs that have a blocking warning, in order of appearance.

    The run's name is the prefix every check writes after the tag (``name`` of
    :func:`check_history`, e.g. ``"superdiagnostic, dino_gate, 1 %, seed 0"``); a warning written
    without a name counts as a run of its own. Several warnings about one run count once.
    """
    runs: dict[str, list[str]] = {}
    for w in blocking(warnings):
        rest = w.split(" — ", 1)[1] if " — " in w else w
        name = rest.split(": ", 1)[0] if ": " in rest else rest
        runs.setdefault(name, [])
        if tag(w) not in runs[name]:
            runs[name].append(tag(w))
    return runs


def verdict_markdown(warnings: Sequence[str], n_runs: int, *, what: str = "training runs",
                     reference: str = "") -> str:
    """The page's run-health verdict, counted in runs: an admonition titled "Run health", in the
    note style when no run has a blocking warning, else in the warning style saying how many of ``n_runs`` failed and why (tags per
    run), that their numbers demonstrate the mechanics only, and ``reference`` (e.g. where the
    reference run's numbers are shown) — followed by every warning, blocking or not.

    Raises ``ValueError`` when more runs are flagged than ``n_runs``.
    """
    runs = flagged_runs(warnings)
    if len(runs) > n_runs:
        raise ValueError(f"verdict_markdown: {len(runs)} flagged runs but n_runs={n_runs}")
    items = "\n".join(f"- {w}" for w in warnings if w)
    if not runs:
        body = f"All {n_runs} {what} passed the health checks."
        return (f":::{{admonition}} Run health\n:class: note\n{body}" + (f" Other remarks:\n\n{items}" if items else "")
                + "\n:::")
    tags = sorted({t for ts in runs.values() for t in ts})
    body = (f"**{len(runs)} of {n_runs} {what} failed a health check** ({', '.join(t.lower() for t in tags)}): "
            f"their numbers demonstrate the mechanics only and support no conclusion.")
    if reference:
        body += " " + reference
    return f":::{{admonition}} Run health\n:class: warning\n{body}\n\n{items}\n:::"
