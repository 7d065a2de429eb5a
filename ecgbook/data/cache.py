"""A signal cache: one memory-mapped array per dataset, sampling frequency and record set, with a manifest.

Reading 1,987 PTB-XL records with :func:`wfdb.rdrecord` takes tens of seconds; reading them from
one ``.npy`` file memory-mapped takes milliseconds. The cache lives in
``<data dir>/cache/<key>/<fingerprint[:16]>/`` as ``signals.npy`` (``(records, leads, samples)``
float32, mV) and ``manifest.json``.

Keyed on content
    The fingerprint is the SHA-256 of the requested record ids (in order) and of the records'
    content identity (the caller's ``content_hash``, e.g. the SHA-256 sums of the source files, or
    else the SHA-256 of every source file). A changed source file, even edited to the same size
    with its modification time put back, changes the fingerprint; another id set gets its own folder.

Checked on open
    ``manifest.json`` must parse and agree with the request (fingerprint, ids, leads, sampling
    frequency, shape), and ``signals.npy`` must have the manifest's shape and dtype and the SHA-256
    recorded in the manifest. The hash check is cached by the array file's stat (size,
    modification time, inode change time, inode), so an untouched cache opens in milliseconds and
    any change to the file forces a full hash. On any mismatch the cache is rebuilt, with a warning
    naming the file.

Safe with two processes
    A build holds the folder's :func:`~ecgbook.files.file_lock` and writes to uniquely
    named temporary files that are renamed into place, array first, manifest last; a second
    process waits for the lock, then opens the finished cache. A reader that already mapped the old
    array keeps its (renamed-over) file.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from .. import config
from ..files import _write_atomic, locked, make_folder, sha256sum
from .download import DataWarning
from .records import check_finite

log = logging.getLogger(__name__)
FORMAT = "ecgbook.cache/2"
#: Free space kept beyond the array's size when a cache is built (bytes): 5 % of it, at least this.
SPACE_MARGIN = 64 << 20


class CacheError(RuntimeError):
    """A cache cannot be built; the message names the folder and what is wrong."""


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def fingerprint(ids: Sequence, content_hash: str | None = None, files: Sequence[str | Path] = ()) -> str:
    """SHA-256 identifying a cache's content: the ids in order and the sources' content.

    ``content_hash`` (the caller's hash of the sources' SHA-256 sums) is used when given; else
    every file in ``files`` is hashed.
    """
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(json.dumps([str(i) for i in ids]).encode())
    if content_hash is not None:
        digest.update(f"\ncontent {content_hash}\n".encode())
    else:
        for f in files:
            digest.update(f"\n{Path(f).name} {sha256sum(f)}".encode())
    return digest.hexdigest()


def _problem(folder: Path, fp: str, ids: list, leads: list[str], fs: float) -> tuple[str | None, dict | None]:
    """``(None, manifest)`` when the cache in ``folder`` is valid for this request, else ``(reason, None)``."""
    manifest_path, array_path = folder / "manifest.json", folder / "signals.npy"
    if not manifest_path.is_file() or not array_path.is_file():
        return "absent", None
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return f"{manifest_path}: unreadable manifest ({type(exc).__name__}: {exc})", None
    for key, want in (("format", FORMAT), ("fingerprint", fp), ("ids", ids), ("leads", leads), ("fs", fs)):
        if manifest.get(key) != want:
            return f"{manifest_path}: {key} differs from the request", None
    shape = manifest.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and shape[0] == len(ids)):
        return f"{manifest_path}: shape {shape!r} does not fit {len(ids)} records", None
    if manifest.get("array_stat") != _stat_key(array_path):
        got = sha256sum(array_path)
        if got != manifest.get("array_sha256"):
            return (f"{array_path}: content differs from {manifest_path.name} (SHA-256 {got[:12]}…, expected "
                    f"{str(manifest.get('array_sha256'))[:12]}…)"), None
        manifest["array_stat"] = _stat_key(array_path)  # verified: remember this stat
        try:
            _write_json(manifest_path, manifest)
        except OSError as exc:  # a read-only cache folder: it is re-hashed next time, still valid
            log.info("%s: verified, but the stat could not be recorded (%s)", manifest_path, exc)
    try:
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return f"{array_path}: unreadable ({type(exc).__name__}: {exc})", None
    if list(array.shape) != shape or array.dtype != np.float32:
        return f"{array_path}: holds {array.dtype} {list(array.shape)}, the manifest says float32 {shape}", None
    return None, manifest


def _write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (the downloader's temp file, fsync, rename)."""
    _write_atomic(path, json.dumps(obj).encode())


def cached_signals(key: str, ids: Sequence, files: Sequence[str | Path], read: Callable[[object], np.ndarray],
                   *, leads: Sequence[str], fs: float, cache_dir: str | Path | None = None,
                   content_hash: str | None = None) -> tuple[np.ndarray, dict]:
    """Return ``(signals, manifest)`` for ``ids``, from the cache when it is valid, else building it.

    Parameters
    ----------
    key:
        Cache name, e.g. ``"ptbxl-1.0.3-100hz"``; the cache folder is ``<cache_dir or data
        dir/cache/key>/<fingerprint[:16]>``.
    ids:
        Record identifiers, in the order of the returned rows (at least one).
    files:
        The source files (headers and signal files); hashed for the fingerprint only when
        ``content_hash`` is ``None``.
    read:
        ``read(id) -> (leads, samples)`` float32 array in mV, called for each id on a rebuild.
    leads, fs:
        Lead names and sampling frequency (Hz), stored in and checked against the manifest.
    content_hash:
        Content identity of the sources (e.g. a hash of their SHA-256 sums); part of the fingerprint.

    Returns
    -------
    signals:
        Read-only memory map, shape ``(len(ids), leads, samples)``, float32, mV.
    manifest:
        dict with ``ids``, ``leads``, ``fs``, ``shape``, ``fingerprint``, ``content_hash``,
        ``array_sha256``.

    Raises
    ------
    CacheError
        ``ids`` is empty.
        Not enough free space in the cache folder (the message gives the bytes needed and free),
        or the disk filled up while writing (the temporary file is removed).
    ValueError
        When records differ in shape (the cache needs one fixed shape per dataset and frequency).
    ecgbook.data.records.NonFiniteSignalError
        A record holds NaN or infinite samples (named with its leads).
    """
    ids = [i.item() if hasattr(i, "item") else i for i in ids]
    if not ids:
        raise CacheError(f"{key}: no records to cache (the record list is empty)")
    leads = list(leads)
    fs = float(fs)
    fp = fingerprint(ids, content_hash, files)
    base = Path(cache_dir) if cache_dir else config.data_dir() / "cache" / key
    folder = base / fp[:16]
    if not folder.is_dir():
        make_folder(folder)
    reason, manifest = _problem(folder, fp, ids, leads, fs)
    if manifest is not None:
        return np.load(folder / "signals.npy", mmap_mode="r"), manifest
    with locked(folder):
        reason, manifest = _problem(folder, fp, ids, leads, fs)  # another process may have built it
        if manifest is not None:
            return np.load(folder / "signals.npy", mmap_mode="r"), manifest
        if reason != "absent":
            warnings.warn(f"signal cache {key}: {reason}; rebuilding it", DataWarning, stacklevel=2)
        manifest = _build(folder, key, fp, ids, read, leads, fs, content_hash)
    return np.load(folder / "signals.npy", mmap_mode="r"), manifest


def _build(folder: Path, key: str, fp: str, ids: list, read, leads: list[str], fs: float,
           content_hash: str | None) -> dict:
    """Write ``signals.npy`` then ``manifest.json`` into ``folder`` (caller holds the lock).

    The array is written row by row through a plain file (no memory map: a full disk then raises
    ``ENOSPC`` instead of killing the process with SIGBUS) by :func:`write_atomic`, which removes
    its temporary file on any failure, ``KeyboardInterrupt`` included. Free space is checked first.
    Temporary files of dead builds (``.signals.*.part``) are removed: only the lock holder writes them.
    """
    array_path, manifest_path = folder / "signals.npy", folder / "manifest.json"
    with contextlib.suppress(FileNotFoundError):
        manifest_path.unlink()  # never leave a manifest describing an array being replaced
    for stale in folder.glob(".signals.*.part"):  # under the lock: no live build owns one
        log.info("removing %s, left by an interrupted cache build", stale)
        with contextlib.suppress(OSError):
            stale.unlink()
    first = np.asarray(read(ids[0]), dtype=np.float32)
    check_finite(first, f"{key}: record {ids[0]}", leads)
    shape = (len(ids),) + first.shape
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                 "fortran_order": False, "shape": shape})
    needed = len(head.getvalue()) + int(np.prod(shape)) * 4
    free = shutil.disk_usage(folder).free
    margin = max(needed // 20, SPACE_MARGIN)
    if free < needed + margin:
        raise CacheError(f"{folder}: not enough free space for the signal cache {key}: it needs {needed:,} bytes "
                         f"(+ {margin:,} margin), {free:,} are free; free some space or point ECGBOOK_DATA elsewhere")
    digest = hashlib.sha256()

    def write(fh) -> None:
        for block in _blocks():
            fh.write(block)
            digest.update(block)

    def _blocks():
        yield head.getvalue()
        yield np.ascontiguousarray(first, dtype="<f4").tobytes()
        for rid in tqdm(ids[1:], desc=f"caching {key}", unit="record", disable=not config.progress_enabled()):
            sig = read(rid)
            if sig.shape != first.shape:
                raise ValueError(f"{key}: record {rid} has shape {sig.shape}, expected {first.shape} like {ids[0]}")
            sig = np.ascontiguousarray(sig, dtype="<f4")
            check_finite(sig, f"{key}: record {rid}", leads)
            yield sig.tobytes()

    try:
        _write_atomic(array_path, write, suffix=".part")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CacheError(f"{folder}: disk full while writing the signal cache {key} ({needed:,} bytes needed, "
                             f"{shutil.disk_usage(folder).free:,} free now); nothing was kept") from exc
        raise
    manifest = {"format": FORMAT, "key": key, "ids": ids, "leads": leads, "fs": fs,
                "shape": list(shape), "fingerprint": fp, "content_hash": content_hash,
                "array_sha256": digest.hexdigest(), "array_stat": _stat_key(array_path)}
    _write_json(manifest_path, manifest)
    return manifest
