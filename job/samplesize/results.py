"""The trial result's storage: where a trial writes it, once, and how the aggregator loads a sweep's results.

The result itself, its schema and the checks a stored one must pass are in
`trial_result` (`TrialResult`). `load_results(cfg, storage)` reads `trials/`,
keeps the results that belong to this sweep and names every file it rejects
and every index still missing.
"""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import SweepConfig
from .errors import ConfigError, DataError
from .plan import TrialSpec
from .storage import Storage, TooLarge, join_uri
from .text import cut, one_line
from .trial_result import MAX_RESULT_BYTES, RESULT_SCHEMA_VERSION, RejectedResult, TrialResult, finite, parse_result

if TYPE_CHECKING:
    from .data import PreparedDataset

__all__ = [
    "RESULT_SCHEMA_VERSION", "TRIALS_PREFIX", "LoadedResults", "TrialResult", "build_result", "describe_other_data",
    "encode_result", "finite", "load_results", "read_stored_result", "refuse_unusable_result", "refuse_unusable_results",
    "result_key", "results_on_other_data", "trial_identity", "write_result",
]

TRIALS_PREFIX = "trials/"
# A trial file is `trial-*.json` directly under trials/; copies such as
# `trial-00003 (1).json` are read too, so that a duplicate is named, not missed.
_TRIAL_FILE = re.compile(r"^trial-[^/]*\.json$")
_CANONICAL_NAME = re.compile(re.escape(TRIALS_PREFIX) + r"trial-(\d{5,})\.json")
SHOWN = 10  # files a refusal names; the rest are counted


def where(storage: Storage, key: str) -> str:
    """The URI of `key`, on one line: a listed name may hold newlines, `<!--` or bidi controls (see `text.one_line`)."""
    return one_line(join_uri(storage.uri, key))


def result_key(index: int) -> str:
    return f"{TRIALS_PREFIX}trial-{index:05d}.json"


def trial_identity(cfg: SweepConfig, spec: TrialSpec) -> dict[str, Any]:
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
    sample_groups: int | None = None,
    pool_groups: int | None = None,
) -> TrialResult:
    """The result of one trial.

    Args:
        identity: `trial_identity(sweep, spec)`.
        data: the prepared copy the trial ran on (its sizes, class names and key).
        sample_size: distinct labelled examples drawn, validation included.
        train_size: examples trained on.
        validation_size: examples early stopping watched.
        metrics: the test-set scores (`training.evaluate.score_predictions`).
        confusion: the test-set confusion matrix, rows by true class.
        epochs: epochs run per phase.
        clock: perf_counter readings at (start, data loaded, trained, evaluated).
        feature_cache: what came from the feature cache ("used: ..." or "off: <reason>").
        accelerator: the accelerator seen.
        runtime: `tensorflow_version` and `gpu_model` (`training.runtime_versions`).
        sample_groups: the groups (patients) drawn, with `dataset.group_column`. Defaults to None (no groups).
        pool_groups: the pool's groups, with `dataset.group_column`. Defaults to None (no groups).

    Returns:
        The `TrialResult`, stamped with the package version and the time now.
    """
    started, loaded, trained, done = clock
    return TrialResult(
        **identity,
        sample_size=int(sample_size),
        train_size=int(train_size),
        validation_size=int(validation_size),
        test_size=int(len(data.test_labels)),
        pool_size=int(data.pool_size),
        dataset_key=data.key,  # the prepared copy: results from different copies are never fitted together
        dataset_digest=getattr(data, "digest", None),  # its contents: a copy replaced under one key is told apart
        class_names=data.class_names,
        metrics=metrics,
        confusion_matrix=confusion,
        epochs=epochs,
        timings={
            "load_s": round(loaded - started, 3),
            "train_s": round(trained - loaded, 3),
            "evaluate_s": round(done - trained, 3),
            "total_s": round(done - started, 3),
        },
        feature_cache=feature_cache,
        accelerator=accelerator,
        tensorflow_version=runtime["tensorflow_version"],
        gpu_model=runtime["gpu_model"],
        package_version=__version__,
        finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        sample_groups=None if sample_groups is None else int(sample_groups),
        pool_groups=None if pool_groups is None else int(pool_groups),
    )


def results_on_other_data(storage: Storage, dataset_key: str | frozenset[str]) -> dict[str, int]:
    """Finished results that were computed on another prepared copy: {that copy's key: count}.

    A folder changed mid-sweep gets a new prepared copy (its key holds a
    fingerprint of the contents); results from the old and the new copy are
    never fitted together, and `prepare` and `run` say so up front.
    `dataset_key` may be a set: the prepared copies of a sweep's variants.
    """
    current = {dataset_key} if isinstance(dataset_key, str) else set(dataset_key)
    others: dict[str, int] = {}
    for key, size, _ in storage.list_stats(TRIALS_PREFIX):
        if not _CANONICAL_NAME.fullmatch(key):
            continue
        try:
            used = read_stored_result(storage, key, size).get("dataset_key")
        except (FileNotFoundError, RejectedResult):
            continue  # unreadable files are named by aggregate
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
    """A result's JSON object (`TrialResult.to_json`, or a made-up one in tests and benches) as stored bytes."""
    # allow_nan=False: a NaN metric is a bug upstream, never something to store.
    return json.dumps(result, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")


def write_result(storage: Storage, result: TrialResult | dict[str, Any]) -> bool:
    """Write a result at its index's key, once.

    Args:
        storage: the sweep's output.
        result: the trial's result; a plain JSON object is written as it is (tests and
            benches write made-up ones).

    Returns:
        True when written; False when a result for this index already exists.

    Raises:
        ValueError: when the result holds NaN or infinity (a bug upstream, never stored).
    """
    payload = result.to_json() if isinstance(result, TrialResult) else result
    return storage.write_once(result_key(payload["index"]), encode_result(payload))


def read_stored_result(storage: Storage, key: str, size: int | None = None) -> dict[str, Any]:
    """The JSON object at `key`, read with a bound (`MAX_RESULT_BYTES`) and parsed with `parse_result`.

    Args:
        storage: the sweep's output.
        key: a key under trials/.
        size: the object's size from a listing, when known: a larger one is never opened.

    Raises:
        RejectedResult: too large, not JSON, nested too deeply, not an object.
        FileNotFoundError: nothing at `key`.
    """
    if size is not None and size > MAX_RESULT_BYTES:
        raise RejectedResult(f"is {size} bytes, far larger than any trial result (at most {MAX_RESULT_BYTES}); not read")
    try:
        data = storage.read(key, limit=MAX_RESULT_BYTES)
    except TooLarge as exc:
        shown = f"{exc.size} bytes" if exc.size is not None else f"over {MAX_RESULT_BYTES} bytes"
        raise RejectedResult(f"is {shown}, far larger than any trial result (at most {MAX_RESULT_BYTES}); not read")
    return parse_result(data)


def _foreign(storage: Storage, key: str, theirs: Any, mine: str) -> ConfigError:
    return ConfigError(
        f"{where(storage, key)} holds a result made with another sweep config (config_hash {cut(theirs)}, "
        f"this config {mine}): results of two configs cannot be fitted together. Set output "
        f"(sweep.output in the chart) to a new prefix for the changed sweep, or restore the config that made it"
    )


def _unusable(storage: Storage, key: str, problem: str) -> str:
    return f"{where(storage, key)} {problem}"


def check_stored_result(cfg: SweepConfig, storage: Storage, index: int, size: int | None = None) -> str | None:
    """Why the object at `index`'s key is not a usable result of `cfg` (None: it is, or nothing is there).

    Raises:
        ConfigError: it is a result of another config (its config_hash).
    """
    key = result_key(index)
    try:
        data = read_stored_result(storage, key, size)
    except FileNotFoundError:
        return None
    except RejectedResult as exc:
        return _unusable(storage, key, str(exc))
    mine = cfg.trial_hash()
    if "config_hash" in data and data["config_hash"] != mine:
        raise _foreign(storage, key, data["config_hash"], mine)
    try:
        trial = TrialResult.from_json(data, cfg, mine)
    except RejectedResult as exc:
        return _unusable(storage, key, str(exc))
    if trial.index != index:
        return _unusable(storage, key, f"holds index {trial.index}, not {index}")
    return None


def refuse_unusable_result(cfg: SweepConfig, storage: Storage, index: int) -> None:
    """Raise unless the object at `index`'s key is a valid result of `cfg` (or nothing is there).

    A trial whose key holds such a result has nothing to do. Anything else
    there (bytes that are not a result, a result that fails its checks) is not
    "done": the aggregator would refuse it and the index could never finish.

    Raises:
        ConfigError: a result of another config is at the key (exit 64).
        DataError: something else that is not a usable result is at the key (exit 65).
    """
    problem = check_stored_result(cfg, storage, index)
    if problem:
        raise DataError(f"{problem}. It is not a result of this sweep, so index {index} is not done: delete it (or "
                        "move it out of trials/), then run the index again")


def refuse_unusable_results(cfg: SweepConfig, storage: Storage) -> None:
    """Before `run` writes anything: refuse results of another config (64), then anything unusable at a result key (65).

    Only `trial-<index>.json` names are results; other files under trials/ (`notes.json`) are not looked at.
    """
    problems: list[str] = []
    foreign: list[ConfigError] = []
    for key, size, _ in storage.list_stats(TRIALS_PREFIX):
        index = _index_in_name(key)
        if index is None:
            continue
        try:
            problem = check_stored_result(cfg, storage, index, size) if index < cfg.trial_count else (
                _unusable(storage, key, f"is named for index {index}, outside this sweep's indexes 0..{cfg.trial_count - 1}"))
        except ConfigError as exc:
            foreign.append(exc)
            continue
        if problem:
            problems.append(problem)
    problems += [f"{where(storage, key)} is not a regular file (a folder?)" for key in _non_files(storage)]
    if foreign:
        raise ConfigError(f"{len(foreign)} result(s) under trials/ were made with another sweep config; nothing was "
                          f"run and sweep.yaml is unchanged. For example: {foreign[0]}")
    if problems:
        shown = "; ".join(problems[:SHOWN]) + (f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else "")
        raise DataError(f"{len(problems)} object(s) at result keys are not usable results of this sweep, and their "
                        f"indexes could never finish: {shown}. Nothing was run: delete them (or move them out of "
                        "trials/), then run again")


def _non_files(storage: Storage) -> list[str]:
    """Result keys that hold a folder (or another non-file): locally from the folder, on GCS from deeper keys."""
    listed = getattr(storage, "non_files", None)
    keys = set(listed(TRIALS_PREFIX)) if listed else set()
    for key in storage.list(TRIALS_PREFIX):
        head = key[len(TRIALS_PREFIX):].split("/", 1)[0]
        if "/" in key[len(TRIALS_PREFIX):] and _TRIAL_FILE.match(head):
            keys.add(TRIALS_PREFIX + head)
    return sorted(k for k in keys if _TRIAL_FILE.match(k[len(TRIALS_PREFIX):]))


# ---------------------------------------------------------------- loading


@dataclass
class LoadedResults:
    """Usable results by index, indexes without one, and why files were rejected.

    `results` holds each usable file's JSON object as read (the summary reads
    those); `trials` the same results typed, filled by `load_results`.
    """

    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    trials: dict[int, TrialResult] = field(default_factory=dict)

    def exclude(self, index: int, problem: str) -> None:
        """Drop the result of `index`, saying why."""
        self.problems.append(problem)
        self.results.pop(index, None)
        self.trials.pop(index, None)


def load_results(cfg: SweepConfig, storage: Storage) -> LoadedResults:
    """Read and validate every result under `trials/`.

    Args:
        cfg: the sweep whose results to load.
        storage: its output.

    Returns:
        The usable results by index, every index without one (`missing`), and
        a line per rejected file (`problems`). A file is rejected when it is not
        valid JSON, has another schema_version, comes from another sweep (config
        hash), has a missing or non-finite metric, holds an index out of range or
        one that does not match its name, duplicates an index, lists other class
        names than the rest, or ran on another pool or test set than the rest.

    Raises:
        TransientError: when the output cannot be listed or read (a storage outage; retried).
        AccessError: when the output may not be read.
    """
    expected_hash = cfg.trial_hash()
    problems: list[str] = []
    by_index: dict[int, list[tuple[str, dict, TrialResult]]] = defaultdict(list)
    for key, size, _ in storage.list_stats(TRIALS_PREFIX):
        name = key[len(TRIALS_PREFIX):]
        if not _TRIAL_FILE.match(name):
            continue  # temp files, notes, caches: not results
        try:
            data = read_stored_result(storage, key, size)
            trial = TrialResult.from_json(data, cfg, expected_hash)
        except FileNotFoundError:
            continue  # removed between list and read: as if never listed
        except RejectedResult as exc:
            problems.append(f"{where(storage, key)}: {exc}; excluded")
            continue
        by_index[trial.index].append((key, data, trial))
    problems += [f"{where(storage, key)}: is not a regular file (a folder?); excluded. Remove it, then run its index "
                 "again" for key in _non_files(storage)]

    loaded = LoadedResults(problems=problems)
    for index, found in sorted(by_index.items()):
        canonical = result_key(index)
        keys = sorted(k for k, _, _ in found)
        for key, data, trial in found:
            if key == canonical:
                loaded.results[index], loaded.trials[index] = data, trial
            else:
                problems.append(f"{where(storage, key)}: {_misnamed(key, index, canonical in keys)}")

    _drop_inconsistent_classes(storage, loaded)
    _drop_other_datasets(storage, loaded)
    loaded.missing = [i for i in range(cfg.trial_count) if i not in loaded.results]
    return loaded


def _misnamed(key: str, index: int, canonical_exists: bool) -> str:
    """Why a result for `index` at another key than its own is not used."""
    canonical = result_key(index)
    named_for = _index_in_name(key)
    text = f"holds index {index} but " + (
        f"is named for index {named_for}" if named_for is not None else f"is not named {canonical}"
    )
    if canonical_exists:
        return text + f"; it duplicates {canonical}, which is used; excluded (copies are never averaged). Delete the copy."
    return text + f"; excluded. Rename it to {canonical} if it is the genuine result."


def _index_in_name(key: str) -> int | None:
    match = _CANONICAL_NAME.fullmatch(key)
    return int(match.group(1)) if match else None


def _drop_inconsistent_classes(storage: Storage, loaded: LoadedResults) -> None:
    """Keep only results that list the majority's class names: others saw another dataset."""
    if not loaded.trials:
        return
    counts = Counter(tuple(t.class_names) for t in loaded.trials.values())
    majority = counts.most_common(1)[0][0]
    for index in sorted(loaded.trials):
        names = tuple(loaded.trials[index].class_names)
        if names != majority:
            loaded.exclude(index,
                f"{where(storage, result_key(index))}: lists {len(names)} classes {cut(list(names[:5]))}, "
                f"but most results list {len(majority)} classes {cut(list(majority[:5]))}; the dataset changed "
                "between trials; excluded"
            )


def _drop_other_datasets(storage: Storage, loaded: LoadedResults) -> None:
    """Keep only results on the majority's pool and test set: scores on other test sets are not comparable.

    A folder changed mid-sweep (with the cache deleted, or a new fingerprint)
    gives later trials another prepared copy; fitting both would mix two
    measurements into one curve.
    """
    def data_of(t: TrialResult) -> tuple:
        # the digest tells apart two copies under one key (a copy replaced in a shared cache/)
        return (t.dataset_key, t.pool_size, t.test_size, t.dataset_digest)

    if not loaded.trials:
        return
    # Variants may differ in image size (another prepared copy of the same pool): each its own majority.
    counts: dict[Any, Counter] = defaultdict(Counter)
    for t in loaded.trials.values():
        counts[t.variant][data_of(t)] += 1
    for index in sorted(loaded.trials):
        trial = loaded.trials[index]
        seen = data_of(trial)
        majority = counts[trial.variant].most_common(1)[0][0]
        if seen != majority:
            loaded.exclude(index,
                f"{where(storage, result_key(index))}: ran on another pool or test set (prepared copy "
                f"{cut(seen[0])}, digest {cut(seen[3])}, pool {seen[1]}, test set {seen[2]}) than most results "
                f"({cut(majority[0])}, digest {cut(majority[3])}, pool {majority[1]}, test set {majority[2]}): the "
                "dataset changed during the sweep; excluded. Re-run "
                "this index on the current data, or restore the data the others used"
            )
