"""MIT-BIH Arrhythmia Database 1.0.0: records, beat and rhythm annotations, AAMI classes, DS1/DS2.

The database (Moody & Mark, IEEE Eng Med Biol 20(3):45-50, 2001; PhysioNet ``mitdb`` 1.0.0)
holds 48 half-hour two-lead ambulatory ECG records (records ``100``-``124`` and ``200``-``234``)
sampled at 360 Hz, 11-bit resolution over a 10 mV range, with reference annotations (``.atr``)
marking every beat at its R peak and every rhythm change.

Leads
    The upper signal is a modified limb lead II (``MLII``) in 46 records (in record 114 the two
    signals are swapped, so ``MLII`` is the lower one). Records 102 and 104 have no ``MLII``
    (surgical dressings on the patient; PhysioNet's record descriptions): their signals are ``V5``
    and ``V2``. The segment builders therefore take a ``lead`` and a documented ``fallback``.

Beat classes
    Beats are grouped into the five classes of ANSI/AAMI EC57:1998/(R)2008 (Testing and reporting
    performance results of cardiac rhythm and ST segment measurement algorithms), as tabulated for
    the MIT-BIH symbols by de Chazal, O'Dwyer & Reilly, *Automatic classification of heartbeats
    using ECG morphology and heartbeat interval features*, IEEE TBME 51(7):1196-1206, 2004, Table I:

    ===  ========================================  ==========================
    N    normal and bundle branch block beats      ``N L R e j``
    S    supraventricular ectopic beats            ``A a J S``
    V    ventricular ectopic beats                 ``V E``
    F    fusion of ventricular and normal          ``F``
    Q    paced, fusion of paced and normal,        ``/ f Q``
         unclassifiable
    ===  ========================================  ==========================

    These 15 symbols are all the beat symbols that occur in the database; every other annotation
    (rhythm changes ``+``, noise ``~``, ventricular flutter waves ``!``, comments ``"``,
    non-conducted P waves ``x``, ``| [ ]``) is not a beat and is excluded.

Inter-patient split
    :data:`DS1` (training) and :data:`DS2` (testing) are the two halves of de Chazal et al. (2004,
    Section II-A), 22 records each, balanced for beat types; the four paced records :data:`PACED`
    are left out, as AAMI EC57 recommends. With the mapping above the annotation files give exactly
    the beat counts of de Chazal et al.'s Table III (DS1: N 45,866, S 944, V 3,788, F 415, Q 8;
    DS2: N 44,259, S 1,837, V 3,221, F 388, Q 7). Caveat: record 201 (DS1) and record 202 (DS2)
    come from the same patient, so the split is inter-record rather than strictly inter-patient.

Patients
    Records 201 and 202 come from the same male subject (PhysioNet's description of the database);
    :func:`record_to_patient` maps both to ``"201"`` so patient-wise folds keep them together, and
    :func:`same_patient_pairs` names the records of two sets that share a patient (DS1 and DS2: 201, 202).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import wfdb

from .. import config
from .download import DataWarning, DatasetFiles, ensure_physionet, file_provenance
from .records import Record, RecordError, read_record

DATABASE = "mitdb"
VERSION = "1.0.0"
#: Sampling frequency of every record (Hz).
FS = 360.0
#: The five AAMI EC57 heartbeat classes.
AAMI_CLASSES = ("N", "S", "V", "F", "Q")
#: MIT-BIH beat annotation symbol → AAMI EC57 class (de Chazal et al. 2004, Table I).
AAMI_MAP = {
    **dict.fromkeys(("N", "L", "R", "e", "j"), "N"),
    **dict.fromkeys(("A", "a", "J", "S"), "S"),
    **dict.fromkeys(("V", "E"), "V"),
    "F": "F",
    **dict.fromkeys(("/", "f", "Q"), "Q"),
}
#: de Chazal et al. (2004) training half of the inter-patient split.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
       "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
#: de Chazal et al. (2004) test half of the inter-patient split.
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
       "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")
#: Records with paced rhythm, excluded from DS1/DS2 (AAMI EC57).
PACED = ("102", "104", "107", "217")
#: Records of a patient who also gave an earlier record (PhysioNet: 201 and 202 are one subject).
_SAME_PATIENT = {"202": "201"}
#: Annotation file extensions fetched with every record.
EXTENSIONS = (".hea", ".dat", ".atr")


@dataclass
class BeatAnnotations:
    """The reference beat annotations of one record.

    Attributes
    ----------
    sample: ``(n,)`` int64, R-peak positions in samples (at 360 Hz).
    symbol: ``(n,)`` str, MIT-BIH beat symbols (``N``, ``V``, ``/`` …).
    aami: ``(n,)`` str, AAMI EC57 class of each beat (one of :data:`AAMI_CLASSES`).
    """

    sample: np.ndarray
    symbol: np.ndarray
    aami: np.ndarray

    def __len__(self) -> int:
        return len(self.sample)


def default_root() -> Path:
    """Default location of the database: ``ecgbook.config.data_dir() / "mitdb" / "1.0.0"``."""
    return config.data_dir() / DATABASE / VERSION


def record_to_patient(name: str | int) -> str:
    """Patient identifier of a record: its own name, except ``"202"`` → ``"201"`` (same subject).

    Source: PhysioNet's MIT-BIH Arrhythmia Database directory ("Records 201 and 202 came from the
    same male subject"). Use it as the ``groups`` of a scikit-learn group split.
    """
    name = str(name)
    return _SAME_PATIENT.get(name, name)


def same_patient_pairs(records_a: Iterable[str | int], records_b: Iterable[str | int]) -> list[tuple[str, str]]:
    """Pairs ``(a, b)`` of *different* records, ``a`` in ``records_a`` and ``b`` in ``records_b``, that come
    from one patient (:func:`record_to_patient`), sorted; ``[]`` when the two sets share no patient.

    Tells whether a set of records kept out of training is unseen patient-wise too:
    ``same_patient_pairs(DS1, DS2) == [("201", "202")]`` (records 201 and 202 are one subject;
    202's header: "taken from the same analog tape as record 201"). A record in both sets is not a
    pair (that is a shared record, not a shared patient). Names may be ``str`` or ``int``.
    """
    a = sorted({str(r) for r in records_a})
    b = sorted({str(r) for r in records_b})
    return [(x, y) for x in a for y in b if x != y and record_to_patient(x) == record_to_patient(y)]


def _read_names(records_file: Path) -> list[str]:
    names = records_file.read_text().split()
    if not names:
        raise RecordError(f"{records_file}: lists no records")
    return names


def download_mitdb(root: str | Path | None = None, records: Iterable[str | int] | None = None) -> Path:
    """Fetch the database (``RECORDS`` and each record's ``.hea``, ``.dat``, ``.atr``) into ``root``.

    Every file is verified against PhysioNet's (pinned) ``SHA256SUMS.txt``, also when already
    present (hash cached by stat); files with the right checksum are not fetched again, damaged
    ones are (see :func:`ecgbook.data.download.ensure_physionet`).

    Parameters
    ----------
    root:
        Destination folder (default :func:`default_root`).
    records:
        Only these records (default: all 48 listed in ``RECORDS``).

    Returns
    -------
    The folder holding the database.

    Raises
    ------
    MissingFileError, ChecksumError, DownloadError
        As :func:`~ecgbook.data.download.fetch_physionet`.
    """
    root = Path(root) if root is not None else default_root()
    _download(root, records)
    return root


def _download(root: Path, records=None) -> DatasetFiles:
    ensure_physionet(DATABASE, VERSION, ["RECORDS"], root)
    names = _read_names(root / "RECORDS") if records is None else [str(r) for r in records]
    return ensure_physionet(DATABASE, VERSION, ["RECORDS"] + [n + ext for n in names for ext in EXTENSIONS], root)


def _windows(signal: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Stack ``signal[s:s+length]`` for each start: ``(len(starts), length)`` float32."""
    return signal[starts[:, None] + np.arange(length)[None, :]].astype(np.float32, copy=False)


class MITBIH:
    """Reader of the MIT-BIH Arrhythmia Database 1.0.0 folder.

    Parameters
    ----------
    root:
        Folder holding ``RECORDS`` and the records' ``.hea``/``.dat``/``.atr`` files (default
        :func:`default_root`). A folder that already holds them all is read as is, without any
        download (e.g. an existing copy of the database).
    download:
        Verify every file against the (pinned) checksum list and fetch the missing or damaged ones
        with :func:`download_mitdb`; when ``False``, raise for missing files, verify the files
        against a trusted local ``SHA256SUMS.txt`` if there is one (a damaged file raises), and
        otherwise use them unverified (a :class:`~ecgbook.data.download.DataWarning` says so).

    Attributes
    ----------
    files: :class:`~ecgbook.data.download.DatasetFiles`, which files were verified.

    Raises
    ------
    FileNotFoundError
        Files are missing and ``download`` is false; the message names the folder and the files.
    ChecksumError
        A file differs from its listed SHA-256 (``download=False``), or the source's copy does too.

    Examples
    --------
    >>> db = MITBIH()                                   # doctest: +SKIP
    >>> X, y, rec, sample = db.beat_segments(DS1)       # doctest: +SKIP
    """

    def __init__(self, root: str | Path | None = None, download: bool = True):
        self.root = Path(root) if root is not None else default_root()
        if download:
            self.files = _download(self.root)
        missing = self._missing()
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise FileNotFoundError(
                f"{self.root}: the MIT-BIH Arrhythmia Database is incomplete, missing {shown}; "
                f"pass download=True or call download_mitdb({str(self.root)!r})")
        #: The 48 record names in the order of ``RECORDS`` (``"100"`` … ``"234"``).
        self.records: list[str] = _read_names(self.root / "RECORDS")
        if not download:
            self.files = ensure_physionet(DATABASE, VERSION, ["RECORDS"] + self._file_list(), self.root,
                                          download=False)
        if self.files.unverified:
            warnings.warn(f"MIT-BIH in {self.root}: {len(self.files.unverified)} of "
                          f"{len(self.files.present)} files are not named by a trusted checksum list and are "
                          f"used unverified (e.g. {self.files.unverified[0]})", DataWarning, stacklevel=2)

    def _file_list(self, names: Iterable[str | int] | None = None) -> list[str]:
        names = self.records if names is None else [str(n) for n in names]
        return [n + ext for n in names for ext in EXTENSIONS]

    def provenance(self, names: Iterable[str | int] | None = None) -> dict:
        """Provenance of records ``names`` (default all): content hash and verified/unverified counts.

        See :func:`ecgbook.data.download.file_provenance`; ``records`` is the number of records.
        """
        files = self._file_list(names)
        return {"records": len(files) // len(EXTENSIONS),
                **file_provenance(self.root, files, database=DATABASE, version=VERSION)}

    def _missing(self) -> list[str]:
        if not (self.root / "RECORDS").is_file():
            return ["RECORDS"]
        files = [n + ext for n in _read_names(self.root / "RECORDS") for ext in EXTENSIONS]
        return [f for f in files if not (self.root / f).is_file()]

    def __repr__(self) -> str:
        return f"MITBIH(root={str(self.root)!r}, records={len(self.records)})"

    def _path(self, name: str | int) -> Path:
        name = str(name)
        if name not in self.records:
            raise KeyError(f"record {name!r} is not in the MIT-BIH Arrhythmia Database "
                           f"({self.root / 'RECORDS'} lists {self.records[0]} … {self.records[-1]})")
        return self.root / name

    def read(self, name: str | int) -> Record:
        """Read one record: ``signal`` ``(2, 650000)`` float32 in mV at 360 Hz, leads as in the header.

        Raises
        ------
        KeyError
            ``name`` is not one of :attr:`records`.
        RecordError
            The files are unreadable or truncated, or the record is not a 360 Hz two-lead record.
        """
        path = self._path(name)
        record = read_record(path, expected_fs=FS)
        if len(record.leads) != 2:
            raise RecordError(f"{path.with_suffix('.hea')}: expected 2 leads, found {record.leads}")
        return record

    def _header(self, name: str | int) -> wfdb.Record:
        """The record's header (no signal read); RecordError naming the ``.hea`` when unreadable."""
        path = self._path(name)
        try:
            return wfdb.rdheader(str(path))
        except Exception as exc:  # wfdb raises many types for corrupt files
            raise RecordError(f"{path.with_suffix('.hea')}: cannot read header ({type(exc).__name__}: {exc})") from exc

    def _annotations(self, name: str | int) -> wfdb.Annotation:
        path = self._path(name)
        try:
            return wfdb.rdann(str(path), "atr")
        except Exception as exc:  # wfdb raises many types for corrupt files
            raise RecordError(f"{path.with_suffix('.atr')}: cannot read annotations "
                              f"({type(exc).__name__}: {exc})") from exc

    def beats(self, name: str | int) -> BeatAnnotations:
        """Reference beat annotations of a record, mapped to AAMI classes (see :data:`AAMI_MAP`).

        Only beat symbols are kept; rhythm, noise and comment annotations are dropped.

        Raises
        ------
        KeyError
            Unknown record name.
        RecordError
            The ``.atr`` file is unreadable.
        """
        ann = self._annotations(name)
        symbol = np.asarray(ann.symbol, dtype=str)
        keep = np.isin(symbol, list(AAMI_MAP))
        symbol = symbol[keep]
        aami = np.array([AAMI_MAP[s] for s in symbol], dtype=str)
        return BeatAnnotations(sample=np.asarray(ann.sample, dtype=np.int64)[keep], symbol=symbol, aami=aami)

    def rhythms(self, name: str | int) -> list[tuple[int, int, str]]:
        """Rhythm intervals of a record from its rhythm-change annotations.

        Each ``+`` annotation's ``aux_note`` (``"(AFIB\\x00"``) starts a rhythm that lasts until the
        next change; the last one lasts until the end of the record. Labels are stripped of ``(``
        and NUL characters (``N``, ``AFIB``, ``AFL``, ``B``, ``T``, ``VT``, ``SVTA``, ``P``, ``NOD``,
        ``PREX``, ``VFL``, ``BII``, ``IVR``, ``AB``, ``SBR``). Consecutive changes to the same label
        are merged. The few samples before the first rhythm annotation (at most 229) belong to no
        interval.

        Returns
        -------
        ``[(start_sample, end_sample, label), ...]``, end exclusive, in samples at 360 Hz.

        Raises
        ------
        KeyError
            Unknown record name.
        RecordError
            The ``.hea`` or ``.atr`` file is unreadable, or a rhythm annotation has no label.
        """
        ann = self._annotations(name)
        length = int(self._header(name).sig_len)
        changes = []
        for sample, symbol, note in zip(ann.sample, ann.symbol, ann.aux_note):
            if symbol != "+":
                continue
            label = (note or "").replace("\x00", "").strip().lstrip("(")
            if not label:
                raise RecordError(f"{self._path(name).with_suffix('.atr')}: rhythm annotation at sample {sample} has no label")
            if not changes or changes[-1][1] != label:
                changes.append((int(sample), label))
        ends = [start for start, _ in changes[1:]] + [length]
        return [(start, end, label) for (start, label), end in zip(changes, ends)]

    def rhythm_counts(self, names: Iterable[str | int] | None = None) -> pd.DataFrame:
        """Total duration of each rhythm label in each record, to choose classes for a rhythm task.

        Parameters
        ----------
        names:
            Records (default: all).

        Returns
        -------
        DataFrame, one row per record (index ``record``), one column per rhythm label (columns
        sorted by total duration, longest first), values in seconds (0 where absent).
        """
        names = self.records if names is None else [str(n) for n in names]
        rows = {}
        for name in names:
            seconds: dict[str, float] = {}
            for start, end, label in self.rhythms(name):
                seconds[label] = seconds.get(label, 0.0) + (end - start) / FS
            rows[name] = seconds
        table = pd.DataFrame.from_dict(rows, orient="index").fillna(0.0)
        table = table[table.sum().sort_values(ascending=False).index]
        table.index.name = "record"
        return table

    def _lead_signal(self, record: Record, lead: str, fallback: str | None) -> np.ndarray:
        if lead in record.leads:
            return record.signal[record.leads.index(lead)]
        if fallback is not None and fallback in record.leads:
            return record.signal[record.leads.index(fallback)]
        raise RecordError(f"{record.path.with_suffix('.hea')}: lead {lead!r} missing (record has {record.leads}"
                          + (f"; fallback {fallback!r} missing too)" if fallback else ")"))

    def beat_segments(self, names: Iterable[str | int], window_s: tuple[float, float] = (0.25, 0.45),
                      lead: str = "MLII", fallback: str | None = "V5",
                      classes: Iterable[str] = AAMI_CLASSES
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fixed windows of one lead around each annotated beat, labelled with its AAMI class.

        Parameters
        ----------
        names:
            Records to cut (e.g. :data:`DS1`).
        window_s:
            Seconds ``(before, after)`` the annotated R peak; the window is
            ``[r - round(before*360), r + round(after*360))``, 252 samples by default. Beats whose
            window leaves the record are dropped.
        lead:
            Lead to cut (default ``MLII``).
        fallback:
            Lead used where ``lead`` is absent (default ``V5``: the upper signal of records 102 and
            104, which have no ``MLII``); ``None`` to raise instead.
        classes:
            AAMI classes to keep (default all five).

        Returns
        -------
        X: ``(n, samples)`` float32, mV.
        y: ``(n,)`` str, AAMI class.
        record: ``(n,)`` str, record name.
        sample: ``(n,)`` int64, R-peak sample.

        Raises
        ------
        ValueError
            ``window_s`` is not two non-negative seconds with a positive sum, or ``classes`` holds
            an unknown class.
        KeyError, RecordError
            As :meth:`read` and :meth:`beats`; RecordError also when neither lead is present.
        """
        before, after = (int(round(s * FS)) for s in window_s)
        if before < 0 or after < 0 or before + after <= 0:
            raise ValueError(f"window_s={window_s!r}: need (seconds before, seconds after) >= 0 with a positive sum")
        classes = tuple(classes)
        unknown = set(classes) - set(AAMI_CLASSES)
        if unknown:
            raise ValueError(f"classes: unknown AAMI class(es) {sorted(unknown)} (known: {AAMI_CLASSES})")
        parts = []
        for name in names:
            name = str(name)
            signal = self._lead_signal(self.read(name), lead, fallback)
            beats = self.beats(name)
            keep = (np.isin(beats.aami, classes) & (beats.sample >= before)
                    & (beats.sample + after <= len(signal)))
            samples = beats.sample[keep]
            parts.append((_windows(signal, samples - before, before + after), beats.aami[keep],
                          np.full(len(samples), name), samples))
        return _concatenate(parts, before + after)

    def rhythm_segments(self, names: Iterable[str | int], seconds: float = 10.0, stride: float | None = None,
                        lead: str = "MLII", fallback: str | None = "V5", labels: Iterable[str] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fixed-length windows of one lead lying entirely inside one rhythm interval.

        Windows start at each interval's first sample and every ``stride`` seconds after it; a
        window that would cross the next rhythm change (or the record's end) is not cut.

        Parameters
        ----------
        names:
            Records to cut.
        seconds:
            Window length in s (``round(seconds*360)`` samples).
        stride:
            Step between window starts in s (default ``seconds``: no overlap).
        lead, fallback:
            As :meth:`beat_segments`.
        labels:
            Rhythm labels to keep (default all; see :meth:`rhythm_counts`).

        Returns
        -------
        X: ``(n, samples)`` float32, mV.
        y: ``(n,)`` str, rhythm label (``N``, ``AFIB`` …).
        record: ``(n,)`` str, record name.
        start: ``(n,)`` int64, first sample of each window.

        Raises
        ------
        ValueError
            ``seconds`` or ``stride`` is not positive.
        KeyError, RecordError
            As :meth:`read` and :meth:`rhythms`.
        """
        length = int(round(seconds * FS))
        step = length if stride is None else int(round(stride * FS))
        if length <= 0 or step <= 0:
            raise ValueError(f"seconds={seconds!r}, stride={stride!r}: both must be positive (at least one sample)")
        wanted = None if labels is None else set(labels)
        parts = []
        for name in names:
            name = str(name)
            intervals = [iv for iv in self.rhythms(name) if wanted is None or iv[2] in wanted]
            if not intervals:
                continue
            signal = self._lead_signal(self.read(name), lead, fallback)
            starts = [np.arange(a, b - length + 1, step, dtype=np.int64) for a, b, _ in intervals]
            label = np.concatenate([np.full(len(s), iv[2]) for s, iv in zip(starts, intervals)])
            starts = np.concatenate(starts)
            parts.append((_windows(signal, starts, length), label.astype(str), np.full(len(starts), name), starts))
        return _concatenate(parts, length)


def _concatenate(parts: list[tuple[np.ndarray, ...]], length: int) -> tuple[np.ndarray, ...]:
    """Join per-record ``(X, y, record, position)`` tuples; empty arrays of the right shape when none."""
    if not parts:
        return (np.empty((0, length), np.float32), np.empty(0, str), np.empty(0, str), np.empty(0, np.int64))
    return tuple(np.concatenate(column) for column in zip(*parts))


# --------------------------------------------------------------------------- beat sets for classical read-outs
# (moved from ecgbook/transfer.py: the class-capped beat set of the transfer-learning chapter)

import dataclasses  # noqa: E402
from typing import Sequence  # noqa: E402

from ..signal import bandpass  # noqa: E402

#: The four AAMI classes of the book's MIT-BIH task (Q is left out: 8 beats in DS1, 7 in DS2).
BEAT_CLASSES = ("N", "S", "V", "F")


def cap_per_class(y, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices keeping at most ``per_class`` samples of each class, drawn at random without replacement.

    Classes with ``per_class`` samples or fewer are kept whole; ``per_class=None`` keeps everything.

    Parameters
    ----------
    y: ``(n,)`` labels.
    per_class: cap per class (>= 1) or ``None``.
    seed: seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    Sorted ``int64`` indices into ``y``.

    Raises
    ------
    ValueError
        ``per_class`` is below 1.
    """
    y = np.asarray(y)
    if per_class is not None and int(per_class) < 1:
        raise ValueError(f"per_class: must be >= 1 or None, got {per_class}")
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        if per_class is not None and len(idx) > int(per_class):
            idx = rng.choice(idx, size=int(per_class), replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.empty(0, np.int64)


@dataclasses.dataclass
class BeatSet:
    """Windows of one MIT-BIH lead around annotated beats, with their AAMI class.

    Attributes
    ----------
    X: ``(n, samples)`` float32, mV, at :attr:`fs` (band-pass filtered unless asked otherwise).
    y: ``(n,)`` AAMI class of the centre beat.
    record: ``(n,)`` record name.
    sample: ``(n,)`` R-peak sample of the centre beat (360 Hz).
    fs: sampling frequency, Hz.
    window_s: seconds ``(before, after)`` the R peak.
    available: ``{class: count}`` of the beats the records offered before the cap.
    """

    X: np.ndarray
    y: np.ndarray
    record: np.ndarray
    sample: np.ndarray
    fs: float
    window_s: tuple[float, float]
    available: dict[str, int]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def patient(self) -> np.ndarray:
        """``(n,)`` patient of each window (:func:`ecgbook.data.mitdb.record_to_patient`: 202 → 201)."""
        return np.array([record_to_patient(r) for r in self.record])

    def counts(self) -> pd.DataFrame:
        """Beats per class: available in the records, kept, and the records/patients they come from."""
        rows = {}
        for cls in self.available:
            mask = self.y == cls
            rows[cls] = {"available": self.available[cls], "kept": int(mask.sum()),
                         "records": len(np.unique(self.record[mask])),
                         "patients": len(np.unique(self.patient[mask]))}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def mitdb_beat_set(db: MITBIH, records: Sequence[str] = DS1 + DS2, classes: Sequence[str] = BEAT_CLASSES,
                   per_class: int | None = None, window_s: tuple[float, float] = (1.0, 1.0), seed: int = 0,
                   band: tuple[float, float] | None = (0.5, 40.0), margin_s: float = 1.0,
                   lead: str = "MLII", fallback: str | None = "V5") -> BeatSet:
    """A class-capped set of beat-centred windows from MIT-BIH records.

    Every beat of ``classes`` whose window (with ``margin_s`` on both sides) fits in its record is
    a candidate (:meth:`ecgbook.data.mitdb.MITBIH.beat_segments`); :func:`cap_per_class` then keeps
    at most ``per_class`` per class, at random over all records; the windows kept are band-pass
    filtered and trimmed. Signals are read twice (labels first, then only the windows kept), so
    memory stays proportional to the windows kept.

    Parameters
    ----------
    db: the :class:`~ecgbook.data.mitdb.MITBIH` reader.
    records: records to draw from (default DS1 + DS2, the 44 non-paced records).
    classes: AAMI classes (default :data:`BEAT_CLASSES`).
    per_class: cap per class (``None``: all beats).
    window_s: seconds ``(before, after)`` the R peak; the default 2-s window holds the beat and,
        at usual heart rates, its neighbours, so that prematurity (short RR) is visible.
    seed: seed of the random cap.
    band: ``(low, high)`` Hz of the zero-phase band-pass (:func:`ecgbook.signal.bandpass`) that
        removes baseline wander and the electrode offset, which would otherwise dominate the
        lowest rows of every spectrogram; ``None``: raw signal.
    margin_s: extra seconds cut on each side before filtering and trimmed afterwards, so that the
        filter's edge transients stay out of the window (ignored when ``band`` is ``None``).
    lead, fallback: as :meth:`~ecgbook.data.mitdb.MITBIH.beat_segments`.

    Returns
    -------
    :class:`BeatSet` ordered by record, then R-peak sample.

    Raises
    ------
    ValueError
        ``records`` is empty, or as :func:`cap_per_class` and ``beat_segments``.
    KeyError, RecordError
        As :meth:`~ecgbook.data.mitdb.MITBIH.beat_segments`.
    """
    records = [str(r) for r in records]
    if not records:
        raise ValueError("records: empty")
    classes = tuple(classes)
    margin_s = 0.0 if band is None else float(margin_s)
    if margin_s < 0:
        raise ValueError(f"margin_s: must be >= 0 s, got {margin_s}")
    cut = (float(window_s[0]) + margin_s, float(window_s[1]) + margin_s)
    labels = [db.beat_segments([r], cut, lead, fallback, classes)[1:] for r in records]
    y_all = np.concatenate([lab[0] for lab in labels])
    keep = cap_per_class(y_all, per_class, seed)
    kept = np.zeros(len(y_all), bool)
    kept[keep] = True
    parts, offset = [], 0
    for name, (y_r, _, _) in zip(records, labels):
        mask = kept[offset:offset + len(y_r)]
        offset += len(y_r)
        if mask.any():
            X_r, y_r2, rec_r, s_r = db.beat_segments([name], cut, lead, fallback, classes)
            X_r = X_r[mask]
            if band is not None:
                trim = int(round(margin_s * FS))
                X_r = bandpass(X_r, FS, *band)[:, trim:X_r.shape[1] - trim]
            parts.append((X_r.astype(np.float32, copy=False), y_r2[mask], rec_r[mask], s_r[mask]))
    if not parts:
        raise ValueError(f"records {records[:3]}…: no beat of classes {classes} has a window inside its record")
    X, y, record, sample = (np.concatenate(column) for column in zip(*parts))
    available = {c: int((y_all == c).sum()) for c in classes}
    return BeatSet(X=X, y=y, record=record, sample=sample, fs=FS, window_s=tuple(window_s),
                   available=available)
