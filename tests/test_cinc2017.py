"""PhysioNet/CinC Challenge 2017 reader on the real mirror archive, and the safe ZIP extraction."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ecgbook.data import cinc2017 as cinc
from ecgbook.data.records import RecordError


@pytest.fixture(scope="module")
def ds(mirror) -> cinc.CinC2017:
    """The training set in the default data folder, fetched from the mirror and unpacked on first use."""
    return cinc.CinC2017()


def test_records_and_label_counts(ds):
    assert len(ds) == len(ds.records) == 8528
    assert ds.records[0] == "A00001" and ds.records[-1] == "A08528"
    assert list(ds.labels.index) == ds.records
    assert ds.labels.value_counts().to_dict() == {"N": 5050, "O": 2456, "A": 738, "~": 284}
    assert ds.labels["A00001"] == "N" and ds.labels["A00004"] == "A"  # first lines of REFERENCE-v3.csv
    assert (ds.record_dir.parent / cinc.MARKER).is_file()  # the extraction completed
    assert ds.record_dir == ds.root / "extracted" / "training2017"


def test_read_record_against_header_and_mat(ds):
    rec = ds.read("A00001")
    assert rec.leads == ["ECG"] and rec.fs == 300.0
    assert rec.signal.shape == (1, 9000) and rec.signal.dtype == np.float32
    # A00001.hea: "A00001.mat 16+24 1000/mV 16 0 -127 0 0 ECG": first sample -127 adu, gain 1000 adu/mV
    assert rec.signal[0, 0] == pytest.approx(-0.127)
    for name in ("A00001", "A04321", "A08528"):
        raw = scipy.io.loadmat(ds.record_dir / f"{name}.mat")["val"]  # the Challenge's own reading route
        np.testing.assert_allclose(ds.read(name).signal, raw / 1000.0, atol=1e-6)


def test_unknown_record(ds):
    with pytest.raises(RecordError, match="B00001"):
        ds.read("B00001")


def test_durations(ds):
    d = ds.durations()
    assert len(d) == 8528
    assert d["A00001"] == pytest.approx(30.0)
    assert 9.0 <= d.min() < 9.1 and 60.0 < d.max() <= 61.0  # 9 s to about 61 s (Clifford et al. 2017)


def test_segments_crop_and_pad(ds):
    names = ["A00001", "A00004", "A00003"]
    X, y = ds.segments(seconds=9, names=names)
    assert X.shape == (3, 2700) and X.dtype == np.float32
    assert list(y) == [ds.labels[n] for n in names]
    np.testing.assert_array_equal(X[0], ds.read("A00001").signal[0, :2700])
    X, _ = ds.segments(seconds=40, names=["A00001"])  # a 30 s record: zero-padded at the end
    np.testing.assert_array_equal(X[0, :9000], ds.read("A00001").signal[0])
    assert (X[0, 9000:] == 0).all() and X.shape == (1, 12000)
    with pytest.raises(ValueError, match="seconds"):
        ds.segments(seconds=0)


def test_reference_with_unknown_label(tmp_path):
    bad = tmp_path / "REFERENCE.csv"
    bad.write_text("A00001,N\nA00002,X\n")
    with pytest.raises(RecordError, match=r"REFERENCE\.csv.*'X'"):
        cinc.CinC2017._read_labels(bad)


# --------------------------------------------------------------------------- safe extraction

def _zip(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("member, why", [
    ("../evil.txt", r"'\.\./evil\.txt'.*'\.\.'"),
    ("/tmp/ecgbook-evil.txt", r"'/tmp/ecgbook-evil\.txt'.*absolute"),
    ("data/../../evil.txt", r"'data/\.\./\.\./evil\.txt'"),
    ("C:/evil.txt", r"'C:/evil\.txt'.*absolute"),
])
def test_safe_extract_refuses_traversal(tmp_path, member, why):
    archive = _zip(tmp_path / "bad.zip", {"ok/first.txt": b"fine", member: b"owned"})
    dest = tmp_path / "out" / "dest"
    with pytest.raises(cinc.UnsafeArchiveError, match=why):
        cinc.safe_extract(archive, dest)
    assert not dest.exists()  # nothing written, not even the harmless member
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/ecgbook-evil.txt").exists()
    # no partial folder left behind (only the lock folder of ecgbook.data.download.file_lock)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".locks"]


def test_safe_extract_refuses_symlink(tmp_path):
    archive = _zip(tmp_path / "link.zip", {"a.txt": b"x"}, link="passwd")
    with pytest.raises(cinc.UnsafeArchiveError, match="'passwd'.*symbolic link"):
        cinc.safe_extract(archive, tmp_path / "dest")


def test_safe_extract_once_and_redo_after_interruption(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "good.zip", {"top/a.txt": b"alpha", "top/sub/b.txt": b"beta"})
    dest = tmp_path / "dest"
    real_extract = zipfile.ZipFile.extract
    calls = []

    def dying_extract(self, member, path=None, pwd=None):
        calls.append(member.filename)
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted in the middle of the archive
        return real_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", dying_extract)
    with pytest.raises(KeyboardInterrupt):
        cinc.safe_extract(archive, dest)
    assert not dest.exists() and list(tmp_path.glob(".dest.partial-*")) == []
    monkeypatch.setattr(zipfile.ZipFile, "extract", real_extract)

    (tmp_path / ".dest.partial-stale").mkdir()  # leftover of a killed process
    assert cinc.safe_extract(archive, dest) == dest.resolve()
    assert (dest / "top" / "a.txt").read_bytes() == b"alpha"
    assert (dest / "top" / "sub" / "b.txt").read_bytes() == b"beta"
    assert (dest / cinc.MARKER).is_file() and not (tmp_path / ".dest.partial-stale").exists()

    def no_extract(*args, **kwargs):
        raise AssertionError("extracted again although the marker matches")

    monkeypatch.setattr(zipfile.ZipFile, "extract", no_extract)
    assert cinc.safe_extract(archive, dest) == dest.resolve()


def test_safe_extract_never_overwrites_foreign_folder(tmp_path):
    archive = _zip(tmp_path / "good.zip", {"a.txt": b"alpha"})
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="mine"):
        cinc.safe_extract(archive, dest)
    assert (dest / "precious.txt").read_text() == "keep"


def test_damaged_extracted_record_is_restored_from_the_archive(ds):
    """Issue 9, fault 3: an extracted file edited in place (same size) is caught by its CRC-32 on read."""
    mat = ds.record_dir / "A00002.mat"
    good = mat.read_bytes()
    raw = bytearray(good)
    raw[100] ^= 0xFF
    mat.write_bytes(bytes(raw))
    try:
        rec = ds.read("A00002")
        assert mat.read_bytes() == good  # extracted again from the verified archive
        np.testing.assert_allclose(rec.signal, scipy.io.loadmat(mat)["val"] / 1000.0, atol=1e-6)
    finally:
        if mat.read_bytes() != good:
            mat.write_bytes(good)
