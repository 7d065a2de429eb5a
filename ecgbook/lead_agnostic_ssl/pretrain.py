"""Pre-training a :class:`~ecgbook.models.wav2vec2.Wav2Vec2Pretrainer` on a corpus with one objective
(single process or torchrun), and its throughput.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from .. import config, distributed as dist
from ..device import pick_device
from ..models.wav2vec2 import Wav2Vec2Pretrainer, save_pretrained, wav2vec2_config
from ..train import warmup_cosine
from .corpus import Corpus
from .objectives import Objective, PAIR, objective, pretrain_loss

# ----------------------------------------------------------------------------------------------
# Pre-training loop
# ----------------------------------------------------------------------------------------------
@dataclass
class PretrainConfig:
    """Settings of :func:`pretrain`.

    Official (``w2v_cmsc_rlm.yaml``): Adam (0.9, 0.98), eps 1e-6, weight decay 0.01, fixed lr 5e-5,
    batch 64 per GPU on 4 GPUs, ``update_freq 2``, 200 epochs. The short CPU runs use a larger lr
    with linear warm-up and cosine decay; ``anneal_to_end`` makes the Gumbel temperature reach its
    end value (0.5) at the last update instead of decaying by 0.999995 per update (which would
    barely move in a few thousand updates).
    """

    epochs: int = 200
    batch_size: int = 64          # pairs per step and process (2 segments each)
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.0           # share of the updates spent warming up
    schedule: str = "fixed"       # "fixed" or "cosine"
    grad_accum: int = 1
    grad_clip: float | None = None
    anneal_to_end: bool = False
    seed: int = 0
    max_steps: int | None = None


def _lr_factor(step: int, total: int, cfg: PretrainConfig) -> float:
    return warmup_cosine(step, total, int(cfg.warmup * total), decay=cfg.schedule == "cosine")


def pretrain(model: Wav2Vec2Pretrainer, corpus: Corpus, obj: Objective, cfg: PretrainConfig, *,
             device: torch.device | None = None, checkpoint: str | Path | None = None) -> dict:
    """Pre-train ``model`` on ``corpus`` with objective ``obj``; returns ``{"history", "segments_per_s", ...}``.

    Works in one process and under ``torchrun`` (DDP over :func:`ecgbook.distributed.init`; each
    rank takes its share of every global batch through a ``DistributedSampler``; rank 0 logs and
    saves). ``history``: one row per epoch with every loss term, the codebook perplexities, the
    Gumbel temperature and the throughput. ``checkpoint``: where rank 0 writes the final weights
    (:func:`ecgbook.models.wav2vec2.save_pretrained`). Raises ``FloatingPointError`` on a
    non-finite loss.
    """
    device = pick_device(device)
    torch.manual_seed(cfg.seed)
    net = dist.wrap(model, device, find_unused_parameters=not obj.w2v)
    ids = torch.as_tensor(corpus.ids(obj.cmsc_ids))
    dataset = TensorDataset(torch.arange(len(corpus)))
    sampler = dist.sampler(dataset, shuffle=True, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(corpus) >= cfg.batch_size * dist.world_size(), generator=gen)
    steps_per_epoch = max(1, len(loader) // cfg.grad_accum)
    total = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    if cfg.anneal_to_end and obj.w2v:
        q = model.quantizer
        q.temp_decay = (q.min_temp / q.max_temp) ** (1.0 / max(1, total))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.98),
                            eps=1e-6, weight_decay=cfg.weight_decay)
    history, update, seen, train_time = [], 0, 0, 0.0
    X = corpus.X
    bar = tqdm(range(cfg.epochs), desc=f"pretrain {obj.name}", disable=not (config.progress_enabled() and dist.is_main()))
    for epoch in bar:
        if sampler is not None:
            sampler.set_epoch(epoch)
        gen.manual_seed(cfg.seed + epoch)
        net.train()
        sums, count, t0 = {}, 0, time.perf_counter()
        for i, (index,) in enumerate(loader):
            pairs = torch.as_tensor(np.asarray(X[index.numpy()]), device=device)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(update, total, cfg)
            if obj.w2v:
                model.set_num_updates(update)
            loss, parts = pretrain_loss(net, pairs, index, ids[index], obj, seed=cfg.seed, epoch=epoch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pre-training loss is {float(loss)} at epoch {epoch}, batch {i}")
            (loss / cfg.grad_accum).backward()
            if (i + 1) % cfg.grad_accum == 0:
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                update += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            seen += 2 * len(index) * dist.world_size()
            if update >= total:
                break
        elapsed = time.perf_counter() - t0
        train_time += elapsed
        row = {"epoch": epoch, **{k: v / max(count, 1) for k, v in sums.items()}, "updates": update,
               "lr": opt.param_groups[0]["lr"], "epoch_time_s": elapsed,
               "segments_per_s": 2 * count * cfg.batch_size * dist.world_size() / max(elapsed, 1e-9)}
        history.append(row)
        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.3f}")
        if update >= total:
            break
    if checkpoint and dist.is_main():
        save_pretrained(model, checkpoint, {"objective": asdict(obj), "history": history})
    dist.barrier()
    return {"history": history, "segments_per_s": seen / max(train_time, 1e-9), "updates": update,
            "wall_time_s": train_time}


def pretraining_throughput(size: str = "tutorial", batch_size: int = 16, steps: int = 3, method: str = "W2V+CMSC+RLM",
                           device: str | None = None) -> float:
    """Segments per second of pre-training steps on random data (for ``benchmarks/run.py``).

    Builds a model of ``size``, runs one warm-up step and ``steps`` timed steps of ``method`` on
    ``batch_size`` random 10-s pairs, and returns segments (5 s) per second.
    """
    dev = pick_device(device)
    torch.manual_seed(0)
    model = Wav2Vec2Pretrainer(wav2vec2_config(size)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pairs = torch.randn(batch_size, 12, PAIR, device=dev) * 0.3
    index, ids = torch.arange(batch_size), torch.arange(batch_size)
    obj = objective(method)
    t0 = 0.0
    for s in range(steps + 1):
        if s == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss, _ = pretrain_loss(model, pairs, index, ids, obj, seed=0, epoch=s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * batch_size * steps / (time.perf_counter() - t0)
