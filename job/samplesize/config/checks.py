"""Checks of a built config: the bounds in LIMITS, then cross-field rules; each message names the key and what is allowed."""

from __future__ import annotations

import re
from typing import Any, Iterable

from ..backbones import APPLICATIONS, BACKBONE_NAMES, SMALL_CNN
from ..errors import ConfigError
from ..text import cut, unknown_scheme
from .schema import (
    AUGMENT_MODES,
    DUPLICATE_MODES,
    BUILTIN_DATASETS,
    DICOM_FRAMES_MODES,
    FEATURE_CACHE_MODES,
    LIMITS,
    MAX_GCS_PREFIX_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    MAX_PREDICT_AT,
    MAX_TRIALS,
    METRICS,
    MIXED_PRECISION_MODES,
    SAMPLING_MODES,
    SEED_STEP,
    SOURCE_KINDS,
    CSV_DEFAULTS,
    CollectionConfig,
    DatasetConfig,
    ModelConfig,
    SweepConfig,
    TrainingConfig,
)


def _one_of(key: str, value: Any, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _in_range(key: str, value: float, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if not (ok_low and ok_high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{key}: {value!r} is outside {interval}")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_config(cfg: SweepConfig) -> None:
    """Cross-field validation; each message names the key."""
    if not _NAME.match(cfg.name):
        raise ConfigError(f"name: {cfg.name!r} must be 1-63 letters, digits, '.', '_' or '-' (it names folders and Jobs)")
    _check_dataset(cfg.dataset)
    _check_splits(cfg)
    _check_limits(cfg)
    _check_sweep(cfg)
    _check_model(cfg.model, cfg.dataset.image_size)
    _check_training(cfg.training)
    _check_collection(cfg.collection)
    _check_trial_count(cfg)
    _check_seed_steps(cfg)
    _check_output(cfg.output_uri)


def _check_dataset(dataset: DatasetConfig) -> None:
    kind = dataset.kind if ":" in dataset.source else ""
    _one_of("dataset.source (the part before ':')", kind, SOURCE_KINDS)
    if not dataset.location:
        raise ConfigError(
            f"dataset.source: {dataset.source!r} names no dataset; write builtin:digits, folder:<path>, "
            "csv:<path to a CSV> or tfds:<name>"
        )
    if kind == "builtin":
        _one_of("dataset.source builtin name", dataset.location, BUILTIN_DATASETS)
    _in_range("dataset.test_fraction", dataset.test_fraction, 0, 1, low_open=True, high_open=True)
    _one_of("dataset.dicom_frames", dataset.dicom_frames, DICOM_FRAMES_MODES)
    _check_csv_columns(dataset, kind)
    _one_of("dataset.duplicates", dataset.duplicates, DUPLICATE_MODES)


MAX_COLUMN_CHARS = 255  # a CSV header's column name; a longer one is a pasted row, not a name


def _check_csv_columns(dataset: DatasetConfig, kind: str) -> None:
    """The csv keys: set only for a csv: source, each a column name, no column named twice."""
    if kind != "csv":
        changed = [key for key in CSV_DEFAULTS if key not in dataset.unset_added_keys()]
        if changed:
            raise ConfigError(f"dataset.{changed[0]}: applies only to a csv: source (dataset.source is "
                              f"{cut(dataset.source)}); remove it, or set dataset.source: csv:<path to a CSV>")
        return
    named: dict[str, str] = {}
    for key in CSV_DEFAULTS:
        column = getattr(dataset, key)
        if column is None:
            continue
        if not column.strip() or len(column) > MAX_COLUMN_CHARS or column != column.strip():
            raise ConfigError(f"dataset.{key}: {cut(column)} is not a column name; give the header's name of the "
                              f"column, 1-{MAX_COLUMN_CHARS} characters without spaces around it")
        if column in named:
            raise ConfigError(f"dataset.{key}: {cut(column)} is also dataset.{named[column]}; each names its own column")
        named[column] = key


def _check_splits(cfg: SweepConfig) -> None:
    """Splits and backtest splits: fractions in (0, 1], each unique, the two lists disjoint."""
    for key, values in (("splits", cfg.splits), ("backtest_splits", cfg.backtest_splits)):
        for v in values:
            _in_range(key, v, 0, 1, low_open=True, high_open=False)
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(f"{key}: {dupes} appear more than once; each split must be unique")
    both = sorted(set(cfg.splits) & set(cfg.backtest_splits))
    if both:
        raise ConfigError(f"backtest_splits: {both} are also in splits; a backtest split must be left out of the fit")


def _check_sweep(cfg: SweepConfig) -> None:
    """Sampling and what the report is asked for."""
    _one_of("sampling", cfg.sampling, SAMPLING_MODES)
    _one_of("metric", cfg.metric, METRICS)
    for t in cfg.targets:
        _in_range("targets", t, 0, 1, low_open=True, high_open=True)
    for n in cfg.predict_at:
        if n < 1:
            raise ConfigError(f"predict_at: {n} must be a positive sample size")
        if n > MAX_PREDICT_AT:
            raise ConfigError(f"predict_at: {n} is too large; at most {MAX_PREDICT_AT} is allowed")


def _check_model(model: ModelConfig, image_size: int) -> None:
    _one_of("model.backbone", model.backbone, BACKBONE_NAMES)
    if model.backbone in APPLICATIONS and image_size < APPLICATIONS[model.backbone].min_size:
        raise ConfigError(
            f"dataset.image_size: {image_size} is too small for model.backbone {model.backbone}; "
            f"use at least {APPLICATIONS[model.backbone].min_size}"
        )
    check_weights_loadable(model)
    if model.backbone == SMALL_CNN and model.fine_tune_from:
        raise ConfigError(
            f"model.fine_tune_from: {model.fine_tune_from!r} has no meaning for small_cnn, which trains every layer "
            f"in one phase; remove it or choose a keras.applications backbone"
        )
    if not model.weights:
        raise ConfigError("model.weights: empty; use imagenet, none, or a path or gs:// URI to a weights file")
    _in_range("model.dropout", model.dropout, 0, 1, low_open=False, high_open=True)


def check_weights_loadable(model: ModelConfig) -> None:
    """Refuse weights the backbone cannot load: small_cnn trains from scratch, so a weights file (or
    imagenet) would be ignored while the run facts name it. Checked at load, so `plan` says so too."""
    if model.backbone == SMALL_CNN and model.weights != "none":
        raise ConfigError(
            f"model.weights: {model.weights[:80]!r}: small_cnn trains from scratch and cannot load weights; set "
            "model.weights: none, or choose a keras.applications backbone for the file"
        )


def _check_training(training: TrainingConfig) -> None:
    for key in ("learning_rate", "fine_tune_learning_rate"):
        _in_range(f"training.{key}", getattr(training, key), 0, 1, low_open=True, high_open=False)
    _in_range("training.validation_fraction", training.validation_fraction, 0, 1, low_open=True, high_open=True)
    _one_of("training.augment", training.augment, AUGMENT_MODES)
    _one_of("training.feature_cache", training.feature_cache, FEATURE_CACHE_MODES)
    _one_of("training.mixed_precision", training.mixed_precision, MIXED_PRECISION_MODES)


def _check_collection(collection: CollectionConfig) -> None:
    _in_range("collection.label_cost", collection.label_cost, 0, 1e15, low_open=True, high_open=False)
    if collection.miss_cost is not None:
        _in_range("collection.miss_cost", collection.miss_cost, 0, 1e18, low_open=False, high_open=False)
    if collection.max_step is not None:
        _in_range("collection.max_step", collection.max_step, 1, 1000, low_open=True, high_open=False)
    _in_range("collection.assurance", collection.assurance, 0, 1, low_open=True, high_open=True)


def _check_limits(cfg: SweepConfig) -> None:
    """Every bound in LIMITS: a count (or a list's length) below its least, or a stray digit past its most."""
    for dotted, (low, high) in LIMITS.items():
        value: Any = cfg
        for part in dotted.split("."):
            value = getattr(value, part)
        if isinstance(value, tuple):
            _check_length(dotted, len(value), low, high)
        elif value < low:
            raise ConfigError(f"{dotted}: {value} must be {'zero or more' if low == 0 else f'at least {low}'}")
        elif value > high:
            raise ConfigError(f"{dotted}: {value} is too large; at most {high} is allowed")


def _check_length(dotted: str, n: int, low: int, high: int) -> None:
    if n < low:
        shown = "the list is empty" if n == 0 else f"{n} entries"
        raise ConfigError(f"{dotted}: {shown}; give at least {low} entr{'y' if low == 1 else 'ies'}")
    if n > high:
        raise ConfigError(f"{dotted}: {n} entries; at most {high} are allowed")


def _check_trial_count(cfg: SweepConfig) -> None:
    if cfg.trial_count > MAX_TRIALS:
        per = f" x {len(cfg.variants)} variants" if cfg.variants else ""
        raise ConfigError(
            f"repetitions: {len(cfg.all_splits)} splits x {cfg.repetitions} repetitions{per} = {cfg.trial_count} trials; "
            f"at most {MAX_TRIALS} (an Indexed Job's limit) are allowed"
        )


def _check_seed_steps(cfg: SweepConfig) -> None:
    """Splits closer than the seed's rounding step would draw identical subsamples."""
    by_step: dict[int, float] = {}
    for split in cfg.all_splits:
        step = int(round(split / SEED_STEP))
        other = by_step.setdefault(step, split)
        if other != split:
            raise ConfigError(
                f"splits: {other!r} and {split!r} differ by less than {SEED_STEP:g}, so their trials get the same "
                "seeds and subsamples; remove one"
            )


def _check_output(uri: str) -> None:
    """Refuse an output path the file system or GCS cannot hold, before any work (not Errno 36 later)."""
    problem = unknown_scheme(uri)
    if problem:
        raise ConfigError(f"output: {problem}")
    if uri.startswith("gs://"):
        if len(uri.encode("utf-8", "surrogateescape")) > MAX_GCS_PREFIX_BYTES:
            raise ConfigError(
                f"output: the gs:// URI is {len(uri.encode('utf-8', 'surrogateescape'))} bytes long; GCS object names "
                f"are at most 1024 bytes, so keep it under {MAX_GCS_PREFIX_BYTES}"
            )
        return
    import os

    path = os.path.abspath(uri)
    for part in path.split(os.sep):
        size = len(os.fsencode(part))
        if size > MAX_NAME_BYTES:
            raise ConfigError(
                f"output: the folder name {part[:40]!r}... is {size} bytes long; file systems allow "
                f"{MAX_NAME_BYTES} bytes per name; choose a shorter output"
            )
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ConfigError(f"output: the path is {len(os.fsencode(path))} bytes long; keep it under {MAX_PATH_BYTES}")
