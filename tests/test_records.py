"""read_record on real files and on damaged copies of them."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from ecgbook.data.records import STANDARD_LEADS, RecordError, canonical_lead, read_record


@pytest.fixture()
def ptbxl_record(mirror):
    return mirror / "physionet.org/files/ptb-xl/1.0.3/records100/00000/00001_lr"


@pytest.fixture()
def copy(tmp_path, ptbxl_record):
    for ext in (".hea", ".dat"):
        shutil.copy(ptbxl_record.with_suffix(ext), tmp_path / f"00001_lr{ext}")
    return tmp_path / "00001_lr"


def test_reads_real_record_in_mv(ptbxl_record):
    rec = read_record(ptbxl_record, expected_fs=100)
    assert rec.signal.shape == (12, 1000) and rec.signal.dtype == np.float32
    assert rec.leads == list(STANDARD_LEADS)  # AVR in the header becomes aVR
    assert rec.fs == 100 and rec.duration == 10
    # first sample of lead I: header gives baseline 0, gain 1000/mV, first value -119 -> -0.119 mV
    assert rec.signal[0, 0] == pytest.approx(-0.119, abs=1e-6)
    assert np.abs(rec.signal).max() < 10  # plausible mV range


def test_lead_selection_and_missing_lead(ptbxl_record):
    rec = read_record(ptbxl_record, leads=["II", "V1"])
    assert rec.leads == ["II", "V1"] and rec.signal.shape == (2, 1000)
    with pytest.raises(RecordError, match=r"lead\(s\) \['MLII'\] missing"):
        read_record(ptbxl_record, leads=["MLII"])


def test_wrong_sampling_frequency(ptbxl_record):
    with pytest.raises(RecordError, match="sampling frequency is 100 Hz, expected 500 Hz"):
        read_record(ptbxl_record, expected_fs=500)


def test_truncated_signal(copy):
    dat = copy.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:-2400])
    with pytest.raises(RecordError, match=r"00001_lr.dat: signal file truncated .* holds 21600 bytes"):
        read_record(copy)


def test_header_disagrees_with_signal(copy):
    hea = copy.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("00001_lr 12 100 1000", "00001_lr 12 100 1200", 1))
    with pytest.raises(RecordError, match="00001_lr.hea"):
        read_record(copy)


def test_unknown_lead_name(copy):
    hea = copy.with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" V6\n", " V7x\n"))
    with pytest.raises(RecordError, match="unknown lead name 'V7x'"):
        read_record(copy)


def test_nan_in_signal(copy):
    # WFDB format 16 stores -32768 as the 'no value' sample, which wfdb returns as NaN
    dat = copy.with_suffix(".dat")
    raw = np.frombuffer(dat.read_bytes(), dtype="<i2").copy()
    raw[12 * 10 + 3] = -32768  # lead aVR, sample 10
    dat.write_bytes(raw.tobytes())
    with pytest.raises(RecordError, match=r"NaN in lead\(s\) \['aVR'\]"):
        read_record(copy)


def test_missing_header(tmp_path):
    with pytest.raises(RecordError, match="header file not found"):
        read_record(tmp_path / "nothing")


def test_canonical_lead():
    assert canonical_lead("AVL") == "aVL" and canonical_lead("mlii") == "MLII"
