"""Auto-checked exercises: run a reader's function against the package's reference implementation.

Each ``check_<thing>(fn)`` calls the reader's ``fn`` on real records (read through ``ecgbook.data``
from PhysioNet or ``$ECGBOOK_MIRROR``) or on the inputs stated in its docstring, compares the
result with the reference, prints one line — ``PASS …`` or ``FAIL …`` with the **first
difference** — and returns ``True`` or ``False``. An exception raised by ``fn`` is a FAIL naming
the exception; it is never re-raised, so a notebook cell keeps going.

========================== =========================================== ==============================
checker                    the reader writes                           reference
========================== =========================================== ==============================
check_derived_leads        ``fn(lead_I, lead_II) -> {"III": …, …}``    ``signal.derive_limb_leads``
check_macro_auroc          ``fn(y_true, y_score) -> (value, left_out)``  ``metrics.macro_auroc``
check_patient_split        ``fn(records, k) -> fold per beat``         ``mitdb.record_to_patient``
check_symmetric_kl         ``fn(logits_a, logits_b, T) -> scalar``     ``mrmnet.symmetric_bernoulli_kl``
check_window_aggregation   ``fn(model, X, window, stride) -> scores``  ``protocol.window_scorer``
check_spectrogram_shape    ``fn(n, fs, nperseg, noverlap, fmax)``      ``signal.spectrogram``
check_shared_patients      ``fn(folds, patients) -> share``            pooled share of leaking tests
check_cmsc_positives       ``fn(ids, segment) -> P``                   ``lead_agnostic_ssl.cmsc_positives``
check_zero_fill            ``fn(x, leads) -> (..., 12, samples)``      ``lead_agnostic_ssl.zero_fill``
check_dino_loss            ``fn(s, t, c, tau_s, tau_t, n_global)``     ``ssl.DINOLoss``
check_gate_fusion          ``fn(h_t, h_s, weight, bias) -> (h, g)``    ``fusion.FusionClassifier.fuse``
========================== =========================================== ==============================
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

#: PTB-XL records the checkers use (the first ones present in the offline mirror).
PTBXL_RECORDS = 40
#: MIT-BIH records whose beats the patient-split checker uses (both halves of the de Chazal split,
#: and 201/202, which are one patient).
SPLIT_RECORDS = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201",
                 "203", "205", "207", "208", "209", "215", "220", "223", "230", "100", "103", "105", "111",
                 "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219", "221", "222",
                 "228", "231", "232", "233", "234")


def _report(name: str, ok: bool, message: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {message}", flush=True)
    return ok


def _array_like(value) -> bool:
    """Whether ``value`` reads as an array: a numpy array or scalar, a tensor, a list or a tuple."""
    return isinstance(value, (list, tuple)) or (hasattr(value, "__array__") and not isinstance(value, (str, dict)))


#: ``returns`` of :func:`_call` for checkers whose reader's function returns an array.
ARRAY = (_array_like, "an array (numpy array, tensor or list)")


def _call(name: str, fn: Callable, *args, returns: tuple[Callable, str] | None = None):
    """``(True, result)``, or ``(False, message)`` when ``fn`` raised or, with ``returns = (test,
    description)``, returned a value that fails ``test`` (the message names the type returned and
    the ``description`` of what was expected, e.g. a string where an array was expected)."""
    try:
        got = fn(*args)
    except Exception as exc:  # the reader's code: report any error as a failure
        return False, f"your function raised {type(exc).__name__}: {exc}"
    if returns is not None and not returns[0](got):
        return False, f"your function returned a {type(got).__name__}, expected {returns[1]}"
    return True, got


def _first_difference(expected: np.ndarray, got: np.ndarray, atol: float, rtol: float = 0.0):
    """``None`` when the arrays agree, else ``(index tuple, expected value, got value)``."""
    bad = ~np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    if not bad.any():
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return idx, expected[idx], got[idx]


@functools.lru_cache(maxsize=1)
def _ptbxl():
    from .data.ptbxl import PTBXL

    db = PTBXL(fs=100, max_records=PTBXL_RECORDS)
    if len(db.available) < 8:
        raise RuntimeError(f"PTB-XL: only {len(db.available)} of the first {PTBXL_RECORDS} records are present; "
                           "the exercise checkers need at least 8 (set ECGBOOK_MIRROR or download PTB-XL)")
    return db


@functools.lru_cache(maxsize=1)
def _ptbxl_signals():
    db = _ptbxl()
    ids = db.available[:8]
    records = [db.read(i) for i in ids]
    return ids, np.stack([r.signal for r in records]), list(records[0].leads), records[0].fs


@functools.lru_cache(maxsize=1)
def _mitdb():
    from .data.mitdb import MITBIH

    return MITBIH()


# --------------------------------------------------------------------------------------- leads

def _call_scalar(name: str, fn: Callable, label: str, *args) -> tuple[bool, object]:
    """Call the reader's ``fn(*args)`` (:func:`_call`) and read its answer as one number:
    ``(True, float)``, or ``(False, message)`` when it raised or did not return a scalar."""
    ok, got = _call(name, fn, *args)
    if not ok:
        return False, got
    try:
        return True, float(got)
    except (TypeError, ValueError, RuntimeError):
        return False, (f"{label}: expected a scalar, got {type(got).__name__} "
                       f"{tuple(getattr(got, 'shape', ()))}")


def check_derived_leads(fn: Callable) -> bool:
    """Check ``fn(lead_I, lead_II) -> {"III": …, "aVR": …, "aVL": …, "aVF": …}``.

    ``lead_I``, ``lead_II``: arrays of one shape (here ``(samples,)`` and ``(records, samples)``), mV.
    Compared with :func:`ecgbook.signal.derive_limb_leads` (Einthoven and Goldberger) on the first
    eight PTB-XL records present (100 Hz), within 1e-6 mV, one record at a time and all at once.
    Returns whether every lead matches.
    """
    from .signal import derive_limb_leads

    name = "check_derived_leads"
    ids, X, leads, _ = _ptbxl_signals()
    I, II = X[:, leads.index("I")], X[:, leads.index("II")]
    cases = [(f"PTB-XL record {ids[r]}", I[r], II[r]) for r in range(len(ids))]
    cases.append((f"all {len(ids)} records at once, shape {I.shape}", I, II))
    for label, a, b in cases:
        ok, got = _call(name, fn, a.copy(), b.copy())
        if not ok:
            return _report(name, False, got)
        if not isinstance(got, dict):
            return _report(name, False, f"your function returned a {type(got).__name__}, expected a dict of "
                                        "leads {'III': array, ...}")
        expected = derive_limb_leads(a, b)
        for lead, want in expected.items():
            if lead not in got:
                return _report(name, False, f"{label}: lead {lead!r} missing (got keys {sorted(got)})")
            g = np.asarray(got[lead], dtype=float)
            if g.shape != want.shape:
                return _report(name, False, f"{label}, lead {lead}: shape {g.shape}, expected {want.shape}")
            diff = _first_difference(want.astype(float), g, atol=1e-6)
            if diff:
                idx, e, v = diff
                return _report(name, False, f"{label}, lead {lead}, sample {idx[-1]}: expected {e:.4f} mV, "
                                            f"got {v:.4f} mV")
    return _report(name, True, f"III, aVR, aVL, aVF match the reference on {len(ids)} PTB-XL records "
                               f"(ecg_id {', '.join(map(str, ids))}) and on all of them at once")


# --------------------------------------------------------------------------------------- AUROC

def _auroc_cases():
    """Real PTB-XL multi-hot labels with scores from a fixed noisy rule; some classes lack positives."""
    db = _ptbxl()
    cases = []
    rng = np.random.default_rng(0)
    for task in ("superdiagnostic", "rhythm", "form"):
        labels = db.labels(task)
        classes = db.classes(task, labels)
        here = labels.loc[db.available]
        Y = np.zeros((len(here), len(classes)), dtype=np.uint8)
        col = {c: j for j, c in enumerate(classes)}
        for row, labs in enumerate(here):
            Y[row, [col[c] for c in labs]] = 1
        scores = 0.8 * Y + rng.normal(0.0, 0.6, size=Y.shape)  # informative, not perfect
        cases.append((task, Y, scores, classes))
    return cases


def check_macro_auroc(fn: Callable) -> bool:
    """Check ``fn(y_true, y_score) -> (value, left_out)``.

    ``y_true``: ``(records, classes)`` 0/1; ``y_score``: ``(records, classes)`` scores. ``value`` is
    the mean one-vs-rest AUROC over the classes that have at least one positive and one negative
    record; ``left_out`` lists the column indices of the others. (A plain float is accepted for
    ``value`` alone, but then the left-out classes are not checked and the check fails.)
    Compared with :func:`ecgbook.metrics.macro_auroc` on the real labels of the first
    :data:`PTBXL_RECORDS` PTB-XL records (superdiagnostic, rhythm and form tasks: the last two have
    classes without a positive there), within 1e-9.
    """
    from .metrics import macro_auroc

    name = "check_macro_auroc"
    cases = _auroc_cases()
    for task, Y, S, classes in cases:
        ref = macro_auroc(Y, S)
        ok, got = _call(name, fn, Y.copy(), S.copy())
        if not ok:
            return _report(name, False, got)
        if not isinstance(got, tuple) or len(got) != 2:
            return _report(name, False, f"{task}: your function returned a {type(got).__name__}, expected "
                                        "a pair: return (value, left_out)")
        value, left_out = got
        try:
            value = float(value)
            left = sorted(int(i) for i in left_out)
        except (TypeError, ValueError) as exc:
            return _report(name, False, f"{task}: value must be a number and left_out column indices ({exc})")
        want_left = sorted(int(i) for i in ref.excluded)
        if left != want_left:
            missing = sorted(set(want_left) - set(left))
            extra = sorted(set(left) - set(want_left))
            return _report(name, False, f"{task} ({len(classes)} classes, {len(Y)} records): left out {left}, "
                                        f"expected {want_left} (missing {missing}, should be kept {extra})")
        if not np.isfinite(value) or abs(value - ref.value) > 1e-9:
            return _report(name, False, f"{task}: macro AUROC {value:.6f}, expected {ref.value:.6f} over "
                                        f"{len(classes) - len(want_left)} classes")
    return _report(name, True, f"value and left-out classes match on {len(cases)} PTB-XL tasks "
                               f"({', '.join(c[0] for c in cases)}) of {len(cases[0][1])} real records")


# --------------------------------------------------------------------------------------- split

@functools.lru_cache(maxsize=1)
def _split_beats() -> np.ndarray:
    db = _mitdb()
    return np.concatenate([np.full(len(db.beats(r)), r) for r in SPLIT_RECORDS])


def check_patient_split(fn: Callable, k: int = 5) -> bool:
    """Check ``fn(records, k) -> folds``: a patient-wise ``k``-fold split of MIT-BIH beats.

    ``records``: ``(beats,)`` the record name of every annotated beat of the 44 non-paced MIT-BIH
    records; ``folds``: ``(beats,)`` integer fold of each beat, in ``0 … k-1``. Passes when every
    fold is used and no patient has beats in two folds, patients as in
    :func:`ecgbook.data.mitdb.record_to_patient` (records 201 and 202 are one subject). Any such
    split passes; it need not equal :func:`ecgbook.transfer.patient_folds`.
    """
    from .data.mitdb import record_to_patient

    name = "check_patient_split"
    records = _split_beats()
    ok, got = _call(name, fn, records.copy(), k, returns=ARRAY)
    if not ok:
        return _report(name, False, got)
    folds = np.asarray(got)
    if folds.shape != records.shape:
        return _report(name, False, f"expected one fold per beat, shape {records.shape}, got {folds.shape}")
    if not np.issubdtype(folds.dtype, np.integer):
        return _report(name, False, f"folds must be integers, got dtype {folds.dtype}")
    used = set(np.unique(folds).tolist())
    if not used <= set(range(k)):
        return _report(name, False, f"fold numbers must lie in 0…{k - 1}, got {sorted(used - set(range(k)))}")
    if len(used) != k:
        return _report(name, False, f"only folds {sorted(used)} hold beats; every one of the {k} must")
    patients = np.array([record_to_patient(r) for r in records])
    for p in dict.fromkeys(patients):
        where = np.unique(folds[patients == p])
        if len(where) > 1:
            recs = sorted(set(records[patients == p].tolist()))
            return _report(name, False, f"patient {p} (record{'s' if len(recs) > 1 else ''} {', '.join(recs)}) "
                                        f"has beats in folds {where.tolist()}")
    sizes = np.bincount(folds, minlength=k)
    return _report(name, True, f"{len(records):,} beats of {len(set(patients))} patients in {k} folds "
                               f"of {', '.join(f'{s:,}' for s in sizes)} beats; no patient in two folds")


# --------------------------------------------------------------------------------------- KL

def check_symmetric_kl(fn: Callable) -> bool:
    """Check ``fn(logits_a, logits_b, temperature) -> scalar tensor``: MRM-Net's symmetric KL
    between per-class Bernoulli distributions ``σ(z / T)``, summed over classes, averaged over the
    batch, times ``T²``.

    Compared with :func:`ecgbook.models.mrmnet.symmetric_bernoulli_kl` (relative 1e-5) on seeded
    logits ``(batch, classes)`` of PTB-XL's superdiagnostic (5) and all-statements (71) widths at
    T = 1 and 4, on equal logits (0) and on logits shifted by a constant (not 0: a per-class KL
    sees the shift that a softmax over classes would not).
    """
    import torch

    from .models.mrmnet import symmetric_bernoulli_kl

    name = "check_symmetric_kl"
    g = torch.Generator().manual_seed(0)
    a5, b5 = torch.randn(32, 5, generator=g) * 3, torch.randn(32, 5, generator=g) * 3
    a71, b71 = torch.randn(16, 71, generator=g) * 2, torch.randn(16, 71, generator=g) * 2
    cases = [("random logits (32, 5), T=4", a5, b5, 4.0), ("random logits (32, 5), T=1", a5, b5, 1.0),
             ("random logits (16, 71), T=4", a71, b71, 4.0), ("equal logits, T=4", a5, a5.clone(), 4.0),
             ("logits shifted by +2, T=4", a5, a5 + 2.0, 4.0), ("swapped arguments, T=4", b5, a5, 4.0)]
    for label, a, b, T in cases:
        want = float(symmetric_bernoulli_kl(a, b, T))
        ok, value = _call_scalar(name, fn, label, a.clone(), b.clone(), T)
        if not ok:
            return _report(name, False, value)
        if not np.isclose(value, want, rtol=1e-5, atol=1e-7):
            return _report(name, False, f"{label}: got {value:.6g}, expected {want:.6g}")
    return _report(name, True, f"matches symmetric_bernoulli_kl on {len(cases)} cases (widths 5 and 71, "
                               f"T = 1 and 4, equal, shifted and swapped logits)")


# --------------------------------------------------------------------------------------- windows

def _toy_model(leads: int, classes: int = 5):
    """A seeded 1-D CNN ``(batch, leads, samples) -> (batch, classes)`` logits, any input length."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(leads, 8, 25, padding=12), nn.ReLU(), nn.Conv1d(8, classes, 25),
                          nn.AdaptiveMaxPool1d(1), nn.Flatten())
    return model.eval()


def check_window_aggregation(fn: Callable) -> bool:
    """Check ``fn(model, X, window, stride) -> scores``: the PTB-XL benchmark's test-time windows.

    ``model`` maps a float32 tensor ``(records, leads, window)`` to logits ``(records, classes)``;
    ``X``: ``(records, leads, samples)`` numpy array, mV; ``window``, ``stride``: samples. Return
    a ``(records, classes)`` array: the maximum over windows of the sigmoid scores, windows every
    ``stride`` samples from 0, plus one ending exactly at the record's end when the stride does
    not reach it. Compared with :func:`ecgbook.protocol.window_scorer` (within 1e-5) on eight real
    PTB-XL records (12 leads, 10 s at 100 Hz) with a seeded CNN, for 2.5-s windows (stride 1.25 s)
    and 3-s windows (stride 1.5 s, where the last window must be added).
    """
    import torch

    from .protocol import window_scorer

    name = "check_window_aggregation"
    ids, X, leads, fs = _ptbxl_signals()
    X = X.astype(np.float32)
    model = _toy_model(X.shape[1])
    for window_s in (2.5, 3.0):
        window = int(round(window_s * fs))
        stride = window // 2
        with torch.no_grad():
            want = window_scorer(fs, window_s)(model, X, device="cpu")
            ok, got = _call(name, fn, model, X.copy(), window, stride, returns=ARRAY)
        if not ok:
            return _report(name, False, got)
        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().numpy()
        got = np.asarray(got, dtype=float)
        if got.shape != want.shape:
            return _report(name, False, f"{window_s:g}-s windows: shape {got.shape}, expected {want.shape} "
                                        f"(records, classes)")
        diff = _first_difference(want.astype(float), got, atol=1e-5)
        if diff:
            (r, c), e, v = diff
            return _report(name, False, f"{window_s:g}-s windows, stride {stride} samples: record {ids[r]}, "
                                        f"class {c}: expected {e:.5f}, got {v:.5f}")
    return _report(name, True, f"max of sigmoid scores over windows matches on {len(ids)} PTB-XL records "
                               f"for 2.5-s and 3-s windows")


# --------------------------------------------------------------------------------------- STFT

def check_spectrogram_shape(fn: Callable) -> bool:
    """Check ``fn(n_samples, fs, nperseg, noverlap, fmax) -> (n_bins, n_frames)``.

    The shape of :func:`ecgbook.signal.spectrogram` (scipy's STFT, Hann window, zero-padded
    boundaries, frequencies above ``fmax`` dropped; ``fmax=None`` keeps all), computed on real
    excerpts: a 2-s MIT-BIH beat window at 360 Hz (the transfer chapter's settings), 9 s of
    MIT-BIH and a 10-s PTB-XL record at 100 Hz, with several window settings.
    """
    from .signal import spectrogram

    name = "check_spectrogram_shape"
    rec = _mitdb().read("100")
    ids, X, leads, fs_ptb = _ptbxl_signals()
    cases = [("MIT-BIH 100, 2-s beat window", rec.signal[0, :720], rec.fs, 64, 56, 50.0),
             ("MIT-BIH 100, 9 s", rec.signal[0, :3240], rec.fs, 128, 96, 50.0),
             ("MIT-BIH 100, 2 s, no overlap", rec.signal[0, :720], rec.fs, 90, 0, 40.0),
             (f"PTB-XL {ids[0]}, lead II, 10 s", X[0, leads.index("II")], fs_ptb, 64, 32, None),
             (f"PTB-XL {ids[0]}, lead II, 10 s, odd window", X[0, leads.index("II")], fs_ptb, 51, 40, 30.0)]
    for label, x, fs, nperseg, noverlap, fmax in cases:
        _, _, S = spectrogram(x, fs, nperseg=nperseg, noverlap=noverlap, fmax=fmax)
        want = tuple(int(v) for v in S.shape[-2:])
        ok, got = _call(name, fn, len(x), fs, nperseg, noverlap, fmax, returns=(_array_like, "a pair (n_bins, n_frames)"))
        if not ok:
            return _report(name, False, got)
        try:
            got = tuple(int(v) for v in got)
        except (TypeError, ValueError):
            return _report(name, False, f"expected a pair of integers (n_bins, n_frames), got {got!r}")
        if got != want:
            return _report(name, False, f"{label} ({len(x)} samples at {fs:g} Hz, nperseg {nperseg}, noverlap "
                                        f"{noverlap}, fmax {fmax}): got {got}, expected {want} (bins, frames)")
    return _report(name, True, f"(bins, frames) match ecgbook.signal.spectrogram on {len(cases)} real excerpts")


# --------------------------------------------------------------------------------------- leakage

def check_shared_patients(fn: Callable, k: int = 5) -> bool:
    """Check ``fn(folds, patients) -> share``: the share of test instances whose patient also has
    instances in the training part of the same fold, pooled over folds.

    ``folds``: a list of ``(train_indices, test_indices)``; ``patients``: ``(instances,)`` patient of
    each instance. Compared (within 1e-12) on the beats of the 44 non-paced MIT-BIH records
    (patients per :func:`ecgbook.data.mitdb.record_to_patient`) under three splits: ``k``-fold
    stratified over beats (segment-level, nearly every test beat leaks), ``k`` patient-wise folds
    (none leak) and de Chazal's DS1 → DS2 (only patient 201/202 leaks).
    """
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    from .data.mitdb import DS1, DS2, record_to_patient

    name = "check_shared_patients"
    records = _split_beats()
    patients = np.array([record_to_patient(r) for r in records])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=len(records))  # stratification labels; any will do here
    index = np.arange(len(records))
    splits = {
        "segment-level (stratified over beats)":
            list(StratifiedKFold(k, shuffle=True, random_state=0).split(index, labels)),
        "patient-wise": list(GroupKFold(k).split(index, labels, patients)),
        "DS1 → DS2": [(np.flatnonzero(np.isin(records, DS1)), np.flatnonzero(np.isin(records, DS2)))],
    }
    for label, folds in splits.items():
        hits = sum(np.isin(patients[te], patients[tr]).sum() for tr, te in folds)
        want = hits / sum(len(te) for _, te in folds)
        ok, got = _call(name, fn, folds, patients.copy())
        if not ok:
            return _report(name, False, got)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return _report(name, False, f"{label}: your function returned a {type(got).__name__} {got!r}, "
                                        "expected a number")
        if not abs(got - want) <= 1e-12:
            return _report(name, False, f"{label} split of {len(records):,} MIT-BIH beats: got {got:.4f}, "
                                        f"expected {want:.4f}")
    return _report(name, True, "matches on segment-level, patient-wise and DS1 → DS2 splits of "
                               f"{len(records):,} real MIT-BIH beats")


# --------------------------------------------------------------------------------------- CMSC

def _cmsc_cases():
    """Batches laid out as in pre-training: ``(label, ids, segment, names)``, one name per id code."""
    import pandas as pd

    ids_ptb = [f"ptbxl:{i}" for i in _ptbxl().available[:6]]
    # MIT-BIH DS1 records are 30 min long: the corpus cuts several 10-s pairs from each
    pairs = ids_ptb + ["mitdb:101"] * 3 + ["mitdb:106"] * 2
    order = np.random.default_rng(0).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    codes, names = pd.factorize(np.array(pairs))
    seg_ids = np.repeat(codes, 2).astype(np.int64)           # segments 2i and 2i + 1 of pair i
    position = np.tile([0, 1], len(pairs)).astype(np.int64)
    shuffle = np.random.default_rng(1).permutation(len(seg_ids))
    hand = np.array([4, 4, 4, 4, 7, 7]), np.array([0, 1, 0, 1, 0, 1])
    return [("two pairs of one recording (ids [4, 4, 4, 4, 7, 7], segment [0, 1, 0, 1, 0, 1])",
             hand[0], hand[1], None),
            (f"a batch of {len(pairs)} pairs (6 PTB-XL records, MIT-BIH 101 ×3, 106 ×2)",
             seg_ids, position, list(names)),
            (f"the same {len(seg_ids)} segments in shuffled order", seg_ids[shuffle], position[shuffle],
             list(names)),
            ("one pair per recording", np.repeat(np.arange(5), 2), np.tile([0, 1], 5), None)]


def check_cmsc_positives(fn: Callable) -> bool:
    """Check ``fn(ids, segment) -> P``: the positive mask of the CMSC loss.

    ``ids``, ``segment``: ``(N,)`` int64 NumPy arrays, the recording id and the position (0: first,
    1: second 5-s segment of its pair) of each segment of a batch. ``P``: ``(N₀, N₁)`` bool, rows
    the position-0 segments and columns the position-1 segments in batch order, ``P[i, j]`` true
    when they share an id. Compared with :func:`ecgbook.lead_agnostic_ssl.cmsc_positives` on a
    hand-made batch (two pairs of one recording), on a batch of pre-training pairs with the corpus'
    recording ids (the first PTB-XL records of the mirror, one pair each, and several pairs of
    MIT-BIH DS1 records 101 and 106), on its segments shuffled, and on one pair per recording.
    """
    from .lead_agnostic_ssl import cmsc_positives

    name = "check_cmsc_positives"
    cases = _cmsc_cases()
    for label, ids, segment, names in cases:
        want = np.asarray(cmsc_positives(ids, segment))
        ok, got = _call(name, fn, ids.copy(), segment.copy(), returns=ARRAY)
        if not ok:
            return _report(name, False, got)
        if hasattr(got, "detach"):
            got = got.detach().cpu().numpy()
        got = np.asarray(got)
        if got.shape != want.shape:
            return _report(name, False, f"{label}: shape {got.shape}, expected {want.shape} "
                                        f"(segments at position 0, segments at position 1)")
        if got.dtype != bool and not np.isin(got, (0, 1)).all():
            return _report(name, False, f"{label}: expected a boolean matrix, got values {np.unique(got)[:5]}")
        bad = np.argwhere(got.astype(bool) != want)
        if len(bad):
            i, j = (int(v) for v in bad[0])
            a, b = ids[segment == 0][i], ids[segment == 1][j]
            a, b = (names[a], names[b]) if names is not None else (f"id {a}", f"id {b}")
            return _report(name, False, f"{label}: P[{i}, {j}] (first segment of {a}, second segment "
                                        f"of {b}) is {bool(got[i, j])}, expected {bool(want[i, j])}")
    return _report(name, True, f"positive masks match on {len(cases)} batches, incl. several pairs of "
                               "one recording and shuffled segments")


# --------------------------------------------------------------------------------------- zero-fill

def check_zero_fill(fn: Callable) -> bool:
    """Check ``fn(x, leads) -> filled``: place a lead subset into the 12-lead layout.

    ``x``: ``(..., len(leads), samples)`` float32 mV; ``leads``: lead names in the order of ``x``'s
    rows; ``filled``: ``(..., 12, samples)`` with lead ``leads[i]`` at its row of I, II, III, aVR,
    aVL, aVF, V1–V6 and zeros elsewhere. Compared (within 1e-6 mV) with
    :func:`ecgbook.lead_agnostic_ssl.zero_fill` on the lead subsets of the chapter taken from a
    real PTB-XL record (100 Hz), on leads given out of layout order, on eight records at once, and
    on 10 s of MIT-BIH record 100 (MLII placed as II, and V5).
    """
    from .lead_agnostic_ssl import LEAD_SUBSETS, zero_fill

    name = "check_zero_fill"
    ids, X, leads, _ = _ptbxl_signals()
    X = X.astype(np.float32)
    rows = {lead: k for k, lead in enumerate(leads)}
    cases = [(f"PTB-XL record {ids[0]}, leads {', '.join(sub)}", X[0, [rows[l] for l in sub]], list(sub))
             for n, sub in sorted(LEAD_SUBSETS.items()) if n < 12]
    cases.append((f"PTB-XL record {ids[1]}, leads V2, I (out of layout order)", X[1, [rows["V2"], rows["I"]]],
                  ["V2", "I"]))
    sub = LEAD_SUBSETS[3]
    cases.append((f"{len(ids)} PTB-XL records at once, leads {', '.join(sub)}", X[:, [rows[l] for l in sub]],
                  list(sub)))
    rec = _mitdb().read("100")
    cases.append(("MIT-BIH 100, 10 s, MLII as II and V5", rec.signal[:, :3600].astype(np.float32), ["II", "V5"]))
    for label, x, sub in cases:
        want = zero_fill(x, sub)
        ok, got = _call(name, fn, x.copy(), list(sub), returns=ARRAY)
        if not ok:
            return _report(name, False, got)
        if hasattr(got, "detach"):
            got = got.detach().cpu().numpy()
        got = np.asarray(got, dtype=float)
        if got.shape != want.shape:
            return _report(name, False, f"{label}: shape {got.shape}, expected {want.shape}")
        diff = _first_difference(want.astype(float), got, atol=1e-6)
        if diff:
            idx, e, v = diff
            lead = leads[idx[-2]]
            where = "absent, must be 0" if lead not in sub else f"input row {sub.index(lead)}"
            return _report(name, False, f"{label}: lead {lead} ({where}), sample {idx[-1]}: expected "
                                        f"{e:.4f} mV, got {v:.4f} mV")
    return _report(name, True, f"12-lead layouts match on {len(cases)} cases of real PTB-XL and MIT-BIH signal")


# --------------------------------------------------------------------------------------- DINO

def check_dino_loss(fn: Callable) -> bool:
    """Check ``fn(student_out, teacher_out, center, tau_s, tau_t, n_global) -> scalar``: DINO's loss.

    ``student_out``: ``(n_views × B, K)``, views stacked in order, the first ``n_global`` being
    the global views the teacher saw; ``teacher_out``: ``(n_global × B, K)``; ``center``: ``(1, K)``.
    The cross-entropy between ``softmax((t_g − c) / tau_t)`` and ``log_softmax(s_v / tau_s)``,
    averaged over the windows and over every pair of a global view ``g`` and a different view
    ``v``. Compared with :class:`ecgbook.ssl.DINOLoss` (centre not updated; relative 1e-5) on
    seeded random outputs with 2 + 3 and 2 + 8 views, 2 global views only, a non-zero centre, the
    teacher temperature 0.07, and hand-made outputs (a confident teacher; a centre equal to the
    teacher's output). Arguments are passed by position, in that order.
    """
    import torch

    from .ssl import DINOLoss

    name = "check_dino_loss"
    g = torch.Generator().manual_seed(0)
    B, K = 4, 16
    s5, t2 = torch.randn(5 * B, K, generator=g), torch.randn(2 * B, K, generator=g)
    s10, t10 = torch.randn(10 * 3, 64, generator=g) * 2, torch.randn(2 * 3, 64, generator=g) * 2
    zero16, zero64 = torch.zeros(1, K), torch.zeros(1, 64)
    centre = torch.randn(1, K, generator=g)
    confident = torch.zeros(2 * B, K)
    confident[torch.arange(2 * B), torch.arange(2 * B) % K] = 1.0
    cases = [("random, 2 global + 3 local views, zero centre", s5, t2, zero16, 0.1, 0.04, 2),
             ("random, 2 global + 3 local views, non-zero centre", s5, t2, centre, 0.1, 0.04, 2),
             ("random, 2 global views only", s5[:2 * B], t2, centre, 0.1, 0.04, 2),
             ("random, 2 global + 8 local views, K = 64, tau_t = 0.07", s10, t10, zero64, 0.1, 0.07, 2),
             ("confident teacher (one-hot outputs)", s5, confident, zero16, 0.1, 0.04, 2),
             ("centre equal to the teacher's output", s5, t2[:1].expand(2 * B, K).clone(), t2[:1].clone(),
              0.1, 0.04, 2)]
    for label, s, t, c, tau_s, tau_t, n_global in cases:
        ref = DINOLoss(s.shape[1], n_global, student_temp=tau_s)
        ref.center.copy_(c)
        want = float(ref(s, t, tau_t, update_center=False)[0])
        ok, value = _call_scalar(name, fn, label, s.clone(), t.clone(), c.clone(), tau_s, tau_t, n_global)
        if not ok:
            return _report(name, False, value)
        if not np.isclose(value, want, rtol=1e-5, atol=1e-6):
            return _report(name, False, f"{label} (student {tuple(s.shape)}, teacher {tuple(t.shape)}): "
                                        f"got {value:.6g}, expected {want:.6g}")
    return _report(name, True, f"matches ecgbook.ssl.DINOLoss on {len(cases)} cases (local views or none, "
                               "centred, other temperatures, hand-made outputs)")


# --------------------------------------------------------------------------------------- gate

def _fixed_encoder(h):
    """A module that ignores its input and returns the features ``h`` (with ``out_features``)."""
    from torch import nn

    class Fixed(nn.Module):
        out_features = h.shape[1]

        def forward(self, x):
            return h

    return Fixed()


def check_gate_fusion(fn: Callable) -> bool:
    """Check ``fn(h_t, h_s, weight, bias) -> (h, g)``: the gate that fuses the two modalities.

    ``h_t`` ``(B, d_t)`` and ``h_s`` ``(B, d_s)``: time-series and spectrogram features;
    ``weight`` ``(2, d_t + d_s)`` and ``bias`` ``(2,)``: the gate's linear layer. Return the gate
    weights ``g = softmax(weight [h_t; h_s] + bias)`` ``(B, 2)``, each row summing to 1, and the
    fused features ``h = [g₀ h_t ; g₁ h_s]`` ``(B, d_t + d_s)``. Compared (within 1e-5) with
    :meth:`ecgbook.models.fusion.FusionClassifier.fuse` — the package's own gate, given these
    features and weights — on seeded random features of unequal widths, a zero gate (both weights
    ½), a bias that favours one modality, and large weights (gates near 0 and 1).
    """
    import torch

    from .models.fusion import FusionClassifier, Spectrogram

    name = "check_gate_fusion"
    g = torch.Generator().manual_seed(0)
    B, d_t, d_s = 8, 32, 48
    h_t, h_s = torch.randn(B, d_t, generator=g), torch.randn(B, d_s, generator=g)
    W, b = torch.randn(2, d_t + d_s, generator=g) * 0.2, torch.randn(2, generator=g)
    cases = [("random features (8, 32) and (8, 48)", h_t, h_s, W, b),
             ("zero gate (weight 0, bias 0)", h_t, h_s, torch.zeros_like(W), torch.zeros(2)),
             ("bias (2, -2), weight 0", h_t, h_s, torch.zeros_like(W), torch.tensor([2.0, -2.0])),
             ("large weights (gates near 0 and 1)", h_t, h_s, W * 20, b)]
    for label, a, s, w, bias in cases:
        model = FusionClassifier(_fixed_encoder(a), _fixed_encoder(s), Spectrogram(), n_classes=2)
        with torch.no_grad():
            model.gate_fc.weight.copy_(w)
            model.gate_fc.bias.copy_(bias)
            want_h, want_g = (v.numpy().astype(float) for v in model.fuse(torch.zeros(B, 12, 250)))
        ok, got = _call(name, fn, a.clone(), s.clone(), w.clone(), bias.clone())
        if not ok:
            return _report(name, False, got)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return _report(name, False, f"{label}: your function returned a {type(got).__name__}, expected "
                                        "a pair: return (h, g)")
        try:
            h, gate = (np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=float)
                       for v in got)
        except (TypeError, ValueError) as exc:
            return _report(name, False, f"{label}: h and g must be arrays or tensors ({exc})")
        if gate.shape != want_g.shape:
            return _report(name, False, f"{label}: g has shape {gate.shape}, expected {want_g.shape} (windows, 2)")
        sums = gate.sum(1)
        if not np.allclose(sums, 1.0, atol=1e-5):
            i = int(np.argmax(np.abs(sums - 1.0)))
            return _report(name, False, f"{label}: the gate weights of window {i} sum to {sums[i]:.5f}, not 1")
        diff = _first_difference(want_g, gate, atol=1e-5)
        if diff:
            (i, k), e, v = diff
            return _report(name, False, f"{label}: g[{i}, {k}] ({('time series', 'spectrogram')[k]}) is "
                                        f"{v:.5f}, expected {e:.5f}")
        if h.shape != want_h.shape:
            return _report(name, False, f"{label}: h has shape {h.shape}, expected {want_h.shape}")
        diff = _first_difference(want_h, h, atol=1e-5)
        if diff:
            (i, j), e, v = diff
            part = f"time-series feature {j}" if j < a.shape[1] else f"spectrogram feature {j - a.shape[1]}"
            return _report(name, False, f"{label}: h[{i}, {j}] ({part}) is {v:.5f}, expected {e:.5f}")
    return _report(name, True, f"g and h match FusionClassifier.fuse on {len(cases)} cases "
                               "(random, zero, biased and saturated gates)")


# --------------------------------------------------------------------------------------- side by side


def check_paired_bootstrap(fn: Callable) -> bool:
    """Check ``fn(y_true, scores_a, scores_b, n_boot, seed) -> (diff, low, high)``: the macro-AUROC
    difference A − B on the same records and its 95 % percentile interval from resampling the
    records **jointly** for both models (a paired bootstrap).

    Compared with :func:`ecgbook.metrics.paired_bootstrap` on seeded multi-label cases ``(records,
    classes)`` = (400, 5): the point difference to 1e-9, the interval ends within 0.01 (2,000
    resamples; another random stream moves them by less). Two strongly correlated models make an
    unpaired bootstrap (each model's records drawn separately) several times too wide, so it fails.
    """
    from .metrics import macro_auroc, paired_bootstrap

    name = "check_paired_bootstrap"
    rng = np.random.default_rng(7)
    y = (rng.random((400, 5)) < 0.25).astype(np.uint8)
    a = y * 1.2 + rng.normal(size=y.shape)
    cases = [("B = A + small noise (correlated models)", a, a + 0.3 * rng.normal(size=y.shape)),
             ("B independent of A", a, y * 0.8 + rng.normal(size=y.shape))]
    for label, sa, sb in cases:
        want = paired_bootstrap(macro_auroc, y, sa, sb, n_boot=2000, seed=0)
        ok, got = _call(name, fn, y.copy(), sa.copy(), sb.copy(), 2000, 0,
                        returns=(lambda v: isinstance(v, (tuple, list)) and len(v) == 3, "a tuple (diff, low, high)"))
        if not ok:
            return _report(name, False, got)
        diff, low, high = (float(v) for v in got)
        if not np.isclose(diff, want["diff"], atol=1e-9):
            return _report(name, False, f"{label}: difference {diff:.6f}, expected {want['diff']:.6f} "
                                        "(macro AUROC of A minus that of B on all records)")
        if abs(low - want["low"]) > 0.01 or abs(high - want["high"]) > 0.01:
            return _report(name, False, f"{label}: interval [{low:.4f}, {high:.4f}], expected about "
                                        f"[{want['low']:.4f}, {want['high']:.4f}] — resample the same records "
                                        "for both models, and take the 2.5th and 97.5th percentiles")
    return _report(name, True, "matches the paired bootstrap on correlated and independent models")


def check_lead_loss(fn: Callable) -> bool:
    """Check ``fn(rows) -> {method: loss}``: from the chapter's result rows, each method's pooled
    macro AUROC at 12 leads minus that at 1 lead, both at 100 % of the labels (rows with
    ``evaluation == "pooled over seeds"``), for every method that has both.

    Compared on made-up rows with decoys: per-seed and mean rows, another label fraction, a method
    with only 12 leads, and a delta row."""
    name = "check_lead_loss"
    rows = []
    values = {"alpha": (0.90, 0.80), "beta": (0.85, 0.84), "gamma": (0.80, 0.83)}
    for m, (v12, v1) in values.items():
        for leads, v in ((12, v12), (1, v1)):
            rows.append({"model": m, "evaluation": "pooled over seeds", "metric": "macro_auroc",
                         "label_fraction": 1.0, "leads": leads, "value": v})
            rows.append({"model": m, "evaluation": "per seed", "metric": "macro_auroc", "seed": 0,
                         "label_fraction": 1.0, "leads": leads, "value": v - 0.05})
            rows.append({"model": m, "evaluation": "pooled over seeds", "metric": "macro_auroc",
                         "label_fraction": 0.1, "leads": leads, "value": v - 0.2})
    rows.append({"model": "delta", "evaluation": "pooled over seeds", "metric": "macro_auroc",
                 "label_fraction": 1.0, "leads": 12, "value": 0.7})
    rows.append({"model": "alpha", "evaluation": "vs baseline", "metric": "delta_macro_auroc",
                 "label_fraction": 1.0, "leads": 1, "value": 0.3})
    want = {m: v12 - v1 for m, (v12, v1) in values.items()}
    ok, got = _call(name, fn, [dict(r) for r in rows], returns=(lambda v: isinstance(v, dict), "a dict {method: loss}"))
    if not ok:
        return _report(name, False, got)
    if set(got) != set(want):
        return _report(name, False, f"methods {sorted(got)}, expected {sorted(want)} (only methods with both "
                                    "12 leads and 1 lead at 100 % of the labels)")
    for m, v in want.items():
        if not np.isclose(float(got[m]), v, atol=1e-9):
            return _report(name, False, f"{m}: {float(got[m]):+.3f}, expected {v:+.3f} (12 leads minus 1 lead, "
                                        "pooled over seeds, 100 % of the labels)")
    return _report(name, True, f"the 12 → 1 lead loss of {len(want)} methods, decoys ignored")
