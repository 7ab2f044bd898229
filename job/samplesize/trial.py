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

from .config import SweepConfig, variant_config
from .data import open_source, prepare_dataset
from .plan import trial_spec
from .results import TRIALS_PREFIX, build_result, refuse_foreign_result, result_key, trial_identity, write_result
from .sampling import draw_subsample, refuse_equal_sample_sizes, sample_size, split_validation
from .storage import Storage, open_storage
from .training.runtime import configure_runtime, require_gpu, runtime_versions


@dataclass
class TrialOutcome:
    index: int
    written: bool  # False: a result already existed (now or by the time we finished)
    result: dict | None


def run_trial(cfg: SweepConfig, index: int, storage: Storage, progress=None, expect_gpu: bool = False,
              open_uri: Callable[[str], Storage] = open_storage) -> TrialOutcome:
    """Run trial `index` of the sweep and write its result; skip if it exists.

    A result of another config at the index raises ConfigError, and with
    `expect_gpu` a trial that sees no GPU raises TransientError before loading data.
    `open_uri` opens the dataset folder and a gs:// weights file (the CLI's
    opener configures GCS from the environment).
    """
    spec = trial_spec(cfg, index)
    sweep, cfg = cfg, variant_config(cfg, spec.variant)  # the variant's model and training; the sweep's identity
    if storage.exists(result_key(index)):
        refuse_foreign_result(storage, sweep, index)
        return TrialOutcome(index, False, None)
    storage.check_writable(TRIALS_PREFIX)  # fail now, not after training, when the result cannot be written
    started = time.perf_counter()
    accelerator = configure_runtime(cfg, spec.seed)
    if expect_gpu:
        require_gpu(accelerator)
    data = prepare_dataset(cfg, storage, open_source(cfg.dataset, open_uri))
    n_classes = len(data.class_names)
    refuse_equal_sample_sizes(cfg.all_splits, data.pool_size, n_classes, cfg.sampling)
    drawn = draw_subsample(data.pool_labels, spec.split, spec.seed, cfg.sampling, n_classes)
    train_idx, val_idx = split_validation(drawn, data.pool_labels, cfg.training.validation_fraction, spec.seed,
                                          data.class_names, spec.split)
    loaded = time.perf_counter()

    from .training.evaluate import score_predictions
    from .training.models import build_classifier
    from .training.phases import trial_inputs
    from .training.train import predict_probabilities, train_classifier

    augment_seed = spec.seed if cfg.training.augment == "online" else None
    # The backbone comes from the sweep seed, so all trials share one frozen base (and its cached features).
    clf = build_classifier(cfg.model, cfg.dataset.image_size, n_classes, online_augment_seed=augment_seed,
                           backbone_seed=cfg.seed, head_seed=spec.seed, open_uri=open_uri)
    head, fine_tune, cache_note = trial_inputs(cfg, storage, data, clf)
    epochs, final = train_classifier(clf, cfg.training, cfg.model.fine_tune_from, head, fine_tune, train_idx, val_idx,
                                     data.pool_labels, n_classes, spec.seed, progress)
    trained = time.perf_counter()
    probabilities = predict_probabilities(final.model, final.test, cfg.training.batch_size)
    metrics, confusion = score_predictions(probabilities, data.test_labels, data.class_names)
    done = time.perf_counter()

    result = build_result(
        trial_identity(sweep, spec), data,
        sample_size=sample_size(spec.split, spec.seed, data.pool_size, n_classes, cfg.sampling),
        train_size=len(train_idx), validation_size=len(val_idx), metrics=metrics, confusion=confusion,
        epochs=epochs, clock=(started, loaded, trained, done), feature_cache=cache_note,
        accelerator=accelerator, runtime=runtime_versions(),
    )
    written = write_result(storage, result)
    if not written:
        refuse_foreign_result(storage, sweep, index)  # another pod got there first: with this config?
    return TrialOutcome(index, written, result if written else None)
