"""The exact frozen-feature cache: compute the frozen part of the network once per sweep.

With the base frozen, BatchNormalization in inference mode and augmentation
`none` or `static` (baked into the prepared pool), the frozen part's output
for an image is the same in every epoch and every trial. So each sweep runs
it once, over the pool and the test set, and stores under
`<output>/cache/features-<hash>.npz`:

- `pooled`: the head's GlobalAveragePooling output. Dropout comes after it,
  so training Dropout -> Dense on these is the head phase, exactly.
- `boundary`: when fine-tuning from a block, the one tensor that enters that
  block (for MobileNetV2 from `block_10`: `block_9_add`). The fine-tuning
  phase then runs only the layers above it.

Both are kept in the base's compute dtype (float16 under mixed precision,
float32 otherwise), which the layers above read back without loss. The hash
names everything that fixes the values: the prepared dataset, the backbone,
its weights (a file's sha256, `imagenet`, or `none` with the sweep seed that
initialised it), the boundary, the compute dtype and the Keras version.
One trial computes it while the others wait for it (`lease`); should two
compute it anyway, the first write wins and the other reads the stored copy,
so every trial trains on identical bytes.

`auto` uses the cache only when it is exact; otherwise the trial runs the
whole network and its result's `feature_cache` says why.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass

import numpy as np

from .config import SweepConfig
from .data import UNREADABLE_NPZ
from .errors import DataError
from .storage import Storage

log = logging.getLogger(__name__)

FEATURES_FORMAT = 1  # bump when the stored arrays' layout changes
EXTRACT_BATCH = 64


def config_refusal(cfg: SweepConfig) -> str | None:
    """Why the configuration makes cached features inexact or meaningless; None when it allows them."""
    if cfg.training.feature_cache == "off":
        return "off: training.feature_cache=off"
    if not _has_frozen_backbone(cfg):
        return f"off: {cfg.model.backbone} has no frozen backbone"
    if cfg.training.augment == "online":
        return "off: augment=online makes cached features inexact"
    return None


def _has_frozen_backbone(cfg: SweepConfig) -> bool:
    from .backbones import APPLICATIONS

    return cfg.model.backbone in APPLICATIONS


@dataclass
class FeatureCache:
    """Cached activations of the frozen part, for the pool and the test set (pool order)."""

    pool_pooled: np.ndarray
    test_pooled: np.ndarray
    pool_boundary: np.ndarray | None  # None: no fine-tuning, or no single boundary tensor
    test_boundary: np.ndarray | None
    key: str
    boundary_layer: str | None  # the layer whose output `boundary` holds
    built_s: float = 0.0  # seconds this process spent computing it (0 when read from storage)


# ---------------------------------------------------------------- the boundary


def fine_tune_boundary(base, start: int):
    """The single tensor entering `base.layers[start:]` from the layers before, or (None, reason).

    Only a single crossing tensor lets the layers above be run from cached
    activations; a skip connection over the boundary would need several.
    """
    before = {id(layer) for layer in base.layers[:start]}
    after = {id(layer) for layer in base.layers[start:]}
    crossing = {}
    for depth_nodes in base._nodes_by_depth.values():  # only the nodes of this graph
        for node in depth_nodes:
            if id(node.operation) not in after:
                continue
            for tensor in node.arguments.keras_tensors:
                producer = tensor._keras_history.operation
                if id(producer) in before:
                    crossing[id(tensor)] = tensor
    for tensor in base.outputs:
        if id(tensor._keras_history.operation) in before:
            crossing[id(tensor)] = tensor
    if len(crossing) != 1:
        names = sorted(t._keras_history.operation.name for t in crossing.values())
        return None, f"{len(crossing)} tensors cross the fine-tuning boundary ({', '.join(names) or 'none'}), not one"
    return next(iter(crossing.values())), ""


def upper_model(base, boundary_tensor):
    """The base from `boundary_tensor` to its output, sharing the base's layer objects (and weights)."""
    import keras

    return keras.Model(boundary_tensor, base.output, name=f"{base.name}_above_{boundary_tensor._keras_history.operation.name}")


# ---------------------------------------------------------------- the cache


def feature_cache_key(cfg: SweepConfig, prepared_key: str, weights_identity: str, boundary_layer: str | None,
                      compute_dtype: str) -> str:
    """Storage key naming everything that fixes the cached values."""
    import keras

    identity = {
        "format": FEATURES_FORMAT,
        "dataset": prepared_key,
        "backbone": cfg.model.backbone,
        "weights": weights_identity,
        "image_size": cfg.dataset.image_size,
        "boundary": boundary_layer,
        "dtype": compute_dtype,
        "keras": keras.__version__,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"cache/features-{digest}.npz"


def load_or_build(cfg: SweepConfig, storage: Storage, data, clf, boundary_tensor=None) -> FeatureCache:
    """Read the sweep's feature cache, or compute it and store it.

    One trial computes it while the others of the sweep wait (`lease`); should
    two compute it anyway, the first writer wins and both use its copy.
    """
    from .lease import build_once

    boundary_layer = boundary_tensor._keras_history.operation.name if boundary_tensor is not None else None
    dtype = clf.base.compute_dtype
    key = feature_cache_key(cfg, data.key, clf.weights_identity, boundary_layer, dtype)
    return build_once(storage, key, lambda: _build(storage, key, data, clf, boundary_tensor, boundary_layer),
                      lambda: _decode(storage, key, boundary_layer, data), what="feature cache")


def _build(storage: Storage, key: str, data, clf, boundary_tensor, boundary_layer: str | None) -> FeatureCache:
    started = time.perf_counter()
    arrays = extract(clf, boundary_tensor, {"pool": data.pool_images, "test": data.test_images})
    built_s = time.perf_counter() - started
    log.info("feature cache %s computed in %.1f s", key, built_s)
    cache = store(storage, key, arrays, boundary_layer, data)
    cache.built_s = built_s
    return cache


def store(storage: Storage, key: str, arrays: dict[str, np.ndarray], boundary_layer: str | None, data) -> FeatureCache:
    """Write the computed arrays once; when another trial stored them first, use its copy."""
    if not storage.write_once(key, _encode(arrays, boundary_layer)):
        # Another trial stored it first: use its bytes so every trial sees the same values.
        return _decode(storage, key, boundary_layer, data)
    return FeatureCache(arrays["pool_pooled"], arrays["test_pooled"], arrays.get("pool_boundary"),
                        arrays.get("test_boundary"), key, boundary_layer)


def extract(clf, boundary_tensor, images: dict[str, np.ndarray], batch_size: int = EXTRACT_BATCH) -> dict[str, np.ndarray]:
    """Run the frozen part once over uint8 image arrays; return `<name>_pooled` (and `<name>_boundary`).

    Images are converted to float32 one batch at a time, and results are
    written into preallocated arrays, so memory stays near the output size.
    """
    import keras

    base = clf.base
    outputs = [base.output] if boundary_tensor is None else [base.output, boundary_tensor]
    lower = keras.Model(base.input, outputs, name=f"{base.name}_frozen_part")
    pixels = keras.Input(shape=base.input.shape[1:], name="pixels")
    results = lower(clf.preprocess(pixels), training=False)
    results = results if isinstance(results, (list, tuple)) else [results]
    pooled = clf.head[0](results[0])  # the head's own GlobalAveragePooling2D
    extractor = keras.Model(pixels, [pooled, *results[1:]])
    store_dtype = np.float16 if base.compute_dtype == "float16" else np.float32
    out: dict[str, np.ndarray] = {}
    for name, x in images.items():
        arrays = None
        for start in range(0, len(x), batch_size):
            batch = extractor.predict_on_batch(x[start : start + batch_size].astype(np.float32))
            batch = batch if isinstance(batch, (list, tuple)) else [batch]
            if arrays is None:
                arrays = [np.empty((len(x), *np.shape(b)[1:]), store_dtype) for b in batch]
            for array, b in zip(arrays, batch):
                array[start : start + len(b)] = np.asarray(b)
        out[f"{name}_pooled"] = arrays[0]
        if boundary_tensor is not None:
            out[f"{name}_boundary"] = arrays[1]
    return out


def _encode(arrays: dict[str, np.ndarray], boundary_layer: str | None) -> bytes:
    buf = io.BytesIO()
    meta = json.dumps({"format": FEATURES_FORMAT, "boundary_layer": boundary_layer})
    np.savez(buf, meta=np.frombuffer(meta.encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def _decode(storage: Storage, key: str, boundary_layer: str | None, data) -> FeatureCache:
    try:
        with storage.open_read(key) as f, np.load(f) as z:
            arrays = {name: z[name] for name in z.files if name != "meta"}
    except UNREADABLE_NPZ as exc:
        raise DataError(f"feature cache {key} is unreadable ({exc}); delete it and run the trial again") from None
    expected = {"pool_pooled": data.pool_size, "test_pooled": len(data.test_labels)}
    if boundary_layer is not None:
        expected.update(pool_boundary=data.pool_size, test_boundary=len(data.test_labels))
    wrong = [n for n, size in expected.items() if n not in arrays or len(arrays[n]) != size]
    if wrong:
        raise DataError(f"feature cache {key} does not match the prepared dataset ({', '.join(wrong)}); delete it and run again")
    return FeatureCache(arrays["pool_pooled"], arrays["test_pooled"], arrays.get("pool_boundary"),
                        arrays.get("test_boundary"), key, boundary_layer)


# ---------------------------------------------------------------- models over cached inputs


def head_model(clf, pooled_shape):
    """Pooled features -> probabilities through the classifier's own head layers (after pooling)."""
    import keras

    features = keras.Input(shape=pooled_shape, name="pooled_features")
    y = features
    for layer in clf.head[1:]:
        y = layer(y)
    return keras.Model(features, y, name="head_from_pooled_features")


def fine_tune_model(clf, boundary_tensor):
    """Boundary activations -> probabilities: the layers above the boundary, then the whole head."""
    import keras

    upper = upper_model(clf.base, boundary_tensor)
    activations = keras.Input(shape=boundary_tensor.shape[1:], name="boundary_activations")
    # training=False: BatchNormalization stays in inference mode, as in the whole network.
    y = upper(activations, training=False)
    for layer in clf.head:
        y = layer(y)
    return keras.Model(activations, y, name="fine_tune_from_boundary")


# ---------------------------------------------------------------- what a trial trains on


def trial_inputs(cfg: SweepConfig, storage: Storage, data, clf):
    """(head inputs, fine-tuning inputs or None, note) for one trial, using the cache when exact.

    The note goes into the result's `feature_cache`: "used: ..." or "off: <reason>".
    """
    from .models import fine_tune_start
    from .train import PhaseInputs, fine_tunes, whole_network

    fine_tuning = fine_tunes(clf, cfg)
    refusal = config_refusal(cfg)
    if refusal is None and clf.weights_identity == "none:unseeded":
        refusal = "off: weights none without a fixed backbone seed differ in every trial"
    if refusal is not None:
        log.info("feature cache %s; training the whole network", refusal)
        whole = whole_network(clf, data)
        return whole, (whole if fine_tuning else None), refusal
    boundary, why = None, ""
    if fine_tuning:
        boundary, why = fine_tune_boundary(clf.base, fine_tune_start(clf.base, cfg.model.fine_tune_from))
    cache = load_or_build(cfg, storage, data, clf, boundary)
    head = PhaseInputs(head_model(clf, cache.pool_pooled.shape[1:]), cache.pool_pooled, cache.test_pooled,
                       "pooled features")
    note = "used: head phase from cached pooled features"
    fine = None
    if fine_tuning and boundary is not None:
        fine = PhaseInputs(fine_tune_model(clf, boundary), cache.pool_boundary, cache.test_boundary,
                           f"{cache.boundary_layer} activations")
        note += f"; fine-tuning from cached {cache.boundary_layer} activations"
    elif fine_tuning:
        fine = whole_network(clf, data)
        note += f"; fine-tuning runs the whole network: {why}"
    log.info("feature cache %s (%s)", note, cache.key)
    return head, fine, note
