"""The downloader through the real mirror: verification, corruption, interruption, missing files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecgbook.data import download
from ecgbook.data.download import ChecksumError, MissingFileError, fetch, fetch_physionet, physionet_url, sha256sum

REL = "records100/00000/00001_lr.dat"


@pytest.fixture()
def tmp_mirror(tmp_path, mirror, monkeypatch):
    """A writable copy of part of the PTB-XL mirror, so tests can damage it."""
    src = mirror / "physionet.org/files/ptb-xl/1.0.3"
    dst = tmp_path / "mirror/physionet.org/files/ptb-xl/1.0.3"
    (dst / "records100/00000").mkdir(parents=True)
    shutil.copy(src / "SHA256SUMS.txt", dst / "SHA256SUMS.txt")
    for ext in (".dat", ".hea"):
        shutil.copy(src / f"records100/00000/00001_lr{ext}", dst / f"records100/00000/00001_lr{ext}")
    monkeypatch.setenv("ECGBOOK_MIRROR", str(tmp_path / "mirror"))
    return dst


def test_resolve_maps_host_and_path(monkeypatch):
    monkeypatch.setenv("ECGBOOK_MIRROR", "/m")
    assert download.resolve("https://physionet.org/files/x/1/a.csv") == "/m/physionet.org/files/x/1/a.csv"
    monkeypatch.setenv("ECGBOOK_MIRROR", "https://example.org/base/")
    assert download.resolve("https://physionet.org/f") == "https://example.org/base/physionet.org/f"
    monkeypatch.delenv("ECGBOOK_MIRROR")
    assert download.resolve("https://physionet.org/f") == "https://physionet.org/f"


def test_fetch_verifies_and_skips(tmp_mirror, tmp_path):
    sums = download.parse_sha256sums((tmp_mirror / "SHA256SUMS.txt").read_text())
    dest = tmp_path / "out" / REL
    fetch(physionet_url("ptb-xl", "1.0.3", REL), dest, sums[REL])
    assert sha256sum(dest) == sums[REL]
    # a second call with an intact file does not touch the source (make the source unreadable)
    (tmp_mirror / REL).unlink()
    fetch(physionet_url("ptb-xl", "1.0.3", REL), dest, sums[REL])
    assert dest.exists()


def test_corrupt_source_fails_clearly_and_keeps_nothing(tmp_mirror, tmp_path):
    sums = download.parse_sha256sums((tmp_mirror / "SHA256SUMS.txt").read_text())
    data = bytearray((tmp_mirror / REL).read_bytes())
    data[100] ^= 0xFF
    (tmp_mirror / REL).write_bytes(bytes(data))
    dest = tmp_path / "out" / REL
    with pytest.raises(ChecksumError, match="00001_lr.dat.*expected SHA-256"):
        fetch(physionet_url("ptb-xl", "1.0.3", REL), dest, sums[REL])
    assert not dest.exists()
    assert dest.with_name(dest.name + ".corrupt").exists()
    assert not dest.with_name(dest.name + ".part").exists()


def test_interrupted_download_resumes(tmp_mirror, tmp_path):
    sums = download.parse_sha256sums((tmp_mirror / "SHA256SUMS.txt").read_text())
    full = (tmp_mirror / REL).read_bytes()
    dest = tmp_path / "out" / REL
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(full[:5000])  # what an interrupted download leaves
    fetch(physionet_url("ptb-xl", "1.0.3", REL), dest, sums[REL])
    assert dest.read_bytes() == full
    assert not part.exists()


def test_missing_file(tmp_mirror, tmp_path):
    with pytest.raises(MissingFileError, match="00002_lr.dat"):
        fetch(physionet_url("ptb-xl", "1.0.3", "records100/00000/00002_lr.dat"), tmp_path / "x.dat", "0" * 64)
    got, missing = fetch_physionet("ptb-xl", "1.0.3", [REL, "records100/00000/00002_lr.dat"], tmp_path / "db",
                                   missing_ok=True)
    assert [p.name for p in got] == ["00001_lr.dat"]
    assert missing == ["records100/00000/00002_lr.dat"]  # listed upstream, absent from this mirror copy
    with pytest.raises(MissingFileError):
        fetch_physionet("ptb-xl", "1.0.3", ["records100/99999/nothing.dat"], tmp_path / "db")


def test_existing_corrupt_file_is_replaced(tmp_mirror, tmp_path):
    sums = download.parse_sha256sums((tmp_mirror / "SHA256SUMS.txt").read_text())
    dest = tmp_path / "out" / REL
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"damaged")
    fetch(physionet_url("ptb-xl", "1.0.3", REL), dest, sums[REL])
    assert sha256sum(dest) == sums[REL]


def test_malformed_checksum_list_names_the_line():
    with pytest.raises(ValueError, match="SHA256SUMS.txt, line 2"):
        download.parse_sha256sums("a" * 64 + "  x.dat\nnot a line\n")
