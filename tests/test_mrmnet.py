"""Tests of MRM-Net (``ecgbook.models.mrmnet``): shapes, branch exchange, gradients, loss, overfit, counting."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ecgbook.models.mrmnet import (
    CONFIG_NAMES,
    MRMNetConfig,
    MRMNetOutput,
    MultiKernelConv,
    MutualLearningLoss,
    build_mrmnet,
    combine_logits,
    count_parameters,
    mrmnet_config,
    mrmnet_loss,
    symmetric_bernoulli_kl,
    symmetric_softmax_kl,
)

N_CLASSES = 5
SMALL = dict(width=8, dropout=0.0)  # a tiny model keeps every test fast on 2 CPU cores


# tiny tensors: one intra-op thread avoids the contention that makes them many times slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def small_model(name: str = "paper", seed: int = 0, **overrides):
    return build_mrmnet(mrmnet_config(name, N_CLASSES, **{**SMALL, **overrides}), seed=seed)


def ecg(batch: int = 4, samples: int = 1000, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 12, samples, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("samples", [1000, 250, 77])
def test_stage_and_head_shapes(samples):
    config = mrmnet_config("paper", N_CLASSES)  # default sizes: the documented table
    model = build_mrmnet(config, seed=0).eval()
    stages = model.forward_stages(ecg(2, samples))
    w, wl, d = config.width, config.low_width, config.resolved_feat_dim
    half = ceil_div(samples, 2)
    expected = {"stem": (2, w, half), "high_entry": (2, w, half), "low_entry": (2, wl, ceil_div(half, 2))}
    n_high, n_low = half, ceil_div(half, 2)
    for i, stride in enumerate(config.stage_strides, start=1):
        n_high, n_low = ceil_div(n_high, stride), ceil_div(n_low, stride)
        for suffix in ("", "_local"):
            expected[f"stage{i}_high{suffix}"] = (2, w, n_high)
            expected[f"stage{i}_low{suffix}"] = (2, wl, n_low)
    expected.update({"pooled_high": (2, w), "pooled_low": (2, wl), "feat_high": (2, d), "feat_low": (2, d),
                     "logits_high": (2, N_CLASSES), "logits_low": (2, N_CLASSES), "logits": (2, N_CLASSES)})
    assert {k: tuple(v.shape) for k, v in stages.items()} == expected
    if samples == 1000:  # the numbers printed in the MRMNet docstring
        assert stages["stage3_high"].shape[-1] == 125 and stages["stage3_low"].shape[-1] == 63
    out = model(ecg(2, samples))
    assert isinstance(out, MRMNetOutput)
    for key in ("logits", "logits_high", "logits_low"):
        assert out[key].shape == (2, N_CLASSES)
    assert out.feat_high.shape == out.feat_low.shape == (2, d)


@pytest.mark.parametrize("name, present, absent", [("high_only", "high", "low"), ("low_only", "low", "high")])
def test_single_branch_outputs(name, present, absent):
    model = small_model(name).eval()
    out = model(ecg(3, 250))
    assert out[f"logits_{absent}"] is None and out[f"feat_{absent}"] is None
    assert torch.equal(out.logits, out[f"logits_{present}"])
    assert not any(key.startswith(absent) or f"_{absent}" in key for key in model.forward_stages(ecg(3, 250)))


def test_prediction_modes():
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    assert torch.allclose(combine_logits(a, b, "mean_logit"), (a + b) / 2)
    mean_prob = torch.sigmoid(combine_logits(a, b, "mean_prob"))
    assert torch.allclose(mean_prob, (torch.sigmoid(a) + torch.sigmoid(b)) / 2, atol=1e-6)
    assert torch.equal(combine_logits(a, b, "low"), b)
    model = small_model(prediction="mean_prob").eval()
    out = model(ecg(2, 250))
    assert torch.allclose(out.logits, combine_logits(out.logits_high, out.logits_low, "mean_prob"))


# ------------------------------------------------------------------------------- branch exchange


def test_exchange_changes_both_branches():
    paper = small_model("paper").eval()
    plain = small_model("paper", exchange="none").eval()
    missing, unexpected = plain.load_state_dict(paper.state_dict(), strict=False)
    assert missing == [] and unexpected and all(k.startswith("exchanges.") for k in unexpected)
    x = ecg(2, 250)
    with torch.no_grad():
        with_exchange, without = paper.forward_stages(x), plain.forward_stages(x)
        # identical weights: the branches agree up to the first exchange ...
        for branch in ("high", "low"):
            assert torch.equal(with_exchange[f"stage1_{branch}_local"], without[f"stage1_{branch}"])
        # ... which adds the other branch's (resampled) features to each of them
        high, low = with_exchange["stage1_high_local"], with_exchange["stage1_low_local"]
        new_high, new_low = paper.exchanges["0"](high, low)
        assert torch.equal(with_exchange["stage1_high"], new_high)
        assert torch.equal(with_exchange["stage1_low"], new_low)
        assert not torch.allclose(new_high, high) and not torch.allclose(new_low, low)
        for key in ("logits_high", "logits_low"):
            assert not torch.allclose(with_exchange[key], without[key])


def _first_stage_grad(model, head: str, other: str) -> float:
    model.zero_grad(set_to_none=True)
    model(ecg(4, 250))[f"logits_{head}"].pow(2).sum().backward()
    grad = getattr(model, f"{other}_stages")[0].conv1.weight.grad
    return 0.0 if grad is None else grad.abs().sum().item()


@pytest.mark.parametrize("exchange, coupled", [("every_stage", True), ("end", True), ("none", False)])
def test_gradients_cross_branches_only_through_exchange(exchange, coupled):
    model = small_model(exchange=exchange)
    for head, other in (("low", "high"), ("high", "low")):
        grad = _first_stage_grad(model, head, other)
        assert (grad > 0) == coupled, f"{head} head → {other} branch first stage: grad {grad}"
    # the shared stem always receives gradient from either head
    model.zero_grad(set_to_none=True)
    model(ecg(4, 250)).logits_low.sum().backward()
    assert model.stem[0][0].weight.grad.abs().sum() > 0


def test_multikernel_conv_equals_sum_of_parallel_convs():
    torch.manual_seed(0)
    block = MultiKernelConv(5, 7, (3, 7, 11), stride=2, dropout=0.0)
    x = torch.randn(2, 5, 41)
    reference = 0
    for k in (3, 7, 11):
        conv = nn.Conv1d(5, 7, k, stride=2, padding=k // 2, bias=False)
        conv.weight.data.copy_(getattr(block, f"weight_k{k}"))
        reference = reference + conv(x)
    merged = F.conv1d(x, block.merged_weight(), stride=2, padding=5)
    assert merged.shape == (2, 7, 21)
    assert torch.allclose(merged, reference, atol=1e-5)


# ----------------------------------------------------------------------------------------- loss


def _output(zh, zl, fh, fl) -> MRMNetOutput:
    return MRMNetOutput(logits=(zh + zl) / 2, logits_high=zh, logits_low=zl, feat_high=fh, feat_low=fl)


def test_bernoulli_kl_hand_worked_and_reference():
    # p = σ(0) = 1/2, q = σ(log 3) = 3/4: KL(p‖q) + KL(q‖p) = (p − q)(logit p − logit q) = ¼·log 3
    zh, zl = torch.tensor([[0.0]]), torch.tensor([[math.log(3.0)]])
    assert symmetric_bernoulli_kl(zh, zl, 1.0).item() == pytest.approx(0.25 * math.log(3.0), rel=1e-6)
    torch.manual_seed(1)
    a, b, t = torch.randn(6, 4) * 3, torch.randn(6, 4) * 3, 4.0
    pa, pb = torch.distributions.Bernoulli(logits=a / t), torch.distributions.Bernoulli(logits=b / t)
    kl = torch.distributions.kl_divergence
    reference = (kl(pa, pb) + kl(pb, pa)).sum(dim=1).mean() * t ** 2
    assert symmetric_bernoulli_kl(a, b, t).item() == pytest.approx(reference.item(), rel=1e-5)


def test_softmax_kl_matches_released_distill_kl():
    torch.manual_seed(2)
    a, b, t = torch.randn(5, 7), torch.randn(5, 7), 4.0

    def distill_kl(y_s, y_t):  # main_mul.DistillKL of the authors' code
        kl = F.kl_div(F.log_softmax(y_s / t, dim=1), F.softmax(y_t / t, dim=1), reduction="sum")
        return kl * t ** 2 / y_s.shape[0]

    reference = distill_kl(a, b) + distill_kl(b, a)
    assert symmetric_softmax_kl(a, b, t).item() == pytest.approx(reference.item(), rel=1e-5)


@pytest.mark.parametrize("kl_mode", ["bernoulli", "softmax"])
@pytest.mark.parametrize("feat_mode", ["softmax", "mse"])
def test_mutual_terms_zero_iff_heads_agree(kl_mode, feat_mode):
    torch.manual_seed(3)
    loss = MutualLearningLoss(kl_mode=kl_mode, feat_mode=feat_mode)
    z, f, y = torch.randn(4, N_CLASSES), torch.randn(4, 6), (torch.rand(4, N_CLASSES) > 0.5).float()
    _, same = loss(_output(z, z.clone(), f, f.clone()), y)
    assert same["kl"] == 0.0 and same["feat"] == 0.0
    _, differ = loss(_output(z, torch.randn(4, N_CLASSES), f, torch.randn(4, 6)), y)
    assert differ["kl"] > 0.0 and differ["feat"] > 0.0


def test_softmax_kl_is_blind_to_a_common_shift_bernoulli_is_not():
    z = torch.randn(3, N_CLASSES)
    assert symmetric_softmax_kl(z, z + 2.0, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert symmetric_bernoulli_kl(z, z + 2.0, 4.0).item() > 0.1


def test_loss_composition_and_bce_reference():
    torch.manual_seed(4)
    zh, zl = torch.randn(4, N_CLASSES, requires_grad=True), torch.randn(4, N_CLASSES, requires_grad=True)
    fh, fl = torch.randn(4, 6), torch.randn(4, 6)
    y = (torch.rand(4, N_CLASSES) > 0.5).float()
    loss = MutualLearningLoss()
    assert (loss.kl_weight, loss.feat_weight, loss.temperature, loss.kl_mode) == (0.1, 0.01, 4.0, "bernoulli")
    total, parts = loss(_output(zh, zl, fh, fl), y)
    bce = nn.BCEWithLogitsLoss()
    assert parts["bce_high"] == pytest.approx(bce(zh, y).item(), rel=1e-6)
    assert parts["bce_low"] == pytest.approx(bce(zl, y).item(), rel=1e-6)
    assert parts["kl"] == pytest.approx(symmetric_bernoulli_kl(zh, zl, 4.0).item(), rel=1e-6)
    assert parts["feat"] == pytest.approx(symmetric_softmax_kl(fh, fl, 4.0).item(), rel=1e-6)
    expected = parts["bce_high"] + parts["bce_low"] + 0.1 * parts["kl"] + 0.01 * parts["feat"]
    assert total.item() == pytest.approx(expected, rel=1e-6) and parts["total"] == pytest.approx(expected, rel=1e-6)
    total.backward()  # both heads receive gradient from the symmetric terms
    assert zh.grad.abs().sum() > 0 and zl.grad.abs().sum() > 0


def test_loss_without_mutual_terms_and_single_branch():
    torch.manual_seed(5)
    zh, zl, f = torch.randn(4, N_CLASSES), torch.randn(4, N_CLASSES), torch.randn(4, 6)
    y = (torch.rand(4, N_CLASSES) > 0.5).float()
    bce = nn.BCEWithLogitsLoss()
    total, parts = mrmnet_loss("no_mutual")(_output(zh, zl, f, f + 1), y)
    assert parts["kl"] == parts["feat"] == 0.0
    assert total.item() == pytest.approx(bce(zh, y).item() + bce(zl, y).item(), rel=1e-6)
    single = MRMNetOutput(logits=zh, logits_high=zh, logits_low=None, feat_high=f, feat_low=None)
    total, parts = MutualLearningLoss()(single, y)
    assert parts["bce_low"] == parts["kl"] == parts["feat"] == 0.0
    assert total.item() == pytest.approx(bce(zh, y).item(), rel=1e-6)


def test_loss_rejects_bad_arguments():
    z = torch.randn(4, N_CLASSES)
    with pytest.raises(ValueError, match="logits_high has shape"):
        MutualLearningLoss()(_output(z, z, z, z), torch.zeros(4, N_CLASSES + 1))
    with pytest.raises(ValueError, match="kl_mode"):
        MutualLearningLoss(kl_mode="jensen")
    with pytest.raises(ValueError, match="temperature"):
        MutualLearningLoss(temperature=0.0)


# ------------------------------------------------------------------------------ training & configs


def test_tiny_batch_is_overfit():
    torch.manual_seed(0)
    x = ecg(8, 128, seed=1)
    y = (torch.rand(8, N_CLASSES) > 0.5).float()
    model = small_model("paper")
    loss_fn = mrmnet_loss("paper")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        total, parts = loss_fn(model(x), y)
        first = parts if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert first["bce_high"] + first["bce_low"] > 1.0
    assert parts["bce_high"] < 0.05 and parts["bce_low"] < 0.05, parts
    model.eval()
    with torch.no_grad():
        predicted = model(x).logits > 0
    assert torch.equal(predicted, y.bool())


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_named_configuration_trains(name):
    model = small_model(name)
    output = model(ecg(4, 250))
    total, parts = mrmnet_loss(name)(output, (torch.rand(4, N_CLASSES) > 0.5).float())
    total.backward()
    assert math.isfinite(total.item()) and set(parts) == {"bce_high", "bce_low", "kl", "feat", "total"}
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == [], f"{name}: parameters outside the forward pass: {no_grad}"


def test_named_configurations_encode_the_variants():
    paper, released = mrmnet_config("paper", 3), mrmnet_config("released", 3)
    assert paper.exchange == "every_stage" and released.exchange == "none"
    assert mrmnet_config("high_only", 3).branches == "high" and mrmnet_config("low_only", 3).branches == "low"
    assert mrmnet_config("no_attention", 3).attention is False
    assert mrmnet_config("no_mutual", 3) == paper and mrmnet_loss("no_mutual").mutual is False
    assert mrmnet_loss("released").kl_mode == "softmax" and mrmnet_loss("paper").kl_mode == "bernoulli"
    assert mrmnet_config("paper", 3, width=16, exchange="end").width == 16
    with pytest.raises(KeyError, match="known: paper"):
        mrmnet_config("hrnet", 3)


def test_configuration_and_input_errors():
    with pytest.raises(ValueError, match="exchange"):
        MRMNetConfig(n_classes=3, exchange="sometimes")
    with pytest.raises(ValueError, match="requires exchange='none'"):
        MRMNetConfig(n_classes=3, branches="high")
    with pytest.raises(ValueError, match="odd"):
        MRMNetConfig(n_classes=3, kernel_sizes=(3, 4))
    with pytest.raises(ValueError, match="n_classes"):
        MRMNetConfig(n_classes=0)
    model = small_model()
    with pytest.raises(ValueError, match="leads"):
        model(torch.randn(2, 8, 1000))
    with pytest.raises(ValueError, match="at least 64"):
        model(torch.randn(2, 12, 63))
    with pytest.raises(ValueError, match=r"\(batch, leads, samples\)"):
        model(torch.randn(12, 1000))
    assert model(torch.randn(2, 12, 64)).logits.shape == (2, N_CLASSES)


# ------------------------------------------------------------------------- counting, determinism


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_count_parameters_counts_used_modules_only(name):
    model = small_model(name)
    x = ecg(2, 250)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model, x) == total  # nothing defined-but-unused in MRMNet itself
    model.unused = nn.Linear(10, 10)  # like the released Dui1's dead layers
    assert sum(p.numel() for p in model.parameters()) == total + 110
    assert count_parameters(model, x) == total


def test_count_parameters_shared_module_once_and_no_side_effects():
    shared = nn.Linear(4, 4)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(twice, torch.randn(1, 4)) == 20
    model = small_model().train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    count_parameters(model, ecg(2, 250))
    assert model.training
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    first, second = small_model(seed=7), small_model(seed=7)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(small_model(seed=8).stem[0][0].weight, first.stem[0][0].weight)
    x = ecg(3, 250)
    first.eval(), second.eval()
    with torch.no_grad():
        assert torch.equal(first(x).logits, second(x).logits)
