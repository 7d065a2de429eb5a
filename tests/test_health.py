"""Run-health warnings on crafted histories and seed sets."""
from __future__ import annotations

import math

import pytest

from ecgbook import health


def history(scores, losses=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(scores))]
    return [{"epoch": i, "train_loss": l, "val_loss": l, "val_score": s}
            for i, (s, l) in enumerate(zip(scores, losses))]


def tags(warnings):
    return [w.split(" — ")[0] for w in warnings]


def test_converged_run_is_healthy():
    h = history([0.6, 0.75, 0.85, 0.88, 0.90, 0.905, 0.906, 0.905, 0.904, 0.905])
    assert health.check_history(h) == []  # kept epoch 6, flat (+0.000) over the last 3


def test_kept_last_and_still_rising():
    h = history([0.58, 0.66, 0.70, 0.74, 0.79, 0.83, 0.86, 0.88])
    w = health.check_history(h, name="rhythm, seed 1")
    assert tags(w) == ["KEPT LAST EPOCH", "STILL RISING"]
    assert w[0].startswith("KEPT LAST EPOCH — rhythm, seed 1: the kept epoch (7)")
    assert "gained +0.090 over the last 3 epochs" in w[1]  # 0.88 − best before the window (0.79)
    # best epoch given explicitly and not the last: only the rising curve is reported
    assert tags(health.check_history(h, best_epoch=6)) == ["STILL RISING"]


def test_flattened_but_kept_last_epoch():
    h = history([0.7, 0.8, 0.85, 0.9, 0.900, 0.901, 0.902, 0.903])  # +0.003 in the window
    assert tags(health.check_history(h)) == ["KEPT LAST EPOCH"]
    assert tags(health.check_history(h, tol=0.001)) == ["KEPT LAST EPOCH", "STILL RISING"]


def test_early_stopped_run_is_not_kept_last():
    h = history([0.7, 0.8, 0.9, 0.89, 0.88, 0.88])
    assert health.check_history(h, max_epochs=30) == []
    # a run that used the whole budget with the best at its end is flagged
    assert tags(health.check_history(history([0.7, 0.8, 0.9]), max_epochs=3)) == ["KEPT LAST EPOCH"]


def test_diverged_loss_and_at_chance():
    h = history([0.52, 0.50, 0.51, 0.49, 0.50, 0.51], losses=[0.7, 0.7, float("nan"), None, 0.7, 0.7])
    w = health.check_history(h, name="form")
    assert tags(w) == ["DIVERGED", "AT CHANCE", "KEPT FIRST EPOCH"]  # its best epoch is its first
    assert "from epoch 2 on (2 epoch(s) affected)" in w[0]
    assert "0.520" in w[1]
    # every check can be switched off
    assert health.check_history(h, chance=None, loss_keys=(), first_epoch_min=len(h) + 1) == []


def test_nan_validation_score_is_divergence():
    h = history([0.7, 0.8, math.nan])
    assert tags(health.check_history(h, best_epoch=1)) == ["DIVERGED"]
    assert tags(health.check_history(history([math.nan, math.nan]))) == ["DIVERGED"]


def test_minimised_criterion():
    h = [{"epoch": i, "val_score": v} for i, v in enumerate([1.0, 0.8, 0.7, 0.6, 0.5, 0.4])]
    w = health.check_history(h, higher_is_better=False, loss_keys=())
    assert tags(w) == ["KEPT LAST EPOCH", "STILL RISING"]  # improving = falling here; no chance check


def test_bad_history_raises():
    with pytest.raises(ValueError, match="empty history"):
        health.check_history([])
    with pytest.raises(ValueError, match=r"row 1 lacks \['val_score'\]"):
        health.check_history([{"epoch": 0, "val_score": 0.5}, {"epoch": 1}])
    with pytest.raises(ValueError, match="best_epoch 9 is not in"):
        health.check_history(history([0.6, 0.7]), best_epoch=9)


def test_seed_outliers():
    assert health.seed_outliers([0.871, 0.869, 0.874]) == []
    assert health.seed_outliers({0: 0.87, 1: 0.86, 2: 0.72}) == [2]
    # a spread-out set: 0.80 is 0.03 from the others' median but within 3 robust spreads
    assert health.seed_outliers([0.80, 0.83, 0.86, 0.84]) == []
    assert health.seed_outliers([0.90, 0.901, 0.899, 0.90, 0.95]) == [4]
    assert health.seed_outliers([0.9, float("nan"), 0.9]) == [1]
    assert health.seed_outliers([0.5, 0.9]) == []  # two seeds: no "others" to judge by
    assert health.seed_outliers([0.87, 0.86, 0.83], min_gap=0.02, k=3) == [2]


def test_check_seeds():
    w = health.check_seeds({0: 0.87, 1: 0.86, 7: 0.70}, name="rhythm, baseline")
    assert w == ["SEED OUTLIER — rhythm, baseline: seed 7 gives test macro AUROC 0.700, far from the "
                 "other seeds (median 0.865): one seed would tell a different story."]


def test_plot_seed_curves_marks_kept_epochs():
    import matplotlib
    matplotlib.use("Agg")
    h = history([0.6, 0.7, 0.8, 0.79])
    fig = health.plot_seed_curves({"rhythm": [(0, h, 2), (1, h, 1)], "all": [(0, h, 2)], "form": [(0, h, 0)]})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 and len(fig.axes) == 4  # 2 x 2 grid, the fourth panel hidden
    assert len(axes[0].lines) == 4  # two seeds: a line and a kept-epoch dot each
    assert axes[0].lines[1].get_xdata()[0] == 2


def test_a_run_that_never_improves_on_its_first_epoch_is_flagged():
    falling = history([0.84, 0.83, 0.826, 0.825, 0.823])  # the chapter 04 classroom probe
    w = health.check_history(falling, name="dino_time pretraining")
    assert tags(w) == ["KEPT FIRST EPOCH"]
    assert "kept epoch (0) is the first of 5" in w[0]
    assert health.check_history(history([0.84, 0.83])) == []  # two epochs: too few to say
    assert tags(health.check_history(history([0.84, 0.83, 0.82]), first_epoch_min=4)) == []


def test_flagged_runs_count_runs_not_warnings():
    ws = ["KEPT LAST EPOCH — form, MRM-Net, seed 0: a", "STILL RISING — form, MRM-Net, seed 0: b",
          "SEED OUTLIER — form, MRM-Net: seed 2 gives", "AT CHANCE — form, baseline, seed 1: c",
          "UNIFORM COLLAPSE — dino_time: teacher entropy"]
    assert health.blocking(ws) == [ws[0], ws[1], ws[3], ws[4]]
    assert health.flagged_runs(ws) == {"form, MRM-Net, seed 0": ["KEPT LAST EPOCH", "STILL RISING"],
                                       "form, baseline, seed 1": ["AT CHANCE"],
                                       "dino_time": ["UNIFORM COLLAPSE"]}


def test_verdict_counts_runs_and_says_what_the_numbers_support():
    ws = ["KEPT LAST EPOCH — a, seed 0: x", "STILL RISING — a, seed 0: y", "SEED OUTLIER — a: seed 2"]
    md = health.verdict_markdown(ws, 9, what="fine-tuning runs", reference="See the reference run.")
    assert md.startswith(":::{admonition} Run health\n:class: warning\n**1 of 9 fine-tuning runs failed a health check** "
                         "(kept last epoch, still rising)")
    assert "support no conclusion. See the reference run." in md and "- SEED OUTLIER — a: seed 2" in md
    ok = health.verdict_markdown(ws[2:], 3)
    assert ok.startswith(":::{admonition} Run health\n:class: note\nAll 3 training runs passed the health checks.")
    assert "SEED OUTLIER" in ok
    assert health.verdict_markdown([], 2) == (
        ":::{admonition} Run health\n:class: note\nAll 2 training runs passed the health checks.\n:::")
    with pytest.raises(ValueError, match="2 flagged runs but n_runs=1"):
        health.verdict_markdown(["AT CHANCE — a: x", "AT CHANCE — b: y"], 1)


def test_no_gain_over_the_first_epoch_when_asked():
    """The tutorial dino_time probe: kept epoch 1 at 0.826 after 0.824, then flat (issue 20)."""
    probe = history([0.8235, 0.8263, 0.8225, 0.822, 0.823, 0.8224, 0.8222, 0.8228, 0.8245, 0.8227])
    assert health.check_history(probe) == []  # off by default
    w = health.check_history(probe, min_gain=0.005, name="dino_time")
    assert tags(w) == ["NO GAIN"] and "kept epoch (1) scores 0.826" in w[0] and "first epoch's 0.824" in w[0]
    rising = history([0.69, 0.67, 0.70, 0.72, 0.722, 0.7225, 0.7223])
    assert "NO GAIN" not in tags(health.check_history(rising, min_gain=0.005))
    assert health.flagged_runs(w) == {"dino_time": ["NO GAIN"]}
