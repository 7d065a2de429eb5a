"""A signal cache: one memory-mapped array per dataset and sampling frequency, with a manifest.

Reading 1,987 PTB-XL records with :func:`wfdb.rdrecord` takes tens of seconds; reading them from
one ``.npy`` file memory-mapped takes milliseconds. The cache lives in
``<data dir>/cache/<key>/`` as ``signals.npy`` (``(records, leads, samples)`` float32, mV) and
``manifest.json`` (record ids, lead names, sampling frequency, a fingerprint of the source
files). It is rebuilt when the fingerprint no longer matches, i.e. when a source file was added,
removed, or changed size or modification time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from .. import config


def fingerprint(files: Sequence[str | Path]) -> str:
    """SHA-256 over each file's name, size and modification time (cheap change detection)."""
    digest = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        digest.update(f"{Path(f).name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_signals(key: str, ids: Sequence, files: Sequence[str | Path], read: Callable[[object], np.ndarray],
                   *, leads: Sequence[str], fs: float, cache_dir: str | Path | None = None,
                   content_hash: str | None = None) -> tuple[np.ndarray, dict]:
    """Return ``(signals, manifest)`` for ``ids``, from the cache when it is up to date.

    Parameters
    ----------
    key:
        Cache folder name, e.g. ``"ptbxl-1.0.3-100hz"``.
    ids:
        Record identifiers, in the order of the returned rows.
    files:
        The source files whose change invalidates the cache (headers and signal files).
    read:
        ``read(id) -> (leads, samples)`` float32 array in mV, called for each id on a rebuild.
    leads, fs:
        Stored in the manifest (lead names; sampling frequency in Hz).
    content_hash:
        Optional content identity of the sources (e.g. a hash of their SHA-256 sums), recorded
        in the manifest for provenance.

    Returns
    -------
    signals:
        Read-only memory map, shape ``(len(ids), leads, samples)``, float32, mV.
    manifest:
        dict with ``ids``, ``leads``, ``fs``, ``shape``, ``fingerprint``, ``content_hash``.

    Raises
    ------
    ValueError
        When records differ in shape (the cache needs one fixed shape per dataset and frequency).
    """
    folder = Path(cache_dir) if cache_dir else config.data_dir() / "cache" / key
    manifest_path, array_path = folder / "manifest.json", folder / "signals.npy"
    ids = [i.item() if hasattr(i, "item") else i for i in ids]
    fp = fingerprint(files)
    if manifest_path.exists() and array_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("fingerprint") == fp and manifest.get("ids") == ids:
            return np.load(array_path, mmap_mode="r"), manifest
    folder.mkdir(parents=True, exist_ok=True)
    first = read(ids[0])
    tmp = folder / "signals.npy.part"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(ids),) + first.shape)
    out[0] = first
    for row, rid in enumerate(tqdm(ids[1:], desc=f"caching {key}", unit="record",
                                   disable=not config.progress_enabled()), start=1):
        sig = read(rid)
        if sig.shape != first.shape:
            raise ValueError(f"{key}: record {rid} has shape {sig.shape}, expected {first.shape} like {ids[0]}")
        out[row] = sig
    out.flush()
    del out
    os.replace(tmp, array_path)
    manifest = {"key": key, "ids": ids, "leads": list(leads), "fs": fs, "shape": [len(ids), *first.shape],
                "fingerprint": fp, "content_hash": content_hash}
    tmp_manifest = folder / "manifest.json.part"
    tmp_manifest.write_text(json.dumps(manifest))
    os.replace(tmp_manifest, manifest_path)
    return np.load(array_path, mmap_mode="r"), manifest
