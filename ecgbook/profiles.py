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
    },
    "tutorial": {
        "primer": {"max_records": None, "mitdb_records": 48},
        # 3 seeds x 2 tasks x 20 epochs: about 20 min on an idle 2-core CPU (measured ~10 s per
        # epoch incl. validation); "all" and the other tasks run in the paper profile.
        "baseline": {"max_records": None, "tasks": ["superdiagnostic", "rhythm"], "epochs": 20,
                     "batch_size": 64, "lr": 1e-2, "patience": 8, "n_boot": 1000, "seeds": [0, 1, 2]},
        "transfer": {"cinc_records": None, "mitdb_per_class": 2000,
                     "backbones": ["densenet121", "efficientnet_lite0"], "weights": ["imagenet", "random"],
                     "image_size": 224, "classifiers": ["linear_svm", "logreg"], "folds": 10, "batch_size": 64,
                     "seed": 0},
        # MRM-Net: 3 seeds x (2 tasks + 2 variants) x 15 epochs, about 25 min on an idle 2-core
        # CPU (~8 s per epoch incl. validation); the baseline's runs come from the baseline chapter.
        "mrmnet": {"max_records": None, "tasks": ["superdiagnostic", "rhythm"],
                   "variants": ["released", "no_mutual"], "variant_task": "superdiagnostic",
                   "epochs": 15, "batch_size": 64, "lr": 1e-3, "patience": 6, "n_boot": 1000,
                   "seeds": [0, 1, 2], "cpsc_root": None},
    },
    "paper": {
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
