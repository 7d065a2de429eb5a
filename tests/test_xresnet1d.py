"""The encoders of the multimodal chapter: xresnet1d (time series) and SE-ResNet (spectrogram)."""
import pytest
import torch

from ecgbook.models.seresnet2d import SEResNet2d, se_resnet34
from ecgbook.models.xresnet1d import Bottleneck1d, XResNet1d, xresnet1d50

torch.set_num_threads(1)


def test_xresnet1d50_has_the_official_structure_and_output():
    m = xresnet1d50()
    stem_conv = m.stem[0][0]
    assert (stem_conv.in_channels, stem_conv.out_channels, stem_conv.kernel_size, stem_conv.stride) == (12, 32, (5,), (2,))
    blocks = [len(stage) for stage in m.blocks]
    assert blocks == [3, 4, 6, 3]
    assert all(isinstance(b, Bottleneck1d) for stage in m.blocks for b in stage)
    assert all(b.convs[1][0].kernel_size == (5,) for stage in m.blocks for b in stage)
    assert m.blocks[-1][-1].convs[2][0].out_channels == 256 and m.out_features == 512
    out = m.eval()(torch.randn(2, 12, 250))
    assert out.shape == (2, 512)
    assert m(torch.randn(2, 12, 100)).shape == (2, 512)  # local crops of another length


def test_xresnet1d_zero_init_residual_and_bad_input():
    m = XResNet1d(layers=(1, 1), width=8)
    assert all(float(b.convs[2][1].weight.detach().abs().sum()) == 0 for stage in m.blocks for b in stage)
    with pytest.raises(ValueError, match="12"):
        m(torch.randn(2, 3, 250))


def test_se_resnet34_structure_and_shape():
    m = se_resnet34()
    assert [len(s) for s in m.stages] == [3, 4, 6, 3]
    c = m.stem[0]
    assert (c.in_channels, c.out_channels, c.kernel_size, c.stride) == (12, 64, (7, 7), (2, 2))
    assert m.eval()(torch.randn(2, 12, 13, 21)).shape == (2, 512) and m.out_features == 512
    assert m.stages[0][0].se.fc[0].out_features == 64 // 16
    with pytest.raises(ValueError):
        m(torch.randn(2, 12, 13))


@pytest.mark.parametrize("model,x", [(XResNet1d(layers=(1, 1), width=8), torch.randn(8, 12, 250)),
                                     (SEResNet2d(layers=(1, 1), widths=(8, 16)), torch.randn(8, 12, 13, 21))])
def test_encoders_overfit_a_tiny_batch(model, x):
    torch.manual_seed(0)
    head = torch.nn.Linear(model.out_features, 2)
    y = torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(head(model(x)), y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.05
