"""The 1-D ResNet baseline and the shared training loop."""
from __future__ import annotations

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
