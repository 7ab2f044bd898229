"""Build the classifier: a backbone (small_cnn or keras.applications) and a head.

The model takes float32 pixels in [0, 255]; each backbone's own preprocessing
is a layer inside it. The head (pooling, dropout, dense softmax) is a separate
list of layers so that the feature cache can train the very same layers on
precomputed backbone features.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass

import keras
from keras import layers

from .backbones import APPLICATIONS, SMALL_CNN
from .config import ModelConfig
from .errors import ConfigError, DataError


@dataclass
class Classifier:
    model: keras.Model  # pixels -> class probabilities
    base: keras.Model | None  # the pretrained backbone (None for small_cnn)
    head: list  # layers applied to the backbone's feature map, in order
    two_phase: bool  # head on a frozen base, then optional fine-tuning


def build_classifier(m: ModelConfig, image_size: int, n_classes: int, *, online_augment_seed: int | None = None) -> Classifier:
    """Build the classifier for `m`; online augmentation is a layer only active in training."""
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = inputs
    if online_augment_seed is not None:
        from .augment import augmentation_layers

        x = augmentation_layers(online_augment_seed)(x)
    if m.backbone == SMALL_CNN:
        return _small_cnn(inputs, x, n_classes, m.dropout)
    spec = APPLICATIONS[m.backbone]
    preprocess = importlib.import_module(f"keras.applications.{spec.module}").preprocess_input
    base = _load_backbone(m, spec.constructor, image_size)
    x = layers.Lambda(preprocess, name="preprocess")(x)
    # training=False keeps BatchNormalization in inference mode in both phases, as the recipe does.
    features = base(x, training=False)
    head = [
        layers.GlobalAveragePooling2D(name="avg_pool"),
        layers.Dropout(m.dropout, name="top_dropout"),
        layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities"),
    ]
    y = features
    for layer in head:
        y = layer(y)
    return Classifier(keras.Model(inputs, y, name=f"{m.backbone}_classifier"), base, head, two_phase=True)


def _small_cnn(inputs, x, n_classes: int, dropout: float) -> Classifier:
    """A small CNN trained from scratch in one phase, for small images."""
    x = layers.Rescaling(1.0 / 255)(x)
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    head = [
        layers.GlobalAveragePooling2D(name="avg_pool"),
        layers.Dense(128, activation="relu"),
        layers.Dropout(dropout, name="top_dropout"),
        layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities"),
    ]
    for layer in head:
        x = layer(x)
    return Classifier(keras.Model(inputs, x, name="small_cnn"), None, head, two_phase=False)


def _load_backbone(m: ModelConfig, constructor: str, image_size: int) -> keras.Model:
    build = getattr(keras.applications, constructor)
    weights = m.weights
    if weights == "none":
        return build(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    if weights == "imagenet":
        try:
            return build(include_top=False, weights="imagenet", input_shape=(image_size, image_size, 3))
        except Exception as exc:  # keras raises a bare Exception on a failed download
            raise DataError(
                f"model.weights: could not get ImageNet weights for {m.backbone} ({exc}). Without network access, "
                f"download the no-top weights file once and set model.weights to its path or gs:// URI"
            ) from None
    path = _local_weights_file(weights)
    try:
        return build(include_top=False, weights=path, input_shape=(image_size, image_size, 3))
    except (ValueError, OSError) as exc:
        raise DataError(
            f"model.weights: {weights} does not fit {m.backbone} without its top at {image_size} px ({exc}); "
            f"use the backbone's include_top=False weights file"
        ) from None


def _local_weights_file(uri: str) -> str:
    """A local path to the weights file at `uri`, copying it from gs:// when needed."""
    if uri.startswith("gs://"):
        from .storage import open_storage

        folder, _, name = uri.rpartition("/")
        try:
            data = open_storage(folder).read(name)
        except FileNotFoundError:
            raise DataError(f"model.weights: {uri} does not exist") from None
        local = os.path.join(tempfile.mkdtemp(prefix="weights-"), name)
        with open(local, "wb") as f:
            f.write(data)
        return local
    if not os.path.isfile(uri):
        raise DataError(f"model.weights: file {uri} does not exist; use imagenet, none, or a path or gs:// URI to a weights file")
    return uri


def fine_tune_start(base: keras.Model, name: str) -> int:
    """Index of the first layer of block `name` (exact layer name or a `<name>_` prefix)."""
    for i, layer in enumerate(base.layers):
        if layer.name == name or layer.name.startswith(name + "_"):
            return i
    raise ConfigError(f"model.fine_tune_from: {base.name} has no block {name!r}; valid names include: {', '.join(block_names(base))}")


def block_names(base: keras.Model) -> list[str]:
    """Block names a user can fine-tune from: layer-name prefixes shared by several layers."""
    seen: dict[str, int] = {}
    for layer in base.layers:
        prefix = layer.name.rsplit("_", 1)[0]
        seen[prefix] = seen.get(prefix, 0) + 1
    return [p for p, n in seen.items() if n > 1]


def freeze_base(clf: Classifier) -> None:
    if clf.base is not None:
        clf.base.trainable = False


def unfreeze_from(clf: Classifier, name: str) -> None:
    """Make layers from block `name` on trainable, keeping BatchNormalization frozen."""
    base = clf.base
    start = fine_tune_start(base, name)
    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= start and not isinstance(layer, layers.BatchNormalization)
