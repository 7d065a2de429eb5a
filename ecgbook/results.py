"""Results files: every executed chapter writes its metrics with provenance to
``results/<profile>/<chapter>.json``; the book's tables read them back.

The schema (``"schema": "ecgbook.results/1"``) is documented in ``results/README.md``:

.. code-block:: text

    {"schema", "chapter", "profile", "created" (UTC ISO time),
     "provenance": {"commit", "dirty", "profile", "device", "seed", "wall_time_s",
                    "python", "torch", "torch_threads", "cpu", "machine", "cuda",
                    "datasets": {name: {"manifest_hash", "records"}}},

``torch_threads`` and ``cpu`` (the CPU model) say why a rerun elsewhere can differ: CPU results
repeat bit for bit on the same machine with the same thread count only (see :mod:`ecgbook.train`).
     "params": {...papermill parameters as resolved...},
     "metrics": [{"model", "task", "metric", "value", "ci_low", "ci_high", "split", "n", ...}, ...],
     "reference": [{"source", "model", "task", "metric", "value", "note"}, ...],
     "extra": {...}}
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

from . import config

SCHEMA = "ecgbook.results/1"
REQUIRED_ROW_KEYS = ("metric", "value")


class ResultsError(ValueError):
    """A results file that cannot be used: not UTF-8, not JSON, another schema, another chapter
    or profile than the one asked for, or a field the book reads with the wrong type.

    ``path`` is the file, ``reason`` what is wrong with it (without the path); ``str(error)`` is
    ``"<path>: <reason>"``.
    """

    def __init__(self, path: Path | str, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_results(doc, path: Path | str, chapter: str | None = None, profile: str | None = None) -> dict:
    """Check a parsed results document against the schema :data:`SCHEMA` and return it.

    Checks what the book reads: ``doc`` is an object of this schema; ``chapter`` and ``profile``
    (top level, and ``provenance.profile`` when present) equal the ones asked for (``None``: not
    checked); ``metrics`` is a list of objects, each with a string ``metric`` and a ``value`` that
    is a number or ``null``; ``reference`` a list of objects; ``params`` and ``extra`` objects;
    ``provenance`` an object with ``wall_time_s`` a finite number >= 0 (seconds), ``device`` and
    ``commit`` strings and ``datasets`` an object.

    Raises
    ------
    ResultsError
        Naming ``path`` and the first thing wrong (valid values where they exist).
    """
    def fail(reason: str):
        raise ResultsError(path, reason)

    if not isinstance(doc, dict):
        fail(f"expected a JSON object, found a JSON {type(doc).__name__}")
    if doc.get("schema") != SCHEMA:
        fail(f"schema {doc.get('schema')!r}, expected {SCHEMA!r}")
    for key, want in (("chapter", chapter), ("profile", profile)):
        if not isinstance(doc.get(key), str) or not doc[key]:
            fail(f"{key!r} is {doc.get(key)!r}, expected a non-empty string")
        if want is not None and doc[key] != want:
            fail(f"written by {key} {doc[key]!r}, expected {key} {want!r} (a copied or misplaced file?)")
    for key, kind in (("provenance", dict), ("params", dict), ("metrics", list), ("reference", list),
                      ("extra", dict)):
        if not isinstance(doc.get(key), kind):
            fail(f"{key!r} is {type(doc.get(key)).__name__ if key in doc else 'missing'}, expected a JSON "
                 f"{'object' if kind is dict else 'list'}")
    for i, row in enumerate(doc["metrics"]):
        if not isinstance(row, dict):
            fail(f"metrics row {i} is a {type(row).__name__}, expected an object with 'metric' and 'value'")
        if not isinstance(row.get("metric"), str):
            fail(f"metrics row {i}: 'metric' is {row.get('metric')!r}, expected a string")
        if "value" not in row or not (row["value"] is None or _is_number(row["value"])):
            fail(f"metrics row {i} ({row['metric']}): 'value' is {row.get('value', 'missing')!r}, "
                 "expected a number or null")
    for i, row in enumerate(doc["reference"]):
        if not isinstance(row, dict):
            fail(f"reference row {i} is a {type(row).__name__}, expected an object")
    prov = doc["provenance"]
    wall = prov.get("wall_time_s")
    if not _is_number(wall) or not math.isfinite(wall) or wall < 0:
        fail(f"provenance.wall_time_s is {wall!r}, expected a finite number of seconds >= 0")
    for key in ("device", "commit"):
        if not isinstance(prov.get(key), str):
            fail(f"provenance.{key} is {prov.get(key)!r}, expected a string")
    if not isinstance(prov.get("datasets"), dict):
        fail(f"provenance.datasets is {prov.get('datasets')!r}, expected an object")
    if "profile" in prov and prov["profile"] != doc["profile"]:
        fail(f"provenance.profile {prov['profile']!r} differs from profile {doc['profile']!r}")
    return doc


def git_commit(root: Path | None = None) -> tuple[str, bool]:
    """``(commit, dirty)`` of the project checkout; ``("unknown", False)`` outside git.

    ``dirty``: a tracked file differs from the commit (``results/`` and ``data/``, a run's own
    outputs, and untracked files are ignored).
    """
    root = root or config.project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results", ":!data"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS, else
    :func:`platform.processor`), with the logical core count: e.g. ``"AMD EPYC 9654 96-Core
    Processor (2 logical cores)"``; ``"unknown"`` when nothing says."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if not name and platform.system() == "Darwin":
        try:
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    name = name or platform.processor() or "unknown"
    cores = os.cpu_count()
    return f"{name} ({cores} logical cores)" if cores else name


def runtime_provenance() -> dict:
    """What of the machine and runtime decides whether a rerun repeats bit for bit:
    ``torch_threads`` (``torch.get_num_threads()``), ``cpu`` (:func:`cpu_model`), ``machine``
    (architecture), ``python``, ``torch``, and ``cuda`` (the GPU's name, or ``None``)."""
    import torch  # local: keep this module importable without torch for table reading

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu": cpu_model(), "machine": platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _clean(value):
    """JSON-safe copy: NaN/inf → None, numpy scalars/arrays → Python, Paths → str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(chapter: str, profile: str, *, metrics: list[dict], params: dict, seed: int, device: str,
                  datasets: dict[str, dict], wall_time_s: float, reference: list[dict] | None = None,
                  extra: dict | None = None, root: Path | None = None) -> Path:
    """Write ``results/<profile>/<chapter>.json`` atomically and return its path.

    Parameters
    ----------
    metrics:
        Rows, each with at least ``metric`` and ``value`` (plus e.g. ``model``, ``task``, ``ci_low``,
        ``ci_high``, ``split``, ``n``, ``excluded_classes``).
    datasets:
        ``{name: {"manifest_hash": str, "records": int}}`` of the data the run used.
    reference:
        Published numbers shown beside ours, each with its ``source``.

    Raises
    ------
    ValueError
        A metrics row lacks ``metric`` or ``value``, or ``profile``/``chapter`` is empty;
        :class:`ResultsError` for a document :func:`read_results` would refuse (e.g. a negative
        ``wall_time_s``). Nothing is written then.
    OSError
        Writing failed (e.g. ``ENOSPC``, disk full): the message names the file, the previous
        file is kept unchanged and no temporary file is left (:func:`ecgbook.files.write_atomic`).
    """
    if not chapter or not profile:
        raise ValueError("chapter and profile must be non-empty")
    for i, row in enumerate(metrics):
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"metrics row {i} of {chapter!r} lacks {missing}: {row}")
    commit, dirty = git_commit()
    doc = {
        "schema": SCHEMA, "chapter": chapter, "profile": profile,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "provenance": {"commit": commit, "dirty": dirty, "profile": profile, "device": device, "seed": seed,
                       "wall_time_s": round(float(wall_time_s), 2), **runtime_provenance(),
                       "datasets": datasets},
        "params": params, "metrics": metrics, "reference": reference or [], "extra": extra or {},
    }
    from .files import write_atomic  # local: reading tables needs no file layer

    path = (root or config.results_dir()) / profile / f"{chapter}.json"
    doc = check_results(_clean(doc), path, chapter, profile)
    write_atomic(path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return path


def read_results(chapter: str, profile: str, root: Path | None = None) -> dict:
    """Load ``results/<profile>/<chapter>.json``, checked by :func:`check_results`.

    Raises
    ------
    FileNotFoundError
        Naming the file (run the chapter first).
    ResultsError
        (a ``ValueError``) naming the file and what is wrong: not UTF-8, not JSON (with line and
        column), not an object, another schema, written by another chapter or profile, or a field
        of the wrong type (e.g. a negative or non-numeric ``provenance.wall_time_s``).
    """
    path = (root or config.results_dir()) / profile / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results yet; execute the chapter {chapter!r} with profile {profile!r}")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ResultsError(path, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ResultsError(path, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    return check_results(doc, path, chapter, profile)


def metrics_table(doc: dict) -> pd.DataFrame:
    """The ``metrics`` rows of a results document as a DataFrame."""
    return pd.DataFrame(doc["metrics"])


def reference_table(doc: dict) -> pd.DataFrame:
    """The ``reference`` rows (published numbers) as a DataFrame."""
    return pd.DataFrame(doc["reference"])


def signed(value: float, digits: int = 3) -> str:
    """A difference with its sign, e.g. ``"+0.012"`` or ``"-0.047"``, and ``"+0.000"`` (never
    ``"-0.000"``) for a value that rounds to zero; ``"nan"`` for NaN."""
    if value != value:
        return "nan"
    text = f"{value:+.{digits}f}"
    return f"{0.0:+.{digits}f}" if float(text) == 0 else text


def signed_interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``"Δ [low, high]"`` with signs, as the pages show a paired difference and its interval:
    e.g. ``"-0.001 [-0.013, +0.011]"`` (each part through :func:`signed`)."""
    return f"{signed(value, digits)} [{signed(low, digits)}, {signed(high, digits)}]"
