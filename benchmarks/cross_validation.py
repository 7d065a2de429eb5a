"""Cross-validation of frozen features: folds in parallel (joblib) versus one after another.

Both runs must give identical out-of-fold predictions (checked). Problem: ``--n`` samples of
``--features`` Gaussian features in 4 classes with class-dependent means (the size of the
transfer-learning chapter's MIT-BIH beat set at one tap), ``--folds`` stratified folds, each of
:data:`ecgbook.evaluation.CLASSIFIERS`.

Usage: ``python benchmarks/cross_validation.py [--n 4000] [--features 512] [--folds 10] [--jobs -1]``.
Prints a Markdown table (median of ``--repeats`` runs of each).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from ecgbook.evaluation import CLASSIFIERS, cross_validate_features, stratified_folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = rng.choice(np.array(["N", "S", "V", "F"]), args.n)
    X = rng.standard_normal((args.n, args.features)) + 0.15 * (y[:, None] == np.array(["N", "S", "V", "F"])).repeat(
        args.features // 4 + 1, axis=1)[:, :args.features]
    folds = stratified_folds(y, args.folds, seed=0)
    cross_validate_features(X[:200], y[:200], stratified_folds(y[:200], 2), n_jobs=args.jobs)  # start the workers
    print(f"cores: {os.cpu_count()}, n_jobs={args.jobs}, {args.n} samples × {args.features} features, "
          f"{args.folds} folds\n")
    print("| classifier | serial s | parallel s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for classifier in CLASSIFIERS:
        times = {1: [], args.jobs: []}
        results = {}
        for _ in range(args.repeats):
            for jobs in (1, args.jobs):
                t0 = time.perf_counter()
                results[jobs] = cross_validate_features(X, y, folds, classifier, n_jobs=jobs)
                times[jobs].append(time.perf_counter() - t0)
        if not np.array_equal(results[1]["predictions"], results[args.jobs]["predictions"]):
            raise SystemExit(f"{classifier}: parallel and serial predictions differ")
        serial, parallel = statistics.median(times[1]), statistics.median(times[args.jobs])
        print(f"| {classifier} | {serial:.2f} | {parallel:.2f} | {serial / parallel:.2f}× |")


if __name__ == "__main__":
    main()
