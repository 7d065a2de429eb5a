"""benchmarks/run.py: ratios only from repeated runs, the model registry, the tutorial wall-time table."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_ratio_is_a_ratio_of_medians_and_refuses_single_runs(bench):
    assert bench.ratio([4.0, 2.0, 3.0], [1.0, 1.5, 0.5]) == "3.0×"
    with pytest.raises(ValueError, match="at least 3 repeats"):
        bench.ratio([2.0], [1.0, 1.0, 1.0])
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "1"])


def test_peak_lookup_and_registry(bench):
    assert bench.bf16_peak(torch.device("cpu")) is None
    bench.register_model("tiny", lambda n: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12 * 8, n)),
                         samples=8, n_classes=2)
    assert "tiny" in bench.MODELS and bench.MODELS["tiny"].samples == 8


def test_tutorial_wall_times_read_results_files(bench, tmp_path, monkeypatch):
    folder = tmp_path / "tutorial"
    folder.mkdir()
    (folder / "demo.json").write_text(json.dumps({"provenance": {"wall_time_s": 1234.5, "device": "cpu (2 threads)",
                                                                 "commit": "abcdef0123"}}))
    (folder / "broken.json").write_text("{")
    monkeypatch.setenv("ECGBOOK_RESULTS", str(tmp_path))
    rows = dict((r[0], r[1:]) for r in bench.tutorial_wall_times())
    assert rows["demo"] == ("1,234 s", "cpu (2 threads)", "abcdef01")
    assert rows["broken"][0] == "unreadable"


def test_busy_time_counts_overlapping_kernels_once(bench):
    assert bench.union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == 4
    assert bench.union_length([]) == 0
    assert bench.gpu_busy_fraction(lambda: None, torch.device("cpu")) is None


def test_image_row_times_both_paths(bench):
    from types import SimpleNamespace

    rows = []
    bench.bench_images(SimpleNamespace(batch=2, repeats=3), rows, torch.device("cpu"))
    (name, naive, fast, ratio, _), = rows
    assert "spectrogram images (8 beats" in name and naive.endswith("images/s") and fast.endswith("images/s")
    assert ratio.endswith("×")
