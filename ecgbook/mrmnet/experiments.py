"""The chapter-05 experiments around MRM-Net's training: a per-epoch test diagnostic that never
selects (:func:`test_diagnostic`), the reuse of the baseline chapter's runs on the same records
(:func:`stored_baseline`), and what the released selection criterion would have reported
(:func:`released_selection`). See :mod:`ecgbook.mrmnet`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..metrics import apply_thresholds, f1_scores, macro_auroc
from ..protocol import Prepared, RunOutput, aggregate_rows, runs_from_stored, window_scorer
from ..results import read_results

#: MRM-Net's output heads: the combined logits and each branch's.
HEADS = ("logits", "logits_high", "logits_low")


def test_diagnostic(data: Prepared, fs: float = 100) -> Callable:
    """An ``on_epoch_end(epoch, model) -> dict`` hook for :func:`ecgbook.train.fit`: after every
    epoch, the test macro AUROC and sample F1 at 0.5 of each head of :data:`HEADS`
    (``diag_test_auroc_<head>``, ``diag_test_f1_<head>``), scored as the protocol scores (2.5-s
    windows, max per record). It is stored in the history and never selects an epoch; it only lets
    the chapter reconstruct what the released protocol would have reported
    (:func:`released_selection`)."""
    scorer = window_scorer(fs)

    def log_test(epoch, model):
        row = {}
        for head in HEADS:
            s = scorer(model, data.X_test, select=lambda out, h=head: out[h])
            row[f"diag_test_auroc_{head}"] = macro_auroc(data.Y_test, s).value
            pred = apply_thresholds(s, np.full(s.shape[1], 0.5))
            row[f"diag_test_f1_{head}"] = f1_scores(data.Y_test, pred)["sample"]
        return row
    return log_test


def stored_baseline(task: str, data: Prepared, baseline_params: Mapping, seeds: Sequence[int], profile: str,
                    root: Path | None = None) -> tuple[list[RunOutput] | None, str]:
    """The baseline chapter's runs of ``task`` (``results/<profile>/baseline.json``) when they were
    made with the same ``epochs``, ``lr`` and ``batch_size`` as ``baseline_params`` and on exactly
    these validation and test records with these ``seeds`` (:func:`ecgbook.protocol.runs_from_stored`);
    else ``None``. Returns ``(runs or None, where the baseline comes from, in words)``; a missing or
    unusable file is a reason to train here, named in the words."""
    try:
        doc = read_results("baseline", profile, root=root)
        if not all(doc["params"].get(k) == baseline_params[k] for k in ("epochs", "lr", "batch_size")):
            return None, "the baseline chapter ran with other settings"
        runs = runs_from_stored(doc["extra"]["runs"][task], data, seeds, what="baseline chapter")
        return runs, f"reused from the baseline chapter (commit {doc['provenance']['commit'][:8]})"
    except (FileNotFoundError, KeyError, ValueError) as exc:
        return None, f"trained here ({exc})"


def released_selection(runs: Sequence[RunOutput], *, model: str, task: str) -> tuple[list[dict], list[dict]]:
    """What the released script's criterion would report, per seed, from the histories of runs
    trained with :func:`test_diagnostic`: the epoch and head that maximise test macro AUROC + test
    F1 (``main_mul.py`` selects on the test set), against ours (the averaged heads at the epoch kept
    on validation), and the best test AUROC of any epoch and head.

    Returns ``(per-seed table rows, result rows)``: the result rows are per seed
    (``metric="macro_auroc_test_selected"``, ``protocol``, ``inflation`` over ours) followed by
    their mean over seeds (:func:`ecgbook.protocol.aggregate_rows`)."""
    table = []
    for r in runs:
        hist = pd.DataFrame(r.fit.history)
        ours = float(hist.loc[hist.epoch == r.fit.best_epoch, "diag_test_auroc_logits"].iloc[0])
        crit = {h: hist[f"diag_test_auroc_{h}"] + hist[f"diag_test_f1_{h}"] for h in HEADS}
        head = max(HEADS, key=lambda h: crit[h].max())
        at = int(crit[head].idxmax())
        table.append({"seed": r.seed, "ours": ours,
                      "released: AUROC + F1 on test": float(hist[f"diag_test_auroc_{head}"][at]),
                      "released head": head, "released epoch": int(hist.epoch[at]),
                      "test-chosen epoch, AUROC only": float(
                          hist[[f"diag_test_auroc_{h}" for h in HEADS]].max().max())})
    selected = []
    for row in table:
        for col in ("released: AUROC + F1 on test", "test-chosen epoch, AUROC only"):
            selected.append({"model": model, "task": task, "seed": row["seed"],
                             "metric": "macro_auroc_test_selected", "protocol": col,
                             "value": row[col], "inflation": row[col] - row["ours"],
                             "evaluation": "per seed"})
    return table, selected + aggregate_rows(selected, extra_keys=("protocol",))
