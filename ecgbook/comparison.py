"""One interface for every technique, identical leak-free splits, and the statistics of a comparison.

The side-by-side chapter (``chapters/07_side_by_side.md``) compares the book's techniques on the
same PTB-XL records. Every technique package offers its methods as :class:`Method` objects; this
module gives them the same data, splits, label fractions and lead sets, and turns their test scores
into result rows (schema ``ecgbook.results/1``).

Splits (issue "side by side"; PTB-XL's ``strat_fold``, Wagner et al. 2020):

- **Held-out folds** :data:`HELD_OUT_FOLDS` (7–10) never enter self-supervised pre-training:
  :meth:`ComparisonData.pretraining_records` is folds 1–6. Each pre-training runs once per method.
- **Rotation**: the test fold rotates over the held-out folds; the validation fold is another
  held-out fold (:func:`val_fold_of`: 10 → 9, 9 → 8, 8 → 7, 7 → 10), never the test one; the other
  eight folds train. Test fold 10 / validation fold 9 is the benchmark's split (Strodthoff et al.
  2021). Test scores of the rotations are pooled out of fold (each held-out record scored once, by
  the models that did not train on it).
- **Label fractions** are nested and patient-wise within the training folds
  (:func:`ecgbook.ssl.label_fraction_subsets`, one fixed order of patients, seed
  :data:`SUBSET_SEED`, the same for every method and training seed).
- **Lead sets** :data:`~ecgbook.data.records.LEAD_SUBSETS` (12, 6, 3, 2, 1 leads). Each method
  declares how it sees a lead set (:attr:`Method.lead_input`): supervised models are trained on the
  lead set's channels; pre-trained encoders see the 12-lead input with the absent leads set to zero.

Statistics (:func:`cell_rows`): per cell (method × label fraction × lead set) the macro AUROC of the
pooled out-of-fold scores per seed, their mean ± sd over seeds, the seed-averaged scores with a
95 % bootstrap interval over records, and paired differences (:func:`ecgbook.protocol.compare_over_seeds`)
against the baseline and against the method's random-initialisation control, with the run-health
warnings of :mod:`ecgbook.health` for every run.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from torch import nn

from . import health
from .data.records import LEAD_SUBSETS, lead_indices
from .metrics import macro_auroc
from .models.common import count_parameters
from .models.resnet1d import ResNet1dWang
from .protocol import aggregate_rows, auroc_row, compare_over_seeds, direction, pooled_scores, prepare_arrays, \
    train_and_test
from .results import signed_interval
from .ssl import label_fraction_subsets

#: PTB-XL folds never seen by self-supervised pre-training; the test fold rotates over them.
HELD_OUT_FOLDS = (7, 8, 9, 10)
#: Seed of the one patient order that defines the nested label-fraction subsets.
SUBSET_SEED = 0
#: What a lead set means to a method (:attr:`Method.lead_input`).
LEAD_INPUTS = ("lead set", "zero-filled")
#: The kinds of method (:attr:`Method.family`).
FAMILIES = ("supervised", "linear probe", "fine-tune", "frozen features")


def val_fold_of(test_fold: int) -> int:
    """The validation fold paired with ``test_fold``: the previous held-out fold, cyclically
    (10 → 9, 9 → 8, 8 → 7, 7 → 10). Raises ``ValueError`` for a fold outside :data:`HELD_OUT_FOLDS`."""
    if test_fold not in HELD_OUT_FOLDS:
        raise ValueError(f"test_fold {test_fold}: the test fold must be one of the held-out folds {HELD_OUT_FOLDS}")
    i = HELD_OUT_FOLDS.index(test_fold)
    return HELD_OUT_FOLDS[i - 1]


@dataclass(frozen=True)
class Split:
    """One rotation: indices into :class:`ComparisonData` of the training, validation and test records."""

    test_fold: int
    val_fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Cell:
    """What one run is asked for: a label fraction of the training folds, a lead set (a key of
    :data:`~ecgbook.data.records.LEAD_SUBSETS`) and a training seed."""

    label_fraction: float
    leads: int
    seed: int

    @property
    def lead_names(self) -> tuple[str, ...]:
        return LEAD_SUBSETS[self.leads]


@dataclass
class ComparisonData:
    """The records every method sees: one PTB-XL task at 100 Hz.

    ``X`` ``(records, 12, samples)`` float32 mV (not standardised; each method standardises with its
    training records, or not, as its paper does); ``Y`` ``(records, classes)``; ``ecg_id``,
    ``patient_id``, ``strat_fold`` ``(records,)``; ``fs`` Hz; ``task`` (e.g. ``"superdiagnostic"``).
    """

    X: np.ndarray
    Y: np.ndarray
    classes: list[str]
    ecg_id: np.ndarray
    patient_id: np.ndarray
    strat_fold: np.ndarray
    fs: int
    task: str
    provenance: dict = field(default_factory=dict)

    @classmethod
    def from_task(cls, task) -> "ComparisonData":
        """From a :class:`ecgbook.data.ptbxl.PTBXLTask` (signals loaded into memory)."""
        return cls(np.asarray(task.X, dtype=np.float32), np.asarray(task.Y), list(task.classes), np.asarray(task.ecg_id),
                   np.asarray(task.patient_id), np.asarray(task.strat_fold), int(task.fs), task.task,
                   dict(task.provenance))

    def __len__(self) -> int:
        return len(self.Y)

    def pretraining_records(self) -> np.ndarray:
        """Indices of the records self-supervised pre-training may use: every fold but :data:`HELD_OUT_FOLDS`."""
        return np.flatnonzero(~np.isin(self.strat_fold, HELD_OUT_FOLDS))

    def split(self, test_fold: int) -> Split:
        """The rotation with ``test_fold`` (validation fold :func:`val_fold_of`). Raises ``ValueError``
        when a split has no records (a very small subset of PTB-XL)."""
        val_fold = val_fold_of(test_fold)
        train = np.flatnonzero(~np.isin(self.strat_fold, (test_fold, val_fold)))
        val, test = np.flatnonzero(self.strat_fold == val_fold), np.flatnonzero(self.strat_fold == test_fold)
        empty = [name for name, idx in (("train", train), ("validation", val), ("test", test)) if len(idx) == 0]
        if empty:
            raise ValueError(f"ComparisonData.split({test_fold}): no {' or '.join(empty)} records among the "
                             f"{len(self)} present (strat_folds {sorted(set(map(int, self.strat_fold)))})")
        return Split(int(test_fold), int(val_fold), train, val, test)

    def labelled(self, split: Split, fraction: float) -> np.ndarray:
        """The training records whose labels a run at ``fraction`` may use: nested, patient-wise
        subsets of ``split.train`` (:func:`ecgbook.ssl.label_fraction_subsets`, seed :data:`SUBSET_SEED`)."""
        subset = label_fraction_subsets(self.patient_id[split.train], (float(fraction),), seed=SUBSET_SEED)
        return split.train[subset[float(fraction)]]


@dataclass
class MethodRun:
    """What one run of a method returns.

    ``val_scores`` ``(validation records, classes)`` and ``test_scores`` ``(test records, classes)``:
    per-record scores (higher = more likely), in the order of ``split.val`` / ``split.test``.
    ``history``: per-epoch rows of :func:`ecgbook.train.fit` (``val_score``, losses), ``None`` for a
    method that does not train by epochs (a linear probe); ``best_epoch``, ``epochs`` (budget);
    ``seconds``: wall time of the run; ``samples_per_s``: training throughput when measured.
    """

    val_scores: np.ndarray
    test_scores: np.ndarray
    history: list[dict] | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    seconds: float = 0.0
    samples_per_s: float | None = None
    note: str = ""


class Method(ABC):
    """The common interface of the side-by-side comparison.

    A technique package offers its methods as subclasses. Attributes: ``name`` (unique, e.g.
    ``"resnet1d_wang"``, ``"dino_gate probe"``), ``family`` (one of :data:`FAMILIES`), ``lead_input``
    (one of :data:`LEAD_INPUTS`), ``control`` (the ``name`` of this method's random-initialisation
    control, or ``None``), ``chapter`` (the chapter it comes from) and ``description`` (one line for
    the page, saying what is an adaptation).
    """

    name: str = ""
    family: str = "supervised"
    lead_input: str = "lead set"
    control: str | None = None
    chapter: str = ""
    description: str = ""

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        """Self-supervised pre-training on ``records`` (indices into ``data``; labels must not be
        used), once, before any :meth:`run`. Returns information for the page (e.g. ``seconds``,
        ``history``, ``best_epoch``, ``epochs``). Supervised methods do nothing."""
        return {}

    @abstractmethod
    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        """Train on the labelled records ``train`` (indices into ``data``, a subset of ``split.train``)
        at ``cell`` (lead set, seed), select on ``split.val`` only, and score ``split.val`` and
        ``split.test``."""

    def parameters(self, n_classes: int, leads: int = 12) -> int | None:
        """Trainable + frozen parameters of the model a run builds (``None`` when not defined)."""
        return None


class SupervisedMethod(Method):
    """A network trained from scratch on the lead set's channels with the PTB-XL benchmark protocol
    (:func:`ecgbook.protocol.train_and_test`: random 2.5-s crops, epoch chosen on validation macro
    AUROC, max over 2.5-s windows with 50 % overlap), input standardised per lead with the labelled
    training records' statistics.

    ``build(n_leads, n_classes) -> nn.Module``; ``epochs``, ``batch_size``, ``lr``, ``patience`` and
    ``loss_fn`` (``None``: BCE on the logits) as in :func:`~ecgbook.protocol.train_and_test`.
    """

    family = "supervised"
    lead_input = "lead set"

    def __init__(self, name: str, build: Callable[[int, int], nn.Module], *, epochs: int, batch_size: int, lr: float,
                 patience: int | None = None, loss_fn: Callable | None = None, chapter: str = "",
                 description: str = ""):
        self.name, self.build, self.chapter, self.description = name, build, chapter, description
        self.epochs, self.batch_size, self.lr, self.patience = int(epochs), int(batch_size), float(lr), patience
        self.loss_fn = loss_fn

    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        rows = lead_indices(cell.lead_names)
        X = data.X[:, rows]
        prepared = prepare_arrays(X, data.Y, {"train": train, "val": split.val, "test": split.test}, data.classes,
                                  data.fs, what=f"{self.name} on test fold {split.test_fold}")
        t0 = time.perf_counter()
        out = train_and_test(lambda: self.build(len(rows), len(data.classes)), prepared, epochs=self.epochs,
                             batch_size=self.batch_size, lr=self.lr, seed=cell.seed, patience=self.patience,
                             loss_fn=self.loss_fn)
        return MethodRun(out.val_scores, out.test_scores, out.fit.history, out.fit.best_epoch, self.epochs,
                         time.perf_counter() - t0, out.fit.samples_per_s)

    def parameters(self, n_classes: int, leads: int = 12) -> int:
        return count_parameters(self.build(len(LEAD_SUBSETS[leads]), n_classes))


# --------------------------------------------------------------------------------------------- the grid


def grid_cells(fractions: Sequence[float], lead_sets: Sequence[int], seeds: Sequence[int],
               fraction_leads: Sequence[int] = (12, 1)) -> list[Cell]:
    """The cells of the comparison, for every seed: every label fraction at each lead set of
    ``fraction_leads`` that is in ``lead_sets`` (the label-fraction curve at 12 leads and at one lead),
    and every lead set at 100 % of the labels (the lead-set curve). Raises ``ValueError`` for an
    unknown lead set or a fraction outside (0, 1]."""
    bad = [n for n in list(lead_sets) + list(fraction_leads) if n not in LEAD_SUBSETS]
    if bad:
        raise ValueError(f"grid_cells: lead sets {bad} unknown; expected some of {sorted(LEAD_SUBSETS)}")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"grid_cells: label fractions {bad} outside (0, 1]")
    if not lead_sets or not fractions or not seeds:
        raise ValueError("grid_cells: need at least one label fraction, lead set and seed")
    pairs = [(float(f), int(n)) for n in sorted(set(lead_sets), reverse=True) if n in fraction_leads
             for f in sorted(fractions)]
    pairs += [(1.0, int(n)) for n in sorted(set(lead_sets), reverse=True)]
    pairs = list(dict.fromkeys(pairs))
    return [Cell(f, n, int(s)) for f, n in pairs for s in seeds]


def baseline(*, epochs: int, batch_size: int, lr: float, patience: int | None = None) -> SupervisedMethod:
    """The book's supervised baseline, ``resnet1d_wang`` (chapter 02; Strodthoff et al. 2021), as a
    :class:`SupervisedMethod` on the lead set's channels."""
    return SupervisedMethod("resnet1d_wang", lambda leads, classes: ResNet1dWang(n_leads=leads, n_classes=classes),
                            epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, chapter="02",
                            description="1-D residual network trained from scratch on the lead set "
                                        "(the PTB-XL benchmark's protocol)")


@dataclass
class Grid:
    """Every run of a comparison: ``runs[(method, label_fraction, leads, seed, test_fold)]`` →
    :class:`MethodRun`; ``pretraining[method]``: what :meth:`Method.pretrain` returned; ``methods``:
    name → :class:`Method`; ``test_folds``; ``y_test[test_fold]`` and ``ids_test[test_fold]`` (ecg_id)."""

    methods: dict
    test_folds: list[int]
    runs: dict = field(default_factory=dict)
    pretraining: dict = field(default_factory=dict)
    y_test: dict = field(default_factory=dict)
    ids_test: dict = field(default_factory=dict)
    train_records: dict = field(default_factory=dict)

    def cells(self) -> list[tuple[float, int]]:
        """``(label_fraction, leads)`` pairs that ran, in grid order."""
        return list(dict.fromkeys((k[1], k[2]) for k in self.runs))

    def seeds(self, method: str, fraction: float, leads: int) -> list[int]:
        return sorted({k[3] for k in self.runs if k[:3] == (method, fraction, leads)})

    def pooled(self, method: str, fraction: float, leads: int, seed: int) -> np.ndarray:
        """Out-of-fold test scores ``(pooled test records, classes)``: the test scores of every rotation,
        concatenated in :attr:`test_folds` order (the order of :meth:`y`). Raises ``KeyError`` when a
        rotation is missing."""
        return np.concatenate([self.runs[method, fraction, leads, seed, t].test_scores for t in self.test_folds])

    def y(self) -> np.ndarray:
        """Labels of the pooled test records ``(records, classes)``."""
        return np.concatenate([self.y_test[t] for t in self.test_folds])

    def ecg_ids(self) -> np.ndarray:
        return np.concatenate([self.ids_test[t] for t in self.test_folds])


def run_grid(methods: Sequence[Method], data: ComparisonData, *, test_folds: Sequence[int], cells: Sequence[Cell],
             progress: Callable[[str], None] | None = None) -> Grid:
    """Pre-train every method once on :meth:`ComparisonData.pretraining_records`, then run every
    method on every rotation and cell. Raises ``ValueError`` for repeated method names or an unknown
    family / lead input."""
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"run_grid: method names repeat: {names}")
    for m in methods:
        if m.family not in FAMILIES or m.lead_input not in LEAD_INPUTS:
            raise ValueError(f"run_grid: method {m.name!r} has family {m.family!r} / lead_input {m.lead_input!r}; "
                             f"expected one of {FAMILIES} / {LEAD_INPUTS}")
    say = progress or (lambda text: None)
    grid = Grid({m.name: m for m in methods}, [int(t) for t in test_folds])
    records = data.pretraining_records()
    for m in methods:
        t0 = time.perf_counter()
        info = m.pretrain(data, records)
        if info:
            info = {"seconds": time.perf_counter() - t0, **info}
            grid.pretraining[m.name] = info
            say(f"pre-trained {m.name} on {len(records)} records in {info['seconds']:.0f} s")
    for t in grid.test_folds:
        split = data.split(t)
        grid.y_test[t], grid.ids_test[t] = data.Y[split.test], data.ecg_id[split.test]
        for cell in cells:
            train = data.labelled(split, cell.label_fraction)
            grid.train_records[t, cell.label_fraction] = int(len(train))
            for m in methods:
                run = m.run(data, split, train, cell)
                if run.test_scores.shape != (len(split.test), len(data.classes)):
                    raise ValueError(f"{m.name}: test scores of shape {run.test_scores.shape}, expected "
                                     f"{(len(split.test), len(data.classes))}")
                grid.runs[m.name, cell.label_fraction, cell.leads, cell.seed, t] = run
                say(f"{m.name}: fold {t}, {100 * cell.label_fraction:g} % labels, {cell.leads} lead(s), seed {cell.seed}: "
                    f"{run.seconds:.0f} s")
    return grid


# --------------------------------------------------------------------------------------------- statistics


def run_health(grid: Grid, method: str, fraction: float, leads: int) -> list[str]:
    """Run-health warnings (:func:`ecgbook.health.check_history`) of every run of one cell; a run without
    a per-epoch history (a linear probe) has none."""
    out = []
    for (name, f, n, seed, t), run in sorted(grid.runs.items(), key=lambda kv: kv[0]):
        if (name, f, n) != (method, fraction, leads) or not run.history:
            continue
        out += health.check_history(run.history, best_epoch=run.best_epoch, max_epochs=run.epochs,
                                    name=f"{name}, {100 * f:g} % labels, {n} lead(s), seed {seed}, test fold {t}")
    return out


def cell_rows(grid: Grid, classes: Sequence[str], *, baseline: str, n_boot: int, task: str = "",
              boot_seed: int = 0) -> list[dict]:
    """Result rows of every cell, all on the pooled out-of-fold test records.

    ``evaluation`` tells them apart: ``"per seed"`` (macro AUROC of one seed's pooled scores, with the
    run's health tags), ``"mean over seeds"``, ``"pooled over seeds"`` (seed-averaged scores, 95 %
    bootstrap interval), ``"vs baseline"`` / ``"vs random init"`` (``metric: delta_macro_auroc``,
    paired bootstrap, ``direction`` +1/−1/0, ``blocked`` when a run of either side failed a blocking
    health check). Every row carries ``model``, ``family``, ``lead_input``, ``label_fraction``,
    ``leads``, ``test_folds``, ``n`` and ``task``.
    """
    y = grid.y()
    folds = ", ".join(map(str, grid.test_folds))
    rows: list[dict] = []
    warnings: dict[tuple, list[str]] = {}
    for fraction, leads in grid.cells():
        for name, method in grid.methods.items():
            seeds = grid.seeds(name, fraction, leads)
            if not seeds:
                continue
            base = {"model": name, "family": method.family, "lead_input": method.lead_input, "task": task,
                    "label_fraction": fraction, "leads": leads, "test_folds": folds,
                    "split": f"out-of-fold test (folds {folds})"}
            warn = run_health(grid, name, fraction, leads)
            warnings[name, fraction, leads] = warn
            scores = {s: grid.pooled(name, fraction, leads, s) for s in seeds}
            per_seed = []
            for s in seeds:
                runs = [grid.runs[name, fraction, leads, s, t] for t in grid.test_folds]
                auc = macro_auroc(y, scores[s], classes)
                per_seed.append({**base, "metric": "macro_auroc", "value": auc.value, "seed": s, "n": int(len(y)),
                                 "evaluation": "per seed", "excluded_classes": list(auc.excluded),
                                 "seconds": float(sum(r.seconds for r in runs)),
                                 "samples_per_s": _mean([r.samples_per_s for r in runs]),
                                 "best_epochs": [r.best_epoch for r in runs], "epochs": runs[0].epochs})
            rows += per_seed
            rows += [{**base, **r, "n": int(len(y))} for r in aggregate_rows(per_seed, keys=("model", "metric"))]
            flagged = health.flagged_runs(warn)
            rows.append({**auroc_row(y, pooled_scores([scores[s] for s in seeds]), classes, n_boot=n_boot,
                                     boot_seed=boot_seed, split=base["split"], **{k: v for k, v in base.items()
                                                                                    if k != "split"}),
                         "evaluation": "pooled over seeds", "seeds": len(seeds), "n_boot": n_boot,
                         "flagged_runs": len(flagged), "runs": len(seeds) * len(grid.test_folds),
                         "health": sorted({t for ts in flagged.values() for t in ts})})
    for fraction, leads in grid.cells():
        for name, method in grid.methods.items():
            for against, other in (("vs baseline", baseline), ("vs random init", method.control)):
                if other is None or other == name or (other, fraction, leads) not in warnings \
                        or (name, fraction, leads) not in warnings:
                    continue
                seeds = grid.seeds(name, fraction, leads)
                if seeds != grid.seeds(other, fraction, leads):
                    continue
                cmp = compare_over_seeds(y, {s: grid.pooled(name, fraction, leads, s) for s in seeds},
                                         {s: grid.pooled(other, fraction, leads, s) for s in seeds},
                                         n_boot=n_boot, seed=boot_seed)
                blocked = health.flagged_runs(warnings[name, fraction, leads] + warnings[other, fraction, leads])
                rows.append({"metric": "delta_macro_auroc", **cmp.as_row(), "model": name, "model_b": other,
                             "family": method.family, "lead_input": method.lead_input, "task": task,
                             "label_fraction": fraction, "leads": leads, "test_folds": folds, "n": int(len(y)),
                             "split": f"out-of-fold test (folds {folds})", "evaluation": against,
                             "direction": direction(cmp), "blocked": bool(blocked)})
    return rows


def _mean(values) -> float | None:
    good = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(good)) if good else None


def best_method(rows: Sequence[Mapping], fraction: float, leads: int, *, grid: Grid | None = None,
                classes: Sequence[str] | None = None, n_boot: int = 1000, boot_seed: int = 0) -> dict:
    """Which method wins the cell ``(fraction, leads)``, and whether it wins significantly.

    Among the methods whose runs all passed the health checks, the highest pooled-over-seeds macro
    AUROC wins; with ``grid`` (and ``classes``), it is compared with every other healthy method by a
    paired bootstrap over seeds (:func:`~ecgbook.protocol.compare_over_seeds`). Returns
    ``{"best", "value", "runner_up", "margin", "low", "high", "significant", "tied", "unhealthy"}``:
    ``tied`` lists the methods the winner does not beat significantly (every seed and the interval),
    ``significant`` is true when none is tied, ``unhealthy`` the methods left out for a failed run.
    ``best`` is ``None`` when no method of the cell is healthy.
    """
    pooled = [r for r in rows if r.get("evaluation") == "pooled over seeds" and r.get("label_fraction") == fraction
              and r.get("leads") == leads]
    healthy = sorted((r for r in pooled if not r.get("flagged_runs")), key=lambda r: -r["value"])
    unhealthy = sorted(r["model"] for r in pooled if r.get("flagged_runs"))
    out = {"best": None, "value": None, "runner_up": None, "margin": None, "low": None, "high": None,
           "significant": False, "tied": [], "unhealthy": unhealthy, "label_fraction": fraction, "leads": leads}
    if not healthy:
        return out
    best = healthy[0]
    out.update(best=best["model"], value=best["value"])
    if len(healthy) == 1:
        return out
    second = healthy[1]
    out.update(runner_up=second["model"], margin=best["value"] - second["value"])
    if grid is None:
        return out
    y = grid.y()
    seeds = grid.seeds(best["model"], fraction, leads)
    for other in healthy[1:]:
        if grid.seeds(other["model"], fraction, leads) != seeds:
            out["tied"].append(other["model"])
            continue
        cmp = compare_over_seeds(y, {s: grid.pooled(best["model"], fraction, leads, s) for s in seeds},
                                 {s: grid.pooled(other["model"], fraction, leads, s) for s in seeds},
                                 n_boot=n_boot, seed=boot_seed)
        if other is second:
            out.update(low=cmp.low, high=cmp.high, margin=cmp.pooled)
        if direction(cmp) <= 0:
            out["tied"].append(other["model"])
    out["significant"] = not out["tied"]
    return out


def best_rows(bests: Sequence[Mapping], *, task: str = "") -> list[dict]:
    """Result rows of the winner-vs-runner-up differences of :func:`best_method` (one per cell that has a
    paired interval; ``evaluation: "winner vs runner-up"``), so that every interval the page prints
    is a row of its results file."""
    return [{"metric": "delta_macro_auroc", "evaluation": "winner vs runner-up", "model": b["best"],
             "model_b": b["runner_up"], "value": b["margin"], "ci_low": b["low"], "ci_high": b["high"],
             "label_fraction": b["label_fraction"], "leads": b["leads"], "significant": b["significant"],
             "task": task} for b in bests if b.get("low") is not None]


def verdict_text(best: Mapping) -> str:
    """One sentence for a cell of the which-method-when figure, from :func:`best_method`."""
    where = f"{100 * best['label_fraction']:g} % of the labels, {best['leads']} lead{'s' if best['leads'] != 1 else ''}"
    if best["best"] is None:
        return f"{where}: no method's runs passed the health checks; no conclusion."
    if best["runner_up"] is None:
        return f"{where}: only {best['best']} passed the health checks ({best['value']:.3f})."
    if best["significant"]:
        return (f"{where}: **{best['best']}** ({best['value']:.3f}), ahead of every other healthy method; "
                f"over {best['runner_up']}: Δ {signed_interval(best['margin'], best['low'], best['high'])}.")
    tied = ", ".join(best["tied"])
    interval = (f" (over {best['runner_up']}: Δ {signed_interval(best['margin'], best['low'], best['high'])})"
                if best["low"] is not None else "")
    return (f"{where}: no significant difference between {best['best']} ({best['value']:.3f}) and {tied}"
            f"{interval}.")
