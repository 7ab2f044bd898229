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
    dataset_key        the prepared copy it ran on (`cache/dataset-<hash>.npz`)
    accelerator, package_version, config_hash, finished_at
    tensorflow_version, gpu_model   (gpu_model: the device name, or null on CPU)
    variant            the variant's name; only in a sweep with `variants`
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError
from .plan import TrialSpec
from .storage import Storage, join_uri

RESULT_SCHEMA_VERSION = 1
TRIALS_PREFIX = "trials/"


def result_key(index: int) -> str:
    return f"{TRIALS_PREFIX}trial-{index:05d}.json"


def trial_identity(cfg, spec: TrialSpec) -> dict[str, Any]:
    """The fields that tie a result to its sweep and index (the aggregator checks them)."""
    identity = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "index": spec.index,
        "split": spec.split,
        "repetition": spec.repetition,
        "seed": spec.seed,
        "backtest": spec.backtest,
        "sampling": cfg.sampling,
        "config_hash": cfg.trial_hash(),
    }
    if spec.variant is not None:  # a sweep without variants writes the same result as before
        identity["variant"] = spec.variant
    return identity


def results_on_other_data(storage: Storage, dataset_key: str | frozenset[str]) -> dict[str, int]:
    """Finished results that were computed on another prepared copy: {that copy's key: count}.

    A folder changed mid-sweep gets a new prepared copy (its key holds a
    fingerprint of the contents); results from the old and the new copy are
    never fitted together, and `prepare` and `run` say so up front.
    `dataset_key` may be a set: the prepared copies of a sweep's variants.
    """
    current = {dataset_key} if isinstance(dataset_key, str) else set(dataset_key)
    others: dict[str, int] = {}
    for key in storage.list(TRIALS_PREFIX):
        try:
            result = json.loads(storage.read(key))
        except (FileNotFoundError, ValueError, RecursionError):
            continue  # unreadable files are named by aggregate
        if isinstance(result, dict):
            used = result.get("dataset_key")
            if isinstance(used, str) and used not in current:
                others[used] = others.get(used, 0) + 1
    return others


def describe_other_data(others: dict[str, int], dataset_key: str | frozenset[str]) -> str:
    n = sum(others.values())
    if not isinstance(dataset_key, str):
        dataset_key = ", ".join(sorted(dataset_key))
    return (
        f"{n} finished trial{'s' if n != 1 else ''} used another prepared copy ({', '.join(sorted(others))}) than "
        f"the current {dataset_key}: the dataset folder has changed since they ran. Their results are not fitted "
        "together with new ones; restore the folder, or move trials/ away to start the sweep over"
    )


def encode_result(result: dict[str, Any]) -> bytes:
    # allow_nan=False: a NaN metric is a bug upstream, never something to store.
    return json.dumps(result, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")


def write_result(storage: Storage, result: dict[str, Any]) -> bool:
    """Write once; False when a result for this index already exists."""
    return storage.write_once(result_key(result["index"]), encode_result(result))


def stored_config_hash(storage: Storage, key: str) -> str | None:
    """The config_hash of the result at `key`; None when it is missing or unreadable (the aggregator reports those)."""
    try:
        stored = json.loads(storage.read(key))
    except (FileNotFoundError, ValueError):
        return None
    return stored.get("config_hash") if isinstance(stored, dict) else None


def refuse_foreign_result(storage: Storage, cfg, index: int) -> None:
    """Raise ConfigError when the result at `index` was made with another config.

    Such a result is not "done" for this sweep: the aggregator would refuse
    it, so the trial must say which output to change instead of exiting 0.
    """
    key = result_key(index)
    theirs = stored_config_hash(storage, key)
    if theirs is not None and theirs != cfg.trial_hash():
        raise ConfigError(
            f"{join_uri(storage.uri, key)} holds a result made with another sweep config (config_hash {theirs}, "
            f"this config {cfg.trial_hash()}): results of two configs cannot be fitted together. Set output "
            f"(sweep.output in the chart) to a new prefix for the changed sweep, or restore the config that made it"
        )


def foreign_results(storage: Storage, cfg) -> list[str]:
    """Keys under trials/ whose result was made with another config than `cfg`."""
    mine = cfg.trial_hash()
    return [key for key in storage.list(TRIALS_PREFIX)
            if key.endswith(".json") and stored_config_hash(storage, key) not in (None, mine)]
