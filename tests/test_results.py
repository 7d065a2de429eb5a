"""Results files, profiles and the book runner's table of contents."""
from __future__ import annotations

import json

import pytest

from ecgbook import book, profiles
from ecgbook.results import SCHEMA, metrics_table, read_results, write_results


def test_write_and_read_results(tmp_path):
    path = write_results("demo", "smoke", metrics=[{"metric": "macro_auroc", "value": 0.9, "task": "x",
                                                     "ci_low": float("nan")}],
                         params={"epochs": 1}, seed=3, device="cpu", wall_time_s=1.234,
                         datasets={"d": {"manifest_hash": "abc", "records": 2}}, root=tmp_path)
    assert path == tmp_path / "smoke" / "demo.json"
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA and doc["profile"] == "smoke"
    prov = doc["provenance"]
    assert prov["seed"] == 3 and prov["device"] == "cpu" and prov["datasets"]["d"]["manifest_hash"] == "abc"
    assert len(prov["commit"]) in (40, 7) or prov["commit"] == "unknown"
    assert doc["metrics"][0]["ci_low"] is None  # NaN stored as null
    assert metrics_table(read_results("demo", "smoke", root=tmp_path)).value.tolist() == [0.9]


def test_results_errors(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        write_results("demo", "smoke", metrics=[{"value": 1}], params={}, seed=0, device="cpu",
                      wall_time_s=0, datasets={}, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="execute the chapter"):
        read_results("nothing", "smoke", root=tmp_path)


def test_profiles_resolve():
    p = profiles.resolve("baseline", "smoke", epochs=None, lr=0.5)
    assert p["epochs"] == profiles.PROFILES["smoke"]["baseline"]["epochs"] and p["lr"] == 0.5
    assert p["profile"] == "smoke"
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.resolve("baseline", "fast")
    with pytest.raises(ValueError, match="no parameter"):
        profiles.resolve("baseline", "smoke", learning_rate=1)
    assert "mean nothing" in profiles.banner("smoke")


def test_every_profile_covers_every_chapter():
    chapters = {name for prof in profiles.PROFILES.values() for name in prof}
    for prof in profiles.PROFILE_NAMES:
        assert set(profiles.PROFILES[prof]) == chapters, prof
        for chapter in chapters:
            assert set(profiles.PROFILES[prof][chapter]) == set(profiles.PROFILES["tutorial"][chapter])


def test_toc_chapters_exist_and_notebooks_take_profile():
    files = book.chapter_files()
    assert files[0].name == "00_introduction.md"
    notebooks = [f for f in files if book.is_notebook(f)]
    assert notebooks
    for nb in notebooks:
        text = nb.read_text()
        assert ":tags: [parameters]" in text and 'profile = "tutorial"' in text, nb


def test_provenance_records_threads_and_cpu_model(tmp_path):
    import os

    import torch

    from ecgbook.results import cpu_model
    path = write_results("demo", "smoke", metrics=[{"metric": "m", "value": 1.0}], params={}, seed=0, device="cpu",
                         wall_time_s=0.0, datasets={}, root=tmp_path)
    prov = json.loads(path.read_text())["provenance"]
    assert prov["torch_threads"] == torch.get_num_threads() >= 1
    assert prov["cpu"] == cpu_model() and prov["cpu"] != "unknown"
    assert f"({os.cpu_count()} logical cores)" in prov["cpu"]
    if os.path.exists("/proc/cpuinfo"):
        names = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.lower().startswith("model name")]
        if names:
            assert prov["cpu"].startswith(names[0])
    assert prov["machine"] and "python" in prov and "torch" in prov


def test_signed_differences_never_show_minus_zero():
    from ecgbook.results import signed, signed_interval

    assert signed(0.047) == "+0.047" and signed(-0.0468) == "-0.047"
    assert signed(-0.0001) == "+0.000" and signed(-0.0) == "+0.000" and signed(0.0004) == "+0.000"
    assert signed(-0.0006) == "-0.001" and signed(float("nan")) == "nan" and signed(-0.04, 1) == "+0.0"
    assert signed_interval(-0.0001, -0.013, 0.011) == "+0.000 [-0.013, +0.011]"
