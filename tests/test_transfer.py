"""Spectrogram images, frozen backbones, feature extraction and caching, classifiers inside folds."""
from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from ecgbook import evaluation as E
from ecgbook import transfer as T
from ecgbook.models import backbones as B
from ecgbook.models.densenet import WeightsUnavailableError

FS = 300.0
SMALL = T.SpectrogramSettings(nperseg=64, noverlap=48, fmax=50.0, size=64)


def _sine(freq: float, seconds: float = 4.0, fs: float = FS) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


@pytest.fixture(scope="module")
def lite() -> T.Backbone:
    return T.load_backbone("efficientnet_lite0", "imagenet")


@pytest.fixture
def offline(monkeypatch):
    """Make every torch hub download fail as on a machine without internet access."""
    def fail(url, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **kwargs: fail(url))  # ecgbook downloads with it (integrity)


# --------------------------------------------------------------------------- images

def test_spectrogram_image_shape_and_range():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2700).astype(np.float32) * 0.1 + _sine(8.0, 9.0)
    img = T.spectrogram_image(x, FS)
    assert img.shape == (3, 224, 224) and img.dtype == torch.float32
    assert torch.isfinite(img).all()
    mean, std = torch.tensor(T.IMAGENET_MEAN), torch.tensor(T.IMAGENET_STD)
    lower, upper = (0 - mean) / std, (1 - mean) / std  # ImageNet normalisation of [0, 1]
    for c in range(3):
        assert img[c].min() >= lower[c] - 1e-5 and img[c].max() <= upper[c] + 1e-5
        assert img[c].max() - img[c].min() > 0.8 * (upper[c] - lower[c])  # min-max scaled per image
    grey = img * std.view(3, 1, 1) + mean.view(3, 1, 1)
    torch.testing.assert_close(grey[0], grey[1])  # one grey image replicated to the three channels
    torch.testing.assert_close(grey[0], grey[2])


def test_sine_appears_at_its_frequency_row():
    """A 10 Hz sine with fmax = 50 Hz: the brightest row sits 10/50 of the height above the bottom."""
    settings = T.SpectrogramSettings(nperseg=150, noverlap=100, fmax=50.0, size=100)
    img = T.spectrogram_images(_sine(10.0)[None], FS, settings, mean=(0, 0, 0), std=(1, 1, 1))[0, 0]
    row = int(img.mean(dim=1).argmax())
    # nperseg 150 at 300 Hz: bins 2 Hz apart, 26 of them from 0 to 50 Hz; flipped, 50 Hz is row 0 and
    # 10 Hz (bin 5) is row 20; bilinear resizing (align_corners=False) maps input row i to (i + 0.5) * 100/26 - 0.5
    expected = (20 + 0.5) * 100 / 26 - 0.5
    assert abs(row - expected) <= 2, (row, expected)


def test_constant_signal_gives_blank_image():
    img = T.spectrogram_images(np.zeros((2, 600), np.float32), FS, SMALL, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert img.shape == (2, 3, 64, 64)
    torch.testing.assert_close(img, torch.full_like(img, -2.0))  # (0 - 0.5) / 0.25


def test_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        T.spectrogram_images(np.full((1, 600), np.nan), FS, SMALL)
    with pytest.raises(ValueError, match="segments"):
        T.spectrogram_images(np.zeros((1, 2, 600)), FS, SMALL)
    with pytest.raises(ValueError, match="size"):
        T.SpectrogramSettings(size=16)


def test_settings_key_is_stable_and_sensitive():
    a, b = T.SpectrogramSettings(), T.SpectrogramSettings()
    assert a.key() == b.key() == "stft-n128-o96-f50-s224-log"
    keys = {a.key(), T.SpectrogramSettings(nperseg=64).key(), T.SpectrogramSettings(noverlap=None).key(),
            T.SpectrogramSettings(fmax=None).key(), T.SpectrogramSettings(size=128).key(),
            T.SpectrogramSettings(log=False).key()}
    assert len(keys) == 6


# --------------------------------------------------------------------------- backbones

def test_backbone_is_frozen_and_described(lite):
    assert lite.name == "efficientnet_lite0" and lite.weights == "imagenet" and lite.seed is None
    assert lite.input_size == 224 and lite.key == "efficientnet_lite0-imagenet"
    assert lite.mean == T.LITE_MEAN and lite.std == T.LITE_STD
    assert not lite.model.training
    assert not any(p.requires_grad for p in lite.model.parameters())
    assert lite.taps[-1] == "final" and lite.tap_channels["final"] == 1280


def test_random_backbone_is_seeded_and_differs_from_imagenet(lite):
    state_before = torch.random.get_rng_state()
    r0 = T.load_backbone("efficientnet_lite0", "random", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state_before)  # global RNG untouched
    r0b = T.load_backbone("efficientnet_lite0", "random", seed=0)
    r1 = T.load_backbone("efficientnet_lite0", "random", seed=1)
    assert r0.weights == "random" and r0.key == "efficientnet_lite0-random-seed0"
    w = "_blocks.3._depthwise_conv.weight"
    assert torch.equal(r0.model.state_dict()[w], r0b.model.state_dict()[w])
    assert not torch.equal(r0.model.state_dict()[w], r1.model.state_dict()[w])
    assert not torch.equal(r0.model.state_dict()[w], lite.model.state_dict()[w])
    x = torch.randn(2, 3, 64, 64)
    f0, f0b, fi = r0(x)["final"], r0b(x)["final"], lite(x)["final"]
    torch.testing.assert_close(f0, f0b)
    assert not torch.allclose(f0, fi)


def test_densenet_random_backbone_deterministic():
    a = T.load_backbone("densenet121", "random", seed=3)
    b = T.load_backbone("densenet121", "random", seed=3)
    key = "features.denseblock2.denselayer1.conv1.weight"
    assert torch.equal(a.model.state_dict()[key], b.model.state_dict()[key])
    assert a.mean == T.IMAGENET_MEAN and a.taps == ("denseblock1", "denseblock2", "denseblock3", "denseblock4", "final")


def test_densenet_imagenet_unavailable_and_fallback(offline):
    with pytest.raises(WeightsUnavailableError, match="densenet121.*ImageNet weights unavailable"):
        T.load_backbone("densenet121", "imagenet")
    best = T.best_available_backbone()
    assert best.name == "efficientnet_lite0" and best.weights == "imagenet"
    with pytest.raises(WeightsUnavailableError, match="densenet161"):
        T.best_available_backbone(preferred=("densenet161",))


def test_load_backbone_bad_arguments():
    with pytest.raises(ValueError, match="resnet50"):
        T.load_backbone("resnet50")
    with pytest.raises(ValueError, match="weights"):
        T.load_backbone("densenet121", "cifar")


# --------------------------------------------------------------------------- features

def test_extract_features_shapes_and_batching(lite):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 600)).astype(np.float32)
    f = T.extract_features(X, FS, lite, SMALL, batch_size=2, device="cpu")
    assert list(f) == list(lite.taps)
    for tap, width in lite.tap_channels.items():
        assert f[tap].shape == (5, width) and f[tap].dtype == np.float32
    assert f.images_per_s > 0 and f.device == "cpu" and not f.from_cache
    one_batch = T.extract_features(X, FS, lite, SMALL, batch_size=5, taps=["stage3", "final"])
    assert list(one_batch) == ["stage3", "final"]
    np.testing.assert_allclose(one_batch["final"], f["final"], rtol=1e-4, atol=1e-5)
    direct = lite(T.spectrogram_images(X[3:4], FS, SMALL, lite.mean, lite.std))["stage3"].numpy()
    np.testing.assert_allclose(f["stage3"][3:4], direct, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="taps"):
        T.extract_features(X, FS, lite, SMALL, taps=["denseblock1"])


def test_densenet_features_shapes_small():
    bb = T.load_backbone("densenet121", "random")
    X = np.random.default_rng(2).standard_normal((2, 600)).astype(np.float32)
    f = T.extract_features(X, FS, bb, SMALL, device="cpu")
    assert {t: a.shape for t, a in f.items()} == {"denseblock1": (2, 256), "denseblock2": (2, 512),
                                                 "denseblock3": (2, 1024), "denseblock4": (2, 1024),
                                                 "final": (2, 1024)}


def test_feature_cache_reused_and_invalidated(lite, tmp_path, monkeypatch):
    calls = []
    real = T.extract_features

    def counting(*args, **kwargs):
        calls.append(kwargs.get("taps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(B, "extract_features", counting)  # cached_features lives in models.backbones
    X = np.random.default_rng(3).standard_normal((3, 600)).astype(np.float32)
    first = T.cached_features("toy", X, FS, lite, SMALL, cache_dir=tmp_path, taps=["stage2", "final"])
    assert len(calls) == 1 and not first.from_cache
    again = T.cached_features("toy", X, FS, lite, SMALL, cache_dir=tmp_path, taps=["stage2", "final"])
    assert len(calls) == 1 and again.from_cache
    for tap in ("stage2", "final"):
        np.testing.assert_array_equal(again[tap], first[tap])
    assert again.images_per_s == pytest.approx(first.images_per_s)

    random_lite = T.load_backbone("efficientnet_lite0", "random", seed=0)
    changes = [
        dict(settings=T.SpectrogramSettings(nperseg=32, noverlap=16, fmax=50.0, size=64)),
        dict(taps=["final"]),
        dict(backbone=random_lite),
        dict(dataset_key="other"),
        dict(segments=X[:2]),
    ]
    for n, change in enumerate(changes, start=2):
        args = dict(dataset_key="toy", segments=X, fs=FS, backbone=lite, settings=SMALL,
                    cache_dir=tmp_path, taps=["stage2", "final"])
        args.update(change)
        out = T.cached_features(**args)
        assert len(calls) == n and not out.from_cache, change
    assert len(list(tmp_path.glob("*.npz"))) == 6 and not list(tmp_path.glob("*.part"))
    T.cached_features("toy", X, FS, lite, SMALL, cache_dir=tmp_path, taps=["stage2", "final"])
    assert len(calls) == 6  # the first entry is still reused


def test_real_cinc2017_excerpts_to_features(lite, mirror):
    from ecgbook.data.cinc2017 import CinC2017

    ds = CinC2017()
    X, y = ds.segments(seconds=9, names=ds.records[:4])
    f = T.extract_features(X, ds.fs, lite, T.SpectrogramSettings(size=64), taps=["final"])
    assert f["final"].shape == (4, 1280) and np.isfinite(f["final"]).all()
    assert len(np.unique(f["final"].round(4), axis=0)) == 4  # four different records, four feature vectors


# --------------------------------------------------------------------------- classifiers and folds

def test_make_classifier():
    svm = T.make_classifier("linear_svm", seed=1)
    assert [name for name, _ in svm.steps] == ["scale", "clf"] and isinstance(svm[-1], LinearSVC)
    assert isinstance(T.make_classifier("logreg")[-1], LogisticRegression)
    with pytest.raises(ValueError, match="rbf"):
        T.make_classifier("rbf")


def test_stratified_folds_partition_and_stratify():
    y = np.array(["N"] * 50 + ["A"] * 20 + ["O"] * 30)
    folds = T.stratified_folds(y, k=10, seed=0)
    assert len(folds) == 10
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested) == list(range(100))
    for train, test in folds:
        assert not set(train) & set(test)
        assert (y[test] == "A").sum() == 2 and (y[test] == "N").sum() == 5


def test_patient_folds_never_share_a_patient():
    groups = np.repeat(np.arange(30), 4)  # 30 patients, 4 records each
    y = np.where(groups % 3 == 0, "A", "N")
    folds = T.patient_folds(y, groups, k=5, seed=0)
    assert sorted(np.concatenate([te for _, te in folds])) == list(range(120))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(ValueError, match="fewer than k"):
        T.patient_folds(y[:8], groups[:8], k=5)
    with pytest.raises(ValueError, match="groups"):
        T.patient_folds(y, groups[:-1], k=5)


def test_cross_validation_fits_on_training_part_only(monkeypatch):
    rng = np.random.default_rng(0)
    y = np.array(["A", "B"] * 30)
    X = rng.standard_normal((60, 4)) + (y == "A")[:, None] * 4.0  # separable
    folds = T.stratified_folds(y, k=5, seed=0)
    fitted = []
    real = T.make_classifier

    def spying(*args, **kwargs):
        model = real(*args, **kwargs)
        fit = model.fit

        def recording_fit(Xf, yf):
            fitted.append(Xf.copy())
            return fit(Xf, yf)

        model.fit = recording_fit
        return model

    monkeypatch.setattr(E, "make_classifier", spying)  # the folds run in ecgbook.evaluation
    monkeypatch.setenv("ECGBOOK_JOBS", "1")  # in this process, where the spy is
    res = T.cross_validate_features(X, y, folds, classifier="logreg", labels=["A", "B"])
    assert len(fitted) == 5
    for (train, _), Xf in zip(folds, fitted):
        np.testing.assert_array_equal(Xf, X[train])
    assert res["accuracy"] == 1.0 and res["macro_f1"] == 1.0
    assert res["confusion"].loc["A", "A"] == 30 and res["confusion"].to_numpy().sum() == 60
    assert [f["n_test"] for f in res["per_fold"]] == [12] * 5
    assert sorted(res["fold"]) == sorted(np.repeat(np.arange(5), 12))


def test_cross_validation_at_chance_on_noise():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((200, 5)), rng.choice(["A", "B"], 200)
    res = T.cross_validate_features(X, y, T.stratified_folds(y, k=5, seed=0))
    assert 0.35 < res["accuracy"] < 0.65


def test_cross_validation_rejects_bad_folds():
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)
    with pytest.raises(ValueError, match="both"):
        T.cross_validate_features(X, y, [(np.array([0, 1, 2]), np.array([2, 3, 4, 5])),
                                         (np.array([2, 3, 4, 5]), np.array([0, 1]))])
    with pytest.raises(ValueError, match="no test part"):
        T.cross_validate_features(X, y, [(np.array([0, 1, 2]), np.array([3, 4, 5]))])


def test_cross_validation_on_a_record_split_tests_only_the_test_records():
    rng = np.random.default_rng(2)
    record = np.repeat(["r1", "r2", "r3", "r4"], 10)
    y = np.tile(["A", "B"], 20)
    X = rng.standard_normal((40, 3)) + (y == "A")[:, None] * 5.0
    folds = T.record_split(record, ["r1", "r2"], ["r4"])
    (train, test), = folds
    np.testing.assert_array_equal(train, np.arange(20))
    np.testing.assert_array_equal(test, np.arange(30, 40))
    res = T.cross_validate_features(X, y, folds, classifier="logreg", require_partition=False)
    np.testing.assert_array_equal(res["index"], np.arange(30, 40))
    assert len(res["predictions"]) == 10 and res["accuracy"] == 1.0
    assert res["confusion"].to_numpy().sum() == 10 and (res["fold"] == 0).all()
    with pytest.raises(ValueError, match="no test part"):
        T.cross_validate_features(X, y, folds)  # a split is not a partition
    with pytest.raises(ValueError, match="share records"):
        T.record_split(record, ["r1", "r2"], ["r2"])
    with pytest.raises(ValueError, match="non-empty"):
        T.record_split(record, ["r1"], ["r9"])


def test_cap_per_class_hand_worked():
    y = np.array(["N"] * 10 + ["S"] * 3 + ["V"] * 6)
    keep = T.cap_per_class(y, 4, seed=0)
    assert keep.dtype == np.int64 and list(keep) == sorted(keep)
    assert {c: int((y[keep] == c).sum()) for c in "NSV"} == {"N": 4, "S": 3, "V": 4}
    assert len(np.unique(keep)) == len(keep)
    np.testing.assert_array_equal(keep, T.cap_per_class(y, 4, seed=0))  # seeded
    assert not np.array_equal(keep, T.cap_per_class(y, 4, seed=1))
    np.testing.assert_array_equal(T.cap_per_class(y, None), np.arange(len(y)))
    with pytest.raises(ValueError, match="per_class"):
        T.cap_per_class(y, 0)


def _two_taps(n: int = 80, seed: int = 0):
    """An informative tap ('deep') and a pure-noise tap ('shallow'), labels A/B."""
    rng = np.random.default_rng(seed)
    y = np.tile(["A", "B"], n // 2)
    informative = rng.standard_normal((n, 3)) + (y == "A")[:, None] * 4.0
    return {"shallow": rng.standard_normal((n, 3)), "deep": informative}, y


def _spy_fits(monkeypatch) -> list:
    fitted = []
    real = T.make_classifier

    def spying(*args, **kwargs):
        model = real(*args, **kwargs)
        fit = model.fit

        def recording_fit(Xf, yf):
            fitted.append(np.asarray(Xf).copy())
            return fit(Xf, yf)

        model.fit = recording_fit
        return model

    monkeypatch.setattr(E, "make_classifier", spying)  # the folds run in ecgbook.evaluation
    monkeypatch.setenv("ECGBOOK_JOBS", "1")  # in this process, where the spy is
    return fitted


def _rows_of(X: np.ndarray, rows: np.ndarray) -> set[int]:
    """Indices of the rows of ``X`` that appear in ``rows``."""
    lookup = {row.tobytes(): i for i, row in enumerate(X)}
    return {lookup[r.tobytes()] for r in rows}


def test_select_tap_uses_training_part_only(monkeypatch):
    features, y = _two_taps()
    train, test = np.arange(60), np.arange(60, 80)
    fitted = _spy_fits(monkeypatch)
    best, scores = T.select_tap(features, y, train, classifier="logreg", val_fraction=0.25)
    assert best == "deep" and set(scores) == {"shallow", "deep"}
    assert scores["deep"] == 1.0 and scores["shallow"] < 0.9
    assert len(fitted) == 2
    for Xf, tap in zip(fitted, features):
        used = _rows_of(features[tap], Xf)
        assert used <= set(train) and len(used) == 45  # 3/4 of the training part
    with pytest.raises(ValueError, match="val_fraction"):
        T.select_tap(features, y, train, val_fraction=0.7)


def test_select_tap_grouped_inner_split_keeps_patients_apart(monkeypatch):
    features, y = _two_taps(n=96)
    groups = np.repeat(np.arange(24), 4)  # 24 patients, 2 beats of each class
    train = np.flatnonzero(groups < 20)
    fitted = _spy_fits(monkeypatch)
    best, _ = T.select_tap(features, y, train, groups=groups, val_fraction=0.25)
    assert best == "deep"
    used = _rows_of(features["deep"], fitted[1])
    held_out = set(train) - used
    assert used <= set(train) and held_out
    assert not set(groups[list(used)]) & set(groups[list(held_out)])
    with pytest.raises(ValueError, match="groups"):
        T.select_tap(features, y, train[:8], groups=groups)  # 2 patients cannot give 4 inner folds


def test_cross_validate_selected_tap_is_nested(monkeypatch):
    features, y = _two_taps(n=100, seed=3)
    folds = T.stratified_folds(y, k=5, seed=0)
    fitted = _spy_fits(monkeypatch)
    res = T.cross_validate_selected_tap(features, y, folds, classifiers=("linear_svm", "logreg"))
    assert res["taps"] == ["deep"] * 5 and len(res["selection"]) == 5
    assert len(fitted) == 5 * 2 + 5 * 2  # per fold: one selection fit per tap, one fit per classifier
    for name in ("linear_svm", "logreg"):
        assert res[name]["accuracy"] > 0.95
        np.testing.assert_array_equal(res[name]["index"], np.arange(100))
    # the outer test part of a fold never enters a fit of that fold
    per_fold = [fitted[i * 2:(i + 1) * 2] for i in range(5)]  # selection fits come first, fold by fold
    for (train, test), fits in zip(folds, per_fold):
        for Xf, tap in zip(fits, features):
            assert not _rows_of(features[tap], Xf) & set(test)
    for k, (train, test) in enumerate(folds):
        for Xf in fitted[10 + k::5]:  # the classifiers' fits at the chosen tap, fold k
            assert _rows_of(features["deep"], Xf) == set(train)
    with pytest.raises(ValueError, match="classifiers"):
        T.cross_validate_selected_tap(features, y, folds, classifiers=("rbf",))


def test_mitdb_beat_set_real_records(mirror):
    from ecgbook import signal
    from ecgbook.data.mitdb import MITBIH

    db = MITBIH()
    records = ["208", "202"]
    raw = T.mitdb_beat_set(db, records, per_class=5, seed=0, band=None)
    assert raw.X.shape == (len(raw), 720) and raw.X.dtype == np.float32 and raw.fs == 360.0
    counts = raw.counts()
    def inside(r, half):  # beats whose +-half window lies inside the 650,000-sample record
        b = db.beats(r)
        return b.aami[(b.sample >= half) & (b.sample + half <= 650000)]

    expected = {c: int(sum((inside(r, 360) == c).sum() for r in records)) for c in T.BEAT_CLASSES}
    assert expected["F"] > 300 and expected["S"] > 0  # record 208 is rich in fusion beats
    for c in T.BEAT_CLASSES:
        assert counts.loc[c, "available"] == expected[c]
        assert counts.loc[c, "kept"] == min(5, expected[c])
    signals = {r: db.read(r).signal[0] for r in records}
    for x, r, s in zip(raw.X, raw.record, raw.sample):
        np.testing.assert_array_equal(x, signals[r][s - 360:s + 360])
    assert set(raw.patient) == {"208", "201"}  # record 202 is patient 201's second record
    filtered = T.mitdb_beat_set(db, records, per_class=5, seed=0)  # 1-s filter margin on each side
    assert filtered.available["N"] == int(sum((inside(r, 720) == "N").sum() for r in records))
    r, s = filtered.record[0], int(filtered.sample[0])
    wide = signal.bandpass(signals[r][s - 720:s + 720][None], 360.0, 0.5, 40.0)[0]
    np.testing.assert_allclose(filtered.X[0], wide[360:1080], atol=1e-5)
    assert abs(float(filtered.X.mean())) < 0.05  # no electrode offset left
    with pytest.raises(ValueError, match="records"):
        T.mitdb_beat_set(db, [])
