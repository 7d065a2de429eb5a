"""Tests of :mod:`ecgbook.signal` on hand-worked synthetic signals and on a real PTB-XL record."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal

from ecgbook.data import read_record
from ecgbook.signal import (LIMB_DERIVED, STD_FLOOR, Standardizer, bandpass, crop, derive_limb_leads,
                            remove_baseline, resample, select_leads, sliding_windows, spectrogram)

FS = 250.0


def _sine(freq, seconds=60.0, fs=FS, amplitude=1.0, phase=0.0):
    t = np.arange(int(seconds * fs)) / fs
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def _amplitude(y, freq, fs=FS):
    """Amplitude of the ``freq`` component by least squares on sin/cos (robust to other components)."""
    t = np.arange(len(y)) / fs
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    return float(np.hypot(coef[0], coef[1]))


@pytest.fixture(scope="module")
def ptbxl_record(mirror):
    return read_record(mirror / "physionet.org/files/ptb-xl/1.0.3/records100/00000/00001_lr")


# ---------------------------------------------------------------- filters

@pytest.mark.parametrize("filt", [lambda x: bandpass(x, FS), lambda x: remove_baseline(x, FS)],
                         ids=["bandpass", "remove_baseline"])
def test_filter_removes_drift_keeps_10hz(filt):
    ecg_like = _sine(10.0)
    drift = _sine(0.1, amplitude=2.0, phase=0.7)
    y = filt(np.stack([ecg_like + drift, ecg_like]))  # (leads, samples)
    assert y.shape == (2, ecg_like.size) and y.dtype == np.float32
    mid = slice(int(10 * FS), int(50 * FS))  # away from the start-up transients at both ends
    assert _amplitude(y[0, mid], 10.0) == pytest.approx(1.0, rel=0.02)
    assert _amplitude(y[0, mid], 0.1) < 0.01  # 2 mV drift attenuated more than 200-fold
    # Zero phase: sample by sample the output is the clean sine, not a time-shifted copy of it.
    np.testing.assert_allclose(y[0, mid], ecg_like[mid], atol=0.02)
    np.testing.assert_allclose(y[1, mid], ecg_like[mid], atol=0.02)


@pytest.mark.parametrize("freq", [0.2, 1.0, 20.0, 45.0, 50.0, 60.0])
def test_bandpass_gain_is_squared_butterworth_response(freq):
    """Forward-backward filtering applies the Butterworth magnitude response twice (and no phase)."""
    y = bandpass(_sine(freq, seconds=40), FS)
    sos = scipy.signal.butter(3, [0.5, 40.0], btype="bandpass", fs=FS, output="sos")
    _, h = scipy.signal.sosfreqz(sos, worN=[freq], fs=FS)
    mid = slice(int(10 * FS), int(30 * FS))
    assert _amplitude(y[mid], freq) == pytest.approx(abs(h[0]) ** 2, rel=0.02, abs=2e-3)


def test_bandpass_batched_equals_per_lead():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 2000)).astype(np.float32)
    y = bandpass(x, FS, 1.0, 30.0)
    np.testing.assert_allclose(y[2, 1], bandpass(x[2, 1], FS, 1.0, 30.0), rtol=1e-5, atol=1e-6)
    sos = scipy.signal.butter(3, [1.0, 30.0], btype="bandpass", fs=FS, output="sos")
    np.testing.assert_allclose(y, scipy.signal.sosfiltfilt(sos, x, axis=-1), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(low=0.5, high=125.0), "125.0"),
    (dict(low=40.0, high=30.0), "low=40.0"),
    (dict(low=0.0, high=30.0), "positive"),
])
def test_bandpass_rejects_bad_cutoffs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bandpass(np.zeros(1000, np.float32), FS, **kwargs)


def test_filters_reject_short_signal_and_bad_fs():
    with pytest.raises(ValueError, match="samples"):
        bandpass(np.zeros(10, np.float32), FS)
    with pytest.raises(ValueError, match="fs"):
        bandpass(np.zeros(1000, np.float32), 0)
    with pytest.raises(ValueError, match="cutoff"):
        remove_baseline(np.zeros(1000, np.float32), 100.0, cutoff=60.0)


# ---------------------------------------------------------------- resampling

@pytest.mark.parametrize("fs_in, fs_out", [(360.0, 100.0), (500.0, 250.0), (100.0, 500.0), (257.0, 100.0)])
def test_resample_length_and_sine(fs_in, fs_out):
    seconds = 10.0
    x = np.stack([_sine(5.0, seconds, fs_in), _sine(5.0, seconds, fs_in, phase=1.0)])
    y = resample(x, fs_in, fs_out)
    assert y.dtype == np.float32
    assert y.shape == (2, int(round(seconds * fs_out)))
    expected = np.stack([_sine(5.0, seconds, fs_out), _sine(5.0, seconds, fs_out, phase=1.0)])
    edge = int(fs_out)  # the polyphase filter's edge effects last well under a second
    np.testing.assert_allclose(y[:, edge:-edge], expected[:, edge:-edge], atol=0.01)


def test_resample_identity_and_errors():
    x = _sine(3.0, 2.0)
    out = resample(x, FS, FS)
    np.testing.assert_array_equal(out, x)
    assert out is not x
    with pytest.raises(ValueError, match="fs_out"):
        resample(x, FS, -1)
    with pytest.raises(ValueError, match="denominator"):
        resample(x, 1000.0, 1000.3)


# ---------------------------------------------------------------- standardizer

def test_standardizer_fitted_on_train_only():
    rng = np.random.default_rng(1)
    scale = np.array([1.0, 5.0, 0.1], np.float32)[None, :, None]
    offset = np.array([0.0, -3.0, 2.0], np.float32)[None, :, None]
    train = (rng.standard_normal((20, 3, 500)) * scale + offset).astype(np.float32)
    test = (rng.standard_normal((5, 3, 500)) * scale * 2 + offset + 1).astype(np.float32)
    std = Standardizer()
    z = std.fit_transform(train)
    assert z.dtype == np.float32 and z.shape == train.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1.0, atol=1e-5)
    np.testing.assert_allclose(std.mean, train.mean(axis=(0, 2)), rtol=1e-5, atol=1e-6)
    zt = std.transform(test)
    # The test set is transformed with the training statistics, not its own.
    np.testing.assert_allclose(zt, (test - std.mean[:, None]) / std.std[:, None], rtol=1e-4, atol=1e-5)
    assert zt.std(axis=(0, 2)) == pytest.approx([2.0, 2.0, 2.0], rel=0.1)
    # One record (leads, samples) is accepted by transform.
    np.testing.assert_allclose(std.transform(test[0]), zt[0])


def test_standardizer_state_dict_round_trip_and_flat_lead():
    x = np.zeros((2, 2, 100), np.float32)
    x[:, 1] = np.linspace(-1, 1, 100)
    std = Standardizer().fit(x)
    assert std.std[0] == STD_FLOOR  # flat lead: floored, not zero
    assert np.isfinite(std.transform(x)).all()
    state = json.loads(json.dumps(std.state_dict()))
    again = Standardizer.from_state_dict(state)
    np.testing.assert_array_equal(again.transform(x), std.transform(x))


def test_standardizer_errors():
    std = Standardizer()
    with pytest.raises(RuntimeError, match="before fit"):
        std.transform(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(records, leads, samples\)"):
        std.fit(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        std.fit(np.full((1, 2, 10), np.nan, np.float32))
    std.fit(np.random.default_rng(0).standard_normal((2, 12, 50)))
    with pytest.raises(ValueError, match="1 leads.*fitted on 12"):
        std.transform(np.zeros((1, 50), np.float32))
    with pytest.raises(ValueError, match="'mean' has 2 values, 'std' has 1"):
        Standardizer.from_state_dict({"mean": [0.0, 1.0], "std": [1.0]})
    with pytest.raises(ValueError, match="keys"):
        Standardizer.from_state_dict({"mean": [0.0]})


# ---------------------------------------------------------------- crops and windows

def test_crop_shapes_and_positions():
    x = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    c = crop(x, 4)
    assert c.shape == (2, 3, 4)
    np.testing.assert_array_equal(c, x[..., 3:7])
    np.testing.assert_array_equal(crop(x, 4, start=6), x[..., 6:10])
    r1, r2 = crop(x, 4, "random", rng=5), crop(x, 4, "random", rng=5)
    np.testing.assert_array_equal(r1, r2)
    starts = {int(crop(x[0, 0], 4, "random", rng=np.random.default_rng(s))[0]) for s in range(200)}
    assert starts == set(range(7))  # every legal start, none outside
    padded = crop(x, 13)
    assert padded.shape == (2, 3, 13)
    np.testing.assert_array_equal(padded[..., :10], x)
    assert (padded[..., 10:] == 0).all()


@pytest.mark.parametrize("start", [7, -1, "middle", 2.5])
def test_crop_rejects_bad_start(start):
    with pytest.raises(ValueError, match="start"):
        crop(np.zeros((3, 10), np.float32), 4, start=start)


def test_sliding_windows():
    x = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)  # (leads, samples)
    w = sliding_windows(x, 4, 3)
    assert w.shape == (3, 2, 4)
    for k in range(3):
        np.testing.assert_array_equal(w[k], x[:, 3 * k:3 * k + 4])
    batched = sliding_windows(np.stack([x, -x]), 5, 5)
    assert batched.shape == (2, 2, 2, 5)
    np.testing.assert_array_equal(batched[1, 1], -x[:, 5:10])
    with pytest.raises(ValueError, match="shorter than one window of 11"):
        sliding_windows(x, 11, 1)
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(x, 4, 0)


# ---------------------------------------------------------------- spectrogram

def test_spectrogram_peak_at_sine_frequency():
    x = np.stack([_sine(12.5, 8.0), _sine(30.0, 8.0, amplitude=0.5)])
    freqs, times, s = spectrogram(x, FS, nperseg=100, log=False)
    assert s.shape == (2, len(freqs), len(times)) and s.dtype == np.float32
    assert freqs[1] == pytest.approx(FS / 100)
    assert times[-1] == pytest.approx(8.0)
    mid = s[..., 2:-2]  # skip the zero-padded boundary segments
    assert freqs[mid[0].mean(axis=1).argmax()] == pytest.approx(12.5)
    assert freqs[mid[1].mean(axis=1).argmax()] == pytest.approx(30.0)
    assert mid[0].max(axis=0) == pytest.approx(np.full(mid.shape[-1], 0.5), rel=0.02)  # A/2 scaling
    f2, _, s_log = spectrogram(x, FS, nperseg=100, fmax=20.0, eps=1e-3)
    assert f2.max() <= 20.0 and s_log.shape[-2] == len(f2)
    np.testing.assert_allclose(s_log, np.log(s[..., : len(f2), :] + 1e-3), rtol=1e-5, atol=1e-5)


def test_spectrogram_errors():
    x = np.zeros(50, np.float32)
    with pytest.raises(ValueError, match="nperseg=64"):
        spectrogram(x, FS)
    with pytest.raises(ValueError, match="noverlap"):
        spectrogram(x, FS, nperseg=16, noverlap=16)
    with pytest.raises(ValueError, match="fmax"):
        spectrogram(x, FS, nperseg=16, fmax=0)


# ---------------------------------------------------------------- leads

def test_derived_leads_obey_einthoven_on_ptbxl(ptbxl_record):
    rec = ptbxl_record
    lead = dict(zip(rec.leads, rec.signal))
    derived = derive_limb_leads(lead["I"], lead["II"])
    assert tuple(derived) == LIMB_DERIVED
    for name in LIMB_DERIVED:
        assert derived[name].dtype == np.float32
        # PTB-XL stores 1 µV units; derived and recorded leads agree within quantisation.
        np.testing.assert_allclose(derived[name], lead[name], atol=0.01, err_msg=name)
    # Einthoven's law itself: I + III = II; Goldberger: aVR + aVL + aVF = 0.
    np.testing.assert_allclose(lead["I"] + lead["III"], lead["II"], atol=0.01)
    np.testing.assert_allclose(lead["aVR"] + lead["aVL"] + lead["aVF"], 0.0, atol=0.01)


def test_derive_limb_leads_hand_worked():
    d = derive_limb_leads(np.array([1.0, 0.0]), np.array([3.0, 2.0]))
    np.testing.assert_array_equal(d["III"], [2.0, 2.0])
    np.testing.assert_array_equal(d["aVR"], [-2.0, -1.0])
    np.testing.assert_array_equal(d["aVL"], [-0.5, -1.0])
    np.testing.assert_array_equal(d["aVF"], [2.5, 2.0])
    with pytest.raises(ValueError, match="shape"):
        derive_limb_leads(np.zeros(3), np.zeros(4))


def test_select_leads_reorders_and_derives(ptbxl_record):
    rec = ptbxl_record
    x = rec.signal
    out = select_leads(x, rec.leads, ["V1", "II", "I"])
    np.testing.assert_array_equal(out, x[[6, 1, 0]])
    two = select_leads(x[None], rec.leads, ["I", "II"])  # (records, leads, samples)
    assert two.shape == (1, 2, x.shape[1])
    full = select_leads(two, ["I", "II"], ["I", "II", "III", "aVR", "aVL", "aVF"])
    assert full.shape == (1, 6, x.shape[1])
    np.testing.assert_allclose(full[0], x[:6], atol=0.01)


def test_select_leads_errors(ptbxl_record):
    x = ptbxl_record.signal
    with pytest.raises(ValueError, match=r"'V7' is missing; available leads: \['I'"):
        select_leads(x, ptbxl_record.leads, ["V7"])
    with pytest.raises(ValueError, match="'aVF' is missing.*I and II"):
        select_leads(x[[0, 6]], ["I", "V1"], ["aVF"])
    with pytest.raises(ValueError, match="x has 12"):
        select_leads(x, ["I", "II"], ["I"])
    with pytest.raises(ValueError, match="repeats"):
        select_leads(x[:2], ["I", "I"], ["I"])


# --------------------------------------------------------------------------- layering: data uses signal


def test_challenge_reader_resamples_with_signal_resample(challenge_samples):
    """``ecgbook.data.challenge`` carries no resampler of its own: it calls :func:`ecgbook.signal.resample`."""
    from ecgbook import signal
    from ecgbook.data import challenge as C

    assert not hasattr(C, "_resample") and C.resample is signal.resample
    data = C.read_challenge_folder(challenge_samples / "ptb", fs=500)
    original, _ = C.read_challenge_record(challenge_samples / "ptb" / data.names[0])
    expected = signal.resample(original.signal, original.fs, 500)
    assert data.signals[0].dtype == np.float32
    np.testing.assert_array_equal(data.signals[0], expected.astype(np.float32))


def test_spectrogram_images_live_in_signal():
    from ecgbook import signal

    x = np.random.default_rng(0).standard_normal((2, 900)).astype(np.float32)
    images = signal.spectrogram_images(x, 300.0, signal.SpectrogramSettings(size=64))
    assert tuple(images.shape) == (2, 3, 64, 64) and str(images.dtype) == "torch.float32"
    # per image in [0, 1] before the ImageNet normalisation
    low = (0 - np.array(signal.IMAGENET_MEAN)) / np.array(signal.IMAGENET_STD)
    high = (1 - np.array(signal.IMAGENET_MEAN)) / np.array(signal.IMAGENET_STD)
    per_channel = images.numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    assert (per_channel.min(1) >= low - 1e-5).all() and (per_channel.max(1) <= high + 1e-5).all()


@pytest.mark.parametrize("n, nperseg, noverlap, fmax, fs", [
    (600, 128, 96, 50.0, 300.0),   # the transfer chapter's beat/excerpt settings
    (250, 25, None, None, 100.0),  # the multimodal chapter's 2.5-s windows
    (361, 64, 10, 40.0, 360.0),    # a hop that does not divide the length (scipy pads the end)
    (100, 100, 0, None, 100.0),    # one window the size of the excerpt
])
def test_stft_magnitude_matches_scipy_stft(n, nperseg, noverlap, fmax, fs):
    """The torch STFT (which runs on the GPU) gives scipy.signal.stft's numbers and shape."""
    import torch

    from ecgbook import signal

    x = np.random.default_rng(n).standard_normal((3, 2, n)).astype(np.float32)
    for log, tol in ((False, 1e-6), (True, 1e-4)):  # log: near-zero bins amplify rounding
        _, _, ref = signal.spectrogram(x, fs, nperseg=nperseg, noverlap=noverlap, fmax=fmax, log=log)
        got = signal.stft_magnitude(torch.from_numpy(x), fs, nperseg, noverlap, fmax, log).numpy()
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=tol, rtol=1e-4 if log else 0)
    with pytest.raises(ValueError, match="nperseg"):
        signal.stft_magnitude(torch.zeros(2, 10), fs, 11)
    with pytest.raises(ValueError, match="noverlap"):
        signal.stft_magnitude(torch.zeros(2, 10), fs, 8, noverlap=8)


def test_spectrogram_images_equal_the_scipy_pipeline_and_take_tensors():
    """Images built in torch equal the host pipeline (scipy STFT → flip → min-max → resize →
    3 channels → ImageNet normalisation), from a NumPy array or a tensor alike."""
    import torch
    import torch.nn.functional as F

    from ecgbook import signal

    settings = signal.SpectrogramSettings(size=48)
    x = np.random.default_rng(1).standard_normal((4, 720)).astype(np.float32) * 0.5
    x[3] = 0.0  # a flat excerpt: a constant spectrogram becomes an all-zero image
    _, _, S = signal.spectrogram(x, 360.0, nperseg=settings.nperseg, noverlap=settings.noverlap,
                                 fmax=settings.fmax, log=settings.log)
    S = torch.from_numpy(np.ascontiguousarray(S[:, ::-1]))
    lo, hi = S.amin(dim=(1, 2), keepdim=True), S.amax(dim=(1, 2), keepdim=True)
    S = torch.where(hi > lo, (S - lo) / torch.where(hi > lo, hi - lo, 1.0), torch.zeros_like(S))
    ref = F.interpolate(S[:, None], size=(48, 48), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    mean = torch.tensor(signal.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(signal.IMAGENET_STD).view(1, 3, 1, 1)
    ref = (ref - mean) / std
    got = signal.spectrogram_images(x, 360.0, settings)
    from_tensor = signal.spectrogram_images(torch.from_numpy(x), 360.0, settings, device="cpu")
    assert got.shape == (4, 3, 48, 48) and got.device.type == "cpu"
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=2e-4, rtol=0)
    np.testing.assert_array_equal(got.numpy(), from_tensor.numpy())
    np.testing.assert_allclose(got[3].numpy(), ((0 - mean) / std)[0].expand(3, 48, 48).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        signal.spectrogram_images(np.full((1, 720), np.nan, np.float32), 360.0, settings)
