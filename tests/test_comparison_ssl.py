"""The self-supervised techniques in the side-by-side comparison (``multimodal_ssl.comparison``,
``lead_agnostic_ssl.comparison``): every method runs through :func:`ecgbook.comparison.run_grid` on
real PTB-XL records, pre-training sees the pre-training folds only, and the random controls are
seed-controlled."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgbook import comparison as cmp
from ecgbook.data.ptbxl import PTBXL
from ecgbook.lead_agnostic_ssl import build_corpus
from ecgbook.lead_agnostic_ssl import comparison as lac
from ecgbook.multimodal_ssl import comparison as mmc
from ecgbook.multimodal_ssl import method as mm_method

CELLS = cmp.grid_cells([1.0], [12, 1], [0])
# the smoke profile's encoders (tiny / smoke), one epoch
MM_BUDGET = dict(encoder_size="tiny", out_dim=64, n_local=1, local_samples=100, pretrain_epochs=1,
                 pretrain_batch=64, pretrain_lr=5e-4, momentum=0.9, ft_epochs=1, ft_batch=64, ft_lr=1e-3)
LA_BUDGET = dict(size="smoke", cinc_records=16, cinc_pairs_per_record=1, mitdb_pairs_per_record=2,
                 pretrain_epochs=1, pretrain_batch_size=16, pretrain_lr=1e-3, pretrain_warmup=0.1,
                 pretrain_schedule="cosine", anneal_to_end=True, finetune_epochs=1, finetune_lr=1e-3, batch_size=32)


@pytest.fixture(scope="module")
def data():
    return cmp.ComparisonData.from_task(PTBXL(fs=100, max_records=300).task("superdiagnostic"))


def _row_keys(X: np.ndarray) -> set[bytes]:
    return {np.ascontiguousarray(x, dtype=np.float32).tobytes() for x in X}


def _check_grid(grid, data, group, pretrained_names):
    split = data.split(10)
    n_classes = len(data.classes)
    for m in group:
        for cell in CELLS:
            run = grid.runs[m.name, cell.label_fraction, cell.leads, cell.seed, 10]
            assert run.val_scores.shape == (len(split.val), n_classes)
            assert run.test_scores.shape == (len(split.test), n_classes)
            assert np.isfinite(run.test_scores).all() and np.isfinite(run.val_scores).all()
            assert (run.history is None) == (m.family == "linear probe")
        assert m.lead_input == "zero-filled"
        assert isinstance(m.parameters(n_classes, 1), int) and m.parameters(n_classes, 1) > 0
    assert sorted(grid.pretraining) == sorted(pretrained_names)
    # the pre-trained method is scored differently from its random control
    for m in group:
        if m.control:
            run, ctl = grid.runs[m.name, 1.0, 12, 0, 10], grid.runs[m.control, 1.0, 12, 0, 10]
            assert not np.allclose(run.test_scores, ctl.test_scores)
    rows = cmp.cell_rows(grid, data.classes, baseline="resnet1d_wang (not run)", n_boot=20)
    vs_random = {(r["model"], r["model_b"], r["leads"]) for r in rows if r["evaluation"] == "vs random init"}
    assert vs_random == {(m.name, m.control, n) for m in group if m.control for n in (12, 1)}
    assert {r["model"] for r in rows if r["evaluation"] == "pooled over seeds"} == {m.name for m in group}


def test_multimodal_methods_run_the_grid_on_pretraining_folds_only(data, monkeypatch):
    seen = []
    original = mm_method.pretrain

    def recording(modality, encoder, X_train, **kw):
        seen.append((modality, np.array(X_train), np.array(kw["X_val"])))
        return original(modality, encoder, X_train, **kw)

    monkeypatch.setattr(mm_method, "pretrain", recording)
    group = mmc.methods(**MM_BUDGET)
    assert [m.name for m in group] == ["DINO (linear probe)", "random (linear probe)", "DINO gate (fine-tune)",
                                       "random gate (fine-tune)"]
    assert [m.control for m in group] == ["random (linear probe)", None, "random gate (fine-tune)", None]
    grid = cmp.run_grid(group, data, test_folds=[10], cells=CELLS)
    _check_grid(grid, data, group, ["DINO (linear probe)", "DINO gate (fine-tune)"])

    # one pre-training per modality, whose inputs are pre-training records only (standardised rows)
    shared = group[0].shared
    assert [s[0] for s in seen] == ["time", "spec"]
    pre = data.pretraining_records()
    held_out = np.flatnonzero(np.isin(data.strat_fold, cmp.HELD_OUT_FOLDS))
    assert len(held_out) > 0
    pre_rows = _row_keys(shared.standardizer.transform(data.X[pre]))
    held_rows = _row_keys(shared.standardizer.transform(data.X[held_out]))
    for _, X_train, X_val in seen:
        rows = _row_keys(X_train) | _row_keys(X_val)
        assert rows <= pre_rows and not rows & held_rows
        assert len(X_train) + len(X_val) == len(pre)
    assert set(shared.pretrain_ids) | set(shared.monitor_ids) == set(data.ecg_id[pre])
    by_id = dict(zip(data.ecg_id, data.patient_id))
    assert not {by_id[i] for i in shared.pretrain_ids} & {by_id[i] for i in shared.monitor_ids}  # patient-wise
    # the standardisation's statistics come from the pre-training part alone
    part = np.isin(data.ecg_id, shared.pretrain_ids)
    np.testing.assert_allclose(shared.standardizer.mean, data.X[part].mean(axis=(0, 2), dtype=np.float64), rtol=1e-5)

    # random controls: the same for equal seeds, another for another seed, never the pre-trained weights
    a, b, c = (shared.encoders(False, s)["time"].state_dict() for s in (0, 0, 1))
    dino = shared.encoders(True)["time"].state_dict()
    key = next(k for k, v in a.items() if v.is_floating_point() and v.numel() > 8)
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key]) and not torch.equal(a[key], dino[key])
    # ... and a fresh random control of the same seed scores the records as the grid's did
    fresh = mmc.methods(**MM_BUDGET)[1]
    fresh.pretrain(data, pre)
    again = fresh.run(data, data.split(10), data.labelled(data.split(10), 1.0), cmp.Cell(1.0, 1, 0))
    np.testing.assert_array_equal(again.test_scores, grid.runs["random (linear probe)", 1.0, 1, 0, 10].test_scores)


def test_lead_agnostic_methods_run_the_grid_on_pretraining_folds_only(data, monkeypatch):
    seen = []
    original = lac.pretrain

    def recording(model, corpus, obj, cfg, **kw):
        seen.append(corpus)
        return original(model, corpus, obj, cfg, **kw)

    monkeypatch.setattr(lac, "pretrain", recording)
    group = lac.methods(**LA_BUDGET)
    assert [m.name for m in group] == ["W2V+CMSC+RLM (linear probe)", "random W2V (linear probe)",
                                       "W2V+CMSC+RLM (fine-tune)", "random W2V (fine-tune)"]
    grid = cmp.run_grid(group, data, test_folds=[10], cells=CELLS)
    _check_grid(grid, data, group, ["W2V+CMSC+RLM (linear probe)", "W2V+CMSC+RLM (fine-tune)"])

    # one pre-training; its PTB-XL pairs are exactly the pre-training records (ids and signals, mV)
    assert len(seen) == 1
    corpus, pre = seen[0], data.pretraining_records()
    ptbxl = corpus.source == "PTB-XL"
    assert list(corpus.recording[ptbxl]) == [f"ptbxl:{i}" for i in data.ecg_id[pre]]
    np.testing.assert_array_equal(np.asarray(corpus.X)[ptbxl], data.X[pre])
    assert {"CinC 2017", "MIT-BIH DS1"} <= set(corpus.source)
    held_out = data.ecg_id[np.isin(data.strat_fold, cmp.HELD_OUT_FOLDS)]
    assert not {f"ptbxl:{i}" for i in held_out} & set(corpus.recording)

    shared = group[0].shared
    a, b, c = (shared.random_encoder(s).state_dict() for s in (0, 0, 1))
    key = next(k for k, v in a.items() if v.is_floating_point() and v.numel() > 8)
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
    assert not torch.equal(a[key], shared.encoder.state_dict()[key])
    fresh = lac.methods(**LA_BUDGET)[1]
    assert fresh.pretrain(data, pre) == {}
    again = fresh.run(data, data.split(10), data.labelled(data.split(10), 1.0), cmp.Cell(1.0, 1, 0))
    np.testing.assert_array_equal(again.test_scores, grid.runs["random W2V (linear probe)", 1.0, 1, 0, 10].test_scores)


def test_build_corpus_takes_an_explicit_ptbxl_part(data):
    idx = data.pretraining_records()[:5]
    corpus = build_corpus(("ptbxl",), ptbxl_data=(data.X[idx], data.ecg_id[idx], data.patient_id[idx]))
    assert list(corpus.recording) == [f"ptbxl:{i}" for i in data.ecg_id[idx]]
    assert list(corpus.patient) == [f"ptbxl:{int(p)}" for p in data.patient_id[idx]]
    np.testing.assert_array_equal(corpus.X, data.X[idx])
    with pytest.raises(ValueError, match="ptbxl_data"):
        build_corpus(("ptbxl",), ptbxl_data=(data.X[idx, :, :500], data.ecg_id[idx], data.patient_id[idx]))
    with pytest.raises(ValueError, match="ptbxl_data"):
        build_corpus(("ptbxl",), ptbxl_records=10, ptbxl_data=(data.X[idx], data.ecg_id[idx], data.patient_id[idx]))


def test_probe_selection_uses_labels_of_pretraining_records_only(data, monkeypatch):
    seen = []
    original = mmc.probe_criterion

    def recording(modality, X_train, Y_train, X_val, Y_val, spectrogram=None, **kw):
        seen.append(np.concatenate([X_train, X_val]))
        return original(modality, X_train, Y_train, X_val, Y_val, spectrogram, **kw)

    monkeypatch.setattr(mmc, "probe_criterion", recording)
    shared = mmc.DinoEncoders("tiny", out_dim=32, n_local=1, local_samples=100, epochs=1, batch=128, lr=5e-4,
                              momentum=0.9, select="probe")
    pre = data.pretraining_records()
    info = shared.pretrain(data, pre)
    assert len(seen) == 2 and "val_probe" in info["time"]["history"][0] and "probe" in info["selection"]
    pre_rows = _row_keys(shared.standardizer.transform(data.X[pre]))
    held_rows = _row_keys(shared.standardizer.transform(data.X[np.isin(data.strat_fold, cmp.HELD_OUT_FOLDS)]))
    for X in seen:
        assert _row_keys(X) <= pre_rows and not _row_keys(X) & held_rows and len(X) == len(pre)


def test_bad_settings_are_named(data):
    with pytest.raises(ValueError, match="select"):
        mmc.DinoEncoders("tiny", out_dim=8, n_local=1, local_samples=None, epochs=1, batch=8, lr=1e-3, momentum=0.9,
                         select="probe-on-test")
    with pytest.raises(ValueError, match="size"):
        mmc.DinoEncoders("huge", out_dim=8, n_local=1, local_samples=None, epochs=1, batch=8, lr=1e-3, momentum=0.9)
    group = mmc.methods(**MM_BUDGET)
    split = data.split(10)
    with pytest.raises(RuntimeError, match="pretrain"):
        group[0].run(data, split, split.train, cmp.Cell(1.0, 12, 0))
