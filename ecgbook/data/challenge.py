"""Reader for the PhysioNet/CinC Challenge 2020/2021 record format and its scoring tables.

A Challenge record is a WFDB header (``.hea``) whose comment lines carry the patient's age and
sex and the diagnoses as SNOMED CT codes, with the signal in a MATLAB v4 ``.mat`` file::

    A0001 12 500 7500 12-May-2020 12:33:59
    A0001.mat 16+24 1000/mV 16 0 28 -1716 0 I
    ...
    #Age: 74
    #Sex: Male
    #Dx: 59118001
    #Rx: Unknown

The Challenges score only some diagnoses. Their official evaluation repositories publish

``weights.csv``
    The square matrix of the challenge score's reward weights; its header lists the *scored
    classes*. In 2021 a class that merges equivalent SNOMED CT codes is written ``code1|code2``;
    in 2020 the equivalent codes are separate rows whose mutual weight is 1 and whose rows are
    identical, and :func:`load_scoring_tables` merges them into one ``code1|code2`` class, as the
    official ``evaluate_12ECG_score.py`` does (it keeps the first code of each set).
``dx_mapping_scored.csv`` / ``dx_mapping_unscored.csv``
    Each SNOMED CT code's name, abbreviation and number of records per source database.

Sources: Perez Alday EA et al., "Classification of 12-lead ECGs: the PhysioNet/Computing in
Cardiology Challenge 2020", Physiol Meas 41 (2020); Reyna MA et al., "Will two do? Varying
dimensions in electrocardiography: the PhysioNet/Computing in Cardiology Challenge 2021",
CinC 48 (2021); tables from github.com/physionetchallenges/evaluation-2020 and -2021 (BSD-2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import wfdb
from tqdm import tqdm

from .. import config
from ..signal import resample
from .download import fetch
from .records import NonFiniteSignalError, Record, RecordError, check_header_text, read_record

#: SNOMED CT code of sinus rhythm, the "normal" class of both Challenges (the inactive classifier's output).
NORMAL_CLASS = "426783006"

_EVAL = "https://raw.githubusercontent.com/physionetchallenges"
#: Official scoring tables, pinned by commit, with the SHA-256 of each file.
SCORING_FILES: dict[int, tuple[str, dict[str, str]]] = {
    2020: (f"{_EVAL}/evaluation-2020/8ad02421902fb5c99ad9695f480a05dc3b8969e5", {
        "weights.csv": "879908ab77ce7ea64a3d0c009fe9d31d9393ec7cd8866190a0efeda19afdf9dc",
        "dx_mapping_scored.csv": "7b98b27a14ce1d52cc58e1fe2d1e1ccd824afb611e93a312a3f9519823e5da03",
        "dx_mapping_unscored.csv": "f82d57c866b73b715f9e436fedb92b8fd791e4298e64dd485437369a4544f966",
    }),
    2021: (f"{_EVAL}/evaluation-2021/e2a75fc01f729cb74cc4e853e054ce81e28381fc", {
        "weights.csv": "668cb04555a97e8977488cb4bb6088d0d2bf9e59557945deedf29d5065c14d2b",
        "weights_abbreviations.csv": "0c27a3d47fd9d33a0d3abb5f5e8049c7aaf8adcbfbbf1fd1fb8b66ce19eb61b8",
        "dx_mapping_scored.csv": "fad13ad9f7ca230e7e6392ac8a264cb7cd157879525129f964c5f708eabb41d0",
        "dx_mapping_unscored.csv": "ce53c9e35406e922f1634a38bb13c31e8cf7603291641a16c201d8e679f4fe94",
    }),
}

#: The nine classes of the China Physiological Signal Challenge 2018 (CPSC2018) and the SNOMED CT
#: codes that stand for each in the Challenge 2020/2021 headers. The first code of each tuple is
#: the one the ``cpsc_2018`` source uses (its column in ``dx_mapping_*.csv``); the others are the
#: codes other sources use for the same diagnosis: complete RBBB (713427006, scored with RBBB by
#: both Challenges), supraventricular premature beats (63593006, scored with PAC), and premature
#: ventricular contractions / ventricular premature beats (427172004, 17338001), which CPSC2018
#: codes as "ventricular ectopics" (164884008).
CPSC2018_CLASSES: dict[str, tuple[int, ...]] = {
    "Normal": (426783006,),
    "AF": (164889003,),
    "I-AVB": (270492004,),
    "LBBB": (164909002,),
    "RBBB": (59118001, 713427006),
    "PAC": (284470004, 63593006),
    "PVC": (164884008, 427172004, 17338001),
    "STD": (429622005,),
    "STE": (164931005,),
}

_MISSING = {"", "nan", "unknown", "none", "n/a", "na"}
_SEX = {"male": "Male", "m": "Male", "female": "Female", "f": "Female"}
_CODE = re.compile(r"^\d{6,18}$")


class ChallengeFormatError(RecordError):
    """A Challenge header or scoring table breaks the format; the message names the file."""


@dataclass(frozen=True)
class ChallengeMeta:
    """What a Challenge header says about its record.

    Attributes
    ----------
    name: record name (``A0001``).
    age: age in years, ``None`` when the header says ``NaN``/``Unknown``.
    sex: ``"Male"``, ``"Female"`` or ``None`` when unknown.
    dx: the ``#Dx`` SNOMED CT codes, in header order, duplicates removed.
    source: name of the folder holding the record (``cpsc_2018``, ``georgia``, …).
    path: record path without extension.
    """

    name: str
    age: float | None
    sex: str | None
    dx: list[int]
    source: str
    path: Path


@dataclass
class ScoringTables:
    """The official scoring tables of one Challenge year.

    Attributes
    ----------
    year: 2020 or 2021.
    classes: ``(n_classes,)`` scored class labels in ``weights.csv`` order; a class that merges
        equivalent SNOMED CT codes is ``"code1|code2"`` (2020: 24 classes, 2021: 26).
    weights: ``(n_classes, n_classes)`` reward matrix of the challenge score (row: true class,
        column: predicted class).
    normal_class: SNOMED CT code of sinus rhythm, ``"426783006"``.
    abbreviations: ``(n_classes,)`` abbreviations, joined with ``|`` like the classes (``CRBBB|RBBB``).
    scored: ``dx_mapping_scored.csv`` with columns ``dx`` (name), ``code`` (int), ``abbreviation``,
        the per-source record counts and ``Notes``.
    unscored: ``dx_mapping_unscored.csv``, same columns.
    """

    year: int
    classes: list[str]
    weights: np.ndarray
    normal_class: str
    abbreviations: list[str]
    scored: pd.DataFrame
    unscored: pd.DataFrame
    code_to_class: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.code_to_class = {int(code): i for i, label in enumerate(self.classes)
                              for code in label.split("|")}

    @property
    def normal_index(self) -> int:
        """Column of the normal (sinus rhythm) class."""
        return self.code_to_class[int(self.normal_class)]

    def class_codes(self, index: int) -> tuple[int, ...]:
        """SNOMED CT codes merged into class ``index``."""
        return tuple(int(code) for code in self.classes[index].split("|"))


@dataclass
class ChallengeFolder:
    """The records of a Challenge-format folder, read into memory.

    Attributes
    ----------
    names: ``(n_records,)`` record names.
    paths: ``(n_records,)`` record paths without extension.
    sources: ``(n_records,)`` source folder of each record (path relative to the folder read).
    signals: ``n_records`` float32 arrays ``(leads, samples)`` in mV (all the same length when
        ``seconds`` was given).
    fs: ``(n_records,)`` sampling frequency of each signal in Hz (after resampling, if any).
    leads: lead names of the signals' rows.
    dx: ``n_records`` lists of the ``#Dx`` SNOMED CT codes.
    labels: ``(n_records, n_classes)`` bool multi-hot of the scored classes, or ``None`` when no
        :class:`ScoringTables` were given.
    classes: the scored class labels of ``labels`` (``tables.classes``), or ``[]``.
    age: ``(n_records,)`` age in years, NaN when unknown.
    sex: ``(n_records,)`` ``"Male"``/``"Female"``/``None``.
    """

    names: list[str]
    paths: list[Path]
    sources: list[str]
    signals: list[np.ndarray]
    fs: np.ndarray
    leads: list[str]
    dx: list[list[int]]
    labels: np.ndarray | None
    classes: list[str]
    age: np.ndarray
    sex: list[str | None]

    def __len__(self) -> int:
        return len(self.names)

    def array(self) -> np.ndarray:
        """The signals stacked as ``(n_records, leads, samples)``; needs equal lengths (``seconds=``).

        Raises ``ValueError`` when the records differ in length or sampling frequency.
        """
        lengths = {s.shape[1] for s in self.signals}
        if len(lengths) != 1 or len(set(self.fs.tolist())) != 1:
            raise ValueError(f"records differ in length {sorted(lengths)} or sampling frequency "
                             f"{sorted(set(self.fs.tolist()))} Hz; read them with fs= and seconds=")
        return np.stack(self.signals)


# --------------------------------------------------------------------------- headers


def _value(line: str) -> str:
    return line.split(":", 1)[1].strip() if ":" in line else ""


def parse_codes(text: str, source: str = "header") -> list[int]:
    """Parse a comma-separated list of SNOMED CT codes (``"59118001,164889003"``).

    Returns the codes as ints in order, duplicates removed.

    Raises
    ------
    ChallengeFormatError
        The list is empty or an entry is not a SNOMED CT code (6 to 18 digits); names ``source``.
    """
    codes: list[int] = []
    for entry in text.split(","):
        entry = entry.strip()
        if not _CODE.match(entry):
            raise ChallengeFormatError(f"{source}: malformed SNOMED CT code {entry!r} in Dx list {text!r}")
        if int(entry) not in codes:
            codes.append(int(entry))
    return codes


def parse_header_fields(comments: Iterable[str], source: str = "header") -> dict:
    """Read age, sex and diagnoses from a Challenge header's comment lines.

    Parameters
    ----------
    comments:
        The header's comment lines, with or without the leading ``#`` (``"Age: 74"``,
        ``"#Dx: 59118001,164889003"``), as :attr:`ecgbook.data.records.Record.comments` holds them.
    source:
        Name of the file, for error messages.

    Returns
    -------
    ``{"age": float | None, "sex": "Male" | "Female" | None, "dx": list[int]}``; age and sex are
    ``None`` when missing or written ``NaN``/``Unknown``.

    Raises
    ------
    ChallengeFormatError
        No ``Dx`` line, a malformed SNOMED CT code, an age that is no number, or a sex other than
        male/female/unknown.
    """
    fields: dict[str, str] = {}
    for line in comments:
        line = line.strip().lstrip("#").strip()
        key = line.split(":", 1)[0].strip().lower()
        if key in ("age", "sex", "dx") and key not in fields:
            fields[key] = _value(line)
    if "dx" not in fields:
        raise ChallengeFormatError(f"{source}: no '#Dx' line (the Challenge format lists the diagnoses there)")
    age = fields.get("age", "")
    if age.lower() in _MISSING:
        age_value = None
    else:
        try:
            age_value = float(age)
        except ValueError:
            raise ChallengeFormatError(f"{source}: age {age!r} is not a number") from None
        if not np.isfinite(age_value):
            age_value = None
    sex = fields.get("sex", "")
    if sex.lower() in _MISSING:
        sex_value = None
    elif sex.lower() in _SEX:
        sex_value = _SEX[sex.lower()]
    else:
        raise ChallengeFormatError(f"{source}: sex {sex!r} is neither male, female nor unknown")
    return {"age": age_value, "sex": sex_value, "dx": parse_codes(fields["dx"], source)}


def list_records(folder: str | Path) -> list[Path]:
    """Every ``.hea`` file under ``folder`` (recursively), sorted by path; hidden files are skipped.

    Raises ``FileNotFoundError`` when ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory of Challenge records")
    return sorted(p for p in folder.rglob("*.hea") if not p.name.startswith("."))


def read_challenge_record(path: str | Path, *, expected_fs: float | None = None,
                          leads: list[str] | tuple[str, ...] | None = None) -> tuple[Record, ChallengeMeta]:
    """Read one Challenge record: its signal and the age, sex and SNOMED CT codes of its header.

    Parameters
    ----------
    path:
        Record path with or without ``.hea``.
    expected_fs, leads:
        As in :func:`ecgbook.data.records.read_record`.

    Returns
    -------
    (record, meta): ``record.signal`` is ``(leads, samples)`` float32 in mV at ``record.fs`` Hz
    (500 Hz for most sources, 1000 Hz for PTB, 257 Hz for St Petersburg).

    Raises
    ------
    ChallengeFormatError
        The header has no ``#Dx`` line or holds a malformed code, age or sex.
    RecordError
        The header is missing or empty, the ``.mat`` signal file is missing, or the signal is
        unreadable or holds NaN/±inf (:class:`~ecgbook.data.records.NonFiniteSignalError`; see
        :func:`~ecgbook.data.records.read_record`).
    """
    path = Path(path)
    if path.suffix == ".hea":
        path = path.with_suffix("")
    header = path.with_suffix(".hea")
    if not header.is_file():
        raise RecordError(f"{header}: header file not found")
    check_header_text(header)
    try:
        head = wfdb.rdheader(str(path))
    except Exception as exc:
        raise ChallengeFormatError(f"{header}: cannot parse header ({type(exc).__name__}: {exc})") from exc
    fields = parse_header_fields(head.comments or [], str(header))
    for name in sorted(set(head.file_name or [])):
        if not (path.parent / name).is_file():
            raise RecordError(f"{header}: signal file {path.parent / name} is missing")
    record = read_record(path, expected_fs=expected_fs, leads=leads)
    meta = ChallengeMeta(name=record.name, age=fields["age"], sex=fields["sex"], dx=fields["dx"],
                         source=path.parent.name, path=path)
    return record, meta


# --------------------------------------------------------------------------- scoring tables


def _read_square_table(path: Path) -> tuple[list[str], np.ndarray]:
    """Read a ``weights.csv``-style table: header row and first column hold the same labels."""
    table = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True)
    cols = [str(c).strip() for c in table.iloc[0, 1:]]
    rows = [str(r).strip() for r in table.iloc[1:, 0]]
    if cols != rows:
        raise ChallengeFormatError(f"{path}: row labels differ from column labels")
    try:
        values = table.iloc[1:, 1:].astype(float).to_numpy()
    except ValueError as exc:
        raise ChallengeFormatError(f"{path}: non-numeric weight ({exc})") from exc
    if values.shape != (len(rows), len(rows)) or not np.isfinite(values).all():
        raise ChallengeFormatError(f"{path}: weights are not a finite {len(rows)}x{len(rows)} matrix")
    return rows, values


def _merge_equivalent(labels: list[str], weights: np.ndarray, source: Path) -> tuple[list[str], np.ndarray]:
    """Merge classes scored as one diagnosis (off-diagonal weight 1 with identical rows), keeping
    the first of each set as representative, as the official 2020 ``load_weights`` does."""
    taken: set[int] = set()
    groups: list[list[int]] = []
    for i in range(len(labels)):
        if i in taken:
            continue
        group = [j for j in range(i, len(labels)) if j not in taken and (j == i or weights[i, j] == 1.0)]
        for j in group[1:]:
            if not (np.array_equal(weights[i], weights[j]) and np.array_equal(weights[:, i], weights[:, j])):
                raise ChallengeFormatError(
                    f"{source}: classes {labels[i]} and {labels[j]} have weight 1 but different weight rows")
        taken.update(group)
        groups.append(group)
    merged = ["|".join(labels[j] for j in group) for group in groups]
    keep = [group[0] for group in groups]
    return merged, weights[np.ix_(keep, keep)]


def _read_mapping(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame = frame.rename(columns={"Dx": "dx", "SNOMED CT Code": "code", "SNOMEDCTCode": "code",
                                  "Abbreviation": "abbreviation"})
    if not {"dx", "code", "abbreviation"} <= set(frame.columns):
        raise ChallengeFormatError(f"{path}: expected columns Dx, SNOMED CT code, Abbreviation; got {list(frame.columns)}")
    frame["code"] = frame["code"].astype("int64")
    return frame


def load_scoring_tables(year: int, root: str | Path | None = None) -> ScoringTables:
    """Download (once, checksum-verified) and parse a Challenge year's official scoring tables.

    Parameters
    ----------
    year:
        2020 or 2021.
    root:
        Where the files are stored (default ``ecgbook.config.data_dir()/"challenge-scoring"/<year>``).
        They come from the evaluation repository at a pinned commit (see :data:`SCORING_FILES`),
        or from ``$ECGBOOK_MIRROR`` when set.

    Returns
    -------
    :class:`ScoringTables`, with 2020's separately listed equivalent codes merged into
    ``code1|code2`` classes (24 classes) and 2021's classes as written (26 classes).

    Raises
    ------
    ValueError
        ``year`` is neither 2020 nor 2021.
    ChecksumError, MissingFileError, DownloadError
        From :func:`ecgbook.data.download.fetch`.
    ChallengeFormatError
        A table is malformed, or a scored class has no row in ``dx_mapping_scored.csv``.
    """
    if year not in SCORING_FILES:
        raise ValueError(f"year={year!r}: the scoring tables exist for {sorted(SCORING_FILES)}")
    base, sums = SCORING_FILES[year]
    root = Path(root) if root is not None else config.data_dir() / "challenge-scoring" / str(year)
    files = {name: fetch(f"{base}/{name}", root / name, sha) for name, sha in sums.items()}
    labels, weights = _read_square_table(files["weights.csv"])
    labels, weights = _merge_equivalent(labels, weights, files["weights.csv"])
    scored = _read_mapping(files["dx_mapping_scored.csv"])
    unscored = _read_mapping(files["dx_mapping_unscored.csv"])
    abbreviation = dict(zip(scored["code"], scored["abbreviation"]))
    try:
        derived = ["|".join(abbreviation[int(c)] for c in label.split("|")) for label in labels]
    except KeyError as exc:
        raise ChallengeFormatError(f"{files['dx_mapping_scored.csv']}: scored code {exc} has no row") from None
    if "weights_abbreviations.csv" in files:
        abbreviations, _ = _read_square_table(files["weights_abbreviations.csv"])
        if len(abbreviations) != len(labels):
            raise ChallengeFormatError(f"{files['weights_abbreviations.csv']}: {len(abbreviations)} classes, "
                                       f"weights.csv has {len(labels)}")
    else:
        abbreviations = derived
    tables = ScoringTables(year=year, classes=labels, weights=weights, normal_class=NORMAL_CLASS,
                           abbreviations=abbreviations, scored=scored, unscored=unscored)
    if int(NORMAL_CLASS) not in tables.code_to_class:
        raise ChallengeFormatError(f"{files['weights.csv']}: the normal class {NORMAL_CLASS} is not scored")
    return tables


# --------------------------------------------------------------------------- labels


def _as_codes(dx_codes: Iterable[int | str], source: str = "dx_codes") -> list[int]:
    codes = []
    for code in dx_codes:
        text = str(code).strip()
        if not _CODE.match(text):
            raise ValueError(f"{source}: {code!r} is not a SNOMED CT code")
        codes.append(int(text))
    return codes


def labels_to_multihot(dx_codes: Iterable[int | str], tables: ScoringTables) -> np.ndarray:
    """Map a record's SNOMED CT codes to the scored classes of the Challenge.

    A code belonging to a merged class (``713427006|59118001``) sets that class; codes that are
    not scored (see :func:`unmapped_codes`) are ignored, as in the official evaluation.

    Returns ``(n_classes,)`` bool, in ``tables.classes`` order. Raises ``ValueError`` for an entry
    that is not a SNOMED CT code.
    """
    hot = np.zeros(len(tables.classes), dtype=bool)
    for code in _as_codes(dx_codes):
        index = tables.code_to_class.get(code)
        if index is not None:
            hot[index] = True
    return hot


def unmapped_codes(dx_codes: Iterable[int | str], tables: ScoringTables) -> dict[str, list[int]]:
    """Which of a record's codes the Challenge does not score.

    Returns ``{"unscored": codes listed in dx_mapping_unscored.csv, "unknown": codes in neither
    mapping}``, each in input order.
    """
    known = set(tables.unscored["code"].tolist())
    out: dict[str, list[int]] = {"unscored": [], "unknown": []}
    for code in _as_codes(dx_codes):
        if code in tables.code_to_class:
            continue
        out["unscored" if code in known else "unknown"].append(code)
    return out


def cpsc2018_labels(dx_codes: Iterable[int | str]) -> np.ndarray:
    """Multi-hot ``(9,)`` bool of the CPSC2018 classes (:data:`CPSC2018_CLASSES` order) for a record's codes.

    Source: Liu F et al., "An open access database for evaluating the algorithms of
    electrocardiogram rhythm and morphology abnormality detection", J Med Imaging Health Inform
    8 (2018), Table 1; code correspondence from the Challenge 2020 ``dx_mapping_*.csv`` CPSC column.
    """
    codes = set(_as_codes(dx_codes))
    return np.array([bool(codes & set(members)) for members in CPSC2018_CLASSES.values()], dtype=bool)


# --------------------------------------------------------------------------- folders


def _fix_length(signal: np.ndarray, samples: int) -> np.ndarray:
    if signal.shape[1] >= samples:
        return signal[:, :samples]
    return np.pad(signal, ((0, 0), (0, samples - signal.shape[1])))


def read_challenge_folder(folder: str | Path, tables: ScoringTables | None = None, *,
                          fs: float | None = None, seconds: float | None = None,
                          leads: list[str] | tuple[str, ...] | None = None) -> ChallengeFolder:
    """Read every Challenge record under ``folder`` (recursively) into a :class:`ChallengeFolder`.

    Parameters
    ----------
    folder:
        A source folder (``.../cpsc_2018``) or a folder of source folders.
    tables:
        Scoring tables for the ``labels`` matrix; ``None`` leaves ``labels`` at ``None``.
    fs:
        Resample every signal to this sampling frequency (Hz, polyphase filter,
        :func:`scipy.signal.resample_poly`); ``None`` keeps each record's own.
    seconds:
        Keep the first ``seconds`` s of each record, zero-padding shorter ones at the end, so that
        all signals have ``round(seconds * fs)`` samples. Needs one sampling frequency (``fs=``
        or records that share one).
    leads:
        Keep only these leads, in this order (default: the header's, which must agree across records).

    Raises
    ------
    FileNotFoundError
        ``folder`` is not a directory or holds no ``.hea`` file.
    ChallengeFormatError, RecordError
        From :func:`read_challenge_record`, naming the faulty file.
    ValueError
        ``seconds`` without a common sampling frequency, or records with different lead lists.
    """
    folder = Path(folder)
    headers = list_records(folder)
    if not headers:
        raise FileNotFoundError(f"{folder}: no Challenge records (.hea files) found")
    out = ChallengeFolder(names=[], paths=[], sources=[], signals=[], fs=np.zeros(0), leads=[],
                          dx=[], labels=None, classes=list(tables.classes) if tables else [],
                          age=np.zeros(0), sex=[])
    rates, ages, hots = [], [], []
    for header in tqdm(headers, desc=folder.name, unit="record", disable=not config.progress_enabled()):
        record, meta = read_challenge_record(header, leads=leads)
        if out.leads and record.leads != out.leads:
            raise ValueError(f"{header}: leads {record.leads} differ from the other records' {out.leads}; pass leads=")
        out.leads = record.leads
        signal, rate = record.signal, record.fs
        if fs is not None:
            signal, rate = resample(signal, rate, fs).astype(np.float32, copy=False), float(fs)
        if seconds is not None:
            if rates and rate != rates[0]:
                raise ValueError(f"{header}: sampling frequency {rate} Hz differs from {rates[0]} Hz; pass fs= with seconds=")
            signal = _fix_length(signal, int(round(seconds * rate)))
        out.names.append(meta.name)
        out.paths.append(meta.path)
        out.sources.append(str(header.parent.relative_to(folder)))
        out.signals.append(signal)
        out.dx.append(meta.dx)
        out.sex.append(meta.sex)
        rates.append(rate)
        ages.append(np.nan if meta.age is None else meta.age)
        if tables is not None:
            hots.append(labels_to_multihot(meta.dx, tables))
    out.fs = np.asarray(rates, dtype=float)
    out.age = np.asarray(ages, dtype=float)
    if tables is not None:
        out.labels = np.stack(hots)
    return out


def read_cpsc2018(folder: str | Path, *, fs: float = 100.0, seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CPSC2018 in the Challenge 2020 format (``training/cpsc_2018/``) as a multi-label dataset.

    Each record is resampled to ``fs`` Hz and cut to its first ``seconds`` s (zero-padded when
    shorter), the MRM-Net / PTB-XL-benchmark input; labels are the nine CPSC2018 classes
    (:data:`CPSC2018_CLASSES`) from the ``#Dx`` codes. Records with none of the nine are dropped.

    Returns ``(X (records, 12, fs·seconds) float32 mV, Y (records, 9) uint8, names)``.
    Raises ``FileNotFoundError`` for a folder without records, and the errors of
    :func:`read_challenge_folder` for faulty records (naming the file).
    """
    from .records import STANDARD_LEADS

    data = read_challenge_folder(folder, fs=fs, seconds=seconds, leads=STANDARD_LEADS)
    Y = np.stack([cpsc2018_labels(dx) for dx in data.dx]).astype(np.uint8)
    keep = Y.any(axis=1)
    return data.array()[keep], Y[keep], [n for n, k in zip(data.names, keep) if k]


# --------------------------------------------------------------------------- Challenge 2020 dataset


@dataclass
class Challenge2020Data:
    """The Challenge 2020 training records as a multi-label dataset over the scored classes.

    Attributes
    ----------
    X: ``(records, 12, samples)`` float32 signals in mV at ``fs`` Hz, leads in
        :data:`~ecgbook.data.records.STANDARD_LEADS` order, each record's first ``samples``
        samples, zero-padded at the end when shorter.
    lengths: ``(records,)`` int, valid (unpadded) samples of each record, ``≤ samples``.
    Y: ``(records, n_classes)`` uint8 multi-hot of the scored classes (``classes`` order).
    classes: scored classes (``ScoringTables.classes``; 2020: 24, equivalent codes merged as
        ``"code1|code2"``).
    abbreviations: ``(n_classes,)`` class abbreviations (``"CRBBB|RBBB"``).
    names: ``(records,)`` record names (``A0001``, ``HR00001``, …).
    sources: ``(records,)`` source folder of each record, relative to the folder read.
    groups: ``(records,)`` patient group of each record: ``"patient:<id>"`` where a patient id is
        known (``patient_ids``), else ``"record:<source>/<name>"`` — each record its own group,
        since the Challenge 2020 headers carry no patient id (not even for the PTB-XL source).
    fs: sampling frequency of ``X`` in Hz.
    tables: the :class:`ScoringTables` of the labels.
    dropped: ``{reason: [record paths]}`` of the records left out (no scored class, non-finite
        samples).
    """

    X: np.ndarray
    lengths: np.ndarray
    Y: np.ndarray
    classes: list[str]
    abbreviations: list[str]
    names: list[str]
    sources: list[str]
    groups: np.ndarray
    fs: float
    tables: ScoringTables
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def source_onehot(self) -> np.ndarray:
        """``(records, n_sources)`` uint8 one-hot of the source folders (sorted by name), e.g. to
        stratify folds by source as well as by class."""
        names = sorted(set(self.sources))
        index = {s: i for i, s in enumerate(names)}
        out = np.zeros((len(self.sources), len(names)), dtype=np.uint8)
        out[np.arange(len(self.sources)), [index[s] for s in self.sources]] = 1
        return out


def ptbxl_patient_ids(meta: pd.DataFrame) -> dict[str, str]:
    """Patient ids of the Challenge 2020 PTB-XL source (``HR00001`` …), from PTB-XL's own table.

    The Challenge headers of the PTB-XL source carry no patient id. Record ``HR<n>`` is PTB-XL's
    ``ecg_id`` ``n`` (checked on the sample records ``HR00001``–``HR00010``: age and sex agree
    with ``ptbxl_database.csv``), so PTB-XL's ``patient_id`` groups them.

    ``meta``: ``ptbxl_database.csv`` indexed by ``ecg_id`` (:attr:`ecgbook.data.ptbxl.PTBXL.meta`),
    with a ``patient_id`` column. Returns ``{"HR00001": "ptbxl-15709", …}`` for the rows that have
    a patient id. Raises ``ValueError`` when the column is missing.
    """
    if "patient_id" not in meta.columns:
        raise ValueError(f"ptbxl_patient_ids: no 'patient_id' column among {list(meta.columns)[:8]}…")
    ids = meta["patient_id"].dropna()
    return {f"HR{int(ecg_id):05d}": f"ptbxl-{int(pid)}" for ecg_id, pid in ids.items()}


def load_challenge2020(root: str | Path, tables: ScoringTables | None = None, *, fs: float = 100.0,
                       seconds: float = 10.0, patient_ids: dict[str, str] | None = None,
                       max_records: int | None = None) -> Challenge2020Data:
    """Read a Challenge 2020 (or 2021) training folder, every source under it, as a dataset over
    the Challenge 2020 scored classes.

    Each record (:func:`read_challenge_record`, the 12 standard leads) is resampled to ``fs`` Hz
    (:func:`ecgbook.signal.resample`), its first ``seconds`` s kept (zero-padded when shorter, its
    valid length kept in ``lengths``), and labelled with the scored classes of ``tables``
    (default: 2020, 24 classes after merging the equivalent codes 713427006/59118001,
    284470004/63593006, 427172004/17338001, as the official ``run_ensembled.py:43`` of
    UARK-AICV/ECG_SSL_12Lead does). As the official extraction does
    (``data_preparation/data_extraction_without_preprocessing.py:51-53, 76-78``), records with
    none of the scored classes and records with non-finite samples are left out (listed in
    ``dropped``); unlike it, every lead is kept (its ``:85`` copies lead I into all twelve).

    Parameters
    ----------
    root: the Challenge ``training/`` folder, or any folder of Challenge-format records (read
        recursively).
    tables: scoring tables (default ``load_scoring_tables(2020)``).
    fs: target sampling frequency in Hz (official: 100, ``data_extraction…py:15``).
    seconds: record length kept, in s. Most sources hold 10-s records; CPSC2018 holds 6–60 s,
        PTB and St Petersburg longer ones, of which only the first ``seconds`` are kept.
    patient_ids: ``{record name: patient id}`` where known (e.g. :func:`ptbxl_patient_ids`); the
        other records are each their own group (the Challenge headers carry no patient id).
    max_records: read only the first ``max_records`` headers in path order (a quick look).

    Returns
    -------
    :class:`Challenge2020Data`.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a directory, holds no ``.hea`` file, or no record has a scored class.
    ChallengeFormatError, RecordError
        From :func:`read_challenge_record`, naming the faulty file.
    ValueError
        ``fs`` or ``seconds`` not positive.
    """
    from .records import STANDARD_LEADS

    if not fs > 0 or not seconds > 0:
        raise ValueError(f"load_challenge2020: fs ({fs}) and seconds ({seconds}) must be positive")
    root = Path(root)
    headers = list_records(root)
    if not headers:
        raise FileNotFoundError(f"{root}: no Challenge records (.hea files) found")
    if max_records is not None:
        headers = headers[:int(max_records)]
    tables = tables or load_scoring_tables(2020)
    patient_ids = patient_ids or {}
    samples = int(round(seconds * fs))
    X = np.zeros((len(headers), len(STANDARD_LEADS), samples), dtype=np.float32)
    lengths, hots, names, sources, groups = [], [], [], [], []
    dropped: dict[str, list[str]] = {"no scored class": [], "non-finite samples": []}
    for header in tqdm(headers, desc=root.name, unit="record", disable=not config.progress_enabled()):
        try:
            record, meta = read_challenge_record(header, leads=STANDARD_LEADS)
        except NonFiniteSignalError:  # refused at read time (records.check_finite); left out as officially
            dropped["non-finite samples"].append(str(header.with_suffix("")))
            continue
        hot = labels_to_multihot(meta.dx, tables)
        if not hot.any():
            dropped["no scored class"].append(str(meta.path))
            continue
        signal = resample(record.signal, record.fs, fs).astype(np.float32, copy=False)
        n = min(signal.shape[1], samples)
        X[len(names), :, :n] = signal[:, :n]
        source = str(header.parent.relative_to(root)) if header.parent != root else root.name
        lengths.append(n)
        hots.append(hot)
        names.append(meta.name)
        sources.append(source)
        pid = patient_ids.get(meta.name)
        groups.append(f"patient:{pid}" if pid is not None else f"record:{source}/{meta.name}")
    if not names:
        raise FileNotFoundError(f"{root}: none of the {len(headers)} records has a scored "
                                f"Challenge {tables.year} class")
    return Challenge2020Data(X=X[:len(names)], lengths=np.asarray(lengths, dtype=np.int64),
                             Y=np.stack(hots).astype(np.uint8), classes=list(tables.classes),
                             abbreviations=list(tables.abbreviations), names=names, sources=sources,
                             groups=np.asarray(groups), fs=float(fs), tables=tables,
                             dropped={k: v for k, v in dropped.items() if v})
