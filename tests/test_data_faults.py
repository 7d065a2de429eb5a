"""Faults of the data layer (issue 18, round 2): non-finite samples, a full disk while caching,
unwritable or read-only data folders, a missing mirror, empty headers, duplicate archive members,
records shorter than a crop. Real mirror files, damaged copies of them."""
from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ecgbook.data import cache as cache_mod
from ecgbook.data.cache import CacheError, cached_signals, fingerprint
from ecgbook.data.cinc2017 import UnsafeArchiveError, safe_extract
from ecgbook.data.download import DownloadError, fetch, write_atomic
from ecgbook.data.records import NonFiniteSignalError, RecordError, read_record
from ecgbook.lead_agnostic_ssl import crops_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def copy(tmp_path, mirror):
    src = mirror / "physionet.org/files/ptb-xl/1.0.3/records100/00000/00001_lr"
    for ext in (".hea", ".dat"):
        shutil.copy(src.with_suffix(ext), tmp_path / f"00001_lr{ext}")
    return tmp_path / "00001_lr"


def test_infinite_gain_is_refused_naming_file_and_lead(copy):
    hea = copy.with_suffix(".hea")
    lines = hea.read_text().splitlines(keepends=True)
    assert "1000.0(0)/mV" in lines[7] and lines[7].rstrip().endswith("V1")
    lines[7] = lines[7].replace("1000.0(0)/mV", "1e-300(0)/mV")  # V1: ADC / 1e-300 overflows float32
    hea.write_text("".join(lines))
    with pytest.raises(NonFiniteSignalError, match=r"00001_lr\.hea: signal contains .*inf in lead\(s\) \['V1'\]"):
        read_record(copy)


def _read_rows(rows):
    return lambda i: rows[i]


def test_cache_refuses_non_finite_rows_naming_the_record(tmp_path):
    rows = {0: np.zeros((2, 5), np.float32), 1: np.array([[0, 0, np.inf, 0, 0], [0] * 5], np.float32)}
    with pytest.raises(NonFiniteSignalError, match=r"k: record 1: signal contains \+inf in lead\(s\) \['I'\]"):
        cached_signals("k", [0, 1], [], _read_rows(rows), leads=["I", "II"], fs=100, cache_dir=tmp_path,
                       content_hash="x")
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("signals.npy"))


def test_cache_checks_free_space_first(tmp_path, monkeypatch):
    rows = {i: np.ones((2, 5), np.float32) for i in range(3)}
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(CacheError, match=r"not enough free space .* it needs 248 bytes .* 1,000 are free"):
        cached_signals("k", [0, 1, 2], [], _read_rows(rows), leads=["I", "II"], fs=100, cache_dir=tmp_path,
                       content_hash="x")
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_cache_removes_its_temporary_file_on_disk_full_and_interrupt(tmp_path, failure):
    def read(i):
        if i == 2:
            raise failure
        return np.ones((2, 5), np.float32)

    expected = CacheError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        cached_signals("k", [0, 1, 2], [], read, leads=["I", "II"], fs=100, cache_dir=tmp_path, content_hash="x")
    if expected is CacheError:
        assert "disk full" in str(info.value) and "bytes needed" in str(info.value)
    assert not list(tmp_path.rglob(".signals*")) and not list(tmp_path.rglob("signals.npy"))


def test_cache_build_removes_stale_part_files_and_reads_the_same(tmp_path):
    rows = {i: np.full((2, 5), i, np.float32) for i in range(3)}
    folder = tmp_path / fingerprint([0, 1, 2], "x")[:16]
    folder.mkdir()
    stale = folder / ".signals.abc123.npy.part"
    stale.write_bytes(b"\0" * 4096)  # left by a build killed by SIGBUS
    X, manifest = cached_signals("k", [0, 1, 2], [], _read_rows(rows), leads=["I", "II"], fs=100,
                                 cache_dir=tmp_path, content_hash="x")
    assert not stale.exists() and not list(folder.glob("*.part"))
    assert np.array_equal(X, np.stack([rows[i] for i in range(3)])) and manifest["shape"] == [3, 2, 5]
    assert manifest["array_sha256"] == cache_mod.sha256sum(folder / "signals.npy")


def test_write_atomic_uses_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "a.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone gives 0600


def test_empty_header_is_a_record_error(copy):
    copy.with_suffix(".hea").write_text("")
    with pytest.raises(RecordError, match=r"00001_lr\.hea: empty header"):
        read_record(copy)


def test_zip_with_duplicate_member_is_refused(tmp_path):
    archive = tmp_path / "dup.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(archive, "w") as z:
        z.writestr("training2017/A00001.hea", "one")
        z.writestr("training2017/A00001.hea", "two")
    with pytest.raises(UnsafeArchiveError, match=r"dup\.zip: member 'training2017/A00001\.hea' appears more than once"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_crops_of_a_record_shorter_than_the_crops():
    X = np.zeros((3, 12, 900), np.float32)
    with pytest.raises(ValueError, match=r"records hold 900 samples .* 2 crops x 500 samples = 1000"):
        crops_of(X, 2, 500)


def test_missing_mirror_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGBOOK_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DownloadError, match=r"mirror folder .*nowhere \(ECGBOOK_MIRROR="):
        fetch("https://physionet.org/files/mitdb/1.0.0/RECORDS", tmp_path / "RECORDS")


@pytest.fixture()
def shared_tmp():
    """A folder every user can traverse (pytest's tmp_path lies under a 0700 folder of root)."""
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix="ecgbook-ro-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_read_only_data_folder_as_another_user(shared_tmp, mirror):
    """Real permissions: the data is prepared as root, then read by ``nobody`` (setpriv) — root
    itself ignores permissions, so the check runs in a subprocess as another user."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("this test needs root and setpriv to run a check as the user nobody")
    tmp_path = shared_tmp
    data = tmp_path / "data"
    env = {**os.environ, "ECGBOOK_DATA": str(data), "ECGBOOK_MIRROR": str(mirror), "PYTHONPATH": str(REPO),
           "ECGBOOK_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    prepare = "from ecgbook.data.ptbxl import PTBXL; db = PTBXL(max_records=3); db._signals(db.available)"
    subprocess.run([sys.executable, "-c", prepare], env=env, check=True, cwd=tmp_path)
    check = textwrap.dedent("""
        import os, sys
        from ecgbook.data.download import DataFolderError
        from ecgbook.data.ptbxl import PTBXL
        db = PTBXL(max_records=3)                       # complete and verified: read without writing
        assert db.read(1).signal.shape == (12, 1000)
        X, _ = db._signals(db.available)                # the signal cache built by root opens
        assert X.shape == (3, 12, 1000)
        os.environ["ECGBOOK_DATA"] = sys.argv[1]        # an unwritable, empty data folder
        try:
            PTBXL(max_records=3)
        except DataFolderError as exc:
            print("REFUSED", exc)
        """)
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          sys.executable, "-c", check, str(empty)],
                         env=env, cwd="/", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"REFUSED {empty}" in out.stdout and "ECGBOOK_DATA" in out.stdout, out.stdout


def test_challenge2020_leaves_out_records_with_non_finite_samples(tmp_path, challenge_samples):
    """As the official extraction does, a record with NaN samples is left out and listed (it used to
    stop the whole load with a RecordError); read on its own it is refused naming the record and lead."""
    from ecgbook.data.challenge import load_challenge2020, read_challenge_record
    folder = tmp_path / "georgia"
    folder.mkdir()
    for name in ("E00001", "E00002"):
        for ext in (".hea", ".mat"):
            shutil.copy(challenge_samples / "georgia" / f"{name}{ext}", folder / f"{name}{ext}")
    mat = folder / "E00002.mat"
    raw = bytearray(mat.read_bytes())
    raw[24 + 2 * 3:24 + 2 * 4] = np.int16(-32768).tobytes()  # sample 0 of lead aVR: WFDB's 'no value'
    mat.write_bytes(bytes(raw))
    with pytest.raises(NonFiniteSignalError, match=r"E00002\.hea: signal contains NaN in lead\(s\) \['aVR'\]"):
        read_challenge_record(folder / "E00002")
    data = load_challenge2020(tmp_path)
    assert data.names == ["E00001"] and data.dropped["non-finite samples"] == [str(folder / "E00002")]
