"""The sweep's configuration as frozen dataclasses, with every default and the bounds on counts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError

from ..backbones import SMALL_CNN
from ..hashing import content_hash
from ..jsonsafe import json_safe

SAMPLING_MODES = ("stratified", "with_replacement")


AUGMENT_MODES = ("none", "static", "online")


METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc")


FEATURE_CACHE_MODES = ("auto", "off")


MIXED_PRECISION_MODES = ("auto", "on", "off")


SOURCE_KINDS = ("builtin", "folder", "tfds", "csv")


DICOM_FRAMES_MODES = ("first", "refuse")  # a multi-frame DICOM file: its first frame, or skipped
DUPLICATE_MODES = ("error", "drop", "allow")  # dataset.duplicates: what preparing does with identical images


BUILTIN_DATASETS = ("digits",)


# Bounds on counts, checked at load time so that a typo cannot make `plan` run for minutes or
# exhaust memory. A key -> (smallest, largest); for a list, the largest is its length. The chart's
# values.schema.json carries the same numbers (a test keeps them equal).
LIMITS = {
    "seed": (0, 2**32 - 1),  # scikit-learn's and NumPy's legacy seeds are 32-bit
    "repetitions": (1, 1000),
    "splits": (1, 100),
    "backtest_splits": (0, 100),
    "targets": (0, 100),
    "predict_at": (0, 100),
    "dataset.image_size": (8, 1024),
    "training.head_epochs": (1, 10_000),
    "training.fine_tune_epochs": (0, 10_000),
    "training.patience": (1, 10_000),
    "training.batch_size": (1, 65_536),
    "collection.rounds": (1, 100),
}


# Classes a dataset may have: a sample-size sweep fits a recall curve per class, and a result listing
# more was not written by a trial (data/ may refuse such a folder at prepare; results past it are rejected).
MAX_CLASSES = 10_000


MAX_TRIALS = 100_000  # a Kubernetes Indexed Job's largest completions with per-index backoff


MAX_PREDICT_AT = 10**12  # sizes beyond this are not a data-collection plan; floats lose integers past 2**53


SEED_STEP = 1e-6  # plan.trial_seed rounds a split to this step: closer splits would share seeds


MAX_NAME_BYTES = 255  # one path component on common file systems


MAX_PATH_BYTES = 4096 - 128  # PATH_MAX, less room for the keys under the output


MAX_GCS_PREFIX_BYTES = 1024 - 128  # a GCS object name is at most 1024 bytes, less room for the keys


# The csv source's keys and their defaults. A config that leaves them so keeps the dict (sweep.yaml, the trial
# hash, the prepared-data key) it had before they existed.
CSV_DEFAULTS = {"path_column": "path", "label_column": "label", "group_column": None}
# Every dataset key added after results were first written, with its default: left out of the dict when unset.
ADDED_DATASET_DEFAULTS = {**CSV_DEFAULTS, "dicom_frames": "first", "duplicates": "error"}


@dataclass(frozen=True)
class DatasetConfig:
    source: str = "builtin:digits"
    test_fraction: float = 0.2
    image_size: int = 16
    data_dir: str | None = None  # tfds: where prepared copies live (path or gs://)
    download: bool = False  # tfds: allow a (possibly slow) download
    path_column: str = "path"  # csv: the column of image paths
    label_column: str = "label"  # csv: the column of class labels
    group_column: str | None = None  # csv: an optional column (a patient ID), carried with each image
    dicom_frames: str = "first"  # first | refuse (data/dicom.py)
    duplicates: str = "error"  # identical images in the pool and the test set: error | drop | allow

    def unset_added_keys(self) -> dict[str, Any]:
        """The added keys left at their defaults, which `SweepConfig.to_dict` leaves out (sweep.yaml, trial hash)."""
        return {name: value for name, value in ADDED_DATASET_DEFAULTS.items() if getattr(self, name) == value}

    @property
    def kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def location(self) -> str:
        return self.source.split(":", 1)[1]


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = SMALL_CNN
    weights: str = "none"  # imagenet | none | path or gs:// URI of a weights file
    fine_tune_from: str | None = None  # layer name; None skips fine-tuning
    dropout: float = 0.2


@dataclass(frozen=True)
class TrainingConfig:
    head_epochs: int = 30
    fine_tune_epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    patience: int = 8
    validation_fraction: float = 0.2
    augment: str = "none"
    feature_cache: str = "auto"
    mixed_precision: str = "auto"
    xla: bool = False


@dataclass(frozen=True)
class CollectionConfig:
    """What labels and a missed target cost, for the report's collection plan (`curves.plan_collection`).

    None takes the plan's default: a miss costs as much as labelling 100x the pool, and one round
    collects at most 8x what the team has (as far as the calibrated band is trusted)."""

    label_cost: float = 1.0
    miss_cost: float | None = None
    rounds: int = 3
    max_step: float | None = None
    assurance: float = 0.8


@dataclass(frozen=True)
class Variant:
    """One pipeline of a comparison sweep: a name and its overrides of trial keys.

    `overrides` holds only what the entry sets, as sections of plain values
    (`{"model": {"backbone": ...}, "dataset": {"image_size": 32}}`);
    `config` is the variant's trial config, which `build_config` builds and
    checks once (read it with `SweepConfig.trial_config(name)`).
    """

    name: str
    overrides: dict = field(default_factory=dict, hash=False, compare=True)
    # Built and checked once by `load.build_config`; equality and hashing stay those of the entry itself.
    config: SweepConfig | None = field(default=None, hash=False, compare=False, repr=False)

    def describe(self) -> str:
        """What the variant changes, in one line: `model.backbone=mobilenet_v2, dataset.image_size=96`."""
        return ", ".join(f"{s}.{k}={val}" for s, values in self.overrides.items()
                         for k, val in values.items()) or "no overrides"


@dataclass(frozen=True)
class SweepConfig:
    name: str = "demo"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    splits: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    backtest_splits: tuple[float, ...] = (1.0,)
    repetitions: int = 3
    seed: int = 42
    sampling: str = "stratified"
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    metric: str = "balanced_accuracy"
    targets: tuple[float, ...] = (0.9, 0.95, 0.98)
    predict_at: tuple[int, ...] = (2000, 5000)
    collection: CollectionConfig = field(default_factory=CollectionConfig)
    output: str | None = None  # None: runs/<name>
    variants: tuple[Variant, ...] = ()  # empty: one pipeline, the sweep as it always was

    @property
    def output_uri(self) -> str:
        return self.output if self.output else f"runs/{self.name}"

    @property
    def all_splits(self) -> tuple[float, ...]:
        """Every split that runs as trials: fitted splits and backtest splits."""
        return tuple(self.splits) + tuple(self.backtest_splits)

    @property
    def trial_count(self) -> int:
        return len(self.all_splits) * self.repetitions * max(1, len(self.variants))

    @property
    def variant_names(self) -> list[str | None]:
        """The variants in plan order; [None] for a sweep without variants."""
        return [v.name for v in self.variants] or [None]

    def trial_config(self, name: str | None) -> SweepConfig:
        """The config the trials of variant `name` run: the sweep's with its overrides, without `variants`.

        Args:
            name: a variant's name, or None (a sweep without variants), which returns this config itself.

        Returns:
            The variant's trial config, built and checked when the sweep was loaded.

        Raises:
            ConfigError: when the sweep has no variant `name`.
        """
        if name is None:
            return self
        config = self.variant(name).config
        if config is None:  # a bug: a SweepConfig with variants comes from build_config
            raise AssertionError(f"variant {name!r} has no trial config; build the sweep with build_config")
        return config

    def variant(self, name: str) -> Variant:
        """The entry of `variants` named `name`; raises ConfigError when there is none."""
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"variant {name!r} is not in this sweep's variants ({', '.join(v.name for v in self.variants)})")

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(self): it would copy every variant's built trial config too.
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "variants"}
        d = json_safe({k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in values.items()})
        for key in self.dataset.unset_added_keys():
            del d["dataset"][key]
        # A sweep without variants keeps today's dict (and so its trial hash and sweep.yaml).
        if self.variants:
            d["variants"] = [{"name": v.name, **json_safe(v.overrides)} for v in self.variants]
        return d

    def trial_hash(self) -> str:
        """Hash of everything that changes what a trial computes.

        Targets, predict_at, collection, metric, name and output only change the report,
        so a user may edit them and re-aggregate without invalidating results.
        """
        d = self.to_dict()
        for key in ("name", "metric", "targets", "predict_at", "collection", "output"):
            d.pop(key)
        return content_hash(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
