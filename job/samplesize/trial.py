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
from .errors import TransientError
from .results import TRIALS_PREFIX, build_result, refuse_foreign_result, result_key, trial_identity, write_result
from .sampling import draw_subsample, refuse_equal_sample_sizes, sample_size, split_validation
from .storage import Storage, open_storage


@dataclass
class TrialOutcome:
    index: int
    written: bool  # False: a result already existed (now or by the time we finished)
    result: dict | None


def configure_runtime(cfg: SweepConfig, seed: int) -> str:
    """Seed everything, set precision, and return a description of the accelerator seen."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    mp = cfg.training.mixed_precision
    mixed = mp == "on" or (mp == "auto" and bool(gpus))
    # Set both ways: a process that runs several trials must not inherit the last one's policy.
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU x{len(gpus)}: {details.get('device_name', gpus[0].name)}"
    return "CPU"


def runtime_versions() -> dict:
    """The TensorFlow version and the first GPU's model (None on CPU), for the result."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    model = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) if gpus else None
    return {"tensorflow_version": tf.__version__, "gpu_model": model}


def require_gpu(accelerator: str) -> None:
    """Exit 75 (retried) when a GPU was requested but TensorFlow sees none, before any data is loaded."""
    if accelerator != "CPU":
        return
    import tensorflow as tf

    build = "" if tf.test.is_built_with_cuda() else ", and this TensorFlow is built without CUDA (a CPU image)"
    raise TransientError(
        f"the pod requests a GPU (SAMPLESIZE_EXPECT_GPU=1) but TensorFlow {tf.__version__} sees none{build}. "
        f"Check: the image is the GPU build (TF_EXTRA=gpu); LD_LIBRARY_PATH holds /usr/local/nvidia/lib64, where "
        f"GKE mounts the driver (the samplesize image sets it); the node's NVIDIA driver is installed (GKE Standard: "
        f"a node pool created with gpu-driver-version=default or latest, or the driver installer DaemonSet); "
        f"`nvidia-smi` works in the pod. Nothing was trained; the index is retried"
    )


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

    from .evaluate import score_predictions
    from .phases import trial_inputs
    from .models import build_classifier
    from .train import predict_probabilities, train_classifier

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
