"""Throughput benchmarks; prints a Markdown table.

- PTB-XL load: records/s reading every present 100-Hz record with ``wfdb.rdsamp`` versus from the
  memory-mapped cache of :mod:`ecgbook.data.cache` (after it is built).
- Baseline training: samples/s of ``resnet1d_wang`` training steps (2.5-s crops, batch 64) and
  inference on the current device (CUDA when present).

Usage: ``python benchmarks/run.py [--records N] [--steps N]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import wfdb

from ecgbook.data.ptbxl import PTBXL
from ecgbook.models.resnet1d import ResNet1dWang
from ecgbook.train import describe_device, pick_device


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=None, help="PTB-XL records to load (default: all present)")
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    args = parser.parse_args()
    rows = []

    db = PTBXL(fs=100, max_records=args.records)
    ids = db.available
    t_wfdb = timed(lambda: [wfdb.rdsamp(str(db.record_path(i))) for i in ids])
    db.task("all")  # builds the cache if needed
    t_cache = timed(lambda: np.asarray(db.task("all").X).sum())
    rows.append(("PTB-XL 100 Hz load, wfdb.rdsamp per record", f"{len(ids) / t_wfdb:,.0f} records/s"))
    rows.append(("PTB-XL 100 Hz load, ecgbook cache (memory map, incl. labels)", f"{len(ids) / t_cache:,.0f} records/s"))

    device = pick_device()
    model = ResNet1dWang(n_classes=71).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(64, 12, 250, device=device)
    y = (torch.rand(64, 71, device=device) > 0.9).float()

    def train_steps(n):
        model.train()
        for _ in range(n):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    train_steps(3)  # warm-up
    t_train = timed(lambda: train_steps(args.steps))
    rows.append((f"resnet1d_wang training, batch 64 x 12 x 250 ({describe_device(device)})",
                 f"{64 * args.steps / t_train:,.0f} samples/s"))
    model.eval()
    xb = torch.randn(256, 12, 250, device=device)
    with torch.no_grad():
        model(xb)
        t_inf = timed(lambda: [model(xb) for _ in range(5)])
    rows.append((f"resnet1d_wang inference, batch 256 ({describe_device(device)})", f"{256 * 5 / t_inf:,.0f} samples/s"))

    width = max(len(r[0]) for r in rows)
    print(f"| {'benchmark':{width}s} | throughput |\n|{'-' * (width + 2)}|------------|")
    for name, value in rows:
        print(f"| {name:{width}s} | {value} |")


if __name__ == "__main__":
    main()
