"""Atomic, resumable, checksum-verified, lock-protected downloads from PhysioNet and other HTTPS hosts.

Downloads
    A file is written to ``<dest>.part`` and renamed onto ``<dest>`` only after its SHA-256
    matches the expected value, so an interrupted or corrupt download never leaves a file that
    looks complete. An interrupted download resumes from the bytes already in ``<dest>.part``
    (HTTP ``Range`` request, or a seek in a mirror file); if the resumed file then fails its
    checksum (a garbage ``.part``), it is downloaded once more from byte zero. A file already on
    disk whose hash matches is not fetched again.

Two processes at once
    Every destination has its own lock (:func:`file_lock`, the ``filelock`` package: an OS lock
    that is released when its process dies), held while the file is checked, downloaded and
    renamed. The ``.part`` file is only ever touched by the lock holder; a second process asking
    for the same file waits, then finds it complete and verified and uses it.

Root of trust
    A PhysioNet database's ``SHA256SUMS.txt`` decides which bytes are accepted, so the list itself
    must be trusted. ecgbook pins, per database version, the SHA-256 of every checksum list it
    accepts (:data:`PINNED_CHECKSUM_LISTS`) and the SHA-256 of the key files whatever the list
    says (:data:`PINNED_FILES`). The only lists pinned are those of the book's offline mirror
    (partial lists: they name only the files the mirror holds, so their hashes differ from
    PhysioNet's own lists, which could not be obtained when this was written). Any other list,
    e.g. PhysioNet's own, is refused with an error giving its SHA-256, unless the user accepts
    it: ``ECGBOOK_TRUST_CHECKSUMS=<sha256>[,<sha256>…]`` accepts those lists,
    ``ECGBOOK_TRUST_CHECKSUMS=any`` accepts every list (the pinned key files are still enforced).
    A list entry whose path is absolute or climbs out of the dataset folder (``..``) is refused,
    and so is a plain-HTTP source unless ``ECGBOOK_ALLOW_HTTP=1``.

Verification of local files
    :func:`ensure_physionet` checks every file a reader uses against the trusted list, also when
    it is already on disk (a cut or edited file is fetched again, or reported, never used). The
    result is cached (in ``<data dir>/.ecgbook/verified/``) keyed by size, modification time,
    inode change time and inode, so an unchanged file is not hashed again; any change (even a
    same-size edit whose modification time was put back, since that changes the inode change
    time) forces a fresh hash. :func:`file_provenance` tells verified from unverified files.

Setting ``ECGBOOK_MIRROR`` redirects ``https://HOST/PATH`` to ``$ECGBOOK_MIRROR/HOST/PATH`` (a
directory or an ``http(s)://`` base URL); see :mod:`ecgbook.config`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

from tqdm import tqdm

from .. import config
from ..files import (CHUNK, DataFolderError, _umask, _unwritable, _write_atomic, file_lock, locked,  # noqa: F401
                     make_folder, sha256sum, write_atomic)

log = logging.getLogger(__name__)

PHYSIONET = "https://physionet.org/files"
#: Environment variable: SHA-256 digests of extra checksum lists to accept (comma-separated), or ``any``.
TRUST_ENV = "ECGBOOK_TRUST_CHECKSUMS"
#: Environment variable: ``1`` allows plain-HTTP sources (upstream or mirror).
ALLOW_HTTP_ENV = "ECGBOOK_ALLOW_HTTP"
#: Hidden folder inside the data dir holding the verification caches.
STATE_DIR = ".ecgbook"

_MIRROR_NOTE = ("ecgbook offline mirror (PhysioNet's files laid out as HOST/PATH, see data/README.md): partial list "
                "naming only the files the mirror holds")
#: SHA-256 of each ``SHA256SUMS.txt`` accepted per ``(database, version)``, with what the list is.
PINNED_CHECKSUM_LISTS: dict[tuple[str, str], dict[str, str]] = {
    ("ptb-xl", "1.0.3"): {
        "f5355edd01f1d8a37d17bf5ad735a4f5d100307f1c9a99e86483789f9d2ea478":
            f"{_MIRROR_NOTE} (3 metadata files, 1,987 records at 100 Hz)",
    },
    ("mitdb", "1.0.0"): {
        "8f7525fd188fd684e8e5b0417e059ca666529c3fa1669b356fdd221d059b4823":
            f"{_MIRROR_NOTE} (RECORDS, ANNOTATORS, the 48 records)",
    },
    ("challenge-2017", "1.0.0"): {
        "b12ccce3d6bfd7fc3e0c4984ccba3d6713c386831c39bc370498a52cc5fc982c":
            f"{_MIRROR_NOTE} (repacked training2017.zip, REFERENCE-v3.csv)",
    },
}
#: SHA-256 of key files, enforced whatever checksum list is in use (a list that disagrees is refused).
#: Taken from the offline mirror's files (PhysioNet's own bytes, laid out as HOST/PATH: data/README.md)
#: (PTB-XL's ``ptbxl_database.csv`` 7600de9c… as published for 1.0.3); the CinC 2017 archive is
#: the mirror's repacked one and is pinned only through the mirror's list.
PINNED_FILES: dict[tuple[str, str], dict[str, str]] = {
    ("ptb-xl", "1.0.3"): {
        "ptbxl_database.csv": "7600de9c1b27d181d850b3c6038a35d7c3ddb6bb33b702e3a20252a6859d216b",
        "scp_statements.csv": "ad05b0b1fcae83bb1230755ad9cfc7c96f303feddc08a4a9ad5bdc9ca63bac8f",
        "RECORDS": "56d37274b0b02339e9c30bff8c9a9f2a6fb3cb2bb7bcd5d7c55355451d53896a",
    },
    ("mitdb", "1.0.0"): {
        "RECORDS": "fcdca7ead9fc93f612f7e025029241cb6429ba2fcd05327b661bdc6b26fbcb57",
        "ANNOTATORS": "efeddd7bd1200ab99700a8ddf19b3e1b405adb4d8e5b9275bd1040f4292d84bf",
    },
    ("challenge-2017", "1.0.0"): {
        "REFERENCE-v3.csv": "995a380d29f7aa45eb50fd907462bf2f7a3492e0f7ed33870f023753463f79fd",
    },
}


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the URL and the destination."""


class MissingFileError(DownloadError):
    """The source (upstream or mirror) does not have the requested file."""


class ChecksumError(DownloadError):
    """A file's SHA-256 differs from the expected one."""


class ChecksumListError(DownloadError):
    """A checksum list (``SHA256SUMS.txt``) is not trusted, is malformed, or contradicts a pinned hash."""


class UnsafePathError(ValueError):
    """A relative path (in a checksum list or a request) is absolute or leaves the dataset folder."""


class InsecureSourceError(DownloadError):
    """A plain-HTTP source was refused (set ``ECGBOOK_ALLOW_HTTP=1`` to allow it)."""


class DataWarning(UserWarning):
    """Data that is missing or could not be verified; the message gives counts."""


def _http_allowed() -> bool:
    return os.environ.get(ALLOW_HTTP_ENV, "").strip().lower() in ("1", "yes", "true")


def check_source(source: str, url: str | None = None) -> None:
    """Raise :class:`InsecureSourceError` for a plain ``http://`` source unless ``ECGBOOK_ALLOW_HTTP=1``."""
    if source.lower().startswith("http://") and not _http_allowed():
        raise InsecureSourceError(
            f"{url or source}: refusing the plain-HTTP source {source} (bytes and checksum lists could be "
            f"altered in transit); use https:// or set {ALLOW_HTTP_ENV}=1 to allow it")


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


def _check_mirror(url: str) -> None:
    """Raise :class:`DownloadError` when ``$ECGBOOK_MIRROR`` names a local folder that does not exist."""
    base = config.mirror()
    if base and not base.startswith(("http://", "https://", "file://")):
        folder = Path(base).expanduser().resolve()
        if not folder.is_dir():
            raise DownloadError(f"{url}: the mirror folder {folder} (ECGBOOK_MIRROR={base}) is missing or not a "
                                f"directory; fix ECGBOOK_MIRROR or unset it to download from upstream")


def safe_join(root: str | Path, rel: str, source: str = "") -> Path:
    """``root / rel`` after checking that ``rel`` stays inside ``root``.

    Raises :class:`UnsafePathError` (naming ``source``) when ``rel`` is empty, absolute (POSIX or a
    Windows drive), or contains a ``..`` component or a backslash.
    """
    where = f"{source}: " if source else ""
    if not rel or rel[0] in "/\\" or "\\" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePathError(f"{where}path {rel!r} is empty or absolute; refusing it")
    if ".." in rel.split("/"):
        raise UnsafePathError(f"{where}path {rel!r} climbs out of the dataset folder with '..'; refusing it")
    # Lexical checks only (string operations: this runs for every file of a dataset): a symbolic
    # link the user placed inside the folder is theirs to make, and downloads replace a link by a
    # file (rename) rather than write through it.
    target = Path(os.path.join(root, rel))
    return target


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
    resumed = offset > 0 and getattr(response, "status", 200) == 206
    length = response.headers.get("Content-Length")
    total = int(length) + (offset if resumed else 0) if length else None
    return response, total, resumed


def _check_dest(dest: Path) -> None:
    if dest.is_dir():
        raise DownloadError(f"{dest}: the destination is a directory, not a file; move it away or choose "
                            f"another destination (nothing was written)")
    for parent in dest.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DownloadError(f"{dest}: cannot create it, {parent} is a file, not a directory")
            break


def fetch(url: str, dest: str | Path, sha256: str | None = None, *, progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming a partial download, verifying SHA-256.

    The whole operation holds :func:`file_lock` of ``dest``: a second process fetching the same
    file waits, then finds it verified and returns it without downloading.

    Parameters
    ----------
    url:
        The upstream address (``https://HOST/PATH``); redirected to the mirror when one is set.
    dest:
        Final path. The parent folder is created.
    sha256:
        Expected hex digest. When given, an existing ``dest`` with this digest is kept as is,
        and a download with another digest raises :class:`ChecksumError`. When ``None`` the file
        is not verified and an existing ``dest`` is returned as is.
    progress:
        Show a tqdm bar (default: :func:`ecgbook.config.progress_enabled`).

    Returns
    -------
    Path to the (verified) file.

    Raises
    ------
    MissingFileError
        The source has no such file (HTTP 404, or absent from the mirror).
    ChecksumError
        The downloaded bytes do not match ``sha256`` (after one retry from zero when a resumed
        partial file was at fault). The bad bytes are kept as ``<dest>.corrupt`` for inspection;
        ``dest`` (if it existed) is left untouched.
    InsecureSourceError
        The source is plain HTTP and ``ECGBOOK_ALLOW_HTTP`` is not set.
    DownloadError
        ``dest`` is a directory, ``$ECGBOOK_MIRROR`` names a folder that does not exist, or any
        other network or I/O failure; ``<dest>.part`` is kept so the next call resumes.
    DataFolderError
        The destination folder cannot be written (the message names it and ``ECGBOOK_DATA``).
    """
    dest = Path(dest)
    _check_dest(dest)
    check_source(url)
    _check_mirror(url)
    source = resolve(url)
    check_source(source, url)
    expected = sha256.lower() if sha256 else None
    make_folder(dest.parent)
    with locked(dest):
        if dest.is_file():
            if expected is None or sha256sum(dest) == expected:
                return dest
            log.warning("%s exists but its SHA-256 differs from the source's; fetching it again", dest)
        part = dest.with_name(dest.name + ".part")
        if part.is_dir():
            raise DownloadError(f"{part}: a directory is in the way of the partial download; remove it")
        for attempt in (1, 2):
            resumed = _download(url, source, dest, part, progress)
            if expected is None:
                break
            got = sha256sum(part)
            if got == expected:
                break
            if resumed and attempt == 1:
                log.warning("%s: the resumed partial file %s fails its checksum; downloading again from zero",
                            url, part)
                part.unlink()
                continue
            corrupt = dest.with_name(dest.name + ".corrupt")
            part.replace(corrupt)
            raise ChecksumError(
                f"{url}: checksum mismatch for {dest.name}: expected SHA-256 {sha256}, got {got}; "
                f"the downloaded bytes were kept as {corrupt}")
        part.replace(dest)
    return dest


def _download(url: str, source: str, dest: Path, part: Path, progress: bool | None) -> bool:
    """Append the source's remaining bytes to ``part`` (caller holds the lock); return whether it resumed."""
    offset = part.stat().st_size if part.is_file() else 0
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
            return _download(url, source, dest, part, progress)
        raise DownloadError(f"{url}: HTTP {exc.code} while downloading to {dest}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot reach the source ({exc}); {dest} not written") from exc
    try:
        with stream, open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=offset if resumed else 0, unit="B", unit_scale=True,
            desc=dest.name, disable=not show, leave=False,
        ) as bar:
            for block in iter(lambda: stream.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    except (urllib.error.URLError, OSError) as exc:
        size = part.stat().st_size if part.is_file() else 0
        raise DownloadError(
            f"{url}: download interrupted after {size} bytes ({exc}); "
            f"the partial file {part} is kept and the next call resumes it") from exc
    return resumed


def _read_source(url: str) -> bytes:
    """The whole content at ``url`` (mirror-resolved), for small files such as checksum lists."""
    check_source(url)
    _check_mirror(url)
    source = resolve(url)
    check_source(source, url)
    try:
        stream, _, _ = _open(source, 0)
    except FileNotFoundError as exc:
        raise MissingFileError(f"{url}: no such file at the source ({source})") from exc
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise MissingFileError(f"{url}: not found (HTTP 404)") from exc
        raise DownloadError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot reach the source ({exc})") from exc
    try:
        with stream:
            return stream.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: interrupted while reading ({exc})") from exc


def physionet_url(database: str, version: str, path: str = "") -> str:
    """Upstream URL of a PhysioNet file: ``https://physionet.org/files/<database>/<version>/<path>``."""
    return f"{PHYSIONET}/{database}/{version}/{path}".rstrip("/")


def parse_sha256sums(text: str, source: str = "SHA256SUMS.txt") -> dict[str, str]:
    """Parse PhysioNet's ``<sha256> <relative path>`` lines into ``{path: sha256}``.

    Raises
    ------
    ValueError
        A malformed entry (naming ``source`` and the line).
    UnsafePathError
        A path that is absolute or contains ``..`` (it could write outside the dataset folder).
    """
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or len(fields[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in fields[0]):
            raise ValueError(f"{source}, line {number}: not '<sha256> <path>': {line!r}")
        rel = fields[1].strip().lstrip("*")
        safe_join(".", rel, f"{source}, line {number}")
        sums[rel] = fields[0].lower()
    return sums


class ChecksumList(dict):
    """A trusted ``{relative path: sha256}`` list; ``sha256`` and ``label`` say which list it is."""

    def __init__(self, sums: dict[str, str], *, sha256: str, label: str, pinned: bool, path: Path):
        super().__init__(sums)
        self.sha256, self.label, self.pinned, self.path = sha256, label, pinned, path


def trusted_list_label(database: str, version: str, digest: str) -> tuple[str, bool] | None:
    """``(label, pinned)`` when a checksum list with SHA-256 ``digest`` is accepted, else ``None``.

    Accepted: the lists of :data:`PINNED_CHECKSUM_LISTS`, and those the user names in
    ``$ECGBOOK_TRUST_CHECKSUMS`` (comma-separated digests, or ``any``).
    """
    pinned = PINNED_CHECKSUM_LISTS.get((database, version), {})
    if digest in pinned:
        return pinned[digest], True
    env = os.environ.get(TRUST_ENV, "").strip().lower()
    if env in ("any", "1", "yes", "true"):
        return f"not pinned, accepted because {TRUST_ENV}={env}", False
    if digest in {t.strip() for t in env.split(",")}:
        return f"not pinned, accepted because {TRUST_ENV} names it", False
    return None


def _accept_list(database: str, version: str, data: bytes, origin: str, path: Path) -> ChecksumList:
    digest = hashlib.sha256(data).hexdigest()
    trust = trusted_list_label(database, version, digest)
    if trust is None:
        known = ", ".join(f"{d[:12]}… ({label})" for d, label in PINNED_CHECKSUM_LISTS.get((database, version), {}).items())
        raise ChecksumListError(
            f"{origin}: this SHA256SUMS.txt of {database} {version} has SHA-256 {digest}, which is not a list "
            f"ecgbook pins (known: {known or 'none'}). It may be PhysioNet's full list (not pinned, it could not be "
            f"obtained when the book was written), a stale or cut copy, or a tampered one. If you trust its source, "
            f"accept it with {TRUST_ENV}={digest} (or {TRUST_ENV}=any); see ecgbook.data.download")
    label, pinned = trust
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChecksumListError(f"{origin}: not a UTF-8 text checksum list ({exc})") from exc
    try:
        sums = parse_sha256sums(text, origin)
    except UnsafePathError:
        raise
    except ValueError as exc:
        raise ChecksumListError(str(exc)) from exc
    for rel, sha in PINNED_FILES.get((database, version), {}).items():
        if rel in sums and sums[rel] != sha:
            raise ChecksumListError(
                f"{origin}: lists SHA-256 {sums[rel]} for {rel}, but ecgbook pins {sha} for {database} {version}; "
                f"refusing this list")
        sums[rel] = sha
    return ChecksumList(sums, sha256=digest, label=label, pinned=pinned, path=path)


def physionet_checksums(database: str, version: str, root: str | Path, *, download: bool = True) -> ChecksumList:
    """The trusted checksum list of a PhysioNet database, stored at ``root/SHA256SUMS.txt``.

    A local copy whose SHA-256 is pinned is used as is (offline). Otherwise (absent, cut, stale,
    or accepted only through ``$ECGBOOK_TRUST_CHECKSUMS``) the list is fetched from the source
    again and replaces the local copy when it is trusted; an unpinned local copy is used only when
    the source cannot be reached, with a warning.

    Parameters
    ----------
    download:
        ``False``: never contact the source; use the local list if it is trusted.

    Raises
    ------
    ChecksumListError
        The list is not trusted (see :func:`trusted_list_label`; the message gives its SHA-256),
        malformed, or contradicts :data:`PINNED_FILES`.
    UnsafePathError
        An entry's path is absolute or leaves the dataset folder.
    MissingFileError, DownloadError
        No trusted local list and the source's cannot be fetched.
    """
    root = Path(root)
    local = root / "SHA256SUMS.txt"
    url = physionet_url(database, version, "SHA256SUMS.txt")
    if not download:  # read only: no lock, nothing written (the folder may be read-only)
        if not local.is_file():
            raise MissingFileError(f"{local}: no checksum list (download=True fetches it)")
        return _accept_list(database, version, local.read_bytes(), str(local), local)
    if local.is_file():  # a pinned local list is used as is, without a lock (the folder may be read-only)
        local_data = local.read_bytes()
        trust = trusted_list_label(database, version, hashlib.sha256(local_data).hexdigest())
        if trust is not None and trust[1]:
            return _accept_list(database, version, local_data, str(local), local)
    _check_dest(local)
    make_folder(root)
    with locked(local):
        local_data = local.read_bytes() if local.is_file() else None
        if local_data is not None:
            digest = hashlib.sha256(local_data).hexdigest()
            trust = trusted_list_label(database, version, digest)
            if trust is not None and trust[1]:
                return _accept_list(database, version, local_data, str(local), local)
        try:
            data = _read_source(url)
        except DownloadError:
            if local_data is not None and trusted_list_label(
                    database, version, hashlib.sha256(local_data).hexdigest()) is not None:
                warnings.warn(f"{local}: the source's checksum list cannot be fetched; using the local copy, "
                              f"which is accepted but not pinned", DataWarning, stacklevel=2)
                return _accept_list(database, version, local_data, str(local), local)
            raise
        sums = _accept_list(database, version, data, f"{url} (from {resolve(url)})", local)
        if data != local_data:
            if local_data is not None:
                log.warning("%s: replaced by the source's list (the local copy was stale, cut or unpinned)", local)
            _write_atomic(local, data)
        return sums


# --------------------------------------------------------------------------- verification cache


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class VerificationCache:
    """File hashes of one dataset folder, cached by stat: ``{relative path: [sha256, size, mtime_ns, ctime_ns, inode]}``.

    An entry says that the file, as it was when this stat was taken, had this SHA-256. A file
    whose stat still matches needs no new hash. Stored in
    ``<data dir>/.ecgbook/verified/<hash of the folder's path>.json`` (never inside the dataset
    folder, which may be a read-only copy), saved atomically under a lock, merged with what another
    process saved meanwhile; a cache that cannot be written is simply not kept.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        key = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:24]
        self.path = config.data_dir() / STATE_DIR / "verified" / f"{key}.json"
        self.entries = self._load()
        self.changed: dict[str, list] = {}

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def digest(self, rel: str, path: Path | None = None) -> str | None:
        """SHA-256 of the file at ``rel`` (``None`` if absent), hashing only when its stat changed."""
        path = self.root / rel if path is None else path
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        entry = self.changed.get(rel) or self.entries.get(rel)
        if isinstance(entry, list) and len(entry) == 5 and entry[1:] == _stat_key(st):
            return entry[0]
        sha = sha256sum(path)
        if path.stat().st_mtime_ns == st.st_mtime_ns:  # not modified while hashing
            self.changed[rel] = [sha, *_stat_key(st)]
        return sha

    def save(self) -> None:
        """Merge the new entries into the file on disk (no-op when nothing changed)."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with locked(self.path):
                merged = self._load()
                merged.update(self.changed)
                _write_atomic(self.path, json.dumps(merged, separators=(",", ":")).encode())
        except OSError as exc:
            log.debug("verification cache %s not saved (%s)", self.path, exc)
            return
        self.entries, self.changed = merged, {}


@dataclass
class DatasetFiles:
    """What :func:`ensure_physionet` found for a set of files of one database.

    Attributes
    ----------
    root: the dataset folder.
    verified: relative paths present whose SHA-256 equals the trusted list's.
    unverified: present but not listed in any trusted list (used as they are, flagged).
    missing: neither present nor available at the source.
    refetched: files that were absent or damaged locally and were downloaded.
    checksum_list: which list the hashes came from (``None`` when there was none).
    """

    root: Path
    verified: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refetched: list[str] = field(default_factory=list)
    checksum_list: str | None = None

    @property
    def present(self) -> list[str]:
        """Verified and unverified files."""
        return self.verified + self.unverified


def ensure_physionet(database: str, version: str, files: Iterable[str], root: str | Path, *,
                     download: bool = True, missing_ok: bool = False,
                     progress: bool | None = None) -> DatasetFiles:
    """Make sure the files a reader will use are present and match the trusted checksum list.

    For each relative path: a local file whose SHA-256 (cached by stat, see
    :class:`VerificationCache`) equals the list's is *verified*; a local file that differs, or an
    absent one, is fetched from the source when ``download`` (then verified), otherwise a damaged
    file raises :class:`ChecksumError` and an absent one is *missing*. A file the trusted list does
    not name is *unverified* when present (the caller decides whether to use it; it is flagged in
    provenance) and *missing* otherwise. No trusted list and ``download=False``: every present
    file is unverified.

    Raises
    ------
    ChecksumError
        A local file differs from its listed SHA-256 and ``download`` is false, or the source's
        bytes differ too. The message names the file.
    MissingFileError
        A file is missing and ``missing_ok`` is false.
    UnsafePathError
        A requested path leaves ``root``.
    ChecksumListError
        See :func:`physionet_checksums`.
    """
    root = Path(root)
    files = list(files)
    paths = [safe_join(root, rel, f"{database} {version}") for rel in files]
    if download:
        sums: dict[str, str] = physionet_checksums(database, version, root)
    else:
        try:
            sums = physionet_checksums(database, version, root, download=False)
        except MissingFileError:
            sums = {}
        except ChecksumListError as exc:
            warnings.warn(f"{exc}. Its files are treated as unverified.", DataWarning, stacklevel=2)
            sums = {}
        if not sums:  # no trusted list: the key files can still be checked against the pins
            sums = dict(PINNED_FILES.get((database, version), {}))
    out = DatasetFiles(root=root, checksum_list=getattr(sums, "label", None))
    cache = VerificationCache(root)
    show = config.progress_enabled() if progress is None else progress
    try:
        for rel, path in zip(tqdm(files, desc=f"{database} {version}", unit="file",
                                  disable=not show or len(files) < 20), paths):
            expected = sums.get(rel)
            if expected is None:
                if path.is_file():
                    out.unverified.append(rel)
                elif download and not missing_ok:
                    raise MissingFileError(
                        f"{physionet_url(database, version, rel)}: not listed in the source's SHA256SUMS.txt")
                else:
                    out.missing.append(rel)
                continue
            if cache.digest(rel, path) == expected:
                out.verified.append(rel)
                continue
            if not download:
                if path.exists():
                    raise ChecksumError(
                        f"{path}: SHA-256 differs from {database} {version}'s checksum list (the file is damaged or "
                        f"edited); pass download=True to fetch it again, or restore it")
                if not missing_ok:
                    raise MissingFileError(f"{path}: missing (download=True fetches it)")
                out.missing.append(rel)
                continue
            try:
                fetch(physionet_url(database, version, rel), path, expected, progress=False)
            except MissingFileError:
                if not missing_ok:
                    raise
                out.missing.append(rel)
                continue
            cache.digest(rel, path)  # record the verified stat
            out.verified.append(rel)
            out.refetched.append(rel)
    finally:
        cache.save()
    return out


def fetch_physionet(database: str, version: str, files: Iterable[str], root: str | Path,
                    *, missing_ok: bool = False, progress: bool | None = None) -> tuple[list[Path], list[str]]:
    """Fetch several files of a PhysioNet database into ``root``, each verified against SHA256SUMS.txt.

    Files already present are verified too (hash cached by stat) and fetched again when damaged.
    See :func:`ensure_physionet`, which also reports unverified files.

    Parameters
    ----------
    files:
        Paths relative to the database root (``records100/00000/00001_lr.hea``).
    missing_ok:
        When ``True``, files the source does not list in its SHA256SUMS.txt (or does not serve)
        are returned in the second list instead of raising; a partial mirror has only some records.

    Returns
    -------
    (paths of the verified files, relative paths missing at the source). A file present locally
    but listed nowhere counts as missing here (it is not verified).

    Raises
    ------
    MissingFileError
        A requested file is missing and ``missing_ok`` is false.
    ChecksumError
        A file's bytes differ from its listed SHA-256 (never ignored).
    ChecksumListError, UnsafePathError
        See :func:`physionet_checksums` and :func:`safe_join`.
    """
    root = Path(root)
    found = ensure_physionet(database, version, files, root, missing_ok=missing_ok, progress=progress)
    return [root / rel for rel in found.verified], found.missing + found.unverified


def file_provenance(root: str | Path, files: Iterable[str], *, database: str | None = None,
                    version: str | None = None) -> dict:
    """Content identity of a set of dataset files, for results provenance.

    Returns
    -------
    ``{"manifest_hash", "files", "verified", "unverified", "missing", "checksum_list"}``:
    ``manifest_hash`` is the SHA-256 over one line per file, ``"<rel> <sha256>"`` for a file whose
    actual SHA-256 equals the trusted list's, ``"<rel> unverified <actual sha256>"`` for a file the
    list does not name or that differs from it, ``"<rel> missing"`` for an absent one; the counts
    say how many of each. The list is ``root/SHA256SUMS.txt`` when trusted (pinned or accepted
    through ``$ECGBOOK_TRUST_CHECKSUMS``); with ``database``/``version`` omitted they are looked up
    from the pinned lists by the local list's hash. File hashes are cached by stat.
    """
    root = Path(root)
    local = root / "SHA256SUMS.txt"
    sums: dict[str, str] = {}
    label = None
    if local.is_file():
        data = local.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        candidates = [(database, version)] if database else [k for k, v in PINNED_CHECKSUM_LISTS.items() if digest in v]
        for db, ver in candidates or [(None, None)]:
            if db and trusted_list_label(db, ver, digest) is not None:
                try:
                    sums = _accept_list(db, ver, data, str(local), local)
                    label = sums.label
                except (ChecksumListError, ValueError):
                    sums = {}
                break
    if not sums and database:
        sums = dict(PINNED_FILES.get((database, version), {}))
    cache = VerificationCache(root)
    digest = hashlib.sha256()
    counts = {"verified": 0, "unverified": 0, "missing": 0}
    unverified: list[str] = []
    files = list(files)
    for rel in files:
        try:
            path = safe_join(root, rel)
        except UnsafePathError:
            path = None
        actual = cache.digest(rel, path) if path is not None else None
        if actual is None:
            line, kind = f"{rel} missing", "missing"
        elif sums.get(rel) == actual:
            line, kind = f"{rel} {actual}", "verified"
        else:
            line, kind = f"{rel} unverified {actual}", "unverified"
            unverified.append(rel)
        counts[kind] += 1
        digest.update(f"{line}\n".encode())
    cache.save()
    return {"manifest_hash": digest.hexdigest(), "files": len(files), **counts,
            "unverified_examples": unverified[:5], "checksum_list": label}


def manifest_hash(root: str | Path, files: Iterable[str]) -> str:
    """The ``manifest_hash`` of :func:`file_provenance` (equal to the former hash when all files verify)."""
    return file_provenance(root, files)["manifest_hash"]
