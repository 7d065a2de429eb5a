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
import logging
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd
import wfdb
from tqdm import tqdm

from .. import config
from ..files import _umask, locked, sha256sum, write_atomic
from .download import VerificationCache, ensure_physionet
from .records import Record, RecordError, check_header_text, read_record

DATABASE = "challenge-2017"
VERSION = "1.0.0"
FS = 300.0
#: Label codes of REFERENCE-v3.csv, in the Challenge's order.
CLASSES = ("N", "A", "O", "~")
CLASS_NAMES = {"N": "normal sinus rhythm", "A": "atrial fibrillation", "O": "other rhythm", "~": "noisy"}
ARCHIVE = "training2017.zip"
REFERENCE = "REFERENCE-v3.csv"
MARKER = ".extracted.json"
log = logging.getLogger(__name__)


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _member_table(archive: zipfile.ZipFile) -> dict[str, list[int]]:
    """``{member name: [size, CRC-32]}`` of the archive's files (folders left out)."""
    return {i.filename: [i.file_size, i.CRC] for i in archive.infolist() if not i.is_dir()}


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise zipfile.BadZipFile(f"{zip_path}: not a complete ZIP archive ({type(exc).__name__}: {exc}); "
                                 f"delete it so that it is downloaded again") from exc


def read_marker(dest: Path) -> dict | None:
    """The extraction marker of ``dest`` (``None`` when absent or unreadable)."""
    try:
        marker = json.loads((dest / MARKER).read_text())
        return marker if isinstance(marker, dict) else None
    except (OSError, ValueError):
        return None


def _restore(zip_path: Path, dest: Path, names: list[str]) -> None:
    """Extract ``names`` again from the archive over damaged copies in ``dest`` (caller holds the lock)."""
    with _open_zip(zip_path) as archive:
        for name in names:
            info = archive.getinfo(name)
            _check_member(info, zip_path, dest)
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src:
                write_atomic(target, lambda out: shutil.copyfileobj(src, out))


def safe_extract(zip_path: str | Path, dest: str | Path, *, digest: str | None = None) -> Path:
    """Extract a ZIP archive into ``dest``, refusing unsafe members, atomically, once across processes.

    All members are checked before anything is written: an absolute path (POSIX or Windows
    drive), a ``..`` component, a symbolic link, or any name whose resolved path leaves ``dest``
    raises :class:`UnsafeArchiveError`, and so does a member name that occurs twice. The whole call holds the lock of ``dest``
    (:func:`ecgbook.files.file_lock`): a second process waits, then finds the finished
    extraction and returns it. Members are written to a temporary sibling folder
    ``.<dest>.partial-<pid>-*`` together with a marker file recording the archive's SHA-256 and
    every member's size and CRC-32, and the folder is renamed onto ``dest`` only when complete, so
    the marker never stands over missing files. Leftover partial folders of processes that no
    longer run are removed; a live process's folder is never touched. A ``dest`` whose marker
    matches the archive is kept, after checking that every member is there with its size
    (a missing or resized member is extracted again).

    Parameters
    ----------
    zip_path: the archive.
    dest: folder dedicated to this archive's contents (created).
    digest: the archive's SHA-256 when the caller has just verified it (saves hashing it again).

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
        The file is not a complete ZIP archive, or a member fails its CRC; the message names the archive.
    """
    zip_path, dest = Path(zip_path), Path(dest).resolve()
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path}: archive not found")
    digest = digest or sha256sum(zip_path)
    marker = read_marker(dest)  # a finished, intact extraction is read without a lock (may be read-only)
    if marker is not None and marker.get("sha256") == digest and isinstance(marker.get("files"), dict) \
            and all((dest / name).is_file() and (dest / name).stat().st_size == size
                    for name, (size, _) in marker["files"].items()):
        return dest
    with locked(dest):
        marker = read_marker(dest)
        if marker is not None and marker.get("sha256") == digest:
            _check_extraction(zip_path, dest, marker)
            return dest
        if dest.exists():
            raise FileExistsError(
                f"{dest}: exists but holds no complete extraction of {zip_path} (marker {MARKER} missing or for "
                f"another archive); remove it and call again")
        dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in dest.parent.glob(f".{dest.name}.partial-*"):
            parts = stale.name.rsplit(".partial-", 1)[1].split("-")
            pid = int(parts[0]) if parts and parts[0].isdigit() else None
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                continue  # another live process's folder (an older ecgbook without the lock): leave it
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent)).resolve()
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: the umask's usual permissions
            with _open_zip(zip_path) as archive:
                members = archive.infolist()
                for info in members:
                    _check_member(info, zip_path, tmp)
                seen: set[str] = set()
                for info in members:
                    if info.filename in seen:
                        raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} appears more than once "
                                                 f"(which copy is meant is ambiguous); refusing to extract")
                    seen.add(info.filename)
                try:
                    for info in members:
                        archive.extract(info, tmp)
                except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                    raise zipfile.BadZipFile(f"{zip_path}: damaged archive, extraction failed at member "
                                             f"{info.filename!r} ({type(exc).__name__}: {exc})") from exc
                table = _member_table(archive)
            absent = [name for name, (size, _) in table.items()
                      if not (tmp / name).is_file() or (tmp / name).stat().st_size != size]
            if absent:
                raise zipfile.BadZipFile(f"{zip_path}: {len(absent)} member(s) missing after extraction "
                                         f"(e.g. {absent[0]!r})")
            (tmp / MARKER).write_text(json.dumps({"archive": zip_path.name, "sha256": digest,
                                                  "members": len(members), "files": table}))
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _check_extraction(zip_path: Path, dest: Path, marker: dict) -> None:
    """Check every member of a finished extraction by size; extract missing/resized ones again (lock held)."""
    table = marker.get("files")
    if not isinstance(table, dict):  # marker of an older ecgbook: take the table from the archive
        with _open_zip(zip_path) as archive:
            table = _member_table(archive)
        marker = {**marker, "files": table}
        tmp = dest / f".{MARKER}.part"
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, dest / MARKER)
    bad = []
    for name, (size, _) in table.items():
        try:
            if (dest / name).stat().st_size != size:
                bad.append(name)
        except FileNotFoundError:
            bad.append(name)
    if bad:
        log.warning("%s: %d extracted file(s) missing or resized (e.g. %s); extracting them again from %s",
                    dest, len(bad), bad[0], zip_path)
        _restore(zip_path, dest, bad)


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
        ensure_physionet(DATABASE, VERSION, [ARCHIVE, REFERENCE], self.root)
        digest = VerificationCache(self.root).digest(ARCHIVE)  # verified just above; cached by stat
        extracted = safe_extract(self.root / ARCHIVE, self.root / "extracted", digest=digest)
        self._members = (read_marker(extracted) or {}).get("files", {})
        self.record_dir = extracted / "training2017"
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

        Both files are checked against the archive's CRC-32 first; a damaged copy is extracted again
        from the (SHA-256-verified) archive.

        Raises :class:`RecordError` for an unknown name or an unreadable record.
        """
        if name not in self.labels.index:
            raise RecordError(f"{name}: not a record of {DATABASE} (expected A00001 … A08528)")
        self._verify_member(f"training2017/{name}.hea", f"training2017/{name}.mat")
        return read_record(self.record_dir / name, expected_fs=FS)

    def _verify_member(self, *names: str) -> None:
        bad = []
        for member in names:
            size, crc = self._members.get(member, (None, None))
            if crc is None:
                raise RecordError(f"{self.record_dir.parent / member}: not a member of {ARCHIVE}")
            path = self.record_dir.parent / member
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data is None or len(data) != size or zlib.crc32(data) != crc:
                bad.append(member)
        if bad:
            log.warning("%s: %s differ from %s (CRC-32); extracting them again", self.record_dir, bad, ARCHIVE)
            with locked(self.record_dir.parent):
                _restore(self.root / ARCHIVE, self.record_dir.parent, bad)

    def durations(self, names: list[str] | None = None) -> pd.Series:
        """Record durations in seconds (record name → s): samples / sampling frequency of each header.

        Headers are read with :func:`wfdb.rdheader` (about 2 ms each) after the CRC-32 check of
        :meth:`read`; the values are kept in ``extracted/.durations.json`` (keyed by the archive's
        SHA-256) so that later calls are instant.

        Parameters
        ----------
        names: records (default all, in :attr:`records` order).

        Raises :class:`RecordError` naming the header when it is unreadable or lacks the sampling
        frequency or the number of samples.
        """
        names = list(self.records if names is None else names)
        store = self.record_dir.parent / ".durations.json"
        archive = (read_marker(self.record_dir.parent) or {}).get("sha256")
        try:
            saved = json.loads(store.read_text())
            known = saved["durations"] if saved.get("sha256") == archive else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            known = {}
        out, new = {}, {}
        for name in names:
            if name not in self.labels.index:
                raise RecordError(f"{name}: not a record of {DATABASE} (expected A00001 … A08528)")
            if isinstance(known.get(name), (int, float)):
                out[name] = float(known[name])
                continue
            header = self.record_dir / f"{name}.hea"
            self._verify_member(f"training2017/{name}.hea")
            check_header_text(header)
            try:
                head = wfdb.rdheader(str(self.record_dir / name))
            except Exception as exc:  # wfdb raises many types for malformed headers
                raise RecordError(f"{header}: cannot read header ({type(exc).__name__}: {exc})") from exc
            if not head.fs or not head.sig_len:
                raise RecordError(f"{header}: record line lacks the sampling frequency or the number of samples "
                                  f"(fs={head.fs}, samples={head.sig_len})")
            out[name] = new[name] = head.sig_len / float(head.fs)
        if new and archive:
            try:
                write_atomic(store, json.dumps({"sha256": archive, "durations": {**known, **new}}).encode())
            except OSError as exc:  # a read-only folder: the durations are read again next time
                log.info("%s not saved (%s)", store, exc)
        return pd.Series(out, name="duration_s", dtype=float)

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
