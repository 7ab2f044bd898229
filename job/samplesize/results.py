"""The trial result object: its key, schema version and write-once storage.

Schema (version 1), one JSON object per index at `trials/trial-<index:05d>.json`:

    schema_version, index, split, repetition, seed, backtest, sampling,
    sample_size        distinct labelled examples drawn (train + validation)
    train_size, validation_size, test_size, pool_size
    class_names        list of str
    metrics            {accuracy, balanced_accuracy, macro_f1, auc,
                        per_class_recall: {class_name: float}}
    confusion_matrix   list of rows (true class) of counts (predicted class)
    epochs             {head: int, fine_tune: int}
    timings            {load_s, train_s, evaluate_s, total_s}
    feature_cache      "used: <what came from the cache>" or "off: <reason>"
    accelerator, package_version, config_hash, finished_at
"""

from __future__ import annotations

import json
from typing import Any

from .plan import TrialSpec
from .storage import Storage

RESULT_SCHEMA_VERSION = 1
TRIALS_PREFIX = "trials/"


def result_key(index: int) -> str:
    return f"{TRIALS_PREFIX}trial-{index:05d}.json"


def trial_identity(cfg, spec: TrialSpec) -> dict[str, Any]:
    """The fields that tie a result to its sweep and index (the aggregator checks them)."""
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "index": spec.index,
        "split": spec.split,
        "repetition": spec.repetition,
        "seed": spec.seed,
        "backtest": spec.backtest,
        "sampling": cfg.sampling,
        "config_hash": cfg.trial_hash(),
    }


def encode_result(result: dict[str, Any]) -> bytes:
    # allow_nan=False: a NaN metric is a bug upstream, never something to store.
    return json.dumps(result, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")


def write_result(storage: Storage, result: dict[str, Any]) -> bool:
    """Write once; False when a result for this index already exists."""
    return storage.write_once(result_key(result["index"]), encode_result(result))
