"""Published pre-trained encoders (ecgbook.checkpoints): pinned hash, refusal, URL path, architecture check."""
import hashlib

import pytest
import torch

from ecgbook import checkpoints as ck
from ecgbook.data.download import ChecksumError
from ecgbook.models.wav2vec2 import Wav2Vec2Encoder, wav2vec2_config
from ecgbook.multimodal_ssl import ENCODER_SIZES, build_encoder

KEY = ("multimodal_ssl", "tutorial", "dino_time")


def _publish(tmp_path, seed=0, size="tiny"):
    torch.manual_seed(seed)
    enc = build_encoder("time", size)
    path = ck.publish(enc, chapter=KEY[0], profile=KEY[1], method=KEY[2], config_dict=ENCODER_SIZES[size]["time"],
                      device="cpu", epochs=3, training={"history": [{"epoch": 0, "loss": 1.5}]}, root=tmp_path)
    return enc, path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in (ck.ENV, ck.TRUST_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ECGBOOK_DATA", str(tmp_path / "data"))
    return monkeypatch


def test_round_trip_pinned_hash_loads_equal_weights(tmp_path, clean_env):
    enc, path = _publish(tmp_path / "pub")
    sums = (path.parent / "SHA256SUMS").read_text()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sums == f"{digest}  multimodal_ssl-dino_time.pt\n"
    clean_env.setitem(ck.PINNED, KEY, digest)
    clean_env.setenv(ck.ENV, str(tmp_path / "pub"))
    loaded = ck.pretrained(*KEY, build_encoder("time", "tiny"), ENCODER_SIZES["tiny"]["time"])
    assert loaded is not None and loaded.sha256 == digest
    for k, v in enc.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[k], v), k
    assert loaded.training["history"][0]["loss"] == 1.5
    text = ck.describe(loaded)
    assert text.startswith(f"loaded from multimodal_ssl-dino_time.pt, sha256 {digest[:12]}…, trained by commit ")
    assert "profile tutorial, on cpu for 3 epochs" in text
    loaded.provenance.update(commit="0123456789abcdef", dirty=True)
    assert "commit 0123456789ab (with uncommitted changes), profile" in ck.describe(loaded)
    assert ck.describe(None, 7) == "pre-trained here for 7 epochs"
    assert ck.describe(None, 1) == "pre-trained here for 1 epoch"


def test_no_hash_or_no_variable_means_pretrain(tmp_path, clean_env):
    _publish(tmp_path / "pub")
    assert ck.locate(*KEY) is None  # variable unset
    clean_env.setenv(ck.ENV, str(tmp_path / "pub"))
    clean_env.setitem(ck.PINNED, KEY, None)
    assert ck.locate(*KEY) is None  # nothing pinned, the folder's list not trusted
    clean_env.setitem(ck.PINNED, KEY, "0" * 64)
    clean_env.setenv(ck.ENV, str(tmp_path / "elsewhere"))
    assert ck.locate(*KEY) is None  # pinned, but the base has no such file


def test_checksum_mismatch_is_refused_and_never_loaded(tmp_path, clean_env, monkeypatch):
    _, path = _publish(tmp_path / "pub")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = "ab" * 32
    clean_env.setitem(ck.PINNED, KEY, expected)
    clean_env.setenv(ck.ENV, str(tmp_path / "pub"))
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(ChecksumError) as err:
        ck.pretrained(*KEY, build_encoder("time", "tiny"), ENCODER_SIZES["tiny"]["time"])
    assert "multimodal_ssl-dino_time.pt" in str(err.value)
    assert expected in str(err.value) and actual in str(err.value)
    assert calls == []


def test_url_base_through_the_fetch_layer_and_trusted_list(tmp_path, clean_env):
    enc, path = _publish(tmp_path / "mirror" / "example.org" / "encoders")
    clean_env.setenv("ECGBOOK_MIRROR", str(tmp_path / "mirror"))
    clean_env.setenv(ck.ENV, "https://example.org/encoders")
    clean_env.setitem(ck.PINNED, KEY, None)
    assert ck.locate(*KEY) is None  # the list is not trusted
    list_hash = hashlib.sha256((path.parent / "SHA256SUMS").read_bytes()).hexdigest()
    clean_env.setenv(ck.TRUST_ENV, "c" * 64)
    with pytest.raises(ChecksumError, match=list_hash):
        ck.locate(*KEY)  # a list other than the one named
    clean_env.setenv(ck.TRUST_ENV, list_hash)
    loaded = ck.pretrained(*KEY, build_encoder("time", "tiny"), ENCODER_SIZES["tiny"]["time"])
    assert loaded is not None
    assert (tmp_path / "data" / "checkpoints" / "published" / "tutorial" / path.name).is_file()
    for k, v in enc.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[k], v), k
    # a tampered file at the source: refused by fetch, the verified copy is kept
    path.write_bytes(path.read_bytes() + b"x")
    (tmp_path / "data" / "checkpoints" / "published" / "tutorial" / path.name).unlink()
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        ck.locate(*KEY)


def test_file_url_base(tmp_path, clean_env):
    _, path = _publish(tmp_path / "pub")
    clean_env.delenv("ECGBOOK_MIRROR", raising=False)
    clean_env.setenv(ck.ENV, (tmp_path / "pub").as_uri())
    clean_env.setitem(ck.PINNED, KEY, hashlib.sha256(path.read_bytes()).hexdigest())
    found = ck.locate(*KEY)
    assert found is not None and found[0].read_bytes() == path.read_bytes()


def test_architecture_mismatch_is_refused(tmp_path, clean_env):
    _, path = _publish(tmp_path / "pub", size="tiny")
    with pytest.raises(ck.EncoderMismatchError, match="another architecture.*layers"):
        ck.load(path, build_encoder("time", "small"), ENCODER_SIZES["small"]["time"])
    with pytest.raises(ck.EncoderMismatchError, match="does not fit.*shape differences"):
        ck.load(path, build_encoder("time", "small"), ENCODER_SIZES["tiny"]["time"])
    cfg = wav2vec2_config("smoke")
    w2v = ck.publish(Wav2Vec2Encoder(cfg), chapter="lead_agnostic_ssl", profile="tutorial", method="W2V+CMSC+RLM",
                     config_dict=cfg.to_dict(), device="cpu", epochs=1, root=tmp_path / "pub")
    with pytest.raises(ck.EncoderMismatchError):
        ck.load(w2v, Wav2Vec2Encoder(wav2vec2_config("smoke", embed_dim=cfg.embed_dim * 2)),
                cfg.to_dict())
    assert sorted(ck.PINNED) and (tmp_path / "pub" / "tutorial" / "SHA256SUMS").read_text().count("\n") == 2


def test_file_name_is_a_safe_single_component():
    assert ck.file_name("lead_agnostic_ssl", "W2V+CMSC (PTB-XL only)") == "lead_agnostic_ssl-W2V+CMSC_PTB-XL_only_.pt"
    assert "/" not in ck.file_name("x", "../../etc")


def test_training_summary_with_numpy_values_survives_weights_only(tmp_path, clean_env):
    """The chapters store their run summary (numpy scalars from the fit) and rebuild it on load."""
    import numpy as np
    from types import SimpleNamespace

    from ecgbook.multimodal_ssl import PretrainResult

    cfg = wav2vec2_config("smoke")
    torch.manual_seed(1)
    enc = Wav2Vec2Encoder(cfg)
    training = {"fit": {"best_epoch": np.int64(4), "best_score": np.float32(0.75),
                        "device": torch.device("cpu")},
                "windows_per_s": np.float64(12.5), "wall_time_s": 3.0,
                "history": [{"epoch": 0, "loss": np.float64(2.0)}]}
    path = ck.publish(enc, chapter="lead_agnostic_ssl", profile="smoke", method="W2V+CMSC+RLM",
                      config_dict=cfg.to_dict(), device="cuda:0", epochs=2, training=training, root=tmp_path)
    loaded = ck.load(path, Wav2Vec2Encoder(cfg), wav2vec2_config("smoke").to_dict())
    t = loaded.training
    res = PretrainResult(loaded.encoder, SimpleNamespace(**t["fit"]), t["windows_per_s"], t["wall_time_s"],
                         t["history"])
    assert (res.fit.best_epoch, res.fit.best_score, res.fit.device) == (4, 0.75, "cpu")
    assert res.history == [{"epoch": 0, "loss": 2.0}] and res.windows_per_s == 12.5
    assert loaded.provenance["device"] == "cuda:0" and loaded.provenance["profile"] == "smoke"
    for k, v in enc.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[k], v), k


def test_a_plain_state_dict_is_not_a_published_encoder(tmp_path):
    from ecgbook.multimodal_ssl import save_encoder
    from ecgbook.train import CheckpointError

    path = save_encoder(build_encoder("time", "tiny"), tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="old.pt.*lacks"):
        ck.load(path, build_encoder("time", "tiny"), ENCODER_SIZES["tiny"]["time"])
