"""MIT-BIH Arrhythmia Database reader, on the real files of the mirror (downloaded once into data/)."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgbook import profiles
from ecgbook.data.download import ChecksumError, DataWarning, sha256sum
from ecgbook.data.mitdb import (AAMI_CLASSES, AAMI_MAP, DS1, DS2, FS, PACED, MITBIH, default_root,
                                download_mitdb, record_to_patient, same_patient_pairs)
from ecgbook.data.records import RecordError

WINDOW = (90, 162)  # samples before/after the R peak for the default window_s=(0.25, 0.45) at 360 Hz


@pytest.fixture(scope="module")
def db(mirror) -> MITBIH:
    """The database in the default data folder, fetched from the mirror on first use."""
    return MITBIH()


@pytest.fixture(scope="module")
def mirror_mitdb(mirror) -> Path:
    return mirror / "physionet.org" / "files" / "mitdb" / "1.0.0"


@pytest.fixture
def linked_copy(db, tmp_path) -> Path:
    """A copy of the database in tmp_path made of symbolic links, so single files can be damaged."""
    for f in db.root.iterdir():
        if f.is_file():
            (tmp_path / f.name).symlink_to(f)
    return tmp_path


def test_records_and_root(db, mirror_mitdb):
    assert db.root == default_root()
    assert len(db.records) == 48
    assert db.records == (mirror_mitdb / "RECORDS").read_text().split()
    assert db.records[0] == "100" and db.records[-1] == "234"


def test_read_record_100(db):
    rec = db.read("100")
    assert rec.leads == ["MLII", "V5"]
    assert rec.fs == FS == 360.0
    assert rec.signal.shape == (2, 650000) and rec.signal.dtype == np.float32
    # hand-worked from 100.hea: first values 995 and 1011 adu, baseline 1024, gain 200 adu/mV
    np.testing.assert_allclose(rec.signal[:, 0], [(995 - 1024) / 200, (1011 - 1024) / 200], atol=1e-6)
    assert np.abs(rec.signal).max() < 5.0  # a 10 mV input range; this record stays within ±3 mV
    assert 1.0 < np.ptp(rec.signal[0, :3600]) < 4.0  # R waves of about 1-2 mV in MLII


def test_lead_order_of_special_records(db):
    assert db.read("102").leads == ["V5", "V2"]  # no MLII (surgical dressings)
    assert db.read("104").leads == ["V5", "V2"]
    assert db.read(114).leads == ["V5", "MLII"]  # signals swapped


def test_beats_record_100(db):
    beats = db.beats("100")
    assert len(beats) == 2273
    assert Counter(beats.symbol.tolist()) == {"N": 2239, "A": 33, "V": 1}
    assert Counter(beats.aami.tolist()) == {"N": 2239, "S": 33, "V": 1}
    assert beats.sample[0] == 77 and np.all(np.diff(beats.sample) > 0)
    assert beats.sample.dtype == np.int64


def test_beats_exclude_non_beat_annotations(db):
    ann = wfdb.rdann(str(db.root / "201"), "atr")
    assert {"+", "~", "x"} <= set(ann.symbol)  # rhythm changes, noise, non-conducted P waves
    beats = db.beats("201")
    # 201.atr: N 1625, V 198, a 97, A 30, j 10, F 2, J 1 beats; 37 x, 35 +, 4 ~ are not beats
    assert len(beats) == 1963 == len(ann.sample) - 37 - 35 - 4
    assert Counter(beats.aami.tolist()) == {"N": 1635, "S": 128, "V": 198, "F": 2}


def test_aami_map():
    assert AAMI_CLASSES == ("N", "S", "V", "F", "Q")
    assert len(AAMI_MAP) == 15 and set(AAMI_MAP.values()) == set(AAMI_CLASSES)
    assert [AAMI_MAP[s] for s in "LRAaVEF/fQ"] == list("NNSSVVFQQQ")
    assert not {"+", "~", "!", "x", '"', "|", "[", "]"} & set(AAMI_MAP)


def test_inter_patient_split(db):
    assert len(DS1) == len(DS2) == 22 and len(set(DS1)) == len(set(DS2)) == 22
    assert not set(DS1) & set(DS2)
    assert not set(PACED) & (set(DS1) | set(DS2))
    assert set(DS1) | set(DS2) | set(PACED) == set(db.records)
    # the one patient on both sides: 201 (DS1) and 202 (DS2) are one subject
    assert {record_to_patient(r) for r in DS1} & {record_to_patient(r) for r in DS2} == {"201"}
    assert record_to_patient("202") == record_to_patient(201) == "201"
    assert record_to_patient("100") == "100"


def test_same_patient_pairs_hand_worked():
    assert same_patient_pairs(DS1, DS2) == [("201", "202")]
    assert same_patient_pairs(DS2, DS1) == [("202", "201")]
    assert same_patient_pairs([201], [202, 100]) == [("201", "202")]          # ints accepted
    assert same_patient_pairs(DS1, DS2[:4]) == []                             # 100, 103, 105, 111
    assert same_patient_pairs(["201", "202"], ["201"]) == [("202", "201")]    # a shared record is no pair
    assert same_patient_pairs([], DS2) == []


def test_same_patient_pairs_agree_with_the_records_own_notes(mirror_mitdb):
    """The mirror's headers are the database's notes: a record "taken from the same analog tape as
    record N" carries N's age/sex line. Every such note is a pair of the helper, and no other."""
    names = (mirror_mitdb / "RECORDS").read_text().split()
    assert len(names) == 48
    comments = {n: wfdb.rdheader(str(mirror_mitdb / n)).comments for n in names}
    noted = set()
    for name, lines in comments.items():
        text = " ".join(lines)
        for other in re.findall(r"same analog tape as record (\d{3})", text):
            assert comments[other][0] == lines[0], (name, other)                # same age, sex, medication line
            noted |= {(other, name), (name, other)}
    assert noted == {("201", "202"), ("202", "201")}
    assert set(same_patient_pairs(names, names)) == noted


@pytest.mark.parametrize("profile", profiles.PROFILE_NAMES)
def test_ds2_identification_records_share_a_patient_with_pretraining_only_through_202(profile):
    """Chapter 06 identifies the first ``mitdb_ident_records`` DS2 records with encoders pre-trained on
    DS1; the page's sentence about unseen patients is built from this pair list."""
    used = DS2[: profiles.PROFILES[profile]["lead_agnostic_ssl"]["mitdb_ident_records"]]
    expected = [("201", "202")] if "202" in used else []
    assert same_patient_pairs(DS1, used) == expected
    assert profile == "smoke" or expected                                       # 202 is among the first 10


def test_inter_patient_beat_counts(db):
    # de Chazal et al., IEEE TBME 2004, Table III: DS1 N 45,866, S 944, V 3,788, F 415, Q 8;
    # DS2 N 44,259, S 1,837, V 3,221, F 388, Q 7. The annotation files give exactly these.
    def counts(names):
        return Counter(c for name in names for c in db.beats(name).aami.tolist())
    assert counts(DS1) == {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8}
    assert counts(DS2) == {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7}


def test_rhythms(db):
    assert db.rhythms("100") == [(18, 650000, "N")]
    intervals = db.rhythms("201")
    labels = [label for _, _, label in intervals]
    assert "AFIB" in labels and {"N", "NOD", "T", "SVTA"} <= set(labels)
    assert intervals[0] == (60, 136226, "AFIB")  # first '+' of 201.atr is "(AFIB" at sample 60
    assert intervals[-1][1] == 650000
    assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:]))  # contiguous
    assert all(a[2] != b[2] for a, b in zip(intervals, intervals[1:]))  # changes only
    assert not any("(" in label or "\x00" in label for label in labels)


def test_rhythm_counts(db):
    table = db.rhythm_counts(["100", "201", "203"])
    assert isinstance(table, pd.DataFrame) and list(table.index) == ["100", "201", "203"]
    assert table.loc["100", "N"] == pytest.approx((650000 - 18) / FS)
    assert table.loc["100"].drop("N").sum() == 0
    afib = sum(b - a for a, b, label in db.rhythms("201") if label == "AFIB") / FS
    assert table.loc["201", "AFIB"] == pytest.approx(afib)
    assert np.all(table.sum(axis=1) <= 650000 / FS)
    assert list(table.columns) == list(table.sum().sort_values(ascending=False).index)


def test_beat_segments(db):
    X, y, record, sample = db.beat_segments(["100", "114", "102"])
    n = sum(int(np.sum((db.beats(r).sample >= WINDOW[0]) & (db.beats(r).sample + WINDOW[1] <= 650000)))
            for r in ("100", "114", "102"))
    assert X.shape == (n, sum(WINDOW)) and X.dtype == np.float32
    assert y.shape == record.shape == sample.shape == (n,)
    assert set(y) <= set(AAMI_CLASSES) and set(record) == {"100", "114", "102"}
    assert 77 not in sample[record == "100"]  # first beat of 100 is too close to the start
    for name, channel in (("114", 1), ("102", 0)):  # MLII is the lower signal of 114; 102 falls back to V5
        i = np.flatnonzero(record == name)[5]
        s = sample[i]
        np.testing.assert_array_equal(X[i], db.read(name).signal[channel, s - WINDOW[0]:s + WINDOW[1]])
    with pytest.raises(RecordError, match="102.hea.*MLII"):
        db.beat_segments(["102"], fallback=None)


def test_beat_segments_options(db):
    X, y, record, sample = db.beat_segments(["100"], window_s=(0.1, 0.1), classes=("S", "V"))
    assert X.shape == (34, 72) and Counter(y.tolist()) == {"S": 33, "V": 1}
    with pytest.raises(ValueError, match="classes"):
        db.beat_segments(["100"], classes=("X",))
    with pytest.raises(ValueError, match="window_s"):
        db.beat_segments(["100"], window_s=(-0.1, 0.2))


def test_beat_segments_ds1(db):
    X, y, record, sample = db.beat_segments(DS1)
    counts = Counter(y.tolist())
    # beats whose window leaves a record are dropped: only a handful
    assert counts["S"] == 944 and counts["V"] == 3788 and 45800 < counts["N"] <= 45866
    assert X.shape == (len(y), 252) and set(record) == set(DS1)
    assert np.isfinite(X).all() and np.abs(X).max() < 6.0


def test_rhythm_segments(db):
    X, y, record, start = db.rhythm_segments(["201"], seconds=10.0)
    length = 3600
    assert X.shape == (len(y), length) and X.dtype == np.float32 and set(record) == {"201"}
    intervals = db.rhythms("201")
    assert len(y) == sum((b - a - length) // length + 1 for a, b, _ in intervals if b - a >= length)
    # every window lies inside one interval with that interval's label
    for s, label in zip(start, y):
        assert any(a <= s and s + length <= b and lab == label for a, b, lab in intervals)
    # the first AFIB interval, samples 60-136226, holds 136166 // 3600 = 37 windows
    assert start[0] == 60 and np.sum((y == "AFIB") & (start < 136226)) == 37
    np.testing.assert_array_equal(X[0], db.read("201").signal[0, 60:60 + length])
    X2, y2, _, start2 = db.rhythm_segments(["201"], seconds=10.0, stride=5.0, labels=["AFIB"])
    assert set(y2) == {"AFIB"} and len(y2) > np.sum(y == "AFIB")
    assert np.all(np.diff(start2[:5]) == 1800)
    X3, y3, r3, s3 = db.rhythm_segments(["201"], labels=["no such rhythm"])
    assert X3.shape == (0, length) and y3.shape == r3.shape == s3.shape == (0,)
    with pytest.raises(ValueError, match="positive"):
        db.rhythm_segments(["201"], seconds=0)


def test_unknown_record(db):
    with pytest.raises(KeyError, match="'999' is not in the MIT-BIH"):
        db.read("999")
    with pytest.raises(KeyError, match="'99'"):
        db.beats(99)


def test_truncated_signal_file(linked_copy, db):
    dat = linked_copy / "100.dat"
    dat.unlink()
    dat.write_bytes((db.root / "100.dat").read_bytes()[:100_000])
    # with the checksum list in the folder, the damaged file is caught when the reader opens it
    with pytest.raises(ChecksumError, match=r"100\.dat: SHA-256 differs"):
        MITBIH(linked_copy, download=False)
    (linked_copy / "SHA256SUMS.txt").unlink()  # a user's own copy without a list: files used unverified
    with pytest.warns(DataWarning, match="144 of 145 files .* unverified"):
        copy = MITBIH(linked_copy, download=False)
    with pytest.raises(RecordError, match=r"100\.dat: signal file truncated"):
        copy.read("100")
    assert copy.read("101").signal.shape == (2, 650000)  # the other records stay readable


def test_truncated_annotation_file(linked_copy, db):
    atr = linked_copy / "101.atr"
    atr.unlink()
    atr.write_bytes((db.root / "101.atr").read_bytes()[:1001])
    (linked_copy / "SHA256SUMS.txt").unlink()
    with pytest.warns(DataWarning):
        copy = MITBIH(linked_copy, download=False)
    with pytest.raises(RecordError, match=r"101\.atr: cannot read annotations"):
        copy.beats("101")


def test_existing_folder_is_read_without_download(mirror_mitdb):
    before = sorted(p.name for p in mirror_mitdb.iterdir())
    copy = MITBIH(mirror_mitdb, download=False)
    assert len(copy.records) == 48 and len(copy.beats("100")) == 2273
    assert sorted(p.name for p in mirror_mitdb.iterdir()) == before


def test_incomplete_folder_without_download(tmp_path, mirror_mitdb):
    with pytest.raises(FileNotFoundError, match="missing RECORDS"):
        MITBIH(tmp_path, download=False)
    (tmp_path / "RECORDS").write_bytes((mirror_mitdb / "RECORDS").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"missing 100\.hea, 100\.dat, 100\.atr.*and 139 more"):
        MITBIH(tmp_path, download=False)


def test_download_verifies_and_repairs(tmp_path, monkeypatch, mirror_mitdb):
    monkeypatch.setenv("ECGBOOK_DATA", str(tmp_path))
    root = download_mitdb(records=["100"])
    assert root == tmp_path / "mitdb" / "1.0.0"
    assert sorted(p.name for p in root.iterdir() if p.name != ".locks") == [
        "100.atr", "100.dat", "100.hea", "RECORDS", "SHA256SUMS.txt"]
    for name in ("100.atr", "100.dat", "100.hea", "RECORDS"):
        assert sha256sum(root / name) == sha256sum(mirror_mitdb / name)
    (root / "100.atr").write_bytes(b"damaged")
    download_mitdb(records=[100])  # a file whose checksum differs is fetched again
    assert sha256sum(root / "100.atr") == sha256sum(mirror_mitdb / "100.atr")


def test_missing_files_are_downloaded(linked_copy, mirror_mitdb):
    (linked_copy / "100.atr").unlink()
    copy = MITBIH(linked_copy)  # download=True fetches only what is missing, checksum-verified
    assert sha256sum(linked_copy / "100.atr") == sha256sum(mirror_mitdb / "100.atr")
    assert not (linked_copy / "100.atr").is_symlink() and len(copy.beats("100")) == 2273
