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
chapter's table of parameters (:func:`specs`: type, range, allowed names), so a wrong value fails at
once, in the chapter's first cell, naming the parameter and its valid values.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

PROFILE_NAMES = ("smoke", "classroom", "tutorial", "paper")
#: Learning-rate schedules of the lead-agnostic pre-training (:class:`ecgbook.lead_agnostic_ssl.PretrainConfig`).
PRETRAIN_SCHEDULES = ("fixed", "cosine")

#: The classroom profile's data, by name: fixed subsets of the offline mirror (see
#: ``data/README.md``: PhysioNet's files laid out as HOST/PATH), the same on every machine.
CLASSROOM_SUBSETS = {
    "PTB-XL": "the first 1,000 records of PTB-XL 1.0.3 by ecg_id (ecg_id 1–1012), 100 Hz",
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

# The side-by-side chapter (07): every technique on identical splits. Budgets per profile; the
# tutorial grid is the full one (test folds 7-10, 2 seeds, 1/10/100 %, 5 lead sets), meant for a GPU.
_SIDE_BY_SIDE = {
    "smoke": {"max_records": 400, "task": "superdiagnostic", "test_folds": [10], "seeds": [0],
              "fractions": [0.5, 1.0], "lead_sets": [12, 1], "methods": ["resnet1d_wang", "mrmnet", "transfer_2d", "dino", "w2v"],
              "controls": True, "epochs": 1, "batch_size": 64, "lr": 1e-2, "mrmnet_lr": 1e-3, "image_size": 32,
              "dino_size": "tiny", "dino_pretrain_epochs": 1, "dino_finetune_epochs": 1, "w2v_size": "smoke",
              "w2v_pretrain_epochs": 1, "w2v_finetune_epochs": 1, "cinc_records": 16, "n_boot": 50},
    "classroom": {"max_records": 1000, "task": "superdiagnostic", "test_folds": [10], "seeds": [0],
                  "fractions": [0.1, 1.0], "lead_sets": [12, 1], "methods": ["resnet1d_wang", "mrmnet", "transfer_2d", "dino", "w2v"],
                  "controls": True, "epochs": 5, "batch_size": 64, "lr": 1e-2, "mrmnet_lr": 1e-3, "image_size": 64,
                  "dino_size": "small", "dino_pretrain_epochs": 3, "dino_finetune_epochs": 3,
                  "w2v_size": "tutorial", "w2v_pretrain_epochs": 2, "w2v_finetune_epochs": 2,
                  "cinc_records": 200, "n_boot": 200},
    "tutorial": {"max_records": TUTORIAL_PTBXL_RECORDS, "task": "superdiagnostic", "test_folds": [7, 8, 9, 10],
                 "seeds": [0, 1], "fractions": [0.01, 0.1, 1.0], "lead_sets": [12, 6, 3, 2, 1],
                 "methods": ["resnet1d_wang", "mrmnet", "transfer_2d", "dino", "w2v"], "controls": True, "epochs": 15, "batch_size": 64,
                 "lr": 1e-2, "mrmnet_lr": 1e-3, "image_size": 128, "dino_size": "small", "dino_pretrain_epochs": 10,
                 "dino_finetune_epochs": 8, "w2v_size": "tutorial", "w2v_pretrain_epochs": 3,
                 "w2v_finetune_epochs": 4, "cinc_records": 300, "n_boot": 1000},
    "paper": {"max_records": None, "task": "superdiagnostic", "test_folds": [7, 8, 9, 10], "seeds": [0, 1, 2, 3, 4],
              "fractions": [0.01, 0.1, 1.0], "lead_sets": [12, 6, 3, 2, 1], "methods": ["resnet1d_wang", "mrmnet", "transfer_2d", "dino", "w2v"],
              "controls": True, "epochs": 50, "batch_size": 128, "lr": 1e-2, "mrmnet_lr": 1e-3, "image_size": 224,
              "dino_size": "paper", "dino_pretrain_epochs": 100, "dino_finetune_epochs": 50, "w2v_size": "paper",
              "w2v_pretrain_epochs": 200, "w2v_finetune_epochs": 100, "cinc_records": None, "n_boot": 1000},
}
for _name, _chapters in PROFILES.items():
    _chapters["side_by_side"] = _SIDE_BY_SIDE[_name]

# The SSL chapters train the supervised resnet1d_wang baseline with the baseline chapter's learning
# rate: a parameter of their own (``baseline_lr``), whose value in each profile is that one.
for _chapters in PROFILES.values():
    for _ssl in ("multimodal_ssl", "lead_agnostic_ssl"):
        _chapters[_ssl]["baseline_lr"] = _chapters["baseline"]["lr"]
# The lead-agnostic pre-training schedule: the paper's (fairseq-signals: constant lr, no warm-up,
# Gumbel temperature annealed over its fixed number of updates) in ``paper``; elsewhere a short
# budget, so a warm-up over 10 % of the updates, cosine decay, and the temperature annealed to the end.
for _name, _chapters in PROFILES.items():
    _chapters["lead_agnostic_ssl"].update(
        {"pretrain_schedule": "fixed", "pretrain_warmup": 0.0, "anneal_to_end": False} if _name == "paper" else
        {"pretrain_schedule": "cosine", "pretrain_warmup": 0.1, "anneal_to_end": True})

#: Method names of the multimodal chapter: ``baseline`` (``resnet1d_wang``), or ``<init>_<kind>`` with
#: the classifier kinds of :func:`ecgbook.multimodal_ssl.build_classifier`, initialised at random, from
#: DINO (time and spectrogram encoders) or from SimCLR (the chapter pre-trains its time encoder only).
MULTIMODAL_METHODS = (("baseline",) + tuple(f"{init}_{kind}" for init in ("dino", "random")
                                            for kind in ("time", "spec", "gate", "concat")) + ("simclr_time",))

#: The lead-agnostic chapter's name of the fine-tuned encoder that starts from random weights.
RANDOM_INIT = "random init"


@dataclass(frozen=True)
class Param:
    """The type and valid values of one chapter parameter (one row of :func:`specs`).

    ``kind``: ``"int"``, ``"float"`` (finite), ``"str"``, ``"bool"``, ``"path"`` (a folder the user
    supplies) or ``"list"`` (of ``item`` values; a single value is taken as a list of one).
    ``low`` / ``high``: the range of a number (inclusive unless ``low_open`` / ``high_open``);
    ``choices``: the allowed values (of a ``str``, or of a list's items); ``allow_none``: ``None``
    means something (e.g. "all records"); for a list, ``allow_empty`` and ``distinct`` items, and
    ``within``: another list parameter of the chapter that must hold every item (except ``within_extra``
    names), e.g. fine-tuned methods must be pre-trained ones (checked by :func:`resolve`).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    allow_none: bool = False
    low_open: bool = False
    high_open: bool = False
    item: "Param | None" = None
    allow_empty: bool = False
    distinct: bool = True
    within: str | None = None
    within_extra: tuple = ()

    def describe(self) -> str:
        """The valid values in words, e.g. ``an integer ≥ 1`` or ``a number in (0, 1]``."""
        if self.kind == "list":
            return (f"a{'' if self.allow_empty else ' non-empty'} list of{' distinct' if self.distinct else ''} "
                    f"items, each {self.item.describe()}")
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        noun = {"int": "an integer", "float": "a finite number", "str": "a non-empty string",
                "bool": "True or False", "path": "a folder path"}[self.kind]
        if self.low is not None and self.high is not None:
            return (f"{noun} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '≥'} {self.low:g}"
        return noun


def _count(low: int = 1, high: int | None = None, none: bool = False) -> Param:
    return Param("int", low=low, high=high, allow_none=none)


def _rate(none: bool = False) -> Param:
    return Param("float", low=0, low_open=True, allow_none=none)


def _names(choices, empty: bool = False, within: str | None = None, within_extra: tuple = ()) -> Param:
    return Param("list", item=Param("str", choices=tuple(choices)), allow_empty=empty, within=within,
                 within_extra=within_extra)


_SEEDS = Param("list", item=Param("int", low=0))
_FRACTIONS = Param("list", item=Param("float", low=0, high=1, low_open=True))
_PATH = Param("path", allow_none=True)
_MITDB_RECORDS = 48  # records of the MIT-BIH Arrhythmia Database


@functools.lru_cache(maxsize=None)
def specs(chapter: str) -> dict[str, Param]:
    """``{parameter: Param}`` of a chapter: the one table its parameters are checked against.

    Valid names come from the package's own constants (PTB-XL tasks, method and variant names,
    lead subsets, backbones, classifiers, model sizes). Raises ``ValueError`` for an unknown chapter.
    """
    from .data.mitdb import DS2
    from .data.ptbxl import TASKS
    from .evaluation import CLASSIFIERS
    from .models.backbones import BACKBONES, WEIGHTS

    tasks = _names(TASKS)
    if chapter == "multimodal_ssl":
        from .multimodal_ssl import ENCODER_SIZES
        return {"max_records": _count(none=True), "tasks": tasks, "encoder_size": Param("str", choices=tuple(ENCODER_SIZES)),
                "out_dim": _count(), "n_local": _count(), "local_samples": _count(none=True),
                "pretrain_epochs": _count(), "pretrain_batch": _count(), "pretrain_lr": _rate(),
                "momentum": Param("float", low=0, high=1, high_open=True), "simclr": Param("bool"),
                "ft_epochs": _count(), "ft_batch": _count(), "ft_lr": _rate(), "fractions": _FRACTIONS,
                "seeds": _SEEDS, "curve_methods": _names(MULTIMODAL_METHODS),
                "table_methods": _names(MULTIMODAL_METHODS), "n_boot": _count(), "challenge_root": _PATH,
                "baseline_lr": _rate()}
    if chapter == "primer":
        return {"max_records": _count(none=True), "mitdb_records": _count(high=_MITDB_RECORDS)}
    if chapter == "baseline":
        return {"max_records": _count(none=True), "tasks": tasks, "epochs": _count(), "batch_size": _count(),
                "lr": _rate(), "patience": _count(none=True), "n_boot": _count(), "seeds": _SEEDS}
    if chapter == "transfer":
        return {"cinc_records": _count(none=True), "mitdb_per_class": _count(), "backbones": _names(BACKBONES),
                "weights": _names(WEIGHTS), "image_size": _count(low=32), "classifiers": _names(CLASSIFIERS),
                "folds": _count(low=2), "batch_size": _count(), "seed": _count(low=0)}
    if chapter == "mrmnet":
        from .models.mrmnet import CONFIG_NAMES
        return {"max_records": _count(none=True), "tasks": tasks, "variants": _names(CONFIG_NAMES),
                "variant_task": Param("str", choices=TASKS), "epochs": _count(), "batch_size": _count(),
                "lr": _rate(), "patience": _count(none=True), "n_boot": _count(), "seeds": _SEEDS,
                "cpsc_root": _PATH}
    if chapter == "lead_agnostic_ssl":
        from .lead_agnostic_ssl import LEAD_SUBSETS, METHODS
        from .models.wav2vec2 import SIZES
        subsets = Param("list", item=Param("int", choices=tuple(LEAD_SUBSETS)))
        return {"ptbxl_records": _count(none=True), "cinc_records": _count(none=True),
                "cinc_pairs_per_record": _count(none=True), "mitdb_pairs_per_record": _count(none=True),
                "size": Param("str", choices=tuple(SIZES)), "methods": _names(METHODS),
                "ptbxl_only_methods": _names(METHODS, empty=True, within="methods"), "pretrain_epochs": _count(),
                "pretrain_batch_size": _count(), "pretrain_lr": _rate(), "subsets": subsets,
                "label_fractions": _FRACTIONS, "finetune_methods": _names(tuple(METHODS) + (RANDOM_INIT,), within="methods",
                                                        within_extra=(RANDOM_INIT,)),
                "finetune_subsets": subsets, "seeds": _SEEDS, "finetune_epochs": _count(), "finetune_lr": _rate(),
                "baseline_subsets": subsets, "baseline_epochs": _count(), "ident_subsets": subsets,
                "mitdb_ident_records": _count(high=len(DS2)), "leak_finetune_epochs": _count(low=0),
                "batch_size": _count(), "n_boot": _count(), "seed": _count(low=0), "challenge2021_root": _PATH,
                "arcface_epochs": _count(), "arcface_lr": _rate(), "arcface_recordings": _count(none=True),
                "baseline_lr": _rate(), "pretrain_schedule": Param("str", choices=PRETRAIN_SCHEDULES),
                "pretrain_warmup": Param("float", low=0, high=1, high_open=True), "anneal_to_end": Param("bool")}
    if chapter == "side_by_side":
        from .comparison import HELD_OUT_FOLDS
        from .data.records import LEAD_SUBSETS
        from .models.wav2vec2 import SIZES
        from .multimodal_ssl import ENCODER_SIZES
        from .side_by_side import METHOD_GROUPS
        return {"max_records": _count(none=True), "task": Param("str", choices=TASKS),
                "test_folds": Param("list", item=Param("int", choices=HELD_OUT_FOLDS)), "seeds": _SEEDS,
                "fractions": _FRACTIONS, "lead_sets": Param("list", item=Param("int", choices=tuple(LEAD_SUBSETS))),
                "methods": _names(METHOD_GROUPS), "controls": Param("bool"), "epochs": _count(),
                "batch_size": _count(), "lr": _rate(), "mrmnet_lr": _rate(), "image_size": _count(low=32),
                "dino_size": Param("str", choices=tuple(ENCODER_SIZES)), "dino_pretrain_epochs": _count(),
                "dino_finetune_epochs": _count(), "w2v_size": Param("str", choices=tuple(SIZES)),
                "w2v_pretrain_epochs": _count(), "w2v_finetune_epochs": _count(), "cinc_records": _count(none=True),
                "n_boot": _count()}
    raise ValueError(f"no parameter table for chapter {chapter!r}; known: {chapters()}")


def chapters() -> list[str]:
    """Every chapter name that some profile has parameters for (e.g. ``"baseline"``)."""
    return sorted({c for prof in PROFILES.values() for c in prof})


def parameter_kinds(chapter: str) -> dict[str, tuple[str, bool]]:
    """``{parameter: (kind, may_be_none)}`` of a chapter, from its table :func:`specs`."""
    return {name: (p.kind, p.allow_none) for name, p in sorted(specs(chapter).items())}


def _example(name: str, spec: Param) -> str:
    if spec.kind == "list":
        shown = list(spec.item.choices[:2]) if spec.item.choices else ([0, 1] if spec.item.kind == "int" else [0.1, 1.0])
        return f" (papermill: -y \"{name}: {shown}\")"
    return ""


def _check_one(where: str, spec: Param, value):
    """One scalar ``value`` checked against ``spec``; returns it converted (int→float for floats, path→str)."""
    if spec.kind in ("int", "float"):
        number = (int,) if spec.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number) or (spec.kind == "float" and not math.isfinite(value)):
            raise ValueError(f"{where}: expected {spec.describe()}, got {value!r} ({type(value).__name__})")
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{where}: expected {spec.describe()}, got {value!r}")
        if ((spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low))
                or (spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high))):
            raise ValueError(f"{where}: expected {spec.describe()}, got {value}")
        return float(value) if spec.kind == "float" else value
    if spec.kind == "str":
        if not isinstance(value, str) or not value or (spec.choices is not None and value not in spec.choices):
            raise ValueError(f"{where}: expected {spec.describe()}, got {value!r}")
        return value
    if spec.kind == "path":
        if not isinstance(value, (str, Path)) or not str(value):
            raise ValueError(f"{where}: expected {spec.describe()}, got {value!r} ({type(value).__name__})")
        return str(value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected {spec.describe()}, got {value!r}")
        return value
    raise ValueError(f"{where}: unknown parameter kind {spec.kind!r}")


def check(chapter: str, name: str, value):
    """``value`` of parameter ``name`` of ``chapter`` checked against :func:`specs` and converted.

    ``None`` passes only where the spec allows it; a list parameter also takes one value (papermill
    ``-p tasks rhythm``). Raises ``ValueError`` naming the chapter, the parameter, the value and the
    valid values or range.
    """
    spec = specs(chapter)[name]
    where = f"chapter {chapter!r}, parameter {name!r}"
    if value is None:
        if spec.allow_none:
            return None
        raise ValueError(f"{where}: expected {spec.describe()}, got None")
    if spec.kind != "list":
        return _check_one(where, spec, value)
    if not isinstance(value, (list, tuple)):
        value = [value]
    if not value and not spec.allow_empty:
        raise ValueError(f"{where}: expected {spec.describe()}{_example(name, spec)}, got an empty list")
    if spec.distinct and len({repr(v) for v in value}) != len(value):
        raise ValueError(f"{where}: expected {spec.describe()}{_example(name, spec)}, got repeated values in {value!r}")
    hint = _example(name, spec)
    try:
        return [_check_one(f"{where}, item {i} of {list(value)!r}", spec.item, v) for i, v in enumerate(value)]
    except ValueError as e:
        raise ValueError(f"{e}{hint}") from None


def _check_together(chapter: str, params: dict) -> None:
    """The checks that involve two parameters: ``Param.within``, and SimCLR methods need ``simclr``."""
    for name, spec in specs(chapter).items():
        if spec.within is not None:
            outside = [v for v in params[name] if v not in params[spec.within] and v not in spec.within_extra]
            if outside:
                raise ValueError(f"chapter {chapter!r}, parameter {name!r}: {outside} not in parameter "
                                 f"{spec.within!r} ({params[spec.within]}); each item must be one of "
                                 f"{spec.within!r}{f' or {list(spec.within_extra)}' if spec.within_extra else ''}")
    if chapter == "multimodal_ssl" and not params["simclr"]:
        simclr = [m for m in params["curve_methods"] + params["table_methods"] if m.startswith("simclr_")]
        if simclr:
            raise ValueError(f"chapter {chapter!r}, parameters 'curve_methods'/'table_methods': {simclr} need "
                             "simclr=True (the SimCLR encoder is pre-trained only then)")


def resolve(chapter: str, profile: str, **given) -> dict:
    """The chapter's parameters: the profile's values, overridden by every ``given`` value that is not ``None``.

    Returns a dict that includes ``profile``. Raises ``ValueError`` for an unknown profile or chapter,
    an unknown parameter, or a given value of the wrong type, range or name (naming the chapter, the
    parameter, the value and the valid values, e.g. ``-p epochs abc``, ``max_records=-5``, ``lr=inf``,
    ``fractions=[2.0]``, ``tasks=['nosuch']``); see :func:`specs`.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILE_NAMES}")
    if chapter not in PROFILES[profile]:
        raise ValueError(f"profile {profile!r} has no parameters for chapter {chapter!r}")
    params = dict(PROFILES[profile][chapter])
    unknown = [k for k in given if k not in params]
    if unknown:
        raise ValueError(f"chapter {chapter!r} has no parameter(s) {unknown}; known: {sorted(params)}")
    for name, value in given.items():
        if value is not None:
            params[name] = check(chapter, name, value)
    _check_together(chapter, params)
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
