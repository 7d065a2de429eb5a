"""What the side-by-side chapter shows, from its result rows (:func:`ecgbook.comparison.cell_rows`):
the leaderboard, the label-fraction and lead-set curves, the which-method-when figure and the
sentences that state a winner, all generated from the rows of the run on the page.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..comparison import FAMILIES, verdict_text
from ..results import signed_interval

#: One colour per family of method (the which-method-when figure and the curves' markers).
FAMILY_COLOURS = dict(zip(FAMILIES, ("#1f77b4", "#2ca02c", "#d62728", "#9467bd")))
#: Marks of the leaderboard: the method's difference from the baseline, read from its paired row.
MARKS = {1: "▲", -1: "▼", 0: "≈"}


def _rows(rows: Sequence[Mapping], evaluation: str) -> list[Mapping]:
    return [r for r in rows if r.get("evaluation") == evaluation]


def cell_label(fraction: float, leads: int) -> str:
    """``"10 % · 12 leads"``."""
    return f"{100 * fraction:g} % · {leads} lead{'s' if leads != 1 else ''}"


def cells_of(rows: Sequence[Mapping]) -> list[tuple[float, int]]:
    """``(label_fraction, leads)`` of the rows, most leads first, then by fraction."""
    cells = {(float(r["label_fraction"]), int(r["leads"])) for r in _rows(rows, "pooled over seeds")}
    return sorted(cells, key=lambda c: (-c[1], c[0]))


def leaderboard(rows: Sequence[Mapping], *, methods: Sequence[str] | None = None,
                cells: Sequence[tuple[float, int]] | None = None) -> pd.DataFrame:
    """Method × cell: the pooled macro AUROC of the seed-averaged out-of-fold scores, marked by its
    paired difference from the baseline (``▲`` higher, ``▼`` lower — every seed and the 95 %
    interval agree — ``≈`` no significant difference, nothing for the baseline itself) and ``⚠``
    when a run of the cell failed a health check (then no mark: the comparison is blocked).
    ``methods`` / ``cells`` choose and order the rows / columns (default: all, in the rows' order).
    """
    pooled = {(r["model"], float(r["label_fraction"]), int(r["leads"])): r for r in _rows(rows, "pooled over seeds")}
    delta = {(r["model"], float(r["label_fraction"]), int(r["leads"])): r for r in _rows(rows, "vs baseline")}
    methods = list(methods) if methods is not None else list(dict.fromkeys(k[0] for k in pooled))
    cells = list(cells) if cells is not None else cells_of(rows)
    table = {}
    for fraction, leads in cells:
        column = []
        for m in methods:
            r = pooled.get((m, fraction, leads))
            if r is None:
                column.append("not run")
                continue
            d = delta.get((m, fraction, leads))
            if r.get("flagged_runs"):
                mark = " ⚠"
            elif d is None:
                mark = ""
            elif d.get("blocked"):
                mark = " ⚠"
            else:
                mark = " " + MARKS[int(d["direction"])]
            column.append(f"{r['value']:.3f}{mark}")
        table[cell_label(fraction, leads)] = column
    out = pd.DataFrame(table, index=methods)
    out.index.name = "method"
    return out


def details(rows: Sequence[Mapping], *, cells: Sequence[tuple[float, int]] | None = None) -> pd.DataFrame:
    """One row per method and cell: mean ± sd over seeds, the pooled value with its 95 % interval, the
    paired differences from the baseline and from the random-initialisation control with their
    intervals, the health tags, and training time."""
    pooled = _rows(rows, "pooled over seeds")
    mean = {(r["model"], r["label_fraction"], r["leads"]): r for r in _rows(rows, "mean over seeds")}
    vs = {(r["model"], r["label_fraction"], r["leads"], r["evaluation"]): r for r in rows
          if r.get("metric") == "delta_macro_auroc"}
    seconds: dict = {}
    for r in _rows(rows, "per seed"):
        key = (r["model"], r["label_fraction"], r["leads"])
        seconds[key] = seconds.get(key, 0.0) + float(r.get("seconds") or 0.0)
    wanted = set(cells) if cells is not None else None
    out = []
    for r in pooled:
        key = (r["model"], r["label_fraction"], r["leads"])
        if wanted is not None and (float(key[1]), int(key[2])) not in wanted:
            continue
        m = mean.get(key, {})

        def diff(which):
            d = vs.get(key + (which,))
            if d is None:
                return "–"
            text = signed_interval(d["value"], d["ci_low"], d["ci_high"])
            return text + (" (blocked)" if d.get("blocked") else "")

        sd = m.get("sd")
        out.append({"method": r["model"], "cell": cell_label(r["label_fraction"], r["leads"]),
                    "mean ± sd": f"{m['value']:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
                    if m.get("value") is not None else "–",
                    "pooled [95 % CI]": f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                    "Δ vs baseline": diff("vs baseline"), "Δ vs random init": diff("vs random init"),
                    "health": ", ".join(t.lower() for t in r.get("health", [])) or "ok",
                    "train s": round(seconds.get(key, 0.0))})
    return pd.DataFrame(out)


def plot_curves(rows: Sequence[Mapping], *, axis: str, leads: int = 12, fraction: float = 1.0,
                methods: Sequence[str] | None = None, families: Mapping[str, str] | None = None):
    """Macro AUROC (pooled over seeds, with its 95 % interval as a band) of every method against the
    label fraction at ``leads`` leads (``axis="label_fraction"``, log scale) or against the lead set
    at ``fraction`` of the labels (``axis="leads"``). Runs that failed a health check are drawn as
    hollow markers. Returns the figure; raises ``ValueError`` for another ``axis``."""
    if axis not in ("label_fraction", "leads"):
        raise ValueError(f"plot_curves: axis {axis!r}; expected 'label_fraction' or 'leads'")
    pooled = _rows(rows, "pooled over seeds")
    keep = ((lambda r: int(r["leads"]) == leads) if axis == "label_fraction"
            else (lambda r: float(r["label_fraction"]) == fraction))
    pooled = [r for r in pooled if keep(r)]
    methods = list(methods) if methods is not None else list(dict.fromkeys(r["model"] for r in pooled))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    markers = "osD^vP*Xh<>p"
    xs_all = sorted({float(r[axis]) for r in pooled})
    for i, m in enumerate(methods):
        mine = sorted((r for r in pooled if r["model"] == m), key=lambda r: float(r[axis]))
        if not mine:
            continue
        x = np.array([float(r[axis]) for r in mine])
        y = np.array([r["value"] for r in mine])
        lo = np.array([r["ci_low"] for r in mine])
        hi = np.array([r["ci_high"] for r in mine])
        colour = f"C{i % 10}"
        ax.plot(x, y, "-", marker=markers[i % len(markers)], color=colour, lw=1.4, ms=6, label=m)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.12, lw=0)
        for xi, yi, r in zip(x, y, mine):
            if r.get("flagged_runs"):  # hollow: a run of this cell failed a health check
                ax.plot([xi], [yi], markers[i % len(markers)], color=colour, ms=6, mfc="white")
    if axis == "label_fraction":
        ax.set_xscale("log")
        ax.set_xticks(xs_all, [f"{100 * x:g} %" for x in xs_all])
        ax.set_xlabel(f"labelled share of the training folds ({leads} lead{'s' if leads != 1 else ''})")
    else:
        ax.set_xticks(xs_all, [f"{int(x)}" for x in xs_all])
        ax.invert_xaxis()
        ax.set_xlabel(f"leads ({100 * fraction:g} % of the labels)")
    ax.set_ylabel("macro AUROC, out-of-fold test records")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    fig.tight_layout()
    return fig


def plot_which_method(bests: Sequence[Mapping], families: Mapping[str, str]):
    """The which-method-when figure: one square per (lead set, label fraction) that ran, named with the
    winning method and its margin over the runner-up, or "no significant difference" with the tied
    methods, or "no healthy run" (from :func:`ecgbook.comparison.best_method`); coloured by the
    winner's family (grey when no method wins). Returns the figure."""
    fractions = sorted({float(b["label_fraction"]) for b in bests})
    leads = sorted({int(b["leads"]) for b in bests}, reverse=True)
    by_cell = {(float(b["label_fraction"]), int(b["leads"])): b for b in bests}
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 1.1 * len(leads)), dpi=120)
    for i, n in enumerate(leads):
        for j, f in enumerate(fractions):
            b = by_cell.get((f, n))
            if b is None:
                colour, text = "#f0f0f0", "not run"
            elif b["best"] is None:
                colour, text = "#d9d9d9", "no healthy run"
            elif b["significant"] or b["runner_up"] is None:
                colour = FAMILY_COLOURS.get(families.get(b["best"], ""), "#999999")
                margin = f"\n+{b['margin']:.3f} over\n{b['runner_up']}" if b["runner_up"] else "\n(only healthy method)"
                text = f"{b['best']}{margin}"
            else:
                colour = "#d9d9d9"
                tied = [b["best"], *b["tied"]]
                text = ("no significant difference:\n" + "\n".join(tied[:2])
                        + (f"\n+{len(tied) - 2} more (listed below)" if len(tied) > 2 else ""))
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white", lw=2,
                                       alpha=0.35 if colour not in ("#f0f0f0", "#d9d9d9") else 1.0))
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=6.5 if len(fractions) > 2 else 7)
    ax.set_xlim(0, len(fractions))
    ax.set_ylim(len(leads), 0)
    ax.set_xticks(np.arange(len(fractions)) + 0.5, [f"{100 * f:g} % labels" for f in fractions])
    ax.set_yticks(np.arange(len(leads)) + 0.5, [f"{n} lead{'s' if n != 1 else ''}" for n in leads])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, alpha=0.35) for c in FAMILY_COLOURS.values()]
    ax.legend(handles, list(FAMILY_COLOURS), fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.1 / len(leads)),
              frameon=False, title="family of the winner", title_fontsize=7)
    fig.tight_layout()
    return fig


def which_method_markdown(bests: Sequence[Mapping]) -> str:
    """A Markdown list, one item per cell (:func:`ecgbook.comparison.verdict_text`)."""
    return "\n".join(f"- {verdict_text(b)}" for b in sorted(bests, key=lambda b: (-b["leads"], b["label_fraction"])))


def summary_markdown(rows: Sequence[Mapping], bests: Sequence[Mapping], *, baseline: str) -> str:
    """The paragraph for the reader who must choose: per cell, the winner (or that none is
    significantly better), and which methods beat the baseline significantly, with their
    differences — every claim from the rows; blocked comparisons are named as such."""
    vs = [r for r in rows if r.get("evaluation") == "vs baseline"]
    lines = []
    for b in sorted(bests, key=lambda b: (-b["leads"], b["label_fraction"])):
        f, n = float(b["label_fraction"]), int(b["leads"])
        here = [r for r in vs if float(r["label_fraction"]) == f and int(r["leads"]) == n]
        above = [r for r in here if not r.get("blocked") and r["direction"] == 1]
        below = [r for r in here if not r.get("blocked") and r["direction"] == -1]
        blocked = [r["model"] for r in here if r.get("blocked")]
        parts = [verdict_text(b)]
        if above:
            parts.append("Significantly above " + baseline + ": " + "; ".join(
                f"{r['model']} (Δ {signed_interval(r['value'], r['ci_low'], r['ci_high'])})" for r in above) + ".")
        if below:
            parts.append("Significantly below " + baseline + ": " + "; ".join(
                f"{r['model']} (Δ {signed_interval(r['value'], r['ci_low'], r['ci_high'])})" for r in below) + ".")
        if not above and not below and here:
            parts.append(f"No method differs significantly from {baseline} here.")
        if blocked:
            parts.append(f"No conclusion against {baseline} for " + ", ".join(blocked)
                         + " (a run of the method or of the baseline in this cell failed a health check).")
        lines.append("- " + " ".join(parts))
    return "\n".join(lines)


def cost_table(rows: Sequence[Mapping], parameters: Mapping[str, int | None], pretraining: Mapping[str, Mapping],
               *, device: str) -> pd.DataFrame:
    """Per method: parameters (12-lead model), pre-training time, training time summed over every
    run of the grid, and the mean training throughput (samples/s) on ``device``."""
    out = []
    for m in dict.fromkeys(r["model"] for r in _rows(rows, "per seed")):
        mine = [r for r in _rows(rows, "per seed") if r["model"] == m]
        rates = [r["samples_per_s"] for r in mine if r.get("samples_per_s")]
        pre = pretraining.get(m, {})
        out.append({"method": m, "parameters": parameters.get(m),
                    "pre-training s": round(pre["seconds"]) if pre.get("seconds") else None,
                    "training s (all runs)": round(sum(float(r.get("seconds") or 0) for r in mine)),
                    "samples/s": round(float(np.mean(rates))) if rates else None, "device": device})
    out = pd.DataFrame(out)
    for col in ("parameters", "pre-training s", "samples/s"):
        out[col] = out[col].astype("Int64")
    return out


__all__ = ["FAMILY_COLOURS", "MARKS", "cell_label", "cells_of", "cost_table", "details", "leaderboard",
           "plot_curves", "plot_which_method", "summary_markdown", "which_method_markdown"]
