"""The trial result as a typed value: `TrialResult`, its JSON form, and the checks a stored one must pass.

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
    dataset_digest     that copy's content digest (sha256, `data.verify`), recorded in its facts when written
    accelerator, package_version, config_hash, finished_at
    tensorflow_version, gpu_model   (gpu_model: the device name, or null on CPU)
    variant            the variant's name; only in a sweep with `variants`
    sample_groups, pool_groups   groups (patients) drawn and in the pool; only with `dataset.group_column`,
                       both or neither (sample_size then counts the drawn groups' images)

A stored file may be anything (see DESIGN.md, untrusted input): `parse_result`
reads its bytes with bounds, and `TrialResult.from_json` refuses whatever this
sweep's trial could not have written, with a message that says why.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from . import __version__
from .config import MAX_CLASSES, METRICS, SweepConfig
from .plan import TrialSpec, trial_spec
from .sampling import drawn_size, group_sample_bounds
from .text import cut, one_line

RESULT_SCHEMA_VERSION = 1
# Bounds on what a result file may hold. A real result is a few kB, 3 levels deep; anything far past
# these was not written by a trial and must not cost the aggregator its memory or its stack.
MAX_RESULT_BYTES = 16 * 2**20
MAX_RESULT_DEPTH = 16
MAX_COUNT = 10**9  # images in a pool, test set or sample
MAX_SECONDS = 10**8


class RejectedResult(ValueError):
    """One result file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class TrialResult:
    """What one trial measured, with the identity that ties it to its sweep and index.

    The fields are the JSON keys of the schema above. Fields a stored result
    may lack (older or hand-made files) are None; `to_json` leaves them out,
    except `gpu_model`, whose null means "no GPU".
    """

    schema_version: int
    index: int
    split: float
    repetition: int
    seed: int
    backtest: bool
    sampling: str | None
    config_hash: str
    sample_size: int
    test_size: int
    pool_size: int
    class_names: list[str]
    metrics: dict[str, Any]  # METRICS and per_class_recall; a score may be None when undefined
    train_size: int | None = None
    validation_size: int | None = None
    dataset_key: str | None = None
    dataset_digest: str | None = None
    confusion_matrix: list[list[int]] | None = None
    epochs: dict[str, int] | None = None
    timings: dict[str, float] | None = None
    feature_cache: str | None = None
    accelerator: str | None = None
    tensorflow_version: str | None = None
    gpu_model: str | None = None
    package_version: str | None = None
    finished_at: str | None = None
    variant: str | None = None  # only in a sweep with variants
    sample_groups: int | None = None  # only with dataset.group_column: the groups drawn (sample_size: their images)
    pool_groups: int | None = None  # only with dataset.group_column: the pool's groups

    @classmethod
    def from_json(cls, data: dict[str, Any], cfg: SweepConfig, expected_hash: str | None = None) -> TrialResult:
        """The result in `data`, once it is shown that a trial of `cfg` could have written it.

        Checks run in a fixed order and the first failure wins: schema version, config hash,
        index and split; sample size and metrics; class names and recalls; the other fields'
        types and ranges, and the sizes against the plan.

        Args:
            data: a parsed result object (see `parse_result`).
            cfg: the sweep the result must belong to.
            expected_hash: `cfg.trial_hash()`, when the caller has it already. Defaults to None
                (computed here).

        Returns:
            The typed result; keys outside the schema are not kept.

        Raises:
            RejectedResult: saying what is wrong with `data` and what to do about it.
        """
        spec = _check_identity(cfg, data, cfg.trial_hash() if expected_hash is None else expected_hash)
        _check_metrics(cfg, data)
        _check_classes(data)
        _check_fields(cfg, data, spec)
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, Any]:
        """The result as the JSON object a trial writes (`encode_result` turns it into bytes)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None or f.name == "gpu_model":
                out[f.name] = value
        return out


def parse_result(data: bytes) -> dict[str, Any]:
    """A stored result's bytes as a JSON object with every string safe to print; raises RejectedResult."""
    if len(data) > MAX_RESULT_BYTES:
        raise RejectedResult(f"is {len(data)} bytes, far larger than any trial result (at most {MAX_RESULT_BYTES})")
    try:
        result = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RejectedResult("is not UTF-8 text (a corrupt or foreign file)") from None
    except json.JSONDecodeError as exc:
        raise RejectedResult(f"is not valid JSON ({exc.msg} at line {exc.lineno}); the write was cut short or the "
                             "file was edited") from None
    except RecursionError:
        raise RejectedResult("is JSON nested too deeply to be a trial result") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise RejectedResult(f"is not a usable JSON result ({cut(str(exc))})") from None
    if not isinstance(result, dict):
        raise RejectedResult(f"holds a JSON {type(result).__name__}, not a result object")
    return _safe_strings(result, 0)


def _safe_strings(value: Any, depth: int) -> Any:
    """The parsed result with every string safe to encode, draw and print; refuses deep nesting."""
    if depth > MAX_RESULT_DEPTH:
        raise RejectedResult(f"is nested more than {MAX_RESULT_DEPTH} levels deep, unlike any trial result")
    if isinstance(value, str):
        # A lone surrogate (a non-UTF-8 folder name) cannot be drawn or written; a newline or a bidi
        # control in a class name would forge a line of report.md or reorder the plot's legend.
        return one_line(value)
    if isinstance(value, dict):
        return {one_line(k): _safe_strings(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe_strings(v, depth + 1) for v in value]
    return value


def finite(value: Any) -> bool:
    """Whether `value` is a real, finite number (not a bool, not NaN, not an integer past any float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        return False


# ---------------------------------------------------------------- the checks, in order


def _check_identity(cfg: SweepConfig, r: dict, expected_hash: str) -> TrialSpec:
    """Schema version, sweep (config hash), index and split; returns the planned trial of the index."""
    version = r.get("schema_version")
    if version != RESULT_SCHEMA_VERSION:
        raise RejectedResult(
            f"has schema_version {cut(version)}, but samplesize {__version__} reads version {RESULT_SCHEMA_VERSION}; "
            "re-run this trial, or aggregate with the samplesize version that wrote it"
        )
    if r.get("config_hash") != expected_hash:
        raise RejectedResult(
            f"belongs to another sweep (config hash {cut(r.get('config_hash'))}, this sweep's is {expected_hash!r}); "
            "move it out of trials/ and re-run its index, or aggregate with the config it was run with"
        )
    index = r.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < cfg.trial_count:
        raise RejectedResult(f"has index {cut(index)}, outside this sweep's indexes 0..{cfg.trial_count - 1}")
    spec = trial_spec(cfg, index)
    if not finite(r.get("split")) or abs(r["split"] - spec.split) > 1e-9:
        raise RejectedResult(f"says split {cut(r.get('split'))}, but index {index} runs split {spec.split:g} in this sweep")
    return spec


def _check_metrics(cfg: SweepConfig, r: dict) -> None:
    """A positive sample size, the sweep's metric, and every score a number in [0, 1]."""
    if not finite(r.get("sample_size")) or r["sample_size"] <= 0:
        raise RejectedResult(f"has sample_size {cut(r.get('sample_size'))}; it must be a positive number")
    metrics = r.get("metrics")
    if not isinstance(metrics, dict):
        raise RejectedResult("has no metrics object")
    if cfg.metric not in metrics:
        raise RejectedResult(f"has no {cfg.metric} metric (the sweep's metric)")
    for name in METRICS:
        value = metrics.get(name)
        if name == cfg.metric or value is not None:
            if not finite(value) or not 0 <= value <= 1:
                raise RejectedResult(
                    f"has {name} = {cut(value)}; metrics must be numbers in [0, 1] (NaN means the trial went wrong)"
                )


def _check_classes(r: dict) -> None:
    """Distinct class names, and a recall in [0, 1] (or null) for some of them only."""
    names = r.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise RejectedResult("has no list of class_names")
    recall = r["metrics"].get("per_class_recall", {})
    if not isinstance(recall, dict):
        raise RejectedResult("has a per_class_recall that is not an object")
    for name, value in recall.items():
        if value is None:
            continue  # a class with no test image has no recall
        if not finite(value) or not 0 <= value <= 1:
            raise RejectedResult(f"has per-class recall {cut(value)} for class {cut(name)}; it must be a number in [0, 1]")
    k = len(names)
    if k > MAX_CLASSES:
        raise RejectedResult(f"has {k} class_names, more than the {MAX_CLASSES} classes a dataset may have")
    known = set(names)  # a set: 100,000 names checked against a list took minutes
    if len(known) != k:
        raise RejectedResult(f"has {k} class_names with repeats")
    unknown = [c for c in recall if c not in known]
    if unknown:
        raise RejectedResult(f"has per_class_recall for {cut(unknown[:3])}, which are not among its class_names")


def _check_fields(cfg: SweepConfig, r: dict, spec: TrialSpec) -> None:
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


def _check_planned_trial(r: dict, spec: TrialSpec) -> None:
    """Variant, repetition, seed and backtest flag as the plan has them for the index."""
    if r.get("variant") != spec.variant:
        raise RejectedResult(f"has variant {cut(r.get('variant'))}, but index {spec.index} runs variant "
                             f"{spec.variant!r} in this sweep")
    for key, expected in (("repetition", spec.repetition), ("seed", spec.seed), ("backtest", spec.backtest)):
        if r.get(key) != expected or isinstance(r.get(key), bool) != isinstance(expected, bool):
            raise RejectedResult(
                f"has {key} {cut(r.get(key))}, but index {spec.index} runs {key} {expected} in this sweep"
            )


def _count(r: dict, key: str, low: int, high: int) -> int:
    value = r.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RejectedResult(f"has {key} {cut(value)}; it must be a whole number in [{low}, {high}]")
    return value


def _check_sizes(cfg: SweepConfig, r: dict, spec: TrialSpec, k: int) -> int:
    """Pool, test, sample, train and validation sizes that the trial's split could draw; returns the test size."""
    pool = _count(r, "pool_size", k, MAX_COUNT)
    test = _count(r, "test_size", k, MAX_COUNT)  # every class has a test image
    sample = _count(r, "sample_size", 1, pool)
    by_group = "sample_groups" in r or "pool_groups" in r
    if by_group != (cfg.dataset.group_column is not None):  # one unit per sweep: the curve is fitted in it
        raise RejectedResult("records sample_groups, but this sweep has no dataset.group_column" if by_group else
                             f"has no sample_groups, but this sweep draws whole groups (dataset.group_column "
                             f"{cut(cfg.dataset.group_column)}); rerun the trial")
    if by_group:
        return _check_group_sizes(r, spec, k, pool, test, sample)
    drawn = drawn_size(spec.split, pool, k, cfg.sampling)
    if cfg.sampling == "stratified" and sample != drawn:
        raise RejectedResult(
            f"has sample_size {sample}, but split {spec.split:g} of a pool of {pool} draws {drawn} in this sweep"
        )
    if sample > drawn:
        raise RejectedResult(
            f"has sample_size {sample}, more than the {drawn} draws of split {spec.split:g} from a pool of {pool}"
        )
    _check_train_validation(r, drawn, "its split draws")
    return test


def _check_group_sizes(r: dict, spec: TrialSpec, k: int, pool: int, test: int, sample: int) -> int:
    """A result drawn by group: both group counts, the groups the split draws, and whole images beside them."""
    for key in ("sample_groups", "pool_groups"):
        if key not in r:
            raise RejectedResult("has sample_groups or pool_groups without the other; a result drawn by group "
                                 "records both")
    groups = _count(r, "pool_groups", 1, pool)
    drawn = _count(r, "sample_groups", 1, min(groups, sample))
    fewest, most = group_sample_bounds(spec.split, groups, k)
    if not fewest <= drawn <= most:
        raise RejectedResult(f"has sample_groups {drawn}, but split {spec.split:g} of a pool of {groups} groups "
                             f"draws {fewest}" + (f" to {most}" if most != fewest else "") + " in this sweep")
    _check_train_validation(r, sample, "its sample_size is")
    return test


def _check_train_validation(r: dict, total: int, what: str) -> None:
    """Optional train and validation sizes that add up to the images the trial drew."""
    if "train_size" in r or "validation_size" in r:
        train = _count(r, "train_size", 1, total)
        val = _count(r, "validation_size", 0, total)
        if train + val != total:
            raise RejectedResult(f"has train_size {train} + validation_size {val}, but {what} {total}")


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
        raise RejectedResult(
            f"has a confusion_matrix that is not {k}x{k} whole counts adding up to at most test_size {test}"
        )
    # a trial's scores and its matrix come from the same predictions, so the scores follow from any matrix it
    # writes: a forger cannot skip the check by leaving test images out of the counts
    _check_scores_against(r, matrix)


METRIC_TOLERANCE = 1e-6  # a trial's scores and its matrix come from the same predictions: only float rounding


def _scores_from(matrix: list[list[int]]) -> tuple[float, float | None, list[float | None]]:
    """Accuracy, balanced accuracy (over the tested classes) and each class's recall, from a confusion matrix."""
    rows = [sum(row) for row in matrix]
    recalls = [row[i] / n if n else None for i, (row, n) in enumerate(zip(matrix, rows))]
    tested = [x for x in recalls if x is not None]
    accuracy = sum(row[i] for i, row in enumerate(matrix)) / sum(rows)
    return accuracy, (sum(tested) / len(tested) if tested else None), recalls


def _check_scores_against(r: dict, matrix: list[list[int]]) -> None:
    """Accuracy, balanced accuracy and each class's recall as the result's own confusion matrix gives them.

    A forged 0.99 beside a matrix that says 0.10 to 0.42 must not become a point on the curve.
    """
    accuracy, balanced, recalls = _scores_from(matrix)
    metrics = r["metrics"]
    recall = metrics.get("per_class_recall") or {}
    pairs = [("accuracy", metrics.get("accuracy"), accuracy),
             ("balanced_accuracy", metrics.get("balanced_accuracy"), balanced)]
    pairs += [(f"recall of {cut(name)}", recall.get(name, value), value) for name, value in zip(r["class_names"], recalls)]
    for name, claim, value in pairs:
        if claim is None and (value is None or not name.startswith("recall")):
            continue  # an absent score: only a recall's null must match a class without test images
        if value is None or claim is None or abs(claim - value) > METRIC_TOLERANCE:
            shown = "none" if value is None else f"{value:.4f}"
            raise RejectedResult(
                f"states {name} {cut(claim)}, but its own confusion_matrix gives {shown}: the scores were edited "
                "or the file is corrupt; excluded. Re-run this index"
            )


def _check_records(r: dict) -> None:
    """Timings and epochs as bounded numbers, and the descriptive fields as short texts."""
    for key in ("timings", "epochs"):
        section = r.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not all(
            finite(v) and 0 <= v <= MAX_SECONDS and (key != "epochs" or isinstance(v, int)) for v in section.values()
        ):
            raise RejectedResult(f"has {key} that are not an object of numbers in [0, {MAX_SECONDS:g}]")
    for key in ("accelerator", "package_version", "feature_cache", "finished_at", "dataset_key", "dataset_digest",
                "sampling"):
        value = r.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 1000):
            raise RejectedResult(f"has {key} of type {type(value).__name__}; it must be a short text")
