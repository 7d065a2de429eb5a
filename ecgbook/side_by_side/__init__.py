"""The side-by-side chapter (``chapters/07_side_by_side.md``): every technique of the book on identical,
leak-free PTB-XL splits, through the one interface of :mod:`ecgbook.comparison`.

The only module that imports several techniques: each technique package offers its methods
(:class:`ecgbook.comparison.Method`); :func:`build_methods` gathers the ones a profile runs;
:mod:`.report` turns the result rows into the page's tables, figures and sentences; :mod:`.leaks`
gathers the protocol leaks measured by the earlier chapters.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from .. import comparison, health
from ..comparison import ComparisonData, Grid, Method
from ..data.ptbxl import PTBXL
from ..lead_agnostic_ssl import comparison as lead_agnostic
from ..mrmnet import comparison as mrmnet
from ..multimodal_ssl import comparison as multimodal
from ..transfer import comparison as transfer
from . import report
from .leaks import leak_rows

#: The technique groups a profile may run (parameter ``methods``), in the page's order.
METHOD_GROUPS = ("resnet1d_wang", "mrmnet", "transfer_2d", "dino", "w2v")


def load_data(P: Mapping) -> ComparisonData:
    """The PTB-XL task of the run at 100 Hz: the first ``P["max_records"]`` records (all present for
    ``None``), as :class:`~ecgbook.comparison.ComparisonData`."""
    return ComparisonData.from_task(PTBXL(fs=100, max_records=P["max_records"]).task(P["task"]))


def build_methods(P: Mapping, *, dino_budget: Mapping, w2v_budget: Mapping) -> list[Method]:
    """The methods of ``P["methods"]`` (names of :data:`METHOD_GROUPS`) with the profile's budgets;
    with ``P["controls"]``, each pre-trained method's random-initialisation control too. The
    baseline ``resnet1d_wang`` comes first.

    ``dino_budget`` / ``w2v_budget``: the parameters of the multimodal (04) and lead-agnostic (06)
    chapters in the same profile, for every budget setting this chapter does not set itself (its
    ``dino_*`` / ``w2v_*`` parameters and ``cinc_records`` override theirs). Raises ``ValueError`` for
    an unknown group or a run without the baseline (every difference is measured against it)."""
    unknown = [g for g in P["methods"] if g not in METHOD_GROUPS]
    if unknown:
        raise ValueError(f"build_methods: unknown method group(s) {unknown}; expected some of {METHOD_GROUPS}")
    if "resnet1d_wang" not in P["methods"]:
        raise ValueError("build_methods: 'resnet1d_wang' must be among the methods: every difference is "
                         "measured against the baseline")
    out: list[Method] = []
    for group in METHOD_GROUPS:
        if group not in P["methods"]:
            continue
        if group == "resnet1d_wang":
            found = [comparison.baseline(epochs=P["epochs"], batch_size=P["batch_size"], lr=P["lr"])]
        elif group == "mrmnet":
            found = [mrmnet.method(epochs=P["epochs"], batch_size=P["batch_size"], lr=P["mrmnet_lr"])]
        elif group == "transfer_2d":
            found = [transfer.method(P["image_size"], P["batch_size"]), transfer.control(P["image_size"], P["batch_size"])]
        elif group == "dino":
            budget = {k: dino_budget[k] for k in multimodal.BUDGET_KEYS}
            budget.update(encoder_size=P["dino_size"], pretrain_epochs=P["dino_pretrain_epochs"],
                          ft_epochs=P["dino_finetune_epochs"])
            found = multimodal.methods(**budget)
        else:
            budget = {k: w2v_budget[k] for k in lead_agnostic.BUDGET_KEYS}
            budget.update(size=P["w2v_size"], pretrain_epochs=P["w2v_pretrain_epochs"],
                          finetune_epochs=P["w2v_finetune_epochs"], cinc_records=P["cinc_records"])
            found = lead_agnostic.methods(**budget)
        controls = {m.control for m in found if m.control}
        out += [m for m in found if P["controls"] or m.name not in controls]
    return out


def method_table(methods: Sequence[Method], parameters: Mapping[str, int | None]) -> pd.DataFrame:
    """One row per method: family, what a lead set means to it, its control, the chapter it comes
    from, parameters (12-lead model) and its one-line description."""
    return pd.DataFrame([{"method": m.name, "family": m.family, "lead set as": m.lead_input,
                          "control": m.control or "–", "chapter": m.chapter,
                          "parameters": parameters.get(m.name), "what it is": m.description} for m in methods])


def data_markdown(data: ComparisonData, P: Mapping) -> str:
    """The records of this run, per role, counted from ``data`` (pre-training, each rotation's training,
    validation and test folds, the pooled test records and the label fractions)."""
    pre = data.pretraining_records()
    parts = []
    for t in P["test_folds"]:
        s = data.split(t)
        parts.append(f"test fold {t}: {len(s.test):,} test, {len(s.val):,} validation (fold {s.val_fold}), "
                     f"{len(s.train):,} training records")
    pooled = sum(len(data.split(t).test) for t in P["test_folds"])
    first = data.split(P["test_folds"][0])
    fractions = ", ".join(f"{100 * f:g} % = {len(data.labelled(first, f)):,}" for f in sorted(P["fractions"]))
    return (f"This run uses {len(data):,} PTB-XL records of the {data.task} task "
            f"({len(data.classes)} classes: {', '.join(data.classes)}). Self-supervised pre-training sees "
            f"the {len(pre):,} records of folds 1–6. " + "; ".join(parts) + ". "
            f"The pooled out-of-fold test set has {pooled:,} records. Labelled training records at each "
            f"fraction (test fold {P['test_folds'][0]}): {fractions}. Seeds: {', '.join(map(str, P['seeds']))}.")


def pretraining_health(grid: Grid) -> list[str]:
    """Run-health warnings of every pre-training of the grid, from the history each method's
    :meth:`~ecgbook.comparison.Method.pretrain` returned: the warnings it computed itself
    (``"warnings"``), else :func:`ecgbook.health.check_history` of its ``history`` on the selection
    score ``val_score`` (the pre-training's probe: ``NO GAIN`` when it moves by noise only, as
    chapter 04 checks)."""
    out = []
    for name, info in grid.pretraining.items():
        if "warnings" in info:
            out += list(info["warnings"])
        elif info.get("history") and all("val_score" in row for row in info["history"]):
            out += health.check_history(info["history"], best_epoch=info.get("best_epoch"),
                                        max_epochs=info.get("epochs"), name=f"{name}, pre-training",
                                        min_gain=health.RISING_TOL)
    return out


def pretraining_summary(grid: Grid) -> dict:
    """``{method: {"seconds", "records", "epochs", "best_epoch"}}`` of the grid's pre-trainings (JSON-friendly)."""
    keep = ("seconds", "records", "epochs", "best_epoch", "corpus")
    return {name: {k: info[k] for k in keep if k in info} for name, info in grid.pretraining.items()}


def datasets(data: ComparisonData) -> dict:
    """The results file's dataset provenance of the run."""
    return {"ptb-xl-1.0.3-100hz": {"manifest_hash": data.provenance.get("manifest_hash", ""),
                                   "records": int(len(data))}}


def leaderboard_caption(doc: Mapping) -> str:
    """The sentence above the leaderboard, from the results file: what each number is, on how many
    pooled records, folds and seeds."""
    P = doc["params"]
    seeds = P.get("seeds", [])
    folds = P.get("test_folds", [])
    return (f"Macro AUROC of the seed-averaged scores on the {doc['extra']['test_records']:,} pooled "
            f"out-of-fold test records (test fold{'s' if len(folds) != 1 else ''} {', '.join(map(str, folds))}; "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}). Marks: ▲ / ▼ significantly above / below "
            f"`resnet1d_wang` (every seed and the 95 % paired interval agree), ≈ no significant difference, "
            f"⚠ a run of the cell failed a health check (no conclusion).")


def leak_table(leaks: Sequence[Mapping]) -> pd.DataFrame:
    """The leak rows (:func:`~.leaks.leak_rows`) as the page's table: per leak and chapter, the metric
    under the honest and under the leaky protocol, the effect (leaky − honest, with its interval or
    seed range where the source has one), the records, and the source run's health."""
    out = []
    for r in leaks:
        if r.get("status") != "measured":
            out.append({"leak": r["leak"], "chapter": r["chapter"], "metric": r.get("metric") or "–",
                        "honest": "–", "leaky": "–", "effect": "not run in this profile", "records": None,
                        "source run": "–"})
            continue
        effect = f"{r['effect']:+.3f}"
        if r.get("effect_low") is not None:
            effect += f" [{r['effect_low']:+.3f}, {r['effect_high']:+.3f}]"
            if r.get("interval") and "95" not in str(r["interval"]):
                effect += f" ({r['interval']})"
        health_tags = r.get("health")
        out.append({"leak": r["leak"], "chapter": r["chapter"], "metric": r["metric"].replace("_", " "),
                    "honest": f"{r['honest']}: {r['honest_value']:.3f}", "leaky": f"{r['leaky']}: {r['leaky_value']:.3f}",
                    "effect": effect, "records": r.get("n"),
                    "source run": (", ".join(t.lower() for t in health_tags) if isinstance(health_tags, list) and health_tags
                                   else "passed" if isinstance(health_tags, list) else "no health checks")})
    out = pd.DataFrame(out)
    out["records"] = out["records"].astype("Int64")
    return out


def learned_markdown(doc: Mapping) -> str:
    """The chapter's "What we learned", from its results file: the winners per cell, how many runs
    failed a health check, and what the profile could not decide."""
    rows, bests = doc["metrics"], doc["extra"]["bests"]
    flagged = health.flagged_runs(doc["extra"]["health"] + doc["extra"]["pretraining_health"])
    n_runs = doc["extra"]["trained_runs"] + len(doc["extra"]["pretraining"])
    decided = [b for b in bests if b["best"] is not None and (b["significant"] or b["runner_up"] is None)]
    lines = [f"- **Cells with a significant winner:** {len(decided)} of {len(bests)}."
             + (" " + "; ".join(f"{report.cell_label(b['label_fraction'], b['leads'])}: {b['best']}" for b in decided)
                if decided else "")]
    if flagged:
        lines.append(f"- **Health:** {len(flagged)} of {n_runs} trained runs failed a check; the cells and "
                     "comparisons that rest on them state no conclusion.")
    else:
        lines.append(f"- **Health:** all {n_runs} trained runs passed the checks.")
    vs = [r for r in rows if r.get("evaluation") == "vs baseline" and not r.get("blocked")]
    above = sorted({r["model"] for r in vs if r["direction"] == 1})
    below = sorted({r["model"] for r in vs if r["direction"] == -1})
    lines.append("- **Against the baseline:** "
                 + (f"significantly above it in at least one cell: {', '.join(above)}. " if above else
                    "no method is significantly above it in any cell. ")
                 + (f"Significantly below it in at least one cell: {', '.join(below)}." if below else
                    "No method is significantly below it in any cell."))
    return "\n".join(lines)


__all__ = ["METHOD_GROUPS", "build_methods", "data_markdown", "datasets", "leak_rows", "leak_table",
           "leaderboard_caption", "learned_markdown", "load_data", "method_table", "pretraining_health",
           "pretraining_summary", "report"]
