"""The sweep's configuration: `sweep.yaml` and `--set` overrides into frozen dataclasses, once, at the edge.

Modules: `schema` (the dataclasses, defaults and `LIMITS`), `load` (YAML, `--set`,
`build_config`, which also builds each variant's trial config once), `checks` (bounds
and cross-field checks), `variants` (the `variants` list). A variant's trial config is
`cfg.trial_config(name)`.
"""

from .load import apply_override, build_config, load_config, parse_yaml
from .schema import (
                     AUGMENT_MODES,
                     DICOM_FRAMES_MODES,
                     DUPLICATE_MODES,
                     FEATURE_CACHE_MODES,
                     LIMITS,
                     MAX_CLASSES,
                     METRICS,
                     MIXED_PRECISION_MODES,
                     SAMPLING_MODES,
                     CollectionConfig,
                     DatasetConfig,
                     ModelConfig,
                     SweepConfig,
                     TrainingConfig,
                     Variant,
)

__all__ = [
    "AUGMENT_MODES", "DICOM_FRAMES_MODES", "DUPLICATE_MODES", "FEATURE_CACHE_MODES", "LIMITS", "MAX_CLASSES",
    "METRICS", "MIXED_PRECISION_MODES", "SAMPLING_MODES",
    "CollectionConfig", "DatasetConfig", "ModelConfig", "SweepConfig", "TrainingConfig", "Variant", "apply_override", "build_config",
    "load_config", "parse_yaml",
]
