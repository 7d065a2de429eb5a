"""The chapter's experiments as result rows (schema ``ecgbook.results/1``): the frozen encoders and
their pooled features, the linear probe per label fraction, the fine-tuning jobs, the paired
comparisons, the gate weights per class, the threshold optimism and a 2-D picture of the features.

Every function returns rows or plain dicts that ``chapters/04_multimodal_ssl.md`` writes with
:func:`ecgbook.results.write_results`; the page keeps the narrative and the calls that train.
``data`` is ``{task: Prepared}`` (:class:`ecgbook.protocol.Prepared`, folds 1–8 / 9 / 10), and test
scores are keyed ``(method, evaluation, task, label_fraction, seed)``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..metrics import macro_auroc, paired_bootstrap
from ..models.fusion import Spectrogram
from ..protocol import auroc_row
from ..ssl import linear_probe, pooled_features
from ..train import seed_everything
from .method import SpectrogramEncoder, build_encoder, gate_weights, threshold_optimism

#: The regularisation strengths the linear probe chooses from on fold 9.
PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0)

#: The paired comparisons of the chapter, ``(a, b)``: Δ = a − b on the same test records.
PAIRS = (
    ("dino_gate", "random_gate"),
    ("dino_gate", "baseline"),
    ("dino_gate", "dino_concat"),
    ("dino_gate", "dino_time"),
    ("dino_gate", "dino_spec"),
    ("dino_time", "random_time"),
    ("dino_time", "simclr_time"),
    ("dino_spec", "random_spec"),
)

SPLIT = "test (fold 10)"


def frozen_encoders(pretrained: Mapping, spectrogram: Spectrogram, *, size: str, simclr: bool) -> dict[str, nn.Module]:
    """``{name: frozen encoder}`` for the linear probe: the DINO encoders of both modalities, the same
    architectures from random initialisation (each built right after ``seed_everything(0)``) and,
    with ``simclr``, the SimCLR time-series encoder. ``pretrained[name].encoder`` holds a pre-trained
    encoder (``dino_time``, ``dino_spec``, ``simclr_time``); spectrogram encoders are wrapped in
    :class:`SpectrogramEncoder` so that every encoder takes ``(batch, leads, samples)``."""
    random_encoders = {}
    for modality in ("time", "spec"):
        seed_everything(0)
        random_encoders[f"random_{modality}"] = build_encoder(modality, size)
    frozen = {
        "dino_time": pretrained["dino_time"].encoder,
        "dino_spec": SpectrogramEncoder(spectrogram, pretrained["dino_spec"].encoder),
        "random_time": random_encoders["random_time"],
        "random_spec": SpectrogramEncoder(spectrogram, random_encoders["random_spec"]),
    }
    if simclr:
        frozen["simclr_time"] = pretrained["simclr_time"].encoder
    return frozen


def probe_features(frozen: Mapping[str, nn.Module], data: Mapping, *,
                   device: torch.device | str | None = None) -> dict[tuple[str, str], list[np.ndarray]]:
    """``{(task, encoder name): [F_train, F_val, F_test]}``: each record's mean over its 2.5-s windows
    (:func:`ecgbook.ssl.pooled_features`), plus the concatenations ``dino_concat`` and
    ``random_concat`` of the two modalities' features."""
    features = {}
    for task, d in data.items():
        for name, enc in frozen.items():
            features[task, name] = [pooled_features(enc, X, device=device) for X in (d.X_train, d.X_val, d.X_test)]
        for a, b, name in (("dino_time", "dino_spec", "dino_concat"), ("random_time", "random_spec", "random_concat")):
            features[task, name] = [np.concatenate([fa, fb], 1)
                                    for fa, fb in zip(features[task, a], features[task, b])]
    return features


def probe_rows(features: Mapping, data: Mapping, subsets: Mapping, *, n_boot: int) -> tuple[list[dict], dict]:
    """The linear probe (:func:`ecgbook.ssl.linear_probe`, ``C`` from :data:`PROBE_CS` on fold 9) of
    every feature set at every label fraction ``subsets[task][fraction]`` (indices into the training
    fold). Returns ``(rows, test_scores)``: one macro-AUROC row per (task, encoder, fraction), with
    ``C``, ``val_macro_auroc``, ``train_records`` and the classes with one label only in the subset
    (``constant_classes``), and the test scores keyed ``(name, "linear_probe", task, fraction, 0)``."""
    rows, test_scores = [], {}
    for (task, name), (Ft, Fv, Fs) in features.items():
        d = data[task]
        for f, idx in subsets[task].items():
            r = linear_probe(Ft[idx], d.Y_train[idx], Fv, d.Y_val, Fs, Cs=PROBE_CS)
            test_scores[name, "linear_probe", task, f, 0] = r.test_scores
            rows.append(auroc_row(d.Y_test, r.test_scores, d.classes, n_boot=n_boot, split=SPLIT, model=name,
                                  task=task, evaluation="linear_probe", label_fraction=f, seed=0, C=r.C,
                                  val_macro_auroc=r.val_auroc, train_records=int(len(idx)),
                                  constant_classes=[d.classes[k] for k in r.constant_classes]))
    return rows, test_scores


def fine_tune_jobs(tasks: Sequence[str], curve_methods: Sequence[str], table_methods: Sequence[str],
                   fractions: Sequence[float], seeds: Sequence[int]) -> list[tuple[str, str, float, int]]:
    """The fine-tuning runs ``(task, method, fraction, seed)``, in order: the label-fraction curve
    (first task, ``curve_methods`` × ``fractions`` × ``seeds``), then at 100 % of the labels and the
    first seed every other table method on the first task and the gate models on the other tasks."""
    curve_task = tasks[0]
    jobs = [(curve_task, m, f, s) for m in curve_methods for f in fractions for s in seeds]
    jobs += [(task, m, 1.0, seeds[0]) for task in tasks for m in list(curve_methods) + list(table_methods)
             if (task, m, 1.0, seeds[0]) not in jobs and (task == curve_task or m in ("dino_gate", "random_gate"))]
    return jobs


def pooled_test_scores(test_scores: Mapping, method: str, evaluation: str, task: str,
                       fraction: float) -> tuple[np.ndarray | None, int]:
    """The test scores of one configuration averaged over the seeds run for it (per record), and
    the number of seeds; ``(None, 0)`` when it was not run."""
    got = [v for (m, e, t, ff, _), v in test_scores.items() if (m, e, t, ff) == (method, evaluation, task, fraction)]
    return (np.mean(got, axis=0) if got else None), len(got)


def paired_rows(test_scores: Mapping, data: Mapping, tasks: Sequence[str], fractions: Sequence[float], *,
                n_boot: int, pairs: Sequence[tuple[str, str]] = PAIRS) -> list[dict]:
    """Paired bootstrap Δ macro AUROC = a − b (:func:`ecgbook.metrics.paired_bootstrap`, seed 0) of
    the seed-pooled test scores of both sides, for every pair of :data:`PAIRS` that ran, per task,
    label fraction and evaluation (the baseline only in ``fine_tune``). Rows:
    ``metric="paired_delta_macro_auroc"``, ``model="a - b"``, ``p_value``, ``seed="mean over seeds"``."""
    rows = []
    for task in tasks:
        for f in fractions:
            for a, b in pairs:
                for evaluation in ("fine_tune", "linear_probe"):
                    sa, _ = pooled_test_scores(test_scores, a, evaluation, task, f)
                    sb, _ = pooled_test_scores(test_scores, b if evaluation == "fine_tune" or b != "baseline" else "",
                                               evaluation, task, f)
                    if sa is None or sb is None:
                        continue
                    r = paired_bootstrap(macro_auroc, data[task].Y_test, sa, sb, n_boot=n_boot, seed=0)
                    rows.append({"model": f"{a} - {b}", "task": task, "metric": "paired_delta_macro_auroc",
                                 "value": r["diff"], "ci_low": r["low"], "ci_high": r["high"],
                                 "p_value": r["p_value"], "evaluation": evaluation, "label_fraction": f,
                                 "seed": "mean over seeds", "split": SPLIT})
    return rows


def gate_rows(fine_tuned: Mapping, data: Mapping, tasks: Sequence[str], seed: int, *,
              device: torch.device | str | None = None) -> tuple[list[dict], list[dict]]:
    """The mean gate weight per class on the test fold of the DINO gate model fine-tuned on 100 % of
    the labels with ``seed`` (:func:`gate_weights`), over the records with that class. Returns
    ``(table rows, result rows)``; classes without a positive test record are left out."""
    table, rows = [], []
    for task in tasks:
        key = ("dino_gate", task, 1.0, seed)
        if key not in fine_tuned:
            continue
        g = gate_weights(fine_tuned[key].model, data[task].X_test, device=device)
        for k, cls in enumerate(data[task].classes):
            pos = data[task].Y_test[:, k] == 1
            if not pos.any():
                continue
            table.append({"task": task, "class": cls, "records": int(pos.sum()),
                          "gate_time": float(g[pos, 0].mean()), "gate_spectrogram": float(g[pos, 1].mean())})
            rows.append({"model": "dino_gate", "task": task, "metric": "mean_gate_time",
                         "value": float(g[pos, 0].mean()), "class": cls, "n": int(pos.sum()),
                         "evaluation": "fine_tune", "label_fraction": 1.0, "seed": seed, "split": SPLIT})
    return table, rows


def optimism_rows(fine_tuned: Mapping, data: Mapping, tasks: Sequence[str], seed: int) -> tuple[dict, list[dict]]:
    """Threshold optimism of the DINO gate model (100 % of the labels, ``seed``): per-class thresholds
    tuned on fold 9 vs on fold 10 itself (:func:`threshold_optimism`). Returns ``({task: result},
    rows)`` with sample and macro F1 for both choices."""
    optimism, rows = {}, []
    for task in tasks:
        key = ("dino_gate", task, 1.0, seed)
        if key not in fine_tuned:
            continue
        out, d = fine_tuned[key], data[task]
        o = threshold_optimism(d.Y_val, out.val_scores, d.Y_test, out.test_scores, d.classes)
        optimism[task] = o
        for tuned_on in ("val", "test"):
            for metric in ("f1_sample", "f1_macro"):
                rows.append({"model": "dino_gate", "task": task, "metric": metric, "value": o[tuned_on][metric],
                             "thresholds_tuned_on": "fold 9 (validation)" if tuned_on == "val" else "fold 10 (test itself)",
                             "evaluation": "fine_tune", "label_fraction": 1.0, "seed": seed, "split": SPLIT})
    return optimism, rows


def embedding_2d(features: Mapping, task: str, name: str = "dino_time") -> np.ndarray:
    """``(test records, 2)``: the test-fold features of ``name`` standardised with the training
    fold's mean and sd, projected on their first two principal axes (SVD)."""
    F_train, _, F_test = features[task, name]
    Fc = (F_test - F_train.mean(0)) / (F_train.std(0) + 1e-8)
    _, _, vt = np.linalg.svd(Fc - Fc.mean(0), full_matrices=False)
    return Fc @ vt[:2].T
