"""Results files, profiles and the book runner's table of contents."""
from __future__ import annotations

import errno
import json
import os

import pytest

from ecgbook import book, profiles
from ecgbook.results import SCHEMA, ResultsError, metrics_table, read_results, write_results


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


def _good(chapter="demo", profile="smoke", **changes):
    """A valid results document (as write_results writes it), with top-level ``changes``."""
    doc = {"schema": SCHEMA, "chapter": chapter, "profile": profile, "created": "2026-12-01T10:00:00+00:00",
           "provenance": {"commit": "0123456789abcdef", "dirty": False, "profile": profile, "device": "cpu",
                          "seed": 0, "wall_time_s": 12.5, "datasets": {}},
           "params": {}, "metrics": [{"metric": "macro_auroc", "value": 0.9}, {"metric": "f1", "value": None}],
           "reference": [], "extra": {}}
    doc.update(changes)
    return doc


def _put(tmp_path, content, profile="smoke", chapter="demo"):
    path = tmp_path / profile / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_read_results_accepts_a_valid_file(tmp_path):
    _put(tmp_path, _good())
    assert read_results("demo", "smoke", root=tmp_path)["metrics"][1]["value"] is None


@pytest.mark.parametrize("content, reason", [
    ('{"schema": "ecgbook.results/1", "chapter": ', "not valid JSON .*line 1, column"),
    (b'{"schema": "ecgbook.results/1", "note": "\xff\xfe"}', "not UTF-8"),
    ([1, 2], "expected a JSON object, found a JSON list"),
    (_good(schema="ecgbook.results/2"), "schema 'ecgbook.results/2', expected 'ecgbook.results/1'"),
    (_good(chapter="baseline"), "written by chapter 'baseline', expected chapter 'demo'"),
    (_good(profile="tutorial"), "written by profile 'tutorial', expected profile 'smoke'"),
    (_good(metrics={"metric": "f1", "value": 1}), "'metrics' is dict, expected a JSON list"),
    (_good(metrics=[["f1", 1]]), "metrics row 0 is a list"),
    (_good(metrics=[{"metric": "f1", "value": "0.9"}]), r"metrics row 0 \(f1\): 'value' is '0.9'"),
    (_good(metrics=[{"metric": "f1"}]), "'value' is 'missing'"),
    (_good(reference=["paper"]), "reference row 0 is a str"),
    (_good(extra=None), "'extra' is NoneType"),
])
def test_read_results_refuses_a_bad_file_naming_it(tmp_path, content, reason):
    path = _put(tmp_path, content)
    with pytest.raises(ResultsError, match=reason) as info:
        read_results("demo", "smoke", root=tmp_path)
    assert str(path) in str(info.value) and info.value.path == path
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working


def test_read_results_refuses_a_profile_mismatch_inside_provenance(tmp_path):
    doc = _good()
    doc["provenance"]["profile"] = "tutorial"
    _put(tmp_path, doc)
    with pytest.raises(ResultsError, match="provenance.profile 'tutorial' differs"):
        read_results("demo", "smoke", root=tmp_path)


@pytest.mark.parametrize("wall", [-3.0, "12.5", None, True, "NaN", "Infinity"])
def test_read_results_refuses_a_bad_wall_time(tmp_path, wall):
    doc = _good()
    doc["provenance"]["wall_time_s"] = wall
    text = json.dumps(doc)
    if wall in ("NaN", "Infinity"):  # what json.dumps(float("nan")) writes: Python's json reads it back as a float
        text = text.replace(f'"{wall}"', wall)
    _put(tmp_path, text)
    with pytest.raises(ResultsError, match="provenance.wall_time_s is .*expected a finite number of seconds >= 0"):
        read_results("demo", "smoke", root=tmp_path)


def test_write_results_refuses_what_read_results_would_refuse(tmp_path):
    with pytest.raises(ResultsError, match="wall_time_s is -1.0"):
        write_results("demo", "smoke", metrics=[{"metric": "m", "value": 1.0}], params={}, seed=0, device="cpu",
                      wall_time_s=-1, datasets={}, root=tmp_path)
    assert not (tmp_path / "smoke").exists() or not any((tmp_path / "smoke").iterdir())


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_disk_full_while_writing_results_keeps_the_old_file(tmp_path, monkeypatch, failing):
    kw = dict(params={}, seed=0, device="cpu", wall_time_s=1.0, datasets={}, root=tmp_path)
    path = write_results("demo", "smoke", metrics=[{"metric": "m", "value": 1.0}], **kw)
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, full)
    with pytest.raises(OSError, match="No space left on device") as info:
        write_results("demo", "smoke", metrics=[{"metric": "m", "value": 2.0}], **kw)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["demo.json"]  # no .part left behind


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
