"""Load test (issue 22): the cost of the full PTB-XL 1.0.3 (21,799 records) before a user pays it.

**A load-test fixture, not data.** :func:`lay_out` builds a PhysioNet-style PTB-XL 1.0.3 folder
(``physionet.org/files/ptb-xl/1.0.3/`` under ``dest``, default the git-ignored
``_build/loadtest/``) listing every ``ecg_id`` of the real ``ptbxl_database.csv``. The records the
offline mirror holds (ecg_id 1–1999) are hard links to the mirror's files; **every other id's
``.dat`` is a hard link to a present record's bytes** (its ``.hea`` a copy with the record name
changed), so the disk cost stays small. Its signals and labels therefore do not match: it
measures time and memory only, and nothing it produces may be read as a result. No chapter reads
it (the folder is not a data folder of the package) and it writes nothing to ``results/``.

Timed on it (:func:`main`): the download + SHA-256 verification of the package's PTB-XL loader
from the fixture as ``$ECGBOOK_MIRROR`` (``$ECGBOOK_TRUST_CHECKSUMS`` names the fixture's own
``SHA256SUMS.txt``, which lists the laid-out bytes), the signal load into memory (the cache of
:mod:`ecgbook.data.cache`), peak resident memory, and the iterative stratification of the full
label matrix (:func:`ecgbook.evaluation.iterative_stratification`). Every row states the torch
thread count.

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/loadtest_ptbxl.py [--ids N] [--dest DIR]``.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "_build" / "loadtest"
MIRROR = ROOT.parent / "shared" / "mirror"
REL = Path("physionet.org") / "files" / "ptb-xl" / "1.0.3"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system: a symlink is as cheap
        dst.symlink_to(src)


def lay_out(dest: str | Path = DEFAULT_DEST, *, mirror: str | Path = MIRROR, n_ids: int | None = None) -> Path:
    """Lay out the load-test PTB-XL folder and return its mirror base (``dest/mirror``).

    Parameters
    ----------
    dest: folder to build in (emptied first); never a data folder of the package.
    mirror: the offline mirror base (its ``physionet.org/files/ptb-xl/1.0.3``).
    n_ids: lay out the records of only the first ``n_ids`` rows of ``ptbxl_database.csv`` (tests;
        the metadata is always the full, pinned file); default all 21,799.

    Every listed id gets ``records100/<…>_lr.hea/.dat``: the mirror's own files when present, else
    the bytes of a present record (cycled) under the id's name. ``SHA256SUMS.txt`` lists every file
    laid out. Raises ``FileNotFoundError`` naming the mirror folder when it lacks PTB-XL.
    """
    src = Path(mirror) / REL
    if not (src / "ptbxl_database.csv").is_file():
        raise FileNotFoundError(f"{src}: PTB-XL 1.0.3 not found in the mirror (set --mirror)")
    dest = Path(dest)
    if dest.resolve() in {(ROOT / "data").resolve(), Path(mirror).resolve()}:
        raise ValueError(f"{dest}: the load-test fixture must not be a data folder of the package")
    if dest.exists():
        shutil.rmtree(dest)
    out = dest / "mirror" / REL
    out.mkdir(parents=True)
    with open(src / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if n_ids is not None:
        rows = rows[:n_ids]
    sums = {}
    for name in ("scp_statements.csv",):
        shutil.copyfile(src / name, out / name)
        sums[name] = _sha256(out / name)
    shutil.copyfile(src / "ptbxl_database.csv", out / "ptbxl_database.csv")  # pinned: byte for byte
    sums["ptbxl_database.csv"] = _sha256(out / "ptbxl_database.csv")
    present = [r["filename_lr"] for r in rows if (src / (r["filename_lr"] + ".dat")).is_file()]
    if not present:
        raise FileNotFoundError(f"{src}: no PTB-XL 100-Hz record to reuse")
    dat_sum = {}
    for k, r in enumerate(rows):
        rel = r["filename_lr"]
        if (src / (rel + ".dat")).is_file():
            own = rel
            _link(src / (rel + ".hea"), out / (rel + ".hea"))
        else:
            own = present[k % len(present)]
            old, new = Path(own).name, Path(rel).name
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / (rel + ".hea")).write_text((src / (own + ".hea")).read_text().replace(old, new))
        _link(src / (own + ".dat"), out / (rel + ".dat"))
        if own not in dat_sum:
            dat_sum[own] = _sha256(src / (own + ".dat"))
        sums[rel + ".dat"] = dat_sum[own]
        sums[rel + ".hea"] = _sha256(out / (rel + ".hea"))
    shutil.copyfile(src / "RECORDS", out / "RECORDS")  # pinned: byte for byte
    sums["RECORDS"] = _sha256(out / "RECORDS")
    (out / "SHA256SUMS.txt").write_text("".join(f"{h}  {p}\n" for p, h in sums.items()))
    return dest / "mirror"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> list[tuple[str, str, str]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dest", default=str(DEFAULT_DEST))
    ap.add_argument("--mirror", default=str(MIRROR))
    ap.add_argument("--ids", type=int, default=None, help="first N ids only (default: all 21,799)")
    args = ap.parse_args(argv)
    import torch

    threads = torch.get_num_threads()
    rows = []

    def row(name, value, note=""):
        rows.append((name, value, f"{note}; torch threads {threads}, load {os.getloadavg()[0]:.2f}"))
        print(f"| {name} | {value} | {rows[-1][2]} |", flush=True)

    print("| load-test row | value | notes |\n|---|---|---|")
    t = time.perf_counter()
    base = lay_out(args.dest, mirror=args.mirror, n_ids=args.ids)
    row("fixture lay-out", f"{time.perf_counter() - t:.1f} s", "hard links + SHA256SUMS (not a user cost)")
    digest = _sha256(base / REL / "SHA256SUMS.txt")
    os.environ.update(ECGBOOK_MIRROR=str(base), ECGBOOK_TRUST_CHECKSUMS=digest,
                      ECGBOOK_DATA=str(Path(args.dest) / "data"), ECGBOOK_CACHE=str(Path(args.dest) / "cache"))
    from ecgbook.data.ptbxl import PTBXL
    from ecgbook.evaluation import iterative_stratification

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        db = PTBXL(fs=100)
        row("download + SHA-256 verification", f"{time.perf_counter() - t:.1f} s",
            f"{len(db.available):,} records from the fixture as ECGBOOK_MIRROR")
        t = time.perf_counter()
        db = PTBXL(fs=100)
        row("re-verification of the local copy", f"{time.perf_counter() - t:.1f} s", "second start")
        t = time.perf_counter()
        task = db.task("superdiagnostic")
        row("signal load + cache build (superdiagnostic)", f"{time.perf_counter() - t:.1f} s",
            f"X {tuple(task.X.shape)}, peak RSS {_peak_mb():,.0f} MB")
        t = time.perf_counter()
        task = db.task("rhythm")
        row("second task (cache hit)", f"{time.perf_counter() - t:.1f} s", f"peak RSS {_peak_mb():,.0f} MB")
        all_task = db.task("all")
    t = time.perf_counter()
    iterative_stratification(all_task.Y, groups=all_task.patient_id, k=10, seed=0)
    row("iterative stratification, 10 folds", f"{time.perf_counter() - t:.1f} s",
        f"Y {tuple(all_task.Y.shape)} ('all' task), grouped by patient")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
