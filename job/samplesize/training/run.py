"""Train and score one trial's classifier: the single entry point a trial calls into `training/`.

TensorFlow is imported inside `train_and_score`, so importing this module (and
`samplesize.training`) stays cheap for plan, aggregate and `--help`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import SweepConfig
from ..storage import Storage


@dataclass(frozen=True)
class TrainedTrial:
    """What training and scoring one trial measured."""

    metrics: dict[str, Any]  # test-set scores (`evaluate.score_predictions`)
    confusion: list[list[int]]
    epochs: dict[str, int]  # epochs run per phase
    feature_cache: str  # "used: ..." or "off: <reason>"
    trained_at: float  # perf_counter reading when training ended and scoring began


def train_and_score(cfg: SweepConfig, data, train_idx: np.ndarray, val_idx: np.ndarray, *, seed: int,
                    storage: Storage, open_uri: Callable[[str], Storage] | None = None,
                    progress: Callable[[dict], None] | None = None) -> TrainedTrial:
    """Build the classifier, train it on the drawn rows of the pool, and score it on the test set.

    Args:
        cfg: the trial's config (a variant's, in a sweep with variants); its `seed`
            initialises the shared backbone, so every trial reuses one frozen base and its cache.
        data: the prepared dataset (`data.PreparedDataset`).
        train_idx: pool rows to train on.
        val_idx: pool rows early stopping watches.
        seed: the trial seed (head initialisation, shuffling, online augmentation).
        storage: the sweep's output, which holds the feature cache.
        open_uri: opens a gs:// weights file. Defaults to None (local files only).
        progress: called with each epoch's event. Defaults to None (silent).

    Returns:
        The `TrainedTrial`.

    Raises:
        ConfigError: when the weights or the fine-tuning block do not fit the backbone.
        DataError: when the stored feature cache is unreadable or does not match the data.
        TransientError: when downloading imagenet weights fails.
    """
    from .evaluate import score_predictions
    from .models import build_classifier
    from .phases import trial_inputs
    from .train import predict_probabilities, train_classifier

    n_classes = len(data.class_names)
    augment_seed = seed if cfg.training.augment == "online" else None
    clf = build_classifier(cfg.model, cfg.dataset.image_size, n_classes, online_augment_seed=augment_seed,
                           backbone_seed=cfg.seed, head_seed=seed, open_uri=open_uri)
    inputs = trial_inputs(cfg, storage, data, clf)
    epochs, final = train_classifier(clf, inputs.head, inputs.fine_tune, training=cfg.training,
                                     fine_tune_from=cfg.model.fine_tune_from, train_idx=train_idx, val_idx=val_idx,
                                     pool_labels=data.pool_labels, n_classes=n_classes, seed=seed, progress=progress)
    trained_at = time.perf_counter()
    probabilities = predict_probabilities(final.model, final.test, cfg.training.batch_size)
    metrics, confusion = score_predictions(probabilities, data.test_labels, data.class_names)
    return TrainedTrial(metrics, confusion, epochs, inputs.feature_cache, trained_at)
