"""Bootstrap of the macro AUROC: vectorised rank AUROC versus one scikit-learn call per class and resample.

Both paths draw the same resamples (same seed) and must give the same interval (checked, ≤ 1e-12).
Problem: 252 test records × 71 classes (the size of PTB-XL's fold 10 on the ``all`` task), random
labels with class prevalences from 1 % to 50 % and scores correlated with them.

Usage: ``python benchmarks/bootstrap.py [--records 252] [--classes 71] [--n-boot 1000] [--repeats 5]``.
Prints a Markdown table; the vectorised path is timed ``--repeats`` times (median), the reference
once (it takes minutes).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from ecgbook.metrics import bootstrap_ci, macro_auroc


def problem(records: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.random((records, classes)) < rng.uniform(0.01, 0.5, classes)
    y_true[:2], y_true[2:4] = True, False            # every class defined on the full data
    y_score = rng.random((records, classes)) + 0.7 * y_true
    return y_true.astype(int), y_score


def reference(t, s):
    return macro_auroc(t, s, method="sklearn").value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=252)
    parser.add_argument("--classes", type=int, default=71)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    y_true, y_score = problem(args.records, args.classes)
    fast_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = bootstrap_ci(macro_auroc, y_true, y_score, n_boot=args.n_boot, seed=0)
        fast_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    slow = bootstrap_ci(reference, y_true, y_score, n_boot=args.n_boot, seed=0, fix_classes=True)
    slow_time = time.perf_counter() - t0
    gap = max(abs(fast.low - slow.low), abs(fast.high - slow.high), abs(fast.point - slow.point))
    fast_time = statistics.median(fast_times)
    print(f"CPU: {platform.processor() or platform.machine()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{args.records} records × {args.classes} classes, {args.n_boot} resamples "
          f"(redrawn: {fast.n_redrawn}); interval {fast.low:.4f}–{fast.high:.4f}; max |difference| {gap:.1e}\n")
    print("| path | seconds per interval | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| scikit-learn `roc_auc_score` per class per resample | {slow_time:.2f} | 1 |")
    print(f"| vectorised rank AUROC (`auroc_weighted`), median of {args.repeats} | {fast_time:.3f} | "
          f"{slow_time / fast_time:.0f}× |")
    if gap > 1e-12:
        raise SystemExit(f"the two paths disagree by {gap:.2e}")


if __name__ == "__main__":
    main()
