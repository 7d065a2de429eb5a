"""One training loop for every chapter: supervised training and self-supervised pretraining.

:func:`fit` trains a model epoch by epoch, validates it after each epoch with a function the caller
gives, keeps the weights of the best validation epoch (checkpointed to disk), stops early when
validation stops improving, and resumes an interrupted run exactly. What is optimised and how it is
validated is a :class:`Task`:

* :class:`SupervisedTask` (built for you by the classic call
  ``fit(model, train_set, val_X, val_Y, score_fn=..., cfg=TrainConfig(...))``): a loss on
  ``(x, y)`` batches, validation by ``score_fn(val_Y, scores)`` (higher is better, e.g. macro AUROC).
* any :class:`Task` subclass, or the callbacks ``loss=``, ``validate=``, ``criterion=``, ``mode=``,
  ``on_step=`` (wrapped into a :class:`CallbackTask`): ``loss(model, batch) -> float32 scalar``,
  ``validate(model, device) -> dict`` holding the named ``criterion`` (``mode`` ``"max"`` or
  ``"min"``), and ``on_step(model, step)`` after every optimizer step (an EMA teacher, schedules).
  A task's ``state_dict()`` (e.g. the teacher and the DINO centre) is saved in every checkpoint and
  restored on resume.

Device and speed. CUDA is used when present: bf16 autocast for the forward passes (every loss is
computed in float32 — :class:`SupervisedTask` casts the model's outputs with :func:`to_float32` and
leaves autocast before the loss; :func:`fit` refuses a loss that is not float32), fused AdamW, TF32
matmuls, ``cudnn.benchmark``. Training data that fits on the device (an :class:`ArrayDataset`
without a NumPy ``transform``) is moved there once and batches are cut by index gather on the
device (:meth:`ArrayDataset.device_batches`) — the same batches, crops and order as the
``DataLoader`` path. Losses are accumulated on the device and read back once per epoch (no
host synchronisation per step). ``TrainConfig.compile`` wraps the model in :func:`torch.compile`.

Repeatability (what repeats bit for bit). Every epoch's randomness — shuffle order, random crops,
dropout — is a function of ``(seed, epoch)`` (crops of ``(seed, epoch, record index)``), so:

* Two runs with the same seed, data, code and settings on the **same machine, CPU, same torch
  thread count** give identical weights and histories, with ``num_workers`` 0 or more, and a run
  resumed from ``last.pt`` equals the uninterrupted run.
* On **another CPU model** (or another thread count, or another torch/MKL/oneDNN build) the kernels
  may sum in another order: results agree to float noise only, and training can drift from there.
* On **CUDA**, runs repeat only with ``TrainConfig(deterministic=True)`` (which calls
  ``torch.use_deterministic_algorithms(True, warn_only=True)``, sets ``cudnn.deterministic``, turns
  off ``cudnn.benchmark`` and sets ``CUBLAS_WORKSPACE_CONFIG``; slower), and then only if no op
  warns that it has no deterministic CUDA kernel (e.g. adaptive average pooling's backward: such an
  op keeps varying); without it, cuDNN's backward kernels and atomics make each run differ
  slightly. CPU and CUDA never give the same numbers. None of this was run on a GPU here.
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import config
from .batches import (ArrayDataset, _batch_len, logits_of, predict, to_device, to_float32,  # noqa: F401
                      window_starts)  # (public here too)
from .device import describe_device, pick_device  # noqa: F401  (public here too)


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, truncated, or does not belong to the run (the message names it)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def configure_backends(device: torch.device, *, deterministic: bool = False, tf32: bool = True) -> dict:
    """Set torch's global switches for speed or repeatability; returns the previous values
    (pass them to :func:`restore_backends`).

    ``deterministic=True``: ``torch.use_deterministic_algorithms(True, warn_only=True)``,
    ``cudnn.deterministic``, no ``cudnn.benchmark``, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (when unset;
    it must be set before cuBLAS starts). ``warn_only``: an op without a deterministic CUDA kernel
    (e.g. the backward of adaptive average pooling) warns, naming itself, instead of stopping the
    run; that op still varies between runs. Otherwise, on CUDA: ``cudnn.benchmark`` and (with ``tf32``) TF32 matmuls and
    convolutions. On CPU nothing changes unless ``deterministic``.
    """
    previous = {"deterministic": torch.are_deterministic_algorithms_enabled(),
                "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
                "cudnn_deterministic": torch.backends.cudnn.deterministic,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_tf32": torch.backends.cudnn.allow_tf32}
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if device.type == "cuda" and tf32 and not deterministic:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return previous


def restore_backends(previous: dict) -> None:
    """Undo :func:`configure_backends`."""
    torch.use_deterministic_algorithms(previous["deterministic"], warn_only=previous["warn_only"])
    torch.backends.cudnn.deterministic = previous["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = previous["cudnn_benchmark"]
    torch.backends.cuda.matmul.allow_tf32 = previous["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = previous["cudnn_tf32"]


# --------------------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    ``lr`` is the peak learning rate; ``schedule`` is ``"onecycle"`` (one-cycle, the supervised
    default), ``"cosine"`` (linear warm-up over ``warmup_epochs`` then cosine to ``min_lr``, as
    DINO's ``main_dino.py``) or ``"constant"``. ``patience`` epochs without a better validation
    criterion stop training (``None``: never). ``checkpoint_dir`` holds ``best.pt`` and ``last.pt``
    (written atomically); ``resume`` continues from ``last.pt``; a folder that already holds a run
    is refused unless ``resume`` or ``overwrite``. Resuming with more ``epochs`` than the first run
    continues the new run's learning-rate schedule from the step reached (so the result differs from
    an uninterrupted run of either length; resuming with the same settings is exact). ``last.pt``
    stores the optimisation settings (:data:`RESUME_SETTINGS`) and a fingerprint of the training
    data; a resume that differs in any of them is refused (``epochs`` may grow; device, workers,
    precision and speed switches may change). ``amp``: ``None`` = bf16 autocast on CUDA only,
    ``True`` on every device (CPU bf16 autocast: for tests), ``False`` never. ``device_data``:
    ``"auto"`` keeps an :class:`ArrayDataset` without a NumPy transform on the device when it takes
    under ``device_data_fraction`` of the free device memory (on CPU: under 2 GiB), ``True``/``False``
    force it. ``num_workers``: ``DataLoader`` workers of the host path. ``deterministic``: see the
    module docstring. ``compile``: wrap the model in :func:`torch.compile` for training (a string
    names the backend, e.g. ``"eager"`` to test the wiring; off by default — on a 2-core CPU the
    compilation alone outlasts a tutorial run).
    ``fused``: fused AdamW (``None``: on CUDA only).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-2
    patience: int | None = 10
    seed: int = 0
    device: str | None = None
    amp: bool | None = None
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    overwrite: bool = False
    grad_clip: float | None = 1.0
    schedule: str = "onecycle"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    num_workers: int = 0
    device_data: bool | str = "auto"
    device_data_fraction: float = 0.5
    deterministic: bool = False
    compile: bool | str = False
    fused: bool | None = None
    tf32: bool = True

    def __post_init__(self):
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"TrainConfig.schedule must be 'onecycle', 'cosine' or 'constant', got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"TrainConfig: epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    ``history``: one dict per epoch — ``epoch``, ``train_loss`` (the training objective, mean over
    the epoch's steps, train mode), ``train_<part>`` (the loss's parts), ``lr``, ``epoch_time_s``
    and the validation dict (for :class:`SupervisedTask`: ``val_score`` and ``val_loss``, the BCE
    of the **aggregated** validation scores — not the training objective; ``history_labels`` says
    what every key is). ``best_epoch``/``best_score``: the kept epoch and its ``criterion`` value
    (``mode`` ``"max"`` or ``"min"``); ``checkpoint``: ``best.pt`` when a folder was given (also after a
    resume); ``stopped_early``: patience ran out. ``note``: why no epoch was kept, when the
    criterion was undefined (NaN) at every epoch (an epoch with a NaN criterion is never kept;
    the model then holds its initial weights and ``best_epoch`` is -1).
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    checkpoint: Path | None = None
    device: str = ""
    wall_time_s: float = 0.0
    samples_per_s: float = 0.0
    criterion: str = "val_score"
    mode: str = "max"
    stopped_early: bool = False
    history_labels: dict = field(default_factory=dict)
    device_data: bool = False
    note: str = ""


# --------------------------------------------------------------------------------------- tasks


class Task:
    """What :func:`fit` optimises and how it validates. Subclass it (self-supervised objectives)
    or use :class:`SupervisedTask` / :class:`CallbackTask`.

    Attributes
    ----------
    criterion : str
        Key of :meth:`validate`'s dict that selects the kept epoch and drives early stopping.
    mode : {"max", "min"}
        Whether a larger or a smaller criterion is better.
    labels : dict
        Optional description of history keys (copied into ``TrainResult.history_labels``).
    """

    criterion: str = "val_score"
    mode: str = "max"
    labels: dict = {}

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, steps_per_epoch: int,
              total_steps: int, device: torch.device) -> None:
        """Called once before training (after a resume has restored the state): e.g. move a
        teacher to ``device`` or build schedules over ``total_steps``."""

    def param_groups(self, model: nn.Module):
        """What the optimizer trains: default every parameter of ``model`` that requires grad.
        Return a list of parameter groups (dicts) to e.g. exempt biases from weight decay."""
        return [p for p in model.parameters() if p.requires_grad]

    def loss(self, model: nn.Module, batch) -> torch.Tensor | tuple[torch.Tensor, dict]:
        """``loss(model, batch) -> loss`` or ``(loss, parts)``: a float32 scalar tensor (``parts``:
        named detached scalars, tensors or floats, averaged per epoch into ``train_<name>``).
        Runs under bf16 autocast on CUDA: compute the loss itself in float32 (:func:`to_float32`,
        ``torch.autocast(..., enabled=False)``)."""
        raise NotImplementedError

    def on_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step; ``step`` is the 0-based global step just taken."""

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Called before each training epoch (e.g. epoch-indexed schedules)."""

    def validate(self, model: nn.Module, device: torch.device) -> dict:
        """Numbers of the epoch on validation data, including ``criterion``."""
        return {}

    def state_dict(self) -> dict:
        """Extra state saved in every checkpoint (e.g. teacher weights, a centre); tensors and
        plain Python values only (checkpoints load with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` on resume."""


def _default_loss(output, y):
    return nn.functional.binary_cross_entropy_with_logits(logits_of(output), y)


class SupervisedTask(Task):
    """Supervised training on ``(x, y)`` batches, validated by ``score_fn(val_Y, scores)`` (higher
    is better) on scores from ``predict_fn(model, val_X, device)``.

    The forward pass runs under the loop's autocast; the outputs are cast to float32 and the loss
    ``loss_fn(output, y) -> loss | (loss, parts)`` (default BCE on the logits) is computed outside
    autocast. ``validate`` returns ``val_score`` (the criterion) and ``val_loss``: the BCE of the
    validation *scores* (after window aggregation), a different quantity from the training
    objective on random crops; compare the curves' shapes, not their values.
    """

    criterion, mode = "val_score", "max"
    labels = {"train_loss": "training objective on random crops (train mode, mean over steps)",
              "val_loss": "BCE of the aggregated validation scores (eval mode; not the training objective)",
              "val_score": "validation criterion score_fn(val_Y, scores), higher is better"}

    def __init__(self, val_X: np.ndarray, val_Y: np.ndarray, score_fn: Callable[[np.ndarray, np.ndarray], float],
                 loss_fn: Callable | None = None, predict_fn: Callable | None = None):
        if val_X is None or val_Y is None or score_fn is None:
            raise ValueError("SupervisedTask needs val_X, val_Y and score_fn")
        self.val_X, self.val_Y, self.score_fn = val_X, val_Y, score_fn
        self.loss_fn = loss_fn or _default_loss
        self.predict_fn = predict_fn or (lambda m, X, device: predict(m, X, device=device))

    def loss(self, model, batch):
        x, y = batch
        output = model(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.loss_fn(to_float32(output), y.float())

    def validate(self, model, device):
        scores = self.predict_fn(model, self.val_X, device)
        p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
        y = np.asarray(self.val_Y, dtype=np.float64)
        val_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        return {"val_loss": val_loss, "val_score": float(self.score_fn(self.val_Y, scores))}


class CallbackTask(Task):
    """A :class:`Task` from plain functions: ``loss(model, batch)``, ``validate(model, device) -> dict``,
    ``on_step(model, step)``, with ``criterion``/``mode``; ``state`` (optional) an object with
    ``state_dict``/``load_state_dict`` (e.g. a module holding an EMA teacher) saved in checkpoints."""

    def __init__(self, loss: Callable, validate: Callable | None = None, *, criterion: str = "val_loss",
                 mode: str = "min", on_step: Callable | None = None, state: Any = None):
        self._loss, self._validate, self._on_step, self._state = loss, validate, on_step, state
        self.criterion, self.mode = criterion, mode

    def loss(self, model, batch):
        return self._loss(model, batch)

    def validate(self, model, device):
        return {} if self._validate is None else dict(self._validate(model, device))

    def on_step(self, model, step):
        if self._on_step is not None:
            self._on_step(model, step)

    def state_dict(self):
        return {} if self._state is None else self._state.state_dict()

    def load_state_dict(self, state):
        if self._state is not None:
            self._state.load_state_dict(state)


# --------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(obj: dict, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically: a uniquely named temporary file in the same
    folder, flushed and fsync'ed, then ``os.replace`` (safe with two processes: a reader sees the
    old or the new file, never a partial one).

    Raises ``OSError`` (same ``errno``, e.g. ``ENOSPC``) naming ``path`` when the write fails;
    ``path`` then still holds the previous checkpoint and no temporary file is left.
    """
    from .files import write_atomic

    return write_atomic(path, lambda fh: torch.save(obj, fh), suffix=".tmp")


def load_checkpoint(path: str | Path, *, map_location=None, keys: tuple[str, ...] = ()) -> dict:
    """Load a checkpoint with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        The file is truncated, corrupt, not a checkpoint dict, or lacks one of ``keys`` (the message
        names the file and says to delete it or start a new run).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt: {type(e).__name__}: {e}); "
                              f"delete it to start again") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__}, expected a dict)")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing} (written by another program or version?)")
    return state


# --------------------------------------------------------------------------------------- fit


def warmup_cosine(step: int, total: int, warmup: int, *, floor: float = 0.0, decay: bool = True) -> float:
    """The book's learning-rate factor at update ``step`` (0-based) of ``total``: linear warm-up
    ``(step + 1) / warmup`` over the first ``warmup`` updates, then (``decay``) a half cosine from 1
    down to ``floor`` at update ``total`` (and ``floor`` after it), or (not ``decay``) a constant 1.

    The one warm-up + cosine schedule of the package: :func:`fit` (``schedule="cosine"``, DINO's
    learning rate as in ``main_dino.py``) and the lead-agnostic pre-training
    (:class:`ecgbook.lead_agnostic_ssl.PretrainConfig`) use it through their step counters.
    """
    if step < warmup:
        return (step + 1) / warmup
    if not decay:
        return 1.0
    t = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def _lr_lambda(cfg: TrainConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def factor(step: int) -> float:
        if cfg.schedule == "constant":
            return 1.0
        return warmup_cosine(step, total_steps, warmup, floor=floor)
    return factor


def _make_scheduler(cfg, optimizer, total_steps, steps_per_epoch):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total_steps, steps_per_epoch))


RESUME_SETTINGS = ("batch_size", "lr", "weight_decay", "patience", "seed", "grad_clip", "schedule",
                   "warmup_epochs", "min_lr")
"""The :class:`TrainConfig` fields a resume must repeat (they change the optimisation). Not compared:
``epochs`` (a resume may train longer, see :class:`TrainConfig`), ``device``, ``amp``, ``num_workers``,
``device_data*``, ``deterministic``, ``compile``, ``fused``, ``tf32`` (where and how fast, not what) and
the folder switches."""


def data_fingerprint(dataset) -> str:
    """A cheap fingerprint of a training set: its length, and for an :class:`ArrayDataset` the
    shapes, dtypes and a SHA-256 of up to 64 evenly spaced records of ``X`` and all of ``Y``, plus
    its ``seed``; a dataset with ``record_ids`` hashes those instead of the arrays. Any other
    dataset is fingerprinted by its type and length only."""
    import hashlib

    h = hashlib.sha256(f"{type(dataset).__name__}:{len(dataset)}".encode())
    ids = getattr(dataset, "record_ids", None)
    if ids is not None:
        h.update(repr([str(i) for i in ids]).encode())
    elif isinstance(dataset, ArrayDataset):
        h.update(f"seed={dataset.seed}".encode())
        rows = np.unique(np.linspace(0, len(dataset.X) - 1, num=min(64, len(dataset.X))).astype(np.int64))
        for name, arr, take in (("X", dataset.X, rows), ("Y", dataset.Y, None)):
            if arr is None:
                continue
            arr = np.asarray(arr)
            h.update(f"{name}{arr.shape}{arr.dtype}".encode())
            h.update(np.ascontiguousarray(arr if take is None else arr[take]).tobytes())
    return h.hexdigest()[:16]


def _run_settings(cfg: TrainConfig, task: "Task", train_set) -> dict:
    return {**{k: getattr(cfg, k) for k in RESUME_SETTINGS},
            "criterion": task.criterion, "mode": task.mode, "data": data_fingerprint(train_set)}


def _check_resume_settings(path: Path, state: dict, settings: dict) -> None:
    stored = state.get("settings")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: checkpoint written without its run settings (by an older ecgbook), so a "
                              f"resume cannot be checked; start fresh with overwrite=True (or delete the folder)")
    diff = [f"{k}: checkpoint {stored.get(k, '(absent)')!r}, asked {v!r}" for k, v in settings.items()
            if stored.get(k, "(absent)") != v]
    if diff:
        raise CheckpointError(f"{path}: resume with other settings refused ({'; '.join(diff)}); resume with the "
                              f"checkpoint's settings, or start fresh with overwrite=True or another checkpoint_dir")


def _checkpoint_folder_guard(ckpt_dir: Path | None, cfg: TrainConfig) -> None:
    if ckpt_dir is None or cfg.resume or cfg.overwrite:
        return
    existing = [p.name for p in (ckpt_dir / "last.pt", ckpt_dir / "best.pt") if p.exists()]
    if existing:
        raise FileExistsError(f"{ckpt_dir}: already holds a run ({', '.join(existing)}); pass resume=True to "
                              f"continue it or overwrite=True to replace it")


CPU_DEVICE_DATA_BYTES = 2 << 30  # on CPU, "auto" gathers batches in memory below 2 GiB of arrays


def _use_device_data(cfg: TrainConfig, train_set, device: torch.device) -> bool:
    if cfg.device_data is False or cfg.num_workers > 0:
        return False
    able = hasattr(train_set, "device_batches") and train_set.supports_device_batches()
    if cfg.device_data is True:
        if not able:
            raise ValueError("TrainConfig(device_data=True) needs an ArrayDataset without a NumPy transform")
        return True
    if not able:
        return False
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return train_set.nbytes() < cfg.device_data_fraction * free
    return train_set.nbytes() < CPU_DEVICE_DATA_BYTES


def fit(model: nn.Module, train_set: Dataset, val_X: np.ndarray | None = None, val_Y: np.ndarray | None = None, *,
        score_fn: Callable[[np.ndarray, np.ndarray], float] | None = None, cfg: TrainConfig | None = None,
        loss_fn: Callable | None = None, predict_fn: Callable | None = None,
        on_epoch_end: Callable[[int, nn.Module], dict] | None = None, task: Task | None = None,
        loss: Callable | None = None, validate: Callable | None = None, criterion: str | None = None,
        mode: str | None = None, on_step: Callable | None = None, config: TrainConfig | None = None) -> TrainResult:
    """Train ``model``; keep (and load back) the weights of the best validation epoch.

    Three ways to say what is trained (exactly one):

    * supervised: ``val_X`` ``(records, leads, samples)``, ``val_Y`` ``(records, classes)``,
      ``score_fn(val_Y, scores) -> float`` (higher is better), optional ``loss_fn(output, y) -> loss |
      (loss, parts)`` (default BCE on logits) and ``predict_fn(model, val_X, device) -> scores``
      (default :func:`predict`): a :class:`SupervisedTask`;
    * ``task``: any :class:`Task`;
    * callbacks ``loss(model, batch)``, ``validate(model, device) -> dict``, ``criterion`` (a key of
      that dict), ``mode`` (``"max"``/``"min"``, default ``"min"``), ``on_step(model, step)``: a
      :class:`CallbackTask`.

    Parameters
    ----------
    model:
        Every parameter with ``requires_grad`` is trained (unless ``task.param_groups`` says
        otherwise); keep an EMA teacher in the task, not here.
    train_set:
        Yields the batches' items (``(x, y)`` for supervised training, ``x`` for unlabelled data);
        batches are moved to the device before ``loss``.
    cfg (or config):
        :class:`TrainConfig`.
    on_epoch_end:
        ``on_epoch_end(epoch, model) -> dict`` of extra numbers stored in that epoch's history row
        (e.g. a diagnostic that must not drive selection). It never influences the kept epoch.

    Returns
    -------
    TrainResult, with the model holding the best epoch's weights (the task's state is that of the
    last epoch).

    Raises
    ------
    FloatingPointError
        The training loss became NaN or infinite (checked once per epoch; the message gives the
        epoch and the first bad step).
    TypeError
        The loss is not a float32 scalar.
    KeyError
        ``validate`` did not return the ``criterion``.
    FileExistsError
        ``checkpoint_dir`` already holds a run and neither ``resume`` nor ``overwrite`` is set.
    CheckpointError
        ``last.pt`` or ``best.pt`` is unreadable, or a resume asks for other settings or data than
        ``last.pt`` stores, or ``last.pt`` has no stored settings (the message names the file and
        every differing field with both values).
    """
    if cfg is not None and config is not None:
        raise TypeError("fit: pass cfg or config, not both")
    cfg = cfg or config or TrainConfig()
    if task is None and loss is not None:
        task = CallbackTask(loss, validate, criterion=criterion or "val_loss", mode=mode or "min", on_step=on_step)
    elif task is None:
        task = SupervisedTask(val_X, val_Y, score_fn, loss_fn=loss_fn, predict_fn=predict_fn)
    elif val_X is not None or score_fn is not None or loss is not None:
        raise TypeError("fit: pass either task=, or loss=/validate= callbacks, or val_X/val_Y/score_fn — not several")
    if task.mode not in ("max", "min"):
        raise ValueError(f"fit: mode must be 'max' or 'min', got {task.mode!r}")
    better = (lambda a, b: a > b) if task.mode == "max" else (lambda a, b: a < b)

    device = pick_device(cfg.device)
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    _checkpoint_folder_guard(ckpt_dir, cfg)
    previous_backends = configure_backends(device, deterministic=cfg.deterministic, tf32=cfg.tf32)
    try:
        return _fit(model, train_set, task, cfg, device, ckpt_dir, better, on_epoch_end)
    finally:
        restore_backends(previous_backends)


def _fit(model, train_set, task, cfg, device, ckpt_dir, better, on_epoch_end) -> TrainResult:
    seed_everything(cfg.seed)
    model.to(device)
    fused = device.type == "cuda" if cfg.fused is None else cfg.fused
    optimizer = torch.optim.AdamW(task.param_groups(model), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  **({"fused": True} if fused else {}))
    generator = torch.Generator().manual_seed(cfg.seed)
    drop_last = len(train_set) > cfg.batch_size
    device_data = _use_device_data(cfg, train_set, device)
    if device_data:
        steps_per_epoch = train_set.num_batches(cfg.batch_size, drop_last)
        loader = None
    else:
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=drop_last,
                            generator=generator, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        steps_per_epoch = len(loader)
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = _make_scheduler(cfg, optimizer, total_steps, steps_per_epoch)
    use_amp = device.type == "cuda" if cfg.amp is None else bool(cfg.amp)
    result = TrainResult(device=describe_device(device), criterion=task.criterion, mode=task.mode,
                         best_score=-math.inf if task.mode == "max" else math.inf,
                         history_labels=dict(task.labels), device_data=device_data)
    start_epoch, stale = 0, 0
    settings = _run_settings(cfg, task, train_set) if ckpt_dir else None  # only a checkpoint stores them
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if ckpt_dir and cfg.resume and (ckpt_dir / "last.pt").exists():
        last = ckpt_dir / "last.pt"
        state = load_checkpoint(last, map_location=device, keys=("model", "optimizer", "scheduler", "history",
                                                                 "epoch", "best_epoch", "best_score", "stale"))
        _check_resume_settings(last, state, settings)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{last}: does not fit this model/optimizer ({e})") from e
        done = (int(state["epoch"]) + 1) * steps_per_epoch
        if int(state.get("total_steps", total_steps)) == total_steps:
            scheduler.load_state_dict(state["scheduler"])
        elif done <= total_steps:  # more epochs than the first run: continue the new schedule from here
            scheduler.last_epoch = done - 1
            with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
                warnings.simplefilter("ignore", UserWarning)
                scheduler.step()
        if "task" in state:
            task.load_state_dict(state["task"])
        result.history = list(state["history"])
        result.best_epoch, result.best_score = int(state["best_epoch"]), float(state["best_score"])
        start_epoch, stale = int(state["epoch"]) + 1, int(state["stale"])
        if (ckpt_dir / "best.pt").exists():
            best_state = load_checkpoint(ckpt_dir / "best.pt", map_location=device, keys=("model",))["model"]
            result.checkpoint = ckpt_dir / "best.pt"
    elif ckpt_dir and cfg.overwrite:
        for name in ("last.pt", "best.pt"):
            (ckpt_dir / name).unlink(missing_ok=True)
    task.setup(model, optimizer, steps_per_epoch=steps_per_epoch, total_steps=total_steps, device=device)
    if cfg.compile:  # the compiled wrapper trains; checkpoints and on_step use the model itself
        train_model = torch.compile(model, **({"backend": cfg.compile} if isinstance(cfg.compile, str) else {}))
    else:
        train_model = model

    t_start, seen, train_time = time.perf_counter(), 0, 0.0
    bar = tqdm(range(start_epoch, cfg.epochs), desc="epochs", disable=not config.progress_enabled(),
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        if cfg.patience is not None and stale >= cfg.patience:
            result.stopped_early = True  # a resumed run that had already stopped trains no further
            break
        # every epoch's randomness (shuffle, dropout, crops) depends on (seed, epoch) only,
        # so a resumed run continues exactly as an uninterrupted one would
        generator.manual_seed(cfg.seed + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        task.on_epoch_start(model, epoch)
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        first_bad = torch.full((), -1, device=device, dtype=torch.int64)
        parts_sum: dict = {}
        batches = (train_set.device_batches(device, cfg.batch_size, generator, drop_last) if device_data
                   else loader)
        n_steps = 0
        for step, batch in enumerate(batches):
            # [training step]
            if not device_data:
                batch = to_device(batch, device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                res = task.loss(train_model, batch)
            value, parts = (res if isinstance(res, tuple) else (res, {}))
            if value.dtype != torch.float32 or value.ndim != 0:
                raise TypeError(f"fit: the loss must be a float32 scalar, got {value.dtype} of shape "
                                f"{tuple(value.shape)} (compute it outside autocast on float32 inputs)")
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            # [end of training step]
            global_step = epoch * steps_per_epoch + step
            task.on_step(model, global_step)
            v = value.detach()
            loss_sum += v
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(v), torch.full_like(first_bad, step), first_bad)
            for k, p in (parts.tensors() if hasattr(parts, "tensors") else parts).items():
                # tensors are summed on the device, plain numbers on the host: no copy or sync per step
                parts_sum[k] = parts_sum.get(k, 0.0) + (p.detach().double() if isinstance(p, torch.Tensor) else float(p))
            seen += _batch_len(batch)
            n_steps += 1
        bad = int(first_bad)  # the epoch's one host synchronisation
        if bad >= 0:
            raise FloatingPointError(f"training loss is not finite at epoch {epoch}, step {bad}")
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        row = {"epoch": epoch, "train_loss": float(loss_sum) / max(n_steps, 1),
               **{f"train_{k}": float(v) / max(n_steps, 1) for k, v in parts_sum.items()},
               "epoch_time_s": epoch_time, "lr": scheduler.get_last_lr()[0]}
        model.eval()
        with torch.no_grad():
            metrics = task.validate(model, device)
        if task.criterion not in metrics:
            raise KeyError(f"fit: validate() returned {sorted(metrics)}, without the criterion {task.criterion!r}")
        row.update(metrics)
        score = float(metrics[task.criterion])
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch, model))
        model.train()
        result.history.append(row)
        if better(score, result.best_score):
            result.best_epoch, result.best_score, stale = epoch, score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if ckpt_dir:
                result.checkpoint = save_checkpoint({"model": best_state, "epoch": epoch, "score": score,
                                                     "criterion": task.criterion}, ckpt_dir / "best.pt")
        else:
            stale += 1
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{score:.3f}")
        if ckpt_dir:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "history": result.history, "epoch": epoch,
                             "best_epoch": result.best_epoch, "best_score": result.best_score, "stale": stale,
                             "total_steps": total_steps, "task": task.state_dict(), "settings": settings},
                            ckpt_dir / "last.pt")
        if cfg.patience is not None and stale >= cfg.patience:
            result.stopped_early = True
            break
    if result.best_epoch < 0 and result.history:
        result.note = (f"{task.criterion} was undefined (NaN) at every epoch, so no epoch was selected; the model "
                       f"holds its initial weights")
        warnings.warn(f"fit: {result.note}", RuntimeWarning, stacklevel=3)
    model.load_state_dict(best_state)
    result.wall_time_s = time.perf_counter() - t_start
    result.samples_per_s = seen / train_time if train_time > 0 else 0.0
    return result


def config_dict(cfg: TrainConfig) -> dict:
    """``TrainConfig`` as a JSON-friendly dict (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
