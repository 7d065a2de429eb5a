"""The protocol leaks the book measured, gathered from the chapters' results files.

Every technique chapter measures what one protocol mistake does to its own numbers, with the same
model scored twice, once under the honest protocol and once under the leaky one. The side-by-side
chapter shows them together; :func:`leak_rows` reads them back from ``results/<profile>/<chapter>.json``
(:func:`ecgbook.results.read_results`) and computes nothing but the difference ``leaky − honest``.

=========================  ====================  ================================  ==========================================
leak                       chapter               honest                            leaky
=========================  ====================  ================================  ==========================================
patients on both sides     ``primer`` (01)       MIT-BIH DS1 → DS2 (de Chazal)     beats shuffled (1-NN on raw beats)
patients on both sides     ``transfer`` (03)     MIT-BIH patient-wise CV           segment-level CV (same frozen features)
epoch chosen on test       ``mrmnet`` (05)       epoch kept on validation fold 9   released ``main_mul.py``: test AUROC + F1
thresholds tuned on test   ``multimodal_ssl``    thresholds tuned on fold 9        thresholds tuned on fold 10 (the test fold)
crops on both sides        ``lead_agnostic_ssl`` patient-level split               crop-level split (the manifests' 80/10/10)
=========================  ====================  ================================  ==========================================

A chapter whose results file is missing, or lacks the rows, gives one row per leak with
``status = "not run in this profile"`` and no number.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..health import flagged_runs
from ..results import ResultsError, read_results

#: ``status`` of a row measured in the profile, and of one that was not.
MEASURED, NOT_RUN = "measured", "not run in this profile"
PATIENT_LEAK = "patients on both sides of the split (MIT-BIH)"
EPOCH_LEAK = "epoch chosen on the test fold"
THRESHOLD_LEAK = "decision thresholds tuned on the test fold"
CROP_LEAK = "crops of one recording on both sides of the split"
#: ``(chapter, leak)`` in the order of the book.
LEAKS = (("primer", PATIENT_LEAK), ("transfer", PATIENT_LEAK), ("mrmnet", EPOCH_LEAK),
         ("multimodal_ssl", THRESHOLD_LEAK), ("lead_agnostic_ssl", CROP_LEAK))
ROW_KEYS = ("leak", "chapter", "profile", "status", "model", "task", "metric", "honest", "honest_value", "leaky",
            "leaky_value", "effect", "effect_low", "effect_high", "interval", "n", "n_leaky", "health", "note")


def _row(chapter: str, leak: str, profile: str, **values) -> dict:
    row = dict.fromkeys(ROW_KEYS)
    row.update(leak=leak, chapter=chapter, profile=profile, status=MEASURED, note="")
    row.update(values)
    return row


def _not_run(chapter: str, leak: str, profile: str, why: str) -> dict:
    return _row(chapter, leak, profile, status=NOT_RUN, note=why)


def _pair(chapter, leak, profile, honest: Mapping, leaky: Mapping, honest_name: str, leaky_name: str, **values) -> dict:
    """A measured row from the honest and the leaky metric rows (values read, difference computed)."""
    h, k = float(honest["value"]), float(leaky["value"])
    base = {"model": honest.get("model"), "task": honest.get("task"), "metric": honest["metric"],
            "honest": honest_name, "honest_value": h, "leaky": leaky_name, "leaky_value": k, "effect": k - h,
            "n": honest.get("n"), "n_leaky": leaky.get("n")}
    return _row(chapter, leak, profile, **{**base, **values})


def _find(rows: Sequence[Mapping], **where) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def _flags(warnings: Sequence[str]) -> tuple[list[str], str]:
    """``(blocking tags, note)`` of warnings (:func:`ecgbook.health.flagged_runs`)."""
    runs = flagged_runs(warnings)
    tags = sorted({t for ts in runs.values() for t in ts})
    note = ("source runs flagged by the health checks: " + "; ".join(f"{name} ({', '.join(ts)})"
                                                                      for name, ts in runs.items())) if runs else ""
    return tags, note


# ------------------------------------------------------------------------------------- per chapter


def _primer(doc: dict, profile: str) -> list[dict]:
    rows = doc["metrics"]
    leaky = [r for r in rows if r.get("split", "").startswith("beats shuffled")]
    honest = [r for r in rows if r.get("split", "").startswith("by patient")]
    if not (leaky and honest):
        return []
    h, k = honest[0], leaky[0]
    return [_pair("primer", PATIENT_LEAK, profile, h, k, h["split"], k["split"],
                  note="one train/test split, no interval; health checks do not apply (no training epochs)")]


def _transfer(doc: dict, profile: str) -> list[dict]:
    rows = _find(doc["metrics"], dataset="mitdb", stage="tap chosen in each fold", weights="imagenet")
    if not rows:
        return []
    # the chapter's configuration fixed before any result: the first network with ImageNet weights,
    # the linear SVM when it ran (chapters/03_transfer_learning.md, ``best``)
    model = rows[0]["model"]
    classifiers = list(doc["params"].get("classifiers") or [])
    classifier = "linear_svm" if "linear_svm" in classifiers else (classifiers[0] if classifiers else rows[0]["classifier"])
    out = []
    for metric in ("accuracy", "macro_f1"):
        honest = _find(rows, model=model, classifier=classifier, metric=metric, protocol="patient-wise CV")
        leaky = _find(rows, model=model, classifier=classifier, metric=metric, protocol="segment-level CV")
        if honest and leaky:
            out.append(_pair("transfer", PATIENT_LEAK, profile, honest[0], leaky[0], "patient-wise CV",
                             "segment-level CV", task=f"MIT-BIH beats, {classifier}",
                             note=f"{doc['params'].get('folds')}-fold cross-validation, tap chosen in each fold; "
                                  "no interval; health checks do not apply (frozen features)"))
    return out


def _mrmnet(doc: dict, profile: str) -> list[dict]:
    task = doc["params"].get("variant_task")
    leaky = _find(doc["metrics"], metric="macro_auroc_test_selected", protocol="released: AUROC + F1 on test",
                  evaluation="mean over seeds", task=task)
    if not leaky:
        return []
    k = leaky[0]
    honest = _find(doc["metrics"], metric="macro_auroc", evaluation="mean over seeds", task=task, model=k["model"])
    if not honest:
        return []
    h = honest[0]
    inflation = [float(r["inflation"]) for r in _find(doc["metrics"], metric="macro_auroc_test_selected",
                                                       protocol=k["protocol"], evaluation="per seed", task=task)]
    tags, note = _flags((doc["extra"].get("health") or {}).get(f"{task}/paper", []))
    row = _pair("mrmnet", EPOCH_LEAK, profile, h, k, "epoch kept on the validation fold (averaged heads)",
                "released criterion: epoch and head maximising test macro AUROC + F1", health=tags,
                note=("; ".join(filter(None, [f"mean over {k.get('seeds')} seeds", note]))))
    row.update(metric="macro_auroc", n_leaky=h.get("n"))  # both scored on the same test fold
    if inflation:
        row.update(effect_low=min(inflation), effect_high=max(inflation), interval="range over seeds")
    return [row]


def _multimodal(doc: dict, profile: str) -> list[dict]:
    rows = [r for r in doc["metrics"] if "thresholds_tuned_on" in r]
    health = doc["extra"].get("health")
    sizes = doc["extra"].get("split_sizes") or {}
    out = []
    for leaky in [r for r in rows if "test" in r["thresholds_tuned_on"]]:
        honest = [r for r in rows if "validation" in r["thresholds_tuned_on"] and
                  all(r.get(c) == leaky.get(c) for c in ("model", "task", "metric", "seed", "label_fraction"))]
        if not honest:
            continue
        h = honest[0]
        if health is None:
            tags, note = None, "run health not recorded in this results file"
        else:
            key = f"{h['model']}/{h['task']}/{float(h['label_fraction']):g}/{h['seed']}"
            tags, note = _flags(list(health.get("fine_tune", {}).get(key, [])) + list(health.get("pretraining", [])))
        row = _pair("multimodal_ssl", THRESHOLD_LEAK, profile, h, leaky, f"thresholds tuned on {h['thresholds_tuned_on']}",
                    f"thresholds tuned on {leaky['thresholds_tuned_on']}", health=tags,
                    note="; ".join(filter(None, [f"{h['split']}, seed {h['seed']}, "
                                                 f"{float(h['label_fraction']):.0%} of the labels", note])))
        row["n"] = row["n_leaky"] = (sizes.get(h["task"]) or {}).get("test")
        out.append(row)
    return out


def _lead_agnostic(doc: dict, profile: str) -> list[dict]:
    rows = [r for r in doc["metrics"] if "split_level" in r]
    out = []
    for leaky in [r for r in rows if r["split_level"] == "crop"]:
        honest = [r for r in rows if r["split_level"] == "patient" and
                  all(r.get(c) == leaky.get(c) for c in ("model", "task", "metric", "evaluation", "leads", "seed",
                                                         "label_fraction"))]
        if not honest:
            continue
        h = honest[0]
        out.append(_pair("lead_agnostic_ssl", CROP_LEAK, profile, h, leaky, "patient-level split",
                         "crop-level split", note=(
                             f"{h['evaluation'].replace('_', ' ')}, {h.get('leads')} leads, seed {h.get('seed')}; "
                             f"test crops with a sibling crop in training: {leaky.get('test_crops_with_train_sibling', 0):.0%} "
                             f"(crop-level) vs {h.get('test_crops_with_train_sibling', 0):.0%}; the two splits test "
                             f"different records, so the difference has no paired interval (honest 95 % CI "
                             f"[{h.get('ci_low', float('nan')):.3f}, {h.get('ci_high', float('nan')):.3f}], leaky "
                             f"[{leaky.get('ci_low', float('nan')):.3f}, {leaky.get('ci_high', float('nan')):.3f}]); "
                             f"no health check applies to a linear probe")))
    return out


_READERS = {"primer": _primer, "transfer": _transfer, "mrmnet": _mrmnet, "multimodal_ssl": _multimodal,
            "lead_agnostic_ssl": _lead_agnostic}


def leak_rows(profile: str, root: Path | str | None = None) -> list[dict]:
    """Every measured protocol leak of ``profile``, one row per leak, chapter, metric (and task or
    evaluation where a chapter measured several), in the order of :data:`LEAKS`.

    Each row (keys :data:`ROW_KEYS`): ``leak``, ``chapter``, ``profile``, ``status``
    (:data:`MEASURED` or :data:`NOT_RUN`), ``model``, ``task``, ``metric``, ``honest`` / ``leaky``
    (the protocols, in words) with ``honest_value`` / ``leaky_value`` as stored in the chapter's
    results file, ``effect`` = leaky − honest (``effect_low``/``effect_high`` and what they are in
    ``interval`` when the file allows one, e.g. the range of the per-seed inflations for
    ``mrmnet``; else ``None``), ``n`` / ``n_leaky`` (test records or beats of each evaluation,
    ``None`` where the file does not say), ``health`` (the blocking tags of
    :func:`ecgbook.health.flagged_runs` of the runs behind it: ``[]`` passed, ``None`` no check
    recorded or applicable) and ``note``. A chapter whose file is missing or lacks the rows gives
    one :data:`NOT_RUN` row with no number and the reason in ``note``.

    ``root``: the results folder holding ``<profile>/<chapter>.json`` (default
    ``ecgbook.config.results_dir()``). Raises :class:`ecgbook.results.ResultsError` for a results
    file that exists but is not a valid results file of that chapter and profile.
    """
    out: list[dict] = []
    for chapter, leak in LEAKS:
        try:
            doc = read_results(chapter, profile, root=Path(root) if root is not None else None)
        except FileNotFoundError:
            out.append(_not_run(chapter, leak, profile, f"no results file {profile}/{chapter}.json"))
            continue
        try:
            rows = _READERS[chapter](doc, profile)
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{profile}/{chapter}.json", f"leak rows unreadable ({exc!r})") from exc
        out += rows or [_not_run(chapter, leak, profile, f"{profile}/{chapter}.json holds no rows of this leak")]
    return out
