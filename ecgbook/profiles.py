"""Run profiles: named sets of papermill parameters for every chapter.

``smoke``
    CI on CPU in minutes: tiny data, one or two epochs. Proves the plumbing only; its numbers mean
    nothing, and the rendered pages say so.
``classroom``
    A course on laptops: every chapter in about ten minutes or less on a 2-core CPU, on a fixed,
    named subset of the offline mirror's records (:data:`CLASSROOM_SUBSETS`), with a small
    training budget. Its numbers are real but small-budget: they show the method's behaviour,
    not the paper's figures.
``tutorial`` (default)
    A fixed, named record set (:data:`TUTORIAL_SUBSETS`): the offline mirror's data (PTB-XL ecg_id
    1–1999, 1,987 records), the same on a machine with the full datasets; real numbers, minutes on a GPU.
``paper``
    The papers' full protocols on the full datasets, for users who have downloaded them.

A chapter's parameters cell sets ``profile = "tutorial"`` and every other parameter to ``None``;
:func:`resolve` fills each ``None`` from the profile, so ``papermill -p profile smoke`` is enough,
and ``-p epochs 3`` overrides one value. :func:`resolve` checks every given value against the
type the profiles use for that parameter, so a wrong value fails at once, naming the parameter.
"""
from __future__ import annotations

from pathlib import Path

PROFILE_NAMES = ("smoke", "classroom", "tutorial", "paper")

#: The classroom profile's data, by name: fixed subsets of the offline mirror (see
#: ``../shared/README.md``), the same on every machine.
CLASSROOM_SUBSETS = {
    "PTB-XL": "ecg_id 1–1000 (the 994 records of them that PTB-XL 1.0.3 keeps), 100 Hz",
    "MIT-BIH": "the first 11 records of each of de Chazal's DS1 and DS2 (primer); all 44 "
               "non-paced records, at most 250 beats per class (transfer)",
    "CinC 2017": "records A00001–A01000",
}

#: The tutorial profile's PTB-XL records: the first 1,987 rows of PTB-XL 1.0.3's
#: ``ptbxl_database.csv``, i.e. every ecg_id 1–1999 that 1.0.3 keeps (the offline mirror holds
#: exactly these). A number, not "all present", so a machine with the full dataset runs the same set.
TUTORIAL_PTBXL_RECORDS = 1987
TUTORIAL_SUBSETS = {
    "PTB-XL": f"ecg_id 1–1999 (the {TUTORIAL_PTBXL_RECORDS:,} records of them that PTB-XL 1.0.3 keeps), 100 Hz",
    "MIT-BIH": "all 48 records",
    "CinC 2017": "all 8,528 training records",
}

DESCRIPTIONS = {
    "smoke": "CI plumbing check on CPU with tiny data and 1-2 epochs: the numbers on this page mean nothing.",
    "classroom": ("a fixed subset of the mirror (" + "; ".join(f"{k}: {v}" for k, v in CLASSROOM_SUBSETS.items())
                  + ") and a small training budget, so that the chapter runs in about ten minutes on a "
                  "2-core laptop CPU. The numbers are real, but small-budget: they show how the method "
                  "behaves, not what the paper reports."),
    "tutorial": ("a fixed record set, the offline mirror's (" + "; ".join(f"{k}: {v}" for k, v in TUTORIAL_SUBSETS.items())
                 + "), the same on a machine with the full datasets; real numbers from a short training budget."),
    "paper": "The paper's full protocol on the full datasets (all 21,799 PTB-XL records).",
}

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "multimodal_ssl": {"max_records": 300, "tasks": ["superdiagnostic"], "encoder_size": "tiny", "out_dim": 256,
                           "n_local": 2, "local_samples": 100, "pretrain_epochs": 1, "pretrain_batch": 64,
                           "pretrain_lr": 5e-4, "momentum": 0.9, "simclr": True, "ft_epochs": 1, "ft_batch": 64,
                           "ft_lr": 1e-3, "fractions": [0.1, 1.0], "seeds": [0],
                           "curve_methods": ["dino_gate", "random_gate"],
                           "table_methods": ["dino_concat", "dino_time", "dino_spec", "simclr_time", "baseline"],
                           "n_boot": 50, "challenge_root": None},
        "primer": {"max_records": 300, "mitdb_records": 4},
        "baseline": {"max_records": 400, "tasks": ["superdiagnostic"], "epochs": 2, "batch_size": 64,
                     "lr": 1e-2, "patience": None, "n_boot": 50, "seeds": [0, 1, 2]},
        "transfer": {"cinc_records": 200, "mitdb_per_class": 40, "backbones": ["densenet121", "efficientnet_lite0"],
                     "weights": ["imagenet", "random"], "image_size": 64, "classifiers": ["linear_svm", "logreg"],
                     "folds": 3, "batch_size": 32, "seed": 0},
        # same records, task and seeds as the baseline's smoke entry, so the reuse path runs in CI
        "mrmnet": {"max_records": 400, "tasks": ["superdiagnostic"], "variants": ["released"],
                   "variant_task": "superdiagnostic", "epochs": 2, "batch_size": 64, "lr": 1e-3,
                   "patience": None, "n_boot": 50, "seeds": [0, 1, 2], "cpsc_root": None},
        "lead_agnostic_ssl": {"ptbxl_records": 300, "cinc_records": 16, "cinc_pairs_per_record": 1,
                              "mitdb_pairs_per_record": 2, "size": "smoke", "methods": ["W2V", "CMSC", "W2V+CMSC+RLM"],
                              "ptbxl_only_methods": [], "pretrain_epochs": 1, "pretrain_batch_size": 16,
                              "pretrain_lr": 1e-3, "subsets": [12, 1], "label_fractions": [0.1, 1.0], "finetune_methods": ["W2V+CMSC+RLM", "random init"],
                              "finetune_subsets": [12], "seeds": [0], "finetune_epochs": 1, "finetune_lr": 1e-3,
                              "baseline_subsets": [12], "baseline_epochs": 1, "ident_subsets": [12, 1],
                              "mitdb_ident_records": 4, "leak_finetune_epochs": 0, "batch_size": 32, "n_boot": 20,
                              "seed": 0, "challenge2021_root": None, "arcface_epochs": 1, "arcface_lr": 1e-3,
                              "arcface_recordings": 64},
    },
    "classroom": {
        "multimodal_ssl": {"max_records": 1000, "tasks": ["superdiagnostic"], "encoder_size": "small",
                           "out_dim": 2048, "n_local": 2, "local_samples": 100, "pretrain_epochs": 5,
                           "pretrain_batch": 64, "pretrain_lr": 1e-3, "momentum": 0.97, "simclr": False,
                           "ft_epochs": 5, "ft_batch": 64, "ft_lr": 1e-3, "fractions": [0.01, 0.1, 1.0], "seeds": [0],
                           "curve_methods": ["dino_gate", "random_gate"],
                           "table_methods": ["dino_time", "dino_spec", "baseline"], "n_boot": 200,
                           "challenge_root": None},
        "primer": {"max_records": 1000, "mitdb_records": 11},
        "baseline": {"max_records": 1000, "tasks": ["superdiagnostic"], "epochs": 8, "batch_size": 64,
                     "lr": 1e-2, "patience": None, "n_boot": 200, "seeds": [0, 1, 2]},
        "transfer": {"cinc_records": 1000, "mitdb_per_class": 250, "backbones": ["efficientnet_lite0"],
                     "weights": ["imagenet", "random"], "image_size": 224, "classifiers": ["linear_svm", "logreg"],
                     "folds": 5, "batch_size": 32, "seed": 0},
        "mrmnet": {"max_records": 1000, "tasks": ["superdiagnostic"], "variants": ["released"],
                   "variant_task": "superdiagnostic", "epochs": 6, "batch_size": 64, "lr": 1e-3,
                   "patience": None, "n_boot": 200, "seeds": [0, 1, 2], "cpsc_root": None},
        "lead_agnostic_ssl": {"ptbxl_records": 1000, "cinc_records": 200, "cinc_pairs_per_record": 1,
                              "mitdb_pairs_per_record": 4, "size": "tutorial", "methods": ["CMSC", "W2V+CMSC+RLM"],
                              "ptbxl_only_methods": [], "pretrain_epochs": 2, "pretrain_batch_size": 32,
                              "pretrain_lr": 1e-3, "subsets": [12, 1], "label_fractions": [0.1, 1.0],
                              "finetune_methods": ["W2V+CMSC+RLM", "random init"], "finetune_subsets": [12],
                              "seeds": [0], "finetune_epochs": 2, "finetune_lr": 1e-3, "baseline_subsets": [12],
                              "baseline_epochs": 3, "ident_subsets": [12, 1], "mitdb_ident_records": 11,
                              "leak_finetune_epochs": 0, "batch_size": 64, "n_boot": 200, "seed": 0,
                              "challenge2021_root": None, "arcface_epochs": 2, "arcface_lr": 1e-3,
                              "arcface_recordings": 1000},
    },
    "tutorial": {
        "multimodal_ssl": {"max_records": TUTORIAL_PTBXL_RECORDS, "tasks": ["superdiagnostic", "rhythm"], "encoder_size": "small",
                           "out_dim": 4096, "n_local": 4, "local_samples": 100, "pretrain_epochs": 10,
                           "pretrain_batch": 64, "pretrain_lr": 1e-3, "momentum": 0.98, "simclr": True,
                           "ft_epochs": 8, "ft_batch": 64, "ft_lr": 1e-3, "fractions": [0.01, 0.1, 1.0],
                           "seeds": [0, 1, 2], "curve_methods": ["dino_gate", "random_gate"],
                           "table_methods": ["dino_time", "random_time", "dino_concat", "dino_spec", "simclr_time",
                                             "baseline"],
                           "n_boot": 1000, "challenge_root": None},
        "primer": {"max_records": TUTORIAL_PTBXL_RECORDS, "mitdb_records": 48},
        # 3 seeds x 2 tasks x 20 epochs: about 20 min on an idle 2-core CPU (measured ~10 s per
        # epoch incl. validation); "all" and the other tasks run in the paper profile.
        "baseline": {"max_records": TUTORIAL_PTBXL_RECORDS, "tasks": ["superdiagnostic", "rhythm"], "epochs": 20,
                     "batch_size": 64, "lr": 1e-2, "patience": 8, "n_boot": 1000, "seeds": [0, 1, 2]},
        "transfer": {"cinc_records": None, "mitdb_per_class": 2000,
                     "backbones": ["densenet121", "efficientnet_lite0"], "weights": ["imagenet", "random"],
                     "image_size": 224, "classifiers": ["linear_svm", "logreg"], "folds": 10, "batch_size": 64,
                     "seed": 0},
        # MRM-Net: 3 seeds x (2 tasks + 2 variants) x 15 epochs, about 25 min on an idle 2-core
        # CPU (~8 s per epoch incl. validation); the baseline's runs come from the baseline chapter.
        "mrmnet": {"max_records": TUTORIAL_PTBXL_RECORDS, "tasks": ["superdiagnostic", "rhythm"],
                   "variants": ["released", "no_mutual"], "variant_task": "superdiagnostic",
                   "epochs": 15, "batch_size": 64, "lr": 1e-3, "patience": 6, "n_boot": 1000,
                   "seeds": [0, 1, 2], "cpsc_root": None},
        "lead_agnostic_ssl": {"ptbxl_records": TUTORIAL_PTBXL_RECORDS, "cinc_records": 300, "cinc_pairs_per_record": 1,
                              "mitdb_pairs_per_record": 8, "size": "tutorial", "methods": ["W2V", "CMSC", "W2V+CMSC+RLM"],
                              "ptbxl_only_methods": ["W2V+CMSC+RLM"], "pretrain_epochs": 3, "pretrain_batch_size": 32,
                              "pretrain_lr": 1e-3, "subsets": [12, 6, 3, 2, 1], "label_fractions": [0.01, 0.1, 1.0],
                              "finetune_methods": ["W2V+CMSC+RLM", "random init"], "finetune_subsets": [12, 1],
                              "seeds": [0, 1, 2], "finetune_epochs": 2, "finetune_lr": 1e-3,
                              "baseline_subsets": [12, 3, 1], "baseline_epochs": 4,
                              "ident_subsets": [12, 6, 3, 2, 1], "mitdb_ident_records": 22, "leak_finetune_epochs": 0,
                              "batch_size": 64, "n_boot": 500, "seed": 0, "challenge2021_root": None,
                              "arcface_epochs": 3, "arcface_lr": 1e-3, "arcface_recordings": 5000},
    },
    "paper": {
        "multimodal_ssl": {"max_records": None, "tasks": ["superdiagnostic", "rhythm"], "encoder_size": "paper",
                           "out_dim": 65536, "n_local": 8, "local_samples": None, "pretrain_epochs": 100,
                           "pretrain_batch": 196, "pretrain_lr": 5e-4, "momentum": 0.996, "simclr": True,
                           "ft_epochs": 50, "ft_batch": 128, "ft_lr": 1e-3, "fractions": [0.01, 0.1, 1.0],
                           "seeds": [0, 1, 2, 3, 4],
                           "curve_methods": ["dino_gate", "random_gate", "dino_time", "random_time", "simclr_time", "baseline"],
                           "table_methods": ["dino_concat", "dino_spec", "random_spec"], "n_boot": 1000,
                           # the Challenge 2020 training folder (all sources): the paper's protocol
                           "challenge_root": None},
        "primer": {"max_records": None, "mitdb_records": 48},
        "baseline": {"max_records": None,
                     "tasks": ["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"],
                     "epochs": 50, "batch_size": 128, "lr": 1e-2, "patience": None, "n_boot": 1000,
                     "seeds": [0, 1, 2, 3, 4]},
        "transfer": {"cinc_records": None, "mitdb_per_class": 2000,
                     "backbones": ["densenet121", "densenet161", "efficientnet_lite0"],
                     "weights": ["imagenet", "random"], "image_size": 224, "classifiers": ["linear_svm", "logreg"],
                     "folds": 10, "batch_size": 64, "seed": 0},
        "mrmnet": {"max_records": None,
                   "tasks": ["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"],
                   "variants": ["released", "high_only", "low_only", "no_attention", "no_mutual"],
                   "variant_task": "superdiagnostic", "epochs": 40, "batch_size": 96, "lr": 1e-3,
                   "patience": None, "n_boot": 1000, "seeds": [0, 1, 2, 3, 4], "cpsc_root": None},
        "lead_agnostic_ssl": {"ptbxl_records": None, "cinc_records": None, "cinc_pairs_per_record": None,
                              "mitdb_pairs_per_record": None, "size": "paper",
                              "methods": ["W2V", "W2V+RLM", "W2V+CMSC", "W2V+CMSC+RLM", "CMSC", "CMSC+RLM",
                                          "W2V+CMSC(patient)+RLM"],
                              "ptbxl_only_methods": ["W2V+CMSC+RLM"], "pretrain_epochs": 200, "pretrain_batch_size": 64,
                              "pretrain_lr": 5e-5, "subsets": [12, 6, 3, 2, 1], "label_fractions": [0.01, 0.1, 1.0],
                              "finetune_methods": ["W2V", "CMSC", "W2V+CMSC+RLM", "random init"],
                              "finetune_subsets": [12, 6, 3, 2, 1], "seeds": [0, 1, 2], "finetune_epochs": 100,
                              "finetune_lr": 5e-5, "baseline_subsets": [12, 6, 3, 2, 1], "baseline_epochs": 50,
                              "ident_subsets": [12, 6, 3, 2, 1], "mitdb_ident_records": 22, "leak_finetune_epochs": 20,
                              "batch_size": 128, "n_boot": 1000, "seed": 0,
                              # ArcFace identification (official identification.yaml: lr 3e-5, 100
                              # epochs, batch 128); runs only when challenge2021_root is given
                              "challenge2021_root": None, "arcface_epochs": 100, "arcface_lr": 3e-5,
                              "arcface_recordings": None},
    },
}

#: Integer parameters that may be 0 (every other integer parameter counts something and must be ≥ 1).
ZERO_OK = frozenset({"seed"})


def chapters() -> list[str]:
    """Every chapter name that some profile has parameters for (e.g. ``"baseline"``)."""
    return sorted({c for prof in PROFILES.values() for c in prof})


def _kind(values: list) -> str:
    """The kind of a parameter from its values across profiles: int, float, str, list, path or any."""
    seen = {type(v) for v in values if v is not None}
    if not seen:
        return "path"  # None in every profile: a folder the user supplies (e.g. cpsc_root)
    if seen <= {int}:
        return "int"
    if seen <= {int, float}:
        return "float"
    if seen <= {str}:
        return "str"
    if seen <= {list, tuple}:
        items = [x for v in values if v is not None for x in v]
        if items and all(type(x) is int for x in items):
            return "ints"
        if items and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items):
            return "numbers"
        return "list"
    if seen <= {bool}:
        return "bool"
    return "any"


def parameter_kinds(chapter: str) -> dict[str, tuple[str, bool]]:
    """``{parameter: (kind, may_be_none)}`` of a chapter, from the values every profile gives it."""
    names = {k for prof in PROFILES.values() for k in prof.get(chapter, {})}
    out = {}
    for name in sorted(names):
        values = [prof[chapter][name] for prof in PROFILES.values() if name in prof.get(chapter, {})]
        out[name] = (_kind(values), any(v is None for v in values))
    return out


def _check(chapter: str, name: str, value, kind: str):
    """``value`` converted to ``kind``; ``ValueError`` naming the parameter when it does not fit."""
    where = f"chapter {chapter!r}, parameter {name!r}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r} ({type(value).__name__})")
        low = 0 if name in ZERO_OK else 1
        if value < low:
            raise ValueError(f"{where}: expected an integer ≥ {low}, got {value}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r} ({type(value).__name__})")
        if not value > 0:
            raise ValueError(f"{where}: expected a positive number, got {value}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    if kind == "list":
        if isinstance(value, str):  # papermill -p tasks rhythm: one name
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: expected a non-empty list of names (papermill: -y \"{name}: [a, b]\"), "
                             f"got {value!r}")
        return list(value)
    if kind == "ints":  # e.g. seeds: papermill -y "seeds: [0, 1, 2]" (or -p seeds 4: one seed)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if (not isinstance(value, (list, tuple)) or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
                or len(set(value)) != len(value)):
            raise ValueError(f"{where}: expected a non-empty list of distinct integers ≥ 0 "
                             f"(papermill: -y \"{name}: [0, 1, 2]\"), got {value!r}")
        return list(value)
    if kind == "numbers":  # e.g. seeds [0, 1, 2], label fractions [0.01, 0.1, 1.0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if (not isinstance(value, (list, tuple)) or not value
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"{where}: expected a non-empty list of numbers "
                             f"(papermill: -y \"{name}: [1, 2]\"), got {value!r}")
        return list(value)
    if kind == "path":
        if not isinstance(value, (str, Path)):
            raise ValueError(f"{where}: expected a folder path, got {value!r} ({type(value).__name__})")
        return str(value)
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{where}: expected True or False, got {value!r}")
    return value


def resolve(chapter: str, profile: str, **given) -> dict:
    """The chapter's parameters: the profile's values, overridden by every ``given`` value that is not ``None``.

    Returns a dict that includes ``profile``. Raises ``ValueError`` for an unknown profile or chapter,
    an unknown parameter, or a given value of the wrong type or range (naming the parameter, e.g.
    ``-p epochs abc`` or ``max_records=-5``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILE_NAMES}")
    if chapter not in PROFILES[profile]:
        raise ValueError(f"profile {profile!r} has no parameters for chapter {chapter!r}")
    params = dict(PROFILES[profile][chapter])
    unknown = [k for k in given if k not in params]
    if unknown:
        raise ValueError(f"chapter {chapter!r} has no parameter(s) {unknown}; known: {sorted(params)}")
    kinds = parameter_kinds(chapter)
    for name, value in given.items():
        if value is not None:
            params[name] = _check(chapter, name, value, kinds[name][0])
    params["profile"] = profile
    return params


def banner(profile: str) -> str:
    """A MyST admonition saying which profile produced the page (a warning for ``smoke``).

    Rendered by the book because ``nb_render_markdown_format: myst`` parses Markdown outputs as MyST.
    Raises ``ValueError`` for an unknown profile.
    """
    if profile not in DESCRIPTIONS:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILE_NAMES}")
    if profile == "smoke":
        return (":::{warning}\nThis page was executed with the **smoke** profile (CI on CPU, tiny data, "
                "one epoch). Its numbers **mean nothing**: they only prove the code runs. See the "
                "`tutorial` build for real results.\n:::")
    if profile == "classroom":
        return (":::{important}\nExecuted with the **classroom** profile: " + DESCRIPTIONS["classroom"]
                + "\n:::")
    return f":::{{note}}\nExecuted with the **{profile}** profile: {DESCRIPTIONS[profile]}\n:::"
