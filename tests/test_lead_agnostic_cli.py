"""The pre-training command line (``python -m ecgbook.lead_agnostic_ssl pretrain``) checks every argument
and torchrun's environment before any work: argparse's exit code 2, a message naming the argument."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecgbook.lead_agnostic_ssl import cli as las


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the command gets as far as building the corpus or training."""
    def boom(*a, **k):
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(las, "build_corpus", boom)
    monkeypatch.setattr(las, "pretrain", boom)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("extra, words", [
    (["--epochs", "-1"], ["--epochs", "> 0", "'-1'"]),
    (["--epochs", "0"], ["--epochs", "> 0", "'0'"]),
    (["--epochs", "2.5"], ["--epochs", "integer"]),
    (["--grad-accum", "0"], ["--grad-accum", "> 0"]),
    (["--lr", "-1"], ["--lr", "> 0"]),
    (["--lr", "nan"], ["--lr", "finite"]),
    (["--lr", "inf"], ["--lr", "finite"]),
    (["--batch-size", "-4"], ["--batch-size", "> 0", "'-4'"]),
    (["--method", "BYOL"], ["--method", "'BYOL'"]),
])
def test_bad_arguments_exit_2_naming_the_argument(extra, words, tmp_path, capsys, no_work):
    with pytest.raises(SystemExit) as info:
        las.main(["pretrain", "--profile", "smoke", "--out", str(tmp_path / "w.pt"), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)


def test_out_that_is_a_folder_or_unwritable_fails_before_training(tmp_path, capsys, no_work):
    for out in (tmp_path, tmp_path / "file.txt" / "w.pt"):
        (tmp_path / "file.txt").write_text("x")
        with pytest.raises(SystemExit) as info:
            las.main(["pretrain", "--profile", "smoke", "--out", str(out)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--out" in err and str(out) in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(SystemExit):
            las.main(["pretrain", "--profile", "smoke", "--out", str(locked / "w.pt")])


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "abc"}, ["WORLD_SIZE='abc'", "integer ≥ 1"]),
    ({"WORLD_SIZE": "0"}, ["WORLD_SIZE='0'"]),
    ({"WORLD_SIZE": "2", "RANK": "2"}, ["RANK='2'", "[0, 1]"]),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"}, ["LOCAL_RANK='-1'"]),
    ({"WORLD_SIZE": "2"}, ["WORLD_SIZE=2", "MASTER_ADDR", "torchrun"]),
])
def test_bad_torchrun_environment_exits_2_naming_the_variable(env, words, tmp_path, capsys, monkeypatch, no_work):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as info:
        las.main(["pretrain", "--profile", "smoke", "--out", str(tmp_path / "w.pt")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)


def test_unset_arguments_take_the_profile_values_and_given_ones_win(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(las, "build_corpus", lambda **k: "corpus")
    monkeypatch.setattr(las, "pretrain", lambda model, corpus, obj, cfg, **k: seen.append(cfg)
                        or {"history": [{"epoch": 1}], "segments_per_s": 1.0})
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    out = str(tmp_path / "new" / "w.pt")  # a folder still to be made is fine
    assert las.main(["pretrain", "--profile", "smoke", "--out", out]) == 0
    assert las.main(["pretrain", "--profile", "smoke", "--out", out, "--epochs", "3", "--lr", "0.01",
                     "--batch-size", "5", "--grad-accum", "2"]) == 0
    from ecgbook.profiles import PROFILES
    P = PROFILES["smoke"]["lead_agnostic_ssl"]
    assert (seen[0].epochs, seen[0].batch_size, seen[0].lr) == (P["pretrain_epochs"], P["pretrain_batch_size"],
                                                                P["pretrain_lr"])
    assert (seen[1].epochs, seen[1].batch_size, seen[1].lr, seen[1].grad_accum) == (3, 5, 0.01, 2)


def test_command_line_error_has_no_traceback(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "WORLD_SIZE": "abc", "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ecgbook.lead_agnostic_ssl", "pretrain", "--profile", "smoke",
                        "--out", str(tmp_path / "w.pt")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "WORLD_SIZE='abc'" in r.stderr, r.stderr
