"""DenseNet-121/161: torchvision-compatible names, shapes, legacy-key remapping, offline behaviour."""
from __future__ import annotations

import re
import urllib.error
from collections import OrderedDict

import pytest
import torch

from ecgbook.models import densenet as dn

# Names and shapes of torchvision.models.densenet121().state_dict() (torchvision's module tree).
EXPECTED_121 = {
    "features.conv0.weight": (64, 3, 7, 7),
    "features.norm0.weight": (64,),
    "features.norm0.bias": (64,),
    "features.norm0.running_mean": (64,),
    "features.norm0.running_var": (64,),
    "features.norm0.num_batches_tracked": (),
    "features.denseblock1.denselayer1.norm1.weight": (64,),
    "features.denseblock1.denselayer1.norm1.running_var": (64,),
    "features.denseblock1.denselayer1.conv1.weight": (128, 64, 1, 1),
    "features.denseblock1.denselayer1.norm2.weight": (128,),
    "features.denseblock1.denselayer1.norm2.num_batches_tracked": (),
    "features.denseblock1.denselayer1.conv2.weight": (32, 128, 3, 3),
    "features.denseblock1.denselayer2.norm1.weight": (96,),
    "features.denseblock1.denselayer6.conv1.weight": (128, 224, 1, 1),
    "features.transition1.norm.weight": (256,),
    "features.transition1.norm.running_mean": (256,),
    "features.transition1.conv.weight": (128, 256, 1, 1),
    "features.denseblock2.denselayer1.norm1.bias": (128,),
    "features.denseblock2.denselayer12.conv2.weight": (32, 128, 3, 3),
    "features.transition2.conv.weight": (256, 512, 1, 1),
    "features.denseblock3.denselayer1.conv1.weight": (128, 256, 1, 1),
    "features.denseblock3.denselayer24.norm1.weight": (992,),
    "features.transition3.norm.bias": (1024,),
    "features.transition3.conv.weight": (512, 1024, 1, 1),
    "features.denseblock4.denselayer1.norm1.weight": (512,),
    "features.denseblock4.denselayer16.conv1.weight": (128, 992, 1, 1),
    "features.denseblock4.denselayer16.conv2.weight": (32, 128, 3, 3),
    "features.norm5.weight": (1024,),
    "features.norm5.running_var": (1024,),
    "features.norm5.num_batches_tracked": (),
    "classifier.weight": (1000, 1024),
    "classifier.bias": (1000,),
}
EXPECTED_161 = {
    "features.conv0.weight": (96, 3, 7, 7),
    "features.denseblock1.denselayer1.conv1.weight": (192, 96, 1, 1),
    "features.denseblock1.denselayer1.conv2.weight": (48, 192, 3, 3),
    "features.transition1.conv.weight": (192, 384, 1, 1),
    "features.denseblock3.denselayer36.norm1.weight": (2064,),
    "features.transition3.conv.weight": (1056, 2112, 1, 1),
    "features.denseblock4.denselayer24.conv2.weight": (48, 192, 3, 3),
    "features.norm5.weight": (2208,),
    "classifier.weight": (1000, 2208),
}


@pytest.fixture(scope="module")
def net121() -> dn.DenseNet:
    torch.manual_seed(0)
    return dn.densenet("densenet121").eval()


def _legacy(state: dict) -> OrderedDict:
    """Rewrite current keys into the 2017 checkpoint style (``norm.1``) and drop ``num_batches_tracked``."""
    old = OrderedDict()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        old[re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key)] = value
    return old


@pytest.mark.parametrize("name, expected, total, params", [
    ("densenet121", EXPECTED_121, 727, 7_978_856),
    ("densenet161", EXPECTED_161, 967, 28_681_000),
])
def test_state_dict_matches_torchvision_names(name, expected, total, params):
    model = dn.densenet(name)
    state = model.state_dict()
    # 121: conv0 + norm0 (5) + 58 dense layers x 12 + 3 transitions x 6 + norm5 (5) + classifier (2) = 727
    assert len(state) == total
    for key, shape in expected.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    # torchvision's documented parameter counts (Weights.meta["num_params"])
    assert sum(p.numel() for p in model.parameters()) == params
    assert list(state)[:2] == ["features.conv0.weight", "features.norm0.weight"]
    assert list(state)[-2:] == ["classifier.weight", "classifier.bias"]


@pytest.mark.parametrize("name, channels", [
    ("densenet121", {"denseblock1": 256, "denseblock2": 512, "denseblock3": 1024, "denseblock4": 1024, "final": 1024}),
    ("densenet161", {"denseblock1": 384, "denseblock2": 768, "denseblock3": 2112, "denseblock4": 2208, "final": 2208}),
])
def test_extract_shapes_at_every_tap(name, channels):
    torch.manual_seed(0)
    model = dn.densenet(name).eval()
    assert model.taps == dn.TAPS and model.tap_channels == channels
    with torch.no_grad():
        out = model.extract(torch.randn(2, 3, 32, 32))  # the smallest input (five 2x downsamplings)
    assert list(out) == list(dn.TAPS)
    for tap, width in channels.items():
        assert out[tap].shape == (2, width), tap
        assert torch.isfinite(out[tap]).all()
    assert (out["final"] >= 0).all()  # after the final ReLU


def test_forward_is_classifier_of_final_tap(net121):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = net121(x)
        expected = net121.classifier(net121.extract(x)["final"])
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_dense_block_concatenates_its_input():
    """A dense block's output begins with its input unchanged (dense connectivity)."""
    block = dn._DenseBlock(num_layers=2, num_input_features=8, bn_size=4, growth_rate=4).eval()
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (1, 16, 5, 5)
    torch.testing.assert_close(y[:, :8], x)


def test_legacy_keys_are_remapped_and_load(net121):
    with torch.no_grad():  # non-trivial running statistics so that the round trip means something
        for m in net121.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    old = _legacy(net121.state_dict())
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    assert "features.denseblock2.denselayer3.conv.2.weight" in old
    new = dn.remap_legacy_keys(old)
    assert "features.denseblock1.denselayer1.norm1.weight" in new
    assert "features.denseblock2.denselayer3.conv2.weight" in new
    # transition and stem keys have no number after norm/conv and stay as they are
    assert "features.transition1.norm.weight" in new and "features.norm0.weight" in new
    assert not any(".norm.1." in k or ".conv.2." in k for k in new)
    assert set(old) == set(_legacy(new)) and len(new) == 727 - 121  # 121 BatchNorms lack num_batches_tracked
    fresh = dn.densenet("densenet121").eval()
    fresh.load_state_dict(new)  # strict: every key used, num_batches_tracked filled in by BatchNorm
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), net121(x))


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache in tmp_path."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def test_load_densenet_offline_raises_clear_error(monkeypatch, hub):
    def offline(url, dst, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(dn.WeightsUnavailableError, match=r"densenet121-a639ec97\.pth.*Name or service.*fall back"):
        dn.load_densenet("densenet121", pretrained=True)
    model, weights = dn.load_densenet("densenet121", pretrained=False)
    assert weights == "random" and not model.training


def _publish(state, hub, monkeypatch, name="densenet121") -> str:
    """Save ``state`` in the hub cache under a torchvision-style name carrying its own hash prefix."""
    from ecgbook.data.download import sha256sum

    hub.mkdir(parents=True, exist_ok=True)
    tmp = hub / "tmp.pth"
    torch.save(state, tmp)
    prefix = sha256sum(tmp)[:8]
    tmp.rename(hub / f"{name}-{prefix}.pth")
    monkeypatch.setitem(dn.WEIGHT_URLS, name, f"https://download.pytorch.org/models/{name}-{prefix}.pth")
    return prefix


def test_load_densenet_uses_verified_checkpoint_with_old_keys(monkeypatch, net121, hub):
    _publish(_legacy(net121.state_dict()), hub, monkeypatch)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("cached: no download"))
    model, weights = dn.load_densenet("densenet121")
    assert weights == "imagenet"
    torch.testing.assert_close(model.features.norm5.running_var, net121.features.norm5.running_var)


def test_unknown_name():
    with pytest.raises(ValueError, match="densenet169"):
        dn.densenet("densenet169")
