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
import wfdb

#: The twelve standard leads in the conventional order.
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: Other lead names that occur in the databases of this book (Holter and single-lead devices).
OTHER_LEADS = ("MLII", "MLIII", "ML1", "V", "ECG", "X", "Y", "Z", "VX", "VY", "VZ")
_CANONICAL = {name.upper(): name for name in STANDARD_LEADS + OTHER_LEADS}


class RecordError(ValueError):
    """A record is unreadable or inconsistent; the message names the file and what is wrong."""


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


def check_signal_size(path: Path) -> None:
    """Raise :class:`RecordError` naming the signal file when it is shorter than its header announces.

    For each ``.dat`` file in a plain format (:data:`BYTES_PER_SAMPLE`, no byte offset) the expected
    size is ``samples × channels in the file × bytes per sample``; others (e.g. MATLAB ``.mat``) are
    left to :func:`read_record`'s sample count check.
    """
    header = path.with_suffix(".hea")
    try:
        head = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types for corrupt headers
        raise RecordError(f"{header}: cannot read header ({type(exc).__name__}: {exc})") from exc
    if not head.sig_len or not head.file_name:
        return
    per_file: dict[str, list[str]] = {}
    for name, fmt, offset in zip(head.file_name, head.fmt, head.byte_offset or [None] * head.n_sig):
        per_file.setdefault(name, []).append(fmt if not offset else "?")
    for name, fmts in per_file.items():
        if not name.endswith(".dat") or len(set(fmts)) != 1 or fmts[0] not in BYTES_PER_SAMPLE:
            continue
        expected = int(head.sig_len * len(fmts) * BYTES_PER_SAMPLE[fmts[0]] + 0.5)
        dat = path.parent / name
        size = dat.stat().st_size if dat.is_file() else 0
        if size < expected:
            raise RecordError(f"{dat}: signal file truncated or missing: holds {size} bytes, but {header.name} "
                              f"announces {head.sig_len} samples x {len(fmts)} leads in format {fmts[0]} "
                              f"({expected} bytes)")


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
        the header's sample count before reading) or disagrees
        with the header (sample count, channel count), the signal holds NaNs, a lead name is
        unknown, a requested lead is absent, or the sampling frequency is not ``expected_fs``.
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
    data = (signal.T * scale).astype(np.float32)
    bad = np.isnan(data).any(axis=1)
    if bad.any():
        raise RecordError(f"{header}: signal contains NaN in lead(s) {[names[i] for i in np.flatnonzero(bad)]}")
    if leads is not None:
        missing = [lead for lead in leads if lead not in names]
        if missing:
            raise RecordError(f"{header}: lead(s) {missing} missing (record has {names})")
        data = data[[names.index(lead) for lead in leads]]
        names = list(leads)
    return Record(name=path.name, signal=data, fs=float(rec.fs), leads=names, path=path,
                  comments=list(rec.comments or []))
