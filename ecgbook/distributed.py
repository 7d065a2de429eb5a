"""Data-parallel training helpers: ``torchrun`` + :class:`~torch.nn.parallel.DistributedDataParallel`.

Launch (one node, N processes; each reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` from the
environment that ``torchrun`` sets)::

    torchrun --nproc_per_node N -m ecgbook.lead_agnostic_ssl pretrain --profile paper --out runs/w2v

Rules the helpers implement:

* :func:`init` picks NCCL on CUDA and gloo on CPU; without ``WORLD_SIZE`` it is a no-op (one process).
* :func:`main_first` lets rank 0 build data and caches while the other ranks wait at a barrier,
  then they read what rank 0 wrote: never two concurrent cache builds in one data folder.
* Only rank 0 shows progress bars, logs and writes checkpoints (:func:`is_main`).
* A loss made of per-sample terms is summed locally and divided by the *global* count
  (:func:`global_count`) times ``1 / world_size``-compensation, so that DDP's gradient averaging
  gives the gradient of the global mean. A loss computed from all ranks' samples (CMSC's similarity
  matrix, the codebook perplexity) uses the autograd collectives :func:`gather_with_grad` /
  :func:`all_reduce_with_grad`; every rank computes the same global value, its gradient reaches
  each rank ``world_size`` times, and DDP's averaging divides it back.

``tests/test_distributed.py`` checks, with two gloo processes on CPU, that one step gives the
same parameters as one process on the same global batch.
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

from .device import pick_device


def is_initialized() -> bool:
    """Whether a process group is active."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that logs, shows progress and saves."""
    return rank() == 0


def environment() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from torchrun's ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``.

    Unset variables count as one process, rank 0. Raises ``ValueError`` naming the variable, its
    value and the valid range when one is not an integer, ``WORLD_SIZE`` < 1, or a rank is outside
    ``0 … WORLD_SIZE - 1``, or ``WORLD_SIZE`` > 1 comes without ``RANK``, ``MASTER_ADDR`` or
    ``MASTER_PORT``; call it before any work so that a bad launch fails at once.
    """
    def read(name: str, default: int, low: int, high: int | None) -> int:
        raw = os.environ.get(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            valid = f"an integer ≥ {low}" if high is None else f"an integer in [{low}, {high}]"
            raise ValueError(f"environment variable {name}={raw!r}: expected {valid} (set by torchrun)")
        return value

    world = read("WORLD_SIZE", 1, 1, None)
    ranks = read("RANK", 0, 0, world - 1), read("LOCAL_RANK", 0, 0, world - 1)
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if world > 1 and missing:
        raise ValueError(f"environment variable WORLD_SIZE={world} is set but {missing} are not; launch with torchrun")
    return (world, *ranks)


def init(backend: str | None = None) -> torch.device:
    """Join the process group described by torchrun's environment; return this process's device.

    Without ``WORLD_SIZE`` in the environment (a plain ``python`` run) nothing is initialised and
    the device is CUDA if present, else CPU. ``backend``: default ``nccl`` on CUDA, ``gloo`` on CPU.
    Raises ``ValueError`` for a malformed variable, or when ``WORLD_SIZE`` > 1 is set but ``RANK``,
    ``MASTER_ADDR`` or ``MASTER_PORT`` is not (:func:`environment`).
    """
    world, _, local = environment()
    if world <= 1:
        return pick_device()
    cuda = torch.cuda.is_available()
    if not is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    if cuda:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def cleanup() -> None:
    """Leave the process group (no-op without one)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for all ranks (no-op without a process group)."""
    if is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Run the block on rank 0 first, then on the other ranks (which find rank 0's caches).

    >>> with main_first():          # doctest: +SKIP
    ...     corpus = build_corpus(...)
    """
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def wrap(model: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``model`` on ``device``, wrapped in DDP when a process group is active (``find_unused_parameters``
    for objectives that leave heads unused, e.g. CMSC alone)."""
    model = model.to(device)
    if not is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def global_count(n) -> float:
    """Sum of ``n`` (a count of loss terms) over all ranks, as a float (no gradient)."""
    if not is_initialized():
        return float(n)
    t = torch.tensor([float(n)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item())


def global_mean(local_sum: torch.Tensor, local_count) -> torch.Tensor:
    """A local sum turned into this rank's share of the global mean, DDP-compensated.

    Returns ``local_sum * world_size / global_count``: after DDP averages gradients over ranks, the
    gradient equals that of ``(sum over ranks of local sums) / global_count``. In one process it is
    ``local_sum / local_count``.
    """
    return local_sum * world_size() / global_count(local_count)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``(n, ...)`` from all ranks along dim 0, with gradients flowing back.

    Every rank must pass the same shape (equal per-rank batches). Without a process group returns ``x``.
    """
    if not is_initialized():
        return x
    import warnings
    from torch.distributed.nn.functional import all_gather
    with warnings.catch_warnings():           # deprecated in favour of a private API; still differentiable
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0 (no gradient; ids, labels)."""
    if not is_initialized():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks, differentiable (``torch.distributed.nn``). Returns ``x`` in one process."""
    if not is_initialized():
        return x
    import warnings
    from torch.distributed.nn.functional import all_reduce
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


def sampler(dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = True):
    """A :class:`~torch.utils.data.DistributedSampler` when a process group is active, else ``None``.

    Call ``sampler.set_epoch(epoch)`` every epoch. With ``drop_last`` every rank gets the same
    number of batches (so collectives never wait for a rank that has finished).
    """
    if not is_initialized():
        return None
    from torch.utils.data.distributed import DistributedSampler
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
