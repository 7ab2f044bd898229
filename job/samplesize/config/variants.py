"""The `variants` list: several pipelines compared on the same subsamples in one sweep.

Each entry names a variant and overrides trial keys of the sweep:

    variants:
      - {name: cnn-16, dataset: {image_size: 16}}
      - {name: cnn-32, dataset: {image_size: 32}, training: {head_epochs: 40}}

Allowed overrides are `model.*`, `training.*` and `dataset.image_size`: what
a trial computes. The pool, the test set, the splits, the repetitions and the
seeds are the sweep's, shared by every variant, so the trials of one
(split, repetition) train on the same images in every variant (paired).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError
from .schema import Variant

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
