"""The 1-D ResNet baseline and the shared training loop."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ecgbook.models.resnet1d import ResNet1dWang
from ecgbook.train import ArrayDataset, TrainConfig, fit, predict, seed_everything


def auroc(y, s):
    return roc_auc_score(y, s, average="macro")


@pytest.fixture()
def tiny():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 12, 250)).astype(np.float32)
    Y = (rng.random((32, 3)) > 0.5).astype(np.float32)
    return X, Y


def test_resnet_shapes():
    model = ResNet1dWang(n_leads=12, n_classes=5).eval()
    for samples in (1000, 250, 37):
        assert model(torch.zeros(2, 12, samples)).shape == (2, 5)
    assert model.features(torch.zeros(2, 12, 250)).shape == (2, 256)
    with pytest.raises(ValueError, match="batch, leads, samples"):
        model.features(torch.zeros(12, 250))


def test_overfits_a_tiny_batch(tiny):
    X, Y = tiny
    torch.manual_seed(0)
    model = ResNet1dWang(n_classes=3, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(X[:8]), torch.from_numpy(Y[:8])
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_fit_is_repeatable_and_keeps_best_epoch(tiny, tmp_path):
    X, Y = tiny
    runs = []
    for _ in range(2):
        seed_everything(1)
        model = ResNet1dWang(n_classes=3)
        res = fit(model, ArrayDataset(X, Y), X, Y, score_fn=auroc,
                  cfg=TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=1, device="cpu"))
        runs.append((res, model.state_dict()))
    (a, sa), (b, sb) = runs
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.best_score == max(h["val_score"] for h in a.history)
    # the returned model holds the best epoch's weights: its score equals the best one
    model = ResNet1dWang(n_classes=3)
    model.load_state_dict(sa)
    assert auroc(Y, predict(model, X, device="cpu")) == pytest.approx(a.best_score)


def test_resume_after_interruption_gives_the_same_run(tiny, tmp_path):
    X, Y = tiny
    crops = lambda x, rng: x[:, (start := rng.integers(0, 50)):start + 200]  # random crops must also resume exactly
    cfg = dict(epochs=4, batch_size=8, lr=1e-2, seed=2, device="cpu", patience=None)
    seed_everything(5)
    ref_model = ResNet1dWang(n_classes=3)
    ref = fit(ref_model, ArrayDataset(X, Y, crops), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg))

    calls = {"n": 0}

    def failing_score(y, s):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # interrupted during epoch 2
        return auroc(y, s)

    seed_everything(5)
    with pytest.raises(KeyboardInterrupt):
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y, crops), X, Y, score_fn=failing_score,
            cfg=TrainConfig(**cfg, checkpoint_dir=tmp_path))
    assert (tmp_path / "last.pt").exists()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    resumed_model = ResNet1dWang(n_classes=3)
    res = fit(resumed_model, ArrayDataset(X, Y, crops), X, Y, score_fn=auroc,
              cfg=TrainConfig(**cfg, checkpoint_dir=tmp_path, resume=True))
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    np.testing.assert_allclose([h["train_loss"] for h in res.history], [h["train_loss"] for h in ref.history],
                               rtol=1e-5)
    assert res.best_epoch == ref.best_epoch
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == ref.best_epoch


def test_predict_windows_aggregate(tiny):
    X, _ = tiny
    model = ResNet1dWang(n_classes=3)
    full = predict(model, X[:4], device="cpu")
    windows = predict(model, X[:4], window=100, stride=50, aggregate="max", device="cpu")
    assert full.shape == windows.shape == (4, 3)
    assert ((windows >= 0) & (windows <= 1)).all()
    # max over windows dominates the mean over the same windows
    mean = predict(model, X[:4], window=100, stride=50, aggregate="mean", device="cpu")
    assert (windows >= mean - 1e-6).all()


def test_nan_loss_is_reported(tiny):
    X, Y = tiny
    X = X.copy()
    X[0, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="epoch 0"):
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
            cfg=TrainConfig(epochs=1, batch_size=32, device="cpu"))


# ------------------------------------------------------------------ the generic (self-supervised) form

import copy

from torch import nn

from ecgbook.train import (CheckpointError, SupervisedTask, Task, load_checkpoint, save_checkpoint,
                           to_float32)


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(12, 8, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        return self.net(x)


class EMATask(Task):
    """A BYOL-like objective: the student predicts an EMA teacher's embedding of another crop."""

    criterion, mode = "val_ssl_loss", "min"

    def __init__(self, val_X, momentum=0.9):
        self.val_X, self.momentum, self.teacher, self.steps = torch.from_numpy(val_X), momentum, None, []
        self.calls = 0

    def setup(self, model, optimizer, *, steps_per_epoch, total_steps, device):
        if self.teacher is None:
            self.teacher = copy.deepcopy(model).requires_grad_(False)
        self.teacher.to(device)
        self.total_steps = total_steps

    def _pair(self, model, x):
        a, b = x[..., :150], x[..., -150:]
        with torch.no_grad():
            target = self.teacher(b)
        return nn.functional.mse_loss(to_float32(model(a)), target.float())

    def loss(self, model, batch):
        loss = self._pair(model, batch)
        return loss, {"mse": loss.detach()}

    @torch.no_grad()
    def on_step(self, model, step):
        self.steps.append(step)
        for pt, ps in zip(self.teacher.parameters(), model.parameters()):
            pt.mul_(self.momentum).add_(ps.detach(), alpha=1 - self.momentum)

    def validate(self, model, device):
        self.calls += 1
        return {"val_ssl_loss": float(self._pair(model, self.val_X.to(device)))}

    def state_dict(self):
        return {"teacher": self.teacher.state_dict(), "steps": list(self.steps)}

    def load_state_dict(self, state):
        self.teacher = TinyEncoder()
        self.teacher.load_state_dict(state["teacher"])
        self.teacher.requires_grad_(False)
        self.steps = list(state["steps"])


def test_generic_task_runs_on_step_and_selects_by_min(tiny):
    X, _ = tiny
    seed_everything(0)
    model = TinyEncoder()
    task = EMATask(X[:8])
    res = fit(model, ArrayDataset(X, None, crop=200), task=task,
              cfg=TrainConfig(epochs=3, batch_size=8, lr=1e-2, device="cpu", patience=None))
    assert task.steps == list(range(3 * 4))  # one call per optimizer step, global step index
    assert res.criterion == "val_ssl_loss" and res.mode == "min"
    assert res.best_score == min(h["val_ssl_loss"] for h in res.history)
    assert all("train_mse" in h for h in res.history)
    # the teacher moved away from its initial copy (EMA of the student)
    assert not all(torch.equal(a, b) for a, b in zip(task.teacher.state_dict().values(),
                                                      TinyEncoder().state_dict().values()))


def test_callbacks_form_and_missing_criterion(tiny):
    X, _ = tiny
    data = ArrayDataset(X, None, crop=200)
    loss = lambda m, x: m(x).float().pow(2).mean()
    res = fit(TinyEncoder(), data, loss=loss, validate=lambda m, d: {"val_norm": float(m(torch.from_numpy(X)).pow(2).mean())},
              criterion="val_norm", mode="min", cfg=TrainConfig(epochs=2, batch_size=16, device="cpu"))
    assert res.best_score == min(h["val_norm"] for h in res.history)
    with pytest.raises(KeyError, match="val_missing"):
        fit(TinyEncoder(), data, loss=loss, validate=lambda m, d: {"val_norm": 0.0}, criterion="val_missing",
            cfg=TrainConfig(epochs=1, batch_size=16, device="cpu"))


def test_loss_that_is_not_float32_is_refused(tiny):
    X, _ = tiny
    with pytest.raises(TypeError, match="float32 scalar"):
        fit(TinyEncoder(), ArrayDataset(X, None), loss=lambda m, x: m(x).double().mean(),
            validate=lambda m, d: {"val_loss": 0.0}, cfg=TrainConfig(epochs=1, batch_size=16, device="cpu"))


def test_generic_task_resume_restores_its_state(tiny, tmp_path):
    """An interrupted self-supervised run, resumed, equals the uninterrupted one — teacher included."""
    X, _ = tiny
    cfg = dict(epochs=4, batch_size=8, lr=1e-2, seed=3, device="cpu", patience=None)
    seed_everything(7)
    ref_model, ref_task = TinyEncoder(), EMATask(X[:8])
    ref = fit(ref_model, ArrayDataset(X, None, crop=200, seed=3), task=ref_task, cfg=TrainConfig(**cfg))

    class Interrupted(EMATask):
        def validate(self, model, device):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().validate(model, device)

    seed_everything(7)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyEncoder(), ArrayDataset(X, None, crop=200, seed=3), task=Interrupted(X[:8]),
            cfg=TrainConfig(**cfg, checkpoint_dir=tmp_path))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    model, task = TinyEncoder(), EMATask(X[:8])
    res = fit(model, ArrayDataset(X, None, crop=200, seed=3), task=task,
              cfg=TrainConfig(**cfg, checkpoint_dir=tmp_path, resume=True))
    assert task.steps == ref_task.steps
    np.testing.assert_allclose([h["train_loss"] for h in res.history], [h["train_loss"] for h in ref.history],
                               rtol=1e-6)
    for a, b in zip(task.teacher.state_dict().values(), ref_task.teacher.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert res.best_epoch == ref.best_epoch and res.checkpoint == tmp_path / "best.pt"


# ------------------------------------------------------------------ issue 11: correctness on GPU, tested on CPU

from ecgbook.models.mrmnet import MutualLearningLoss, build_mrmnet, mrmnet_config


def small_mrmnet(n_classes=3):
    return build_mrmnet(mrmnet_config("paper", n_classes, width=8, dropout=0.0), seed=0)


def test_mrmnet_loss_is_float32_under_cpu_bf16_autocast():
    torch.manual_seed(0)
    model = small_mrmnet(5).eval()
    x = torch.randn(16, 12, 250)
    y = (torch.rand(16, 5) > 0.5).float()
    loss_fn = MutualLearningLoss()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.logits_high.dtype == torch.bfloat16  # the forward really ran in bf16
        inside, _ = loss_fn(out, y)                     # a caller computing the loss inside autocast
    reference, _ = loss_fn(to_float32(out), y)         # the same outputs, everything in float32
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(reference.item(), rel=1e-6)
    # what the old code did (targets cast to bf16, BCE in bf16) is measurably off
    z = out.logits_high
    bf16_bce = nn.functional.binary_cross_entropy_with_logits(z, y.to(z.dtype)).item()
    assert abs(bf16_bce - nn.functional.binary_cross_entropy_with_logits(z.float(), y).item()) > 1e-5


def test_fit_under_cpu_bf16_autocast_trains_mrmnet_with_float32_losses(tiny):
    X, Y = tiny
    seen = []

    def loss(output, y):
        total, parts = MutualLearningLoss()(output, y)
        seen.append((output.logits_high.dtype, total.dtype))
        return total, parts
    fit(small_mrmnet(), ArrayDataset(X, Y, crop=200), X, Y, score_fn=auroc, loss_fn=loss,
        cfg=TrainConfig(epochs=1, batch_size=16, device="cpu", amp=True))
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)  # outputs cast up before the loss


def test_crops_do_not_depend_on_workers_and_paths_agree(tiny):
    """Per-item crops from (seed, epoch, index): 0 or 2 DataLoader workers, or the device-side
    gather, train exactly the same model."""
    X, Y = tiny
    runs = []
    for kw in ({"num_workers": 0, "device_data": False}, {"num_workers": 2, "device_data": False},
               {"device_data": True}):
        seed_everything(4)
        model = ResNet1dWang(n_classes=3)
        res = fit(model, ArrayDataset(X, Y, crop=180, seed=9), X, Y, score_fn=auroc,
                  cfg=TrainConfig(epochs=2, batch_size=8, seed=4, device="cpu", patience=None, **kw))
        assert res.device_data == kw["device_data"]
        runs.append((res, model.state_dict()))
    (a, sa) = runs[0]
    for b, sb in runs[1:]:
        assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_crop_starts_are_per_item_and_per_epoch(tiny):
    X, Y = tiny
    ds = ArrayDataset(X, Y, crop=100, seed=1)
    e0 = ds.crop_starts(0)
    assert e0.shape == (32,) and e0.min() >= 0 and e0.max() <= 150
    assert not np.array_equal(e0, ds.crop_starts(1))
    assert np.array_equal(e0, ArrayDataset(X, Y, crop=100, seed=1).crop_starts(0))
    ds.set_epoch(3)
    x, _ = ds[5]
    s = ds.crop_starts(3)[5]
    np.testing.assert_array_equal(x.numpy(), X[5][:, s:s + 100])
    # the device gather cuts the same windows, in DataLoader order
    gen = lambda: torch.Generator().manual_seed(0)
    xb, yb = next(ds.device_batches(torch.device("cpu"), 32, gen(), drop_last=False))
    xl, yl = next(iter(torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, generator=gen())))
    assert torch.equal(xb, xl) and torch.equal(yb, yl)
    xg, yg = next(ds.device_batches(torch.device("cpu"), 32, gen(), drop_last=False, gather="index"))  # GPU path
    assert torch.equal(xg, xl) and torch.equal(yg, yl)


def test_short_records_are_zero_padded():
    X = np.ones((4, 2, 50), np.float32)
    ds = ArrayDataset(X, None, crop=60)
    assert ds[0].shape == (2, 60) and ds[0][:, 50:].abs().sum() == 0
    xb = next(ds.device_batches(torch.device("cpu"), 4, torch.Generator().manual_seed(0), False))
    assert xb.shape == (4, 2, 60)


def test_deterministic_switch_is_applied_and_restored(tiny):
    X, Y = tiny
    assert not torch.are_deterministic_algorithms_enabled()
    state = {}

    def peek(epoch, model):
        state["det"] = torch.are_deterministic_algorithms_enabled()
        return {}
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, on_epoch_end=peek,
        cfg=TrainConfig(epochs=1, batch_size=16, device="cpu", deterministic=True))
    assert state["det"] is True
    assert not torch.are_deterministic_algorithms_enabled()


def test_two_short_trainings_on_this_machine_give_identical_weights(tiny):
    """Issue 10: same machine, same thread count, CPU — bit for bit (also with deterministic=True)."""
    X, Y = tiny
    weights = []
    for deterministic in (False, False, True):
        seed_everything(11)
        model = ResNet1dWang(n_classes=3)
        fit(model, ArrayDataset(X, Y, crop=200, seed=11), X, Y, score_fn=auroc,
            cfg=TrainConfig(epochs=2, batch_size=8, seed=11, device="cpu", deterministic=deterministic))
        weights.append(model.state_dict())
    for w in weights[1:]:
        assert all(torch.equal(weights[0][k], w[k]) for k in w)


def test_resuming_a_run_that_stopped_early_trains_no_extra_epoch(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(epochs=6, batch_size=8, device="cpu", patience=2, checkpoint_dir=tmp_path)
    flat = lambda y, s: 0.5  # never improves after epoch 0: stops after epoch 2
    first = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=flat, cfg=TrainConfig(**cfg))
    assert first.stopped_early and [h["epoch"] for h in first.history] == [0, 1, 2]
    again = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=flat,
                cfg=TrainConfig(**cfg, resume=True))
    assert [h["epoch"] for h in again.history] == [0, 1, 2]
    assert again.stopped_early and again.best_epoch == 0
    assert again.checkpoint == tmp_path / "best.pt"


def test_history_says_what_each_loss_is(tiny):
    X, Y = tiny
    res = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
              cfg=TrainConfig(epochs=1, batch_size=16, device="cpu"))
    assert "not the training objective" in res.history_labels["val_loss"]
    assert "random crops" in res.history_labels["train_loss"]


# ------------------------------------------------------------------ issue 11: keep the GPU busy (code paths on CPU)

@functools.lru_cache(maxsize=None)
def in_package_code(filename: str) -> bool:
    """Whether a code object's file is part of the ``ecgbook`` package itself (its own directory),
    not any file whose path merely contains ``/ecgbook/`` (a clone named ``ecgbook`` holds ``.venv``)."""
    import ecgbook

    package = Path(ecgbook.__file__).resolve().parent
    try:
        return Path(filename).resolve().is_relative_to(package)
    except (OSError, ValueError):
        return False


def test_in_package_code_matches_the_package_directory_only(tmp_path):
    import ecgbook
    import ecgbook.train as train_module

    clone = tmp_path / "ecgbook"  # what `git clone <repo>` gives a user
    assert not in_package_code(str(clone / ".venv" / "lib" / "python3.11" / "site-packages" / "torch" / "nn" / "x.py"))
    assert not in_package_code(str(clone / "tests" / "test_train.py"))
    assert not in_package_code("<string>")
    assert in_package_code(train_module.__file__)
    assert in_package_code(str(Path(ecgbook.__file__).parent / "models" / "mrmnet.py"))


def test_no_host_synchronisation_per_step_in_ecgbook_code(tiny, monkeypatch):
    """Losses are accumulated on the device: ecgbook code reads a tensor back once per epoch, not per step."""
    import sys
    X, Y = tiny
    counts = {"n": 0}
    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *a, _original=original, **k):
            filename = sys._getframe(1).f_code.co_filename
            if in_package_code(filename):  # the loop and the losses (ecgbook/models/mrmnet.py)
                counts["n"] += 1
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counting)
    epochs, steps = 2, 32 // 2
    fit(small_mrmnet(), ArrayDataset(X, Y, crop=200), X, Y, score_fn=lambda y, s: 0.5,
        loss_fn=MutualLearningLoss(), cfg=TrainConfig(epochs=epochs, batch_size=2, device="cpu", patience=None,
                                                      device_data=False))
    # a few reads per epoch (the mean loss, its 5 parts, the NaN flag), none per step
    assert counts["n"] <= 8 * epochs < epochs * steps


def test_predict_batches_windows_in_one_forward_and_matches_per_window(tiny):
    X, _ = tiny
    model = ResNet1dWang(n_classes=3).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    got = predict(model, X[:10], window=100, stride=50, batch_size=16, device="cpu")
    # windows 0, 50, 100, 150 of 16 // 4 records per forward on CPU (all 16 records' on CUDA)
    assert calls == [(4 * 4, 12, 100), (4 * 4, 12, 100), (2 * 4, 12, 100)]
    with torch.no_grad():
        ref = torch.stack([torch.sigmoid(model(torch.from_numpy(X[:10, :, s:s + 100]))) for s in (0, 50, 100, 150)])
    np.testing.assert_allclose(got, ref.amax(0).numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ issue 9, fault 6: checkpoints

def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}}, path)

    def crash(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]       # no temporary left behind


def _save_many(path, value, n):
    import torch as t

    from ecgbook.train import save_checkpoint as save
    for _ in range(n):
        save({"model": {"w": t.full((20000,), float(value))}}, path)


def test_two_processes_saving_one_checkpoint(tmp_path):
    import multiprocessing as mp
    path = tmp_path / "best.pt"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_save_many, args=(path, v, 15)) for v in (1, 2)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):
        if path.exists():
            w = load_checkpoint(path)["model"]["w"]  # never a partial file
            assert w.unique().numel() == 1 and float(w[0]) in (1.0, 2.0)
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert float(load_checkpoint(path)["model"]["w"][0]) in (1.0, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_truncated_checkpoint_is_named_in_the_error(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(epochs=2, batch_size=16, device="cpu", checkpoint_dir=tmp_path)
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg))
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="last.pt.*truncated or corrupt"):
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
            cfg=TrainConfig(**{**cfg, "epochs": 3}, resume=True))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_resume_with_more_epochs_than_the_first_run(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(batch_size=8, device="cpu", patience=None, checkpoint_dir=tmp_path)
    for schedule in ("onecycle", "cosine"):
        folder = tmp_path / schedule
        first = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
                    cfg=TrainConfig(**{**cfg, "checkpoint_dir": folder}, epochs=2, schedule=schedule))
        more = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
                   cfg=TrainConfig(**{**cfg, "checkpoint_dir": folder}, epochs=4, schedule=schedule, resume=True))
        assert [h["epoch"] for h in more.history] == [0, 1, 2, 3]
        assert more.history[:2] == first.history
        # the continued run follows the 4-epoch schedule from step 8: the same LR as a fresh 4-epoch run there
        fresh = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
                    cfg=TrainConfig(batch_size=8, device="cpu", patience=None, epochs=4, schedule=schedule))
        assert more.history[3]["lr"] == pytest.approx(fresh.history[3]["lr"], rel=1e-9)


def test_folder_holding_a_run_is_not_overwritten_silently(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(epochs=1, batch_size=16, device="cpu", checkpoint_dir=tmp_path)
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg))
    before = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run.*resume=True.*overwrite=True"):
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg))
    assert (tmp_path / "best.pt").read_bytes() == before
    res = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
              cfg=TrainConfig(**cfg, overwrite=True))
    assert res.checkpoint == tmp_path / "best.pt"


def small_classifier():
    return nn.Sequential(nn.Conv1d(12, 4, 5), nn.BatchNorm1d(4), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def test_compiled_training_saves_the_plain_model(tiny, tmp_path):
    """torch.compile's wrapper trains; checkpoints hold the model's own keys (backend "eager": no C++ build)."""
    X, Y = tiny
    seed_everything(2)
    model = small_classifier()
    res = fit(model, ArrayDataset(X, Y, crop=200), X, Y, score_fn=auroc,
              cfg=TrainConfig(epochs=1, batch_size=16, device="cpu", compile="eager", checkpoint_dir=tmp_path))
    saved = load_checkpoint(res.checkpoint)["model"]
    assert set(saved) == set(model.state_dict()) and not any(k.startswith("_orig_mod") for k in saved)
    seed_everything(2)
    plain = small_classifier()
    fit(plain, ArrayDataset(X, Y, crop=200), X, Y, score_fn=auroc,
        cfg=TrainConfig(epochs=1, batch_size=16, device="cpu"))
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ issue 18: resume settings, disk full, NaN score

def test_resume_with_another_lr_is_refused_naming_lr(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(epochs=2, batch_size=16, device="cpu", checkpoint_dir=tmp_path)
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg, lr=1e-2))
    with pytest.raises(CheckpointError, match=r"last\.pt.*lr: checkpoint 0\.01, asked 0\.0001") as err:
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
            cfg=TrainConfig(**{**cfg, "epochs": 3}, lr=1e-4, seed=5, resume=True))
    assert "seed: checkpoint 0, asked 5" in str(err.value)  # every differing field, both values


def test_resume_with_other_data_is_refused_naming_the_fingerprint(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(epochs=2, batch_size=16, device="cpu", checkpoint_dir=tmp_path)
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg))
    X2 = X.copy()
    X2[0, 0, 0] += 1.0
    with pytest.raises(CheckpointError, match=r"last\.pt.*data: checkpoint '[0-9a-f]+', asked '[0-9a-f]+'"):
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X2, Y), X, Y, score_fn=auroc,
            cfg=TrainConfig(**{**cfg, "epochs": 3}, resume=True))


def test_resume_with_the_same_settings_and_other_device_switches_still_works(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(batch_size=16, device="cpu", checkpoint_dir=tmp_path, patience=None)
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg, epochs=1))
    res = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
              cfg=TrainConfig(**cfg, epochs=2, resume=True, device_data=False, tf32=False))
    assert [h["epoch"] for h in res.history] == [0, 1]


def test_resume_of_a_checkpoint_without_settings_says_how_to_start_fresh(tiny, tmp_path):
    X, Y = tiny
    cfg = dict(epochs=1, batch_size=16, device="cpu", checkpoint_dir=tmp_path)
    fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc, cfg=TrainConfig(**cfg))
    state = load_checkpoint(tmp_path / "last.pt")
    del state["settings"]  # as written by an older ecgbook
    save_checkpoint(state, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"last\.pt.*without its run settings.*overwrite=True"):
        fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, Y, score_fn=auroc,
            cfg=TrainConfig(**{**cfg, "epochs": 2}, resume=True))


def test_disk_full_while_checkpointing_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno
    import os

    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}}, path)
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    for target, fake in ((torch, "save"), (os, "replace")):
        monkeypatch.setattr(target, fake, (lambda obj, f, *a, **k: full(None, None)) if fake == "save" else full)
        with pytest.raises(OSError, match=f"{path}.*No space left") as err:
            save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
        assert err.value.errno == errno.ENOSPC
        monkeypatch.undo()
        assert os.replace is real_replace
        assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left behind


def test_val_auroc_without_any_positive_is_nan_and_never_selected(tiny):
    from ecgbook.protocol import val_auroc

    X, Y = tiny
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(val_auroc(np.zeros((4, 2)), np.random.default_rng(0).random((4, 2))))
    assert val_auroc(np.array([[0], [1]]), np.array([[0.1], [0.9]])) == 1.0
    with pytest.warns(RuntimeWarning):
        res = fit(ResNet1dWang(n_classes=3), ArrayDataset(X, Y), X, np.zeros_like(Y), score_fn=val_auroc,
                  cfg=TrainConfig(epochs=2, batch_size=16, device="cpu"))
    assert res.best_epoch == -1 and "undefined (NaN) at every epoch" in res.note
    assert all(np.isnan(h["val_score"]) for h in res.history)


def test_warmup_cosine_by_hand():
    """The one warm-up + cosine schedule (fit's 'cosine' and the lead-agnostic pre-training)."""
    from ecgbook.lead_agnostic_ssl.pretrain import PretrainConfig, _lr_factor
    from ecgbook.train import warmup_cosine

    assert warmup_cosine(0, 10, 2) == 0.5 and warmup_cosine(1, 10, 2) == 1.0   # (step + 1) / warmup
    assert warmup_cosine(2, 10, 2) == 1.0                                       # the cosine starts at 1
    assert warmup_cosine(6, 10, 2) == pytest.approx(0.5)                        # half-way: cos(pi/2)
    assert warmup_cosine(10, 10, 2) == pytest.approx(0.0) and warmup_cosine(50, 10, 2) == pytest.approx(0.0)
    assert warmup_cosine(10, 10, 0, floor=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 10, 0) == 1.0 and warmup_cosine(9, 10, 4, decay=False) == 1.0
    # the pre-training's schedules are this one: warm-up share of the updates, "fixed" = no decay
    cos = PretrainConfig(warmup=0.1, schedule="cosine")
    assert [_lr_factor(s, 100, cos) for s in (0, 9, 10, 55, 100)] == [
        warmup_cosine(s, 100, 10) for s in (0, 9, 10, 55, 100)]
    assert _lr_factor(4, 100, cos) == 0.5 and _lr_factor(55, 100, cos) == pytest.approx(0.5)
    fixed = PretrainConfig(warmup=0.0, schedule="fixed")
    assert {_lr_factor(s, 100, fixed) for s in range(100)} == {1.0}
