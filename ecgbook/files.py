"""Files: checksums, inter-process locks and atomic writes — the bottom layer of the package.

Every layer that writes a file (the data readers and caches, checkpoints, results, the runner)
uses these, so they sit below :mod:`ecgbook.data` and import nothing of the package but
:mod:`ecgbook.config` (for the data folder named in error messages).

- :func:`sha256sum`: hex SHA-256 of a file.
- :func:`file_lock` / :func:`locked`: an OS lock per file or folder (the ``filelock`` package),
  released when its process dies.
- :func:`write_atomic`: a reader sees the old or the new file, never a partial one.
- :func:`make_folder`: ``mkdir -p`` that names the folder (and ``ECGBOOK_DATA``) when it is not writable.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from . import config

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read at a time when hashing or copying

class DataFolderError(PermissionError):
    """A data folder cannot be written (locks, downloads, caches); the message names it and ``ECGBOOK_DATA``."""


def make_folder(folder: str | Path) -> Path:
    """``folder.mkdir(parents=True, exist_ok=True)``; :class:`DataFolderError` naming it when not writable."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise _unwritable(folder, exc) from exc
    return folder


def _unwritable(folder: Path, exc: OSError) -> DataFolderError:
    return DataFolderError(
        f"{folder}: cannot write to this folder ({exc.strerror or exc}); ecgbook needs write access there for "
        f"locks, downloads and caches. Set ECGBOOK_DATA (now {config.data_dir()}) to a writable folder, or "
        f"ask the folder's owner to complete the data so that it can be read without writing")


def sha256sum(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_lock(target: str | Path, timeout: float = -1) -> FileLock:
    """The inter-process lock guarding ``target`` (a file or folder): ``<parent>/.locks/<name>.lock``.

    A :class:`filelock.FileLock` (``fcntl``/``msvcrt`` lock, released by the OS when the holding
    process dies, so a crash never leaves a stale lock; the small lock file itself stays, as
    deleting it would race with a waiting process). Use it as a context manager. Raises
    :class:`DataFolderError` naming the folder when ``.locks`` cannot be created there.
    """
    target = Path(target)
    folder = target.parent / ".locks"
    make_folder(folder)
    return FileLock(str(folder / f"{target.name}.lock"), timeout=timeout)


@contextlib.contextmanager
def locked(target: str | Path) -> Iterator[None]:
    """Hold :func:`file_lock` of ``target``; logs (INFO) when it has to wait for another process.

    Raises :class:`DataFolderError` naming the folder when the lock file cannot be created or
    opened for writing (a folder of another user, a read-only file system).
    """
    lock = file_lock(target)
    try:
        try:
            lock.acquire(timeout=0.2)
        except Timeout:
            log.info("%s: another process holds the lock; waiting for it to finish", target)
            lock.acquire()
    except Timeout:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise _unwritable(Path(lock.lock_file).parent, exc) from exc
    try:
        yield
    finally:
        lock.release()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask (read from /proc where possible, else set and restored); read once."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, content, *, suffix: str = ".part") -> Path:
    """Write a file so that a reader (or a second process) sees the old or the new file, never a
    partial one: a uniquely named temporary file in the same folder, flushed and fsync'ed, then
    :func:`os.replace`, then the folder fsync'ed so the rename survives a crash.

    ``content`` is ``bytes``, or a callable ``write(fh)`` that writes to the binary file handle
    (e.g. ``lambda fh: torch.save(obj, fh)``). On any error the temporary file is removed and the
    error re-raised (an ``OSError``, e.g. ``ENOSPC``, as an ``OSError`` of the same ``errno`` whose
    message names ``path``); ``path`` is untouched. The file gets the permissions of an ordinary new file
    (``0666`` less the umask), not ``mkstemp``'s ``0600``, so that other users can read a shared
    data folder. Returns ``path``. Used for downloads, caches, manifests
    and checkpoints (:func:`ecgbook.train.save_checkpoint`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: give the umask's usual permissions
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:  # name the file, keep the errno (and subclass)
            raise OSError(exc.errno, f"{path}: could not write ({exc.strerror or exc}); the previous file, "
                                     "if any, is unchanged") from exc
        raise
    with contextlib.suppress(OSError):  # make the rename durable (not every file system allows it)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


_write_atomic = write_atomic  # the name the data layer used before it became public
