"""Profiles: every chapter has parameters in every profile; wrong values fail at once, named."""
from __future__ import annotations

import pytest

from ecgbook import profiles


def test_every_profile_covers_the_same_chapters():
    chapters = set(profiles.PROFILES["tutorial"])
    for name in profiles.PROFILE_NAMES:
        assert set(profiles.PROFILES[name]) == chapters, name
        for chapter in chapters:
            assert set(profiles.PROFILES[name][chapter]) == set(profiles.PROFILES["tutorial"][chapter]), (name, chapter)


def test_resolve_fills_and_overrides():
    p = profiles.resolve("baseline", "classroom", epochs=3)
    assert p["epochs"] == 3 and p["profile"] == "classroom" and p["max_records"] == 1000
    assert profiles.resolve("baseline", "smoke", epochs=None)["epochs"] == profiles.PROFILES["smoke"]["baseline"]["epochs"]
    assert profiles.resolve("baseline", "smoke", lr=1)["lr"] == 1.0
    assert profiles.resolve("baseline", "smoke", tasks="rhythm")["tasks"] == ["rhythm"]
    assert profiles.resolve("mrmnet", "smoke", cpsc_root="/data/cpsc")["cpsc_root"] == "/data/cpsc"
    assert profiles.resolve("baseline", "smoke", seed=0)["seed"] == 0


@pytest.mark.parametrize("given, words", [
    ({"epochs": "abc"}, ["'epochs'", "integer", "'abc'"]),
    ({"max_records": -5}, ["'max_records'", "≥ 1", "-5"]),
    ({"epochs": 2.5}, ["'epochs'", "integer"]),
    ({"epochs": True}, ["'epochs'", "integer"]),
    ({"lr": "fast"}, ["'lr'", "number"]),
    ({"lr": -0.1}, ["'lr'", "positive"]),
    ({"tasks": [1, 2]}, ["'tasks'", "list of names"]),
    ({"seed": -1}, ["'seed'", "≥ 0"]),
])
def test_wrong_values_fail_naming_the_parameter(given, words):
    with pytest.raises(ValueError) as info:
        profiles.resolve("baseline", "tutorial", **given)
    for w in words:
        assert w in str(info.value)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.resolve("baseline", "fast")
    with pytest.raises(ValueError, match="no parameters for chapter"):
        profiles.resolve("nonsense", "tutorial")
    with pytest.raises(ValueError, match="no parameter"):
        profiles.resolve("baseline", "tutorial", epoch=3)


def test_banners():
    assert profiles.banner("smoke").startswith(":::{warning}") and "mean nothing" in profiles.banner("smoke")
    classroom = profiles.banner("classroom")
    assert classroom.startswith(":::{important}") and "ecg_id 1–1000" in classroom and classroom.endswith(":::")
    assert profiles.banner("tutorial").startswith(":::{note}")
    with pytest.raises(ValueError):
        profiles.banner("fast")
