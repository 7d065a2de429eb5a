"""Project-wide settings: where data, caches, checkpoints and results live.

Every location can be overridden with an environment variable, so that a user
who already has a dataset on disk, or a mirror of PhysioNet, can point the book
at it without editing code:

``ECGBOOK_MIRROR``
    Directory (or ``http(s)://`` base URL) laid out as ``HOST/PATH``. When set,
    a file that upstream serves at ``https://HOST/PATH`` is fetched from
    ``$ECGBOOK_MIRROR/HOST/PATH`` instead. Tests and CI set it to
    ``../shared/mirror``.
``ECGBOOK_DATA``
    Where downloaded datasets land (default ``<project root>/data``).
``ECGBOOK_RESULTS``
    Where runs write their metrics (default ``<project root>/results``).
``ECGBOOK_PROGRESS``
    ``0`` disables tqdm progress bars (the book runner sets it so that
    executed notebooks do not fill with progress lines).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """Return the project root: ``$ECGBOOK_ROOT``, else the checkout holding this package, else the cwd."""
    env = os.environ.get("ECGBOOK_ROOT")
    if env:
        return Path(env).resolve()
    candidate = PACKAGE_DIR.parent
    if (candidate / "_toc.yml").exists():
        return candidate
    return Path.cwd()


def data_dir() -> Path:
    """Directory where datasets are downloaded (``$ECGBOOK_DATA`` or ``<root>/data``)."""
    return Path(os.environ.get("ECGBOOK_DATA", project_root() / "data")).resolve()


def results_dir() -> Path:
    """Directory where result files are written (``$ECGBOOK_RESULTS`` or ``<root>/results``)."""
    return Path(os.environ.get("ECGBOOK_RESULTS", project_root() / "results")).resolve()


def mirror() -> str | None:
    """The mirror base (``$ECGBOOK_MIRROR``) or ``None`` when files come from upstream."""
    value = os.environ.get("ECGBOOK_MIRROR", "").strip()
    return value or None


def progress_enabled() -> bool:
    """Whether tqdm progress bars are shown (``ECGBOOK_PROGRESS`` not ``0``)."""
    return os.environ.get("ECGBOOK_PROGRESS", "1") not in ("0", "false", "no")
