"""Atomic, resumable, checksum-verified downloads from PhysioNet and other HTTPS hosts.

A file is written to ``<dest>.part`` and renamed onto ``<dest>`` only after its
SHA-256 matches the expected value, so an interrupted or corrupt download never
leaves a file that looks complete. An interrupted download resumes from the
bytes already in ``<dest>.part`` (HTTP ``Range`` request, or a seek in a mirror
file). A file already on disk whose hash matches is not fetched again.

Setting ``ECGBOOK_MIRROR`` redirects ``https://HOST/PATH`` to
``$ECGBOOK_MIRROR/HOST/PATH`` (a directory or an ``http(s)://`` base URL); see
:mod:`ecgbook.config`.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

from tqdm import tqdm

from .. import config

log = logging.getLogger(__name__)

PHYSIONET = "https://physionet.org/files"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the URL and the destination."""


class MissingFileError(DownloadError):
    """The source (upstream or mirror) does not have the requested file."""


class ChecksumError(DownloadError):
    """A downloaded file's SHA-256 differs from the expected one."""


def sha256sum(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(url: str) -> str:
    """Map an upstream URL to where it is actually fetched from (the mirror when set).

    ``https://physionet.org/files/x`` with ``ECGBOOK_MIRROR=/m`` becomes ``/m/physionet.org/files/x``.
    """
    base = config.mirror()
    if not base:
        return url
    parts = urlparse(url)
    rel = f"{parts.netloc}{parts.path}"
    if base.startswith(("http://", "https://", "file://")):
        return base.rstrip("/") + "/" + rel
    return str(Path(base).expanduser().resolve() / rel)


def _open(source: str, offset: int):
    """Open ``source`` (path or URL) positioned at byte ``offset``; return (stream, total_size, resumed)."""
    if not source.startswith(("http://", "https://", "file://")):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(source)
        size = path.stat().st_size
        fh = open(path, "rb")
        if 0 < offset <= size:
            fh.seek(offset)
            return fh, size, True
        return fh, size, False
    request = urllib.request.Request(source, headers={"User-Agent": "ecgbook"})
    if offset > 0:
        request.add_header("Range", f"bytes={offset}-")
    response = urllib.request.urlopen(request, timeout=60)
    resumed = offset > 0 and response.status == 206
    length = response.headers.get("Content-Length")
    total = int(length) + (offset if resumed else 0) if length else None
    return response, total, resumed


def fetch(url: str, dest: str | Path, sha256: str | None = None, *, progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming a partial download, verifying SHA-256.

    Parameters
    ----------
    url:
        The upstream address (``https://HOST/PATH``); redirected to the mirror when one is set.
    dest:
        Final path. The parent folder is created.
    sha256:
        Expected hex digest. When given, an existing ``dest`` with this digest is kept as is,
        and a download with another digest raises :class:`ChecksumError`. When ``None`` the file
        is not verified (used only for the checksum lists themselves).
    progress:
        Show a tqdm bar (default: :func:`ecgbook.config.progress_enabled`).

    Returns
    -------
    Path to the verified file.

    Raises
    ------
    MissingFileError
        The source has no such file (HTTP 404, or absent from the mirror).
    ChecksumError
        The downloaded bytes do not match ``sha256``. The bad bytes are kept as ``<dest>.corrupt``
        for inspection; ``dest`` (if it existed) is left untouched.
    DownloadError
        Any other network or I/O failure; ``<dest>.part`` is kept so the next call resumes.
    """
    dest = Path(dest)
    if dest.exists() and sha256 is not None:
        if sha256sum(dest) == sha256.lower():
            return dest
        log.warning("%s exists but its SHA-256 differs from the source's; fetching it again", dest)
    elif dest.exists() and sha256 is None:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    source = resolve(url)
    show = config.progress_enabled() if progress is None else progress
    try:
        stream, total, resumed = _open(source, offset)
    except FileNotFoundError as exc:
        raise MissingFileError(f"{url}: no such file at the source ({source})") from exc
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise MissingFileError(f"{url}: not found (HTTP 404)") from exc
        if exc.code == 416 and offset:  # range past the end: the partial file is complete or stale
            part.unlink()
            return fetch(url, dest, sha256, progress=progress)
        raise DownloadError(f"{url}: HTTP {exc.code} while downloading to {dest}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot reach the source ({exc}); {dest} not written") from exc
    mode = "ab" if resumed else "wb"
    try:
        with stream, open(part, mode) as out, tqdm(
            total=total, initial=offset if resumed else 0, unit="B", unit_scale=True,
            desc=dest.name, disable=not show, leave=False,
        ) as bar:
            for block in iter(lambda: stream.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"{url}: download interrupted after {part.stat().st_size} bytes ({exc}); "
            f"the partial file {part} is kept and the next call resumes it") from exc
    if sha256 is not None:
        got = sha256sum(part)
        if got != sha256.lower():
            corrupt = dest.with_name(dest.name + ".corrupt")
            part.replace(corrupt)
            raise ChecksumError(
                f"{url}: checksum mismatch for {dest.name}: expected SHA-256 {sha256}, got {got}; "
                f"the downloaded bytes were kept as {corrupt}")
    part.replace(dest)
    return dest


def physionet_url(database: str, version: str, path: str = "") -> str:
    """Upstream URL of a PhysioNet file: ``https://physionet.org/files/<database>/<version>/<path>``."""
    return f"{PHYSIONET}/{database}/{version}/{path}".rstrip("/")


def parse_sha256sums(text: str, source: str = "SHA256SUMS.txt") -> dict[str, str]:
    """Parse PhysioNet's ``<sha256> <relative path>`` lines into ``{path: sha256}``.

    Raises ``ValueError`` naming ``source`` and the line for a malformed entry.
    """
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or len(fields[0]) != 64:
            raise ValueError(f"{source}, line {number}: not '<sha256> <path>': {line!r}")
        sums[fields[1].strip().lstrip("*")] = fields[0].lower()
    return sums


def physionet_checksums(database: str, version: str, root: str | Path) -> dict[str, str]:
    """Download (once) and parse a PhysioNet database's ``SHA256SUMS.txt`` into ``{path: sha256}``.

    The list is the root of trust, so it is not itself verified; it is stored at ``root/SHA256SUMS.txt``.
    """
    path = fetch(physionet_url(database, version, "SHA256SUMS.txt"), Path(root) / "SHA256SUMS.txt")
    return parse_sha256sums(path.read_text(), str(path))


def fetch_physionet(database: str, version: str, files: Iterable[str], root: str | Path,
                    *, missing_ok: bool = False, progress: bool | None = None) -> tuple[list[Path], list[str]]:
    """Fetch several files of a PhysioNet database into ``root``, each verified against SHA256SUMS.txt.

    Parameters
    ----------
    files:
        Paths relative to the database root (``records100/00000/00001_lr.hea``).
    missing_ok:
        When ``True``, files the source does not list in its SHA256SUMS.txt (or does not serve)
        are returned in the second list instead of raising; a partial mirror has only some records.

    Returns
    -------
    (paths fetched or already present, relative paths missing at the source)

    Raises
    ------
    MissingFileError
        A requested file is missing and ``missing_ok`` is false.
    ChecksumError
        A file's bytes differ from its listed SHA-256 (never ignored).
    """
    root = Path(root)
    sums = physionet_checksums(database, version, root)
    files = list(files)
    present: list[Path] = []
    missing: list[str] = []
    show = config.progress_enabled() if progress is None else progress
    for rel in tqdm(files, desc=f"{database} {version}", unit="file", disable=not show or len(files) < 20):
        if rel not in sums:
            if not missing_ok:
                raise MissingFileError(f"{physionet_url(database, version, rel)}: not listed in the source's SHA256SUMS.txt")
            missing.append(rel)
            continue
        try:
            present.append(fetch(physionet_url(database, version, rel), root / rel, sums[rel], progress=False))
        except MissingFileError:
            if not missing_ok:
                raise
            missing.append(rel)
    return present, missing



def manifest_hash(root: str | Path, files: Iterable[str]) -> str:
    """Content identity of a set of dataset files, for results provenance.

    SHA-256 over one ``"<relative path> <sha256>"`` line per file, the hash taken from
    ``root/SHA256SUMS.txt`` (``unverified`` for a file it does not list, e.g. a user's own copy).
    """
    root = Path(root)
    sums_path = root / "SHA256SUMS.txt"
    sums = parse_sha256sums(sums_path.read_text(), str(sums_path)) if sums_path.is_file() else {}
    digest = hashlib.sha256()
    for rel in files:
        digest.update(f"{rel} {sums.get(rel, 'unverified')}\n".encode())
    return digest.hexdigest()
