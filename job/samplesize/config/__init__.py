"""The sweep's configuration: `sweep.yaml` and `--set` overrides into frozen dataclasses, once, at the edge.

Modules: `schema` (the dataclasses, defaults and `LIMITS`), `load` (YAML, `--set`,
`build_config`, `variant_config`), `checks` (cross-field checks), `variants` (the
`variants` list).
"""

from .load import apply_override, build_config, load_config, parse_yaml, variant_config
from .schema import (
                     AUGMENT_MODES,
                     FEATURE_CACHE_MODES,
                     LIMITS,
                     METRICS,
                     MIXED_PRECISION_MODES,
                     SAMPLING_MODES,
                     DatasetConfig,
                     ModelConfig,
                     SweepConfig,
                     TrainingConfig,
                     Variant,
)

__all__ = [
    "AUGMENT_MODES", "FEATURE_CACHE_MODES", "LIMITS", "METRICS", "MIXED_PRECISION_MODES", "SAMPLING_MODES",
    "DatasetConfig", "ModelConfig", "SweepConfig", "TrainingConfig", "Variant", "apply_override", "build_config",
    "load_config", "parse_yaml", "variant_config",
]
