"""Issue 9, fault 2: two processes on one data folder, with real concurrent processes.

Each test starts two Python processes that do the same thing at the same moment (they wait for a
"go" file), slowed down inside the critical section so that, without the locks, they would
overlap: the same download (one shared ``.part``), the same CinC 2017 extraction, the same
signal-cache build. Both must succeed, with the work done once and the result intact.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ecgbook.data import cinc2017 as cinc
from ecgbook.data.download import parse_sha256sums, sha256sum

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.concurrency

PRELUDE = '''
import os, sys, time
from pathlib import Path
work = Path(sys.argv[1]); me = sys.argv[2]
(work / f"ready-{me}").touch()
while not (work / "go").exists():
    time.sleep(0.01)
'''


def _run_pair(tmp_path: Path, body: str, env: dict | None = None, timeout: float = 120) -> list[str]:
    """Run ``body`` in two processes started together; return their stdout (asserting exit 0)."""
    script = tmp_path / "worker.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "ECGBOOK_PROGRESS": "0", "OMP_NUM_THREADS": "1",
                   **(env or {})}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=environment) for i in (1, 2)]
    deadline = time.time() + timeout
    while not all((tmp_path / f"ready-{i}").exists() for i in (1, 2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)
    (tmp_path / "go").touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"worker failed (exit {p.returncode}):\n{stderr}"
        out.append(stdout)
    return out


def test_two_downloads_of_one_file(tmp_path, mirror):
    rel = "records100/00000/00001_lr.dat"
    src = mirror / "physionet.org/files/ptb-xl/1.0.3"
    sha = parse_sha256sums((src / "SHA256SUMS.txt").read_text())[rel]
    dest = tmp_path / "db" / rel
    out = _run_pair(tmp_path, f'''
        from ecgbook.data import download
        download.CHUNK = 1000
        real_open = download._open
        def slow_open(source, offset):
            stream, total, resumed = real_open(source, offset)
            print("opened source")
            class Slow:
                def read(self, n):
                    time.sleep(0.02)
                    return stream.read(n)
                def __enter__(self): return self
                def __exit__(self, *a): stream.close()
            return Slow(), total, resumed
        download._open = slow_open
        download.fetch(download.physionet_url("ptb-xl", "1.0.3", {rel!r}), {str(dest)!r}, {sha!r})
        print("done")
    ''')
    assert all("done" in o for o in out)
    assert sum(o.count("opened source") for o in out) == 1  # the second process reused the first's file
    assert sha256sum(dest) == sha
    assert not dest.with_name(dest.name + ".part").exists()


@pytest.fixture()
def small_archive(tmp_path, mirror) -> Path:
    """60 real members of the mirror's training2017.zip in a small archive."""
    path = tmp_path / "training2017.zip"
    with zipfile.ZipFile(mirror / "physionet.org/files/challenge-2017/1.0.0/training2017.zip") as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in [n for n in src.namelist() if n.endswith((".hea", ".mat"))][:60]:
            dst.writestr(name, src.read(name))
    return path


def test_two_cinc2017_extractions(tmp_path, small_archive):
    dest = tmp_path / "extracted"
    out = _run_pair(tmp_path, f'''
        import zipfile
        from ecgbook.data import cinc2017
        real = zipfile.ZipFile.extract
        calls = []
        def slow(self, member, path=None, pwd=None):
            calls.append(member)
            time.sleep(0.02)
            return real(self, member, path, pwd)
        zipfile.ZipFile.extract = slow
        cinc2017.safe_extract({str(small_archive)!r}, {str(dest)!r})
        print("extracted", len(calls))
    ''')
    counts = sorted(int(o.split()[-1]) for o in out)
    assert counts == [0, 60]  # one process extracted, the other waited and reused it
    marker = cinc.read_marker(dest)
    assert marker is not None and len(marker["files"]) == 60
    for name, (size, _) in marker["files"].items():
        assert (dest / name).stat().st_size == size
    assert not list(tmp_path.glob(".extracted.partial-*"))


def test_two_signal_cache_builds(tmp_path, mirror):
    records = mirror / "physionet.org/files/ptb-xl/1.0.3/records100/00000"
    out = _run_pair(tmp_path, f'''
        import numpy as np
        from ecgbook.data.cache import cached_signals
        from ecgbook.data.records import read_record
        built = []
        def read(i):
            built.append(i)
            time.sleep(0.03)
            return read_record(Path({str(records)!r}) / f"{{i:05d}}_lr").signal
        ids = list(range(1, 21))
        X, manifest = cached_signals("ptbxl-test", ids, [], read, leads=["x"] * 12, fs=100,
                                     cache_dir={str(tmp_path / "cache")!r}, content_hash="c1")
        np.save(work / f"out-{{me}}.npy", np.asarray(X))
        print("read", len(built))
    ''')
    counts = sorted(int(o.split()[-1]) for o in out)
    assert counts == [0, 20]  # built once; the second process opened the finished cache
    a, b = np.load(tmp_path / "out-1.npy"), np.load(tmp_path / "out-2.npy")
    np.testing.assert_array_equal(a, b)
    from ecgbook.data.records import read_record
    np.testing.assert_array_equal(a[4], read_record(records / "00005_lr").signal)
    assert not list((tmp_path / "cache").rglob("*.part"))
