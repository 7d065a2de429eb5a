"""Shared fixtures: tests read the real PhysioNet files of the offline mirror (``../shared/mirror``).

``ECGBOOK_MIRROR`` is pointed at the mirror (unless already set) and datasets are downloaded, once,
into the project's ``data/`` folder (or ``$ECGBOOK_DATA``), exactly as a user's run would.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = ROOT.parent / "shared" / "mirror"
SAMPLES = ROOT.parent / "shared" / "samples"

if not os.environ.get("ECGBOOK_MIRROR") and DEFAULT_MIRROR.is_dir():
    os.environ["ECGBOOK_MIRROR"] = str(DEFAULT_MIRROR)
os.environ.setdefault("ECGBOOK_PROGRESS", "0")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The mirror directory; fails (never skips) when it is absent, since the tests need real data."""
    path = Path(os.environ["ECGBOOK_MIRROR"]) if os.environ.get("ECGBOOK_MIRROR") else DEFAULT_MIRROR
    if not path.is_dir():
        pytest.fail(f"the PhysioNet mirror is missing at {path}; set ECGBOOK_MIRROR (see data/README.md)")
    return path


@pytest.fixture(scope="session")
def challenge_samples() -> Path:
    """Real Challenge 2020/2021-format records (``../shared/samples/challenge-2021``)."""
    path = Path(os.environ.get("ECGBOOK_SAMPLES", SAMPLES)) / "challenge-2021"
    if not path.is_dir():
        pytest.fail(f"Challenge-format sample records missing at {path}")
    return path


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test (restored after): tiny models and batches run many times
    faster than with two threads contending on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
