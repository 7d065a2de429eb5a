"""The shared supervised protocol: splits, standardisation, multi-label folds, windowed scoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgbook import protocol
from ecgbook.evaluation import iterative_stratification


def test_prepare_arrays_standardises_with_train_statistics_only():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(30, 2, 50)).astype(np.float32)
    X[20:] += 100.0  # test records far away: must not shift the training statistics
    Y = rng.integers(0, 2, size=(30, 3))
    splits = {"train": np.arange(15), "val": np.arange(15, 20), "test": np.arange(20, 30)}
    d = protocol.prepare_arrays(X, Y, splits, ["a", "b", "c"], fs=100)
    np.testing.assert_allclose(d.X_train.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(d.X_train.std(axis=(0, 2)), 1, atol=1e-4)
    assert d.X_test.mean() > 40  # transformed with the train statistics, not re-centred
    assert d.sizes() == {"train": 15, "val": 5, "test": 10}


def test_prepare_arrays_rejects_empty_and_overlapping_splits():
    X, Y = np.zeros((6, 1, 8), np.float32), np.zeros((6, 1))
    with pytest.raises(ValueError, match=r"no records in split\(s\) \['val'\]"):
        protocol.prepare_arrays(X, Y, {"train": [0, 1], "val": [], "test": [2]}, ["a"], 100)
    with pytest.raises(ValueError, match="overlap"):
        protocol.prepare_arrays(X, Y, {"train": [0, 1], "val": [1], "test": [2]}, ["a"], 100)


def test_record_wise_iterative_stratification_balances_labels_and_sizes():
    rng = np.random.default_rng(1)
    prevalence = np.array([0.3, 0.2, 0.1, 0.05, 0.02])
    Y = (rng.random((1000, 5)) < prevalence).astype(int)
    folds = iterative_stratification(Y, k=10, seed=0)
    assert set(folds) == set(range(10))
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 2
    per_fold = np.array([Y[folds == f].sum(0) for f in range(10)])
    # each label is spread within one record of its ideal share per fold
    assert (np.abs(per_fold - Y.sum(0) / 10) <= 1.5).all()
    np.testing.assert_array_equal(folds, iterative_stratification(Y, k=10, seed=0))
    with pytest.raises(ValueError, match="cannot fill k=10 folds"):
        iterative_stratification(Y[:5], k=10)


def test_window_scorer_max_aggregation():
    class Constant(torch.nn.Module):
        def forward(self, x):  # logit = mean of the window's first lead -> sigmoid per window
            return x[:, 0].mean(-1, keepdim=True).repeat(1, 2)

    X = np.zeros((1, 1, 400), np.float32)
    X[0, 0, 300:] = 5.0  # only late windows see the high values
    scores = protocol.window_scorer(fs=100, window_s=1.0)(Constant(), X, device="cpu")
    assert scores.shape == (1, 2)
    assert scores[0, 0] == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-5)  # window 300–400


# --------------------------------------------------------------------------- several seeds


def _labels(n=120, k=3, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, k)) < 0.3).astype(int)
    Y[0], Y[1] = 1, 0  # every class has a positive and a negative
    return Y, rng


def test_pooled_scores_average_over_seeds_and_check_shapes():
    a, b = np.zeros((4, 2)), np.ones((4, 2))
    np.testing.assert_allclose(protocol.pooled_scores([a, b, b]), np.full((4, 2), 2 / 3))
    with pytest.raises(ValueError, match="differ in shape"):
        protocol.pooled_scores([a, np.ones((3, 2))])
    with pytest.raises(ValueError, match="no score arrays"):
        protocol.pooled_scores([])


def test_compare_over_seeds_consistent_difference():
    Y, rng = _labels()
    good = {s: Y + rng.normal(0, 0.6, Y.shape) for s in range(3)}   # informative scores
    bad = {s: Y + rng.normal(0, 3.0, Y.shape) for s in range(3)}    # mostly noise
    c = protocol.compare_over_seeds(Y, good, bad, n_boot=100, seed=0)
    assert c.n_seeds == 3 and all(d > 0 for d in c.per_seed.values())
    assert c.low > 0 and c.p_value < 0.05
    assert protocol.direction(c) == 1
    # the pooled difference is that of the seed-averaged scores, not the mean of per-seed ones
    from ecgbook.metrics import macro_auroc
    pooled = macro_auroc(Y, protocol.pooled_scores(list(good.values()))).value \
        - macro_auroc(Y, protocol.pooled_scores(list(bad.values()))).value
    assert c.pooled == pytest.approx(pooled)
    assert c.mean == pytest.approx(np.mean(list(c.per_seed.values())))
    assert protocol.direction(protocol.compare_over_seeds(Y, bad, good, n_boot=100)) == -1
    s = protocol.comparison_sentence(c, "Model A", "model B", where="on rhythm")
    assert s.startswith("Model A is **higher** than model B on rhythm in all 3 seeds")
    assert "interval excludes zero" in s and f"Δ {c.pooled:+.3f}" in s


def test_direction_needs_every_seed_and_the_interval():
    def cmp(per_seed, low, high):
        return protocol.SeedComparison(dict(enumerate(per_seed)), float(np.mean(per_seed)), low, high, 0.5)

    assert protocol.direction(cmp([0.02, 0.03, 0.01], 0.005, 0.04)) == 1
    assert protocol.direction(cmp([-0.02, -0.03, -0.01], -0.04, -0.005)) == -1
    flip = cmp([0.02, -0.01, 0.03], 0.001, 0.05)  # interval excludes zero, one seed disagrees
    assert protocol.direction(flip) == 0
    s = protocol.comparison_sentence(flip, "A", "B")
    assert "**inconclusive**" in s and "seeds disagree on the sign (-0.010 to +0.030)" in s
    wide = cmp([0.02, 0.03, 0.01], -0.01, 0.05)  # all seeds agree, interval contains zero
    assert protocol.direction(wide) == 0
    assert "interval contains zero" in protocol.comparison_sentence(wide, "A", "B")
    assert protocol.direction(cmp([0.0, 0.01, 0.02], 0.001, 0.03)) == 0  # a zero is no sign
    clear = cmp([0.02, 0.03, 0.01], 0.005, 0.04)
    health = ["SEED OUTLIER — x: seed 2 …", "STILL RISING — rhythm, baseline, seed 1: …",
              "KEPT LAST EPOCH — rhythm, baseline, seed 1: …"]
    s = protocol.comparison_sentence(clear, "A", "B", health=health)
    # two warnings about one run count as one run (the chapter 05 verdict counted warnings)
    assert s.startswith("A vs B: **inconclusive** — 1 run(s) not converged or failed (kept last epoch, still rising)")
    assert "**higher**" in protocol.comparison_sentence(clear, "A", "B", health=health[:1])


def test_compare_over_seeds_against_a_published_value():
    Y, rng = _labels()
    ours = [Y + rng.normal(0, 0.6, Y.shape) for _ in range(3)]
    c = protocol.compare_over_seeds(Y, ours, 0.5, n_boot=100)
    assert c.p_value is None and c.against == "value" and protocol.direction(c) == 1
    assert c.as_row()["evaluation"].startswith("bootstrap over test records")
    assert protocol.direction(protocol.compare_over_seeds(Y, ours, 0.999, n_boot=100)) == -1
    with pytest.raises(ValueError, match="different seeds"):
        protocol.compare_over_seeds(Y, {0: ours[0], 1: ours[1]}, {0: ours[0], 2: ours[1]}, n_boot=10)


def test_aggregate_rows_mean_sd_and_seeds():
    rows = [{"model": "m", "task": "t", "metric": "auc", "seed": s, "value": v}
            for s, v in [(0, 0.80), (1, 0.84), (2, 0.82)]]
    rows += [{"model": "m", "task": "t", "metric": "f1", "seed": 0, "value": None},
             {"model": "m", "task": "t", "metric": "f1", "seed": 1, "value": 0.5},
             {"model": "m", "task": "t", "metric": "auc", "value": 0.9}]  # no seed: ignored
    agg = {r["metric"]: r for r in protocol.aggregate_rows(rows)}
    assert agg["auc"]["value"] == pytest.approx(0.82) and agg["auc"]["sd"] == pytest.approx(0.02)
    assert agg["auc"]["seeds"] == 3 and agg["auc"]["seed_list"] == [0, 1, 2]
    assert agg["f1"]["seeds"] == 1 and agg["f1"]["sd"] is None and agg["f1"]["undefined_seeds"] == [0]
    assert protocol.mean_sd(0.82, 0.02) == "0.820 ± 0.020" and protocol.mean_sd(None, None) == "–"
    with pytest.raises(ValueError, match="seed 0 appears twice"):
        protocol.aggregate_rows(rows + [rows[0]])


def test_seed_rows_and_health_on_a_tiny_run():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, fs = 60, 20
    Y = np.zeros((n, 2), int)
    Y[: n // 2, 0] = 1
    Y[n // 4: 3 * n // 4, 1] = 1
    X = rng.normal(0, 1, (n, 2, 100)).astype(np.float32)
    X[:, 0] += 2.0 * Y[:, :1]  # class 0 is visible in lead 0
    idx = rng.permutation(n)
    splits = {"train": idx[:36], "val": idx[36:48], "test": idx[48:]}
    data = protocol.prepare_arrays(X, Y, splits, ["a", "b"], fs=fs)

    def build():
        return torch.nn.Sequential(torch.nn.Conv1d(2, 4, 5), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(4, 2))

    runs = protocol.train_seeds(build, data, seeds=[0, 1, 2], epochs=2, batch_size=12, lr=1e-2,
                                window_s=2.5, patience=None)
    assert [r.seed for r in runs] == [0, 1, 2] and all(r.epochs == 2 for r in runs)
    assert not np.allclose(runs[0].test_scores, runs[1].test_scores)  # seeds change the model
    rows = protocol.seed_rows("tiny", "toy", data, runs, n_boot=20, variant="v")
    per_seed = [r for r in rows if r["evaluation"] == "per seed" and r["metric"] == "macro_auroc"]
    assert [r["seed"] for r in per_seed] == [0, 1, 2] and all(r["variant"] == "v" for r in rows)
    mean = next(r for r in rows if r["evaluation"] == "mean over seeds" and r["metric"] == "macro_auroc")
    assert mean["seeds"] == 3 and mean["value"] == pytest.approx(np.mean([r["value"] for r in per_seed]))
    pooled = next(r for r in rows if r["evaluation"] == "pooled over seeds" and r["metric"] == "macro_auroc")
    assert pooled["seeds"] == 3 and pooled["ci_low"] <= pooled["value"] <= pooled["ci_high"]
    import json
    data.ids = {k: np.arange(len(v)) + 1000 * i for i, (k, v) in enumerate(splits.items())}
    stored = json.loads(json.dumps(protocol.stored_scores(data, runs)))  # through a results file
    back = protocol.runs_from_stored(stored, data, seeds=[0, 2])
    np.testing.assert_allclose(back[1].test_scores, runs[2].test_scores)
    assert back[1].fit.best_epoch == runs[2].fit.best_epoch and back[1].fit.history == runs[2].fit.history
    rows_back = protocol.seed_rows("tiny", "toy", data, back, n_boot=20)
    assert {r["seed"] for r in rows_back if "seed" in r} == {0, 2}
    with pytest.raises(ValueError, match="no run with seed 5"):
        protocol.runs_from_stored(stored, data, seeds=[5])
    other = protocol.Prepared(**{**data.__dict__, "ids": {**data.ids, "test": data.ids["test"] + 1}})
    with pytest.raises(ValueError, match="test records differ"):
        protocol.runs_from_stored(stored, other, seeds=[0])
    with pytest.raises(ValueError, match="no record ids"):
        protocol.stored_scores(protocol.Prepared(**{**data.__dict__, "ids": {}}), runs)
    warnings = protocol.seed_health(runs, data.Y_test, name="toy")
    assert all(isinstance(w, str) for w in warnings)
    with pytest.raises(ValueError, match="distinct seeds"):
        protocol.train_seeds(build, data, seeds=[1, 1], epochs=1, batch_size=12, lr=1e-2)


def test_chapter_profiles_rest_on_three_seeds_and_share_the_baseline():
    """Every profile's stated comparisons rest on >= 3 seeds, and the MRM-Net chapter can reuse
    the baseline chapter's runs (same records, seeds and tasks) in every profile."""
    from ecgbook import profiles

    for name in profiles.PROFILE_NAMES:
        base, mrm = profiles.resolve("baseline", name), profiles.resolve("mrmnet", name)
        assert len(base["seeds"]) >= 3 and len(mrm["seeds"]) >= 3, name
        assert base["seeds"] == mrm["seeds"] and base["max_records"] == mrm["max_records"], name
        assert set(mrm["tasks"]) <= set(base["tasks"]), name
        assert mrm["variant_task"] in base["tasks"], name


def _tiny_problem():
    rng = np.random.default_rng(0)
    n = 48
    Y = np.zeros((n, 2), int)
    Y[: n // 2, 0] = 1
    Y[n // 4: 3 * n // 4, 1] = 1
    X = rng.normal(0, 1, (n, 2, 100)).astype(np.float32)
    X[:, 0] += 2.0 * Y[:, :1]
    idx = rng.permutation(n)
    splits = {"train": idx[:30], "val": idx[30:39], "test": idx[39:]}
    return protocol.prepare_arrays(X, Y, splits, ["a", "b"], fs=20)


def _tiny_build():
    return torch.nn.Sequential(torch.nn.Conv1d(2, 4, 5), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


def test_concurrent_seeds_give_the_runs_of_one_process(monkeypatch):
    """Seeds trained in two worker processes (how small runs share one GPU) equal the serial runs
    at the same thread count, in seed order; bad settings are refused."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = _tiny_problem()
        kw = dict(epochs=2, batch_size=10, lr=1e-2, window_s=2.5, patience=None)
        serial = protocol.train_seeds(_tiny_build, data, seeds=[0, 1], concurrent=1, **kw)
        torch.set_num_threads(2)  # two workers of one thread each
        parallel = protocol.train_seeds(lambda: _tiny_build(), data, seeds=[0, 1], concurrent=2, **kw)
    finally:
        torch.set_num_threads(threads)
    assert [r.seed for r in parallel] == [0, 1]
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.test_scores, b.test_scores)
        untimed = [[{k: v for k, v in h.items() if k != "epoch_time_s"} for h in r.fit.history] for r in (a, b)]
        assert untimed[0] == untimed[1]
        assert next(b.model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="on_epoch_end"):
        protocol.train_seeds(_tiny_build, data, seeds=[0, 1], concurrent=2, on_epoch_end=print, **kw)
    with pytest.raises(ValueError, match="concurrent"):
        protocol.train_seeds(_tiny_build, data, seeds=[0], concurrent=0, **kw)
    monkeypatch.setenv("ECGBOOK_CONCURRENT_RUNS", "two")
    with pytest.raises(ValueError, match="ECGBOOK_CONCURRENT_RUNS"):
        protocol.default_concurrent_runs()
    monkeypatch.setenv("ECGBOOK_CONCURRENT_RUNS", "3")
    assert protocol.default_concurrent_runs() == 3
