"""A sweep's config and its results, made up without training a model.

For the tests that aggregate, report or compare sweeps: `fake_result` follows the
schema in samplesize.results, with a score on a known saturating curve plus noise.
"""

from __future__ import annotations

from pathlib import Path

import json

import numpy as np

from samplesize.aggregate import aggregate
from samplesize.config import build_config
from samplesize.plan import trial_spec
from samplesize.results import trial_identity, write_result
from samplesize.storage import LocalStorage

POOL = 1000
CLASSES = ["cat", "dog", "<script>alert(1)</script>"]
BOOT = 40  # the fit is exercised, not its interval quality; keep the tests fast


def make_cfg(**overrides):
    """An 8-trial sweep config (three splits and a backtest, two repetitions), with `overrides` applied."""
    raw = {
        "splits": [0.1, 0.25, 0.5],
        "backtest_splits": [1.0],
        "repetitions": 2,
        "targets": [0.85, 0.99],
        "predict_at": [1500],
    }
    raw.update(overrides)
    return build_config(raw)


def true_score(n: float) -> float:
    """The score `fake_result` draws around at sample size `n`."""
    return 0.95 - 2.0 * n ** -0.5


def fake_result(cfg, index: int, classes=CLASSES, **changes) -> dict:
    """A schema-v1 result for `index` whose score follows a saturating curve plus noise."""
    spec = trial_spec(cfg, index)
    n = round(spec.split * POOL)
    rng = np.random.default_rng(index)
    score = float(np.clip(true_score(n) + rng.normal(0, 0.01), 0, 1))
    recall = {c: float(np.clip(score + (k - 1) * 0.03, 0, 1)) for k, c in enumerate(classes)}
    k = len(classes)
    confusion = [[40 if i == j else 2 for j in range(k)] for i in range(k)]
    result = {
        **trial_identity(cfg, spec),
        "sample_size": n,
        "train_size": int(n * 0.8),
        "validation_size": n - int(n * 0.8),
        "test_size": 250,
        "pool_size": POOL,
        "class_names": list(classes),
        "metrics": {
            "accuracy": score,
            "balanced_accuracy": score,
            "macro_f1": score,
            "auc": min(1.0, score + 0.04),
            "per_class_recall": recall,
        },
        "confusion_matrix": confusion,
        "epochs": {"head": 10, "fine_tune": 0},
        "timings": {"load_s": 0.5, "train_s": 10.0, "evaluate_s": 0.5, "total_s": 11.0},
        "feature_cache": "used",
        "accelerator": "cpu",
        "package_version": "0.1.0",
        "finished_at": "2025-01-01T00:00:00Z",
    }
    result.update(changes)
    return result


def write_sweep(cfg, root: Path, indexes=None) -> LocalStorage:
    """Write results for `indexes` (default: every index) into a LocalStorage at `root`."""
    storage = LocalStorage(root)
    for i in range(cfg.trial_count) if indexes is None else indexes:
        assert write_result(storage, fake_result(cfg, i))
    return storage


# Golden summaries (tests/golden/, tests/test_summary_golden.py): scenarios whose summary.json must not change.
TWO_VARIANTS = [{"name": "narrow", "model": {"dropout": 0.1}}, {"name": "wide", "model": {"dropout": 0.3}}]
# name -> (config overrides, indexes written (None: all), changes to every result)
SCENARIOS = {
    "complete": ({}, None, {}),
    "partial": ({}, [0, 1, 2, 4, 5, 6], {}),
    "small-test-set": ({"targets": [0.85, 0.999]}, None, {"test_size": 24, "confusion_matrix": [[6, 1, 1], [1, 6, 1], [1, 1, 5]]}),
    "one-split": ({"splits": [0.5]}, None, {}),
    "variants": ({"variants": TWO_VARIANTS}, None, {}),
}
VOLATILE = ("generated_at", "output")  # differ between any two runs: the clock, the temporary folder


def scenario_summary(name: str, root: Path) -> dict:
    """Aggregate scenario `name` under `root` and return its summary.json, volatile fields removed."""
    overrides, indexes, changes = SCENARIOS[name]
    cfg = make_cfg(**overrides)
    storage = LocalStorage(root)
    for i in range(cfg.trial_count) if indexes is None else indexes:
        assert write_result(storage, fake_result(cfg, i, **changes))
    aggregate(cfg, storage, n_bootstrap=BOOT)
    return _without_volatile(json.loads((root / "report" / "summary.json").read_text()))


def _without_volatile(value):
    """`value` without the VOLATILE keys of every `run` section (a variants summary nests one per variant)."""
    if isinstance(value, dict):
        return {k: {f: x for f, x in v.items() if f not in VOLATILE} if k == "run" and isinstance(v, dict)
                else _without_volatile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value
