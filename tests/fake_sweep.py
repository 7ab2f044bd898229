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
from samplesize.sampling import requested_size
from samplesize.storage import LocalStorage

POOL = 1000
CLASSES = ["cat", "dog", "<script>alert(1)</script>"]
BOOT = 40  # the fit is exercised, not its interval quality; keep the tests fast
PER_GROUP = 3  # a grouped sweep's pool: POOL // PER_GROUP patients of three images each
GROUPED = {"dataset": {"source": "csv:/data/labels.csv", "group_column": "patient"}}


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


def confusion_for(recalls: list[float], test_size: int) -> list[list[int]]:
    """A confusion matrix of `test_size` images whose class recalls are about `recalls` (misses spread round)."""
    k = len(recalls)
    matrix = []
    for i, r in enumerate(recalls):
        n = test_size // k + (1 if i < test_size % k else 0)
        row = [0] * k
        row[i] = int(round(r * n))
        for m in range(n - row[i]):
            row[(i + 1 + m % (k - 1)) % k] += 1
        matrix.append(row)
    return matrix


def rescored(result: dict) -> dict:
    """`result` with accuracy, balanced accuracy and per-class recall recomputed from its confusion matrix
    (a class without test images has recall None), as a trial computes them."""
    matrix = result["confusion_matrix"]
    recalls = {c: (row[i] / sum(row) if sum(row) else None)
               for i, (c, row) in enumerate(zip(result["class_names"], matrix))}
    tested = [r for r in recalls.values() if r is not None]
    result["metrics"].update(accuracy=sum(row[i] for i, row in enumerate(matrix)) / sum(map(sum, matrix)),
                             balanced_accuracy=sum(tested) / len(tested), per_class_recall=recalls)
    return result


def fake_result(cfg, index: int, classes=CLASSES, **changes) -> dict:
    """A schema-v1 result for `index` whose score follows a saturating curve plus noise.

    Its scores are those of its own confusion matrix (of `changes`' test_size), as a trial's are."""
    spec = trial_spec(cfg, index)
    n = round(spec.split * POOL)
    grouped = {}
    if cfg.dataset.group_column is not None:  # whole patients drawn, as `trial.draw_trial_sample` does
        groups = requested_size(spec.split, POOL // PER_GROUP)
        n = PER_GROUP * groups
        grouped = {"sample_groups": groups, "pool_groups": POOL // PER_GROUP}
    rng = np.random.default_rng(index)
    score = float(np.clip(true_score(n) + rng.normal(0, 0.01), 0, 1))
    test_size = changes.get("test_size", 250)
    confusion = confusion_for([float(np.clip(score + (k - 1) * 0.03, 0, 1)) for k in range(len(classes))], test_size)
    result = {
        **trial_identity(cfg, spec),
        "sample_size": n,
        "train_size": int(n * 0.8),
        "validation_size": n - int(n * 0.8),
        "test_size": test_size,
        "pool_size": POOL,
        "class_names": list(classes),
        "metrics": {"macro_f1": score, "auc": min(1.0, score + 0.04)},  # the rest from the matrix (`rescored`)
        "confusion_matrix": confusion,
        "epochs": {"head": 10, "fine_tune": 0},
        "timings": {"load_s": 0.5, "train_s": 10.0, "evaluate_s": 0.5, "total_s": 11.0},
        "feature_cache": "used",
        "accelerator": "cpu",
        "package_version": "0.1.0",
        "finished_at": "2025-01-01T00:00:00Z",
        **grouped,
    }
    rescored(result)
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
    "small-test-set": ({"targets": [0.85, 0.999]}, None, {"test_size": 24}),
    "one-split": ({"splits": [0.5]}, None, {}),
    "variants": ({"variants": TWO_VARIANTS}, None, {}),
    "grouped": (GROUPED, None, {}),
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
