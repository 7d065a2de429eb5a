"""Reading one WFDB record into memory, with the checks every dataset reader relies on.

All readers of :mod:`ecgbook.data` return signals as ``float32`` arrays of shape
``(leads, samples)`` in millivolts, with the lead names of the header in the
book's canonical spelling (``I, II, III, aVR, aVL, aVF, V1 … V6``; MIT-BIH's
modified limb lead ``MLII`` keeps its name).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import wfdb

#: The twelve standard leads in the conventional order.
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: Other lead names that occur in the databases of this book (Holter and single-lead devices).
OTHER_LEADS = ("MLII", "MLIII", "ML1", "V", "ECG", "X", "Y", "Z", "VX", "VY", "VZ")
_CANONICAL = {name.upper(): name for name in STANDARD_LEADS + OTHER_LEADS}

#: The reduced lead sets of the book (Oh et al. 2022, Sec. 4; names in the 12-lead layout), used by
#: the lead-agnostic chapter and the side-by-side chapter.
LEAD_SUBSETS = {
    12: tuple(STANDARD_LEADS),
    6: ("I", "II", "III", "aVR", "aVL", "aVF"),
    3: ("I", "II", "V2"),
    2: ("I", "II"),
    1: ("I",),
}


# ----------------------------------------------------------------------------------------------
# Lead layout
# ----------------------------------------------------------------------------------------------
def zero_fill(x: np.ndarray, leads, layout=STANDARD_LEADS) -> np.ndarray:
    """Place ``x`` ``(..., len(leads), samples)`` into the 12-lead ``layout``, absent leads zero.

    Lead ``leads[i]`` goes to row ``layout.index(leads[i])``. Raises ``ValueError`` for a lead not
    in the layout, a repeated lead, or a shape that does not match ``leads``.
    """
    x = np.asarray(x, dtype=np.float32)
    leads = list(leads)
    if x.ndim < 2 or x.shape[-2] != len(leads):
        raise ValueError(f"zero_fill: x has shape {x.shape}, expected (..., {len(leads)} leads, samples)")
    unknown = [l for l in leads if l not in layout]
    if unknown or len(set(leads)) != len(leads):
        raise ValueError(f"zero_fill: leads {leads} must be distinct names of the layout {list(layout)}")
    out = np.zeros(x.shape[:-2] + (len(layout), x.shape[-1]), dtype=np.float32)
    out[..., [list(layout).index(l) for l in leads], :] = x
    return out


def keep_leads(x, subset, layout=STANDARD_LEADS):
    """Zero every lead of ``x`` ``(..., 12, samples)`` not in ``subset`` (lead names); positions kept.

    Works on NumPy arrays and torch tensors (a copy). Raises ``ValueError`` for an unknown lead.
    """
    unknown = [l for l in subset if l not in layout]
    if unknown:
        raise ValueError(f"keep_leads: unknown lead(s) {unknown}; layout is {list(layout)}")
    keep = np.isin(np.array(layout), list(subset))
    if isinstance(x, torch.Tensor):  # masked on its own device
        return x * torch.as_tensor(keep, dtype=x.dtype, device=x.device)[:, None]
    out = np.array(x, dtype=np.float32, copy=True)
    out[..., ~keep, :] = 0.0
    return out


def lead_indices(subset, layout=STANDARD_LEADS) -> list[int]:
    """Rows of the leads ``subset`` (names) in ``layout``, in the layout's order (e.g. for a model trained on
    that lead set only). Raises ``ValueError`` for an unknown lead."""
    unknown = [l for l in subset if l not in layout]
    if unknown:
        raise ValueError(f"lead_indices: unknown lead(s) {unknown}; layout is {list(layout)}")
    return [i for i, l in enumerate(layout) if l in subset]


class RecordError(ValueError):
    """A record is unreadable or inconsistent; the message names the file and what is wrong."""


class NonFiniteSignalError(RecordError):
    """A signal holds NaN or infinite samples; the message names the record and the leads."""


def check_finite(signal: np.ndarray, where: str, leads: list[str] | tuple[str, ...] | None = None) -> None:
    """Raise :class:`NonFiniteSignalError` when ``signal`` ``(leads, samples)`` holds NaN or ±inf.

    The one check every reader and the signal cache use. ``where`` names the record (its header
    file); the message lists, per kind (NaN, +inf, -inf), the leads holding it (``leads`` names
    the rows, else row numbers). Infinite values come e.g. from a header gain that overflows
    float32 once the ADC units are scaled to mV.
    """
    data = np.asarray(signal)
    if data.ndim == 1:
        data = data[None]
    if np.isfinite(data).all():
        return
    names = list(leads) if leads is not None and len(leads) == data.shape[0] else list(range(data.shape[0]))
    kinds = [(label, test(data).reshape(data.shape[0], -1).any(axis=1))
             for label, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf))]
    parts = [f"{label} in lead(s) {[names[i] for i in np.flatnonzero(rows)]}" for label, rows in kinds if rows.any()]
    raise NonFiniteSignalError(f"{where}: signal contains {'; '.join(parts)} (check the header's gain and baseline)")


@dataclass
class Record:
    """One ECG record.

    Attributes
    ----------
    name: record name (file stem).
    signal: ``(leads, samples)`` float32, mV.
    fs: sampling frequency in Hz.
    leads: lead names, canonical spelling, one per row of ``signal``.
    path: path of the record without extension.
    comments: the header's comment lines (``#Age: 49`` …) without the ``#``.
    """

    name: str
    signal: np.ndarray
    fs: float
    leads: list[str]
    path: Path
    comments: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.signal.shape[1] / self.fs


def canonical_lead(name: str, where: str = "") -> str:
    """Return the canonical spelling of a lead name (``AVR`` → ``aVR``).

    Raises :class:`RecordError` naming ``where`` for a name that is no known lead.
    """
    key = name.strip().upper()
    if key not in _CANONICAL:
        raise RecordError(f"{where}: unknown lead name {name!r} (known: {', '.join(STANDARD_LEADS + OTHER_LEADS)})")
    return _CANONICAL[key]


#: Bytes per sample of the WFDB signal formats whose file size follows from the header.
BYTES_PER_SAMPLE = {"8": 1, "80": 1, "16": 2, "61": 2, "160": 2, "212": 1.5, "24": 3, "32": 4}
#: MATLAB v4 precision code (the ``P`` digit of the type ``MOPT``) of each WFDB format a ``.mat`` may hold.
MAT_PRECISION = {"16": 3, "32": 2, "80": 5}
_MAT_NAMES = {0: "float64", 1: "float32", 2: "int32", 3: "int16", 4: "uint16", 5: "uint8"}


def check_header_text(header: Path) -> None:
    """Raise :class:`RecordError` naming ``header`` when it is empty (wfdb would fail with an IndexError)."""
    try:
        text = header.read_text(errors="replace")
    except OSError as exc:
        raise RecordError(f"{header}: cannot read header ({exc})") from exc
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise RecordError(f"{header}: empty header (no record line); the file is cut or was never written")


def _read_header(path: Path):
    header = path.with_suffix(".hea")
    check_header_text(header)
    try:
        return wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types for corrupt headers
        raise RecordError(f"{header}: cannot read header ({type(exc).__name__}: {exc})") from exc


def check_mat_layout(mat: Path, header: Path, n_sig: int, sig_len: int, fmt: str, offset: int) -> None:
    """Check a WFDB MATLAB v4 signal file (the Challenges' ``.mat``) against its header.

    wfdb reads such a file as raw samples after ``offset`` bytes, trusting the header; this reads
    the MATLAB v4 matrix header (Moler, MAT-File Format, level 4: ``type, mrows, ncols, imagf,
    namlen`` as int32, then the name) and requires a real, full, little-endian matrix of the
    header's format (int16 for format 16), ``n_sig`` rows (leads) by ``sig_len`` columns
    (samples; MATLAB stores it column-major, i.e. sample-interleaved, as WFDB expects), data
    starting at ``offset`` and nothing after it.

    Raises :class:`RecordError` naming the ``.mat`` file and what differs (dtype, transposed,
    wrong shape, not a MATLAB v4 file, size).
    """
    import struct

    try:
        with open(mat, "rb") as fh:
            head = fh.read(20)
            size = mat.stat().st_size
    except OSError as exc:
        raise RecordError(f"{mat}: cannot read the signal file ({exc})") from exc
    if head[:6] == b"MATLAB":
        raise RecordError(f"{mat}: a MATLAB v5/v7 file; {header.name} describes a MATLAB v4 matrix "
                          f"(save with scipy.io.savemat(..., format='4'))")
    if len(head) < 20:
        raise RecordError(f"{mat}: only {size} bytes, no MATLAB v4 matrix header")
    mopt, mrows, ncols, imagf, namlen = struct.unpack("<5i", head)
    m, o, p, t = mopt // 1000, (mopt // 100) % 10, (mopt // 10) % 10, mopt % 10
    if not (0 <= mopt < 5000) or m != 0 or o != 0 or t != 0 or imagf != 0:
        raise RecordError(f"{mat}: not a little-endian real full MATLAB v4 matrix (type {mopt}, imagf {imagf})")
    want = MAT_PRECISION.get(fmt)
    if want is not None and p != want:
        raise RecordError(f"{mat}: the matrix holds {_MAT_NAMES.get(p, f'precision code {p}')} values, but "
                          f"{header.name} declares WFDB format {fmt} ({_MAT_NAMES[want]}); "
                          f"store the signal as {_MAT_NAMES[want]} ADC units")
    if (mrows, ncols) == (sig_len, n_sig) and mrows != ncols:
        raise RecordError(f"{mat}: the matrix is transposed: {mrows} x {ncols} (samples x leads), {header.name} "
                          f"announces {n_sig} leads x {sig_len} samples (leads x samples)")
    if (mrows, ncols) != (n_sig, sig_len):
        raise RecordError(f"{mat}: the matrix is {mrows} x {ncols}, {header.name} announces {n_sig} leads x "
                          f"{sig_len} samples")
    if 20 + namlen != offset:
        raise RecordError(f"{mat}: data starts at byte {20 + namlen}, {header.name} says {offset}")
    expected = offset + mrows * ncols * int(BYTES_PER_SAMPLE.get(fmt, 2))
    if size != expected:
        raise RecordError(f"{mat}: holds {size} bytes, a {mrows} x {ncols} matrix in format {fmt} takes {expected}")


def check_signal_size(path: Path) -> None:
    """Raise :class:`RecordError` naming the signal file when its size or layout differs from the header.

    For each ``.dat`` file in a plain format (:data:`BYTES_PER_SAMPLE`, no byte offset) the size
    must be exactly ``samples × channels in the file × bytes per sample``: a shorter file is
    truncated, a longer one holds more leads or samples than the header announces (e.g. a 1-lead
    header over a 2-lead file, which would otherwise be read interleaved). A MATLAB v4 ``.mat``
    is checked with :func:`check_mat_layout`. Lead names must be unique.
    """
    header = path.with_suffix(".hea")
    head = _read_header(path)
    names = [n.strip().upper() for n in (head.sig_name or [])]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RecordError(f"{header}: lead name(s) {duplicates} appear more than once ({head.sig_name})")
    if not head.sig_len or not head.file_name:
        return
    per_file: dict[str, list[tuple[str, int]]] = {}
    for name, fmt, offset in zip(head.file_name, head.fmt, head.byte_offset or [None] * head.n_sig):
        per_file.setdefault(name, []).append((fmt, offset or 0))
    for name, specs in per_file.items():
        fmts = {f for f, _ in specs}
        offsets = {o for _, o in specs}
        dat = path.parent / name
        if not dat.is_file():
            raise RecordError(f"{dat}: signal file missing ({header.name} names it)")
        if len(fmts) != 1 or len(offsets) != 1:
            continue
        fmt, offset = fmts.pop(), offsets.pop()
        if name.endswith(".mat"):
            check_mat_layout(dat, header, len(specs), int(head.sig_len), fmt, offset)
            continue
        if fmt not in BYTES_PER_SAMPLE or offset:
            continue
        expected = int(head.sig_len * len(specs) * BYTES_PER_SAMPLE[fmt] + 0.5)
        size = dat.stat().st_size
        if size < expected:
            raise RecordError(f"{dat}: signal file truncated or missing: holds {size} bytes, but {header.name} "
                              f"announces {head.sig_len} samples x {len(specs)} leads in format {fmt} "
                              f"({expected} bytes)")
        if size > expected:
            raise RecordError(f"{dat}: holds {size} bytes, more than the {expected} bytes {header.name} announces "
                              f"({head.sig_len} samples x {len(specs)} leads in format {fmt}): the header declares "
                              f"fewer leads or samples than the file holds")


def read_record(path: str | Path, *, expected_fs: float | None = None,
                leads: list[str] | tuple[str, ...] | None = None) -> Record:
    """Read a WFDB record (``.hea`` + ``.dat``/``.mat``) as a :class:`Record` in mV.

    Parameters
    ----------
    path:
        Record path with or without the ``.hea`` extension.
    expected_fs:
        If given, the header's sampling frequency must equal it (Hz).
    leads:
        If given, return only these leads, in this order.

    Raises
    ------
    RecordError
        The header is missing or malformed, the signal file is missing, truncated (checked against
        the header's sample count before reading), larger than the header announces, or disagrees
        with the header (sample count, channel count; a ``.mat`` of another dtype or transposed),
        the signal holds NaN or infinite samples (:class:`NonFiniteSignalError`, naming the leads), a lead name is unknown or repeated, a requested lead is absent, or
        the sampling frequency is not ``expected_fs``.
    """
    path = Path(path)
    if path.suffix == ".hea":
        path = path.with_suffix("")
    header = path.with_suffix(".hea")
    if not header.is_file():
        raise RecordError(f"{header}: header file not found")
    check_signal_size(path)
    try:
        rec = wfdb.rdrecord(str(path), physical=True)
    except Exception as exc:  # wfdb raises many types for corrupt files
        raise RecordError(f"{header}: cannot read record ({type(exc).__name__}: {exc})") from exc
    signal = rec.p_signal
    if signal is None or signal.ndim != 2:
        raise RecordError(f"{header}: no signal could be read")
    if rec.sig_len is not None and signal.shape[0] != rec.sig_len:
        raise RecordError(f"{header}: header announces {rec.sig_len} samples but the signal file holds {signal.shape[0]}")
    if signal.shape[1] != rec.n_sig:
        raise RecordError(f"{header}: header announces {rec.n_sig} leads but the signal file holds {signal.shape[1]}")
    names = [canonical_lead(n, str(header)) for n in rec.sig_name]
    units = {u.strip().lower() for u in (rec.units or []) if u}
    scale = 1.0
    if units == {"uv"}:
        scale = 1e-3
    elif units and units != {"mv"}:
        raise RecordError(f"{header}: unexpected signal units {sorted(units)} (expected mV)")
    if expected_fs is not None and abs(float(rec.fs) - float(expected_fs)) > 1e-6:
        raise RecordError(f"{header}: sampling frequency is {rec.fs} Hz, expected {expected_fs} Hz")
    with np.errstate(over="ignore", invalid="ignore"):
        data = (signal.T * scale).astype(np.float32)
    check_finite(data, str(header), names)
    if leads is not None:
        missing = [lead for lead in leads if lead not in names]
        if missing:
            raise RecordError(f"{header}: lead(s) {missing} missing (record has {names})")
        data = data[[names.index(lead) for lead in leads]]
        names = list(leads)
    return Record(name=path.name, signal=data, fs=float(rec.fs), leads=names, path=path,
                  comments=list(rec.comments or []))
