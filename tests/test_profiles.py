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
    assert profiles.resolve("multimodal_ssl", "smoke", seeds=[0, 1])["seeds"] == [0, 1]
    assert profiles.resolve("multimodal_ssl", "smoke", seeds=3)["seeds"] == [3]
    assert profiles.resolve("multimodal_ssl", "smoke", fractions=[0.5, 1.0])["fractions"] == [0.5, 1.0]
    with pytest.raises(ValueError, match="'seeds'.*integers"):
        profiles.resolve("multimodal_ssl", "smoke", seeds=["a"])
    assert profiles.resolve("baseline", "smoke", seeds=[3, 1])["seeds"] == [3, 1]
    assert profiles.resolve("baseline", "smoke", seeds=4)["seeds"] == [4]


@pytest.mark.parametrize("given, words", [
    ({"epochs": "abc"}, ["'epochs'", "integer", "'abc'"]),
    ({"max_records": -5}, ["'max_records'", "≥ 1", "-5"]),
    ({"epochs": 2.5}, ["'epochs'", "integer"]),
    ({"epochs": True}, ["'epochs'", "integer"]),
    ({"lr": "fast"}, ["'lr'", "number"]),
    ({"lr": -0.1}, ["'lr'", "positive"]),
    ({"tasks": [1, 2]}, ["'tasks'", "list of names"]),
    ({"seeds": [-1]}, ["'seeds'", "≥ 0"]),
    ({"seeds": [0, 0]}, ["'seeds'", "distinct"]),
    ({"seeds": "abc"}, ["'seeds'", "integers"]),
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


def test_tutorial_ptbxl_is_a_fixed_record_set_not_all_present(mirror):
    """Tutorial = PTB-XL ecg_id 1–1999 (1,987 records) whatever the source holds (issue 22).

    Before, tutorial passed ``max_records=None`` (all records present): 1,987 on the mirror but
    21,799 on a machine with the full dataset. The selection is the first N metadata rows, so the
    fixed number selects the same ids from the (pinned, 21,799-row) 1.0.3 metadata everywhere.
    """
    import warnings

    import pandas as pd

    from ecgbook.data.ptbxl import PTBXL

    root = mirror / "physionet.org" / "files" / "ptb-xl" / "1.0.3"
    ids = pd.read_csv(root / "ptbxl_database.csv", usecols=["ecg_id"])["ecg_id"].to_numpy()
    assert len(ids) == 21799  # the full metadata: what a machine with internet would list
    expected = ids[ids <= 1999]
    assert len(expected) == profiles.TUTORIAL_PTBXL_RECORDS == 1987
    for chapter, key in [("primer", "max_records"), ("baseline", "max_records"), ("multimodal_ssl", "max_records"),
                         ("mrmnet", "max_records"), ("lead_agnostic_ssl", "ptbxl_records")]:
        assert profiles.resolve(chapter, "tutorial")[key] == profiles.TUTORIAL_PTBXL_RECORDS, chapter
        assert profiles.PROFILES["paper"][chapter][key] is None, chapter  # paper: the full data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = PTBXL(root, download=False, max_records=profiles.resolve("baseline", "tutorial")["max_records"])
    # the committed tutorial results used exactly these records (all present on the mirror)
    assert db.requested == 1987 and list(db.available) == list(expected) and len(db.unverified) == 0
    assert "ecg_id 1–1999" in profiles.DESCRIPTIONS["tutorial"]
