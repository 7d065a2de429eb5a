"""Profiles: every chapter has parameters in every profile; wrong values fail at once, named."""
from __future__ import annotations

import ast
import re
from pathlib import Path

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
    with pytest.raises(ValueError, match="'seeds'.*integer"):
        profiles.resolve("multimodal_ssl", "smoke", seeds=["a"])
    assert profiles.resolve("baseline", "smoke", seeds=[3, 1])["seeds"] == [3, 1]
    assert profiles.resolve("baseline", "smoke", seeds=4)["seeds"] == [4]


@pytest.mark.parametrize("given, words", [
    ({"epochs": "abc"}, ["'epochs'", "integer", "'abc'"]),
    ({"max_records": -5}, ["'max_records'", "≥ 1", "-5"]),
    ({"epochs": 2.5}, ["'epochs'", "integer"]),
    ({"epochs": True}, ["'epochs'", "integer"]),
    ({"lr": "fast"}, ["'lr'", "number"]),
    ({"lr": -0.1}, ["'lr'", "> 0", "-0.1"]),
    ({"tasks": [1, 2]}, ["'tasks'", "one of", "'rhythm'", "got 1"]),
    ({"seeds": [-1]}, ["'seeds'", "≥ 0"]),
    ({"seeds": [0, 0]}, ["'seeds'", "distinct"]),
    ({"seeds": "abc"}, ["'seeds'", "integer", "'abc'"]),
])
def test_wrong_values_fail_naming_the_parameter(given, words):
    with pytest.raises(ValueError) as info:
        profiles.resolve("baseline", "tutorial", **given)
    for w in words:
        assert w in str(info.value)


def test_every_parameter_has_a_spec_and_every_profile_value_passes():
    for chapter in profiles.chapters():
        specs = profiles.specs(chapter)
        for name in profiles.PROFILE_NAMES:
            values = profiles.PROFILES[name][chapter]
            assert set(values) == set(specs), (chapter, name, set(values) ^ set(specs))
            for param, value in values.items():
                assert profiles.check(chapter, param, value) == value, (chapter, name, param)
            assert profiles.resolve(chapter, name, **values) == {**values, "profile": name}


def test_specs_take_names_from_the_package():
    from ecgbook.data.ptbxl import TASKS
    from ecgbook.lead_agnostic_ssl import LEAD_SUBSETS, METHODS
    from ecgbook.models.mrmnet import CONFIG_NAMES
    assert profiles.specs("baseline")["tasks"].item.choices == TASKS
    assert profiles.specs("mrmnet")["variants"].item.choices == CONFIG_NAMES
    assert profiles.specs("lead_agnostic_ssl")["subsets"].item.choices == tuple(LEAD_SUBSETS)
    assert set(profiles.specs("lead_agnostic_ssl")["finetune_methods"].item.choices) == set(METHODS) | {"random init"}
    with pytest.raises(ValueError, match="no parameter table"):
        profiles.specs("nonsense")


# one or more per kind of spec: int (low / high / None), float (open / closed / infinite), str choices,
# bool, path, list (empty / repeated / item choices / item range), the examples
@pytest.mark.parametrize("chapter, given, words", [
    ("baseline", {"lr": float("inf")}, ["'lr'", "finite", "inf"]),
    ("baseline", {"lr": float("nan")}, ["'lr'", "finite"]),
    ("baseline", {"lr": 0}, ["'lr'", "> 0", "got 0"]),
    ("multimodal_ssl", {"fractions": [2.0]}, ["'multimodal_ssl'", "'fractions'", "(0, 1]", "2.0"]),
    ("multimodal_ssl", {"fractions": [0.0]}, ["'fractions'", "(0, 1]"]),
    ("lead_agnostic_ssl", {"label_fractions": [-0.1, 1.0]}, ["'label_fractions'", "(0, 1]", "-0.1"]),
    ("baseline", {"tasks": ["nosuch"]}, ["'tasks'", "'nosuch'", "'superdiagnostic'"]),
    ("mrmnet", {"variant_task": "nosuch"}, ["'variant_task'", "'nosuch'", "'rhythm'"]),
    ("lead_agnostic_ssl", {"subsets": [13]}, ["'subsets'", "13", "[12, 6, 3, 2, 1]"]),
    ("lead_agnostic_ssl", {"ident_subsets": [12, 12]}, ["'ident_subsets'", "repeated"]),
    ("lead_agnostic_ssl", {"methods": ["W2V", "BYOL"]}, ["'methods'", "'BYOL'", "'W2V+CMSC+RLM'"]),
    ("lead_agnostic_ssl", {"methods": []}, ["'methods'", "non-empty", "empty list"]),
    ("lead_agnostic_ssl", {"finetune_methods": ["random"]}, ["'finetune_methods'", "'random init'"]),
    ("lead_agnostic_ssl", {"size": "huge"}, ["'size'", "'huge'", "'tutorial'"]),
    ("lead_agnostic_ssl", {"leak_finetune_epochs": -1}, ["'leak_finetune_epochs'", "≥ 0", "-1"]),
    ("lead_agnostic_ssl", {"mitdb_ident_records": 23}, ["'mitdb_ident_records'", "[1, 22]", "23"]),
    ("lead_agnostic_ssl", {"pretrain_epochs": 0}, ["'pretrain_epochs'", "≥ 1", "got 0"]),
    ("multimodal_ssl", {"curve_methods": ["dino_gate", "simclr_gate"]}, ["'curve_methods'", "'simclr_gate'"]),
    ("multimodal_ssl", {"table_methods": ["nosuch"]}, ["'table_methods'", "'baseline'"]),
    ("multimodal_ssl", {"encoder_size": "big"}, ["'encoder_size'", "'small'"]),
    ("multimodal_ssl", {"momentum": 1.0}, ["'momentum'", "[0, 1)"]),
    ("multimodal_ssl", {"simclr": "yes"}, ["'simclr'", "True or False"]),
    ("multimodal_ssl", {"challenge_root": 3}, ["'challenge_root'", "folder"]),
    ("transfer", {"backbones": ["resnet50"]}, ["'backbones'", "'densenet121'"]),
    ("transfer", {"weights": ["imagenet21k"]}, ["'weights'", "'random'"]),
    ("transfer", {"classifiers": ["svm"]}, ["'classifiers'", "'linear_svm'"]),
    ("transfer", {"folds": 1}, ["'folds'", "≥ 2"]),
    ("transfer", {"image_size": 8}, ["'image_size'", "≥ 32"]),
    ("mrmnet", {"variants": ["nosuch"]}, ["'variants'", "'no_mutual'"]),
    ("mrmnet", {"n_boot": 0}, ["'n_boot'", "≥ 1"]),
    ("primer", {"mitdb_records": 49}, ["'mitdb_records'", "[1, 48]"]),
    ("transfer", {"seed": -1}, ["'seed'", "≥ 0"]),
])
def test_out_of_range_values_fail_naming_the_parameter(chapter, given, words):
    with pytest.raises(ValueError) as info:
        profiles.resolve(chapter, "smoke", **given)
    assert f"chapter {chapter!r}" in str(info.value)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@pytest.mark.parametrize("chapter, given, words", [
    ("lead_agnostic_ssl", {"methods": ["CMSC"], "finetune_methods": ["W2V", "random init"]},
     ["'finetune_methods'", "['W2V']", "'methods'"]),
    ("lead_agnostic_ssl", {"ptbxl_only_methods": ["W2V+RLM"]}, ["'ptbxl_only_methods'", "['W2V+RLM']"]),
    ("multimodal_ssl", {"simclr": False}, ["simclr_time", "simclr=True"]),  # smoke's table_methods has it
])
def test_parameters_that_depend_on_each_other(chapter, given, words):
    with pytest.raises(ValueError) as info:
        profiles.resolve(chapter, "smoke", **given)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert profiles.resolve("lead_agnostic_ssl", "smoke", methods=["CMSC"], finetune_methods=["random init"])


def test_none_only_where_it_means_something():
    assert profiles.check("baseline", "patience", None) is None
    with pytest.raises(ValueError, match="'epochs'.*None"):
        profiles.check("baseline", "epochs", None)


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
    assert classroom.startswith(":::{important}") and "ecg_id 1–1012" in classroom and classroom.endswith(":::")
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


def _chapter_cells():
    """``{results name: (page, parameter-cell names, {resolve keyword: value node})}`` per chapter page."""
    def source(block):  # a code cell's code, without its options (":tags: ..." or a "---" block)
        if block.startswith("---\n"):
            block = block.split("\n---\n", 1)[1]
        return "\n".join(line for line in block.split("\n") if not line.startswith((":", "%", "!")))

    out = {}
    for page in sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        cell = re.search(r"```\{code-cell\} ipython3\n:tags: \[parameters\]\n(.*?)```", text, re.S)
        if not cell:
            continue
        assigned = [t.id for node in ast.parse(cell.group(1)).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
        if assigned == ["profile"]:  # a page without parameters of its own (the course page)
            continue
        tree = ast.parse("\n".join(source(block) for block in re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, re.S)
                                   if "profiles.resolve(" in block and ":tags: [parameters]" not in block))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "resolve"
                 and n.args and isinstance(n.args[0], ast.Constant)]
        own = [c for c in calls if len(c.keywords) > 0]  # B = profiles.resolve("baseline", profile): a reader
        assert len(own) == 1, f"{page.name}: expected one profiles.resolve call with the chapter's parameters"
        call = own[0]
        keywords = {}
        for kw in call.keywords:
            if kw.arg is not None:
                keywords[kw.arg] = kw.value
            else:  # **{k: v for k, v in dict(a=a, ...).items() if v is not None}
                inner = [n for n in ast.walk(kw.value) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "dict"]
                for k in inner[0].keywords:
                    keywords[k.arg] = k.value
        out[call.args[0].value] = (page.name, assigned, keywords)
    return out


def test_each_chapter_defines_its_parameters_once():
    """The typed table (profiles.specs) is the one definition: the page's parameters cell, its resolve
    call and every profile's values name exactly its parameters, each passed through unchanged."""
    pages = _chapter_cells()
    assert set(pages) == set(profiles.PROFILES["tutorial"]), "a chapter without its parameters cell"
    for chapter, (page, assigned, keywords) in pages.items():
        names = set(profiles.specs(chapter))
        assert assigned[0] == "profile" and len(assigned) == len(set(assigned)), f"{page}: {assigned}"
        assert set(assigned) - {"profile"} == names, (
            f"{page}: parameters cell {sorted(set(assigned) - {'profile'} ^ names)} differ from profiles.specs")
        assert set(keywords) == names, f"{page}: resolve call {sorted(set(keywords) ^ names)} differ from profiles.specs"
        not_passed_through = [k for k, v in keywords.items() if not (isinstance(v, ast.Name) and v.id == k)]
        assert not_passed_through == [], f"{page}: resolve must pass each parameter as name=name: {not_passed_through}"
        for profile in profiles.PROFILES:
            assert set(profiles.PROFILES[profile][chapter]) == names, (profile, chapter)


def test_the_classroom_banner_states_the_records_the_classroom_runs_use(mirror):
    """The banner said "ecg_id 1–1000 (the 994 records ...)" while a run takes the first 1,000
    metadata rows (ids up to 1012): the text and every classroom PTB-XL budget must agree."""
    import pandas as pd

    root = mirror / "physionet.org" / "files" / "ptb-xl" / "1.0.3"
    ids = pd.read_csv(root / "ptbxl_database.csv", usecols=["ecg_id"])["ecg_id"].to_numpy()
    for chapter, key in [("primer", "max_records"), ("baseline", "max_records"), ("multimodal_ssl", "max_records"),
                         ("mrmnet", "max_records"), ("lead_agnostic_ssl", "ptbxl_records")]:
        n = profiles.resolve(chapter, "classroom")[key]
        assert f"the first {n:,} records" in profiles.CLASSROOM_SUBSETS["PTB-XL"], chapter
        assert f"ecg_id 1–{ids[n - 1]}" in profiles.CLASSROOM_SUBSETS["PTB-XL"], chapter
    assert profiles.CLASSROOM_SUBSETS["PTB-XL"] in profiles.banner("classroom")
