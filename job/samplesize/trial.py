"""One trial: draw the subsample, train, evaluate on the test set, write the result once.

A trial whose result already exists returns at once without training, so a
retried or duplicated pod never double-counts. Trials are deterministic for
a given seed (op determinism on), so a trial killed and run again produces
the same result as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import SweepConfig
from .data import group_count, open_source, prepare_dataset
from .plan import trial_spec
from .results import (TRIALS_PREFIX, TrialResult, build_result, refuse_unusable_result, result_key, trial_identity,
                      write_result)
from .sampling import (draw_group_subsample, draw_subsample, refuse_equal_group_counts, refuse_equal_sample_sizes,
                       sample_size, split_validation)
from .storage import Storage, open_storage
from .training import configure_runtime, require_gpu, runtime_versions, train_and_score


@dataclass
class TrialOutcome:
    index: int
    written: bool  # False: a result already existed (now or by the time we finished)
    trial: TrialResult | None  # the result this call wrote; None when it wrote none

    @property
    def result(self) -> dict[str, Any] | None:
        """The written result as its JSON object."""
        return self.trial.to_json() if self.trial is not None else None


def run_trial(sweep: SweepConfig, index: int, storage: Storage, progress=None, expect_gpu: bool = False,
              open_uri: Callable[[str], Storage] = open_storage) -> TrialOutcome:
    """Run trial `index` of the sweep and write its result; skip it when a result exists.

    Args:
        sweep: the sweep's config; the trial trains with its variant's trial config.
        index: the trial to run (`plan.trial_spec`).
        storage: the sweep's output.
        progress: called with each epoch's event. Defaults to None (silent).
        expect_gpu: refuse to train without a GPU. Defaults to False.
        open_uri: opens the dataset folder and a gs:// weights file. Defaults to
            `open_storage` (the CLI passes an opener that configures GCS from the environment).

    Returns:
        A `TrialOutcome`; `written` is False when a result of this config already existed.

    Raises:
        ConfigError: when the index is out of range, or a result of another config is at the index.
        DataError: when something that is not a usable result of this sweep is at the index's key.
        TransientError: with `expect_gpu`, when no GPU is seen (before any data is loaded).
        DataError: when the dataset or a stored cache is unusable.
    """
    spec = trial_spec(sweep, index)
    trial_cfg = sweep.trial_config(spec.variant)  # the variant's model and training; the sweep's identity
    identity = trial_identity(sweep, spec)
    if storage.exists(result_key(index)):
        refuse_unusable_result(sweep, storage, index)  # only a valid result of this sweep is "done"
        return TrialOutcome(index, False, None)
    storage.check_writable(TRIALS_PREFIX)  # fail now, not after training, when the result cannot be written
    started = time.perf_counter()
    accelerator = configure_runtime(trial_cfg.training, spec.seed)
    if expect_gpu:
        require_gpu(accelerator)
    data = prepare_dataset(trial_cfg, storage, open_source(trial_cfg.dataset, open_uri))
    drawn, counts = draw_trial_sample(sweep, spec.split, spec.seed, data)
    train_idx, val_idx = split_validation(drawn, data.pool_labels, trial_cfg.training.validation_fraction, spec.seed,
                                          data.class_names, spec.split)
    loaded = time.perf_counter()
    trained = train_and_score(trial_cfg, data, train_idx, val_idx, seed=spec.seed, storage=storage,
                              open_uri=open_uri, progress=progress)
    done = time.perf_counter()

    result = build_result(
        identity, data,
        **counts, train_size=len(train_idx), validation_size=len(val_idx), metrics=trained.metrics, confusion=trained.confusion,
        epochs=trained.epochs, clock=(started, loaded, trained.trained_at, done), feature_cache=trained.feature_cache,
        accelerator=accelerator, runtime=runtime_versions(),
    )
    written = write_result(storage, result)
    if not written:
        refuse_unusable_result(sweep, storage, index)  # another pod got there first: with this config?
    return TrialOutcome(index, written, result if written else None)


def draw_trial_sample(sweep: SweepConfig, split: float, seed: int, data) -> tuple[np.ndarray, dict[str, int]]:
    """A trial's drawn pool indexes, and the counts its result records.

    With groups (`dataset.group_column`) the trial draws whole groups, `split` of the pool's groups, and its
    result carries `sample_groups` and `pool_groups` beside `sample_size` (its images); without, the draw and
    the result are as before groups existed.
    """
    n_classes = len(data.class_names)
    if data.pool_groups is None:
        refuse_equal_sample_sizes(sweep.all_splits, data.pool_size, n_classes, sweep.sampling)
        drawn = draw_subsample(data.pool_labels, split, seed, sweep.sampling, n_classes)
        return drawn, {"sample_size": sample_size(split, seed, data.pool_size, n_classes, sweep.sampling)}
    pool_groups = group_count(data.pool_groups)
    refuse_equal_group_counts(sweep.all_splits, pool_groups, n_classes)
    drawn = draw_group_subsample(data.pool_groups, data.pool_labels, split, seed, n_classes)
    return drawn, {"sample_size": len(drawn), "sample_groups": group_count(data.pool_groups[drawn]),
                   "pool_groups": pool_groups}
