"""Run profiles: named sets of papermill parameters for every chapter.

``smoke``
    CI on CPU in minutes: tiny data, one or two epochs. Proves the plumbing only; its numbers mean
    nothing, and the rendered pages say so.
``tutorial`` (default)
    All the data of the offline mirror (e.g. 1,987 PTB-XL records), real numbers, minutes on a GPU.
``paper``
    The papers' full protocols on the full datasets, for users who have downloaded them.

A chapter's parameters cell sets ``profile = "tutorial"`` and every other parameter to ``None``;
:func:`resolve` fills each ``None`` from the profile, so ``papermill -p profile smoke`` is enough,
and ``-p epochs 3`` overrides one value.
"""
from __future__ import annotations

PROFILE_NAMES = ("smoke", "tutorial", "paper")

DESCRIPTIONS = {
    "smoke": "CI plumbing check on CPU with tiny data and 1-2 epochs: the numbers on this page mean nothing.",
    "tutorial": "All records of the offline mirror; real numbers from a short training budget.",
    "paper": "The paper's full protocol on the full datasets.",
}

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "multimodal_ssl": {"max_records": 300, "tasks": ["superdiagnostic"], "encoder_size": "tiny", "out_dim": 256,
                           "n_local": 2, "local_samples": 100, "pretrain_epochs": 1, "pretrain_batch": 64,
                           "pretrain_lr": 5e-4, "momentum": 0.99, "simclr": True, "ft_epochs": 1, "ft_batch": 64,
                           "ft_lr": 1e-3, "fractions": [0.1, 1.0], "seeds": [0],
                           "curve_methods": ["dino_gate", "random_gate"],
                           "table_methods": ["dino_concat", "dino_time", "dino_spec", "simclr_time", "baseline"],
                           "n_boot": 50},
        "primer": {"max_records": 300, "mitdb_records": 4},
        "baseline": {"max_records": 400, "tasks": ["superdiagnostic"], "epochs": 1, "batch_size": 64,
                     "lr": 1e-2, "n_boot": 50, "seed": 0},
        "transfer": {"cinc_records": 200, "mitdb_per_class": 40, "backbones": ["densenet121", "efficientnet_lite0"],
                     "weights": ["imagenet", "random"], "image_size": 64, "classifiers": ["linear_svm", "logreg"],
                     "folds": 3, "batch_size": 32, "seed": 0},
        "mrmnet": {"max_records": 300, "tasks": ["superdiagnostic"], "variants": ["released"],
                   "variant_task": "superdiagnostic", "epochs": 1, "batch_size": 64, "lr": 1e-3, "n_boot": 50,
                   "seed": 0, "cpsc_root": None},
        "lead_agnostic_ssl": {"ptbxl_records": 300, "cinc_records": 16, "cinc_pairs_per_record": 1,
                              "mitdb_pairs_per_record": 2, "size": "smoke", "methods": ["W2V", "CMSC", "W2V+CMSC+RLM"],
                              "ptbxl_only_methods": [], "pretrain_epochs": 1, "pretrain_batch_size": 16,
                              "pretrain_lr": 1e-3, "subsets": [12, 1], "label_fractions": [0.1, 1.0], "finetune_methods": ["W2V+CMSC+RLM", "random init"],
                              "finetune_subsets": [12], "seeds": [0], "finetune_epochs": 1, "finetune_lr": 1e-3,
                              "baseline_subsets": [12], "baseline_epochs": 1, "ident_subsets": [12, 1],
                              "mitdb_ident_records": 4, "leak_finetune_epochs": 0, "batch_size": 32, "n_boot": 20,
                              "seed": 0},
    },
    "tutorial": {
        "multimodal_ssl": {"max_records": None, "tasks": ["superdiagnostic", "rhythm"], "encoder_size": "small",
                           "out_dim": 4096, "n_local": 4, "local_samples": 100, "pretrain_epochs": 12,
                           "pretrain_batch": 128, "pretrain_lr": 5e-4, "momentum": 0.99, "simclr": True,
                           "ft_epochs": 10, "ft_batch": 64, "ft_lr": 1e-3, "fractions": [0.01, 0.1, 1.0],
                           "seeds": [0, 1, 2], "curve_methods": ["dino_gate", "random_gate", "dino_time", "random_time"],
                           "table_methods": ["dino_concat", "dino_spec", "random_spec", "simclr_time", "baseline"],
                           "n_boot": 1000},
        "primer": {"max_records": None, "mitdb_records": 48},
        "baseline": {"max_records": None, "tasks": ["superdiagnostic", "rhythm", "all"], "epochs": 30,
                     "batch_size": 64, "lr": 1e-2, "n_boot": 1000, "seed": 0},
        "transfer": {"cinc_records": None, "mitdb_per_class": 2000,
                     "backbones": ["densenet121", "efficientnet_lite0"], "weights": ["imagenet", "random"],
                     "image_size": 224, "classifiers": ["linear_svm", "logreg"], "folds": 10, "batch_size": 64,
                     "seed": 0},
        "mrmnet": {"max_records": None, "tasks": ["superdiagnostic", "all", "form", "rhythm"],
                   "variants": ["released", "high_only", "low_only", "no_attention", "no_mutual"],
                   "variant_task": "superdiagnostic", "epochs": 12, "batch_size": 64, "lr": 1e-3, "n_boot": 1000,
                   "seed": 0, "cpsc_root": None},
        "lead_agnostic_ssl": {"ptbxl_records": None, "cinc_records": 300, "cinc_pairs_per_record": 1,
                              "mitdb_pairs_per_record": 8, "size": "tutorial", "methods": ["W2V", "CMSC", "W2V+CMSC+RLM"],
                              "ptbxl_only_methods": [], "pretrain_epochs": 3, "pretrain_batch_size": 32,
                              "pretrain_lr": 1e-3, "subsets": [12, 6, 3, 2, 1], "label_fractions": [0.01, 0.1, 1.0],
                              "finetune_methods": ["W2V+CMSC+RLM", "random init"], "finetune_subsets": [12, 1],
                              "seeds": [0, 1, 2], "finetune_epochs": 2, "finetune_lr": 1e-3,
                              "baseline_subsets": [12, 3, 1], "baseline_epochs": 4,
                              "ident_subsets": [12, 6, 3, 2, 1], "mitdb_ident_records": 22, "leak_finetune_epochs": 0,
                              "batch_size": 64, "n_boot": 500, "seed": 0},
    },
    "paper": {
        "multimodal_ssl": {"max_records": None, "tasks": ["superdiagnostic", "rhythm"], "encoder_size": "paper",
                           "out_dim": 65536, "n_local": 8, "local_samples": None, "pretrain_epochs": 100,
                           "pretrain_batch": 196, "pretrain_lr": 5e-4, "momentum": 0.996, "simclr": True,
                           "ft_epochs": 50, "ft_batch": 128, "ft_lr": 1e-3, "fractions": [0.01, 0.1, 1.0],
                           "seeds": [0, 1, 2, 3, 4],
                           "curve_methods": ["dino_gate", "random_gate", "dino_time", "random_time", "simclr_time", "baseline"],
                           "table_methods": ["dino_concat", "dino_spec", "random_spec"], "n_boot": 1000},
        "primer": {"max_records": None, "mitdb_records": 48},
        "baseline": {"max_records": None,
                     "tasks": ["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"],
                     "epochs": 50, "batch_size": 128, "lr": 1e-2, "n_boot": 1000, "seed": 0},
        "transfer": {"cinc_records": None, "mitdb_per_class": 2000,
                     "backbones": ["densenet121", "densenet161", "efficientnet_lite0"],
                     "weights": ["imagenet", "random"], "image_size": 224, "classifiers": ["linear_svm", "logreg"],
                     "folds": 10, "batch_size": 64, "seed": 0},
        "mrmnet": {"max_records": None,
                   "tasks": ["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"],
                   "variants": ["released", "high_only", "low_only", "no_attention", "no_mutual"],
                   "variant_task": "superdiagnostic", "epochs": 40, "batch_size": 96, "lr": 1e-3, "n_boot": 1000,
                   "seed": 0, "cpsc_root": None},
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
                              "batch_size": 128, "n_boot": 1000, "seed": 0},
    },
}


def resolve(chapter: str, profile: str, **given) -> dict:
    """The chapter's parameters: the profile's values, overridden by every ``given`` value that is not ``None``.

    Returns a dict that includes ``profile``. Raises ``ValueError`` for an unknown profile or chapter.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILE_NAMES}")
    if chapter not in PROFILES[profile]:
        raise ValueError(f"profile {profile!r} has no parameters for chapter {chapter!r}")
    params = dict(PROFILES[profile][chapter])
    unknown = [k for k in given if k not in params]
    if unknown:
        raise ValueError(f"chapter {chapter!r} has no parameter(s) {unknown}; known: {sorted(params)}")
    params.update({k: v for k, v in given.items() if v is not None})
    params["profile"] = profile
    return params


def banner(profile: str) -> str:
    """A Markdown admonition saying which profile produced the page (a warning for ``smoke``)."""
    if profile == "smoke":
        return (":::{warning}\nThis page was executed with the **smoke** profile (CI on CPU, tiny data, "
                "one epoch). Its numbers **mean nothing**: they only prove the code runs. See the "
                "`tutorial` build for real results.\n:::")
    return f":::{{note}}\nExecuted with the **{profile}** profile: {DESCRIPTIONS[profile]}\n:::"
