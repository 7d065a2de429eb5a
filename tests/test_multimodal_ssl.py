"""The multimodal chapter's technique: spectrogram front end, gate fusion, checkpoint loading,
views, pretraining through the shared loop, gate weights, threshold optimism."""
import numpy as np
import pytest
import scipy.signal
import torch

from ecgbook import multimodal_ssl as M
from ecgbook.models.fusion import FusionClassifier, Spectrogram, load_encoder_state, stft_magnitude
from ecgbook.ssl import DINOConfig

torch.set_num_threads(1)


def test_stft_magnitude_equals_scipy():
    x = np.random.default_rng(0).standard_normal((3, 12, 250)).astype(np.float32)
    _, _, Z = scipy.signal.stft(x, fs=100, window="hann", nperseg=25)
    ours = stft_magnitude(torch.from_numpy(x)).numpy()
    assert ours.shape == (3, 12, 13, 21) == np.abs(Z).shape
    assert np.abs(ours - np.abs(Z)).max() < 1e-5


def test_spectrogram_normalisation_is_fitted_per_lead():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((20, 12, 1000)) * np.arange(1, 13)[None, :, None]).astype(np.float32)
    spec = Spectrogram().fit(X)
    assert spec.mean.shape == (12,) and spec.mean[11] > 5 * spec.mean[0]
    s = spec(torch.from_numpy(X[:, :, :250]))
    assert abs(float(s.mean())) < 0.2 and abs(float(s.std()) - 1) < 0.2
    assert set(spec.state_dict()) == {"mean", "std"}


def tiny_fusion(fusion="gate", n_classes=3):
    spec = Spectrogram()
    return FusionClassifier(M.build_encoder("time", "tiny"), M.build_encoder("spec", "tiny"), spec, n_classes, fusion)


def test_gate_weights_sum_to_one_and_gradients_reach_both_encoders():
    torch.manual_seed(0)
    m = tiny_fusion()
    out = m(torch.randn(4, 12, 250))
    assert out["logits"].shape == (4, 3) and out["gate"].shape == (4, 2)
    assert torch.allclose(out["gate"].sum(1), torch.ones(4))
    out["logits"].sum().backward()
    for enc in (m.time_encoder, m.spec_encoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    assert m.gate_fc.weight.grad.abs().sum() > 0
    concat = tiny_fusion("concat")
    assert concat(torch.randn(2, 12, 250))["gate"] is None
    with pytest.raises(ValueError):
        tiny_fusion("sum")


def test_pretrained_checkpoint_loads_with_every_key_matched(tmp_path):
    enc = M.build_encoder("time", "tiny")
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.5)
    path = M.save_encoder(enc, tmp_path / "time.pt")
    state = torch.load(path, weights_only=True)
    model, loaded = M.build_classifier("gate", 5, size="tiny", spectrogram=Spectrogram(), time_state=path,
                                       spec_state=M.build_encoder("spec", "tiny").state_dict())
    assert loaded["time"] == len(state) == len(enc.state_dict()) > 10
    assert loaded["spec"] == len(M.build_encoder("spec", "tiny").state_dict())
    for k, v in state.items():
        assert torch.equal(model.time_encoder.state_dict()[k], v)
    # the official failure mode: a checkpoint of a wrapper (prefixed keys) must not load silently
    prefixed = {f"backbone.{k}": v for k, v in state.items()}
    with pytest.raises(RuntimeError, match="missing"):
        load_encoder_state(M.build_encoder("time", "tiny"), prefixed)


def test_fused_classifier_overfits_a_tiny_batch():
    torch.manual_seed(0)
    m = tiny_fusion(n_classes=2)
    x = torch.randn(8, 12, 250)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(80):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x)["logits"], y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.05


def test_views_have_the_official_shapes():
    x = torch.randn(4, 12, 250)
    g = torch.Generator().manual_seed(0)
    gv, lv = M.time_views(x, 3, g)
    assert len(gv) == 2 and len(lv) == 3 and all(v.shape == x.shape for v in gv + lv)
    gs, ls = M.spectrogram_views(x, 2, g, Spectrogram())
    assert len(gs) == 2 and len(ls) == 2 and all(v.shape == (4, 12, 13, 21) for v in gs + ls)
    short = M.time_views(x, 1, g, M.ViewSettings(local_samples=100))[1][0]
    assert short.shape == (4, 12, 100)


@pytest.mark.parametrize("modality,method", [("time", "dino"), ("spec", "dino"), ("time", "simclr")])
def test_pretraining_runs_through_the_shared_loop(modality, method, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 12, 500)).astype(np.float32)
    spec = Spectrogram().fit(X)
    enc = M.build_encoder(modality, "tiny")
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    res = M.pretrain(modality, enc, X, method=method, epochs=2, batch_size=8, lr=1e-3, spectrogram=spec,
                     dino=DINOConfig(out_dim=32, hidden_dim=16, bottleneck_dim=8, n_local=2), X_val=X[:8],
                     checkpoint_dir=tmp_path / "ckpt")
    assert len(res.history) == 2 and res.windows_per_s > 0
    assert res.fit.criterion == ("val_dino_loss" if method == "dino" else "val_nt_xent")
    after = res.encoder.state_dict()
    assert set(after) == set(before) and any(not torch.equal(before[k], after[k]) for k in before)
    if method == "dino":
        assert {"train_teacher_entropy", "train_kl", "train_teacher_mean_entropy"} <= set(res.history[-1])
    assert (tmp_path / "ckpt" / "best.pt").exists()


def test_gate_weights_and_threshold_optimism():
    m = tiny_fusion()
    g = M.gate_weights(m, np.random.default_rng(0).standard_normal((5, 12, 1000)).astype(np.float32), device="cpu")
    assert g.shape == (5, 2) and np.allclose(g.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError):
        M.gate_weights(tiny_fusion("concat"), np.zeros((1, 12, 250), np.float32))
    rng = np.random.default_rng(1)
    yv, yt = rng.integers(0, 2, (80, 3)), rng.integers(0, 2, (80, 3))
    sv, st = rng.random((80, 3)) + 0.3 * yv, rng.random((80, 3)) + 0.3 * yt
    res = M.threshold_optimism(yv, sv, yt, st, ["a", "b", "c"])
    assert res["test"]["f1_macro"] >= res["val"]["f1_macro"]  # per-class F1 maximised on the scored fold
    assert res["optimism"]["f1_macro"] == pytest.approx(res["test"]["f1_macro"] - res["val"]["f1_macro"])
