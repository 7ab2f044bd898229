"""Training and scoring one trial's classifier: the only folder that imports TensorFlow and Keras.

Modules: `run` (`train_and_score`, the one call a trial makes), `models` (backbone + head),
`phases` (what each phase trains on: cached features or pixels), `feature_cache` (the exact
frozen-feature cache), `train` (the recipe's two phases), `evaluate` (test-set scores),
`runtime` (seeds, precision, the accelerator). Importing this front door costs nothing:
TensorFlow is imported by the functions that need it.
"""

from .run import TrainedTrial, train_and_score
from .runtime import configure_runtime, require_gpu, runtime_versions

__all__ = ["TrainedTrial", "configure_runtime", "require_gpu", "runtime_versions", "train_and_score"]
