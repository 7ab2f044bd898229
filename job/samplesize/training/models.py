"""Build the classifier: a backbone (small_cnn or keras.applications) and a head.

The model takes float32 pixels in [0, 255]; each backbone's own preprocessing
is a layer inside it. The head (pooling, dropout, dense softmax) is a separate
list of layers so that the feature cache can train the very same layers on
precomputed backbone features.

With `weights: none` the backbone is initialised from the sweep seed, not the
trial seed: every trial of a sweep then shares one frozen base, which is what
makes its cached features valid for all of them. The head is still
initialised from the trial seed.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

from ..backbones import APPLICATIONS, SMALL_CNN
from ..config import ModelConfig
from ..config.checks import check_weights_loadable
from ..errors import ConfigError, DataError, TransientError
from ..storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Classifier:
    model: keras.Model  # pixels -> class probabilities
    base: keras.Model | None  # the pretrained backbone (None for small_cnn)
    head: list  # layers applied to the backbone's feature map, in order
    two_phase: bool  # head on a frozen base, then optional fine-tuning
    preprocess: keras.layers.Layer | None = None  # pixels -> the backbone's input
    weights_identity: str = ""  # what fixes the base's weights: imagenet, a file hash, or none+seed; "": nothing


def build_classifier(m: ModelConfig, image_size: int, n_classes: int, *, online_augment_seed: int | None = None,
                     backbone_seed: int | None = None, head_seed: int | None = None,
                     open_uri: Callable[[str], Storage] | None = None) -> Classifier:
    """Build the classifier for `m`; online augmentation is a layer only active in training.

    `backbone_seed` (used with `weights: none`) seeds the backbone's random
    initialisation; `head_seed` then re-seeds the global generators so the head
    and training stay trial-specific. `open_uri` opens the folder of a gs://
    weights file (the caller's way to reach storage).
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = inputs
    if online_augment_seed is not None:
        from ..data.augment import augmentation_layers

        x = augmentation_layers(online_augment_seed)(x)
    if m.backbone == SMALL_CNN:
        check_weights_loadable(m)  # a ModelConfig built in code has not been through the config's checks
        return _small_cnn(inputs, x, n_classes, m.dropout)
    spec = APPLICATIONS[m.backbone]
    preprocess_fn = importlib.import_module(f"keras.applications.{spec.module}").preprocess_input
    seeded = m.weights == "none" and backbone_seed is not None
    if seeded:
        keras.utils.set_random_seed(backbone_seed)
    base, identity = _load_backbone(m, spec.constructor, image_size, open_uri)
    if seeded:
        identity = f"none:seed={backbone_seed}"
    if head_seed is not None:
        keras.utils.set_random_seed(head_seed)
    preprocess = layers.Lambda(preprocess_fn, name="preprocess")
    x = preprocess(x)
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
    model = keras.Model(inputs, y, name=f"{m.backbone}_classifier")
    return Classifier(model, base, head, two_phase=True, preprocess=preprocess, weights_identity=identity)


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


def _load_backbone(m: ModelConfig, constructor: str, image_size: int,
                   open_uri: Callable[[str], Storage] | None) -> tuple[keras.Model, str]:
    """The backbone without its top, and a string naming what fixed its weights ("" for unseeded random ones)."""
    build = getattr(keras.applications, constructor)
    weights = m.weights
    if weights == "none":
        return build(include_top=False, weights=None, input_shape=(image_size, image_size, 3)), ""
    if weights == "imagenet":
        return _download_imagenet(build, m.backbone, image_size), "imagenet"
    path = _local_weights_file(weights, open_uri)
    try:
        return build(include_top=False, weights=path, input_shape=(image_size, image_size, 3)), f"sha256:{_file_sha256(path)}"
    except (ValueError, OSError) as exc:
        raise DataError(
            f"model.weights: {weights} does not fit {m.backbone} without its top at {image_size} px ({exc}); "
            f"use the backbone's include_top=False weights file"
        ) from None


WEIGHTS_DOWNLOAD_ATTEMPTS = 4
WEIGHTS_RETRY_WAIT_S = 5.0  # doubled after each failure: 5, 10, 20 s


def _download_imagenet(build, backbone: str, image_size: int, sleep=time.sleep):
    """The backbone with ImageNet weights; a failed download is retried, then raises TransientError (exit 75).

    Keras fetches the weights file on first use and caches it under KERAS_HOME.
    A network blip must not fail the index for good, so the download is
    retried in-process a few times and then left to Kubernetes' retries.
    """
    wait = WEIGHTS_RETRY_WAIT_S
    for attempt in range(1, WEIGHTS_DOWNLOAD_ATTEMPTS + 1):
        try:
            return build(include_top=False, weights="imagenet", input_shape=(image_size, image_size, 3))
        except ValueError as exc:  # the weights do not fit the input: no download will fix it
            raise DataError(f"model.weights: ImageNet weights do not fit {backbone} at {image_size} px ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - keras raises a bare Exception on a failed download
            if attempt == WEIGHTS_DOWNLOAD_ATTEMPTS:
                raise TransientError(
                    f"model.weights: could not download ImageNet weights for {backbone} after {attempt} attempts "
                    f"({exc}). The index is retried; without network access, download the no-top weights file once "
                    f"and set model.weights to its path or gs:// URI"
                ) from None
            log.warning("ImageNet weights for %s: download failed (%s); retry %d of %d in %.0f s",
                        backbone, exc, attempt, WEIGHTS_DOWNLOAD_ATTEMPTS - 1, wait)
            sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")


def _local_weights_file(uri: str, open_uri: Callable[[str], Storage] | None) -> str:
    """A local path to the weights file at `uri`, copying it from gs:// (through `open_uri`) when needed."""
    if uri.startswith("gs://"):
        if open_uri is None:  # a caller's bug, not the user's
            raise ValueError(f"model.weights {uri}: pass `open_uri` to build_classifier to read it")
        folder, _, name = uri.rpartition("/")
        try:
            data = open_uri(folder).read(name)
        except FileNotFoundError:
            raise DataError(f"model.weights: {uri} does not exist") from None
        local = os.path.join(tempfile.mkdtemp(prefix="weights-"), name)
        with open(local, "wb") as f:
            f.write(data)
        return local
    if not os.path.isfile(uri):
        raise DataError(f"model.weights: file {uri} does not exist; use imagenet, none, or a path or gs:// URI to a weights file")
    return uri


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
