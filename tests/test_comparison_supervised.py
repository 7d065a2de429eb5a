"""MRM-Net (chapter 05) and the 2-D transfer technique (chapter 03) as methods of the side-by-side
comparison (ecgbook.comparison), on real PTB-XL records."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgbook import comparison
from ecgbook.comparison import Cell, ComparisonData, grid_cells, run_grid
from ecgbook.data.ptbxl import PTBXL
from ecgbook.models import backbones
from ecgbook.models.mrmnet import MRMNet
from ecgbook.mrmnet import comparison as mrm
from ecgbook.transfer import comparison as tl

CELLS = grid_cells([0.5, 1.0], [12, 1], [0])
TEST_FOLD = 10


# tiny tensors: one intra-op thread avoids the contention that makes them many times slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data() -> ComparisonData:
    return ComparisonData.from_task(PTBXL(fs=100, max_records=300).task("superdiagnostic"))


def _few_per_fold(data: ComparisonData, k: int) -> ComparisonData:
    """The first ``k`` records of every fold (the transfer test extracts 12 images per record)."""
    idx = np.concatenate([np.flatnonzero(data.strat_fold == f)[:k] for f in sorted(set(data.strat_fold))])
    return ComparisonData(data.X[idx], data.Y[idx], data.classes, data.ecg_id[idx], data.patient_id[idx],
                          data.strat_fold[idx], data.fs, data.task)


def _check_grid(grid, data, name):
    split = data.split(TEST_FOLD)
    assert sorted(k for k in grid.runs if k[0] == name) == sorted((name, c.label_fraction, c.leads, c.seed, TEST_FOLD) for c in CELLS)
    for run in (grid.runs[k] for k in grid.runs if k[0] == name):
        assert run.test_scores.shape == (len(split.test), len(data.classes))
        assert run.val_scores.shape == (len(split.val), len(data.classes))
        assert np.isfinite(run.test_scores).all() and ((run.test_scores >= 0) & (run.test_scores <= 1)).all()
    assert grid.pooled(name, 1.0, 1, 0).shape == (len(split.test), len(data.classes))


def test_mrmnet_runs_the_grid_on_the_lead_sets_channels(data):
    data = _few_per_fold(data, 8)
    method = mrm.method(epochs=1, batch_size=64, lr=1e-3)
    assert (method.name, method.family, method.lead_input) == ("mrmnet", "supervised", "lead set")
    built = []
    build = method.build

    def recording(n_leads, n_classes):
        model = build(n_leads, n_classes)
        built.append((n_leads, model))
        return model

    method.build = recording
    grid = run_grid([method], data, test_folds=[TEST_FOLD], cells=CELLS)
    _check_grid(grid, data, "mrmnet")
    assert sorted(n for n, _ in built) == [1, 1, 12, 12]  # fractions at 12 and at 1 lead
    one = next(m for n, m in built if n == 1)
    assert isinstance(one, MRMNet) and one.config.n_leads == 1 and one.config.exchange == "every_stage"
    assert next(p for p in one.parameters() if p.dim() == 3).shape[1] == 1  # the stem's first conv: 1 channel
    with pytest.raises(ValueError, match="lead"):
        one(torch.zeros(2, 12, 250))
    run = grid.runs["mrmnet", 1.0, 12, 0, TEST_FOLD]
    assert run.epochs == 1 and len(run.history) == 1 and {"train_bce_high", "train_bce_low", "train_kl"} <= set(run.history[0])
    assert method.parameters(5, leads=1) < method.parameters(5, leads=12)


def test_mrmnet_method_rejects_a_bad_budget():
    with pytest.raises(ValueError, match="epochs"):
        mrm.method(epochs=0, batch_size=64, lr=1e-3)


def test_transfer_methods_extract_features_once_and_run_the_grid(data, tmp_path, monkeypatch):
    small = _few_per_fold(data, 1)
    calls = []
    extract = backbones.extract_features

    def counting(segments, *args, **kwargs):
        calls.append(len(segments))
        return extract(segments, *args, **kwargs)

    monkeypatch.setattr(backbones, "extract_features", counting)
    methods = [tl.method(32, 64, cache_dir=tmp_path), tl.control(32, 64, cache_dir=tmp_path)]
    assert methods[0].control == methods[1].name and methods[1].control is None
    assert {m.family for m in methods} == {"frozen features"} and "adaptation" in methods[0].description
    grid = run_grid(methods, small, test_folds=[TEST_FOLD], cells=CELLS)
    assert calls == [len(small)] * 24  # 12 leads, once per method, for every label fraction and lead set
    assert set(grid.pretraining) == {tl.NAME, tl.CONTROL_NAME}
    for m in methods:
        _check_grid(grid, small, m.name)
        assert {k: v.shape for k, v in m.features(small).items()} == {
            t: (len(small), 12, m.backbone.tap_channels[t]) for t in tl.DEFAULT_TAPS}
        assert "tap" in grid.runs[m.name, 1.0, 1, 0, TEST_FOLD].note
    # the random-weight control's features differ from ImageNet's
    assert not np.allclose(methods[0].features(small)["stage7"], methods[1].features(small)["stage7"])
    # another run of the chapter reads the features back from the disk cache
    again = tl.method(32, 64, cache_dir=tmp_path)
    again.features(small)
    assert len(calls) == 24 and again.extraction["from_cache"]


def test_transfer_features_do_not_depend_on_the_labels(data):
    small = ComparisonData(data.X[:3], data.Y[:3], data.classes, data.ecg_id[:3], data.patient_id[:3],
                           data.strat_fold[:3], data.fs, data.task)
    shuffled = ComparisonData(small.X, np.random.default_rng(0).permutation(small.Y), small.classes, small.ecg_id,
                              small.patient_id, small.strat_fold, small.fs, small.task)
    a = tl.method(32, 64, cache=False).features(small)
    b = tl.method(32, 64, cache=False).features(shuffled)
    assert all(np.array_equal(a[t], b[t]) for t in tl.DEFAULT_TAPS)


def test_transfer_method_probes_the_lead_sets_columns(data, monkeypatch):
    small = _few_per_fold(data, 2)
    m = tl.method(32, 64, cache=False, taps=("stage7",))
    m._features = {"stage7": np.random.default_rng(0).normal(size=(len(small), 12, 16)).astype(np.float32)}
    m._for = small.ecg_id.copy()
    widths = []
    probe = tl.linear_probe

    def recording(F_train, *args, **kwargs):
        widths.append(F_train.shape[1])
        return probe(F_train, *args, **kwargs)

    monkeypatch.setattr(tl, "linear_probe", recording)
    split = small.split(TEST_FOLD)
    runs = [m.run(small, split, split.train, Cell(1.0, leads, 0)) for leads in (12, 6, 1)]
    assert widths == [12 * 16, 6 * 16, 16]
    again = m.run(small, split, split.train, Cell(1.0, 6, 1))  # another seed: the deterministic probe is reused
    assert widths == [12 * 16, 6 * 16, 16] and "seed 0" in again.note
    assert np.array_equal(again.test_scores, runs[1].test_scores)
    m.run(small, split, split.train[:-1], Cell(1.0, 6, 1))  # other records: a new probe
    assert widths[-1] == 6 * 16 and len(widths) == 4
    assert m.parameters(5, leads=1) < m.parameters(5, leads=12)


def test_transfer_method_rejects_bad_arguments():
    with pytest.raises(ValueError, match="taps"):
        tl.method(32, 64, taps=("nope",))
    with pytest.raises(ValueError, match="size"):
        tl.method(16, 64)
    with pytest.raises(ValueError, match="batch_size"):
        tl.method(32, 0)


def test_supervised_method_passes_its_loss(data):
    """SupervisedMethod's loss_fn reaches the training loop (MRM-Net's mutual loss parts are logged)."""
    m = comparison.SupervisedMethod("plain", mrm.build, epochs=1, batch_size=64, lr=1e-3)
    data = _few_per_fold(data, 8)
    split = data.split(TEST_FOLD)
    run = m.run(data, split, data.labelled(split, 0.5), Cell(0.5, 1, 0))
    assert "train_kl" not in run.history[0] and "train_loss" in run.history[0]
