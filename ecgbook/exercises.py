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


def _call(name: str, fn: Callable, *args):
    """``(True, result)``, or ``(False, message)`` when ``fn`` raised."""
    try:
        return True, fn(*args)
    except Exception as exc:  # the reader's code: report any error as a failure
        return False, f"your function raised {type(exc).__name__}: {exc}"


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
            return _report(name, False, f"expected a dict of leads, got {type(got).__name__}")
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
            return _report(name, False, f"{task}: return (value, left_out), got {type(got).__name__}")
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
    ok, got = _call(name, fn, records.copy(), k)
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
        ok, got = _call(name, fn, a.clone(), b.clone(), T)
        if not ok:
            return _report(name, False, got)
        try:
            value = float(got)
        except (TypeError, ValueError, RuntimeError):
            return _report(name, False, f"{label}: expected a scalar, got {type(got).__name__} "
                                        f"{tuple(getattr(got, 'shape', ()))}")
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
            ok, got = _call(name, fn, model, X.copy(), window, stride)
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
        ok, got = _call(name, fn, len(x), fs, nperseg, noverlap, fmax)
        if not ok:
            return _report(name, False, got)
        try:
            got = tuple(int(v) for v in got)
        except TypeError:
            return _report(name, False, f"expected a pair (n_bins, n_frames), got {got!r}")
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
            return _report(name, False, f"{label}: expected a number, got {got!r}")
        if not abs(got - want) <= 1e-12:
            return _report(name, False, f"{label} split of {len(records):,} MIT-BIH beats: got {got:.4f}, "
                                        f"expected {want:.4f}")
    return _report(name, True, "matches on segment-level, patient-wise and DS1 → DS2 splits of "
                               f"{len(records):,} real MIT-BIH beats")
