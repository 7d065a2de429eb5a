"""One training loop for every chapter.

:func:`fit` trains a model on a :class:`torch.utils.data.Dataset`, evaluates it on validation
data after each epoch, keeps the weights of the best validation epoch (checkpointed to disk),
stops early when validation stops improving, and can resume an interrupted run. It picks CUDA
when present (bf16 autocast there) and runs identically on CPU; with a fixed seed two runs on
the same device give the same weights.

The loop knows nothing of metrics: the caller passes ``score_fn(y_true, y_score) -> float``
(higher is better) computed on the validation split, never on test data.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import config


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    """Human-readable device name for provenance (``cuda: NVIDIA H100 …`` or ``cpu (2 threads)``)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


class ArrayDataset(Dataset):
    """Signals and labels held in arrays, with an optional per-item transform.

    ``X``: ``(records, leads, samples)`` float32 (a memory map is fine); ``Y``: ``(records, classes)``.
    ``transform(x, rng) -> x`` receives a NumPy ``Generator`` (e.g. for random crops); items are
    returned as float32 tensors.
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, transform: Callable | None = None, seed: int = 0):
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} records but Y has {len(Y)}")
        self.X, self.Y, self.transform, self.seed = X, Y, transform, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the transform's RNG from ``(seed, epoch)`` (called by :func:`fit` every epoch, so a
        resumed run draws the same crops as an uninterrupted one)."""
        self.rng = np.random.default_rng((self.seed, epoch))

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        x = np.asarray(self.X[i], dtype=np.float32)
        if self.transform is not None:
            x = self.transform(x, self.rng)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(self.Y[i], dtype=torch.float32)


def logits_of(output) -> torch.Tensor:
    """The prediction logits of a model's output: the tensor itself, or ``output["logits"]``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["logits"]
    return output.logits


@torch.no_grad()
def predict(model: nn.Module, X: np.ndarray, *, window: int | None = None, stride: int | None = None,
            aggregate: str = "max", batch_size: int = 256, device: torch.device | str | None = None,
            select: Callable | None = None) -> np.ndarray:
    """Sigmoid scores of ``model`` for records ``X`` ``(records, leads, samples)`` → ``(records, classes)``.

    With ``window`` (samples), each record is cut into windows of that length every ``stride``
    samples (default ``window // 2``) and the windows' scores are aggregated by ``max`` or ``mean``,
    as the PTB-XL benchmark does at test time (2.5-s windows, stride 1.25 s, max).
    ``select(output) -> logits`` picks the logits from the model's output (default :func:`logits_of`;
    e.g. one head of a two-head model).
    """
    select = select or logits_of
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model.eval().to(device)
    n, _, samples = X.shape
    if window is None or window >= samples:
        starts = [0]
        window = samples
    else:
        stride = stride or window // 2
        starts = list(range(0, samples - window + 1, stride))
        if starts[-1] != samples - window:
            starts.append(samples - window)
    out = []
    for lo in range(0, n, batch_size):
        batch = torch.as_tensor(np.asarray(X[lo:lo + batch_size], dtype=np.float32), device=device)
        scores = torch.stack([torch.sigmoid(select(model(batch[..., s:s + window])).float()) for s in starts])
        out.append((scores.amax(0) if aggregate == "max" else scores.mean(0)).cpu().numpy())
    return np.concatenate(out)


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    ``lr`` is the peak learning rate of the one-cycle schedule (AdamW); ``patience`` epochs without
    a better validation score stop training (``None``: never); ``checkpoint_dir`` holds ``best.pt``
    and ``last.pt``; ``resume`` continues from ``last.pt`` when it exists.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-2
    patience: int | None = 10
    seed: int = 0
    device: str | None = None
    amp: bool = True
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    grad_clip: float | None = 1.0


@dataclass
class TrainResult:
    """What :func:`fit` returns: per-epoch history, the best epoch and score, where it was saved."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    checkpoint: Path | None = None
    device: str = ""
    wall_time_s: float = 0.0
    samples_per_s: float = 0.0


def _default_loss(output, y):
    return nn.functional.binary_cross_entropy_with_logits(logits_of(output).float(), y)


def fit(model: nn.Module, train_set: Dataset, val_X: np.ndarray, val_Y: np.ndarray, *,
        score_fn: Callable[[np.ndarray, np.ndarray], float], cfg: TrainConfig | None = None,
        loss_fn: Callable | None = None, predict_fn: Callable | None = None,
        on_epoch_end: Callable[[int, nn.Module], dict] | None = None) -> TrainResult:
    """Train ``model``; keep (and load back) the weights of the best validation epoch.

    Parameters
    ----------
    train_set:
        Yields ``(x (leads, samples), y (classes,))`` tensors.
    val_X, val_Y:
        Validation signals ``(records, leads, samples)`` and labels ``(records, classes)``.
    score_fn:
        ``score_fn(val_Y, scores) -> float``, higher is better (e.g. macro AUROC).
    loss_fn:
        ``loss_fn(output, y) -> loss`` or ``(loss, parts: dict)``; default BCE on logits.
    predict_fn:
        ``predict_fn(model, val_X, device) -> scores (records, classes)``; default :func:`predict`.
    on_epoch_end:
        ``on_epoch_end(epoch, model) -> dict`` of extra numbers stored in that epoch's history row
        (e.g. a diagnostic that must not drive selection). It never influences the kept epoch.

    Returns
    -------
    TrainResult, with the model holding the best epoch's weights.

    Raises
    ------
    FloatingPointError
        The training loss became NaN or infinite (the message gives the epoch and step).
    """
    cfg = cfg or TrainConfig()
    loss_fn = loss_fn or _default_loss
    predict_fn = predict_fn or (lambda m, X, device: predict(m, X, device=device))
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train_set) > cfg.batch_size,
                        generator=generator)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * len(loader))
    use_amp = cfg.amp and device.type == "cuda"
    result = TrainResult(device=describe_device(device))
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    start_epoch, stale = 0, 0
    if ckpt_dir and cfg.resume and (ckpt_dir / "last.pt").exists():
        state = torch.load(ckpt_dir / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result.history = list(state["history"])
        result.best_epoch, result.best_score = int(state["best_epoch"]), float(state["best_score"])
        start_epoch, stale = int(state["epoch"]) + 1, int(state["stale"])
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if ckpt_dir and (ckpt_dir / "best.pt").exists() and start_epoch > 0:
        best_state = torch.load(ckpt_dir / "best.pt", map_location=device, weights_only=True)["model"]
    t_start, seen, train_time = time.perf_counter(), 0, 0.0
    bar = tqdm(range(start_epoch, cfg.epochs), desc="epochs", disable=not config.progress_enabled(),
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        # every epoch's randomness (shuffle, dropout, crops) depends on (seed, epoch) only,
        # so a resumed run continues exactly as an uninterrupted one would
        generator.manual_seed(cfg.seed + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        model.train()
        t0, losses, parts_sum = time.perf_counter(), [], {}
        for step, (x, y) in enumerate(loader):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                output = model(x)
            res = loss_fn(output, y)
            loss, parts = (res if isinstance(res, tuple) else (res, {}))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss is {loss.item()} at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v)
            seen += len(x)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        scores = predict_fn(model, val_X, device)
        p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
        val_loss = float(-np.mean(val_Y * np.log(p) + (1 - val_Y) * np.log(1 - p)))
        score = float(score_fn(val_Y, scores))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_score": score,
               "epoch_time_s": epoch_time, "lr": scheduler.get_last_lr()[0],
               **{f"train_{k}": v / max(len(losses), 1) for k, v in parts_sum.items()}}
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch, model))
            model.train()
        result.history.append(row)
        improved = score > result.best_score
        if improved:
            result.best_epoch, result.best_score, stale = epoch, score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if ckpt_dir:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                torch.save({"model": best_state, "epoch": epoch, "score": score}, ckpt_dir / "best.pt")
                result.checkpoint = ckpt_dir / "best.pt"
        else:
            stale += 1
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{score:.3f}")
        if ckpt_dir:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "history": result.history, "epoch": epoch,
                        "best_epoch": result.best_epoch, "best_score": result.best_score, "stale": stale},
                       ckpt_dir / "last.pt")
        if cfg.patience is not None and stale >= cfg.patience:
            break
    model.load_state_dict(best_state)
    result.wall_time_s = time.perf_counter() - t_start
    result.samples_per_s = seen / train_time if train_time > 0 else 0.0
    return result


def config_dict(cfg: TrainConfig) -> dict:
    """``TrainConfig`` as a JSON-friendly dict (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
