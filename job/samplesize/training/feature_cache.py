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

Whether a trial may use the cache at all is decided in `phases`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..config import SweepConfig
from ..errors import DataError
from ..hashing import content_hash
from ..storage import Storage
from ..storage.npz import UNREADABLE_NPZ, meta_array, write_npz_once

log = logging.getLogger(__name__)

FEATURES_FORMAT = 1  # bump when the stored arrays' layout changes
EXTRACT_BATCH = 64


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

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], key: str, boundary_layer: str | None) -> FeatureCache:
        """The cache from its stored arrays (`<pool|test>_pooled`, and `_boundary` when there is one)."""
        return cls(arrays["pool_pooled"], arrays["test_pooled"], arrays.get("pool_boundary"),
                   arrays.get("test_boundary"), key, boundary_layer)


# ---------------------------------------------------------------- the cache


def feature_cache_key(cfg: SweepConfig, prepared_key: str, weights_identity: str, boundary_layer: str | None,
                      compute_dtype: str) -> str:
    """Storage key naming everything that fixes the cached values."""
    import keras

    if not weights_identity:  # a bug: trials always seed a `weights: none` backbone from the sweep seed
        raise ValueError("a feature cache needs backbone weights that something fixes; seed a `weights: none` backbone")

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
    return f"cache/features-{content_hash(identity)}.npz"


def load_or_build(cfg: SweepConfig, storage: Storage, data, clf, boundary_tensor=None) -> FeatureCache:
    """Read the sweep's feature cache, or compute it and store it.

    One trial computes it while the others of the sweep wait (`lease`); should
    two compute it anyway, the first writer wins and both use its copy.
    """
    from ..storage.lease import build_once

    boundary_layer = boundary_tensor._keras_history.operation.name if boundary_tensor is not None else None
    dtype = clf.base.compute_dtype
    key = feature_cache_key(cfg, data.key, clf.weights_identity, boundary_layer, dtype)
    rows = row_shapes(clf, boundary_tensor)
    return build_once(storage, key, lambda: _build(storage, key, data, clf, boundary_tensor, boundary_layer),
                      lambda: read_cache(storage, key, boundary_layer, data, rows), what="feature cache")


def row_shapes(clf, boundary_tensor=None) -> dict[str, tuple[int, ...]]:
    """The shape of one image's cached features, as the model reads them: `pooled` (channels,), `boundary`."""
    shapes = {"pooled": (int(clf.base.output.shape[-1]),)}
    if boundary_tensor is not None:
        shapes["boundary"] = tuple(int(d) for d in boundary_tensor.shape[1:])
    return shapes


def _build(storage: Storage, key: str, data, clf, boundary_tensor, boundary_layer: str | None) -> FeatureCache:
    started = time.perf_counter()
    arrays = extract(clf, boundary_tensor, {"pool": data.pool_images, "test": data.test_images})
    built_s = time.perf_counter() - started
    log.info("feature cache %s computed in %.1f s", key, built_s)
    cache = store(storage, key, arrays, boundary_layer, data, row_shapes(clf, boundary_tensor))
    cache.built_s = built_s
    return cache


def store(storage: Storage, key: str, arrays: dict[str, np.ndarray], boundary_layer: str | None, data,
          rows: dict[str, tuple[int, ...]] | None = None) -> FeatureCache:
    """Write the computed arrays once; when another trial stored them first, use its copy (checked by `rows`)."""
    meta = meta_array({"format": FEATURES_FORMAT, "boundary_layer": boundary_layer})
    if not write_npz_once(storage, key, {"meta": meta, **arrays}):
        # Another trial stored it first: use its bytes so every trial sees the same values.
        return read_cache(storage, key, boundary_layer, data, rows)
    return FeatureCache.from_arrays(arrays, key, boundary_layer)


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


def read_cache(storage: Storage, key: str, boundary_layer: str | None, data,
               rows: dict[str, tuple[int, ...]] | None = None) -> FeatureCache:
    """The stored cache, checked: one row per image, each of the shape the model takes (`rows`), float16/32.

    A cache is untrusted input (anyone who can write the output may replace it): an array of the wrong
    shape would otherwise crash inside Keras, or train on something else.
    """
    try:
        with storage.open_read(key) as f, np.load(f) as z:
            arrays = {name: z[name] for name in z.files if name != "meta"}
    except UNREADABLE_NPZ as exc:
        raise DataError(f"feature cache {key} is unreadable ({str(exc)[:80]}); delete it and run the trial again") from None
    expected = {"pool_pooled": data.pool_size, "test_pooled": len(data.test_labels)}
    if boundary_layer is not None:
        expected.update(pool_boundary=data.pool_size, test_boundary=len(data.test_labels))
    wrong = [f"{n} {_shape_of(arrays.get(n))}, expected {_expected_shape(n, size, rows)}"
             for n, size in expected.items() if not _fits(arrays.get(n), size, rows and rows.get(n.split("_")[1]))]
    if wrong:
        raise DataError(f"feature cache {key} does not match the prepared dataset and the model ({'; '.join(wrong)}); "
                        "delete it and run again")
    return FeatureCache.from_arrays(arrays, key, boundary_layer)


def _fits(array: np.ndarray | None, n: int, row: tuple[int, ...] | None) -> bool:
    if array is None or array.ndim < 1 or len(array) != n or array.dtype not in (np.float16, np.float32):
        return False
    return row is None or array.shape[1:] == tuple(row)


def _shape_of(array: np.ndarray | None) -> str:
    return "missing" if array is None else f"{array.dtype} {array.shape}"


def _expected_shape(name: str, n: int, rows: dict[str, tuple[int, ...]] | None) -> str:
    row = (rows or {}).get(name.split("_")[1])
    return f"float16/32 ({n}, {', '.join(map(str, row)) if row else '...'})"
