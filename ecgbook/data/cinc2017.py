"""PhysioNet/Computing in Cardiology Challenge 2017: AF classification from a short single-lead ECG.

Clifford GD, Liu C, Moody B, et al. AF classification from a short single lead ECG recording: the
PhysioNet/Computing in Cardiology Challenge 2017. CinC 44, 2017 (data: ODC-By 1.0).

The public training set holds 8,528 records ``A00001`` … ``A08528`` recorded with an AliveCor
hand-held device (the patient holds one electrode in each hand, which is close to limb lead I),
9 s to about 61 s long, sampled at 300 Hz, stored as WFDB headers with MATLAB v4 signal files. The
final labels (file ``REFERENCE-v3.csv``) are ``N`` normal sinus rhythm (5,050), ``A`` atrial
fibrillation (738), ``O`` other rhythm (2,456) and ``~`` too noisy to classify (284). Patient
identifiers are not published: splits can only be record-wise (each record its own group), which
cannot rule out one person contributing records to both sides of a split.

The header names the single signal ``ECG``; :meth:`CinC2017.read` keeps that name (the book's
canonical spelling for an unspecified single lead) rather than claiming it is lead ``I``.

``training2017.zip`` is fetched with :func:`ecgbook.data.download.fetch_physionet` (SHA-256 checked)
and unpacked by :func:`safe_extract`, which refuses members that would land outside the target
folder and makes an interrupted extraction start again from scratch.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import config
from .download import fetch_physionet, sha256sum
from .records import Record, RecordError, read_record

DATABASE = "challenge-2017"
VERSION = "1.0.0"
FS = 300.0
#: Label codes of REFERENCE-v3.csv, in the Challenge's order.
CLASSES = ("N", "A", "O", "~")
CLASS_NAMES = {"N": "normal sinus rhythm", "A": "atrial fibrillation", "O": "other rhythm", "~": "noisy"}
ARCHIVE = "training2017.zip"
REFERENCE = "REFERENCE-v3.csv"
MARKER = ".extracted.json"


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the extraction folder (path traversal, link)."""


def _check_member(info: zipfile.ZipInfo, archive: Path, root: Path) -> None:
    """Raise :class:`UnsafeArchiveError` naming the member if extracting it under ``root`` is unsafe."""
    name = info.filename
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    if ".." in PurePosixPath(name).parts or ".." in PureWindowsPath(name).parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out of the target folder with '..'")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link; refusing to extract")
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(f"{archive}: member {name!r} resolves to {target}, outside {root}")


def safe_extract(zip_path: str | Path, dest: str | Path) -> Path:
    """Extract a ZIP archive into ``dest``, refusing unsafe members, atomically.

    All members are checked before anything is written: an absolute path (POSIX or Windows
    drive), a ``..`` component, a symbolic link, or any name whose resolved path leaves ``dest``
    raises :class:`UnsafeArchiveError`. Members are written to a temporary sibling folder
    ``.<dest>.partial-*`` together with a marker file recording the archive's SHA-256, and the
    folder is renamed onto ``dest`` only when complete; an interrupted run therefore leaves no
    ``dest``, its leftover partial folders are removed and the next call extracts again. A
    ``dest`` whose marker matches the archive is kept as is.

    Parameters
    ----------
    zip_path: the archive.
    dest: folder dedicated to this archive's contents (created).

    Returns
    -------
    ``dest``.

    Raises
    ------
    UnsafeArchiveError
        A member is unsafe (the message names the archive and the member).
    FileExistsError
        ``dest`` exists but was not produced by this function for this archive (no or another
        marker); it is never deleted automatically.
    zipfile.BadZipFile
        The file is not a ZIP archive.
    """
    zip_path, dest = Path(zip_path), Path(dest).resolve()
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path}: archive not found")
    digest = sha256sum(zip_path)
    marker = dest / MARKER
    if marker.is_file():
        try:
            done = json.loads(marker.read_text()).get("sha256")
        except (OSError, ValueError):
            done = None
        if done == digest:
            return dest
    if dest.exists():
        raise FileExistsError(
            f"{dest}: exists but holds no complete extraction of {zip_path} (marker {MARKER} missing or for "
            f"another archive); remove it and call again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent)).resolve()
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            for info in members:
                _check_member(info, zip_path, tmp)
            for info in members:
                archive.extract(info, tmp)
        (tmp / MARKER).write_text(json.dumps({"archive": zip_path.name, "sha256": digest, "members": len(members)}))
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


class CinC2017:
    """The Challenge 2017 training set, downloaded (once) and unpacked.

    Parameters
    ----------
    root:
        Download folder (default ``config.data_dir()/challenge-2017/1.0.0``); the records end up in
        ``root/extracted/training2017``.

    Attributes
    ----------
    records: list of record names in the order of the archive's ``RECORDS`` file.
    labels: ``pd.Series`` record name → ``'N'``/``'A'``/``'O'``/``'~'`` (REFERENCE-v3.csv).
    fs: 300.0 Hz.

    Raises
    ------
    ecgbook.data.DownloadError
        A file cannot be fetched or fails its checksum.
    RecordError
        ``REFERENCE-v3.csv`` holds an unknown label or disagrees with ``RECORDS``.
    """

    fs = FS

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else config.data_dir() / DATABASE / VERSION
        fetch_physionet(DATABASE, VERSION, [ARCHIVE, REFERENCE], self.root)
        self.record_dir = safe_extract(self.root / ARCHIVE, self.root / "extracted") / "training2017"
        listing = self.record_dir / "RECORDS"
        if not listing.is_file():
            raise RecordError(f"{listing}: RECORDS file missing from {ARCHIVE}")
        self.records = listing.read_text().split()
        self.labels = self._read_labels(self.root / REFERENCE)
        if set(self.labels.index) != set(self.records):
            extra = sorted(set(self.labels.index) ^ set(self.records))[:5]
            raise RecordError(f"{self.root / REFERENCE}: record names differ from {listing} (e.g. {extra})")
        self.labels = self.labels.loc[self.records]

    @staticmethod
    def _read_labels(path: Path) -> pd.Series:
        table = pd.read_csv(path, header=None, names=["record", "label"], dtype=str)
        bad = table.loc[~table["label"].isin(CLASSES)]
        if len(bad):
            raise RecordError(f"{path}: unknown label(s) {sorted(bad['label'].unique())} (expected {CLASSES})")
        if table["record"].duplicated().any():
            raise RecordError(f"{path}: duplicated record name(s) {table.loc[table['record'].duplicated(), 'record'].tolist()[:5]}")
        return table.set_index("record")["label"].rename("label")

    def __len__(self) -> int:
        return len(self.records)

    def read(self, name: str) -> Record:
        """Read one record: ``Record.signal`` is ``(1, samples)`` float32 mV at 300 Hz, lead ``'ECG'``.

        Raises :class:`RecordError` for an unknown name or an unreadable record.
        """
        if name not in self.labels.index:
            raise RecordError(f"{name}: not a record of {DATABASE} (expected A00001 … A08528)")
        return read_record(self.record_dir / name, expected_fs=FS)

    def durations(self) -> pd.Series:
        """Record durations in seconds (record name → s), from each header's record line.

        Raises :class:`RecordError` naming the header when its record line is malformed.
        """
        out = {}
        for name in self.records:
            header = self.record_dir / f"{name}.hea"
            fields = header.read_text().split()
            try:
                out[name] = int(fields[3]) / float(fields[2])
            except (IndexError, ValueError) as exc:
                raise RecordError(f"{header}: malformed record line {' '.join(fields[:4])!r}") from exc
        return pd.Series(out, name="duration_s")

    def segments(self, seconds: float = 9.0, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-length excerpts at 300 Hz: the first ``seconds`` of each record, zero-padded at the end if shorter.

        The images fed to the CNN must all describe the same duration, so every record is reduced
        to an excerpt of one length; for CinC 2017, whose records last 9–61 s, a common practice is
        a fixed window from the start of each record, zero-padding the shorter ones. Every training
        record lasts at least 9 s, so the default needs no padding.
        Another sampling frequency is obtained afterwards with :func:`ecgbook.signal.resample`
        (the signal layer comes after the data layer).

        Parameters
        ----------
        seconds: excerpt length in s (> 0).
        names: records to use (default all, in :attr:`records` order).

        Returns
        -------
        (X ``(n, round(seconds * 300))`` float32 mV, y ``(n,)`` label strings).

        Raises
        ------
        ValueError
            ``seconds`` is not positive.
        RecordError
            An unknown name or unreadable record.
        """
        if not seconds > 0:
            raise ValueError(f"seconds: must be positive, got {seconds}")
        names = list(self.records if names is None else names)
        X = np.zeros((len(names), int(round(seconds * FS))), dtype=np.float32)
        for i, name in enumerate(tqdm(names, desc="CinC 2017 segments", unit="record",
                                      disable=not config.progress_enabled())):
            x = self.read(name).signal[0, :X.shape[1]]
            X[i, :len(x)] = x
        return X, self.labels.loc[names].to_numpy()
