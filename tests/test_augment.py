"""ecgbook.augment: shapes, dtypes, seeding, device, and the amount each augmentation changes."""
import pytest
import torch

from ecgbook import augment as A

torch.set_num_threads(1)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                             reason="needs a CUDA GPU (none on this machine)"))]


def batch(b=6, leads=12, n=250, dtype=torch.float32, device="cpu"):
    return torch.randn(b, leads, n, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)


def spec(b=5, leads=12, f=13, t=21):
    return torch.rand(b, leads, f, t, generator=torch.Generator().manual_seed(2)) + 1.0


TIME = [(A.random_resized_crop, {}), (A.time_out, {}), (A.gaussian_noise, {}), (A.amplitude_scale, {}),
        (A.lead_mask, {})]
SPEC = [(A.spec_time_crop, {"scale": (0.3, 0.6)}), (A.spec_time_cutout, {}), (A.spec_freq_cutout, {})]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn,kw", TIME)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_augmentations_keep_shape_dtype_device_and_are_seeded(fn, kw, dtype, device):
    x = batch(dtype=dtype, device=device)
    before = x.clone()
    a = fn(x, generator=torch.Generator().manual_seed(5), **kw)
    b = fn(x, generator=torch.Generator().manual_seed(5), **kw)
    c = fn(x, generator=torch.Generator().manual_seed(6), **kw)
    assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, before)  # input untouched


@pytest.mark.parametrize("fn,kw", SPEC)
def test_spectrogram_augmentations_keep_shape_and_are_seeded(fn, kw):
    s = spec()
    a = fn(s, generator=torch.Generator().manual_seed(3), **kw)
    assert a.shape == s.shape and a.dtype == s.dtype
    assert torch.equal(a, fn(s, generator=torch.Generator().manual_seed(3), **kw))


def test_each_item_gets_its_own_draw():
    x = batch(b=2).expand(2, -1, -1).clone()
    x[1] = x[0]
    out = A.time_out(x, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(out[0], out[1])


def test_random_resized_crop_full_scale_is_identity_and_resizes():
    x = batch()
    assert torch.allclose(A.random_resized_crop(x, (1.0, 1.0)), x, atol=1e-5)
    out = A.random_resized_crop(x, (0.1, 0.5), out_samples=100, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 12, 100)
    # a linear ramp stays a (shorter) linear ramp, inside the original range
    ramp = torch.arange(250.0).expand(3, 12, 250).clone()
    r = A.random_resized_crop(ramp, (0.5, 0.5), generator=torch.Generator().manual_seed(0))
    d = r.diff(dim=-1)
    assert torch.allclose(d, d[..., :1].expand_as(d), atol=1e-3) and r.min() >= 0 and r.max() <= 249
    assert torch.allclose(r[..., -1] - r[..., 0], torch.full((3, 12), 124.0), atol=1.01)


def test_time_out_zeroes_a_span_of_the_given_ratio_per_lead():
    x = batch() + 10.0  # no natural zeros
    out = A.time_out(x, (0.2, 0.4), generator=torch.Generator().manual_seed(0))
    zeros = (out == 0).sum(-1)
    assert (zeros >= int(0.2 * 250)).all() and (zeros <= int(0.4 * 250)).all()
    # one contiguous span per lead
    starts = ((out == 0).int().diff(dim=-1) == 1).sum(-1) + (out[..., 0] == 0).int()
    assert (starts == 1).all()
    assert not torch.equal(zeros[:, 0], zeros[:, 1]) or not torch.equal(zeros[0], zeros[1])


def test_gaussian_noise_std_in_range_and_lead_scale():
    x = torch.zeros(200, 2, 2000)
    out = A.gaussian_noise(x, (0.01, 0.02), generator=torch.Generator().manual_seed(0))
    sd = out.std(-1)
    assert sd.min() > 0.0095 and sd.max() < 0.0205
    scaled = A.gaussian_noise(x, (0.01, 0.01), lead_scale=[1.0, 10.0], generator=torch.Generator().manual_seed(0))
    assert abs(scaled[:, 1].std().item() / scaled[:, 0].std().item() - 10) < 0.3
    with pytest.raises(ValueError, match="lead_scale"):
        A.gaussian_noise(x, lead_scale=[1.0, 2.0, 3.0])


def test_lead_mask_keeps_one_lead():
    x = batch(b=50) + 5
    out = A.lead_mask(x, p=0.99, generator=torch.Generator().manual_seed(0))
    kept = (out.abs().sum(-1) > 0).sum(-1)
    assert (kept >= 1).all() and (kept < 12).any()


def test_spectrogram_crop_and_cutouts():
    s = spec()
    assert torch.equal(A.spec_time_crop(s, (1.0, 1.0)), s)
    c = A.spec_time_crop(s, (0.3, 0.3), generator=torch.Generator().manual_seed(0))
    kept = (c[:, 0, 0] != 0).sum(-1)
    assert (kept == int(0.3 * 21)).all()
    width = int(0.3 * 21)
    left = (21 - width) // 2
    assert (c[:, :, :, left:left + width] != 0).all()  # centred run
    f = A.spec_freq_cutout(s, generator=torch.Generator().manual_seed(0))
    assert ((f == 0).all(-1).sum(-1) == 1).all()       # exactly one frequency row per lead
    t = A.spec_time_cutout(s, (0.1, 0.35), generator=torch.Generator().manual_seed(0))
    cols = (t == 0).all(-2).sum(-1)
    assert (cols >= int(0.1 * 21)).all() and (cols <= int(0.35 * 21)).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="batch, leads, samples"):
        A.time_out(torch.zeros(12, 250))
    with pytest.raises(ValueError, match="cannot take"):
        A.random_crop(torch.zeros(2, 12, 100), 250)
    with pytest.raises(ValueError, match="range"):
        A.random_resized_crop(torch.zeros(2, 12, 100), (0.9, 0.1))
    with pytest.raises(TypeError):
        A.time_out([[0.0]])


def test_random_crop_takes_contiguous_windows():
    x = torch.arange(1000.0).expand(4, 12, 1000).clone()
    out = A.random_crop(x, 250, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 12, 250)
    assert torch.equal(out.diff(dim=-1), torch.ones(4, 12, 249))
