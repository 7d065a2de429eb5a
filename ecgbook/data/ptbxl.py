"""PTB-XL 1.0.3 (Wagner et al., Sci Data 2020; PhysioNet 2022) with the PTB-XL benchmark's label sets.

The six tasks are built exactly as the benchmark defines them (Strodthoff et al., "Deep learning
for ECG analysis: benchmarks and insights from PTB-XL", IEEE JBHI 2021, and its code
``utils.compute_label_aggregations`` / ``select_data``):

=================  ==========================================================  ==============
task               labels of a record                                          classes (full)
=================  ==========================================================  ==============
``all``            every SCP statement of ``scp_codes``                        71
``diagnostic``     statements with ``diagnostic == 1``                         44
``subdiagnostic``  their ``diagnostic_subclass``                               23
``superdiagnostic`` their ``diagnostic_class`` (NORM, MI, STTC, CD, HYP)       5
``form``           statements with ``form == 1``                               19
``rhythm``         statements with ``rhythm == 1``                             12
=================  ==========================================================  ==============

Every statement key counts, whatever its likelihood (as in the benchmark code). The class list of
a task is taken from the full metadata (all 21,799 records), so a subset of records yields the same
classes as the full benchmark; records without any label in a task are dropped from that task.
Splits follow ``strat_fold``: folds 1–8 train, 9 validation, 10 test.
"""
from __future__ import annotations

import ast
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from .cache import cached_signals
from .download import DataWarning, ensure_physionet, file_provenance
from .records import STANDARD_LEADS, RecordError, read_record

log = logging.getLogger(__name__)

DATABASE, VERSION = "ptb-xl", "1.0.3"
TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
SPLITS = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}
#: Records and samples per record at each sampling frequency (10 s).
FREQUENCIES = {100: ("filename_lr", 1000), 500: ("filename_hr", 5000)}


@dataclass
class PTBXLTask:
    """One PTB-XL task's data (records present locally that carry at least one label of the task).

    Attributes
    ----------
    X: ``(records, 12, samples)`` float32 mV (read-only memory map of the cache); samples = 10 s × fs.
    Y: ``(records, classes)`` uint8 multi-hot labels.
    classes: class names (SCP statements or diagnostic (sub)classes), sorted as the benchmark does.
    ecg_id, patient_id, strat_fold: ``(records,)`` arrays aligned with ``X``.
    fs: sampling frequency (Hz). leads: lead names. task: task name.
    manifest_hash: content hash of the records used (for results provenance).
    provenance: ``{"manifest_hash", "records", "files", "verified", "unverified", "missing",
        "checksum_list"}`` of the records used (see :func:`ecgbook.data.download.file_provenance`);
        pass it as the dataset entry of :func:`ecgbook.results.write_results`.
    """

    X: np.ndarray
    Y: np.ndarray
    classes: list[str]
    ecg_id: np.ndarray
    patient_id: np.ndarray
    strat_fold: np.ndarray
    fs: int
    leads: list[str]
    task: str
    manifest_hash: str
    provenance: dict = field(default_factory=dict)

    def split(self, name: str) -> np.ndarray:
        """Indices of the ``train`` (folds 1–8), ``val`` (9) or ``test`` (10) records."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        return np.flatnonzero(np.isin(self.strat_fold, SPLITS[name]))

    def subset(self, index: np.ndarray) -> "PTBXLTask":
        """A copy restricted to ``index`` (signals are loaded into memory)."""
        return PTBXLTask(np.asarray(self.X[index]), self.Y[index], self.classes, self.ecg_id[index],
                         self.patient_id[index], self.strat_fold[index], self.fs, self.leads, self.task,
                         self.manifest_hash, dict(self.provenance))


def parse_scp_codes(text: str) -> dict:
    """Parse one ``scp_codes`` cell (``"{'NORM': 100.0, 'SR': 0.0}"``) into ``{statement: likelihood}``.

    The cells are Python dict literals with single-quoted keys; they are read as JSON after
    swapping the quotes (4x faster than :func:`ast.literal_eval`, which is the fallback for any
    cell that is not plain JSON then; the results are identical on all 21,799 rows of 1.0.3).
    """
    try:
        value = json.loads(text.replace("'", '"'))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        value = ast.literal_eval(text)
    return value


def statement_maps(statements: pd.DataFrame) -> dict:
    """Lookup tables of ``scp_statements.csv`` used by :func:`task_labels`.

    ``{"known": set, "diagnostic": set, "form": set, "rhythm": set, "subdiagnostic": {stmt: subclass},
    "superdiagnostic": {stmt: class}}``.
    """
    maps = {"known": set(statements.index)}
    for kind in ("diagnostic", "form", "rhythm"):
        maps[kind] = set(statements.index[statements[kind] == 1.0])
    for task, column in (("subdiagnostic", "diagnostic_subclass"), ("superdiagnostic", "diagnostic_class")):
        col = statements[column]
        maps[task] = {k: str(v) for k, v in col.items() if k in maps["diagnostic"] and pd.notna(v)}
    return maps


def task_labels(scp_codes: dict, task: str, statements: pd.DataFrame | dict) -> list[str]:
    """The labels of one record in one task, from its ``scp_codes`` dict (statement → likelihood).

    ``statements`` is ``scp_statements.csv`` or its :func:`statement_maps`. Follows
    ``compute_label_aggregations`` of the PTB-XL benchmark code; raises ``ValueError`` for an
    unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"unknown PTB-XL task {task!r}; expected one of {TASKS}")
    maps = statements if isinstance(statements, dict) else statement_maps(statements)
    keys = [k for k in scp_codes if k in maps["known"]]
    if task == "all":
        return sorted(set(keys))
    if task in ("diagnostic", "form", "rhythm"):
        return sorted({k for k in keys if k in maps[task]})
    return sorted({maps[task][k] for k in keys if k in maps[task]})


class PTBXL:
    """PTB-XL 1.0.3: metadata, SCP statements, label tasks and signals of the records present.

    Parameters
    ----------
    root:
        Dataset folder. Default ``<data dir>/ptb-xl/1.0.3``. A user with PTB-XL already on disk
        passes its folder and ``download=False``.
    download:
        Fetch the metadata and the records from PhysioNet (or ``$ECGBOOK_MIRROR``), verified against
        the source's (pinned) ``SHA256SUMS.txt``; files already present are verified too and fetched
        again when damaged. Records the source does not have are counted, not fatal. With
        ``download=False`` local files are verified against a trusted local ``SHA256SUMS.txt`` when
        there is one (a damaged file raises), and are otherwise used as unverified.
    fs:
        100 or 500 (Hz): ``records100`` (1000 samples) or ``records500`` (5000 samples).
    max_records:
        Use only the first ``max_records`` records (by ``ecg_id``) of those requested (smoke runs).

    Attributes
    ----------
    meta: ``ptbxl_database.csv`` indexed by ``ecg_id`` (all 21,799 rows), ``scp_codes`` parsed to dicts.
    statements: ``scp_statements.csv`` indexed by SCP statement.
    available: ``ecg_id`` of the records whose signal files are present (sorted).
    missing: ``ecg_id`` of listed records absent locally.
    unverified: ``ecg_id`` of available records with a file no trusted checksum list names.

    A :class:`~ecgbook.data.download.DataWarning` says how many requested records are missing
    and how many are unverified.

    Raises
    ------
    FileNotFoundError
        ``download=False`` and the metadata files are not in ``root``.
    ChecksumError
        A local file is damaged and ``download=False`` (the message names it).
    ValueError
        ``fs`` is not 100 or 500.
    """

    def __init__(self, root: str | Path | None = None, *, download: bool = True, fs: int = 100,
                 max_records: int | None = None):
        if fs not in FREQUENCIES:
            raise ValueError(f"PTB-XL sampling frequency must be 100 or 500 Hz, not {fs}")
        self.root = Path(root) if root else config.data_dir() / DATABASE / VERSION
        self.fs = fs
        column, self.samples = FREQUENCIES[fs]
        meta_files = ["ptbxl_database.csv", "scp_statements.csv"]
        if download:
            ensure_physionet(DATABASE, VERSION, meta_files, self.root)
        for name in meta_files:
            if not (self.root / name).is_file():
                raise FileNotFoundError(f"{self.root / name}: PTB-XL metadata not found (download=True fetches it)")
        if not download:
            ensure_physionet(DATABASE, VERSION, meta_files, self.root, download=False, missing_ok=True)
        self.meta = pd.read_csv(self.root / "ptbxl_database.csv", index_col="ecg_id")
        self.meta["scp_codes"] = self.meta["scp_codes"].apply(parse_scp_codes)
        self.statements = pd.read_csv(self.root / "scp_statements.csv", index_col=0)
        self._maps = statement_maps(self.statements)
        wanted = self.meta.index if max_records is None else self.meta.index[:max(0, max_records)]
        self._files = dict(zip(self.meta.index.astype(int), self.meta[column]))
        rels = [f"{self._files[i]}{ext}" for i in wanted for ext in (".hea", ".dat")]
        found = ensure_physionet(DATABASE, VERSION, rels, self.root, download=download, missing_ok=True)
        self.checksum_list = found.checksum_list
        absent, unverified = set(found.missing), set(found.unverified)
        present, flagged = [], []
        for i in wanted:
            files = [f"{self._files[i]}{ext}" for ext in (".hea", ".dat")]
            if any(f in absent for f in files):
                continue
            present.append(int(i))
            if any(f in unverified for f in files):
                flagged.append(int(i))
        self.available = np.array(present, dtype=int)
        self.missing = np.array(sorted(set(self.meta.index) - set(present)), dtype=int)
        self.unverified = np.array(flagged, dtype=int)
        self.requested = len(wanted)
        lacking = self.requested - len(present)
        if lacking or flagged:
            parts = []
            if lacking:
                parts.append(f"{lacking:,} of {self.requested:,} requested records are missing "
                             f"({'not at the source' if download else 'not in ' + str(self.root)}) and left out")
            if flagged:
                parts.append(f"{len(flagged):,} records have files that no trusted checksum list names and are "
                             f"used unverified (e.g. ecg_id {flagged[0]})")
            warnings.warn(f"PTB-XL {VERSION} at {fs} Hz in {self.root}: " + "; ".join(parts)
                          + f"; {len(present):,} records available", DataWarning, stacklevel=2)

    def summary(self) -> str:
        """One line: how many listed records are present, missing and unverified."""
        text = (f"PTB-XL {VERSION} at {self.fs} Hz: {len(self.available):,} of {len(self.meta):,} records present, "
                f"{len(self.missing):,} missing")
        if len(self.unverified):
            text += f", {len(self.unverified):,} unverified"
        return text

    def record_path(self, ecg_id: int) -> Path:
        """Path (without extension) of a record at this sampling frequency."""
        return self.root / self._files[int(ecg_id)]

    def read(self, ecg_id: int):
        """Read one record as a :class:`~ecgbook.data.records.Record` (12 leads, mV)."""
        return read_record(self.record_path(ecg_id), expected_fs=self.fs, leads=STANDARD_LEADS)

    def labels(self, task: str) -> pd.Series:
        """``ecg_id`` → list of labels of ``task`` for every record of the metadata (may be empty)."""
        return self.meta["scp_codes"].apply(lambda codes: task_labels(codes, task, self._maps))

    def classes(self, task: str, labels: pd.Series | None = None) -> list[str]:
        """The task's classes: labels that occur at least once in the full metadata, sorted.

        ``labels`` is :meth:`labels` of the task when the caller already has it.
        """
        labels = self.labels(task) if labels is None else labels
        return sorted({label for labs in labels for label in labs})

    def provenance(self, ids=None) -> dict:
        """Provenance of the records ``ids`` (default: all present): content hash and how many files verified.

        ``{"manifest_hash", "records", "files", "verified", "unverified", "missing", "unverified_examples",
        "checksum_list"}``, see :func:`ecgbook.data.download.file_provenance`.
        """
        ids = self.available if ids is None else ids
        rels = [f"{self._files[int(i)]}{ext}" for i in ids for ext in (".hea", ".dat")]
        out = file_provenance(self.root, rels, database=DATABASE, version=VERSION)
        return {"records": len(ids), **out}

    def manifest_hash(self, ids=None) -> str:
        """Content hash of the records ``ids`` (default: all present), from their SHA-256 sums."""
        return self.provenance(ids)["manifest_hash"]

    def _signals(self, ids: np.ndarray) -> tuple[np.ndarray, dict]:
        files = [self.record_path(i).with_suffix(ext) for i in ids for ext in (".hea", ".dat")]
        provenance = self.provenance(ids)

        def read(i):
            rec = self.read(i)
            if rec.signal.shape != (12, self.samples):
                raise RecordError(f"{self.record_path(i)}.hea: shape {rec.signal.shape}, expected (12, {self.samples})")
            return rec.signal

        X, _ = cached_signals(f"ptbxl-{VERSION}-{self.fs}hz", list(ids), files, read,
                              leads=STANDARD_LEADS, fs=self.fs, content_hash=provenance["manifest_hash"])
        return X, provenance

    def task(self, task: str) -> PTBXLTask:
        """Signals and multi-hot labels of ``task`` for the records present that have a label in it.

        Raises
        ------
        ValueError
            Unknown task.
        RecordError
            No record is present (``max_records=0``, or no signal file at this sampling frequency),
            or none of them has a label of the task; the message says which.
        """
        all_labels = self.labels(task)
        classes = self.classes(task, all_labels)
        if len(self.available) == 0:
            raise RecordError(
                f"PTB-XL {VERSION} at {self.fs} Hz: no record present in {self.root} "
                + ("(max_records=0); " if self.requested == 0 else
                   f"(the files of all {self.requested:,} requested records, in records{self.fs}/, are absent here and at the source); ")
                + f"task {task!r} has no data")
        labels = all_labels.loc[self.available]
        keep = labels.apply(len).to_numpy() > 0
        if not keep.any():
            raise RecordError(f"PTB-XL {VERSION} at {self.fs} Hz: none of the {len(self.available):,} records present "
                              f"has a label of task {task!r}")
        all_ids = self.available
        X_all, provenance = self._signals(all_ids)
        index = np.flatnonzero(keep)
        ids = all_ids[index]
        if len(index) < len(all_ids):
            provenance = {**provenance, **self.provenance(ids)}
        Y = np.zeros((len(ids), len(classes)), dtype=np.uint8)
        position = {c: j for j, c in enumerate(classes)}
        for row, labs in enumerate(labels.to_numpy()[index]):
            Y[row, [position[c] for c in labs]] = 1
        meta = self.meta.loc[ids]
        return PTBXLTask(X=X_all[index] if len(index) < len(all_ids) else X_all, Y=Y, classes=classes,
                         ecg_id=ids, patient_id=meta["patient_id"].to_numpy(),
                         strat_fold=meta["strat_fold"].to_numpy(), fs=self.fs, leads=list(STANDARD_LEADS),
                         task=task, manifest_hash=provenance["manifest_hash"], provenance=provenance)
