"""The multimodal-SSL chapter's Challenge 2020 path (paper profile, ``challenge_root``).

Crops per record and the window mean on synthetic arrays; the loader, the metric rows and the
whole path (load → folds → pretrain → fine-tune → thresholds on validation → test rows) on the
Challenge-format sample records (conftest's ``challenge_samples``: fails, never skips, when absent).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ecgbook import multimodal_ssl as mm
from ecgbook.data import challenge as C
from ecgbook.data.records import RecordError
from ecgbook.train import ArrayDataset, predict

@pytest.fixture(scope="module")
def samples(challenge_samples) -> Path:
    """The real Challenge-format records; conftest's fixture fails (never skips) when they are absent."""
    return challenge_samples


@pytest.fixture(scope="module")
def tables(mirror):
    return C.load_scoring_tables(2020)


@pytest.fixture(scope="module")
def data(samples, tables):
    # 20 s: the PTB and CPSC2018 records are longer than 10 s, so lengths differ across records
    return C.load_challenge2020(samples, tables, seconds=20)


# --------------------------------------------------------------------------- crops and windows


def _records(n=3, samples=100):
    """Record i holds the value i in lead 0 and the sample index in lead 1."""
    X = np.zeros((n, 2, samples), dtype=np.float32)
    X[:, 0] = np.arange(n)[:, None]
    X[:, 1] = np.arange(samples)[None, :]
    return X


def test_crops_per_record_are_independent_and_inside_each_record():
    X, lengths = _records(), np.array([100, 40, 30])
    ds = ArrayDataset(X, np.eye(3, dtype=np.float32), crop=25, seed=2, crops_per_record=5, lengths=lengths)
    assert len(ds) == 15 and ds.crop_starts(0).shape == (15,)
    for j in range(15):
        x, y = ds[j]
        record = j % 3
        assert x.shape == (2, 25) and torch.all(x[0] == record) and y.argmax() == record
        start = int(x[1, 0])
        assert 0 <= start <= lengths[record] - 25 and start == ds.crop_starts(0)[j]
    starts = ds.crop_starts(0).reshape(5, 3)        # (crop, record): several distinct crops per record
    assert all(len(set(starts[:, r])) > 1 for r in range(3))
    assert not np.array_equal(ds.crop_starts(0), ds.crop_starts(1))
    # the device paths (slice on CPU, one gather kernel on GPUs) serve the DataLoader path's items
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    host = [torch.cat(t) for t in zip(*loader)]
    for gather in ("slice", "index"):
        batches = ds.device_batches(torch.device("cpu"), 4, torch.Generator().manual_seed(0), drop_last=False,
                                    gather=gather)
        dev = [torch.cat(t) for t in zip(*batches)]
        assert torch.equal(dev[0], host[0]) and torch.equal(dev[1], host[1])


def test_default_dataset_is_unchanged():
    """crops_per_record=1 without lengths: the crops the supervised chapters always drew."""
    X = _records(4, 80)
    ds = ArrayDataset(X, None, crop=30, seed=5)
    expected = np.random.default_rng((5, 0, 0x5EED)).integers(0, 80 - 30 + 1, size=4)
    assert len(ds) == 4 and np.array_equal(ds.crop_starts(0), expected)
    with pytest.raises(ValueError, match="crop="):
        ArrayDataset(X, None, crops_per_record=2)
    with pytest.raises(ValueError, match="lengths"):
        ArrayDataset(X, None, crop=30, lengths=np.array([80, 90, 10, 10]))


class _MeanModel(nn.Module):
    """Logit of a window = its mean value (one class)."""

    def forward(self, x):
        return x.mean(dim=(1, 2))[:, None]


def test_window_mean_over_the_windows_inside_each_record():
    x = np.zeros((2, 1, 1000), dtype=np.float32)
    x[:, 0] = np.arange(1000) / 1000.0
    lengths = np.array([1000, 600])
    got = predict(_MeanModel(), x, window=250, stride=125, aggregate="mean", lengths=lengths, device="cpu")

    def expected(length):
        # the official chunks: starts 0, 125, … while the 250-sample chunk fits in the record
        starts = range(0, length - 250 + 1, 125)
        return np.mean([1 / (1 + math.exp(-x[0, 0, s:s + 250].mean())) for s in starts])

    np.testing.assert_allclose(got[:, 0], [expected(1000), expected(600)], rtol=1e-5)
    # without lengths every window counts; record 0 fills the array, so both agree there
    full = predict(_MeanModel(), x, window=250, stride=125, aggregate="mean", device="cpu")
    np.testing.assert_allclose(full[0], got[0], rtol=1e-6)
    assert not np.allclose(full[1], got[1])
    assert mm.record_scores(_MeanModel(), x, lengths, device="cpu").shape == (2, 1)
    with pytest.raises(ValueError, match="lengths"):
        predict(_MeanModel(), x, window=250, lengths=np.array([5]), device="cpu")


# --------------------------------------------------------------------------- loader and rows


def test_loader_reads_every_source_with_24_classes(data, samples):
    assert data.X.shape == (len(data), 12, 2000) and data.X.dtype == np.float32 and data.fs == 100.0
    assert len(data.classes) == 24 and "713427006|59118001" in data.classes
    assert data.Y.shape == (len(data), 24) and data.Y.any(axis=1).all()
    assert set(data.sources) == {"cpsc_2018", "cpsc_2018_extra", "georgia", "ptb-xl", "ptb", "chapman_shaoxing_ningbo"}
    assert data.lengths.max() == 2000 and data.lengths.min() == 1000     # 10-s records and longer ones
    for i in np.flatnonzero(data.lengths < 2000):
        assert not data.X[i, :, data.lengths[i]:].any()                 # zero-padded after the record
    # no patient id in any header: every record is its own group
    assert len(set(data.groups)) == len(data) and all(g.startswith("record:") for g in data.groups)
    # records without a scored class are left out and named
    assert data.dropped["no scored class"] and all(Path(p).parent.parent == samples
                                                     for p in data.dropped["no scored class"])
    assert len(data) + len(data.dropped["no scored class"]) == len(C.list_records(samples))


def test_loader_groups_ptbxl_records_by_patient_where_ids_are_known(samples, tables):
    import pandas as pd

    meta = pd.DataFrame({"patient_id": [7.0, 7.0, np.nan]}, index=pd.Index([1, 2, 3], name="ecg_id"))
    ids = C.ptbxl_patient_ids(meta)
    assert ids == {"HR00001": "ptbxl-7", "HR00002": "ptbxl-7"}
    part = C.load_challenge2020(samples / "ptb-xl", tables, patient_ids=ids)
    group = dict(zip(part.names, part.groups))
    assert group["HR00001"] == group["HR00002"] == "patient:ptbxl-7"
    assert group["HR00003"] == "record:ptb-xl/HR00003"
    with pytest.raises(ValueError, match="patient_id"):
        C.ptbxl_patient_ids(meta.rename(columns={"patient_id": "pid"}))


def test_loader_errors_name_the_file(samples, tables, tmp_path):
    with pytest.raises(FileNotFoundError, match="no Challenge records"):
        C.load_challenge2020(tmp_path, tables)
    shutil.copy(samples / "georgia" / "E00001.hea", tmp_path / "E00001.hea")
    with pytest.raises(RecordError, match="E00001"):
        C.load_challenge2020(tmp_path, tables)                           # the .mat file is missing
    with pytest.raises(ValueError, match="positive"):
        C.load_challenge2020(samples, tables, seconds=0)


def test_challenge_rows_name_excluded_classes_and_never_average_nan(tables):
    rng = np.random.default_rng(0)
    n, normal = 12, tables.normal_index
    y_val = np.zeros((n, 24), dtype=int)
    y_val[:, normal] = 1
    y_val[:4, 1] = 1                                                   # AF in validation
    y_test = y_val.copy()
    scores_val, scores_test = rng.random((n, 24)), rng.random((n, 24))
    rows, info = mm.challenge_rows(y_val, scores_val, y_test, scores_test, tables, model="m", test_fold=0,
                                   val_fold=1, seed=0)
    by = {r["metric"]: r for r in rows}
    assert set(by) == set(mm.CHALLENGE_METRICS)
    assert "AF" not in by["macro_auroc"]["excluded_classes"] and "NSR" in by["macro_auroc"]["excluded_classes"]
    assert len(by["macro_auroc"]["excluded_classes"]) == 23 and np.isfinite(by["macro_auroc"]["value"])
    assert by["accuracy"]["excluded_classes"] == [] and by["challenge_score"]["excluded_classes"] == []
    assert "AFL" in info["threshold_default_classes"] and info["thresholds"]["AFL"] == 0.5
    # every test record sinus rhythm only: the Challenge score is undefined -> None with the reason
    only_normal = np.zeros((n, 24), dtype=int)
    only_normal[:, normal] = 1
    rows, _ = mm.challenge_rows(y_val, scores_val, only_normal, scores_test, tables, model="m", test_fold=0,
                                val_fold=1, seed=0)
    by = {r["metric"]: r for r in rows}
    assert by["challenge_score"]["value"] is None and "inactive" in by["challenge_score"]["undefined"]
    assert by["macro_auroc"]["value"] is None and "undefined" in by["macro_auroc"]
    summary = mm.challenge_summary(rows)
    assert {r["metric"]: r["undefined_folds"] for r in summary}["challenge_score"] == [[0, 0]]
    with pytest.raises(ValueError, match="24 classes"):
        mm.challenge_rows(y_val[:, :3], scores_val[:, :3], y_test[:, :3], scores_test[:, :3], tables, model="m",
                          test_fold=0, val_fold=1, seed=0)


# --------------------------------------------------------------------------- end to end


def test_challenge2020_path_end_to_end_on_the_sample_records(data, tables):
    torch.set_num_threads(1)
    folds = mm.challenge_folds(data, k=10, seed=0)
    assert np.bincount(folds, minlength=10).min() >= 1
    run = mm.challenge2020_protocol(data=data, methods=["dino_gate", "random_time"], encoder_size="tiny", out_dim=64,
                                    n_local=2, local_samples=100, momentum=0.9, pretrain_epochs=1, pretrain_batch=32,
                                    ft_epochs=1, ft_batch=64, test_folds=[0], device="cpu")
    info = run.extra["folds"]["0"]
    assert info["val_fold"] == 1 and sum(info["sizes"].values()) == len(data)
    assert set(info["pretraining"]) == {"dino_time", "dino_spec"}          # random_time needs none
    assert len(run.rows) == 2 * len(mm.CHALLENGE_METRICS)
    for r in run.rows:
        assert r["task"] == "challenge2020" and r["test_fold"] == 0 and r["val_fold"] == 1
        assert r["thresholds_tuned_on"] == "fold 1 (validation)" and r["n"] == info["sizes"]["test"]
        assert (r["value"] is not None and np.isfinite(r["value"])) or r.get("undefined")
        assert isinstance(r["excluded_classes"], list) and set(r["excluded_classes"]) <= set(data.abbreviations)
    auroc = [r for r in run.rows if r["metric"] == "macro_auroc"]
    assert all(r["excluded_classes"] for r in auroc)                      # tiny folds lack most classes
    assert {r["model"] for r in run.summary} == {"dino_gate", "random_time"}
    assert run.table().shape == (2, len(mm.CHALLENGE_METRICS))
    with pytest.raises(ValueError, match="unknown method"):
        mm.challenge2020_protocol(data=data, methods=["byol_time"], test_folds=[0])
    with pytest.raises(ValueError, match="not both"):
        mm.challenge2020_protocol()


def test_challenge_root_parameter_and_settings_from_every_profile():
    import inspect

    from ecgbook import profiles

    accepted = set(inspect.signature(mm.challenge2020_protocol).parameters)
    for name in profiles.PROFILE_NAMES:
        P = profiles.resolve("multimodal_ssl", name)
        assert P["challenge_root"] is None                      # the PTB-XL protocol unless given
        settings = mm.challenge2020_settings(P)
        assert set(settings) <= accepted and settings["seeds"] == P["seeds"]
        assert P["simclr"] or not any(m.startswith("simclr") for m in settings["methods"])
    assert profiles.resolve("multimodal_ssl", "paper", challenge_root="/data/training")["challenge_root"] == "/data/training"
    with pytest.raises(ValueError, match="challenge_root"):
        profiles.resolve("multimodal_ssl", "paper", challenge_root=3)
