"""Issue 9: data integrity under faults. Each test reproduces a fault on real mirror files copied to a
temporary folder and damaged, and checks that the result is a clear error naming the file, or correct data.

Faults 1, 3, 4, 5, 7 and 8 (fault 2, two processes at once, is in test_concurrency.py).
"""
from __future__ import annotations

import http.server
import os
import shutil
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from ecgbook.data import cache as cache_mod
from ecgbook.data import cinc2017 as cinc
from ecgbook.data import download
from ecgbook.data.download import (ChecksumError, ChecksumListError, DataWarning, DownloadError, InsecureSourceError,
                                   UnsafePathError, ensure_physionet, fetch, file_provenance, physionet_url, sha256sum)
from ecgbook.data.mitdb import MITBIH
from ecgbook.data.ptbxl import PTBXL
from ecgbook.data.records import RecordError, read_record
from ecgbook.models import densenet as dn
from ecgbook.models.efficientnet_lite import WeightsFileError, load_efficientnet_lite0

PTB = "physionet.org/files/ptb-xl/1.0.3"
MIT = "physionet.org/files/mitdb/1.0.0"
META = ("ptbxl_database.csv", "scp_statements.csv")


@pytest.fixture()
def data(tmp_path, monkeypatch):
    """An empty data folder (downloads, caches, verification caches) for this test."""
    monkeypatch.setenv("ECGBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.delenv(download.TRUST_ENV, raising=False)
    monkeypatch.delenv(download.ALLOW_HTTP_ENV, raising=False)
    return tmp_path / "data"


def _ptbxl_root(dest: Path, mirror: Path, ids=(1, 2, 3, 4, 5), with_list: bool = True) -> Path:
    """A local PTB-XL folder with the metadata and a few real records (as a user's own copy)."""
    src = mirror / PTB
    for name in META + (("SHA256SUMS.txt",) if with_list else ()):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, dest / name)
    for i in ids:
        for ext in (".hea", ".dat"):
            rel = f"records100/{(i // 1000) * 1000:05d}/{i:05d}_lr{ext}"
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / rel, dest / rel)
    return dest


def _mitdb_links(dest: Path, mirror: Path, with_list: bool = True) -> Path:
    """A MIT-BIH folder of symbolic links to the mirror's files (single files can then be replaced)."""
    dest.mkdir(parents=True)
    for f in (mirror / MIT).iterdir():
        if f.is_file() and (with_list or f.name != "SHA256SUMS.txt"):
            (dest / f.name).symlink_to(f)
    return dest


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` (replacing a symbolic link by a file)."""
    path.unlink()
    path.write_bytes(data)


# --------------------------------------------------------------------------- fault 1: weights run as code


class _Payload:
    """A pickle that creates a folder when unpickled: stands for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture()
def hub(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def test_fault1_crafted_file_in_hub_cache_is_refused_by_hash(hub, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    torch.save({"x": _Payload(marker)}, hub / "densenet121-a639ec97.pth")  # torchvision's file name
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("cached: no download"))
    with pytest.raises(dn.WeightsUnavailableError, match=r"densenet121-a639ec97\.pth: SHA-256 .* does not begin "
                                                         r"with a639ec97.*not loaded"):
        dn.load_densenet("densenet121")
    assert not marker.exists()


def test_fault1_file_with_matching_hash_still_cannot_run_code(hub, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    tmp = hub / "x.pth"
    torch.save({"x": _Payload(marker)}, tmp)
    prefix = sha256sum(tmp)[:8]  # a forger who matched the 32-bit prefix
    tmp.rename(hub / f"densenet121-{prefix}.pth")
    monkeypatch.setitem(dn.WEIGHT_URLS, "densenet121", f"https://download.pytorch.org/models/densenet121-{prefix}.pth")
    with pytest.raises(dn.WeightsUnavailableError, match=f"densenet121-{prefix}.pth: cannot load"):
        dn.load_densenet("densenet121")
    assert not marker.exists()  # weights_only=True refused the pickled call
    evil = tmp_path / "evil.pth"
    torch.save({"x": _Payload(marker)}, evil)
    with pytest.raises(WeightsFileError, match="evil.pth: cannot load"):
        load_efficientnet_lite0(weights_path=evil)
    assert not marker.exists()


def test_fault1_damaged_cached_file_is_not_loaded(hub):
    good = dn.densenet("densenet121").state_dict()
    torch.save(good, hub / "densenet121-a639ec97.pth")  # right name, wrong bytes
    with pytest.raises(dn.WeightsUnavailableError, match="Delete it"):
        dn.load_densenet("densenet121")


# --------------------------------------------------------------------------- fault 3: local files trusted


def test_fault3_unlisted_zero_record_is_flagged_unverified(tmp_path, mirror, data):
    root = _ptbxl_root(tmp_path / "ptbxl", mirror, ids=(1, 2))
    # ecg_id 2000 is in the metadata but not in the (partial) checksum list: a file of zeros there
    hea = (root / "records100/00000/00001_lr.hea").read_text().replace("00001_lr", "02000_lr")
    (root / "records100/02000").mkdir(parents=True)
    (root / "records100/02000/02000_lr.hea").write_text(hea)
    (root / "records100/02000/02000_lr.dat").write_bytes(bytes(24000))
    with pytest.warns(DataWarning) as caught:
        db = PTBXL(root=root, download=False)
    text = " ".join(str(w.message) for w in caught)
    assert "21,796 of 21,799 requested records are missing" in text
    assert "1 records have files that no trusted checksum list names and are used unverified (e.g. ecg_id 2000)" in text
    assert db.available.tolist() == [1, 2, 2000] and db.unverified.tolist() == [2000]
    prov = db.provenance()
    assert (prov["verified"], prov["unverified"], prov["records"]) == (4, 2, 3)
    assert prov["checksum_list"].startswith("ecgbook offline mirror")
    assert db.provenance([1, 2])["unverified"] == 0
    assert prov["manifest_hash"] != db.provenance([1, 2])["manifest_hash"]
    assert "1 unverified" in db.summary()


def test_fault3_cut_annotation_file_is_fetched_again(tmp_path, mirror, data):
    root = _mitdb_links(tmp_path / "mitdb", mirror)
    full = (mirror / MIT / "100.atr").read_bytes()
    _replace(root / "100.atr", full[: len(full) // 2])  # cut in half: wfdb would read half the beats
    with pytest.raises(ChecksumError, match=r"100\.atr: SHA-256 differs"):
        MITBIH(root, download=False)
    db = MITBIH(root)  # download=True: verified, the damaged file is fetched again
    assert (root / "100.atr").read_bytes() == full
    assert len(db.beats("100")) == 2273 and "100.atr" in db.files.refetched
    assert db.provenance(["100"])["verified"] == 3


def test_fault3_cut_or_stale_local_checksum_list_is_replaced(tmp_path, mirror, data):
    root = _mitdb_links(tmp_path / "mitdb", mirror)
    listing = (mirror / MIT / "SHA256SUMS.txt").read_bytes()
    _replace(root / "SHA256SUMS.txt", listing[: len(listing) // 2])  # cut
    with pytest.warns(DataWarning, match="not a list ecgbook pins"):
        MITBIH(root, download=False)  # untrusted local list: files unverified, not silently "verified"
    MITBIH(root)
    assert (root / "SHA256SUMS.txt").read_bytes() == listing  # replaced by the source's pinned list
    stale = listing.replace(listing[:64], b"0" * 64, 1)  # another (stale) version of the list
    _replace(root / "SHA256SUMS.txt", stale)
    MITBIH(root)
    assert (root / "SHA256SUMS.txt").read_bytes() == listing


def test_fault3_verification_is_cached_by_stat_and_sees_edits(tmp_path, mirror, data, monkeypatch):
    root = _ptbxl_root(tmp_path / "ptbxl", mirror, ids=(1, 2, 3))
    rels = [f"records100/00000/0000{i}_lr{e}" for i in (1, 2, 3) for e in (".hea", ".dat")]
    assert len(ensure_physionet("ptb-xl", "1.0.3", rels, root, download=False).verified) == 6
    calls = []
    real = download.sha256sum
    monkeypatch.setattr(download, "sha256sum", lambda p: calls.append(p) or real(p))
    assert len(ensure_physionet("ptb-xl", "1.0.3", rels, root, download=False).verified) == 6
    assert calls == []  # nothing hashed again
    dat = root / rels[1]
    st = dat.stat()
    raw = bytearray(dat.read_bytes())
    raw[100] ^= 0x01  # same size
    dat.write_bytes(bytes(raw))
    os.utime(dat, ns=(st.st_atime_ns, st.st_mtime_ns))  # modification time put back
    with pytest.raises(ChecksumError, match="00001_lr.dat: SHA-256 differs"):
        ensure_physionet("ptb-xl", "1.0.3", rels, root, download=False)


# --------------------------------------------------------------------------- fault 4: the signal cache


@pytest.fixture()
def own_copy(tmp_path, mirror, data):
    """A user's own PTB-XL copy without a checksum list (records used unverified)."""
    return _ptbxl_root(tmp_path / "own", mirror, ids=(1, 2, 3, 4, 5), with_list=False)


def _db(root, **kw):
    with pytest.warns(DataWarning, match="used unverified"):
        return PTBXL(root=root, download=False, max_records=5, **kw)


def _cache_files(data: Path) -> tuple[Path, Path]:
    (manifest,) = (data / "cache/ptbxl-1.0.3-100hz").glob("*/manifest.json")
    return manifest, manifest.with_name("signals.npy")


def test_fault4_same_size_edit_with_old_mtime_is_not_served_stale(own_copy, data):
    first = np.array(_db(own_copy).task("rhythm").X)
    dat = own_copy / "records100/00000/00003_lr.dat"
    st = dat.stat()
    raw = np.frombuffer(dat.read_bytes(), dtype="<i2").copy()
    raw[:12] += 100  # first sample of every lead, same size
    dat.write_bytes(raw.tobytes())
    os.utime(dat, ns=(st.st_atime_ns, st.st_mtime_ns))
    db = _db(own_copy)
    task = db.task("rhythm")
    row = list(task.ecg_id).index(3)
    np.testing.assert_array_equal(task.X[row], db.read(3).signal)  # the edited content, not the old cache
    assert not np.array_equal(task.X[row], first[row])


@pytest.mark.parametrize("damage, why", [
    ("truncate", "signals.npy: content differs"),
    ("content", "signals.npy: content differs"),
    ("rows", "signals.npy: content differs"),
    ("manifest", "manifest.json: unreadable manifest"),
])
def test_fault4_damaged_cache_is_rebuilt(own_copy, data, damage, why):
    db = _db(own_copy)
    expected = np.array(db.task("superdiagnostic").X)
    manifest, array = _cache_files(data)
    if damage == "truncate":
        array.write_bytes(array.read_bytes()[:5000])
    elif damage == "content":
        np.save(array, np.zeros_like(expected))  # right shape, wrong values
    elif damage == "rows":
        np.save(array, expected[:-1])
    else:
        manifest.write_text("{not json")
    with pytest.warns(DataWarning, match=why):
        again = db.task("superdiagnostic")
    np.testing.assert_array_equal(np.asarray(again.X), expected)
    with _no_warning():
        db.task("superdiagnostic")  # rebuilt once, then valid


class _no_warning:
    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings(record=True)
        self.caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, DataWarning)]


def test_fault4_no_record_present_gives_a_clear_error(own_copy, tmp_path, mirror, data):
    with pytest.raises(RecordError, match=r"no record present .*max_records=0"):
        PTBXL(root=own_copy, download=False, max_records=0).task("superdiagnostic")
    with pytest.warns(DataWarning, match="5 of 5 requested records are missing"):
        db = PTBXL(root=own_copy, download=False, fs=500, max_records=5)  # records500 is absent
    with pytest.raises(RecordError, match=r"500 Hz: no record present .*records500/"):
        db.task("superdiagnostic")
    with pytest.raises(cache_mod.CacheError, match="no records"):
        cache_mod.cached_signals("x", [], [], lambda i: None, leads=["I"], fs=100)


# --------------------------------------------------------------------------- fault 5: records that lie


@pytest.fixture()
def mit100(tmp_path, mirror):
    for ext in (".hea", ".dat"):
        shutil.copy(mirror / MIT / f"100{ext}", tmp_path / f"100{ext}")
    return tmp_path / "100"


@pytest.fixture()
def ptb1(tmp_path, mirror):
    for ext in (".hea", ".dat"):
        shutil.copy(mirror / PTB / f"records100/00000/00001_lr{ext}", tmp_path / f"00001_lr{ext}")
    return tmp_path / "00001_lr"


def test_fault5_one_lead_header_over_two_lead_file(mit100):
    hea = mit100.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace("100 2 360", "100 1 360")
    del lines[2]  # drop the V5 signal line
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"100\.dat: holds 1950000 bytes, more than the 975000 bytes 100\.hea "
                                          r"announces \(650000 samples x 1 leads"):
        read_record(mit100)


def test_fault5_header_with_fewer_samples_than_the_file(ptb1):
    hea = ptb1.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("00001_lr 12 100 1000", "00001_lr 12 100 900", 1))
    with pytest.raises(RecordError, match=r"00001_lr\.dat: holds 24000 bytes, more than the 21600 bytes"):
        read_record(ptb1)


def test_fault5_duplicate_lead_names(ptb1):
    hea = ptb1.with_suffix(".hea")
    text = hea.read_text()
    hea.write_text(text[: text.rindex(" V6")] + " V5\n" + text[text.rindex(" V6") + 4:])
    with pytest.raises(RecordError, match=r"00001_lr\.hea: lead name\(s\) \['V5'\] appear more than once"):
        read_record(ptb1)


@pytest.fixture()
def challenge_copy(tmp_path, challenge_samples):
    hea = sorted(challenge_samples.rglob("*.hea"))[0]
    for ext in (".hea", ".mat"):
        shutil.copy(hea.with_suffix(ext), tmp_path / f"R{ext}")
    (tmp_path / "R.hea").write_text(hea.read_text().replace(hea.stem, "R"))
    return tmp_path / "R"


@pytest.mark.parametrize("store, why", [
    (lambda v: v.astype(np.int16), None),  # control: a faithful re-save reads the same
    (lambda v: v.astype(np.int32), r"R\.mat: the matrix holds int32 values, but R\.hea declares WFDB format 16"),
    (lambda v: v.T.astype(np.int16), r"R\.mat: the matrix is transposed: 5000 x 12 \(samples x leads\)"),
    (lambda v: v.astype(np.float64), r"R\.mat: the matrix holds float64 values"),
])
def test_fault5_challenge_mat_dtype_and_shape(challenge_copy, store, why):
    original = read_record(challenge_copy).signal
    mat = challenge_copy.with_suffix(".mat")
    val = scipy.io.loadmat(mat)["val"]
    assert val.shape[0] == 12 and val.dtype == np.int16
    scipy.io.savemat(mat, {"val": store(val)}, format="4")
    if why is None:
        np.testing.assert_array_equal(read_record(challenge_copy).signal, original)
        return
    with pytest.raises(RecordError, match=why):
        read_record(challenge_copy)
    scipy.io.savemat(mat, {"val": val}, format="5")
    with pytest.raises(RecordError, match=r"R\.mat: a MATLAB v5/v7 file"):
        read_record(challenge_copy)


# --------------------------------------------------------------------------- fault 7: root of trust


@pytest.fixture()
def ptb_mirror(tmp_path, mirror, monkeypatch):
    """A writable copy of part of the PTB-XL mirror (the real, pinned checksum list)."""
    dst = tmp_path / "mirror" / PTB
    _ptbxl_root(dst, mirror, ids=(1, 2))
    monkeypatch.setenv("ECGBOOK_MIRROR", str(tmp_path / "mirror"))
    return dst


def test_fault7_unpinned_checksum_list_is_refused_unless_accepted(ptb_mirror, tmp_path, data, monkeypatch):
    sums = ptb_mirror / "SHA256SUMS.txt"
    rel = "records100/00000/00001_lr.dat"
    text = sums.read_text()
    (ptb_mirror / rel).write_bytes(bytes(24000))  # the attacker's bytes ...
    lines = [(f"{download.hashlib.sha256(bytes(24000)).hexdigest()} {rel}" if line.endswith(" " + rel) else line)
             for line in text.splitlines()]
    sums.write_text("\n".join(lines) + "\n")  # ... and a list that vouches for them
    digest = sha256sum(sums)
    with pytest.raises(ChecksumListError, match=f"SHA-256 {digest}, which is not a list ecgbook pins.*"
                                                f"ECGBOOK_TRUST_CHECKSUMS={digest}"):
        ensure_physionet("ptb-xl", "1.0.3", [rel], tmp_path / "db")
    assert not (tmp_path / "db" / rel).exists()
    monkeypatch.setenv(download.TRUST_ENV, digest)  # the user explicitly accepts this list
    got = ensure_physionet("ptb-xl", "1.0.3", [rel], tmp_path / "db")
    assert got.verified == [rel] and "accepted because" in got.checksum_list


def test_fault7_pinned_key_files_hold_even_for_an_accepted_list(ptb_mirror, tmp_path, data, monkeypatch):
    sums = ptb_mirror / "SHA256SUMS.txt"
    lines = [("0" * 64 + " ptbxl_database.csv" if line.endswith(" ptbxl_database.csv") else line)
             for line in sums.read_text().splitlines()]
    sums.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv(download.TRUST_ENV, "any")
    with pytest.raises(ChecksumListError, match="ptbxl_database.csv, but ecgbook pins 7600de9c"):
        ensure_physionet("ptb-xl", "1.0.3", ["ptbxl_database.csv"], tmp_path / "db")


def test_fault7_paths_leaving_the_dataset_folder_are_refused(ptb_mirror, tmp_path, data, monkeypatch):
    (ptb_mirror / "../../escape.hea").write_text("x")
    sums = ptb_mirror / "SHA256SUMS.txt"
    sums.write_text(sums.read_text() + f"{sha256sum(ptb_mirror / '../../escape.hea')} ../../escape.hea\n")
    monkeypatch.setenv(download.TRUST_ENV, "any")
    db = tmp_path / "deep" / "db"
    with pytest.raises(UnsafePathError, match=r"SHA256SUMS.txt.*, line 3978: path '\.\./\.\./escape\.hea' climbs out"):
        ensure_physionet("ptb-xl", "1.0.3", ["records100/00000/00001_lr.hea"], db)  # the list is refused
    with pytest.raises(UnsafePathError, match="climbs out"):
        ensure_physionet("ptb-xl", "1.0.3", ["../../escape.hea"], db)  # and so is such a request
    with pytest.raises(UnsafePathError, match="climbs out"):
        download.safe_join(db, "records100/../../x")
    with pytest.raises(UnsafePathError, match="absolute"):
        download.parse_sha256sums("a" * 64 + " /etc/passwd\n")
    assert not (tmp_path / "escape.hea").exists() and not (tmp_path / "deep" / "escape.hea").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def http_mirror(ptb_mirror, tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "mirror")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ECGBOOK_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()


def test_fault7_plain_http_is_refused_unless_allowed(http_mirror, tmp_path, data, monkeypatch):
    rel = "records100/00000/00001_lr.hea"
    with pytest.raises(InsecureSourceError, match="refusing the plain-HTTP source http://127.0.0.1"):
        ensure_physionet("ptb-xl", "1.0.3", [rel], tmp_path / "db")
    with pytest.raises(InsecureSourceError):
        fetch("http://physionet.org/files/ptb-xl/1.0.3/RECORDS", tmp_path / "x")
    monkeypatch.setenv(download.ALLOW_HTTP_ENV, "1")
    got = ensure_physionet("ptb-xl", "1.0.3", [rel], tmp_path / "db")
    assert got.verified == [rel]


# --------------------------------------------------------------------------- fault 8: rough edges


def test_fault8_destination_that_is_a_folder(ptb_mirror, tmp_path, data):
    rel = "records100/00000/00001_lr.dat"
    dest = tmp_path / "out" / "00001_lr.dat"
    (dest / "keep").mkdir(parents=True)
    sha = download.parse_sha256sums((ptb_mirror / "SHA256SUMS.txt").read_text())[rel]
    with pytest.raises(DownloadError, match=r"00001_lr\.dat: the destination is a directory"):
        fetch(physionet_url("ptb-xl", "1.0.3", rel), dest, sha)
    assert (dest / "keep").is_dir()


def test_fault8_garbage_part_file_is_retried_from_zero(ptb_mirror, tmp_path, data):
    rel = "records100/00000/00001_lr.dat"
    sha = download.parse_sha256sums((ptb_mirror / "SHA256SUMS.txt").read_text())[rel]
    dest = tmp_path / "out" / "00001_lr.dat"
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(os.urandom(5000))  # not a prefix of the file
    fetch(physionet_url("ptb-xl", "1.0.3", rel), dest, sha)  # first call succeeds
    assert sha256sum(dest) == sha and not dest.with_name(dest.name + ".part").exists()


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory, mirror):
    """A ZIP of 20 real Challenge 2017 records, taken from the mirror's archive."""
    path = tmp_path_factory.mktemp("zip") / "training2017.zip"
    with zipfile.ZipFile(mirror / "physionet.org/files/challenge-2017/1.0.0/training2017.zip") as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        names = [n for n in src.namelist() if n.endswith((".hea", ".mat"))][:40]
        for name in names:
            dst.writestr(name, src.read(name))
    return path


def test_fault8_truncated_or_damaged_zip_names_the_archive(small_zip, tmp_path):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(small_zip.read_bytes()[: small_zip.stat().st_size // 2])
    with pytest.raises(zipfile.BadZipFile, match=r"cut\.zip: not a complete ZIP archive"):
        cinc.safe_extract(cut, tmp_path / "a")
    raw = bytearray(small_zip.read_bytes())
    with zipfile.ZipFile(small_zip) as z:
        info = z.infolist()[3]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF  # one byte of one member's data
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile, match=rf"bad\.zip: damaged archive, extraction failed at member "
                                                 rf"'{info.filename}'"):
        cinc.safe_extract(bad, tmp_path / "b")
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.partial-*"))


def test_cinc_extracted_member_damaged_later_is_restored(small_zip, tmp_path):
    dest = cinc.safe_extract(small_zip, tmp_path / "x")
    marker = cinc.read_marker(dest)
    name = sorted(marker["files"])[1]
    good = (dest / name).read_bytes()
    (dest / name).write_bytes(good[:10])  # resized: caught by the size check on the next open
    cinc.safe_extract(small_zip, tmp_path / "x")
    assert (dest / name).read_bytes() == good
