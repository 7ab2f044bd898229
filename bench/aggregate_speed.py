"""How long does aggregation take for a 20-trial sweep with 1000 bootstrap resamples?

Builds a synthetic sweep (4 fitted splits + 1 backtest split, 4 repetitions,
10 classes) in a temp folder, runs `aggregate()` once to warm imports, then
times it. A benchmark, not a test: it prints seconds and asserts nothing.

    python bench/aggregate_speed.py [--bootstrap 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from samplesize.aggregate import aggregate
from samplesize.config import build_config
from samplesize.plan import all_trials
from samplesize.results import RESULT_SCHEMA_VERSION, write_result
from samplesize.storage import LocalStorage

POOL, TEST, CLASSES = 1437, 360, [f"digit {d}" for d in range(10)]


def confusion(recalls) -> list[list[int]]:
    """A confusion matrix of TEST images, as many per class, whose class recalls are about `recalls`."""
    per, k = TEST // len(recalls), len(recalls)
    matrix = []
    for i, r in enumerate(recalls):
        row = [0] * k
        row[i] = int(round(float(r) * per))
        for m in range(per - row[i]):  # the misses spread over the other classes
            row[(i + 1 + m % (k - 1)) % k] += 1
        matrix.append(row)
    return matrix


def synthetic_sweep(root: Path):
    cfg = build_config({"splits": [0.05, 0.1, 0.25, 0.5], "backtest_splits": [1.0], "repetitions": 4,
                        "targets": [0.9, 0.95, 0.98], "predict_at": [2000, 5000]})
    storage = LocalStorage(root)
    rng = np.random.default_rng(0)
    for spec in all_trials(cfg):
        n = round(spec.split * POOL)
        score = float(np.clip(0.97 - 1.6 * n ** -0.5 + rng.normal(0, 0.01), 0, 1))
        matrix = confusion(np.clip(score + rng.normal(0, 0.02, len(CLASSES)), 0, 1))
        recall = {c: row[i] / sum(row) for i, (c, row) in enumerate(zip(CLASSES, matrix))}
        accuracy = sum(row[i] for i, row in enumerate(matrix)) / TEST
        write_result(storage, {
            "schema_version": RESULT_SCHEMA_VERSION, "index": spec.index, "split": spec.split,
            "repetition": spec.repetition, "seed": spec.seed, "backtest": spec.backtest, "sampling": cfg.sampling,
            "sample_size": n, "train_size": int(0.8 * n), "validation_size": n - int(0.8 * n),
            "test_size": TEST, "pool_size": POOL, "class_names": CLASSES,
            # the scores are those of the result's own confusion matrix: aggregation refuses any other
            "metrics": {"accuracy": accuracy, "balanced_accuracy": float(np.mean(list(recall.values()))),
                        "macro_f1": score, "auc": min(1.0, score + 0.02), "per_class_recall": recall},
            "confusion_matrix": matrix,
            "epochs": {"head": 20, "fine_tune": 0}, "timings": {"load_s": 1, "train_s": 30, "evaluate_s": 1, "total_s": 32},
            "feature_cache": "used", "accelerator": "cpu", "package_version": "bench",
            "config_hash": cfg.trial_hash(), "finished_at": "2025-01-01T00:00:00Z",
        })
    return cfg, storage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, storage = synthetic_sweep(Path(tmp))
        aggregate(cfg, storage, n_bootstrap=10)  # warm-up: imports, matplotlib font cache
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            summary = aggregate(cfg, storage, n_bootstrap=args.bootstrap)
            times.append(time.perf_counter() - start)
    print(f"aggregate(): {cfg.trial_count} trials, {len(CLASSES)} classes, {args.bootstrap} bootstrap resamples, "
          f"chosen family {summary['chosen_family']}")
    print(f"seconds: best {min(times):.2f}, median {float(np.median(times)):.2f} over {args.repeat} run(s)")


if __name__ == "__main__":
    main()
