"""Seconds to fit all curve families with 1000 bootstrap replicates on a 20-trial sweep.

The bar (DESIGN.md): the aggregator fits every family with bootstrap intervals for
a 20-trial sweep in seconds, not minutes. This times `fit_learning_curve` on
5 sizes x 4 repetitions, then the questions the report asks of the fit
(predictions with intervals at 8 sizes, and 3 targets inverted).

    .venv/bin/python bench/curve_fit_speed.py [--repeats 3] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "job"))
from samplesize.curves import FAMILIES, fit_learning_curve  # noqa: E402


def sweep(seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.repeat(150 * 2.0 ** np.arange(5), 4)
    scores = rng.binomial(600, 0.94 - 1.4 * sizes ** -0.45) / 600
    return sizes, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    sizes, scores = sweep()
    fit_times, query_times = [], []
    for seed in range(args.repeats):
        start = time.perf_counter()
        fit = fit_learning_curve(sizes, scores, n_bootstrap=args.bootstrap, seed=seed)
        fit_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fit.interval(fit.max_size * np.array([0.5, 1, 1.5, 2, 3, 4, 8, 16]))
        for target in (0.85, 0.9, 0.95):
            fit.size_for(target)
        query_times.append(time.perf_counter() - start)
    print(f"{sizes.size}-trial sweep ({len(set(sizes))} sizes), {len(FAMILIES)} families, "
          f"{args.bootstrap} bootstrap replicates, {args.repeats} repeats")
    print(f"fit_learning_curve: median {statistics.median(fit_times):.2f} s (min {min(fit_times):.2f} s)")
    print(f"8 intervals + 3 size_for: median {statistics.median(query_times):.2f} s")
    print(f"chosen: {fit.family}; weights: "
          + ", ".join(f"{n} {f.weight:.2f}" for n, f in fit.families.items()))


if __name__ == "__main__":
    main()
