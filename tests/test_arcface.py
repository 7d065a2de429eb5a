"""ArcFace identification (the official protocol of Oh et al. 2022): the head's logits, the margin's
branches, gradients, overfitting a few identities, Challenge 2021 recordings end to end, and the PTB-XL
one-crop-per-record gallery/probe test."""
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ecgbook import lead_agnostic_ssl as las
from ecgbook.models.arcface import ArcFaceHead
from ecgbook.models.wav2vec2 import W2VArcFace, Wav2Vec2Encoder, wav2vec2_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def challenge_root(challenge_samples) -> Path:
    """The real Challenge-format samples; conftest's fixture fails (never skips) when they are absent."""
    return challenge_samples


def head_2d(scale, margin):
    """A head over 3 identities in 2-d with weights at 0°, 90° and 180° (norms 2, 1, 3)."""
    head = ArcFaceHead(2, 3, scale=scale, margin=margin)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [-3.0, 0.0]]))
    return head


def at(deg, norm=1.0):
    r = math.radians(deg)
    return [norm * math.cos(r), norm * math.sin(r)]


def test_logits_on_hand_worked_angles():
    s, m = 2.0, 0.5
    head = head_2d(s, m)
    # feature at 30° (norm 5): θ = 30°, 60°, 150° to the three weights
    f = torch.tensor([at(30, 5.0)])
    plain = head(f)
    expected = s * torch.tensor([[math.cos(math.radians(30)), math.cos(math.radians(60)),
                                  math.cos(math.radians(150))]])
    torch.testing.assert_close(plain, expected, atol=1e-6, rtol=0)
    with_margin = head(f, torch.tensor([0]))
    expected[0, 0] = s * math.cos(math.radians(30) + m)             # s cos(θ_y + m) at the target only
    torch.testing.assert_close(with_margin, expected, atol=1e-6, rtol=0)
    assert with_margin.dtype == torch.float32


def test_margin_beyond_pi_follows_fairseq_signals():
    s, m = 192.0, 1.0
    head = head_2d(s, m)
    # target 2 (180°) with a feature at 20°: θ_y = 160° = 2.79 rad, θ_y + m > π
    theta = math.radians(160)
    f = torch.tensor([at(20)])
    out = head(f, torch.tensor([2]))
    assert theta + m > math.pi
    assert out[0, 2].item() == pytest.approx(s * (math.cos(theta) - m * math.sin(m)), abs=1e-3)
    # below π - m the margin formula is used: feature at 100° -> θ to 180° is 80°
    out = head(torch.tensor([at(100)]), torch.tensor([2]))
    assert out[0, 2].item() == pytest.approx(s * math.cos(math.radians(80) + m), abs=1e-3)
    # the target logit decreases with θ over [0, π]; at θ = π - m it steps down from cos π = -1
    # to cos(π - m) - m sin m (the rule is monotone, not continuous)
    thetas = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    t = head.target_logit(torch.cos(thetas).float())
    assert (t[1:] <= t[:-1] + 1e-6).all()
    edge = torch.tensor([math.cos(math.pi - m)])
    assert head.target_logit(edge).item() == pytest.approx(math.cos(math.pi - m) - m * math.sin(m), abs=1e-5)
    assert head.target_logit(edge + 1e-4).item() == pytest.approx(-1.0, abs=2e-3)


def test_margin_only_on_the_target_column():
    torch.manual_seed(0)
    head = ArcFaceHead(16, 10, scale=30.0, margin=0.5)
    z = torch.randn(8, 16)
    y = torch.arange(8) % 10
    plain, marg = head(z), head(z, y)
    diff = (plain != marg)
    assert diff.sum() == 8 and diff[torch.arange(8), y].all()
    assert (marg[torch.arange(8), y] < plain[torch.arange(8), y]).all()
    assert plain.abs().max() <= 30.0 + 1e-4                       # s · cos θ with normalised features and weights
    torch.testing.assert_close(head.cosine(z * 7.0), head.cosine(z))   # scale-free in the features


def test_gradients_flow_and_stay_finite_at_cos_one():
    torch.manual_seed(0)
    head = ArcFaceHead(8, 5, scale=192.0, margin=1.0)
    z = torch.randn(6, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    F.cross_entropy(head(z, y), y).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert torch.isfinite(head.weight.grad).all() and head.weight.grad.abs().sum() > 0
    # a feature exactly on its class weight (cos θ = 1): finite gradients thanks to the sin floor
    head.zero_grad()
    z1 = head.weight.detach()[:1].clone().requires_grad_(True)
    F.cross_entropy(head(z1, torch.tensor([0])), torch.tensor([0])).backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(head.weight.grad).all()


def test_head_errors():
    with pytest.raises(ValueError, match="margin"):
        ArcFaceHead(4, 3, margin=2.0)
    with pytest.raises(ValueError, match="scale"):
        ArcFaceHead(4, 3, scale=0)
    head = ArcFaceHead(4, 3)
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="targets"):
        head(torch.randn(2, 4), torch.tensor([0]))


def test_tri_stage_schedule():
    total = 1000
    f = [las.tri_stage_factor(s, total) for s in range(total + 50)]
    assert f[0] == pytest.approx(0.01) and f[99] == pytest.approx(0.01 + 0.99 * 99 / 100)
    assert all(v == 1.0 for v in f[100:300])
    assert f[650] == pytest.approx(math.sqrt(0.01), rel=1e-6)      # halfway through the exponential decay
    assert f[1000] == pytest.approx(0.01) and f[1049] == pytest.approx(0.01)
    assert all(b <= a + 1e-12 for a, b in zip(f[100:], f[101:]))


def test_encoder_and_head_overfit_a_few_identities():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(5, 12, las.SEGMENT)) * 0.3).astype(np.float32)
    enc = Wav2Vec2Encoder(wav2vec2_config("smoke"))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    run = las.arcface_finetune(enc, X, epochs=50, batch_size=5, lr=3e-3, schedule="constant", seed=0)
    h = run.history
    assert h[-1]["train_loss"] < 0.7 * h[0]["train_loss"]
    assert h[-1]["train_lr"] == pytest.approx(3e-3)
    with torch.no_grad():
        pred = run.model(torch.as_tensor(X)).argmax(1)
    assert pred.tolist() == list(range(5))                        # accuracy 1 on the training identities
    # the caller's encoder is untouched; the copy's conv encoder is frozen, its Transformer trained
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    tuned = run.encoder.state_dict()
    assert all(torch.equal(before[k], tuned[k]) for k in before if k.startswith("feature_extractor."))
    assert not torch.equal(before["layers.0.fc1.weight"], tuned["layers.0.fc1.weight"])
    assert run.encoder.cfg.dropout == 0.0 and run.encoder.layers[0].activation_dropout == 0.1
    assert not run.model.training


def test_arcface_finetune_is_seeded_and_checks_its_inputs():
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(6, 12, 700)) * 0.3).astype(np.float32)
    cfg = wav2vec2_config("smoke")
    a = las.arcface_finetune(None, X, cfg=cfg, epochs=5, batch_size=2, lr=1e-3, seed=3)
    b = las.arcface_finetune(None, X, cfg=cfg, epochs=5, batch_size=2, lr=1e-3, seed=3)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert a.history[0]["train_lr"] < 1e-3                        # tri-stage: warming up from 1 % of the lr
    with pytest.raises(ValueError, match="recordings"):
        las.arcface_finetune(None, X[:, :3], cfg=cfg)
    with pytest.raises(ValueError, match="2 to"):
        las.arcface_finetune(None, X[:1], cfg=cfg)
    with pytest.raises(ValueError, match="encoder or a cfg"):
        las.arcface_finetune(None, X)
    with pytest.raises(ValueError, match="unknown lead"):
        las.arcface_finetune(None, X, cfg=cfg, leads=("I", "MLII"))
    with pytest.raises(ValueError, match="schedule"):
        las.arcface_finetune(None, X, cfg=cfg, schedule="cosine")


def test_leads_outside_the_subset_are_zeroed_in_training():
    seen = []
    cfg = wav2vec2_config("smoke")
    model = W2VArcFace(Wav2Vec2Encoder(cfg), 3)
    task = las.ArcFaceTask(torch.as_tensor(las.keep_leads(np.ones((12, 1), np.float32), ("I",))[:, 0] > 0), 1e-3)
    task.opt = torch.optim.Adam(model.parameters())
    original = model.pooled
    model.pooled = lambda x: (seen.append(x), original(x))[1]
    loss, parts = task.loss(model, (torch.ones(3, 12, las.SEGMENT), torch.tensor([0.0, 1.0, 2.0])))
    assert loss.dtype == torch.float32 and loss.ndim == 0 and 0 <= float(parts["accuracy"]) <= 1
    assert torch.equal(seen[0][:, 0], torch.ones(3, las.SEGMENT)) and seen[0][:, 1:].abs().sum() == 0


def test_challenge_recordings_end_to_end(challenge_root, tmp_path):
    rec = las.challenge2021_recordings(challenge_root)
    sources = set(rec.source.tolist())
    assert sources and not sources & {"ptb", "ptb-xl", "st_petersburg_incart"}
    on_disk = [p for p in challenge_root.rglob("*.hea") if p.relative_to(challenge_root).parts[0]
               not in las.CHALLENGE2021_EXCLUDE]
    assert len(rec) == len(on_disk) and len(set(rec.recording.tolist())) == len(rec)
    assert rec.X.shape == (len(rec), 12, 1000) and rec.X.dtype == np.float32 and np.isfinite(rec.X).all()
    assert 0.01 < float(np.abs(rec.X).mean()) < 5                    # mV, not ADC units
    # seconds: records shorter are left out and counted; max_recordings: a seeded subset
    few = las.challenge2021_recordings(challenge_root, max_recordings=5, seed=1)
    assert len(few) == 5 and set(few.recording) <= set(rec.recording)
    some = las.challenge2021_recordings(challenge_root, max_recordings=12, seed=2)
    long = las.challenge2021_recordings(challenge_root, max_recordings=12, seed=2, seconds=12)   # same headers
    head = {str(p.relative_to(challenge_root).with_suffix("")): p.read_text().split() for p in on_disk}
    n_long = sum(int(head[r][3]) >= 12 * float(head[r][2]) for r in some.recording)
    assert 0 < n_long < 12 and len(long) == n_long and set(long.recording) <= set(some.recording)
    assert long.skipped == {"shorter than 12 s": 12 - n_long}
    with pytest.raises(FileNotFoundError):
        las.challenge2021_recordings(challenge_root / "ptb-xl", exclude=("ptb-xl",))
    # fine-tune a tiny encoder on them: recordings are the identities
    run = las.arcface_finetune(None, few, cfg=wav2vec2_config("smoke"), epochs=2, batch_size=4, lr=1e-3)
    assert run.model.head.n_classes == 5 and len(run.history) == 2
    assert all(np.isfinite(r["train_loss"]) and r["train_loss"] > 0 for r in run.history)
    emb = las.embed(run.encoder, few.X)
    assert emb.shape == (5, 32) and np.isfinite(emb).all()


def test_gallery_probe_split_max_probes():
    patient = ["a", "a", "a", "b", "b", "c"]
    date = [3, 1, 2, 5, 4, 9]
    g, p = las.gallery_probe_split(patient, date)
    assert g.tolist() == [1, 4] and p.tolist() == [0, 2, 3]
    g, p = las.gallery_probe_split(patient, date, max_probes=1)
    assert g.tolist() == [1, 4] and p.tolist() == [2, 3]
    with pytest.raises(ValueError):
        las.gallery_probe_split(patient, date, max_probes=0)


@pytest.fixture(scope="module")
def ptbxl_all(mirror):
    from ecgbook.data.ptbxl import PTBXL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = PTBXL(fs=100)
        task = db.task("all")
    return task, db.meta.loc[task.ecg_id, "recording_date"].to_numpy()


def test_ptbxl_one_crop_per_record_gallery_probe(ptbxl_all):
    task, dates = ptbxl_all
    crops, starts = las.one_crop_per_record(task.X, seed=0)
    assert crops.shape == (len(task.X), 12, las.SEGMENT)
    assert starts.min() >= 0 and starts.max() <= task.X.shape[-1] - las.SEGMENT and len(set(starts.tolist())) > 10
    i = 7
    assert np.array_equal(crops[i], task.X[i, :, starts[i]:starts[i] + las.SEGMENT])
    assert np.array_equal(las.one_crop_per_record(task.X, seed=0)[1], starts)
    with pytest.raises(ValueError):
        las.one_crop_per_record(task.X[:2, :, :100])

    pid = task.patient_id
    _, counts = np.unique(pid, return_counts=True)
    g, p = las.gallery_probe_split(pid, dates, max_probes=1)
    assert len(g) == len(p) == (counts >= 2).sum()                 # one gallery and one probe ECG per patient
    first = {q: dates[j] for q, j in zip(pid[g], g)}
    assert all(dates[j] >= first[pid[j]] for j in p)                # the probe is recorded after the gallery ECG

    torch.manual_seed(0)
    enc = Wav2Vec2Encoder(wav2vec2_config("smoke")).eval()
    rows = las.identification_ptbxl_crops({"random": enc, "random + ArcFace": {12: enc}}, task.X, pid, dates,
                                          task.strat_fold, [12, 1], folds=None, seed=0)
    assert {(r["model"], r["leads"]) for r in rows} == {("random", 12), ("random", 1), ("random + ArcFace", 12)}
    zero, _ = las.identification_ptbxl({"random": enc}, task.X, pid, dates, task.strat_fold, [12])
    assert all(set(r) == set(zero[0]) for r in rows)                # the fields of the zero-shot rows
    r12 = [r for r in rows if r["model"] == "random" and r["leads"] == 12]
    assert {r["metric"] for r in r12} == {"top1_accuracy", "top5_accuracy"}
    top1 = next(r for r in r12 if r["metric"] == "top1_accuracy")
    assert top1["gallery"] == top1["probes"] == len(g) and top1["split"] == "all folds"
    assert top1["chance"] == pytest.approx(1 / len(g)) and top1["evaluation"] == "identification"
    assert 0 <= top1["value"] <= 1
    same = las.identification_ptbxl_crops({"random": enc}, task.X, pid, dates, task.strat_fold, [12], folds=None,
                                          seed=0)
    assert [r["value"] for r in same] == [r["value"] for r in r12]
    later = las.identification_ptbxl_crops({"random": enc}, task.X, pid, dates, task.strat_fold, [12],
                                           folds=(9, 10), max_probes=None)
    assert later[0]["probes"] == zero[0]["probes"] and later[0]["gallery"] == zero[0]["gallery"]


def test_profiles_carry_the_arcface_parameters():
    from ecgbook import profiles
    for name in profiles.PROFILE_NAMES:
        assert profiles.PROFILES[name]["lead_agnostic_ssl"]["challenge2021_root"] is None
    paper = profiles.resolve("lead_agnostic_ssl", "paper", challenge2021_root="/data/challenge-2021/training")
    assert paper["challenge2021_root"] == "/data/challenge-2021/training"
    assert (paper["arcface_lr"], paper["arcface_epochs"], paper["batch_size"]) == (3e-5, 100, 128)
    assert paper["arcface_recordings"] is None
    with pytest.raises(ValueError, match="challenge2021_root"):
        profiles.resolve("lead_agnostic_ssl", "smoke", challenge2021_root=3)
