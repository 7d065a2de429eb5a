"""Lead-agnostic SSL: span masks, RLM, the wav2vec 2.0 and CMSC losses, lead layout, identification, splits."""
import math

import numpy as np
import pytest
import torch

from ecgbook import lead_agnostic_ssl as las
from ecgbook.models.wav2vec2 import Wav2Vec2Pretrainer, wav2vec2_config

torch.set_num_threads(1)


def expected_masked_share(T, p, L):
    """Exact expectation of the covered share for n = p*T/L starts drawn without replacement from T-L."""
    n_float = p * T / L
    lo = int(n_float)
    shares = []
    for n, w in ((lo, 1 - (n_float - lo)), (lo + 1, n_float - lo)):
        n = min(max(2, n), T - L)
        N = T - L
        covered = 0.0
        for t in range(T):
            window = min(t, N - 1) - max(0, t - L + 1) + 1      # starts that cover t
            window = max(window, 0)
            # P(no start among `window` specific positions) for n drawn without replacement from N
            p_none = math.comb(N - window, n) / math.comb(N, n) if N - window >= n else 0.0
            covered += 1 - p_none
        shares.append((w, covered / T))
    return sum(w * s for w, s in shares)


def test_span_mask_rate_and_span_length():
    T, p, L = 125, 0.65, 10
    g = torch.Generator().manual_seed(0)
    masks = torch.stack([las.span_mask(T, p, L, g) for _ in range(2000)])
    share = masks.float().mean().item()
    assert abs(share - expected_masked_share(T, p, L)) < 0.01
    # with few spans, every run of masked steps has the span length (or a multiple when they touch)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        m = las.span_mask(T, 0.08, L, g).int().tolist()
        runs, run = [], 0
        for v in m + [0]:
            if v:
                run += 1
            elif run:
                runs.append(run); run = 0
        assert all(r >= L for r in runs)
        assert sum(m) <= 2 * L if len(runs) else True
    with pytest.raises(ValueError):
        las.span_mask(8, 0.65, 10)


def test_rlm_rate_per_sample_and_lead_and_reproducible():
    keeps = las.draw_randomness(range(4000), seed=3, epoch=0, steps=125, cfg=wav2vec2_config("smoke"), rlm_p=0.5,
                                w2v=False)["keep"]
    assert keeps.shape == (4000, 12)
    assert abs(keeps.float().mean().item() - 0.5) < 0.02
    assert (keeps.float().mean(0) - 0.5).abs().max() < 0.04          # every lead at the rate
    assert len({tuple(k.tolist()) for k in keeps[:200]}) > 150         # drawn per sample, not shared
    again = las.draw_randomness([7, 8], seed=3, epoch=0, steps=125, cfg=wav2vec2_config("smoke"), rlm_p=0.5, w2v=False)
    assert torch.equal(again["keep"], keeps[7:9])                      # same (seed, epoch, index) -> same mask
    other = las.draw_randomness(range(200), seed=4, epoch=0, steps=125, cfg=wav2vec2_config("smoke"), rlm_p=0.5,
                                w2v=False)["keep"]
    assert not torch.equal(other, keeps[:200])


def test_zero_fill_and_keep_leads_keep_positions():
    x = np.arange(2 * 2 * 5, dtype=np.float32).reshape(2, 2, 5) + 1
    out = las.zero_fill(x, ["II", "V1"])
    assert out.shape == (2, 12, 5)
    assert np.array_equal(out[:, 1], x[:, 0]) and np.array_equal(out[:, 6], x[:, 1])
    assert np.all(out[:, [0, 2, 3, 4, 5, 7, 8, 9, 10, 11]] == 0)
    with pytest.raises(ValueError):
        las.zero_fill(x, ["II", "MLII"])
    full = np.random.default_rng(0).normal(size=(3, 12, 7)).astype(np.float32)
    kept = las.keep_leads(full, las.LEAD_SUBSETS[3])
    assert np.array_equal(kept[:, [0, 1, 7]], full[:, [0, 1, 7]])
    assert np.all(np.delete(kept, [0, 1, 7], axis=1) == 0)
    t = las.keep_leads(torch.as_tensor(full), ("I",))
    assert torch.equal(t[:, 0], torch.as_tensor(full[:, 0])) and float(t[:, 1:].abs().sum()) == 0
    assert las.LEAD_SUBSETS[6] == ("I", "II", "III", "aVR", "aVL", "aVF")


def test_cmsc_loss_hand_computed_and_positives_from_ids():
    # two pairs from different recordings, orthogonal representations
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ids = torch.tensor([5, 5, 9, 9])
    seg = torch.tensor([0, 1, 0, 1])
    for temp in (1.0, 0.5):
        s = 1 / temp
        expected = -math.log(math.exp(s) / (math.exp(s) + 1.0))
        assert math.isclose(float(las.cmsc_loss(z, ids, seg, temp=temp)), expected, rel_tol=1e-5)
    # two pairs cut from one recording are positives of each other: mask built from ids, not positions
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    same = las.cmsc_loss(z, torch.tensor([1, 1, 1, 1]), seg)
    a, b = z[[0, 2]], z[[1, 3]]
    sim = (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T / 0.1
    manual = 0.5 * (-sim.log_softmax(1)).mean() + 0.5 * (-sim.T.log_softmax(1)).mean()
    assert torch.isclose(same, manual, atol=1e-5)
    diff = las.cmsc_loss(z, torch.tensor([1, 1, 2, 2]), seg)
    manual_diff = 0.5 * (-sim.log_softmax(1)).diag().mean() + 0.5 * (-sim.T.log_softmax(1)).diag().mean()
    assert torch.isclose(diff, manual_diff, atol=1e-5)
    # the order of pairs in the batch does not matter
    perm = torch.tensor([2, 3, 0, 1])
    assert torch.isclose(las.cmsc_loss(z[perm], torch.tensor([2, 2, 1, 1]), seg), diff, atol=1e-6)
    with pytest.raises(ValueError):
        las.cmsc_loss(z, ids, torch.zeros(4, dtype=torch.long))


def test_cmsc_positives_from_ids_numpy_and_torch():
    ids, seg = [4, 4, 4, 4, 7, 7], [0, 1, 0, 1, 0, 1]
    want = np.array([[True, True, False], [True, True, False], [False, False, True]])
    assert np.array_equal(las.cmsc_positives(ids, seg), want)
    got = las.cmsc_positives(torch.tensor(ids), torch.tensor(seg))
    assert got.dtype == torch.bool and np.array_equal(got.numpy(), want)
    # rows: position-0 segments in batch order; columns: position-1 segments
    assert np.array_equal(las.cmsc_positives([1, 2, 2, 1], [0, 0, 1, 1]), [[False, True], [True, False]])


def test_cmsc_patient_ids_only_join_same_patient():
    rng = np.random.default_rng(0)
    recording = np.array(["r1", "r2", "r3", "r4"])
    patient = np.array(["p1", "p1", "p2", "p3"])
    corpus = las.Corpus(rng.normal(size=(4, 12, 1000)).astype(np.float32), recording, patient,
                        np.array(["PTB-XL"] * 4))
    rec_ids, pat_ids = corpus.ids("recording"), corpus.ids("patient")
    assert len(set(rec_ids)) == 4
    assert pat_ids[0] == pat_ids[1] and len({pat_ids[0], pat_ids[2], pat_ids[3]}) == 3
    pos = pat_ids[:, None] == pat_ids[None, :]
    for i in range(4):
        for j in range(4):
            assert pos[i, j] == (patient[i] == patient[j])        # never across patients


def test_contrastive_loss_hand_computed():
    logits = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 3.0, float("-inf")]]])
    valid = torch.tensor([[True, True]])
    out = {"logits": logits, "valid": valid, "prob_sum": torch.ones(1, 4) * 2.5, "hard_sum": torch.ones(1, 4),
           "n": 10, "features_pen_sum": torch.tensor(8.0), "features_numel": 4}
    terms = las.wav2vec2_loss(out)
    l1 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    l2 = -math.log(1 / (1 + math.exp(3)))
    assert math.isclose(float(terms["contrastive"]), (l1 + l2) / 2, rel_tol=1e-5)
    # uniform codebook use: perplexity = G*V, diversity loss minimal (0)
    assert math.isclose(float(terms["prob_perplexity"]), 4.0, rel_tol=1e-4)
    assert abs(float(terms["diversity"])) < 1e-4
    assert math.isclose(float(terms["penalty"]), 2.0)
    assert math.isclose(float(terms["loss"]), (l1 + l2) / 2 + 0.1 * float(terms["diversity"]) + 10 * 2.0, rel_tol=1e-5)
    assert float(terms["accuracy"]) == 0.5
    # concentrated use raises the diversity loss
    peaked = dict(out, prob_sum=torch.tensor([[10.0, 0.0, 0.0, 0.0]]))
    assert float(las.wav2vec2_loss(peaked)["diversity"]) > 0.7


@pytest.mark.parametrize("method", ["W2V", "CMSC", "W2V+CMSC+RLM"])
def test_pretrain_loss_runs_and_is_deterministic(method):
    torch.manual_seed(0)
    cfg = wav2vec2_config("smoke", dropout=0.0, attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0)
    m = Wav2Vec2Pretrainer(cfg).train()
    pairs = torch.randn(4, 12, 1000) * 0.3
    idx, ids = torch.tensor([3, 1, 7, 2]), torch.tensor([0, 0, 1, 2])
    l1, parts = las.pretrain_loss(m, pairs, idx, ids, las.objective(method), seed=0, epoch=0)
    l2, _ = las.pretrain_loss(m, pairs, idx, ids, las.objective(method), seed=0, epoch=0)
    assert torch.isfinite(l1) and float(l1) == float(l2)
    assert ("cmsc" in parts) == ("CMSC" in method) and ("contrastive" in parts) == ("W2V" in method)
    l1.backward()


def test_pretraining_reduces_loss_on_a_tiny_corpus():
    rng = np.random.default_rng(0)
    t = np.arange(1000) / 100
    X = np.stack([np.sin(2 * np.pi * (1 + i % 3) * t)[None].repeat(12, 0) for i in range(8)]).astype(np.float32)
    X += 0.05 * rng.normal(size=X.shape).astype(np.float32)
    corpus = las.Corpus(X, np.array([f"r{i}" for i in range(8)]), np.array([f"p{i}" for i in range(8)]),
                        np.array(["toy"] * 8))
    torch.manual_seed(0)
    m = Wav2Vec2Pretrainer(wav2vec2_config("smoke"))
    res = las.pretrain(m, corpus, las.objective("W2V+CMSC"), las.PretrainConfig(epochs=25, batch_size=8, lr=3e-3))
    h = res["history"]
    assert h[-1]["loss"] < h[0]["loss"] and res["segments_per_s"] > 0
    assert {"contrastive", "diversity", "penalty", "cmsc", "prob_perplexity", "code_perplexity", "temp"} <= set(h[-1])


def test_identify_on_hand_made_gallery():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    probes = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.6], [0.5, 1.0]])
    res = las.identify(gallery, ["a", "b", "c"], probes, ["a", "b", "b", "c"], ks=(1, 2, 3))
    # probe 3 (b): cosines a .8, b .6 -> found at rank 2; probe 4 (c): b .89, a .45, c -.45 -> rank 3
    assert res["top1"] == 0.5 and res["top2"] == 0.75 and res["top3"] == 1.0
    assert res["chance_top1"] == pytest.approx(1 / 3) and res["gallery"] == 3 and res["probes"] == 4
    with pytest.raises(ValueError):
        las.identify(gallery, ["a", "a", "c"], probes, ["a"] * 4)
    with pytest.raises(ValueError):
        las.identify(gallery, ["a", "b", "c"], probes, ["a", "b", "b", "z"])


def test_gallery_probe_split_by_date():
    patient = np.array([1, 1, 2, 3, 3, 3])
    date = np.array(["2001-05-01", "1999-01-01", "2000-01-01", "2003-01-01", "2002-01-01", "2004-01-01"])
    g, p = las.gallery_probe_split(patient, date)
    assert g.tolist() == [1, 4]                           # earliest record of patients 1 and 3; 2 has one ECG
    assert p.tolist() == [0, 3, 5]


def test_identification_needs_patients_with_two_recordings():
    with pytest.raises(ValueError, match="0 of 3 patients have 2 or more recordings"):
        las.gallery_probe_split([1, 2, 3], [0, 0, 0])
    g, p = las.gallery_probe_split([1, 2, 2], [0, 5, 3])         # one patient with two: still a split
    assert g.tolist() == [2] and p.tolist() == [1]
    with pytest.raises(ValueError, match="0 probe recordings"):
        las.identify(np.ones((2, 3)), ["a", "b"], np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="0 gallery"):
        las.identify(np.zeros((0, 3)), [], np.zeros((0, 3)), [])
    X = np.zeros((3, 12, las.SEGMENT), np.float32)
    with pytest.raises(ValueError, match="0 of 3 patients"):          # before any embedding
        las.identification_ptbxl({"random": None}, X, [1, 2, 3], [0, 0, 0], [9, 9, 10], [12])


def test_crop_level_split_leaks_and_patient_split_does_not():
    patient = np.repeat(np.arange(50), 2)                 # 100 records, 2 per patient
    crop = las.crop_splits(patient, 2, level="crop")
    pat = las.crop_splits(patient, 2, level="patient")
    for splits in (crop, pat):
        allidx = np.concatenate(list(splits.values()))
        assert sorted(allidx.tolist()) == list(range(200))
    rec = lambda idx: set((idx // 2).tolist())
    assert rec(crop["train"]) & rec(crop["test"])          # the official crop split: recordings on both sides
    owner = lambda idx: set(patient[idx // 2].tolist())
    assert not owner(pat["train"]) & owner(pat["test"]) and not owner(pat["train"]) & owner(pat["val"])
    X = np.arange(2 * 12 * 1000, dtype=np.float32).reshape(2, 12, 1000)
    c = las.crops_of(X, 2)
    assert c.shape == (4, 12, 500) and np.array_equal(c[1], X[0, :, 500:]) and np.array_equal(c[2], X[1, :, :500])


def test_pairs_of_even_spread():
    sig = np.arange(3 * 5000, dtype=np.float32).reshape(3, 5000)
    assert las.pairs_of(sig).shape == (5, 3, 1000)
    p = las.pairs_of(sig, max_pairs=2)
    assert p.shape == (2, 3, 1000) and p[0, 0, 0] == 0 and p[1, 0, -1] == 4999


def test_paired_rows_pool_seeds_and_prepared_subset_zero_fills():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) > 0.5).astype(int)
    good = y + rng.normal(0, 0.3, y.shape)
    scores = {("A", 12, 0): good, ("A", 12, 1): good + rng.normal(0, 0.1, y.shape), ("B", 12): rng.random(y.shape)}
    rows = las.paired_rows(scores, y, [(("A", 12), ("B", 12))], n_boot=50)
    assert rows[0]["model"] == "A - B" and rows[0]["value"] > 0.2 and rows[0]["ci_low"] <= rows[0]["value"] <= rows[0]["ci_high"]
    with pytest.raises(KeyError):
        las.paired_rows(scores, y, [(("C", 12), ("B", 12))], n_boot=5)

    class Task:
        X = rng.normal(size=(10, 12, 1000)).astype(np.float32)
        Y = (rng.random((10, 2)) > 0.5).astype(np.uint8)
        classes, fs = ["a", "b"], 100
        strat_fold = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])

        def split(self, name):
            return {"train": np.arange(8), "val": np.array([8]), "test": np.array([9])}[name]

    data = las.prepared_subset(Task(), las.LEAD_SUBSETS[2])
    assert data.X_train.shape == (8, 12, 1000) and data.X_test.shape == (1, 12, 1000)
    assert np.array_equal(data.X_train[:, :2], Task.X[:8, :2]) and not data.X_train[:, 2:].any()
