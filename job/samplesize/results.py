"""The trial result: its schema, how a trial builds it, write-once storage, and loading it back.

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

`load_results(cfg, storage)` reads `trials/`, keeps the results that belong
to this sweep and names every file it rejects and every index still missing.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import METRICS, SweepConfig
from .errors import ConfigError
from .plan import TrialSpec, trial_spec
from .sampling import drawn_size
from .storage import Storage, join_uri
from .text import safe_name

if TYPE_CHECKING:
    from .data import PreparedDataset

RESULT_SCHEMA_VERSION = 1
TRIALS_PREFIX = "trials/"
# A trial file is `trial-*.json` directly under trials/; copies such as
# `trial-00003 (1).json` are read too, so that a duplicate is named, not missed.
_TRIAL_FILE = re.compile(r"^trial-[^/]*\.json$")
_CANONICAL_NAME = re.compile(re.escape(TRIALS_PREFIX) + r"trial-(\d{5,})\.json")
# Bounds on what a result file may hold. A real result is a few kB, 3 levels deep; anything far past
# these was not written by a trial and must not cost the aggregator its memory or its stack.
MAX_RESULT_BYTES = 16 * 2**20
MAX_RESULT_DEPTH = 16
MAX_COUNT = 10**9  # images in a pool, test set or sample
MAX_CLASSES = 100_000
MAX_SECONDS = 10**8


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


def build_result(
    identity: dict[str, Any],
    data: PreparedDataset,
    *,
    sample_size: int,
    train_size: int,
    validation_size: int,
    metrics: dict[str, Any],
    confusion: list[list[int]],
    epochs: dict[str, int],
    clock: tuple[float, float, float, float],
    feature_cache: str,
    accelerator: str,
    runtime: dict[str, Any],
) -> dict[str, Any]:
    """The result of one trial (the schema above).

    `identity` is `trial_identity`; `data` the prepared copy it ran on;
    `clock` the perf_counter readings at (start, data loaded, trained,
    evaluated); `runtime` the TensorFlow version and GPU model.
    """
    started, loaded, trained, done = clock
    return {
        **identity,
        "sample_size": int(sample_size),
        "train_size": int(train_size),
        "validation_size": int(validation_size),
        "test_size": int(len(data.test_labels)),
        "pool_size": int(data.pool_size),
        "dataset_key": data.key,  # the prepared copy: results from different copies are never fitted together
        "class_names": data.class_names,
        "metrics": metrics,
        "confusion_matrix": confusion,
        "epochs": epochs,
        "timings": {
            "load_s": round(loaded - started, 3),
            "train_s": round(trained - loaded, 3),
            "evaluate_s": round(done - trained, 3),
            "total_s": round(done - started, 3),
        },
        "feature_cache": feature_cache,
        "accelerator": accelerator,
        **runtime,
        "package_version": __version__,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


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


# ---------------------------------------------------------------- loading


@dataclass
class LoadedResults:
    """Usable results by index, indexes without one, and why files were rejected."""

    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Rejected(Exception):
    """One result file cannot be used; the message says why and what to do."""


def load_results(cfg: SweepConfig, storage: Storage) -> LoadedResults:
    """Read and validate every result under `trials/`.

    A file is rejected (and named in `problems`) when it is not valid JSON, has
    another schema_version, comes from another sweep (config hash), has a
    missing or non-finite metric, holds an index out of range or one that does
    not match its name, duplicates an index, or lists other class names than
    the rest. `missing` holds every index with no usable result.
    """
    expected_hash = cfg.trial_hash()
    problems: list[str] = []
    by_index: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    for key in storage.list(TRIALS_PREFIX):
        name = key[len(TRIALS_PREFIX):]
        if not _TRIAL_FILE.match(name):
            continue  # temp files, caches: not results
        where = join_uri(storage.uri, key)
        try:
            result = _parse(storage.read(key))
            _check_result(cfg, result, expected_hash)
        except FileNotFoundError:
            continue  # removed between list and read: as if never listed
        except _Rejected as exc:
            problems.append(f"{where}: {exc}; excluded")
            continue
        by_index[result["index"]].append((key, result))

    results: dict[int, dict] = {}
    for index, found in sorted(by_index.items()):
        canonical = result_key(index)
        keys = sorted(k for k, _ in found)
        for key, result in found:
            if key == canonical:
                results[index] = result
                continue
            where = join_uri(storage.uri, key)
            named_for = _index_in_name(key)
            text = f"holds index {index} but " + (
                f"is named for index {named_for}" if named_for is not None else f"is not named {canonical}"
            )
            if canonical in keys:
                text += f"; it duplicates {canonical}, which is used; excluded (copies are never averaged). Delete the copy."
            else:
                text += f"; excluded. Rename it to {canonical} if it is the genuine result."
            problems.append(f"{where}: {text}")

    _drop_inconsistent_classes(storage, results, problems)
    _drop_other_datasets(storage, results, problems)
    missing = [i for i in range(cfg.trial_count) if i not in results]
    return LoadedResults(results=results, missing=missing, problems=problems)


def _index_in_name(key: str) -> int | None:
    match = _CANONICAL_NAME.fullmatch(key)
    return int(match.group(1)) if match else None


def _parse(data: bytes) -> dict:
    if len(data) > MAX_RESULT_BYTES:
        raise _Rejected(f"is {len(data)} bytes, far larger than any trial result (at most {MAX_RESULT_BYTES})")
    try:
        result = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Rejected("is not UTF-8 text (a corrupt or foreign file)") from None
    except json.JSONDecodeError as exc:
        raise _Rejected(f"is not valid JSON ({exc.msg} at line {exc.lineno}); the write was cut short or the file was edited") from None
    except RecursionError:
        raise _Rejected("is JSON nested too deeply to be a trial result") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise _Rejected(f"is not a usable JSON result ({str(exc)[:80]})") from None
    if not isinstance(result, dict):
        raise _Rejected(f"holds a JSON {type(result).__name__}, not a result object")
    return _safe_strings(result, 0)


def _safe_strings(value: Any, depth: int) -> Any:
    """The parsed result with every string safe to encode, draw and print; refuses deep nesting."""
    if depth > MAX_RESULT_DEPTH:
        raise _Rejected(f"is nested more than {MAX_RESULT_DEPTH} levels deep, unlike any trial result")
    if isinstance(value, str):
        return safe_name(value)  # a lone surrogate (a non-UTF-8 folder name) cannot be drawn or written
    if isinstance(value, dict):
        return {safe_name(k): _safe_strings(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe_strings(v, depth + 1) for v in value]
    return value


def finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        return False


def _check_result(cfg: SweepConfig, r: dict, expected_hash: str) -> None:
    """Reject `r` unless this sweep's trial could have written it; checks run in this order, first failure wins."""
    spec = _check_identity(cfg, r, expected_hash)
    _check_metrics(cfg, r)
    _check_classes(r)
    _check_fields(cfg, r, spec)


def _check_identity(cfg: SweepConfig, r: dict, expected_hash: str) -> Any:
    """Schema version, sweep (config hash), index and split; returns the planned trial of the index."""
    version = r.get("schema_version")
    if version != RESULT_SCHEMA_VERSION:
        raise _Rejected(
            f"has schema_version {version!r}, but samplesize {__version__} reads version {RESULT_SCHEMA_VERSION}; "
            "re-run this trial, or aggregate with the samplesize version that wrote it"
        )
    if r.get("config_hash") != expected_hash:
        raise _Rejected(
            f"belongs to another sweep (config hash {r.get('config_hash')!r}, this sweep's is {expected_hash!r}); "
            "move it out of trials/ and re-run its index, or aggregate with the config it was run with"
        )
    index = r.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < cfg.trial_count:
        raise _Rejected(f"has index {index!r}, outside this sweep's indexes 0..{cfg.trial_count - 1}")
    spec = trial_spec(cfg, index)
    if not finite(r.get("split")) or abs(r["split"] - spec.split) > 1e-9:
        raise _Rejected(f"says split {r.get('split')!r}, but index {index} runs split {spec.split:g} in this sweep")
    return spec


def _check_metrics(cfg: SweepConfig, r: dict) -> None:
    """A positive sample size, the sweep's metric, and every score a number in [0, 1]."""
    if not finite(r.get("sample_size")) or r["sample_size"] <= 0:
        raise _Rejected(f"has sample_size {r.get('sample_size')!r}; it must be a positive number")
    metrics = r.get("metrics")
    if not isinstance(metrics, dict):
        raise _Rejected("has no metrics object")
    if cfg.metric not in metrics:
        raise _Rejected(f"has no {cfg.metric} metric (the sweep's metric)")
    for name in METRICS:
        value = metrics.get(name)
        if name == cfg.metric or value is not None:
            if not finite(value) or not 0 <= value <= 1:
                raise _Rejected(f"has {name} = {value!r}; metrics must be numbers in [0, 1] (NaN means the trial went wrong)")


def _check_classes(r: dict) -> None:
    """Distinct class names, and a recall in [0, 1] (or null) for some of them only."""
    names = r.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise _Rejected("has no list of class_names")
    recall = r["metrics"].get("per_class_recall", {})
    if not isinstance(recall, dict):
        raise _Rejected("has a per_class_recall that is not an object")
    for name, value in recall.items():
        if value is None:
            continue  # a class with no test image has no recall
        if not finite(value) or not 0 <= value <= 1:
            raise _Rejected(f"has per-class recall {value!r} for class {name!r}; it must be a number in [0, 1]")
    k = len(names)
    if k > MAX_CLASSES or len(set(names)) != k:
        raise _Rejected(f"has {k} class_names with repeats or past {MAX_CLASSES}")
    unknown = [c for c in recall if c not in names]
    if unknown:
        raise _Rejected(f"has per_class_recall for {unknown[:3]}, which are not among its class_names")


def _count(r: dict, key: str, low: int, high: int) -> int:
    value = r.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) < 40 else f"{repr(value)[:30]}..."
        raise _Rejected(f"has {key} {shown}; it must be a whole number in [{low}, {high}]")
    return value


def _check_fields(cfg: SweepConfig, r: dict, spec: Any) -> None:
    """Every other field's type and range, and the sizes against the plan.

    Whatever a result file holds, the aggregator must not crash on it, and a
    size that no trial of this sweep could have drawn must not become a point
    on the curve.
    """
    _check_planned_trial(r, spec)
    k = len(r["class_names"])
    test = _check_sizes(cfg, r, spec, k)
    _check_confusion(r, k, test)
    _check_records(r)


def _check_planned_trial(r: dict, spec: Any) -> None:
    """Variant, repetition, seed and backtest flag as the plan has them for the index."""
    if r.get("variant") != spec.variant:
        raise _Rejected(f"has variant {str(r.get('variant'))[:40]!r}, but index {spec.index} runs variant "
                        f"{spec.variant!r} in this sweep")
    for key, expected in (("repetition", spec.repetition), ("seed", spec.seed), ("backtest", spec.backtest)):
        if r.get(key) != expected or isinstance(r.get(key), bool) != isinstance(expected, bool):
            raise _Rejected(f"has {key} {str(r.get(key))[:40]}, but index {spec.index} runs {key} {expected} in this sweep")


def _check_sizes(cfg: SweepConfig, r: dict, spec: Any, k: int) -> int:
    """Pool, test, sample, train and validation sizes that the trial's split could draw; returns the test size."""
    pool = _count(r, "pool_size", k, MAX_COUNT)
    test = _count(r, "test_size", k, MAX_COUNT)  # every class has a test image
    sample = _count(r, "sample_size", 1, pool)
    drawn = drawn_size(spec.split, pool, k, cfg.sampling)
    if cfg.sampling == "stratified" and sample != drawn:
        raise _Rejected(
            f"has sample_size {sample}, but split {spec.split:g} of a pool of {pool} draws {drawn} in this sweep"
        )
    if sample > drawn:
        raise _Rejected(f"has sample_size {sample}, more than the {drawn} draws of split {spec.split:g} from a pool of {pool}")
    if "train_size" in r or "validation_size" in r:
        train = _count(r, "train_size", 1, drawn)
        val = _count(r, "validation_size", 0, drawn)
        if train + val != drawn:
            raise _Rejected(f"has train_size {train} + validation_size {val}, but its split draws {drawn}")
    return test


def _check_confusion(r: dict, k: int, test: int) -> None:
    """An optional k x k matrix of whole counts that add up to at most the test set."""
    matrix = r.get("confusion_matrix")
    if matrix is None:
        return
    ok = isinstance(matrix, list) and len(matrix) == k and all(
        isinstance(row, list) and len(row) == k
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= test for v in row)
        for row in matrix
    )
    if not ok or sum(map(sum, matrix)) > test:
        raise _Rejected(f"has a confusion_matrix that is not {k}x{k} whole counts adding up to at most test_size {test}")


def _check_records(r: dict) -> None:
    """Timings and epochs as bounded numbers, and the descriptive fields as short texts."""
    for key in ("timings", "epochs"):
        section = r.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not all(
            finite(v) and 0 <= v <= MAX_SECONDS and (key != "epochs" or isinstance(v, int)) for v in section.values()
        ):
            raise _Rejected(f"has {key} that are not an object of numbers in [0, {MAX_SECONDS:g}]")
    for key in ("accelerator", "package_version", "feature_cache", "finished_at", "dataset_key", "sampling"):
        value = r.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 1000):
            raise _Rejected(f"has {key} of type {type(value).__name__}; it must be a short text")


def _drop_inconsistent_classes(storage: Storage, results: dict[int, dict], problems: list[str]) -> None:
    """Keep only results that list the majority's class names: others saw another dataset."""
    if not results:
        return
    counts = Counter(tuple(r["class_names"]) for r in results.values())
    majority = counts.most_common(1)[0][0]
    for index in sorted(results):
        names = tuple(results[index]["class_names"])
        if names != majority:
            problems.append(
                f"{join_uri(storage.uri, result_key(index))}: lists {len(names)} classes {list(names)[:5]}..., "
                f"but most results list {len(majority)} classes {list(majority)[:5]}...; the dataset changed "
                "between trials; excluded"
            )
            del results[index]


def _drop_other_datasets(storage: Storage, results: dict[int, dict], problems: list[str]) -> None:
    """Keep only results on the majority's pool and test set: scores on other test sets are not comparable.

    A folder changed mid-sweep (with the cache deleted, or a new fingerprint)
    gives later trials another prepared copy; fitting both would mix two
    measurements into one curve.
    """
    def data_of(r: dict) -> tuple:
        return (r.get("dataset_key"), r["pool_size"], r["test_size"])

    if not results:
        return
    # Variants may differ in image size (another prepared copy of the same pool): each its own majority.
    counts: dict[Any, Counter] = defaultdict(Counter)
    for r in results.values():
        counts[r.get("variant")][data_of(r)] += 1
    for index in sorted(results):
        seen = data_of(results[index])
        majority = counts[results[index].get("variant")].most_common(1)[0][0]
        if seen != majority:
            problems.append(
                f"{join_uri(storage.uri, result_key(index))}: ran on another pool or test set (prepared copy "
                f"{seen[0]}, pool {seen[1]}, test set {seen[2]}) than most results ({majority[0]}, pool "
                f"{majority[1]}, test set {majority[2]}): the dataset changed during the sweep; excluded. Re-run "
                "this index on the current data, or restore the data the others used"
            )
            del results[index]

