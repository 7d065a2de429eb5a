"""Batches for training and prediction: arrays in memory as a torch ``Dataset`` (optionally gathered
on the device), device transfer, and sliding-window prediction.

Used by :func:`ecgbook.train.fit` (which re-exports these names) and by every chapter that
predicts with a trained model. Repeatability: every epoch's randomness (shuffle order, random
crops) is a function of ``(seed, epoch)``, see :mod:`ecgbook.train`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .device import pick_device


def to_device(batch, device: torch.device, non_blocking: bool = True):
    """``batch`` (a tensor, or tuples/lists/dicts of them) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def to_float32(output):
    """A model's output with every floating tensor cast to float32 (tensors, mappings, dataclasses
    such as :class:`~ecgbook.models.mrmnet.MRMNetOutput`, tuples). Use it on outputs computed
    under bf16 autocast before a loss."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return dataclasses.replace(output, **{f.name: to_float32(getattr(output, f.name))
                                              for f in dataclasses.fields(output)})
    if isinstance(output, Mapping):
        return {k: to_float32(v) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(to_float32(v) for v in output)
    return output


def _batch_len(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    return _batch_len(batch[0])




class ArrayDataset(Dataset):
    """Signals (and labels) held in arrays, with seeded random crops and an optional transform.

    Parameters
    ----------
    X:
        ``(records, leads, samples)`` float32 (a memory map is fine).
    Y:
        ``(records, classes)`` labels, or ``None`` for unlabelled data (self-supervised
        pretraining): items are then ``x`` alone instead of ``(x, y)``.
    transform:
        ``transform(x, rng) -> x`` on one record ``(leads, samples)`` NumPy array; ``rng`` is a
        NumPy ``Generator`` seeded from ``(seed, epoch, index)``. A transform keeps the data on the
        host (the ``DataLoader`` path of :func:`fit`).
    crop:
        Length (samples) of a random crop cut from every record each epoch, before ``transform``.
        Its start is drawn from ``(seed, epoch)`` for every index at once (one table per epoch,
        the same in every ``DataLoader`` worker), so crops do not depend on ``num_workers`` and a
        resumed run draws the crops of the uninterrupted one. Records shorter than ``crop`` are
        zero-padded at the end (as :func:`ecgbook.signal.crop`). With ``crop`` and no
        ``transform`` the crops can be cut on the device (:meth:`device_batches`).
    seed:
        Seed of the crops and of the transform's generators.
    crops_per_record:
        Items per record and epoch (default 1). With ``k > 1`` the dataset has ``k × records``
        items, item ``j`` being crop ``j // records`` of record ``j % records``, each crop drawn
        independently (the official multimodal-SSL fine-tuning's ``sample_items_per_record=5``,
        ``experiments/run_ensembled.py:74`` of UARK-AICV/ECG_SSL_12Lead). Needs ``crop``.
    lengths:
        ``(records,)`` number of valid samples of each record when ``X`` holds records of several
        lengths zero-padded at the end; crops then start in ``[0, lengths[i] - crop]`` so that
        they never reach into the padding (a record shorter than ``crop`` is cropped from 0).
        ``None``: every record fills ``X``. Needs ``crop``.

    Raises
    ------
    ValueError
        ``X`` and ``Y`` differ in length, ``X`` is not 3-D, ``crop < 1``, ``crops_per_record < 1``,
        ``crops_per_record > 1`` or ``lengths`` without ``crop``, or ``lengths`` of the wrong
        shape or outside ``[1, samples]``.
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray | None = None, transform: Callable | None = None,
                 seed: int = 0, *, crop: int | None = None, crops_per_record: int = 1,
                 lengths: np.ndarray | None = None):
        if Y is not None and len(X) != len(Y):
            raise ValueError(f"X has {len(X)} records but Y has {len(Y)}")
        if np.ndim(X) != 3:
            raise ValueError(f"ArrayDataset: X must be (records, leads, samples), got shape {np.shape(X)}")
        if crop is not None and int(crop) < 1:
            raise ValueError(f"ArrayDataset: crop must be >= 1 sample, got {crop}")
        if int(crops_per_record) < 1:
            raise ValueError(f"ArrayDataset: crops_per_record must be >= 1, got {crops_per_record}")
        if crop is None and (int(crops_per_record) > 1 or lengths is not None):
            raise ValueError("ArrayDataset: crops_per_record > 1 and lengths need crop=")
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            if lengths.shape != (len(X),) or lengths.min(initial=1) < 1 or lengths.max(initial=1) > X.shape[-1]:
                raise ValueError(f"ArrayDataset: lengths must be ({len(X)},) integers in [1, {X.shape[-1]}], "
                                 f"got shape {lengths.shape}")
        self.X, self.Y, self.transform, self.seed = X, Y, transform, int(seed)
        self.crop = None if crop is None else int(crop)
        self.crops_per_record = int(crops_per_record)
        self.lengths = lengths
        self._device_cache: dict = {}
        self.set_epoch(0)

    def __getstate__(self):  # DataLoader workers get the arrays, not a device copy
        state = dict(self.__dict__)
        state["_device_cache"] = {}
        return state

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and transform generators are drawn (called by :func:`fit`
        every epoch)."""
        self.epoch = int(epoch)
        self._starts = None

    def crop_starts(self, epoch: int | None = None) -> np.ndarray:
        """``(items,)`` int64 start samples of the random crops of ``epoch`` (default: the current);
        ``items`` = ``crops_per_record × records`` (item ``j`` is a crop of record ``j % records``)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if epoch == self.epoch and self._starts is not None:
            return self._starts
        rng = np.random.default_rng((self.seed, epoch, 0x5EED))
        if self.lengths is None:
            samples = self.X.shape[-1]
            high = max(samples - (self.crop or samples), 0) + 1
            starts = rng.integers(0, high, size=len(self))
        else:
            high = np.maximum(self.lengths - self.crop, 0) + 1
            starts = rng.integers(0, np.tile(high, self.crops_per_record))
        if epoch == self.epoch:
            self._starts = starts
        return starts

    def __len__(self) -> int:
        return len(self.X) * self.crops_per_record

    def __getitem__(self, i: int):
        j, i = int(i), int(i) % len(self.X)  # item j is a crop of record i
        x = np.asarray(self.X[i], dtype=np.float32)
        if self.crop is not None:
            if x.shape[-1] < self.crop:
                x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, self.crop - x.shape[-1])])
            else:
                s = int(self.crop_starts()[j])
                x = x[..., s:s + self.crop]
        if self.transform is not None:
            x = self.transform(x, np.random.default_rng((self.seed, self.epoch, j)))
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.Y is None:
            return x
        return x, torch.as_tensor(np.asarray(self.Y[i]), dtype=torch.float32)

    # ----------------------------------------------------------------- device-resident batches

    def nbytes(self) -> int:
        """Bytes the arrays take as float32 (what :meth:`device_batches` puts on the device)."""
        n = int(np.prod(self.X.shape)) * 4
        return n + (int(np.prod(np.shape(self.Y))) * 4 if self.Y is not None else 0)

    def supports_device_batches(self) -> bool:
        """Whether :meth:`device_batches` can serve this dataset (no NumPy ``transform``)."""
        return self.transform is None

    def _on_device(self, device: torch.device):
        key = str(device)
        if key not in self._device_cache:
            self._device_cache.clear()
            X = np.asarray(self.X, dtype=np.float32)
            X = torch.from_numpy(X if X.flags.writeable else X.copy())  # a read-only memory map is copied
            if self.crop is not None and X.shape[-1] < self.crop:
                X = nn.functional.pad(X, (0, self.crop - X.shape[-1]))
            Y = None if self.Y is None else torch.as_tensor(np.asarray(self.Y), dtype=torch.float32)
            if device.type == "cuda":
                X = X.pin_memory().to(device, non_blocking=True)
                Y = None if Y is None else Y.pin_memory().to(device, non_blocking=True)
            self._device_cache[key] = (X.to(device), None if Y is None else Y.to(device))
        return self._device_cache[key]

    def device_batches(self, device: torch.device, batch_size: int, generator: torch.Generator,
                       drop_last: bool, gather: str | None = None) -> Iterator:
        """Batches of the current epoch cut on ``device`` by index gather.

        The order is the one a ``DataLoader(self, batch_size, shuffle=True, generator=generator,
        drop_last=drop_last)`` draws (the same consumption of ``generator``), and the crops are
        :meth:`crop_starts`, so both paths give the same batches. Yields ``(x, y)`` —
        ``x (batch, leads, crop or samples)`` float32 on ``device`` — or ``x`` when ``Y`` is None.

        ``gather``: ``"index"`` (one ``torch.gather`` kernel, no host synchronisation: the default
        on GPUs) or ``"slice"`` (a slice per record: the default on CPU, where it is faster).

        Raises ``ValueError`` when the dataset has a NumPy ``transform``.
        """
        gather = gather or ("slice" if device.type == "cpu" else "index")
        if not self.supports_device_batches():
            raise ValueError("ArrayDataset.device_batches: a NumPy transform cannot run on the device; "
                             "use the DataLoader path")
        X, Y = self._on_device(device)
        n = len(self)
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # as DataLoader's base seed
        order = torch.randperm(n, generator=generator)
        stop = n - n % batch_size if drop_last else n
        length = self.crop or X.shape[-1]
        starts = torch.as_tensor(self.crop_starts(), device=device)
        offsets = torch.arange(length, device=device)
        order = order.to(device)
        for lo in range(0, stop, batch_size):
            item = order[lo:lo + batch_size]
            idx = item % len(X) if self.crops_per_record > 1 else item  # the items' records
            if self.crop is None or X.shape[-1] == length:
                x = X[idx]
            elif gather == "slice":  # slicing per record is the fastest copy on a CPU
                x = torch.stack([X[i, :, s:s + length] for i, s in zip(idx.tolist(), starts[item].tolist())])
            else:  # one gather kernel on the GPU, no host synchronisation
                cols = (starts[item][:, None, None] + offsets[None, None, :]).expand(len(idx), X.shape[1], length)
                x = torch.gather(X[idx], 2, cols)
            yield x if Y is None else (x, Y[idx])

    def num_batches(self, batch_size: int, drop_last: bool) -> int:
        """Batches per epoch."""
        return len(self) // batch_size if drop_last else math.ceil(len(self) / batch_size)




def logits_of(output) -> torch.Tensor:
    """The prediction logits of a model's output: the tensor itself, or ``output["logits"]``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["logits"]
    return output.logits


def window_starts(
    samples: int, window: int | None, stride: int | None = None
) -> list[int]:
    """Start samples of test-time windows of ``window`` samples every ``stride``
    (default ``window // 2``), the last window ending at the record's end; ``[0]``
    without a window."""
    if window is None or window >= samples:
        return [0]
    stride = stride or window // 2
    starts = list(range(0, samples - window + 1, stride))
    if starts[-1] != samples - window:
        starts.append(samples - window)
    return starts


@torch.no_grad()
def predict(model: nn.Module, X: np.ndarray, *, window: int | None = None, stride: int | None = None,
            aggregate: str = "max", batch_size: int = 256, device: torch.device | str | None = None,
            select: Callable | None = None, amp: bool | None = None,
            lengths: np.ndarray | None = None) -> np.ndarray:
    """Sigmoid scores of ``model`` for records ``X`` ``(records, leads, samples)`` → ``(records, classes)``.

    With ``window`` (samples), each record is cut into windows of that length every ``stride``
    samples (default ``window // 2``) and the windows' scores are aggregated by ``max`` or ``mean``,
    as the PTB-XL benchmark does at test time (2.5-s windows, stride 1.25 s, max). The windows are
    batched together: on CUDA all windows of ``batch_size`` records go through the model in **one**
    forward pass (``batch_size × windows`` inputs, bf16 autocast); on CPU one forward takes the
    windows of ``max(1, batch_size // windows)`` records (large batches run slower on a CPU: measured
    0.6× at 448 windows). ``amp``: ``None`` = bf16 autocast on CUDA only, ``True`` forces it, ``False``
    turns it off; sigmoid and aggregation run in float32.
    ``select(output) -> logits`` picks the logits from the model's output (default :func:`logits_of`;
    e.g. one head of a two-head model).
    ``lengths`` ``(records,)``: valid samples of each record when ``X`` holds zero-padded records of
    several lengths; only the windows that end inside the record are aggregated (the first
    window always counts), as the official multimodal-SSL evaluation drops a record's last chunk
    when it is shorter than the window (``utils/base_dataloader.py:160-168`` of
    UARK-AICV/ECG_SSL_12Lead). ``None``: every window of ``X`` counts.

    Raises ``ValueError`` for an unknown ``aggregate`` or ``lengths`` of the wrong shape.
    """
    if aggregate not in ("max", "mean"):
        raise ValueError(f"predict: aggregate must be 'max' or 'mean', got {aggregate!r}")
    if lengths is not None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (len(X),):
            raise ValueError(f"predict: lengths must have shape ({len(X)},), got {lengths.shape}")
    select = select or logits_of
    device = pick_device(device)
    model.eval().to(device)
    n, leads, samples = X.shape
    starts = window_starts(samples, window, stride)
    if window is None or window >= samples:
        window = samples
    use_amp = device.type == "cuda" if amp is None else amp
    if device.type != "cuda":
        batch_size = max(1, batch_size // len(starts))
    cols = (torch.as_tensor(starts, device=device)[:, None] + torch.arange(window, device=device)[None, :])
    out = []
    for lo in range(0, n, batch_size):
        batch = np.asarray(X[lo:lo + batch_size], dtype=np.float32)
        batch = torch.from_numpy(batch if batch.flags.writeable else batch.copy()).to(device, non_blocking=True)
        b = len(batch)
        # (b, leads, windows, window) -> (b * windows, leads, window), record-major
        windows = batch[:, :, cols].permute(0, 2, 1, 3).reshape(b * len(starts), leads, window)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = select(model(windows))
        scores = torch.sigmoid(logits.float()).reshape(b, len(starts), -1)
        if lengths is None:
            out.append(scores.amax(1) if aggregate == "max" else scores.mean(1))
            continue
        ends = torch.as_tensor(starts, device=device) + window  # (windows,)
        keep = ends[None, :] <= torch.as_tensor(lengths[lo:lo + batch_size], device=device)[:, None]
        keep[:, 0] = True  # (b, windows)
        if aggregate == "max":
            out.append(scores.masked_fill(~keep[..., None], -math.inf).amax(1))
        else:
            w = keep[..., None].float()
            out.append((scores * w).sum(1) / w.sum(1))
    return torch.cat(out).cpu().numpy()
