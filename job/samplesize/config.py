"""Load and validate `sweep.yaml` into frozen dataclasses, once, at the edge.

Every key has a default: an empty config is the built-in demo sweep. Errors
name the dotted key, the bad value and what is allowed, and are raised before
any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .backbones import APPLICATIONS, BACKBONE_NAMES, SMALL_CNN
from .errors import ConfigError
from .hashing import content_hash
from .jsonsafe import json_safe

SAMPLING_MODES = ("stratified", "with_replacement")
AUGMENT_MODES = ("none", "static", "online")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc")
FEATURE_CACHE_MODES = ("auto", "off")
MIXED_PRECISION_MODES = ("auto", "on", "off")
SOURCE_KINDS = ("builtin", "folder", "tfds")
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
}
MAX_TRIALS = 100_000  # a Kubernetes Indexed Job's largest completions with per-index backoff
MAX_PREDICT_AT = 10**12  # sizes beyond this are not a data-collection plan; floats lose integers past 2**53
SEED_STEP = 1e-6  # plan.trial_seed rounds a split to this step: closer splits would share seeds
MAX_NAME_BYTES = 255  # one path component on common file systems
MAX_PATH_BYTES = 4096 - 128  # PATH_MAX, less room for the keys under the output
MAX_GCS_PREFIX_BYTES = 1024 - 128  # a GCS object name is at most 1024 bytes, less room for the keys


@dataclass(frozen=True)
class DatasetConfig:
    source: str = "builtin:digits"
    test_fraction: float = 0.2
    image_size: int = 16
    data_dir: str | None = None  # tfds: where prepared copies live (path or gs://)
    download: bool = False  # tfds: allow a (possibly slow) download

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
class Variant:
    """One pipeline of a comparison sweep: a name and its overrides of trial keys.

    `overrides` holds only what the entry sets, as sections of plain values
    (`{"model": {"backbone": ...}, "dataset": {"image_size": 32}}`); the
    `variants` section below validates them and builds the variant's trial config.
    """

    name: str
    overrides: dict = field(default_factory=dict, hash=False, compare=True)


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

    def to_dict(self) -> dict[str, Any]:
        d = json_safe(dataclasses.asdict(self))
        # A sweep without variants keeps today's dict (and so its trial hash and sweep.yaml).
        d.pop("variants")
        if self.variants:
            d["variants"] = [{"name": v.name, **json_safe(v.overrides)} for v in self.variants]
        return d

    def trial_hash(self) -> str:
        """Hash of everything that changes what a trial computes.

        Targets, predict_at, metric, name and output only change the report, so
        a user may edit them and re-aggregate without invalidating results.
        """
        d = self.to_dict()
        for key in ("name", "metric", "targets", "predict_at", "output"):
            d.pop(key)
        return content_hash(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> SweepConfig:
    """Read `path` (or nothing: the demo), apply `--set key=value` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; pass --config with the path to your sweep.yaml")
        raw = parse_yaml(_read_utf8(p), source=str(p))
    for item in overrides:
        apply_override(raw, item)
    return build_config(raw)


def _read_utf8(p: Path) -> str:
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8 "
            "(for example `iconv -f latin1 -t utf-8`)"
        ) from None


class _DuplicateKey(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (a !!python tag is an error, never code) that refuses a key given twice.

    PyYAML keeps the last value silently; in a sweep that hides a typo's effect.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges are overridden on purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if first != line:
                raise _DuplicateKey(f"key {key!r} is given twice (lines {first} and {line}); keep one")
        return super().construct_mapping(node, deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def parse_yaml(text: str, source: str = "config") -> dict[str, Any]:
    try:
        data = _load_yaml(text)
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML (only plain YAML is accepted, no tags): {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a YAML mapping of keys to values, got {type(data).__name__}")
    return data


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `dotted.key=yaml-value` override to the raw mapping in place."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, for example --set repetitions=5")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    try:
        value = _load_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {text!r} is not valid YAML: {exc}") from None
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def build_config(raw: dict[str, Any]) -> SweepConfig:
    """Turn a raw mapping into a validated SweepConfig."""
    values = _convert_section(SweepConfig, raw, prefix="")
    cfg = SweepConfig(**values)
    _check(cfg)
    _check_variants(cfg)
    return cfg


# Keys whose string values YAML 1.1 turns into booleans when unquoted (`feature_cache: off`).
_SWITCHES = {"feature_cache": {False: "off", True: "auto"}, "mixed_precision": {False: "off", True: "on"}}

_SECTIONS = {"dataset": DatasetConfig, "model": ModelConfig, "training": TrainingConfig}


def _convert_section(cls: type, raw: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _refuse_unknown_keys(raw, fields, prefix)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key = prefix + name
        if name == "variants" and cls is SweepConfig:
            out[name] = parse_variants(value)
        elif name in _SECTIONS and cls is SweepConfig:
            out[name] = _SECTIONS[name](**_convert_section(_SECTIONS[name], value or {}, key + "."))
        else:
            out[name] = _coerce(key, fields[name], value)
    return out


def _refuse_unknown_keys(raw: dict, fields: dict[str, Any], prefix: str) -> None:
    """Name the first unknown key, with the closest allowed one when there is one."""
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = str(unknown[0])
        hint = difflib.get_close_matches(key, fields, n=1)
        did = f"; did you mean {prefix}{hint[0]}?" if hint else ""
        raise ConfigError(f"unknown key {prefix}{key}{did} Allowed keys here: {', '.join(fields)}")


def _coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    """Coerce a YAML value to the field's declared type, or raise naming the key."""
    t = str(f.type)
    if "tuple[float" in t:
        return tuple(_number(key, v, float) for v in _as_list(key, value))
    if "tuple[int" in t:
        return tuple(_number(key, v, int) for v in _as_list(key, value))
    if value is None:
        if "None" in t:
            return None
        raise ConfigError(f"{key} must be set, got null")
    if t.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if t.startswith("int"):
        return _number(key, value, int)
    if t.startswith("float"):
        return _number(key, value, float)
    if t.startswith("str"):
        return _string(key, f.name, value)
    raise AssertionError(f"unhandled field type {t} for {key}")


def _string(key: str, name: str, value: Any) -> str:
    """A string field; YAML's bare off/on (read as booleans) become the switch's words."""
    if isinstance(value, bool) and name in _SWITCHES:
        return _SWITCHES[name][value]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return str(value)


def _as_list(key: str, value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    return value


def _number(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}{_number_hint(value)}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key} must be a whole number, got {value!r}")
        return int(value)
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _number_hint(value: Any) -> str:
    """YAML 1.1 reads `1e-1` (an exponent without a point) as text: say what to write instead."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    return f" (text: YAML reads an exponent without a decimal point as a string); write {number!r}"


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


def _check(cfg: SweepConfig) -> None:
    """Cross-field validation; each message names the key."""
    if not _NAME.match(cfg.name):
        raise ConfigError(f"name: {cfg.name!r} must be 1-63 letters, digits, '.', '_' or '-' (it names folders and Jobs)")
    _check_dataset(cfg.dataset)
    _check_splits(cfg)
    _check_sweep(cfg)
    _check_model(cfg.model, cfg.dataset.image_size)
    _check_training(cfg.training)
    _check_limits(cfg)
    _check_seed_steps(cfg)
    _check_output(cfg.output_uri)


def _check_dataset(ds: DatasetConfig) -> None:
    kind = ds.kind if ":" in ds.source else ""
    _one_of("dataset.source (the part before ':')", kind, SOURCE_KINDS)
    if not ds.location:
        raise ConfigError(f"dataset.source: {ds.source!r} names no dataset; write builtin:digits, folder:<path> or tfds:<name>")
    if kind == "builtin":
        _one_of("dataset.source builtin name", ds.location, BUILTIN_DATASETS)
    _in_range("dataset.test_fraction", ds.test_fraction, 0, 1, low_open=True, high_open=True)
    if not 8 <= ds.image_size <= 1024:
        raise ConfigError(f"dataset.image_size: {ds.image_size} is outside [8, 1024] pixels")


def _check_splits(cfg: SweepConfig) -> None:
    """Splits and backtest splits: fractions in (0, 1], each unique, the two lists disjoint."""
    if not cfg.splits:
        raise ConfigError("splits: the list is empty; give at least two fractions in (0, 1], for example [0.1, 0.25, 0.5]")
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
    """Repetitions, seed, sampling and what the report is asked for."""
    if cfg.repetitions < 1:
        raise ConfigError(f"repetitions: {cfg.repetitions} must be at least 1")
    if cfg.seed < 0:
        raise ConfigError(f"seed: {cfg.seed} must be zero or positive")
    _one_of("sampling", cfg.sampling, SAMPLING_MODES)
    _one_of("metric", cfg.metric, METRICS)
    for t in cfg.targets:
        _in_range("targets", t, 0, 1, low_open=True, high_open=True)
    for n in cfg.predict_at:
        if n < 1:
            raise ConfigError(f"predict_at: {n} must be a positive sample size")


def _check_model(m: ModelConfig, image_size: int) -> None:
    _one_of("model.backbone", m.backbone, BACKBONE_NAMES)
    if m.backbone in APPLICATIONS and image_size < APPLICATIONS[m.backbone].min_size:
        raise ConfigError(
            f"dataset.image_size: {image_size} is too small for model.backbone {m.backbone}; "
            f"use at least {APPLICATIONS[m.backbone].min_size}"
        )
    if m.backbone == SMALL_CNN and m.weights == "imagenet":
        raise ConfigError("model.weights: 'imagenet' has no meaning for small_cnn; use none or a weights file")
    if m.backbone == SMALL_CNN and m.fine_tune_from:
        raise ConfigError(
            f"model.fine_tune_from: {m.fine_tune_from!r} has no meaning for small_cnn, which trains every layer "
            f"in one phase; remove it or choose a keras.applications backbone"
        )
    if not m.weights:
        raise ConfigError("model.weights: empty; use imagenet, none, or a path or gs:// URI to a weights file")
    _in_range("model.dropout", m.dropout, 0, 1, low_open=False, high_open=True)


def _check_training(t: TrainingConfig) -> None:
    for key in ("head_epochs", "batch_size", "patience"):
        if getattr(t, key) < 1:
            raise ConfigError(f"training.{key}: {getattr(t, key)} must be at least 1")
    if t.fine_tune_epochs < 0:
        raise ConfigError(f"training.fine_tune_epochs: {t.fine_tune_epochs} must be zero or more")
    for key in ("learning_rate", "fine_tune_learning_rate"):
        _in_range(f"training.{key}", getattr(t, key), 0, 1, low_open=True, high_open=False)
    _in_range("training.validation_fraction", t.validation_fraction, 0, 1, low_open=True, high_open=True)
    _one_of("training.augment", t.augment, AUGMENT_MODES)
    _one_of("training.feature_cache", t.feature_cache, FEATURE_CACHE_MODES)
    _one_of("training.mixed_precision", t.mixed_precision, MIXED_PRECISION_MODES)


def _check_limits(cfg: SweepConfig) -> None:
    """Upper bounds on counts (see LIMITS): a stray digit must fail at load, not after minutes."""
    for dotted, (_, high) in LIMITS.items():
        value: Any = cfg
        for part in dotted.split("."):
            value = getattr(value, part)
        if isinstance(value, tuple):
            if len(value) > high:
                raise ConfigError(f"{dotted}: {len(value)} entries; at most {high} are allowed")
        elif value > high:
            raise ConfigError(f"{dotted}: {value} is too large; at most {high} is allowed")
    if cfg.trial_count > MAX_TRIALS:
        per = f" x {len(cfg.variants)} variants" if cfg.variants else ""
        raise ConfigError(
            f"repetitions: {len(cfg.all_splits)} splits x {cfg.repetitions} repetitions{per} = {cfg.trial_count} trials; "
            f"at most {MAX_TRIALS} (an Indexed Job's limit) are allowed"
        )
    for n in cfg.predict_at:
        if n > MAX_PREDICT_AT:
            raise ConfigError(f"predict_at: {n} is too large; at most {MAX_PREDICT_AT} is allowed")


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


# ---------------------------------------------------------------- variants

# Sections a variant may override, and within each the keys it may set (None: every key).
OVERRIDABLE = {"model": None, "training": None, "dataset": ("image_size",)}
MAX_VARIANTS = 20
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def parse_variants(raw: Any) -> tuple[Variant, ...]:
    """The `variants` list as Variant objects; refuses anything but named override mappings."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"variants must be a list of {{name: ..., model: ..., training: ...}} entries, got {raw!r}")
    if len(raw) > MAX_VARIANTS:
        raise ConfigError(f"variants: {len(raw)} entries; at most {MAX_VARIANTS} are allowed")
    out, seen = [], {}
    for i, entry in enumerate(raw):
        out.append(_parse_entry(i, entry, seen))
    if len(out) == 1:
        raise ConfigError(
            f"variants: only one entry ({out[0].name}); a comparison needs at least two. For one pipeline, "
            "remove variants and set model/training directly"
        )
    return tuple(out)


def _parse_entry(i: int, entry: Any, seen: dict[str, int]) -> Variant:
    """Entry `i` of `variants`; `seen` maps the names so far to their index (this one is added)."""
    where = f"variants[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping with a name and overrides, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not _VARIANT_NAME.match(name):
        raise ConfigError(
            f"{where}.name: {name!r} must be 1-40 letters, digits, '.', '_' or '-' (it labels curves and tables)"
        )
    if name in seen:
        raise ConfigError(f"{where}.name: {name!r} is also the name of variants[{seen[name]}]; names must be unique")
    seen[name] = i
    where = f"variants[{i}] ({name})"
    overrides = {section: _section_overrides(where, section, value)
                 for section, value in entry.items() if section != "name"}
    return Variant(name=name, overrides=overrides)


def _section_overrides(where: str, section: Any, value: Any) -> dict:
    """One section's overrides of a variant, refused when the section or a key may not differ between variants."""
    if section not in OVERRIDABLE:
        raise ConfigError(
            f"{where}: {section} cannot differ between variants; a variant may set "
            f"{', '.join(_allowed())}. Everything else (pool, test set, splits, repetitions, seed) is shared"
        )
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {section} must be a mapping of keys to values, got {value!r}")
    keys = OVERRIDABLE[section]
    bad = [k for k in value if keys is not None and k not in keys]
    if bad:
        raise ConfigError(
            f"{where}: {section}.{bad[0]} cannot differ between variants (the pool and test set are "
            f"shared); a variant may set {', '.join(_allowed())}"
        )
    return dict(value)


def _allowed() -> list[str]:
    return [f"{s}.{k}" for s, keys in OVERRIDABLE.items() for k in (keys or ("*",))]


def _raw_without_variants(cfg: SweepConfig) -> dict[str, Any]:
    raw = cfg.to_dict()
    raw.pop("variants", None)
    return raw


def variant_config(cfg: SweepConfig, name: str | None) -> SweepConfig:
    """The trial config of variant `name`: the sweep's with its overrides, without `variants`.

    `name` None (a sweep without variants) returns `cfg` itself.
    """
    if name is None:
        return cfg
    variant = next((v for v in cfg.variants if v.name == name), None)
    if variant is None:
        raise ConfigError(f"variant {name!r} is not in this sweep's variants ({', '.join(v.name for v in cfg.variants)})")
    raw = _raw_without_variants(cfg)
    for section, values in variant.overrides.items():
        raw[section] = {**raw[section], **values}
    try:
        return build_config(raw)
    except ConfigError as exc:
        index = cfg.variants.index(variant)
        raise ConfigError(f"variants[{index}] ({name}): {exc}") from None


def _check_variants(cfg: SweepConfig) -> None:
    """Validate every variant's trial config (raises ConfigError naming the variant and the key)."""
    for v in cfg.variants:
        variant_config(cfg, v.name)
