"""ecgbook.side_by_side.leaks: the measured protocol leaks, read from the committed results files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecgbook.health import BLOCKING_TAGS
from ecgbook.results import ResultsError
from ecgbook.side_by_side.leaks import LEAKS, MEASURED, NOT_RUN, ROW_KEYS, leak_rows

RESULTS = Path(__file__).resolve().parents[1] / "results"
PROFILES = sorted(p.name for p in RESULTS.iterdir() if p.is_dir())
CHAPTERS = [c for c, _ in LEAKS]


def _doc(profile, chapter):
    return json.loads((RESULTS / profile / f"{chapter}.json").read_text(encoding="utf-8"))


def _one(rows, **where):
    found = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    assert len(found) == 1, (where, len(found))
    return found[0]


def test_there_are_committed_profiles():
    assert {"classroom", "tutorial"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_rows_match_the_committed_results_files(profile):
    rows = leak_rows(profile, root=RESULTS)
    assert all(set(r) == set(ROW_KEYS) and r["profile"] == profile for r in rows)
    assert [r["chapter"] for r in rows] == sorted((r["chapter"] for r in rows), key=CHAPTERS.index)
    for chapter in CHAPTERS:
        mine = [r for r in rows if r["chapter"] == chapter]
        present = (RESULTS / profile / f"{chapter}.json").is_file()
        assert mine and all(r["status"] == (MEASURED if present else NOT_RUN) for r in mine), chapter
    for r in rows:
        if r["status"] == MEASURED:
            assert r["effect"] == pytest.approx(r["leaky_value"] - r["honest_value"], abs=1e-12)

    by = {c: [r for r in rows if r["chapter"] == c and r["status"] == MEASURED] for c in CHAPTERS}
    if by["primer"]:
        m = _doc(profile, "primer")["metrics"]
        (r,) = by["primer"]
        assert r["leaky_value"] == next(x["value"] for x in m if "shuffled" in x["split"])
        assert r["honest_value"] == next(x["value"] for x in m if "DS1 → DS2" in x["split"])
        assert r["effect"] > 0  # the measured leak: shuffled beats score higher
    if by["transfer"]:
        m = [x for x in _doc(profile, "transfer")["metrics"] if x.get("dataset") == "mitdb"
             and x.get("stage") == "tap chosen in each fold" and x.get("weights") == "imagenet"
             and x.get("classifier") == "linear_svm"]
        assert {r["metric"] for r in by["transfer"]} == {"accuracy", "macro_f1"}
        for r in by["transfer"]:
            seg = _one(m, metric=r["metric"], protocol="segment-level CV", model=r["model"])
            pat = _one(m, metric=r["metric"], protocol="patient-wise CV", model=r["model"])
            assert (r["leaky_value"], r["honest_value"], r["n"]) == (seg["value"], pat["value"], pat["n"])
    if by["mrmnet"]:
        doc = _doc(profile, "mrmnet")
        (r,) = by["mrmnet"]
        task = doc["params"]["variant_task"]
        honest = _one(doc["metrics"], metric="macro_auroc", evaluation="mean over seeds", task=task,
                      model="MRM-Net (paper)")
        per_seed = [x for x in doc["extra"]["epoch_selection"]]
        assert r["honest_value"] == honest["value"] and r["n"] == honest["n"]
        assert r["leaky_value"] == pytest.approx(np.mean([x["released: AUROC + F1 on test"] for x in per_seed]))
        inflation = [x["released: AUROC + F1 on test"] - x["ours"] for x in per_seed]
        assert r["effect"] == pytest.approx(np.mean(inflation), abs=1e-9)
        assert (r["effect_low"], r["effect_high"]) == pytest.approx((min(inflation), max(inflation)), abs=1e-9)
        warnings = doc["extra"]["health"][f"{task}/paper"]
        assert r["health"] == sorted({w.split(" — ")[0] for w in warnings} & set(BLOCKING_TAGS))
    if by["multimodal_ssl"]:
        doc = _doc(profile, "multimodal_ssl")
        optimism = doc["extra"]["threshold_optimism"]
        assert {(r["task"], r["metric"]) for r in by["multimodal_ssl"]} == {
            (t, k) for t, o in optimism.items() for k in o["optimism"]}
        for r in by["multimodal_ssl"]:
            o = optimism[r["task"]]
            assert r["honest_value"] == pytest.approx(o["val"][r["metric"]])
            assert r["leaky_value"] == pytest.approx(o["test"][r["metric"]])
            assert r["effect"] == pytest.approx(o["optimism"][r["metric"]], abs=1e-9)
            assert r["n"] == doc["extra"]["split_sizes"][r["task"]]["test"]
            if doc["extra"].get("health") is None:
                assert r["health"] is None and "not recorded" in r["note"]
            elif doc["extra"]["health"]["pretraining"]:
                assert r["health"], "the pre-training warnings of chapter 04 flag the encoders behind dino_gate"
    if by["lead_agnostic_ssl"]:
        m = _doc(profile, "lead_agnostic_ssl")["metrics"]
        for r in by["lead_agnostic_ssl"]:
            crop = _one(m, split_level="crop", metric=r["metric"], model=r["model"])
            patient = _one(m, split_level="patient", metric=r["metric"], model=r["model"])
            assert (r["leaky_value"], r["honest_value"]) == (crop["value"], patient["value"])
            assert (r["n_leaky"], r["n"]) == (crop["n"], patient["n"])


def test_a_missing_file_gives_not_run_rows_and_no_number(tmp_path):
    (tmp_path / "classroom").mkdir()
    rows = leak_rows("classroom", root=tmp_path)
    assert [r["chapter"] for r in rows] == CHAPTERS
    for r in rows:
        assert r["status"] == NOT_RUN and "no results file" in r["note"]
        assert all(r[k] is None for k in ("honest_value", "leaky_value", "effect", "n"))


def test_a_file_without_the_rows_gives_a_not_run_row(tmp_path):
    (tmp_path / "classroom").mkdir()
    doc = _doc("classroom", "mrmnet")
    doc["metrics"] = [r for r in doc["metrics"] if r["metric"] != "macro_auroc_test_selected"]
    (tmp_path / "classroom" / "mrmnet.json").write_text(json.dumps(doc), encoding="utf-8")
    (tmp_path / "classroom" / "primer.json").write_bytes((RESULTS / "classroom" / "primer.json").read_bytes())
    rows = leak_rows("classroom", root=tmp_path)
    mrm = _one(rows, chapter="mrmnet")
    assert mrm["status"] == NOT_RUN and "holds no rows" in mrm["note"] and mrm["effect"] is None
    assert _one(rows, chapter="primer")["status"] == MEASURED


def test_a_broken_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "classroom").mkdir()
    (tmp_path / "classroom" / "transfer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ResultsError, match="transfer.json"):
        leak_rows("classroom", root=tmp_path)
