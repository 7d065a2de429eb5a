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
        A metrics row lacks ``metric`` or ``value``, or ``profile``/``chapter`` is empty.
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
    folder = (root or config.results_dir()) / profile
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read_results(chapter: str, profile: str, root: Path | None = None) -> dict:
    """Load ``results/<profile>/<chapter>.json``.

    Raises ``FileNotFoundError`` naming the file (run the chapter first) and ``ValueError`` for a
    file of another schema.
    """
    path = (root or config.results_dir()) / profile / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results yet; execute the chapter {chapter!r} with profile {profile!r}")
    doc = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {doc.get('schema')!r}, expected {SCHEMA!r}")
    return doc


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
