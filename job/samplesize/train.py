"""The recipe's two-phase training protocol, with early stopping on validation AUC.

Phase 1 trains the head on a frozen base (for small_cnn: the whole network).
Phase 2, when `model.fine_tune_from` is set, unfreezes from that block with
BatchNormalization kept frozen and trains at the lower learning rate. Each
phase restores its best weights by validation AUC.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .config import SweepConfig
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
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=0,
                        callbacks=[stopper, _EpochProgress(phase, epochs, progress)])
    return len(history.epoch)


def train_classifier(clf: Classifier, cfg: SweepConfig, train_x, train_y, val_x, val_y, n_classes: int, seed: int,
                     progress: ProgressFn | None = None) -> dict[str, int]:
    """Run the two-phase protocol on pixel arrays; return epochs run per phase."""
    t = cfg.training
    train = to_batches(train_x, train_y, t.batch_size, n_classes, shuffle_seed=seed)
    val = to_batches(val_x, val_y, t.batch_size, n_classes)
    freeze_base(clf)
    epochs = {"head": fit_phase(clf.model, train, val, epochs=t.head_epochs, learning_rate=t.learning_rate,
                                patience=t.patience, jit_compile=t.xla, phase="head", progress=progress),
              "fine_tune": 0}
    if clf.two_phase and cfg.model.fine_tune_from and t.fine_tune_epochs > 0:
        unfreeze_from(clf, cfg.model.fine_tune_from)
        epochs["fine_tune"] = fit_phase(clf.model, train, val, epochs=t.fine_tune_epochs,
                                        learning_rate=t.fine_tune_learning_rate, patience=t.patience,
                                        jit_compile=t.xla, phase="fine_tune", progress=progress)
    return epochs


def predict_probabilities(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return model.predict(to_batches(x, None, batch_size, 0), verbose=0)
