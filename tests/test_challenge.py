"""Challenge 2020/2021 reader and scoring tables, on the real sample records and the mirrored tables."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgbook import config
from ecgbook.data import challenge as C
from ecgbook.data.download import ChecksumError
from ecgbook.data.records import STANDARD_LEADS, RecordError
from ecgbook.metrics import challenge_score

SOURCES = {"cpsc_2018", "cpsc_2018_extra", "georgia", "ptb-xl", "ptb", "chapman_shaoxing_ningbo"}


@pytest.fixture(scope="module")
def tables(mirror):
    return {year: C.load_scoring_tables(year) for year in (2020, 2021)}


@pytest.fixture(scope="module")
def folder(challenge_samples, tables):
    return C.read_challenge_folder(challenge_samples, tables[2021])


def _header_dx(path: Path) -> list[int]:
    """The #Dx line read directly from the text, as an independent check of the parser."""
    line = next(l for l in path.read_text().splitlines() if l.startswith("#Dx"))
    return [int(c) for c in line.split(":", 1)[1].split(",")]


# --------------------------------------------------------------------------- headers


def test_parse_header_fields():
    out = C.parse_header_fields(["Age: 74", "Sex: Male", "Dx: 59118001,164889003,59118001", "Rx: Unknown"])
    assert out == {"age": 74.0, "sex": "Male", "dx": [59118001, 164889003]}
    out = C.parse_header_fields(["#Age: NaN", "#Sex: Unknown", "#Dx: 426783006"])
    assert out["age"] is None and out["sex"] is None
    assert C.parse_header_fields(["Age: Unknown", "Sex: F", "Dx: 426783006"])["sex"] == "Female"


@pytest.mark.parametrize("comments, match", [
    (["Age: 50", "Sex: Male"], "no '#Dx'"),
    (["Dx: 59118001,abc"], "malformed SNOMED CT code 'abc'"),
    (["Dx: "], "malformed"),
    (["Age: old", "Dx: 426783006"], "age 'old'"),
    (["Sex: X", "Dx: 426783006"], "sex 'X'"),
])
def test_parse_header_fields_errors_name_the_file(comments, match):
    with pytest.raises(C.ChallengeFormatError, match=f"E99.hea: .*{match}"):
        C.parse_header_fields(comments, "E99.hea")


# --------------------------------------------------------------------------- records


def test_list_records_finds_every_header(challenge_samples):
    found = C.list_records(challenge_samples)
    on_disk = [Path(root) / f for root, _, files in os.walk(challenge_samples) for f in files if f.endswith(".hea")]
    assert len(found) == len(on_disk) >= 60
    assert found == sorted(found)
    assert {p.parent.name for p in found} == SOURCES
    with pytest.raises(FileNotFoundError):
        C.list_records(challenge_samples / "no-such-folder")


def test_read_every_sample_record(folder, challenge_samples):
    headers = C.list_records(challenge_samples)
    assert len(folder) == len(headers)
    assert folder.leads == list(STANDARD_LEADS)
    assert set(folder.sources) == SOURCES
    for path, signal, fs, dx, source in zip(folder.paths, folder.signals, folder.fs, folder.dx, folder.sources):
        first = path.with_suffix(".hea").read_text().split("\n", 1)[0].split()
        assert fs == (1000.0 if source == "ptb" else 500.0) == float(first[2])
        assert signal.shape == (12, int(first[3])) and signal.dtype == np.float32
        assert dx == _header_dx(path.with_suffix(".hea")) and dx
        assert 0.01 < np.abs(signal).max() < 30  # plausible mV
    assert folder.labels.shape == (len(headers), 26) and folder.labels.dtype == bool


def test_read_challenge_record_meta(challenge_samples):
    record, meta = C.read_challenge_record(challenge_samples / "cpsc_2018" / "A0001.hea")
    assert (meta.name, meta.age, meta.sex, meta.dx, meta.source) == ("A0001", 74.0, "Male", [59118001], "cpsc_2018")
    assert record.signal.shape == (12, 7500) and record.fs == 500
    _, meta = C.read_challenge_record(challenge_samples / "georgia" / "E00001")
    assert meta.age is None  # "#Age: NaN"


def _copy_record(src: Path, dest: Path, edit=None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    text = src.with_suffix(".hea").read_text()
    (dest / src.with_suffix(".hea").name).write_text(edit(text) if edit else text)
    shutil.copy(src.with_suffix(".mat"), dest)
    return dest / src.with_suffix(".hea").name


def test_bad_records_raise_errors_naming_the_file(challenge_samples, tmp_path):
    src = challenge_samples / "cpsc_2018" / "A0001"
    no_dx = _copy_record(src, tmp_path / "nodx", lambda t: t.replace("#Dx: 59118001\n", ""))
    with pytest.raises(C.ChallengeFormatError, match=r"nodx/A0001\.hea: no '#Dx'"):
        C.read_challenge_record(no_dx)
    bad_code = _copy_record(src, tmp_path / "badcode", lambda t: t.replace("#Dx: 59118001", "#Dx: 59118001,RBBB"))
    with pytest.raises(C.ChallengeFormatError, match=r"badcode/A0001\.hea: malformed SNOMED CT code 'RBBB'"):
        C.read_challenge_record(bad_code)
    no_mat = _copy_record(src, tmp_path / "nomat")
    no_mat.with_suffix(".mat").unlink()
    with pytest.raises(RecordError, match=r"nomat/A0001\.hea: signal file .*nomat/A0001\.mat is missing"):
        C.read_challenge_record(no_mat)
    with pytest.raises(RecordError, match="nomat/A0001.hea"):  # the folder reader stops on it too
        C.read_challenge_folder(tmp_path / "nomat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Challenge records"):
        C.read_challenge_folder(tmp_path / "empty")


def test_folder_resampled_to_fixed_length(challenge_samples):
    data = C.read_challenge_folder(challenge_samples / "ptb", fs=500, seconds=10)
    assert data.labels is None and list(data.fs) == [500.0, 500.0]
    assert data.array().shape == (2, 12, 5000)
    original, _ = C.read_challenge_record(challenge_samples / "ptb" / data.names[0])
    # the resampled signal follows the original (every second sample, away from the edges)
    np.testing.assert_allclose(data.signals[0][:, 100:4900], original.signal[:, 200:9800:2], atol=0.05)
    ragged = C.read_challenge_folder(challenge_samples / "cpsc_2018")
    with pytest.raises(ValueError, match="seconds="):
        ragged.array()


# --------------------------------------------------------------------------- scoring tables


def test_scoring_tables_2020(tables):
    t = tables[2020]
    merged = [c for c in t.classes if "|" in c]
    assert merged == ["713427006|59118001", "284470004|63593006", "427172004|17338001"]
    assert len(t.classes) == 24 and t.weights.shape == (24, 24)
    assert np.allclose(t.weights, t.weights.T) and np.all(np.diag(t.weights) == 1)
    assert t.classes[t.normal_index] == "426783006" and t.normal_class == "426783006"
    assert t.abbreviations[t.classes.index("713427006|59118001")] == "CRBBB|RBBB"
    assert (config.data_dir() / "challenge-scoring" / "2020" / "weights.csv").is_file()


def test_scoring_tables_2021(tables):
    t = tables[2021]
    assert len(t.classes) == 26 and t.weights.shape == (26, 26)
    assert [c for c in t.classes if "|" in c] == [
        "733534002|164909002", "713427006|59118001", "284470004|63593006", "427172004|17338001"]
    abbreviation = dict(zip(t.scored["code"], t.scored["abbreviation"]))
    derived = ["|".join(abbreviation[int(c)] for c in label.split("|")) for label in t.classes]
    assert t.abbreviations == derived
    assert set(t.scored["code"]) == set(t.code_to_class)  # every scored code maps to a class
    with pytest.raises(ValueError, match="2019"):
        C.load_scoring_tables(2019)


def test_tampered_mirror_copy_fails_checksum(mirror, tmp_path, monkeypatch):
    base, sums = C.SCORING_FILES[2020]
    rel = base.split("https://", 1)[1]
    fake = tmp_path / "mirror" / rel
    fake.mkdir(parents=True)
    for name in sums:
        shutil.copy(mirror / rel / name, fake / name)
    monkeypatch.setenv("ECGBOOK_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ECGBOOK_DATA", str(tmp_path / "data"))
    assert len(C.load_scoring_tables(2020).classes) == 24  # intact copies load
    shutil.rmtree(tmp_path / "data")
    with open(fake / "weights.csv", "a") as fh:
        fh.write("\n")
    with pytest.raises(ChecksumError, match="weights.csv"):
        C.load_scoring_tables(2020)
    assert not (config.data_dir() / "challenge-scoring" / "2020" / "weights.csv").exists()


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("year", [2020, 2021])
def test_equivalent_codes_map_to_one_class(tables, year):
    t = tables[year]
    for a, b in [(713427006, 59118001), (284470004, 63593006), (427172004, 17338001)]:
        hot_a, hot_b = C.labels_to_multihot([a], t), C.labels_to_multihot([str(b)], t)
        assert hot_a.sum() == 1 and np.array_equal(hot_a, hot_b)
        assert t.classes[int(np.flatnonzero(hot_a)[0])] == f"{a}|{b}"
    clbbb = C.labels_to_multihot([733534002], t)
    assert clbbb.sum() == (1 if year == 2021 else 0)  # merged with LBBB in 2021, unscored in 2020
    with pytest.raises(ValueError, match="SNOMED"):
        C.labels_to_multihot(["RBBB"], t)


def test_sample_label_mapping(folder, tables):
    t = tables[2021]
    index = folder.names.index("A0001")  # Dx 59118001 (RBBB)
    assert [t.classes[k] for k in np.flatnonzero(folder.labels[index])] == ["713427006|59118001"]
    # a record with 17338001 (VPB) among its codes is labelled PVC|VPB
    vpb = [i for i, dx in enumerate(folder.dx) if 17338001 in dx]
    assert vpb and all(folder.labels[i, t.classes.index("427172004|17338001")] for i in vpb)
    for dx, row in zip(folder.dx, folder.labels):
        assert np.array_equal(row, C.labels_to_multihot(dx, t))
        split = C.unmapped_codes(dx, t)
        assert row.sum() + len(split["unscored"]) + len(split["unknown"]) >= 1
        assert not set(split["unscored"]) & set(t.code_to_class)


def test_unmapped_codes(tables):
    t = tables[2021]
    # 164884008 (ventricular ectopics) is listed as unscored; 123456789 is in neither mapping
    out = C.unmapped_codes([59118001, 164884008, 123456789], t)
    assert out == {"unscored": [164884008], "unknown": [123456789]}


def test_cpsc2018_labels(challenge_samples):
    data = C.read_challenge_folder(challenge_samples / "cpsc_2018")
    hot = np.stack([C.cpsc2018_labels(dx) for dx in data.dx])
    assert hot.shape == (len(data), 9) and hot.any(axis=1).all()
    assert list(C.CPSC2018_CLASSES)[int(np.flatnonzero(hot[data.names.index("A0001")])[0])] == "RBBB"
    assert np.array_equal(C.cpsc2018_labels([713427006]), C.cpsc2018_labels([59118001]))
    assert C.cpsc2018_labels([164884008, 429622005]).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert not C.cpsc2018_labels([251146004]).any()


# --------------------------------------------------------------------------- official challenge score


@pytest.mark.parametrize("year", [2020, 2021])
def test_challenge_score_with_official_weights(folder, challenge_samples, tables, year):
    t = tables[year]
    y_true = np.stack([C.labels_to_multihot(dx, t) for dx in folder.dx])
    assert y_true[:, t.normal_index].mean() < 0.9  # not all sinus rhythm: the score is defined
    inactive = np.zeros_like(y_true)
    inactive[:, t.normal_index] = True
    assert challenge_score(y_true, y_true, t.weights, t.classes, t.normal_class) == pytest.approx(1.0)
    assert challenge_score(y_true, inactive, t.weights, t.classes, t.normal_class) == pytest.approx(0.0)
    nothing = challenge_score(y_true, np.zeros_like(y_true), t.weights, t.classes)
    assert nothing < 0  # predicting no class is worse than always predicting sinus rhythm


def test_read_cpsc2018_samples(challenge_samples):
    from ecgbook.data.challenge import CPSC2018_CLASSES, read_cpsc2018

    X, Y, names = read_cpsc2018(challenge_samples / "cpsc_2018", fs=100, seconds=10)
    assert X.shape == (len(names), 12, 1000) and X.dtype == np.float32
    assert Y.shape == (len(names), 9) and set(np.unique(Y)) <= {0, 1}
    assert len(names) == 10 and Y.sum(1).min() >= 1
    assert list(CPSC2018_CLASSES)[0] == "Normal"
    # A0002's header: #Dx 426783006 (normal sinus rhythm) -> the Normal class only
    assert Y[names.index("A0002")].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]
