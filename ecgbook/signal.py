"""Signal processing shared by every chapter: filtering, resampling, standardisation, crops, spectrograms
(and spectrogram images for image CNNs), leads.

Arrays follow one convention: shape ``(..., leads, samples)`` with time on the **last** axis,
amplitudes in mV, sampling frequency ``fs`` in Hz. Functions keep a floating input's dtype
(``float32`` in, ``float32`` out); integer input comes back as ``float32``.

The filters are the ones most ECG deep-learning papers describe as "band-pass 0.5–40 Hz" or
"baseline wander removal": Butterworth designs (:func:`scipy.signal.butter`, second-order sections)
applied forwards and backwards (:func:`scipy.signal.sosfiltfilt`), so that they add no phase shift
and the P, QRS and T waves stay where they were in time. Applying a filter of order ``n`` twice
squares its magnitude response (effective order ``2n``). Like every IIR filter, they have a start-up
transient at both ends of the record, about ``1 / low`` seconds long, which ``sosfiltfilt``'s odd
padding reduces but does not remove.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.signal

if TYPE_CHECKING:  # torch is imported where it is used (spectrogram_images)
    import torch

#: Limb leads that :func:`derive_limb_leads` computes from leads I and II.
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")

#: Smallest standard deviation :class:`Standardizer` divides by (a flat lead is not blown up).
STD_FLOOR = 1e-8

#: Largest denominator of the rational rate ratio used by :func:`resample`.
MAX_RATE_DENOMINATOR = 1000


def _as_signal(x, name: str = "x", min_ndim: int = 1) -> np.ndarray:
    """Return ``x`` as a floating ndarray (float32 unless already floating), checking dimensions."""
    arr = np.asarray(x)
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s) (time on the last axis), "
                         f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    return arr


def _check_fs(fs: float, name: str = "fs") -> float:
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"{name} (sampling frequency) must be a positive number of Hz, got {fs}")
    return fs


def _filtfilt(x: np.ndarray, sos: np.ndarray, what: str) -> np.ndarray:
    """Zero-phase filtering along the last axis with a clear error when the record is too short."""
    # sosfiltfilt's default padding length (scipy.signal.sosfiltfilt documentation).
    ntaps = 2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum())
    padlen = 3 * ntaps
    if x.shape[-1] <= padlen:
        raise ValueError(f"{what}: the signal has {x.shape[-1]} samples, the filter needs more than "
                         f"{padlen} (its padding length); use a longer record or a lower order")
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(x.dtype, copy=False)


def bandpass(x, fs: float, low: float = 0.5, high: float = 40.0, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth band-pass filter along the last axis.

    Parameters
    ----------
    x:
        Signal, shape ``(..., leads, samples)`` (any shape with time last), mV.
    fs:
        Sampling frequency, Hz.
    low, high:
        Cut-off frequencies (-3 dB of the single pass; -6 dB after the forward-backward pass), Hz.
        The common ECG choice 0.5–40 Hz keeps P, QRS and T waves and removes baseline wander,
        50/60 Hz mains interference and most muscle noise.
    order:
        Butterworth order of the single pass (the effective order is twice this).

    Returns
    -------
    numpy.ndarray
        Filtered signal, same shape and dtype as ``x``.

    Raises
    ------
    ValueError
        ``fs`` is not positive, ``low`` is not positive, ``low >= high``, ``high >= fs / 2``
        (the Nyquist frequency), ``order < 1``, or the signal is too short for the filter.

    Notes
    -----
    Design by :func:`scipy.signal.butter` (``output="sos"``), application by
    :func:`scipy.signal.sosfiltfilt` (Gustafsson's forward-backward method with odd padding).
    """
    x = _as_signal(x)
    fs = _check_fs(fs)
    if not 0 < low:
        raise ValueError(f"bandpass: low cut-off must be positive, got low={low} Hz")
    if low >= high:
        raise ValueError(f"bandpass: low cut-off must be below high cut-off, got low={low} Hz, high={high} Hz")
    if high >= fs / 2:
        raise ValueError(f"bandpass: high cut-off {high} Hz must be below the Nyquist frequency "
                         f"fs/2 = {fs / 2} Hz (fs={fs} Hz)")
    if int(order) < 1:
        raise ValueError(f"bandpass: order must be >= 1, got {order}")
    sos = scipy.signal.butter(int(order), [low, high], btype="bandpass", fs=fs, output="sos")
    return _filtfilt(x, sos, f"bandpass({low}-{high} Hz, fs={fs} Hz)")


def remove_baseline(x, fs: float, cutoff: float = 0.5, order: int = 3) -> np.ndarray:
    """Remove baseline wander with a zero-phase Butterworth high-pass filter along the last axis.

    Parameters
    ----------
    x:
        Signal, shape ``(..., leads, samples)``, mV.
    fs:
        Sampling frequency, Hz.
    cutoff:
        High-pass cut-off, Hz. 0.5 Hz removes respiration-induced wander (0.1–0.5 Hz) while
        keeping the ST segment reasonably undistorted for these zero-phase filters.
    order:
        Butterworth order of the single pass.

    Returns
    -------
    numpy.ndarray
        Filtered signal, same shape and dtype as ``x``.

    Raises
    ------
    ValueError
        ``fs`` or ``cutoff`` not positive, ``cutoff >= fs / 2``, ``order < 1`` or a signal too
        short for the filter.
    """
    x = _as_signal(x)
    fs = _check_fs(fs)
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"remove_baseline: cutoff must lie in (0, fs/2) = (0, {fs / 2}) Hz, got cutoff={cutoff} Hz")
    if int(order) < 1:
        raise ValueError(f"remove_baseline: order must be >= 1, got {order}")
    sos = scipy.signal.butter(int(order), cutoff, btype="highpass", fs=fs, output="sos")
    return _filtfilt(x, sos, f"remove_baseline(cutoff={cutoff} Hz, fs={fs} Hz)")


def resample(x, fs_in: float, fs_out: float) -> np.ndarray:
    """Change the sampling frequency with polyphase filtering along the last axis.

    The rate ratio ``fs_out / fs_in`` is written as a fraction ``up / down`` (denominator at most
    :data:`MAX_RATE_DENOMINATOR`, e.g. 360 → 100 Hz is 5/18) and passed to
    :func:`scipy.signal.resample_poly`, which applies a Kaiser-windowed anti-aliasing FIR filter.

    Parameters
    ----------
    x:
        Signal, shape ``(..., leads, samples)``, mV.
    fs_in, fs_out:
        Sampling frequencies before and after, Hz.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., leads, ceil(samples * up / down))``, same dtype as ``x``.

    Raises
    ------
    ValueError
        A frequency is not positive, or the ratio has no fraction with a denominator
        up to :data:`MAX_RATE_DENOMINATOR` within 1e-6 of it.
    """
    x = _as_signal(x)
    fs_in = _check_fs(fs_in, "fs_in")
    fs_out = _check_fs(fs_out, "fs_out")
    ratio = Fraction(fs_out / fs_in).limit_denominator(MAX_RATE_DENOMINATOR)
    if abs(float(ratio) * fs_in - fs_out) > 1e-6 * fs_out:
        raise ValueError(f"resample: the rate ratio {fs_out}/{fs_in} Hz has no fraction with denominator "
                         f"<= {MAX_RATE_DENOMINATOR} (closest {ratio})")
    if ratio == 1:
        return x.copy()
    y = scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
    return y.astype(x.dtype, copy=False)


class Standardizer:
    """Per-lead z-scoring, ``(x - mean[lead]) / std[lead]``, fitted on training records only.

    Statistics are pooled over records and samples of the training set, so that validation and
    test records are transformed with numbers they did not contribute to (no information leak).
    The standard deviation is floored at :data:`STD_FLOOR` (1e-8 mV) so that a flat lead maps
    to zeros instead of infinities.

    Examples
    --------
    >>> std = Standardizer().fit(train)            # train: (records, leads, samples)
    >>> x_val = std.transform(val)                 # (..., leads, samples)
    >>> Standardizer.from_state_dict(std.state_dict())   # round trip through JSON / torch.save
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_state_dict`) has set the statistics."""
        return self.mean is not None

    def fit(self, x) -> "Standardizer":
        """Estimate per-lead mean and standard deviation (population, ``ddof=0``).

        Parameters
        ----------
        x: training signals, shape ``(records, leads, samples)``, mV.

        Returns
        -------
        Standardizer
            ``self``.

        Raises
        ------
        ValueError
            ``x`` is not 3-D, is empty, or holds NaN/inf.
        """
        x = _as_signal(x)
        if x.ndim != 3:
            raise ValueError(f"Standardizer.fit: x must have shape (records, leads, samples), got {x.shape}")
        if x.size == 0:
            raise ValueError(f"Standardizer.fit: x is empty (shape {x.shape})")
        if not np.isfinite(x).all():
            raise ValueError("Standardizer.fit: x holds NaN or infinite values")
        self.mean = x.mean(axis=(0, 2), dtype=np.float64)
        self.std = np.maximum(x.std(axis=(0, 2), dtype=np.float64), STD_FLOOR)
        return self

    def transform(self, x) -> np.ndarray:
        """Standardise ``x`` of shape ``(..., leads, samples)``; same shape and dtype back.

        Raises
        ------
        RuntimeError
            Called before :meth:`fit`.
        ValueError
            The number of leads (``x.shape[-2]``) differs from the fitted one.
        """
        if not self.fitted:
            raise RuntimeError("Standardizer.transform called before fit (fit it on the training records)")
        x = _as_signal(x, min_ndim=2)
        if x.shape[-2] != len(self.mean):
            raise ValueError(f"Standardizer.transform: x has {x.shape[-2]} leads (shape {x.shape}), "
                             f"the standardizer was fitted on {len(self.mean)}")
        mean = self.mean[:, None].astype(x.dtype)
        std = self.std[:, None].astype(x.dtype)
        return (x - mean) / std

    def fit_transform(self, x) -> np.ndarray:
        """:meth:`fit` on ``x`` then :meth:`transform` it (use on the training set only)."""
        return self.fit(x).transform(x)

    def state_dict(self) -> dict:
        """Plain ``{"mean": [..], "std": [..]}`` (Python floats), storable as JSON or in a torch checkpoint.

        Raises
        ------
        RuntimeError
            Not fitted.
        """
        if not self.fitted:
            raise RuntimeError("Standardizer.state_dict called before fit")
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Standardizer":
        """Rebuild a fitted standardizer from :meth:`state_dict` output.

        Raises
        ------
        ValueError
            Keys ``mean``/``std`` missing, lengths differ, or a ``std`` is not positive.
        """
        if not isinstance(d, dict) or "mean" not in d or "std" not in d:
            raise ValueError("Standardizer.from_state_dict: expected a dict with keys 'mean' and 'std', "
                             f"got {d!r:.200}")
        mean = np.asarray(d["mean"], dtype=np.float64).reshape(-1)
        std = np.asarray(d["std"], dtype=np.float64).reshape(-1)
        if len(mean) != len(std) or len(mean) == 0:
            raise ValueError(f"Standardizer.from_state_dict: 'mean' has {len(mean)} values, 'std' has {len(std)}")
        if not (std > 0).all():
            raise ValueError("Standardizer.from_state_dict: every 'std' must be positive")
        out = cls()
        out.mean, out.std = mean, std
        return out

    def __repr__(self) -> str:
        return f"Standardizer(leads={len(self.mean)})" if self.fitted else "Standardizer(unfitted)"


def crop(x, length: int, start="center", rng=None) -> np.ndarray:
    """Cut a fixed-length window from the last axis (a copy).

    Parameters
    ----------
    x:
        Signal, shape ``(..., leads, samples)``.
    length:
        Window length in samples.
    start:
        ``"center"`` (the middle window), ``"random"`` (uniform start, for training-time
        augmentation) or an int sample index ``0 <= start <= samples - length``.
    rng:
        ``numpy.random.Generator`` or seed used when ``start="random"``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., leads, length)``. A signal **shorter** than ``length`` is returned whole and
        padded with zeros at the end (``start`` is then ignored), so records of slightly different
        lengths can be batched.

    Raises
    ------
    ValueError
        ``length < 1``, an unknown ``start`` string, or an int ``start`` outside the signal.
    """
    x = _as_signal(x)
    length = int(length)
    if length < 1:
        raise ValueError(f"crop: length must be >= 1 sample, got {length}")
    n = x.shape[-1]
    if n <= length:
        pad = [(0, 0)] * (x.ndim - 1) + [(0, length - n)]
        return np.pad(x, pad)
    if isinstance(start, str):
        if start == "center":
            begin = (n - length) // 2
        elif start == "random":
            begin = int(np.random.default_rng(rng).integers(0, n - length + 1))
        else:
            raise ValueError(f"crop: start must be 'center', 'random' or an int, got {start!r}")
    elif isinstance(start, (int, np.integer)):
        begin = int(start)
        if not 0 <= begin <= n - length:
            raise ValueError(f"crop: start={begin} is outside [0, {n - length}] for {n} samples and length {length}")
    else:
        raise ValueError(f"crop: start must be 'center', 'random' or an int, got {start!r}")
    return x[..., begin:begin + length].copy()


def sliding_windows(x, length: int, stride: int) -> np.ndarray:
    """All windows of ``length`` samples, ``stride`` samples apart, along the last axis (a copy).

    Parameters
    ----------
    x:
        Signal, shape ``(..., leads, samples)``.
    length, stride:
        Window length and hop, in samples.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_windows, ..., leads, length)`` with ``n_windows = (samples - length) // stride + 1``;
        window ``k`` starts at sample ``k * stride`` (a trailing remainder shorter than a window is dropped).

    Raises
    ------
    ValueError
        ``length`` or ``stride`` below 1, or the signal shorter than ``length``.

    Notes
    -----
    Built on :func:`numpy.lib.stride_tricks.sliding_window_view`.
    """
    x = _as_signal(x)
    length, stride = int(length), int(stride)
    if length < 1 or stride < 1:
        raise ValueError(f"sliding_windows: length and stride must be >= 1, got length={length}, stride={stride}")
    if x.shape[-1] < length:
        raise ValueError(f"sliding_windows: the signal has {x.shape[-1]} samples, shorter than one window of {length}")
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=-1)[..., ::stride, :]
    return np.ascontiguousarray(np.moveaxis(view, -2, 0))


def spectrogram(x, fs: float, nperseg: int = 64, noverlap: int | None = None, fmax: float | None = None,
                log: bool = True, eps: float = 1e-6):
    """Magnitude short-time Fourier transform (Hann window) along the last axis.

    Parameters
    ----------
    x:
        Signal, shape ``(..., leads, samples)``, mV.
    fs:
        Sampling frequency, Hz.
    nperseg:
        Window length in samples (frequency resolution ``fs / nperseg`` Hz).
    noverlap:
        Overlap in samples (default ``nperseg // 2``).
    fmax:
        If given, frequencies above ``fmax`` Hz are dropped (ECG energy lies below ~40 Hz).
    log:
        Return ``log(|Z| + eps)`` instead of ``|Z|``.
    eps:
        Offset inside the logarithm, mV.

    Returns
    -------
    freqs : numpy.ndarray
        ``(F,)`` frequencies, Hz.
    times : numpy.ndarray
        ``(T,)`` segment centres, s.
    S : numpy.ndarray
        ``(..., leads, F, T)`` float32 magnitude (mV; scipy's ``stft`` scaling, under which a sine
        of amplitude A peaks at about A/2), or its logarithm.

    Raises
    ------
    ValueError
        ``nperseg`` below 2 or above the number of samples, ``noverlap`` outside
        ``[0, nperseg)``, ``fmax`` not positive, or ``eps`` not positive with ``log=True``.

    Notes
    -----
    :func:`scipy.signal.stft` with ``window="hann"`` and its default zero-padded boundaries.
    """
    x = _as_signal(x)
    fs = _check_fs(fs)
    nperseg = int(nperseg)
    if not 2 <= nperseg <= x.shape[-1]:
        raise ValueError(f"spectrogram: nperseg={nperseg} must lie in [2, samples={x.shape[-1]}]")
    if noverlap is not None and not 0 <= int(noverlap) < nperseg:
        raise ValueError(f"spectrogram: noverlap={noverlap} must lie in [0, nperseg={nperseg})")
    if fmax is not None and not fmax > 0:
        raise ValueError(f"spectrogram: fmax must be positive, got {fmax} Hz")
    if log and not eps > 0:
        raise ValueError(f"spectrogram: eps must be positive for the logarithm, got {eps}")
    freqs, times, z = scipy.signal.stft(x, fs=fs, window="hann", nperseg=nperseg, noverlap=noverlap, axis=-1)
    mag = np.abs(z)
    if fmax is not None:
        keep = freqs <= fmax
        freqs, mag = freqs[keep], mag[..., keep, :]
    if log:
        mag = np.log(mag + eps)
    return freqs, times, mag.astype(np.float32)


def derive_limb_leads(lead_I, lead_II) -> dict[str, np.ndarray]:
    """Compute leads III, aVR, aVL and aVF from leads I and II.

    Einthoven's law and Goldberger's augmented leads (all limb leads are combinations of
    two independent potential differences)::

        III = II - I
        aVR = -(I + II) / 2
        aVL = I - II / 2
        aVF = II - I / 2

    Parameters
    ----------
    lead_I, lead_II:
        Leads I and II, same shape (e.g. ``(samples,)`` or ``(records, samples)``), mV.

    Returns
    -------
    dict
        ``{"III": ..., "aVR": ..., "aVL": ..., "aVF": ...}``, each of the input shape
        and dtype.

    Raises
    ------
    ValueError
        The two leads differ in shape.
    """
    i = _as_signal(lead_I, "lead_I", min_ndim=0)
    ii = _as_signal(lead_II, "lead_II", min_ndim=0)
    if i.shape != ii.shape:
        raise ValueError(
            f"derive_limb_leads: lead_I has shape {i.shape}, "
            f"lead_II has shape {ii.shape}"
        )
    dtype = np.result_type(i.dtype, ii.dtype)
    out = {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
    return {name: value.astype(dtype, copy=False) for name, value in out.items()}


def select_leads(x, have, want) -> np.ndarray:
    """Reorder / pick leads by name, deriving missing limb leads from I and II.

    Parameters
    ----------
    x:
        Signal, shape ``(..., len(have), samples)``, mV.
    have:
        Lead names of the rows of ``x`` (canonical spelling, see
        :func:`ecgbook.data.records.canonical_lead`).
    want:
        Lead names wanted, in order.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., len(want), samples)``. A wanted lead of :data:`LIMB_DERIVED` that is not in
        ``have`` is computed with :func:`derive_limb_leads` when both I and II are present.

    Raises
    ------
    ValueError
        ``len(have)`` does not match ``x.shape[-2]``, ``have`` repeats a name, or a wanted lead is
        neither present nor derivable (the message names it and lists the available leads).
    """
    x = _as_signal(x, min_ndim=2)
    have, want = list(have), list(want)
    if len(have) != x.shape[-2]:
        raise ValueError(f"select_leads: have names {len(have)} leads {have} but x has {x.shape[-2]} (shape {x.shape})")
    if len(set(have)) != len(have):
        raise ValueError(f"select_leads: have repeats a lead name: {have}")
    if not want:
        raise ValueError("select_leads: want is empty")
    index = {name: k for k, name in enumerate(have)}
    derived: dict[str, np.ndarray] | None = None
    rows = []
    for name in want:
        if name in index:
            rows.append(x[..., index[name], :])
        elif name in LIMB_DERIVED and "I" in index and "II" in index:
            if derived is None:
                derived = derive_limb_leads(x[..., index["I"], :], x[..., index["II"], :])
            rows.append(derived[name])
        else:
            how = " (derivable only from leads I and II)" if name in LIMB_DERIVED else ""
            raise ValueError(f"select_leads: lead {name!r} is missing{how}; available leads: {have}")
    return np.stack(rows, axis=-2)


# --------------------------------------------------------------------------- spectrogram images

#: Per-channel RGB mean and standard deviation of torchvision's ImageNet models (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class SpectrogramSettings:
    """How an ECG excerpt becomes an image.

    Attributes
    ----------
    nperseg: STFT window in samples (Hann); at 300 Hz, 128 samples = 0.43 s, 2.3 Hz resolution.
    noverlap: overlap in samples (default ``nperseg // 2``); 96 gives a hop of 32 samples (0.11 s).
    fmax: highest frequency kept, Hz (``None``: up to fs/2); ECG energy lies below ~40–50 Hz.
    size: side of the square image, pixels (the backbone's input size, 224 for all three).
    log: log-magnitude (``log(|Z| + 1e-6)``) instead of magnitude.
    """

    nperseg: int = 128
    noverlap: int | None = 96
    fmax: float | None = 50.0
    size: int = 224
    log: bool = True

    def __post_init__(self):
        if int(self.size) < 32:
            raise ValueError(f"SpectrogramSettings.size: must be >= 32 pixels (five 2x downsamplings), got {self.size}")

    def as_dict(self) -> dict:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Stable, readable identifier, e.g. ``'stft-n128-o96-f50-s224-log'`` (equal settings, equal key)."""
        fmax = "all" if self.fmax is None else f"{float(self.fmax):g}"
        noverlap = "half" if self.noverlap is None else str(int(self.noverlap))
        return f"stft-n{int(self.nperseg)}-o{noverlap}-f{fmax}-s{int(self.size)}-{'log' if self.log else 'mag'}"


def stft_magnitude(x: "torch.Tensor", fs: float, nperseg: int, noverlap: int | None = None,
                   fmax: float | None = None, log: bool = True, eps: float = 1e-6) -> "torch.Tensor":
    """:func:`spectrogram` in torch, on the tensor's device (CPU or GPU), for batches of excerpts.

    The same numbers as :func:`scipy.signal.stft` with ``window="hann"`` and its defaults
    (``boundary="zeros"``: ``nperseg // 2`` zeros on both sides; ``padded=True``: zeros at the end
    up to a whole number of hops; ``scaling="spectrum"``: divided by the window's sum), computed
    by :func:`torch.stft` (periodic Hann window, ``center=False`` after scipy's padding).
    Tested against :func:`spectrogram` to 1e-5.

    Parameters
    ----------
    x: ``(..., samples)`` float tensor, mV.
    fs, nperseg, noverlap, fmax, log, eps: as in :func:`spectrogram`.

    Returns
    -------
    ``(..., F, T)`` float32 tensor: magnitude (or ``log(|Z| + eps)``) at frequencies ``<= fmax``.

    Raises
    ------
    ValueError
        As :func:`spectrogram` (``nperseg`` outside ``[2, samples]``, ``noverlap`` outside
        ``[0, nperseg)``).
    """
    import torch

    fs = _check_fs(fs)
    nperseg = int(nperseg)
    if not 2 <= nperseg <= x.shape[-1]:
        raise ValueError(f"stft_magnitude: nperseg={nperseg} must lie in [2, samples={x.shape[-1]}]")
    noverlap = nperseg // 2 if noverlap is None else int(noverlap)
    if not 0 <= noverlap < nperseg:
        raise ValueError(f"stft_magnitude: noverlap={noverlap} must lie in [0, nperseg={nperseg})")
    hop = nperseg - noverlap
    x = x.float()
    half = nperseg // 2
    extended = x.shape[-1] + 2 * half
    tail = (-(extended - nperseg) % hop) % nperseg  # scipy's padded=True
    x = torch.nn.functional.pad(x, (half, half + tail))
    window = torch.hann_window(nperseg, periodic=True, dtype=torch.float32, device=x.device)
    lead_shape = x.shape[:-1]
    z = torch.stft(x.reshape(-1, x.shape[-1]), n_fft=nperseg, hop_length=hop, window=window, center=False,
                   onesided=True, return_complex=True)  # (rows, F, T)
    mag = (z.abs() / window.sum()).reshape(*lead_shape, *z.shape[-2:])  # (..., F, T)
    if fmax is not None:
        if not fmax > 0:
            raise ValueError(f"stft_magnitude: fmax must be positive, got {fmax} Hz")
        freqs = np.fft.rfftfreq(nperseg, d=1.0 / fs)
        mag = mag[..., : int((freqs <= fmax).sum()), :]
    return torch.log(mag + eps) if log else mag


def spectrogram_images(
    segments,
    fs: float,
    settings: SpectrogramSettings | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device=None,
    check_finite: bool = True,
) -> torch.Tensor:
    """Turn ECG excerpts into normalised 3-channel spectrogram images, on ``device``.

    Steps, per excerpt: (1) STFT magnitude, log-scaled, frequencies up to ``fmax``
    (:func:`stft_magnitude`, the same numbers as :func:`spectrogram`); (2) min-max
    scaling to [0, 1] **per image**, so that amplitude differences between records do
    not shift the whole image (a constant spectrogram becomes all zeros); (3) frequency
    axis flipped so that low frequencies are at the bottom, as in a plotted spectrogram;
    (4) bilinear resize (:func:`torch.nn.functional.interpolate`,
    ``align_corners=False``) to ``size × size``, which keeps values in [0, 1]; (5) the
    grey image replicated to the three RGB channels (``expand``, no copy; a colour map
    would add an arbitrary hue encoding); (6) per-channel ``(v - mean) / std``. Every
    step runs in torch on the device the excerpts are on, so on a GPU only the raw
    excerpts cross the bus, not the 224 × 224 × 3 images (issue "fast where it matters":
    STFT, resize and expansion on the GPU).

    Parameters
    ----------
    segments: ``(n, samples)`` (or ``(samples,)``) ECG in mV: a NumPy array or a torch tensor.
    fs: sampling frequency, Hz.
    settings: :class:`SpectrogramSettings` (default values when ``None``).
    mean, std: per-channel normalisation for images in [0, 1] (the backbone's ``mean``/``std``).
    device: where to compute (default: the tensor's device; CPU for a NumPy array).
    check_finite: refuse NaN/inf (a device-to-host read; a caller that checked the whole set
        once, as :func:`ecgbook.models.backbones.extract_features` does, passes
        ``False``).

    Returns
    -------
    ``torch.float32`` tensor ``(n, 3, size, size)`` (``(3, size, size)`` for 1-D input) on
    ``device``; the channel dimension is an expanded view (call ``.contiguous()`` to write to it).

    Raises
    ------
    ValueError
        ``segments`` is not 1-D/2-D or holds NaN/inf, or an STFT setting is invalid for
        it.
    """
    import torch  # imported here: the rest of this module needs only NumPy/SciPy
    import torch.nn.functional as F

    settings = settings or SpectrogramSettings()
    if isinstance(segments, torch.Tensor):
        x = segments.to(device=device or segments.device, dtype=torch.float32)
    else:
        x = torch.from_numpy(np.ascontiguousarray(segments, dtype=np.float32)).to(
            device or "cpu"
        )
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"segments: expected shape (n, samples), got {tuple(x.shape)}")
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ValueError("segments: holds NaN or infinite values")
    S = stft_magnitude(x, fs, nperseg=settings.nperseg, noverlap=settings.noverlap,
                       fmax=settings.fmax, log=settings.log)
    S = S.flip(1)  # (n, F, T), high frequencies on top
    lo = S.amin(dim=(1, 2), keepdim=True)
    span = S.amax(dim=(1, 2), keepdim=True) - lo
    S = torch.where(
        span > 0, (S - lo) / torch.where(span > 0, span, 1.0), torch.zeros_like(S)
    )
    img = F.interpolate(
        S[:, None],
        size=(settings.size, settings.size),
        mode="bilinear",
        align_corners=False,
    )
    img = img.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    img = (img - m) / s
    return img[0] if single else img


def spectrogram_image(x, fs: float, size: int = 224, nperseg: int = 128, noverlap: int | None = 96,
                      fmax: float | None = 50.0, log: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """One excerpt ``(samples,)`` mV → normalised image ``(3, size, size)``; see :func:`spectrogram_images`."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x: expected one excerpt of shape (samples,), got {x.shape}")
    settings = SpectrogramSettings(nperseg=nperseg, noverlap=noverlap, fmax=fmax, size=size, log=log)
    return spectrogram_images(x, fs, settings, mean, std)
