"""The mixed-lead pre-training corpus: 10-s pairs of adjacent 5-s segments from PTB-XL (folds 1-8),
CinC 2017 and MIT-BIH DS1, with the ids that define CMSC's positives.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import config
from ..data.cinc2017 import CinC2017
from ..data.mitdb import DS1, MITBIH, record_to_patient
from ..data.ptbxl import PTBXL
from ..data.records import STANDARD_LEADS
from ..signal import resample
from .objectives import FS, PAIR, zero_fill

# ----------------------------------------------------------------------------------------------
# Mixed-lead corpus
# ----------------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Pre-training pairs at 100 Hz in the 12-lead layout.

    ``X`` ``(pairs, 12, 1000)`` float32 mV (absent leads zero); ``recording`` and ``patient``
    ``(pairs,)`` string ids (``"ptbxl:17"``, ``"cinc2017:A00001"``, ``"mitdb:201"``); ``source``
    ``(pairs,)`` dataset name; ``leads`` per source: the leads present.
    """

    X: np.ndarray
    recording: np.ndarray
    patient: np.ndarray
    source: np.ndarray
    leads: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)

    def ids(self, kind: str = "recording") -> np.ndarray:
        """``(pairs,)`` int64 codes of ``recording`` or ``patient`` ids (for CMSC positives)."""
        if kind not in ("recording", "patient"):
            raise ValueError(f"ids kind must be 'recording' or 'patient', not {kind!r}")
        values = self.recording if kind == "recording" else self.patient
        return pd.factorize(values)[0].astype(np.int64)

    def subset(self, keep) -> "Corpus":
        keep = np.asarray(keep)
        return Corpus(np.asarray(self.X[keep]), self.recording[keep], self.patient[keep], self.source[keep], self.leads)

    def summary(self) -> pd.DataFrame:
        """Pairs, recordings, patients and leads per source."""
        df = pd.DataFrame({"source": self.source, "recording": self.recording, "patient": self.patient})
        out = df.groupby("source").agg(pairs=("recording", "size"), recordings=("recording", "nunique"),
                                       patients=("patient", "nunique"))
        out["leads"] = [", ".join(self.leads.get(s, [])) for s in out.index]
        out["hours"] = out["pairs"] * PAIR / FS / 3600
        return out


def pairs_of(signal: np.ndarray, max_pairs: int | None = None) -> np.ndarray:
    """Cut ``(leads, samples)`` at 100 Hz into 10-s windows ``(n, leads, 1000)`` (non-overlapping;
    with ``max_pairs``, that many windows evenly spread over the recording)."""
    n = signal.shape[-1] // PAIR
    if n == 0:
        return np.zeros((0, signal.shape[0], PAIR), np.float32)
    starts = np.arange(n) * PAIR
    if max_pairs is not None and n > max_pairs:
        starts = np.linspace(0, signal.shape[-1] - PAIR, max_pairs).astype(int)
    return np.stack([signal[:, s:s + PAIR] for s in starts]).astype(np.float32)


def _ptbxl_arrays(X, ecg_id, patient_id):
    X = np.asarray(X, np.float32)
    if X.ndim != 3 or X.shape[1:] != (len(STANDARD_LEADS), PAIR) or len(ecg_id) != len(X) \
            or len(patient_id) != len(X):
        raise ValueError(f"build_corpus: ptbxl_data must be (X (records, 12, {PAIR}) mV at {FS} Hz, ecg_id (records,), "
                         f"patient_id (records,)); got X {X.shape}, {len(ecg_id)} ecg_id, {len(patient_id)} patient_id")
    return (X, np.array([f"ptbxl:{int(i)}" for i in ecg_id]), np.array([f"ptbxl:{int(p)}" for p in patient_id]),
            list(STANDARD_LEADS))


def _ptbxl_part(max_records):
    db = PTBXL(fs=FS, max_records=max_records)
    task = db.task("all")
    train = task.split("train")           # folds 1-8 only: 9 and 10 never enter pre-training
    return (*_ptbxl_arrays(task.X[train], task.ecg_id[train], task.patient_id[train]), task.manifest_hash)


def _cinc_part(max_records, max_pairs_per_record):
    db = CinC2017()
    names = db.records[:max_records] if max_records else db.records
    X, rec = [], []
    for name in tqdm(names, desc="CinC 2017 pairs", disable=not config.progress_enabled()):
        sig = resample(db.read(name).signal, 300.0, FS)
        pairs = pairs_of(zero_fill(sig, ["I"]), max_pairs_per_record)
        X.append(pairs)
        rec += [f"cinc2017:{name}"] * len(pairs)
    rec = np.array(rec)
    # patient identities are not published: each recording is its own identity (stated on the page)
    return np.concatenate(X), rec, rec.copy(), ["I (handheld, lead-I-like)"], f"{len(names)} records"


def _mitdb_part(max_pairs_per_record):
    db = MITBIH()
    X, rec, pat, present = [], [], [], set()
    for name in DS1:                       # DS2 stays out of pre-training: it is evaluated on
        r = db.read(name)
        slots = {"MLII": "II"}
        keep = [i for i, l in enumerate(r.leads) if slots.get(l, l) in STANDARD_LEADS]
        leads = [slots.get(r.leads[i], r.leads[i]) for i in keep]
        present.update(r.leads[i] for i in keep)
        sig = resample(r.signal[keep], 360.0, FS)
        pairs = pairs_of(zero_fill(sig, leads), max_pairs_per_record)
        X.append(pairs)
        rec += [f"mitdb:{name}"] * len(pairs)
        pat += [f"mitdb:{record_to_patient(name)}"] * len(pairs)
    return np.concatenate(X), np.array(rec), np.array(pat), sorted(present) + ["(MLII placed as II)"], "DS1"


def build_corpus(sources=("ptbxl", "cinc2017", "mitdb"), *, ptbxl_records: int | None = None,
                 cinc_records: int | None = None, cinc_pairs_per_record: int | None = None,
                 mitdb_pairs_per_record: int | None = None, cache: bool = True,
                 ptbxl_data: tuple | None = None) -> Corpus:
    """The mixed-lead pre-training corpus, cached in ``<data>/cache/lassl-corpus-<hash>/``.

    ``ptbxl``: folds 1-8 of the PTB-XL records present (12 leads, one pair per 10-s record);
    ``cinc2017``: PhysioNet/CinC Challenge 2017 (one handheld lead placed as lead I, 300 → 100 Hz,
    consecutive 10-s windows); ``mitdb``: MIT-BIH DS1 records only (two leads at their place,
    ``MLII`` as II, 360 → 100 Hz). The ``*_records`` / ``*_pairs_per_record`` caps make smaller
    corpora. Under DDP call it inside :func:`ecgbook.distributed.main_first`. The cache is written
    atomically (``.part`` files renamed).

    ``ptbxl_data``: the PTB-XL part given explicitly instead of folds 1-8 of ``ptbxl_records``, as
    ``(X (records, 12, 1000) mV at 100 Hz, ecg_id (records,), patient_id (records,))`` (e.g. the
    pre-training folds 1-6 of :class:`ecgbook.comparison.ComparisonData`); then only the other
    sources are cached and the PTB-XL pairs are put first, as with ``ptbxl_records``.

    Raises ``ValueError`` for an unknown source, for ``ptbxl_data`` of the wrong shapes, or given
    together with ``ptbxl_records`` or without ``"ptbxl"`` in ``sources``.
    """
    unknown = set(sources) - {"ptbxl", "cinc2017", "mitdb"}
    if unknown:
        raise ValueError(f"unknown corpus source(s) {sorted(unknown)}")
    if ptbxl_data is not None:
        if "ptbxl" not in sources or ptbxl_records is not None:
            raise ValueError("build_corpus: ptbxl_data replaces ptbxl_records and needs 'ptbxl' in sources")
        X, rec, pat, lead_names = _ptbxl_arrays(*ptbxl_data)
        parts = [Corpus(X, rec, pat, np.array(["PTB-XL"] * len(X)), {"PTB-XL": lead_names})]
        others = tuple(s for s in sources if s != "ptbxl")
        if others:
            parts.append(build_corpus(others, cinc_records=cinc_records, cinc_pairs_per_record=cinc_pairs_per_record,
                                      mitdb_pairs_per_record=mitdb_pairs_per_record, cache=cache))
        return Corpus(np.concatenate([np.asarray(p.X) for p in parts]), np.concatenate([p.recording for p in parts]),
                      np.concatenate([p.patient for p in parts]), np.concatenate([p.source for p in parts]),
                      {k: v for p in parts for k, v in p.leads.items()})
    key = json.dumps([sorted(sources), ptbxl_records, cinc_records, cinc_pairs_per_record, mitdb_pairs_per_record, 1])
    folder = config.data_dir() / "cache" / f"lassl-corpus-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if cache and (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        X = np.load(folder / "X.npy", mmap_mode="r")
        return Corpus(X, np.array(meta["recording"]), np.array(meta["patient"]), np.array(meta["source"]), meta["leads"])
    parts, leads, provenance = [], {}, {}
    if "ptbxl" in sources:
        X, rec, pat, l, h = _ptbxl_part(ptbxl_records)
        parts.append((X, rec, pat, "PTB-XL")); leads["PTB-XL"] = l; provenance["PTB-XL"] = h
    if "cinc2017" in sources:
        X, rec, pat, l, h = _cinc_part(cinc_records, cinc_pairs_per_record)
        parts.append((X, rec, pat, "CinC 2017")); leads["CinC 2017"] = l; provenance["CinC 2017"] = h
    if "mitdb" in sources:
        X, rec, pat, l, h = _mitdb_part(mitdb_pairs_per_record)
        parts.append((X, rec, pat, "MIT-BIH DS1")); leads["MIT-BIH DS1"] = l; provenance["MIT-BIH DS1"] = h
    X = np.concatenate([p[0] for p in parts]).astype(np.float32)
    corpus = Corpus(X, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                    np.concatenate([[p[3]] * len(p[0]) for p in parts]), leads)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "X.npy.part"
        with open(tmp, "wb") as f:
            np.save(f, X)
        os.replace(tmp, folder / "X.npy")
        meta = {"recording": corpus.recording.tolist(), "patient": corpus.patient.tolist(),
                "source": corpus.source.tolist(), "leads": leads, "provenance": provenance}
        (folder / "meta.json.part").write_text(json.dumps(meta))
        os.replace(folder / "meta.json.part", folder / "meta.json")
    return corpus
