"""`variants` in sweep.yaml: several pipelines compared on the same subsamples in one sweep.

Each entry names a variant and overrides trial keys of the sweep:

    variants:
      - {name: cnn-16, dataset: {image_size: 16}}
      - {name: cnn-32, dataset: {image_size: 32}, training: {head_epochs: 40}}

Allowed overrides are `model.*`, `training.*` and `dataset.image_size`: what
a trial computes. The pool, the test set, the splits, the repetitions and the
seeds are the sweep's, shared by every variant, so the trials of one
(split, repetition) train on the same images in every variant (paired).

`config` parses and validates the list (an error names the variant and the
key) and builds a variant's trial config (`variant_config`): the sweep's with
its overrides applied, validated like any config. This module holds what the
rest of the package derives from the list.
"""

from __future__ import annotations

from .config import SweepConfig, variant_config


def variant_names(cfg: SweepConfig) -> list[str | None]:
    """The variants in plan order; [None] for a sweep without variants."""
    return [v.name for v in cfg.variants] or [None]


def variant_configs(cfg: SweepConfig) -> dict[str | None, SweepConfig]:
    """Each variant's trial config by name ({None: cfg} without variants)."""
    return {name: variant_config(cfg, name) for name in variant_names(cfg)}


def describe(cfg: SweepConfig, name: str | None) -> str:
    """What a variant changes, in one line: `model.backbone=mobilenet_v2, dataset.image_size=96`."""
    if name is None:
        return ""
    v = next(v for v in cfg.variants if v.name == name)
    return ", ".join(f"{s}.{k}={val}" for s, values in v.overrides.items() for k, val in values.items()) or "no overrides"
