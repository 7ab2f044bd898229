"""The recipe's two-phase training protocol, with early stopping on validation AUC.

Phase 1 trains the head on a frozen base (for small_cnn: the whole network).
Phase 2, when `model.fine_tune_from` is set, unfreezes from that block with
BatchNormalization kept frozen and trains at the lower learning rate. Each
phase restores its best weights by validation AUC.

Each phase trains a `PhaseInputs`: a model and the pool and test arrays it
reads (`phases` decides which). For the whole network those are pixels; with
the feature cache they are the frozen part's cached outputs and a model of
only the layers above them, built from the very same layer objects, so the
classifier's full model ends up with the trained weights either way. Each phase shuffles with its own seed,
derived from the trial seed, so both routes see the same batches in the same
order (and the same Dropout masks, which come from the shared Dropout layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config import TrainingConfig
from .models import Classifier, freeze_base, unfreeze_from

ProgressFn = Callable[[dict], None]


def to_batches(x: np.ndarray, y: np.ndarray | None, batch_size: int, n_classes: int, *, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """A tf.data pipeline over uint8 (or float) arrays, converting to float32 per batch.

    Keeping the arrays uint8 and converting per batch avoids float32 copies of
    the whole pool (4x the memory).
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y) if y is not None else x)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)

    def convert(images, labels=None):
        images = tf.cast(images, tf.float32)
        if labels is None:
            return images
        return images, tf.one_hot(labels, n_classes)

    return ds.batch(batch_size).map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, phase: str, epochs: int, progress: ProgressFn | None):
        super().__init__()
        self.phase, self.epochs, self.progress = phase, epochs, progress

    def on_epoch_end(self, epoch, logs=None):
        if self.progress:
            logs = logs or {}
            self.progress({"phase": self.phase, "epoch": epoch + 1, "epochs": self.epochs,
                           **{k: round(float(v), 4) for k, v in logs.items() if k in ("loss", "val_loss", "val_auc")}})


def fit_phase(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset, *, epochs: int, learning_rate: float,
              patience: int, jit_compile: bool, phase: str, progress: ProgressFn | None) -> int:
    """Compile and fit one phase; return the number of epochs run."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), "acc"],
        jit_compile=jit_compile,
    )
    stopper = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience, restore_best_weights=True)
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=0, shuffle=False,  # tf.data shuffles
                        callbacks=[stopper, _EpochProgress(phase, epochs, progress)])
    return len(history.epoch)


@dataclass
class PhaseInputs:
    """A model and the arrays it reads, indexed like the pool and the test set."""

    model: keras.Model
    pool: np.ndarray
    test: np.ndarray
    source: str  # what the arrays are: "pixels", "pooled features", "block_9_add activations"


def whole_network(clf: Classifier, data) -> PhaseInputs:
    """The full model on the prepared dataset's pixels (loading them, if not yet loaded)."""
    return PhaseInputs(clf.model, data.pool_images, data.test_images, "pixels")


def train_classifier(clf: Classifier, head: PhaseInputs, fine_tune: PhaseInputs | None, *, training: TrainingConfig,
                     fine_tune_from: str | None, train_idx: np.ndarray, val_idx: np.ndarray, pool_labels: np.ndarray,
                     n_classes: int, seed: int, progress: ProgressFn | None = None) -> tuple[dict[str, int], PhaseInputs]:
    """Run the two-phase protocol; return epochs run per phase and the inputs to predict with.

    Args:
        clf: the classifier whose layers both phases train.
        head: what the head phase trains on.
        fine_tune: what the fine-tuning phase trains on; None when the configuration does not fine-tune.
        training: epochs, learning rates, batch size, patience and XLA.
        fine_tune_from: the block fine-tuning starts from (`model.fine_tune_from`).
        train_idx: pool rows to train on.
        val_idx: pool rows early stopping watches.
        pool_labels: the pool's labels.
        n_classes: the number of classes.
        seed: the trial seed; each phase shuffles with its own seed derived from it.
        progress: called with each epoch's event. Defaults to None (silent).

    Returns:
        (epochs run per phase, the `PhaseInputs` of the last phase, to predict with).
    """
    train_y, val_y = pool_labels[train_idx], pool_labels[val_idx]
    freeze_base(clf)
    epochs = {"head": _fit(head, train_idx, val_idx, train_y, val_y, training, n_classes, seed, "head",
                           training.head_epochs, training.learning_rate, progress),
              "fine_tune": 0}
    if fine_tune is None:
        return epochs, head
    unfreeze_from(clf, fine_tune_from)
    epochs["fine_tune"] = _fit(fine_tune, train_idx, val_idx, train_y, val_y, training, n_classes, phase_seed(seed, 1),
                               "fine_tune", training.fine_tune_epochs, training.fine_tune_learning_rate, progress)
    return epochs, fine_tune


def phase_seed(seed: int, phase: int) -> int:
    return int(np.random.SeedSequence([seed, phase]).generate_state(1, dtype=np.uint32)[0] >> 1)


def _fit(inputs: PhaseInputs, train_idx, val_idx, train_y, val_y, training: TrainingConfig, n_classes: int, seed: int,
         phase: str, epochs: int, learning_rate: float, progress: ProgressFn | None) -> int:
    train = to_batches(inputs.pool[train_idx], train_y, training.batch_size, n_classes, shuffle_seed=seed)
    val = to_batches(inputs.pool[val_idx], val_y, training.batch_size, n_classes)
    return fit_phase(inputs.model, train, val, epochs=epochs, learning_rate=learning_rate, patience=training.patience,
                     jit_compile=training.xla, phase=phase, progress=progress)


def predict_probabilities(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return model.predict(to_batches(x, None, batch_size, 0), verbose=0)
