"""benchmarks/loadtest_ptbxl.py: the load-test fixture lays out every listed id and no chapter reads it."""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loadtest():
    spec = importlib.util.spec_from_file_location("loadtest_ptbxl", ROOT / "benchmarks" / "loadtest_ptbxl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest_ptbxl"] = module
    spec.loader.exec_module(module)
    return module


def test_fixture_lays_out_every_listed_id_with_checksums(loadtest, mirror, tmp_path, monkeypatch):
    # a small source: the real pinned metadata and the mirror's first 10 records; 50 ids laid out,
    # 40 of them from reused bytes (as the 19,812 ids the mirror lacks at full scale)
    src = tmp_path / "src" / loadtest.REL
    real = mirror / loadtest.REL
    src.mkdir(parents=True)
    for name in ("ptbxl_database.csv", "scp_statements.csv", "RECORDS"):
        (src / name).symlink_to(real / name)
    for rel in pd.read_csv(real / "ptbxl_database.csv")["filename_lr"][:10]:
        for ext in (".hea", ".dat"):
            (src / (rel + ext)).parent.mkdir(parents=True, exist_ok=True)
            (src / (rel + ext)).symlink_to(real / (rel + ext))
    base = loadtest.lay_out(tmp_path / "lt", mirror=tmp_path / "src", n_ids=50)
    root = base / loadtest.REL
    meta = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    assert len(meta) == 21799  # the pinned metadata, byte for byte
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS.txt").read_text().splitlines())
    for rel in meta["filename_lr"][:50]:
        for ext in (".hea", ".dat"):
            f = root / (rel + ext)
            assert f.is_file(), f
            assert hashlib.sha256(f.read_bytes()).hexdigest() == sums[rel + ext], f
    last = meta["filename_lr"].iloc[49]
    assert not (src / (last + ".dat")).exists()  # a reused record, under its own name
    assert (root / (last + ".hea")).read_text().split()[0] == Path(last).name
    assert not (root / meta["filename_lr"].iloc[50]).with_suffix(".dat").exists()
    # the package's loader accepts it (list trusted by digest) and finds the 50 records
    monkeypatch.setenv("ECGBOOK_MIRROR", str(base))
    monkeypatch.setenv("ECGBOOK_TRUST_CHECKSUMS", hashlib.sha256((root / "SHA256SUMS.txt").read_bytes()).hexdigest())
    from ecgbook.data.ptbxl import PTBXL
    db = PTBXL(tmp_path / "data", max_records=50)
    assert len(db.available) == 50 and len(db.unverified) == 0


def test_no_chapter_or_package_module_reads_the_fixture(loadtest, mirror, tmp_path):
    assert loadtest.DEFAULT_DEST == ROOT / "_build" / "loadtest"  # git-ignored build output
    sources = list((ROOT / "chapters").glob("*.md")) + list((ROOT / "ecgbook").rglob("*.py"))
    for path in sources:
        assert not re.search(r"loadtest", path.read_text()), path
    with pytest.raises(ValueError, match="must not be a data folder"):
        loadtest.lay_out(ROOT / "data", mirror=mirror, n_ids=1)
    with pytest.raises(FileNotFoundError, match="PTB-XL 1.0.3 not found"):
        loadtest.lay_out(tmp_path / "x", mirror=tmp_path, n_ids=1)
