"""The PTB-XL benchmark protocol shared by the supervised chapters.

Strodthoff et al. (IEEE JBHI 2021), Sec. III: train on ``strat_fold`` 1–8, select on fold 9,
test on fold 10; standardise with statistics of the training folds only; train on random
2.5-s crops; at test time slide 2.5-s windows with 50 % overlap over the 10-s record and take the
maximum of the window scores. The epoch is chosen on the validation fold (macro AUROC), never on
the test fold.

:func:`prepare` splits and standardises a :class:`~ecgbook.data.ptbxl.PTBXLTask`;
:func:`train_and_test` trains any model with :func:`ecgbook.train.fit` and scores the test fold;
:func:`evaluate` turns test scores into result rows (macro AUROC with a bootstrap CI, per class).

Several seeds (every comparison a chapter states rests on at least three):
:func:`train_seeds` trains one model per seed; :func:`seed_rows` writes per-seed rows (``seed``),
mean ± sd rows (:func:`aggregate_rows`, ``seeds: n``) and rows of the seed-pooled scores
(:func:`pooled_scores`: each test record's scores averaged over seeds); :func:`compare_over_seeds`
gives per-seed differences and the paired bootstrap of the pooled scores (test records resampled,
seeds not); :func:`direction` / :func:`comparison_sentence` state a direction only when every seed
agrees and the pooled interval excludes zero; :func:`seed_health` collects the run-health
warnings of :mod:`ecgbook.health` for a set of seeds.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import health
from . import health as _health  # comparison_sentence's argument is named health
from .data.ptbxl import PTBXLTask
from .metrics import (accuracy, apply_thresholds, bootstrap_ci, choose_thresholds, f1_scores, macro_auroc,
                      paired_bootstrap)
from .results import signed, signed_interval
from .signal import Standardizer, crop
from .train import ArrayDataset, TrainConfig, TrainResult, fit, predict, seed_everything


@dataclass
class Prepared:
    """A task split into train / val / test, standardised with training statistics.

    ``X_*``: ``(records, leads, samples)`` float32 (standardised, unitless); ``Y_*``: ``(records, classes)``.
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    classes: list[str]
    standardizer: Standardizer
    fs: int
    ids: dict[str, np.ndarray] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Records per split."""
        return {"train": len(self.X_train), "val": len(self.X_val), "test": len(self.X_test)}


def prepare_arrays(X: np.ndarray, Y: np.ndarray, splits: dict[str, np.ndarray], classes: list[str],
                   fs: int, what: str = "dataset", record_ids: np.ndarray | None = None) -> Prepared:
    """Split ``X (records, leads, samples)`` / ``Y (records, classes)`` by the index arrays
    ``splits["train"|"val"|"test"]`` and standardise per lead with training statistics only.
    ``record_ids`` ``(records,)`` (e.g. PTB-XL ``ecg_id``) are kept per split in ``ids``.

    Raises ``ValueError`` naming ``what`` when a split is empty or the splits overlap.
    """
    empty = [name for name in ("train", "val", "test") if len(splits.get(name, [])) == 0]
    if empty:
        raise ValueError(f"{what}: no records in split(s) {empty} among the {len(Y)} present")
    ids = [set(map(int, splits[name])) for name in ("train", "val", "test")]
    if ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]:
        raise ValueError(f"{what}: train, validation and test splits overlap")
    parts = {name: np.asarray(X[splits[name]], dtype=np.float32) for name in ("train", "val", "test")}
    scaler = Standardizer().fit(parts["train"])
    ids = {} if record_ids is None else {name: np.asarray(record_ids)[splits[name]] for name in splits}
    return Prepared(scaler.transform(parts["train"]), Y[splits["train"]], scaler.transform(parts["val"]),
                    Y[splits["val"]], scaler.transform(parts["test"]), Y[splits["test"]], list(classes), scaler, fs,
                    ids)


def prepare(task: PTBXLTask) -> Prepared:
    """Split ``task`` by ``strat_fold`` (1–8 / 9 / 10) and standardise per lead with train statistics.

    Raises ``ValueError`` when a split is empty (e.g. a very small subset of records).
    """
    splits = {name: task.split(name) for name in ("train", "val", "test")}
    return prepare_arrays(task.X, task.Y, splits, task.classes, task.fs, what=f"PTB-XL {task.task}",
                          record_ids=task.ecg_id)


def random_crop(length: int) -> Callable:
    """Transform for :class:`~ecgbook.train.ArrayDataset`: a random crop of ``length`` samples."""
    return lambda x, rng: crop(x, length, start="random", rng=rng)


def val_auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro AUROC for epoch selection (classes without positives in validation are left out).

    NaN, with a ``RuntimeWarning`` giving the reason, when no class has both a positive and a
    negative record; :func:`~ecgbook.train.fit` never selects an epoch with a NaN score.
    """
    res = macro_auroc(y_true, scores)
    if not np.isfinite(res.value):
        warnings.warn(f"val_auroc: undefined (NaN), no class has both positive and negative validation records "
                      f"({res.reasons})", RuntimeWarning, stacklevel=2)
    return float(res.value)


def window_scorer(fs: float, window_s: float = 2.5) -> Callable:
    """``scorer(model, X, device=None) -> (records, classes)``: max of sigmoid scores
    over windows of ``window_s`` seconds with 50 % overlap (the benchmark's test-time
    aggregation)."""
    window = int(round(window_s * fs))
    return partial(predict, window=window, stride=window // 2, aggregate="max")


@dataclass
class RunOutput:
    """What :func:`train_and_test` returns: the trained model, the fit, and sigmoid scores on validation and test."""

    model: nn.Module
    fit: TrainResult
    val_scores: np.ndarray
    test_scores: np.ndarray
    seed: int = 0
    epochs: int | None = None


def train_and_test(build: Callable[[], nn.Module], data: Prepared, *, epochs: int, batch_size: int, lr: float, seed: int,
                   window_s: float = 2.5, loss_fn: Callable | None = None, patience: int | None = 10,
                   checkpoint_dir: str | Path | None = None, device: str | None = None,
                   on_epoch_end: Callable | None = None) -> RunOutput:
    """Build a model (after seeding, so its initial weights depend on ``seed`` only), train it on
    random ``window_s`` crops, keep the best validation epoch, and score val and test.

    ``build()`` returns the untrained model; ``on_epoch_end`` is passed to :func:`ecgbook.train.fit`. Scores are sigmoid outputs aggregated (max) over windows of ``window_s`` seconds with 50 %
    overlap, shape ``(records, classes)``.
    """
    seed_everything(seed)
    model = build()
    window = int(round(window_s * data.fs))
    scorer = window_scorer(data.fs, window_s)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience,
                      checkpoint_dir=checkpoint_dir, device=device)
    result = fit(model, ArrayDataset(data.X_train, data.Y_train, crop=window, seed=seed),
                 data.X_val, data.Y_val, score_fn=val_auroc, cfg=cfg, loss_fn=loss_fn,
                 predict_fn=lambda m, X, dev: scorer(m, X, device=dev), on_epoch_end=on_epoch_end)
    return RunOutput(model, result, scorer(model, data.X_val, device=device), scorer(model, data.X_test, device=device),
                     seed=seed, epochs=epochs)


def evaluate(y_true: np.ndarray, scores: np.ndarray, classes: list[str], *, y_val: np.ndarray | None = None,
             val_scores: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Test-fold metrics of one model on one task.

    Returns a dict with ``macro_auroc`` (point), ``ci_low``/``ci_high`` (95 % percentile bootstrap over
    test records; ``None`` with ``n_boot=0``, for per-seed rows), ``excluded_classes`` (no positive or no negative in the test fold), ``per_class``
    AUROC, and — when validation scores are given — sample-wise F1 and accuracy at per-class
    thresholds chosen on validation, and at the fixed threshold 0.5.
    """
    auc = macro_auroc(y_true, scores, classes)
    low = high = None
    if n_boot:
        ci = bootstrap_ci(macro_auroc, y_true, scores, n_boot=n_boot, seed=seed)  # vectorised path
        low, high = ci.low, ci.high
    out = {"macro_auroc": auc.value, "ci_low": low, "ci_high": high, "excluded_classes": auc.excluded,
           "per_class": dict(zip(classes, auc.per_class)), "n": int(len(y_true))}
    fixed = apply_thresholds(scores, np.full(len(classes), 0.5))
    out["f1_sample@0.5"] = f1_scores(y_true, fixed)["sample"]
    out["accuracy_sample@0.5"] = accuracy(y_true, fixed)["sample"]
    if y_val is not None and val_scores is not None:
        with warnings.catch_warnings():  # classes without validation positives keep 0.5 (documented)
            warnings.simplefilter("ignore", UserWarning)
            thresholds = choose_thresholds(y_val, val_scores, metric="f1", class_names=classes)
        pred = apply_thresholds(scores, thresholds)
        out["f1_sample@val"] = f1_scores(y_true, pred)["sample"]
        out["f1_macro@val"] = f1_scores(y_true, pred)["macro"]
    return out


# --------------------------------------------------------------------------- several seeds
#
# One seed on ~250 test records is noise (issue: a 12-epoch, one-seed comparison flipped sign on
# a rerun). Every comparison a chapter states rests on several seeds:
#
# - per seed: the model is trained and scored with that seed (initial weights, crops, shuffling);
#   its rows carry ``seed``;
# - mean ± sd over seeds: :func:`aggregate_rows` (rows with ``seeds: n``);
# - pooled over seeds: each test record's scores are averaged over the seeds (the seeds'
#   ensemble), then test records are resampled (:func:`pooled_scores`,
#   :func:`compare_over_seeds`). The seeds themselves are not resampled.
# - a direction ("A is higher than B") is stated only when every seed agrees on the sign and the
#   pooled interval excludes zero (:func:`direction`, :func:`comparison_sentence`).


def default_concurrent_runs() -> int:
    """Seeds trained at once by :func:`train_seeds` when ``concurrent=None``:
    ``$ECGBOOK_CONCURRENT_RUNS`` if set, else 1 (one after another).

    Raises ``ValueError`` when the variable is not a positive integer.
    """
    value = os.environ.get("ECGBOOK_CONCURRENT_RUNS", "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"ECGBOOK_CONCURRENT_RUNS={value!r}: expected a positive integer")
    return n


def _train_one_seed(build, data, seed, threads, train_kwargs):
    """Worker of :func:`train_seeds` (a separate process): ``threads`` CPU threads, model back on the CPU."""
    torch.set_num_threads(threads)
    run = train_and_test(build, data, seed=seed, **train_kwargs)
    run.model = run.model.cpu()
    return run


def train_seeds(build: Callable[[], nn.Module], data: Prepared, *, seeds: Sequence[int],
                concurrent: int | None = None, **train_kwargs) -> list[RunOutput]:
    """:func:`train_and_test` once per seed (same data, same settings); returns the runs in seed
    order, each with ``.seed``.

    ``concurrent``: how many seeds train at the same time (default :func:`default_concurrent_runs`,
    i.e. ``$ECGBOOK_CONCURRENT_RUNS`` or 1). With more than one, each seed trains in its own worker
    process (:class:`joblib.Parallel`, loky backend, which also carries the ``build`` lambdas of the
    chapters): on a GPU the small models of a chapter (0.5 M parameters for ``resnet1d_wang``)
    then share the device instead of leaving it idle between kernel launches; on a CPU each worker
    gets ``torch.get_num_threads() // concurrent`` threads. Each seed's run is the same
    computation as in one process with that thread count (tested), so the results do not depend
    on ``concurrent`` beyond what the thread count changes (see :mod:`ecgbook.train` on
    repeatability). ``on_epoch_end`` callbacks run in the workers and cannot be used then.

    Raises ``ValueError`` for no seeds, repeated seeds, ``concurrent < 1``, or an
    ``on_epoch_end`` with ``concurrent > 1``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"train_seeds: need distinct seeds, got {seeds}")
    concurrent = default_concurrent_runs() if concurrent is None else int(concurrent)
    if concurrent < 1:
        raise ValueError(f"train_seeds: concurrent must be >= 1, got {concurrent}")
    concurrent = min(concurrent, len(seeds))
    if concurrent == 1:
        return [train_and_test(build, data, seed=s, **train_kwargs) for s in seeds]
    if train_kwargs.get("on_epoch_end") is not None:
        raise ValueError("train_seeds: on_epoch_end runs in the worker processes when concurrent > 1; "
                         "use concurrent=1 to see its effects")
    from joblib import Parallel, delayed

    threads = max(1, torch.get_num_threads() // concurrent)
    return list(Parallel(n_jobs=concurrent, backend="loky")(
        delayed(_train_one_seed)(build, data, s, threads, train_kwargs) for s in seeds))


def pooled_scores(score_sets: Sequence[np.ndarray]) -> np.ndarray:
    """Average each record's scores over seeds: ``(seeds, records, classes)`` → ``(records, classes)``.

    Raises ``ValueError`` when the seeds' score arrays differ in shape or there are none.
    """
    if len(score_sets) == 0:
        raise ValueError("pooled_scores: no score arrays")
    shapes = {np.shape(s) for s in score_sets}
    if len(shapes) != 1:
        raise ValueError(f"pooled_scores: the seeds' score arrays differ in shape: {sorted(shapes)}")
    return np.mean(np.stack([np.asarray(s, dtype=np.float64) for s in score_sets]), axis=0)


@dataclass
class SeedComparison:
    """A difference A − B measured over several seeds (see :func:`compare_over_seeds`).

    ``per_seed``: ``{seed: difference}`` (A's seed *s* against B's seed *s*, or against a fixed
    reference value); ``pooled``: the difference of the seed-pooled scores; ``low``/``high``: its
    percentile interval from resampling test records; ``p_value``: two-sided paired-bootstrap
    p-value (``None`` against a published value).
    """

    per_seed: dict
    pooled: float
    low: float
    high: float
    p_value: float | None = None
    alpha: float = 0.05
    n_boot: int = 0
    against: str = "model"

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)

    @property
    def mean(self) -> float:
        """Mean over seeds of the per-seed differences."""
        return float(np.mean(list(self.per_seed.values())))

    @property
    def sd(self) -> float:
        """Sample standard deviation (ddof 1) over seeds; NaN for one seed."""
        values = list(self.per_seed.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    def as_row(self) -> dict:
        """Fields for a results row (``value`` = pooled difference)."""
        return {"value": self.pooled, "ci_low": self.low, "ci_high": self.high, "p_value": self.p_value,
                "seeds": self.n_seeds, "mean_over_seeds": self.mean, "sd_over_seeds": self.sd,
                "per_seed": {str(k): v for k, v in self.per_seed.items()},
                "evaluation": "paired bootstrap over test records, scores averaged over seeds"
                if self.against == "model" else "bootstrap over test records, scores averaged over seeds",
                "n_boot": self.n_boot}


def compare_over_seeds(y_true: np.ndarray, scores_a: Mapping[int, np.ndarray] | Sequence[np.ndarray],
                       scores_b: Mapping[int, np.ndarray] | Sequence[np.ndarray] | float, *,
                       metric_fn: Callable = macro_auroc, n_boot: int = 1000, alpha: float = 0.05,
                       seed: int = 0) -> SeedComparison:
    """Difference metric(A) − metric(B) on the same test records, over several seeds.

    Parameters
    ----------
    y_true:
        ``(records, classes)`` test labels.
    scores_a, scores_b:
        Test scores ``(records, classes)`` per seed: ``{seed: scores}`` or a list in seed order
        (then seeds are 0, 1, …). The two models must have the same seeds: seed *s* of A is
        compared with seed *s* of B. ``scores_b`` may instead be a number, a published value
        (e.g. the benchmark's macro AUROC): then the difference is metric(A) − value.
    metric_fn:
        ``metric_fn(y_true, scores) -> float`` (or a ``MacroResult``); default
        :func:`~ecgbook.metrics.macro_auroc` itself, which the bootstrap computes vectorised over
        resamples (classes without a positive or negative in the test fold left out).
    n_boot, alpha, seed:
        Bootstrap resamples of test records, 1 − confidence, and the resampling seed.

    Returns
    -------
    :class:`SeedComparison`: the per-seed differences, and the difference of the seed-pooled
    scores (each record's scores averaged over seeds) with its percentile interval — a paired
    bootstrap (:func:`ecgbook.metrics.paired_bootstrap`) when B is a model, a bootstrap interval
    of A's pooled metric minus the value when B is a number.

    Raises
    ------
    ValueError
        No seeds, the two models' seeds differ, or score shapes differ.
    """
    a = _by_seed(scores_a, "scores_a")
    if isinstance(scores_b, (int, float, np.floating)):
        ref = float(scores_b)
        per_seed = {s: float(metric_fn(y_true, v)) - ref for s, v in a.items()}
        ci = bootstrap_ci(metric_fn, y_true, pooled_scores(list(a.values())), n_boot=n_boot, alpha=alpha, seed=seed)
        return SeedComparison(per_seed, ci.point - ref, ci.low - ref, ci.high - ref, None, alpha, n_boot,
                              against="value")
    b = _by_seed(scores_b, "scores_b")
    if sorted(a) != sorted(b):
        raise ValueError(f"compare_over_seeds: the models have different seeds: {sorted(a)} vs {sorted(b)}")
    per_seed = {s: float(metric_fn(y_true, a[s])) - float(metric_fn(y_true, b[s])) for s in a}
    pa, pb = pooled_scores([a[s] for s in a]), pooled_scores([b[s] for s in a])
    res = paired_bootstrap(metric_fn, y_true, pa, pb, n_boot=n_boot, alpha=alpha, seed=seed)
    return SeedComparison(per_seed, res["diff"], res["low"], res["high"], res["p_value"], alpha, n_boot)


def _by_seed(scores, what: str) -> dict:
    if isinstance(scores, Mapping):
        out = {int(k): np.asarray(v) for k, v in scores.items()}
    else:
        out = {i: np.asarray(v) for i, v in enumerate(scores)}
    if not out:
        raise ValueError(f"compare_over_seeds: {what} has no seeds")
    return out


def direction(comparison: SeedComparison) -> int:
    """+1 (A higher), −1 (A lower) or 0 (inconclusive).

    A direction is stated only when **every** seed's difference has that sign **and**
    the pooled interval excludes zero; anything else (signs differ between seeds, a zero
    difference, an interval containing zero) is 0."""
    values = np.array(list(comparison.per_seed.values()), dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        return 0
    if (values > 0).all() and comparison.low > 0:
        return 1
    if (values < 0).all() and comparison.high < 0:
        return -1
    return 0



def comparison_sentence(comparison: SeedComparison, a: str, b: str, *, where: str = "",
                        what: str = "macro AUROC", health: Sequence[str] = ()) -> str:
    """One Markdown sentence about A − B that states a direction only when :func:`direction` does
    and no run of the two models has a blocking health warning (``health``: the warnings of both
    models' runs; a run that has not converged — kept last epoch, still rising — or that diverged
    makes the comparison inconclusive, and the sentence says so).

    ``a``/``b`` name the two sides (``b`` is e.g. ``"the baseline"`` or ``"the published 0.930"``);
    ``where`` is appended to the subject (e.g. ``"on rhythm"``). Example:
    ``"MRM-Net is **lower** than the baseline on form in all 3 seeds (−0.071 to −0.052) and the
    pooled interval excludes zero: Δ −0.061 [−0.101, −0.020]."``
    """
    c = comparison
    where = f" {where}" if where else ""
    values = list(c.per_seed.values())
    span = f"{signed(min(values))} to {signed(max(values))}" if len(values) > 1 else signed(values[0])
    seeds = f"{c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}"
    level = f"{100 * (1 - c.alpha):.0f} %"
    interval = f"Δ {signed_interval(c.pooled, c.low, c.high)}"
    p = f", p = {c.p_value:.2f}" if c.p_value is not None else ""
    d = direction(c)
    flagged = _health.flagged_runs(health)
    if flagged:
        tags = sorted({t.lower() for ts in flagged.values() for t in ts})
        return (f"{a} vs {b}{where}: **inconclusive** — {len(flagged)} run(s) not converged or failed "
                f"({', '.join(tags)}), so the budget does not support a conclusion; "
                f"{interval}{p} (seeds: {span}).")
    if d:
        word = "higher" if d > 0 else "lower"
        return (f"{a} is **{word}** than {b}{where} in {'all ' if c.n_seeds > 1 else ''}{seeds} "
                f"({what} difference {span}) and the pooled {level} interval excludes zero: "
                f"{interval}{p}.")
    if len(values) > 1 and (np.sign(values) != np.sign(values[0])).any():
        why = f"the seeds disagree on the sign ({span})"
    elif c.low <= 0 <= c.high:
        why = f"the pooled {level} interval contains zero (seeds: {span})"
    else:
        why = f"the seeds give {span}"
    return f"{a} vs {b}{where}: **inconclusive** — {why}; {interval}{p}."


def aggregate_rows(rows: Sequence[Mapping], keys: Sequence[str] = ("model", "task", "metric"),
                   extra_keys: Sequence[str] = ()) -> list[dict]:
    """Mean ± sd over seeds of result rows that carry ``seed``.

    Rows are grouped by ``keys`` (+ ``extra_keys``, e.g. ``"variant"``; missing keys count as
    ``None``); rows without a ``seed`` are ignored. Each group gives one row with the keys,
    ``value`` (mean over seeds), ``sd`` (sample sd, ddof 1; ``None`` for one seed), ``min``,
    ``max``, ``seeds`` (n), ``seed_list``, ``per_seed`` ``{seed: value}`` and
    ``evaluation: "mean over seeds"``. Rows whose value is ``None``/NaN are counted out of the
    mean and named in ``undefined_seeds``.

    Raises ``ValueError`` when a group has the same seed twice.
    """
    groups: dict[tuple, dict] = {}
    group_keys = list(keys) + list(extra_keys)
    for row in rows:
        if "seed" not in row:
            continue
        key = tuple(row.get(k) for k in group_keys)
        per_seed = groups.setdefault(key, {})
        if row["seed"] in per_seed:
            raise ValueError(f"aggregate_rows: seed {row['seed']} appears twice for {dict(zip(group_keys, key))}")
        per_seed[row["seed"]] = row.get("value")
    out = []
    for key, per_seed in groups.items():
        good = {s: float(v) for s, v in per_seed.items() if v is not None and np.isfinite(float(v))}
        values = np.array(list(good.values()))
        out.append({**dict(zip(group_keys, key)), "evaluation": "mean over seeds",
                    "value": float(values.mean()) if values.size else None,
                    "sd": float(values.std(ddof=1)) if values.size > 1 else None,
                    "min": float(values.min()) if values.size else None,
                    "max": float(values.max()) if values.size else None,
                    "seeds": len(good), "seed_list": sorted(good), "per_seed": {str(s): v for s, v in good.items()},
                    "undefined_seeds": sorted(set(per_seed) - set(good))})
    return out


def mean_sd(value: float | None, sd: float | None, digits: int = 3) -> str:
    """``"0.871 ± 0.004"`` (``"0.871"`` when sd is ``None``, ``"–"`` when the value is)."""
    if value is None or not np.isfinite(value):
        return "–"
    if sd is None or not np.isfinite(sd):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {sd:.{digits}f}"


def seed_health(runs: Sequence[RunOutput], y_test: np.ndarray, *, name: str = "",
                max_epochs: int | None = None) -> list[str]:
    """Run-health warnings for one model on one task over its seeds: every seed's history
    (:func:`ecgbook.health.check_history`; budget ``max_epochs``, default each run's ``epochs``)
    and outlying seeds by test macro AUROC (:func:`ecgbook.health.check_seeds`)."""
    out = []
    for run in runs:
        out += health.check_history(run.fit.history, best_epoch=run.fit.best_epoch,
                                    name=f"{name}, seed {run.seed}" if name else f"seed {run.seed}",
                                    max_epochs=max_epochs or run.epochs)
    values = {run.seed: macro_auroc(y_test, run.test_scores).value for run in runs}
    out += health.check_seeds(values, name=name)
    return out


def auroc_row(y: np.ndarray, scores: np.ndarray, classes: Sequence[str], *, n_boot: int, boot_seed: int = 0,
              split: str = "test", **fields) -> dict:
    """One result row: the test macro AUROC of ``scores`` ``(records, classes)`` against ``y`` with its
    95 % bootstrap interval over records (``n_boot`` resamples, ``boot_seed``), the record count, the
    classes left out (no positive or no negative in ``y``) and ``fields`` (e.g. ``model``, ``task``,
    ``evaluation``, ``label_fraction``, ``seed``). The row shape the SSL chapters write."""
    auc = macro_auroc(y, scores, classes)
    ci = bootstrap_ci(macro_auroc, y, scores, n_boot=n_boot, seed=boot_seed)
    return {"metric": "macro_auroc", "value": auc.value, "ci_low": ci.low, "ci_high": ci.high, "split": split,
            "n": int(len(y)), "excluded_classes": list(auc.excluded), **fields}


#: Test-fold metrics of :func:`evaluate` written per seed by :func:`seed_rows`.
SEED_METRICS = ("macro_auroc", "f1_sample@0.5", "accuracy_sample@0.5", "f1_sample@val", "f1_macro@val")


def seed_rows(model: str, task: str, data: Prepared, runs: Sequence[RunOutput], *, n_boot: int = 1000,
              seed: int = 0, **fields) -> list[dict]:
    """Result rows of one model on one task over its seeds.

    Three kinds, told apart by ``evaluation``:

    - ``"per seed"``: every metric of :const:`SEED_METRICS` for each run, with ``seed`` (and, for
      ``macro_auroc``, ``best_epoch``, ``epochs_run``, ``val_macro_auroc``, ``excluded_classes``);
    - ``"mean over seeds"``: :func:`aggregate_rows` of those (``value`` mean, ``sd``, ``seeds: n``);
    - ``"pooled over seeds"``: the metrics of the seed-averaged test scores, macro AUROC with a
      bootstrap interval over test records (``n_boot`` resamples, ``seed``), ``seeds: n``.

    ``fields`` are added to every row (e.g. ``variant="released"``). Returns the rows.
    """
    rows = []
    base = {"model": model, "task": task, "split": "test (fold 10)", "n": int(len(data.Y_test)), **fields}
    for run in runs:
        s = evaluate(data.Y_test, run.test_scores, data.classes, y_val=data.Y_val, val_scores=run.val_scores,
                     n_boot=0)
        for metric in SEED_METRICS:
            row = {**base, "metric": metric, "value": s[metric], "seed": run.seed, "evaluation": "per seed"}
            if metric == "macro_auroc":
                row.update(best_epoch=run.fit.best_epoch, epochs_run=len(run.fit.history),
                           val_macro_auroc=run.fit.best_score, excluded_classes=s["excluded_classes"])
            rows.append(row)
    aggregated = aggregate_rows(rows, keys=("model", "task", "metric"), extra_keys=tuple(fields))
    rows += [{**base, **row} for row in aggregated]
    pooled = evaluate(data.Y_test, pooled_scores([r.test_scores for r in runs]), data.classes, y_val=data.Y_val,
                      val_scores=pooled_scores([r.val_scores for r in runs]), n_boot=n_boot, seed=seed)
    for metric in SEED_METRICS:
        row = {**base, "metric": metric, "value": pooled[metric], "seeds": len(runs),
               "evaluation": "pooled over seeds"}
        if metric == "macro_auroc":
            row.update(ci_low=pooled["ci_low"], ci_high=pooled["ci_high"], n_boot=n_boot,
                       excluded_classes=pooled["excluded_classes"])
        rows.append(row)
    return rows


def stored_scores(data: Prepared, runs: Sequence[RunOutput]) -> dict:
    """The runs' validation and test scores with the records they belong to, JSON-friendly, so that
    another chapter can compare its models with these runs on the same records without training
    them again (:func:`runs_from_stored`).

    Returns ``{"classes", "val_ids", "test_ids", "seeds": {seed: {"val", "test", "history",
    "best_epoch", "best_score", "epochs"}}}`` (scores as nested lists ``(records, classes)``).
    Raises ``ValueError`` when ``data`` has no record ids.
    """
    if not data.ids:
        raise ValueError("stored_scores: the prepared data carry no record ids (use protocol.prepare)")
    return {"classes": list(data.classes), "val_ids": data.ids["val"].tolist(), "test_ids": data.ids["test"].tolist(),
            "seeds": {str(r.seed): {"val": np.asarray(r.val_scores, dtype=float).tolist(),
                                    "test": np.asarray(r.test_scores, dtype=float).tolist(),
                                    "history": r.fit.history, "best_epoch": r.fit.best_epoch,
                                    "best_score": r.fit.best_score, "epochs": r.epochs}
                      for r in runs}}


def runs_from_stored(stored: Mapping, data: Prepared, seeds: Sequence[int], *, what: str = "stored runs"
                     ) -> list[RunOutput]:
    """Rebuild the :class:`RunOutput` of each seed from :func:`stored_scores` (``model`` is
    ``None``), after checking that they were made on exactly ``data``'s validation and test
    records and classes.

    Raises ``ValueError`` naming ``what`` and the first mismatch (other records, other classes,
    a missing seed) — the caller then trains the model instead.
    """
    if list(stored.get("classes", [])) != list(data.classes):
        raise ValueError(f"{what}: classes differ from this task's")
    for split in ("val", "test"):
        if not data.ids or list(map(int, stored.get(f"{split}_ids", []))) != list(map(int, data.ids[split])):
            raise ValueError(f"{what}: {split} records differ from this run's")
    runs = []
    for seed in seeds:
        r = stored.get("seeds", {}).get(str(seed))
        if r is None:
            raise ValueError(f"{what}: no run with seed {seed}")
        fit = TrainResult(history=list(r["history"]), best_epoch=int(r["best_epoch"]),
                          best_score=float(r["best_score"]))
        runs.append(RunOutput(None, fit, np.asarray(r["val"]), np.asarray(r["test"]), seed=int(seed),
                              epochs=r.get("epochs")))
    return runs
