"""PTB-XL reader on the real mirror: metadata, the benchmark's label sets, folds, signals, cache."""
from __future__ import annotations

import numpy as np
import pytest

from ecgbook.data.ptbxl import PTBXL, TASKS, task_labels


@pytest.fixture(scope="module")
def ptbxl(mirror):
    return PTBXL(fs=100)


def test_metadata_and_missing_records(ptbxl):
    assert len(ptbxl.meta) == 21799
    assert len(ptbxl.available) == 1987  # the mirror's records, ecg_id 1–1999 minus 12 removed in v1.0.3
    assert len(ptbxl.missing) == 21799 - 1987
    assert "1,987 of 21,799 records present, 19,812 missing" in ptbxl.summary()


def test_class_counts_equal_the_benchmark(ptbxl):
    # Strodthoff et al. 2021, Table I: 71 / 44 / 23 / 5 / 19 / 12 classes
    expected = {"all": 71, "diagnostic": 44, "subdiagnostic": 23, "superdiagnostic": 5, "form": 19, "rhythm": 12}
    assert {t: len(ptbxl.classes(t)) for t in TASKS} == expected
    assert ptbxl.classes("superdiagnostic") == ["CD", "HYP", "MI", "NORM", "STTC"]


def test_task_labels_hand_worked(ptbxl):
    st = ptbxl.statements
    codes = {"IMI": 35.0, "ASMI": 0.0, "SR": 0.0, "ABQRS": 0.0}  # likelihood 0 still counts (benchmark code)
    assert task_labels(codes, "superdiagnostic", st) == ["MI"]
    assert task_labels(codes, "subdiagnostic", st) == ["AMI", "IMI"]
    assert task_labels(codes, "rhythm", st) == ["SR"]
    assert task_labels(codes, "form", st) == ["ABQRS"]
    assert task_labels(codes, "all", st) == ["ABQRS", "ASMI", "IMI", "SR"]
    with pytest.raises(ValueError, match="unknown PTB-XL task"):
        task_labels(codes, "nope", st)


def test_superdiagnostic_task(ptbxl):
    task = ptbxl.task("superdiagnostic")
    assert task.X.shape == (len(task.Y), 12, 1000) and task.X.dtype == np.float32
    assert len(task.Y) == 1965  # records present with at least one superdiagnostic label
    assert task.Y.sum(0).tolist() == [410, 215, 370, 1051, 467]  # CD, HYP, MI, NORM, STTC
    sizes = [len(task.split(s)) for s in ("train", "val", "test")]
    assert sizes == [1481, 232, 252] and sum(sizes) == len(task.Y)
    assert set(task.strat_fold[task.split("test")]) == {10}
    # the cached signal equals a fresh read of the record
    np.testing.assert_array_equal(task.X[5], ptbxl.read(task.ecg_id[5]).signal)


def test_folds_keep_patients_together(ptbxl):
    folds_per_patient = ptbxl.meta.groupby("patient_id").strat_fold.nunique()
    assert folds_per_patient.max() == 1


def test_cache_is_reused_and_rebuilt(tmp_path, monkeypatch, mirror):
    monkeypatch.setenv("ECGBOOK_DATA", str(tmp_path))
    db = PTBXL(fs=100, max_records=30)  # the first 30 records are all in the mirror: no warning
    first = db.task("rhythm")
    (manifest,) = (tmp_path / "cache/ptbxl-1.0.3-100hz").glob("*/manifest.json")
    stamp = manifest.stat().st_mtime_ns
    db.task("rhythm")
    assert manifest.stat().st_mtime_ns == stamp  # reused
    hea = db.record_path(db.available[0]).with_suffix(".hea")
    hea.write_text(hea.read_text())  # touched, same content: the cache is keyed on content, still valid
    again = db.task("rhythm")
    assert manifest.stat().st_mtime_ns == stamp
    assert first.provenance["verified"] == first.provenance["files"] and first.provenance["unverified"] == 0
    np.testing.assert_array_equal(np.asarray(first.X), np.asarray(again.X))
    fewer = PTBXL(fs=100, max_records=10).task("rhythm")  # another record set: its own cache
    assert len(list((tmp_path / "cache/ptbxl-1.0.3-100hz").glob("*/manifest.json"))) == 2
    np.testing.assert_array_equal(np.asarray(fewer.X), np.asarray(first.X)[: len(fewer.X)])


def test_reader_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="ptbxl_database.csv"):
        PTBXL(root=tmp_path, download=False)
    with pytest.raises(ValueError, match="100 or 500 Hz"):
        PTBXL(root=tmp_path, download=False, fs=250)


def test_scp_codes_parser_equals_literal_eval(mirror):
    import ast

    import pandas as pd

    from ecgbook.data.ptbxl import parse_scp_codes

    cells = pd.read_csv(mirror / "physionet.org/files/ptb-xl/1.0.3/ptbxl_database.csv")["scp_codes"]
    assert all(parse_scp_codes(c) == ast.literal_eval(c) for c in cells)
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    assert parse_scp_codes("{'A': 1, 'B': float('nan')}".replace("float('nan')", "0")) == {"A": 1, "B": 0}
