"""Load `sweep.yaml` and `--set` overrides into a validated `SweepConfig`, once, at the edge.

Every key has a default: an empty config is the built-in demo sweep. Errors
name the dotted key, the bad value and what is allowed, and are raised before
any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from pathlib import Path
from typing import Any, Iterable, get_args, get_origin, get_type_hints

import yaml

from ..errors import ConfigError
from ..text import cut
from .checks import check_config
from .schema import CollectionConfig, DatasetConfig, ModelConfig, SweepConfig, TrainingConfig, Variant
from .variants import parse_variants


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> SweepConfig:
    """Read a sweep config, apply `--set` overrides, and validate it (see `build_config`).

    Args:
        path: the `sweep.yaml` to read. Defaults to None: the built-in demo sweep.
        overrides: `dotted.key=yaml-value` items, applied in order. Defaults to none.

    Returns:
        The validated, frozen `SweepConfig`; the trial configs of its variants are built with it.

    Raises:
        ConfigError: when the file is missing, not UTF-8 or not plain YAML, an override is
            malformed, or a value is out of bounds; the message names the key to fix.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"config file {p} is a directory; pass --config with the path to a sweep.yaml file in it")
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; pass --config with the path to your sweep.yaml")
        raw = parse_yaml(_read_utf8(p), source=str(p))
        if not raw:
            raise ConfigError(f"config file {p} is empty (no keys): it would run the built-in demo sweep. Write your "
                              "sweep's keys into it, or leave out --config to run the demo on purpose")
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


class _TooLarge(yaml.YAMLError):
    pass


MAX_YAML_VALUES = 100_000  # values a config may hold once its aliases are expanded (a real one: under 1,000)
_SEXAGESIMAL_OR_OCTAL = re.compile(r"[-+]?(0[0-7_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (a !!python tag is an error, never code) that refuses a key given twice.

    PyYAML keeps the last value silently; in a sweep that hides a typo's effect.
    YAML 1.1's octal (`010` is 8) and sexagesimal (`1:20` is 80) numbers stay the
    text they were written as: a string key keeps `010`, a number key refuses `1:20`.
    """

    def construct_yaml_int(self, node):
        if _SEXAGESIMAL_OR_OCTAL.fullmatch(node.value):
            return node.value
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node):
        if _SEXAGESIMAL_OR_OCTAL.fullmatch(node.value):
            return node.value
        return super().construct_yaml_float(node)

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


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _load_yaml(text: str) -> Any:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise _TooLarge("it is nested too deeply to be a sweep config") from None
    _refuse_expansion(data)
    return data


def _refuse_expansion(data: Any) -> None:
    """Refuse a value that aliases expand past `MAX_YAML_VALUES` (359 bytes of nested aliases took 5.5 GB).

    PyYAML shares an aliased value instead of copying it, so loading is cheap; anything
    that walks or formats the value pays for every copy. The walk stops at the bound.
    """
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_YAML_VALUES:
            raise _TooLarge(f"its aliases (*name) expand to more than {MAX_YAML_VALUES} values; write the values "
                            "out, or use fewer nested aliases")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def parse_yaml(text: str, source: str = "config") -> dict[str, Any]:
    try:
        data = _load_yaml(text)
    except (_DuplicateKey, _TooLarge) as exc:
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
    except _TooLarge as exc:
        raise ConfigError(f"--set {key}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {cut(text)} is not valid YAML: {cut(str(exc), 300)}") from None
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def build_config(raw: dict[str, Any]) -> SweepConfig:
    """Turn a raw mapping into a validated SweepConfig, with every variant's trial config built once.

    Args:
        raw: the parsed `sweep.yaml` with overrides applied; a missing key takes its default.

    Returns:
        The frozen config. With `variants`, each `Variant.config` holds that
        variant's checked trial config (`SweepConfig.trial_config(name)`).

    Raises:
        ConfigError: naming the first bad key (for a variant: its index and name) and what is allowed.
    """
    cfg = SweepConfig(**_convert_section(SweepConfig, raw, prefix=""))
    check_config(cfg)
    if not cfg.variants:
        return cfg
    built = tuple(dataclasses.replace(v, config=_variant_trial_config(cfg, i, v)) for i, v in enumerate(cfg.variants))
    return dataclasses.replace(cfg, variants=built)


def _variant_trial_config(cfg: SweepConfig, index: int, variant: Variant) -> SweepConfig:
    """The sweep's config with the variant's overrides and no `variants`; raises ConfigError naming the variant."""
    try:
        sections = {name: dataclasses.replace(getattr(cfg, name),
                                              **_convert_section(_SECTIONS[name], values, name + "."))
                    for name, values in variant.overrides.items()}
        trial = dataclasses.replace(cfg, variants=(), **sections)
        check_config(trial)
    except ConfigError as exc:
        raise ConfigError(f"variants[{index}] ({variant.name}): {exc}") from None
    return trial


# Keys whose string values YAML 1.1 turns into booleans when unquoted (`feature_cache: off`).
_SWITCHES = {"feature_cache": {False: "off", True: "auto"}, "mixed_precision": {False: "off", True: "on"}}


_SECTIONS = {"dataset": DatasetConfig, "model": ModelConfig, "training": TrainingConfig,
             "collection": CollectionConfig}


def _convert_section(cls: type, raw: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping of keys to values, got {cut(raw)}; "
                          "leave the section out for its defaults")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _refuse_unknown_keys(raw, fields, prefix)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key = prefix + name
        if name == "variants" and cls is SweepConfig:
            out[name] = parse_variants(value)
        elif name in _SECTIONS and cls is SweepConfig:
            section = {} if value is None else value  # `training:` alone is the defaults; `training: []` is an error
            out[name] = _SECTIONS[name](**_convert_section(_SECTIONS[name], section, key + "."))
        else:
            out[name] = _coerce(key, cls, name, value)
    return out


def _refuse_unknown_keys(raw: dict, fields: dict[str, Any], prefix: str) -> None:
    """Name the first unknown key, with the closest allowed one when there is one."""
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = str(unknown[0])
        hint = difflib.get_close_matches(key, fields, n=1)
        did = f"; did you mean {prefix}{hint[0]}?" if hint else ""
        shown = key if len(key) <= 80 else cut(key)
        raise ConfigError(f"unknown key {prefix}{shown}{did} Allowed keys here: {', '.join(fields)}")


def _coerce(key: str, owner: type, name: str, value: Any) -> Any:
    """Coerce a YAML value to the declared type of field `name` of `owner`, or raise naming the key."""
    declared = _field_types(owner)[name]
    if get_origin(declared) is tuple:
        item = get_args(declared)[0]
        return tuple(_number(key, v, item) for v in _as_list(key, value))
    optional = type(None) in get_args(declared)
    kind = next((a for a in get_args(declared) if a is not type(None)), declared) if optional else declared
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} must be set, got null")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {cut(value)}")
        return value
    if kind in (int, float):
        return _number(key, value, kind)
    if kind is str:
        return _string(key, name, value)
    raise AssertionError(f"unhandled field type {declared} for {key}")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    # The schema uses `from __future__ import annotations`: a field's `type` is a string until resolved.
    return get_type_hints(cls)


def _string(key: str, name: str, value: Any) -> str:
    """A string field; YAML's bare off/on (read as booleans) become the switch's words."""
    if isinstance(value, bool) and name in _SWITCHES:
        return _SWITCHES[name][value]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{key} must be a string, got {cut(value)}")
    return str(value)


def _as_list(key: str, value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list, got {cut(value)}")
    return value


# A number with an exponent, as YAML 1.2 and Python write it (`1e-5`); YAML 1.1 reads it as text.
_EXPONENT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def _number(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)  # `--set training.learning_rate=1e-5`: what the user meant, and what repr writes
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {cut(value)}{_number_hint(value)}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key} must be a whole number, got {cut(value)}")
        return int(value)
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {cut(value)}")
    return float(value)


def _number_hint(value: Any) -> str:
    """What to write instead of text that looks like a number: a hint that itself parses."""
    if not isinstance(value, str):
        return ""
    if _SEXAGESIMAL_OR_OCTAL.fullmatch(value.strip()):
        return " (YAML 1.1 would read it as an octal or base-60 number); write the number in plain decimal digits"
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number) or not number.is_integer() or abs(number) > 2**53:
        return ""
    return f" (text: YAML reads an exponent without a decimal point as a string); write {int(number)}"
