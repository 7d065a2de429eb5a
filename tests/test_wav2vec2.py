"""wav2vec 2.0 encoder, quantiser and pre-training heads: shapes, gradients, checkpoints."""
import math

import pytest
import torch
import torch.nn.functional as F

from ecgbook.models.wav2vec2 import (GumbelQuantizer, W2VClassifier, Wav2Vec2Config, Wav2Vec2Encoder,
                                     Wav2Vec2Pretrainer, load_encoder, perplexity, save_pretrained, wav2vec2_config)

torch.set_num_threads(1)


def small(**kw):
    base = dict(dropout=0.0, attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0)
    return wav2vec2_config("smoke", **{**base, **kw})


def test_encoder_shapes_and_time_steps():
    enc = Wav2Vec2Encoder(small())
    x = torch.randn(3, 12, 500)
    out = enc(x)
    assert enc.time_steps(500) == 125                       # 100 Hz, stride 4: one step per 40 ms
    assert out["x"].shape == (3, 125, 32)
    assert out["features"].shape == (3, 125, 32)
    assert enc.pooled(x).shape == (3, 32)
    with pytest.raises(ValueError, match="12 leads"):
        enc(torch.randn(2, 3, 500))


def test_paper_config_matches_official_sizes():
    cfg = wav2vec2_config("paper")
    assert (cfg.layers, cfg.embed_dim, cfg.heads, cfg.ffn_dim) == (12, 768, 12, 3072)
    assert (cfg.conv_pos, cfg.conv_pos_groups, cfg.latent_vars, cfg.latent_groups) == (128, 16, 320, 2)
    assert (cfg.mask_prob, cfg.mask_length, cfg.num_negatives, cfg.logit_temp) == (0.65, 10, 100, 0.1)
    assert cfg.latent_temp == (2.0, 0.5, 0.999995)
    assert Wav2Vec2Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        wav2vec2_config("huge")


def test_mask_replaces_steps_with_mask_embedding():
    torch.manual_seed(0)
    enc = Wav2Vec2Encoder(small()).eval()
    x = torch.randn(2, 12, 500)
    mask = torch.zeros(2, 125, dtype=torch.bool)
    mask[:, 10:20] = True
    a, b = enc(x)["x"], enc(x, mask)["x"]
    assert not torch.allclose(a, b)
    # unmasked features (the quantiser's input) do not depend on the mask
    assert torch.allclose(enc(x)["features"], enc(x, mask)["features"])


def test_feature_grad_mult_zero_freezes_conv():
    enc = Wav2Vec2Encoder(small(feature_grad_mult=0.0))
    enc(torch.randn(2, 12, 500))["x"].sum().backward()
    assert all(p.grad is None for p in enc.feature_extractor.parameters())
    assert enc.layers[0].qkv.weight.grad is not None


def test_quantizer_shapes_perplexity_and_straight_through():
    torch.manual_seed(0)
    q = GumbelQuantizer(dim=8, num_vars=5, groups=2, vq_dim=6).train()
    x = torch.randn(40, 8, requires_grad=True)
    out = q(x)
    assert out["q"].shape == (40, 6) and out["codes"].shape == (40, 2)
    assert out["prob_sum"].shape == (2, 5)
    # each output is exactly one codebook entry per group (hard forward)
    entries = q.vars.view(2, 5, 3)
    for g in range(2):
        assert torch.allclose(out["q"][:, 3 * g:3 * g + 3], entries[g][out["codes"][:, g]], atol=1e-6)
    # straight-through: gradients reach the input through the softmax
    out["q"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # perplexity bounds: uniform use -> G*V, a single entry -> G
    assert math.isclose(float(perplexity(torch.ones(2, 5) * 7, 35)), 10.0, rel_tol=1e-5)
    one = torch.zeros(2, 5); one[:, 0] = 4
    assert math.isclose(float(perplexity(one, 4)), 2.0, rel_tol=1e-5)


def test_temperature_anneal():
    q = GumbelQuantizer(dim=4, num_vars=3, groups=1, vq_dim=2, temp=(2.0, 0.5, 0.9))
    q.set_num_updates(0); assert q.curr_temp == 2.0
    q.set_num_updates(3); assert math.isclose(q.curr_temp, 2.0 * 0.9 ** 3)
    q.set_num_updates(1000); assert q.curr_temp == 0.5


def test_pretrainer_distractors_same_sequence_never_self():
    torch.manual_seed(0)
    cfg = small(num_negatives=7)
    m = Wav2Vec2Pretrainer(cfg).train()
    x = torch.randn(3, 12, 500)
    mask = torch.zeros(3, 125, dtype=torch.bool)
    mask[0, 5:25] = True; mask[1, 40:52] = True; mask[2, 0:3] = True       # 20, 12, 3 masked steps
    out = m(x, mask)
    assert out["logits"].shape == (3, 20, 8)
    assert out["valid"].sum(1).tolist() == [20, 12, 3]
    neg, valid = out["neg_index"], out["valid"]
    counts = mask.sum(1)
    for b in range(3):
        for j in range(int(counts[b])):
            idx = neg[b, j]
            assert (idx != j).all()                     # never the positive itself
            assert (idx >= 0).all() and (idx < counts[b]).all()   # only masked steps of this sequence
    loss = F.cross_entropy(out["logits"][valid].float(), torch.zeros(int(valid.sum()), dtype=torch.long))
    loss.backward()
    assert m.quantizer.weight_proj.weight.grad is not None
    with pytest.raises(ValueError, match="at least 2"):
        bad = torch.zeros(1, 125, dtype=torch.bool); bad[0, 0] = True
        m(x[:1], bad)


def test_classifier_overfits_tiny_batch():
    torch.manual_seed(0)
    enc = Wav2Vec2Encoder(small())
    model = W2VClassifier(enc, n_classes=3, freeze="conv")
    x = torch.randn(8, 12, 500)
    y = (torch.rand(8, 3) > 0.5).float()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(60):
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.1 * first
    assert all(p.grad is None for p in enc.feature_extractor.parameters())


def test_linear_probe_mode_keeps_encoder_frozen_and_eval():
    model = W2VClassifier(Wav2Vec2Encoder(small(dropout=0.1)), 2, freeze="all").train()
    assert not model.encoder.training and model.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
    with pytest.raises(ValueError):
        W2VClassifier(Wav2Vec2Encoder(small()), 2, freeze="half")


def test_checkpoint_loads_every_encoder_key_weights_only(tmp_path):
    torch.manual_seed(0)
    m = Wav2Vec2Pretrainer(small())
    save_pretrained(m, tmp_path / "w2v.pt", {"objective": {"w2v": True}})
    enc = load_encoder(tmp_path / "w2v.pt")         # torch.load(weights_only=True), strict keys
    ref = {k[len("encoder."):]: v for k, v in m.state_dict().items() if k.startswith("encoder.")}
    got = enc.state_dict()
    assert set(got) == set(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    clf = W2VClassifier(enc, 5)
    assert set(k for k in clf.state_dict() if k.startswith("encoder.")) == {f"encoder.{k}" for k in ref}
    # a checkpoint missing an encoder key fails loudly
    state = torch.load(tmp_path / "w2v.pt", weights_only=True)
    state["model"].pop("encoder.mask_emb")
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="mask_emb"):
        load_encoder(tmp_path / "bad.pt")
