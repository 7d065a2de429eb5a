"""ecgbook.ssl: DINO loss, centre, EMA, schedules, collapse diagnostics, NT-Xent, label fractions, linear probe."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from ecgbook import ssl

torch.set_num_threads(1)


def test_dino_loss_matches_a_hand_computed_value():
    # K = 2, B = 1, 2 global + 1 local view; teacher temp 1, student temp 1, centre 0
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    loss_fn = ssl.DINOLoss(2, n_global=2, student_temp=1.0)
    loss, diag = loss_fn(s, t, teacher_temp=1.0, update_center=False)
    q0, q1 = np.array([0.5, 0.5]), np.array([0.75, 0.25])
    logp = [np.log(np.exp(v) / np.exp(v).sum()) for v in ([1.0, 0.0], [0.0, 1.0], [2.0, 0.0])]
    pairs = [(q0, logp[1]), (q0, logp[2]), (q1, logp[0]), (q1, logp[2])]  # every (global g, view v != g)
    expected = np.mean([-(q * lp).sum() for q, lp in pairs])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.dtype == torch.float32
    h = np.mean([-(q * np.log(q)).sum() for q in (q0, q1)])
    assert diag["teacher_entropy"].item() == pytest.approx(h, rel=1e-6)
    assert diag["kl"].item() == pytest.approx(expected - h, rel=1e-5)


def test_dino_loss_uses_centre_and_temperatures():
    s = torch.randn(6, 4)
    t = torch.randn(4, 4)
    f = ssl.DINOLoss(4, student_temp=0.1)
    f.center.fill_(0.3)
    loss, _ = f(s, t, 0.04, update_center=False)
    q = torch.softmax((t - 0.3) / 0.04, -1).chunk(2)
    lp = torch.log_softmax(s / 0.1, -1).chunk(3)
    ref = sum(-(q[i] * lp[v]).sum(-1).mean() for i in range(2) for v in range(3) if v != i) / 4
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_centre_update_is_an_ema_of_the_batch_mean():
    f = ssl.DINOLoss(3, center_momentum=0.9)
    t = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    f.update_center(t)
    assert torch.allclose(f.center, 0.1 * torch.tensor([[2.0, 2.0, 2.0]]))  # divided by the batch size ONCE
    f.update_center(t)
    assert torch.allclose(f.center, (0.9 * 0.1 + 0.1) * torch.tensor([[2.0, 2.0, 2.0]]))


def test_teacher_gets_no_gradient_and_ema_follows_the_formula():
    enc = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6))
    enc.out_features = 6
    model = ssl.DINOModel(enc, out_dim=16, hidden_dim=8, bottleneck_dim=4)
    views = [torch.randn(3, 4) for _ in range(4)]
    s = model.student(views)
    t = model.teacher(views[:2])
    loss, _ = model.loss(s, t, 0.04)
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())
    before = [p.detach().clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    ssl.ema_update(model.teacher, model.student, 0.9)
    for b, tp, sp in zip(before, model.teacher.parameters(), model.student.parameters()):
        assert torch.allclose(tp, 0.9 * b + 0.1 * sp)


def test_dino_head_last_layer_is_weight_normalised():
    head = ssl.DINOHead(10, 32, hidden_dim=16, bottleneck_dim=8)
    with torch.no_grad():
        head.last_v.mul_(7.0)
    z = torch.randn(5, 10)
    out = head(z)
    assert out.shape == (5, 32)
    assert out.abs().max() <= 1.0 + 1e-5          # unit bottleneck · unit prototypes
    assert not head.last_g.requires_grad


def test_schedules():
    s = ssl.cosine_schedule(1.0, 0.0, 10, warmup_steps=2)
    assert len(s) == 10 and s[0] == 0.0 and s[1] == 1.0 and s[2] == pytest.approx(1.0) and s[-1] > 0
    assert np.all(np.diff(s[2:]) <= 0)
    m = ssl.cosine_schedule(0.996, 1.0, 100)
    assert m[0] == pytest.approx(0.996) and m[-1] < 1.0 and np.all(np.diff(m) >= 0)
    t = ssl.teacher_temperature_schedule(0.04, 0.07, 3, 5)
    assert np.allclose(t, [0.04, 0.055, 0.07, 0.07, 0.07])
    with pytest.raises(ValueError):
        ssl.cosine_schedule(1, 0, 5, warmup_steps=6)


def _run(teacher_temp, centering, steps=40, K=64, seed=0):
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16))
    enc.out_features = 16
    model = ssl.DINOModel(enc, out_dim=K, hidden_dim=16, bottleneck_dim=8, centering=centering)
    opt = torch.optim.AdamW(model.student.parameters(), lr=1e-2)
    x = torch.randn(32, 8)
    diags = []
    for _ in range(steps):
        views = [x + 0.1 * torch.randn_like(x) for _ in range(4)]
        loss, d = model.loss(model.student(views), model.teacher(views[:2]).detach(), teacher_temp)
        opt.zero_grad(); loss.backward(); opt.step()
        ssl.ema_update(model.teacher, model.student, 0.9)
        diags.append({f"train_{k}": float(v) for k, v in d.items()})
    return diags


def test_collapse_diagnostics_flag_a_collapsed_run_and_not_healthy_distributions():
    collapsed = _run(teacher_temp=5.0, centering=False)
    warnings = ssl.collapse_warnings(collapsed, 64, name="bad")
    assert any("UNIFORM" in w for w in warnings)
    sane = _run(teacher_temp=0.04, centering=True)
    assert not any("UNIFORM" in w for w in ssl.collapse_warnings(sane, 64))
    healthy = [{"train_teacher_entropy": 1.0, "train_teacher_mean_entropy": 3.5, "train_kl": 0.4}]
    assert ssl.collapse_warnings(healthy, 64) == []
    one_proto = [{"train_teacher_entropy": 0.01, "train_teacher_mean_entropy": 0.02, "train_kl": 0.0}]
    assert any("ONE-PROTOTYPE" in w for w in ssl.collapse_warnings(one_proto, 64))


def test_nt_xent_matches_a_hand_computation():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau = 0.5
    # embedding 0: positive (index 2) sim 1, negatives: index 1 (0), index 3 (0)
    per = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * math.exp(0)))
    assert ssl.nt_xent(z1, z2, tau).item() == pytest.approx(per, rel=1e-6)


def test_label_fraction_subsets_are_nested_patient_disjoint_and_identical():
    rng = np.random.default_rng(0)
    pid = rng.integers(0, 300, size=1500)
    subs = ssl.label_fraction_subsets(pid, (0.01, 0.1, 1.0), seed=3)
    again = ssl.label_fraction_subsets(pid, (0.01, 0.1, 1.0), seed=3)
    assert all(np.array_equal(subs[f], again[f]) for f in subs)
    assert set(subs[0.01]) <= set(subs[0.1]) <= set(subs[1.0]) and len(subs[1.0]) == 1500
    for f, idx in subs.items():
        inside = set(pid[idx])
        outside = set(pid[np.setdiff1d(np.arange(1500), idx)])
        assert not inside & outside, f  # whole patients only
        assert len(idx) >= round(f * 1500)
    assert len(subs[0.01]) < 60 and len(subs[0.1]) < 250
    other = ssl.label_fraction_subsets(pid, (0.1,), seed=4)
    assert not np.array_equal(other[0.1], subs[0.1])
    with pytest.raises(ValueError):
        ssl.label_fraction_subsets(pid, (0.0,))


def test_linear_probe_learns_and_handles_a_class_without_positives():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((300, 6))
    Y = np.stack([(F[:, 0] > 0), (F[:, 1] + 0.5 * rng.standard_normal(300) > 0), np.zeros(300)], 1).astype(int)
    Y[250:, 2] = 1  # class 2 has positives in val/test only
    res = ssl.linear_probe(F[:200], Y[:200], F[200:250], Y[200:250], F[250:], Cs=(0.001, 1.0))
    assert res.C in (0.001, 1.0) and set(res.val_auroc_per_C) == {0.001, 1.0}
    assert res.test_scores.shape == (50, 3) and res.constant_classes == [2]
    from ecgbook.metrics import macro_auroc
    assert macro_auroc(Y[250:, :2], res.test_scores[:, :2]).value > 0.85
    with pytest.raises(ValueError):
        ssl.linear_probe(F[:10], Y[:9], F[:5], Y[:5], F[:5])


def test_pooled_features_average_over_windows():
    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(-1)
    X = np.arange(1000, dtype=np.float32)[None, None].repeat(2, 0).repeat(3, 1)
    f = ssl.pooled_features(Mean(), X, window=250, stride=250, device="cpu")
    assert f.shape == (2, 3) and np.allclose(f, X.mean())
