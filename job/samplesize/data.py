"""Dataset sources and the prepared dataset: decoded, resized, split once per sweep.

`prepare_dataset` decodes the source, resizes every image to the configured
size, splits off the fixed stratified test set and stores the result as
compact uint8 arrays under `<output>/cache/`, keyed by a hash of everything
that shapes them. Trials load that copy instead of decoding again. Beside it,
a small JSON file holds the pool's size and class count, which is all that
`samplesize plan` needs.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .config import DatasetConfig, SweepConfig
from .errors import DataError
from .hashing import content_hash
from .npz import UNREADABLE_NPZ, meta_array, read_meta, write_npz_once
from .storage import Storage
from .text import safe_name

log = logging.getLogger(__name__)

PREPARED_FORMAT = 1  # bump when the stored arrays' layout changes


@dataclass
class SkippedFiles:
    """Files a folder scan could not use, by reason, with a few example names."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, name: str, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"{safe_name(name)} ({reason})")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        if not self.total:
            return "no files skipped"
        by_reason = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items()))
        return f"skipped {self.total} files ({by_reason}); for example: {'; '.join(self.examples)}"


@dataclass
class LabelledImages:
    images: np.ndarray  # uint8, (n, size, size, 3)
    labels: np.ndarray  # int32, (n,)
    class_names: list[str]
    skipped: SkippedFiles = field(default_factory=SkippedFiles)


@dataclass
class PreparedDataset:
    """The pool (what trials subsample) and the fixed test set, as uint8 arrays.

    The image arrays are read from the stored copy on first use: a trial that
    trains only on cached features never loads the pixels (about 600 MB at
    224 px for a 4,000-image dataset).
    """

    pool_labels: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    skipped: dict
    key: str
    load_images: Callable[[str], np.ndarray] = field(repr=False)  # "pool_images" / "test_images" -> uint8 array

    @property
    def pool_size(self) -> int:
        return len(self.pool_labels)

    @functools.cached_property
    def pool_images(self) -> np.ndarray:
        return self.load_images("pool_images")

    @functools.cached_property
    def test_images(self) -> np.ndarray:
        return self.load_images("test_images")


# ---------------------------------------------------------------- sources


def open_source(ds: DatasetConfig, open_uri: Callable[[str], Storage]) -> Storage | None:
    """The folder source opened with `open_uri` (the caller's way to reach storage); None for other sources."""
    return open_uri(ds.location) if ds.kind == "folder" else None


def _folder(ds: DatasetConfig, source: Storage | None) -> Storage:
    if source is None:  # a caller's bug, not the user's
        raise ValueError(f"dataset {ds.source}: pass the folder's storage as `source` (see `open_source`)")
    return source


def load_source(ds: DatasetConfig, source: Storage | None = None) -> LabelledImages:
    """Decode the configured source into uint8 images of the configured size.

    `source` is the dataset folder's storage (`open_source`); builtin and tfds sources need none.
    """
    if ds.kind == "builtin":
        return _load_digits(ds.image_size)
    if ds.kind == "folder":
        return scan_folder(_folder(ds, source), ds.image_size, where=ds.location)
    if ds.kind == "tfds":
        return _load_tfds(ds)
    raise DataError(f"dataset.source: unknown kind {ds.kind!r}")


def _load_digits(size: int) -> LabelledImages:
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images / 16.0 * 255.0).astype(np.uint8)  # 8x8, values 0..16
    images = np.stack([_resize(np.repeat(g[:, :, None], 3, axis=2), size) for g in gray])
    return LabelledImages(images, digits.target.astype(np.int32), [str(n) for n in digits.target_names])


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(rgb)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_image(data: bytes, size: int) -> np.ndarray:
    """Decode and resize one image file's bytes; raises ValueError (the reason) when unusable.

    Large images are decoded at reduced size, 16-bit and float pixels are
    scaled to 8 bits (see `_to_rgb8`), and images past Pillow's
    decompression-bomb limit are refused rather than decoded.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("zero-byte")
    try:
        with warnings.catch_warnings():
            # Between Pillow's warning and error limits the image is decoded, then reduced at once.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                rgb = _to_rgb8(_open_reduced(img, size))
    except Image.DecompressionBombError:
        raise ValueError(f"too large (over {2 * Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError("not a readable image" if isinstance(exc, UnidentifiedImageError) else "truncated or corrupt") from None
    return _resize(rgb, size)


def _open_reduced(img, size: int):
    """Decode `img` no larger than needed: JPEG at 1/2..1/8 scale (draft), others reduced right after decoding.

    An image about twice the target is enough for a good bilinear resize; the
    full-size copies that converting first would make are never made.
    """
    img.draft(None, (2 * size, 2 * size))  # JPEG only; a no-op for other formats
    img.load()  # forces a full decode: truncated files fail here, not later
    factor = min(img.size) // (2 * size)
    if factor >= 2:
        if img.mode.startswith("I;16"):
            img = img.convert("I")  # keeps every level; `reduce` does not take I;16
        try:
            img = img.reduce(factor)
        except ValueError:  # other modes `reduce` does not take (P, 1, PA...)
            img = img.convert("RGB").reduce(factor)
    return img


_HIGH_BIT_DEPTHS = (10, 12, 14, 16, 24, 32)


def _to_rgb8(img) -> np.ndarray:
    """uint8 RGB pixels. `convert("RGB")` clips 16-bit and float pixels, so those are scaled first.

    Integer pixels wider than 8 bits are scaled by the bit depth their values
    use: the smallest of 8, 10, 12, 14, 16 (...) bits that holds the image's
    largest value, since scanners store 10-14-bit data in 16-bit files. Float
    pixels in [0, 1] are multiplied by 255; other float images are stretched
    from their minimum to their maximum. NaN or infinite pixels are refused.
    """
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise ValueError("float image with NaN or infinite pixels")
        low, high = (0.0, 1.0) if a.min() >= 0 and a.max() <= 1 else (float(a.min()), float(a.max()))
        gray = np.round((a - low) / max(high - low, 1e-12) * 255).astype(np.uint8)
    elif img.mode == "I" or img.mode.startswith("I;16"):
        a = np.asarray(img).astype(np.int64)
        if a.min() < 0:
            a = a - a.min()
        bits = next((b for b in (8, *_HIGH_BIT_DEPTHS) if a.max() < 2**b), 64)
        gray = np.round(a * (255 / (2**bits - 1))).astype(np.uint8)
    else:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def scan_folder(storage: Storage, size: int, where: str = "") -> LabelledImages:
    """Read `<class>/<file>` images; skip and count files that are not usable images."""
    where = where or storage.uri
    try:
        keys = storage.list()
    except FileNotFoundError:
        keys = []
    if not keys:
        raise DataError(
            f"dataset folder {where} does not exist or is empty; it must hold one sub-folder per class with images inside"
        )
    by_class: dict[str, list[str]] = {}
    skipped = SkippedFiles()
    for key in keys:
        parts = key.split("/")
        if _in_hidden_folder(parts):
            skipped.add(key, "inside a hidden folder")
            continue
        if len(parts) < 2:
            skipped.add(key, "not inside a class folder")
            continue
        by_class.setdefault(parts[0], []).append(key)
    folders = sorted(by_class)
    # Names shown in results and reports must encode as UTF-8; the keys read keep their original bytes.
    class_names = [safe_name(folder) for folder in folders]
    images, labels = ImageSink(size, capacity=len(keys)), []
    empty_classes = []
    for label, (folder, name) in enumerate(zip(folders, class_names)):
        before = len(labels)
        for key in by_class[folder]:
            if os.path.basename(key).startswith("."):
                skipped.add(key, "hidden file")
                continue
            try:
                images.append(decode_image(storage.read(key), size))
                labels.append(label)
            except ValueError as exc:
                skipped.add(key, str(exc))
        if len(labels) == before:
            empty_classes.append(name)
    if empty_classes:
        raise DataError(
            f"class folder(s) {', '.join(empty_classes)} in {where} hold no usable image "
            f"({skipped.describe()}); add images or remove the folder"
        )
    if skipped.total:
        log.warning("dataset %s: %s", where, skipped.describe())
    return LabelledImages(images.array(), np.asarray(labels, np.int32), class_names, skipped)


def _in_hidden_folder(parts: list[str]) -> bool:
    """`.ipynb_checkpoints/`, `a/.thumbs/`: tool folders at any level are never data."""
    return any(part.startswith(".") for part in parts[:-1])


def _load_tfds(ds: DatasetConfig) -> LabelledImages:
    """Load a tfds dataset from a prepared copy; download only when allowed."""
    os.environ.setdefault("TFDS_DISABLE_GCS", "1")
    import tensorflow_datasets as tfds

    name = ds.location
    try:
        builder = tfds.builder(name, data_dir=ds.data_dir)
    except Exception as exc:  # unknown name, bad data_dir
        raise DataError(f"dataset.source tfds:{name}: {exc}") from None
    if not builder.is_prepared():
        if not ds.download:
            raise DataError(
                f"tfds dataset {name!r} is not prepared under {builder.data_dir}. Prepare it once on a machine with "
                f"internet: python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='DIR')."
                f"download_and_prepare()\", then copy DIR (a path or gs:// URI) and set dataset.data_dir to it; "
                f"or set dataset.download: true to download now"
            )
        builder.download_and_prepare()
    split = "train" if "train" in builder.info.splits else next(iter(builder.info.splits))
    label_key = "label"
    names = list(builder.info.features[label_key].names)
    images, labels = [], []
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
        img = example["image"]
        if img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        images.append(_resize(img, ds.image_size))
        labels.append(int(example[label_key]))
    return LabelledImages(np.stack(images), np.asarray(labels, np.int32), names)


# ---------------------------------------------------------------- prepared copy


@dataclass(frozen=True)
class PoolFacts:
    """What planning needs from a prepared copy, stored beside it so that `plan` never decodes or opens it."""

    pool_size: int
    class_count: int


def pool_facts_key(key: str) -> str:
    """`cache/dataset-<hash>.json`, beside the prepared copy `cache/dataset-<hash>.npz`."""
    return key.removesuffix(".npz") + ".json"


def read_pool_facts(cfg: SweepConfig, storage: Storage, source: Storage | None = None) -> PoolFacts | None:
    """The stored facts of the prepared copy `cfg` uses; None before `samplesize prepare`.

    `source` is the folder's storage, as for `load_source`: a folder's copy is named by a listing of it (cheap,
    nothing is decoded)."""
    key = pool_facts_key(prepared_key(cfg, source))
    try:
        facts = json.loads(storage.read(key))
        return PoolFacts(int(facts["pool_size"]), int(facts["class_count"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DataError(f"{key} is unreadable ({exc!r}); delete it and run `samplesize prepare` again") from None


def _record_pool_facts(storage: Storage, data: PreparedDataset) -> None:
    """Store the copy's facts once; a copy prepared before they were stored gets them on its next use."""
    key = pool_facts_key(data.key)
    if not storage.exists(key):
        facts = {"pool_size": data.pool_size, "class_count": len(data.class_names)}
        storage.write_once(key, json.dumps(facts).encode())


def prepared_key(cfg: SweepConfig, source: Storage | None = None) -> str:
    """Cache key: everything that changes the prepared arrays (`source`: the folder's storage, as for `load_source`)."""
    ds = cfg.dataset
    shape = {
        "format": PREPARED_FORMAT,
        "source": ds.source,
        "image_size": ds.image_size,
        "test_fraction": ds.test_fraction,
        "seed": cfg.seed,
        "augment": cfg.training.augment == "static",
    }
    contents = source_fingerprint(ds, source)
    if contents is not None:
        shape["contents"] = contents
    return f"cache/dataset-{content_hash(shape)}.npz"


def source_fingerprint(ds: DatasetConfig, source: Storage | None = None) -> str | None:
    """A cheap fingerprint of a folder source: every file's name, size and modification stamp.

    One listing, no file read (on GCS the generation number stands for the
    time). Adding, removing or replacing an image changes it, so a changed
    folder gets a new prepared copy instead of the old pool. None for
    builtin and tfds sources, whose contents a version pins.
    """
    if ds.kind != "folder":
        return None
    try:
        entries = _folder(ds, source).list_stats()
    except FileNotFoundError:
        entries = []
    return content_hash([list(e) for e in entries if not _in_hidden_folder(e[0].split("/"))])


def split_test(labels: np.ndarray, test_fraction: float, seed: int, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded (pool, test) index arrays; every class keeps one pool example."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels, minlength=len(class_names))
    if len(class_names) < 2:
        raise DataError(f"the dataset has a single class ({class_names}); a classifier needs at least two")
    too_few = [f"{class_names[c]} has {counts[c]} usable image{'s' if counts[c] != 1 else ''}"
               for c in range(len(class_names)) if counts[c] < 2]
    if too_few:
        raise DataError(
            f"class {'; class '.join(too_few)}; each class needs at least 2 (one for the pool and one for the "
            "test set); add images or remove the class folder"
        )
    n_test = max(int(round(test_fraction * len(labels))), len(class_names))
    if len(labels) - n_test < len(class_names):
        raise DataError(
            f"dataset.test_fraction {test_fraction} leaves {len(labels) - n_test} images in the pool for "
            f"{len(class_names)} classes; lower test_fraction"
        )
    pool, test = train_test_split(np.arange(len(labels)), test_size=n_test, stratify=labels, random_state=seed)
    test, pool = _cover_every_class(labels, test, pool, seed)
    pool, test = _cover_every_class(labels, pool, test, seed)
    return np.sort(pool), np.sort(test)


def _cover_every_class(labels: np.ndarray, have: np.ndarray, other: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give every class at least one member of `have` (the test set, or the pool), keeping both sizes.

    Stratified rounding can leave a rare class (3 of 66 images) out of the test
    set; its recall would then be meaningless. For each such class one image
    moves from `other` into `have`, and one image of the class with the most
    members in `have` moves back. Splits that already cover every class are
    unchanged.
    """
    rng = np.random.default_rng([seed, 2])
    have, other = list(have), list(other)
    n_classes = int(labels.max()) + 1
    for c in range(n_classes):
        if any(labels[i] == c for i in have):
            continue
        counts = np.bincount(labels[have], minlength=n_classes)
        donor = int(np.argmax(counts))  # >= 2 members: have holds at least one image per class overall
        back = [i for i in have if labels[i] == donor][int(rng.integers(counts[donor]))]
        mine = [i for i in other if labels[i] == c]
        moved = mine[int(rng.integers(len(mine)))]
        other.remove(moved)
        have.remove(back)
        have.append(moved)
        other.append(back)
    return np.asarray(have), np.asarray(other)


def prepare_dataset(cfg: SweepConfig, storage: Storage, source: Storage | None = None) -> PreparedDataset:
    """Open the prepared dataset in the cache, or build and store it.

    `storage` is the sweep's output; `source` the dataset folder's storage
    (`open_source`), None for builtin and tfds sources.

    One process builds while the others of the sweep wait for it (`lease`);
    should two build anyway, the first writer wins and both use its copy.
    """
    from .lease import build_once

    key = prepared_key(cfg, source)
    data = build_once(storage, key, lambda: _build_prepared(cfg, storage, key, source),
                      lambda: _open_prepared(storage, key), what="prepared dataset")
    _record_pool_facts(storage, data)
    return data


def _build_prepared(cfg: SweepConfig, storage: Storage, key: str, source: Storage | None) -> PreparedDataset:
    """Decode, resize and split the source; store it once, staging the arrays on local disk.

    Peak memory stays near one image plus one chunk: the decoded images, the
    pool and test arrays and the stored .npz all live in files under the
    temp folder (/tmp in the pod), read back through memory maps.
    """
    staging = tempfile.TemporaryDirectory(prefix="samplesize-prepare-")
    data = load_source(cfg.dataset, source)
    pool, test = split_test(data.labels, cfg.dataset.test_fraction, cfg.seed, data.class_names)
    pool_images = take_rows(data.images, pool, os.path.join(staging.name, "pool_images.npy"))
    if cfg.training.augment == "static":
        from .augment import augment_once

        pool_images = augment_once(pool_images, cfg.seed)  # in memory: static augmentation is for small pools
    images = {"pool_images": pool_images,
              "test_images": take_rows(data.images, test, os.path.join(staging.name, "test_images.npy"))}
    del data.images  # the decoded copy's file can go once the pool and test arrays hold their rows

    def load_images(name: str, _staging=staging) -> np.ndarray:  # _staging keeps the folder while in use
        return images[name]

    prepared = PreparedDataset(
        pool_labels=data.labels[pool],
        test_labels=data.labels[test],
        class_names=data.class_names,
        skipped={"counts": data.skipped.counts, "examples": data.skipped.examples},
        key=key,
        load_images=load_images,
    )
    if not write_npz_once(storage, key, _prepared_arrays(prepared, images)):
        # Another trial prepared it concurrently; use the stored copy so every trial sees identical bytes.
        return _open_prepared(storage, key)
    return prepared


class ImageSink:
    """Decoded images appended one at a time into a uint8 array on local disk (a memory map).

    A folder of 50,000 images at 224 px is 7.5 GB of pixels: a list of arrays
    then np.stack would hold it twice in memory. The file lives in the temp
    folder and goes when the array is no longer used.
    """

    def __init__(self, size: int, capacity: int):
        self._file = tempfile.NamedTemporaryFile(prefix="samplesize-images-", suffix=".npy")  # noqa: SIM115
        self._array = np.lib.format.open_memmap(self._file.name, mode="w+", dtype=np.uint8,
                                                shape=(max(capacity, 1), size, size, 3))
        self._count = 0

    def append(self, image: np.ndarray) -> None:
        self._array[self._count] = image
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def array(self) -> np.ndarray:
        """The images appended so far, as one (n, size, size, 3) uint8 array (a view of the file)."""
        self._array.flush()
        return self._array[: self._count]


def take_rows(images: np.ndarray, rows: np.ndarray, path: str, chunk: int = 256) -> np.ndarray:
    """`images[rows]` written chunk by chunk into a new .npy file at `path`, returned memory-mapped."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=images.dtype, shape=(len(rows), *images.shape[1:]))
    for start in range(0, len(rows), chunk):
        out[start : start + chunk] = images[rows[start : start + chunk]]
    out.flush()
    return out


def _prepared_arrays(p: PreparedDataset, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prepared dataset's arrays, the layout `_open_prepared` reads."""
    return {**images, "pool_labels": p.pool_labels, "test_labels": p.test_labels,
            "meta": meta_array({"class_names": p.class_names, "skipped": p.skipped})}


def _open_prepared(storage: Storage, key: str) -> PreparedDataset:
    """Read the labels and names now; the image arrays only when first used."""

    def unreadable(exc: Exception) -> DataError:
        return DataError(f"prepared dataset {key} is unreadable ({exc}); delete it and run `samplesize prepare` again")

    source = storage.open_read(key)  # stays open: the image arrays are read from it later
    try:
        arrays = np.load(source)  # an NpzFile: reads each array on access
        missing = {"pool_images", "pool_labels", "test_images", "test_labels", "meta"} - set(arrays.files)
        if missing:
            raise KeyError(f"no {', '.join(sorted(missing))}")
        meta = read_meta(arrays["meta"])
        pool_labels, test_labels = arrays["pool_labels"], arrays["test_labels"]
    except UNREADABLE_NPZ as exc:
        source.close()
        raise unreadable(exc) from None

    def load_images(name: str) -> np.ndarray:
        try:
            images = arrays[name]
        except UNREADABLE_NPZ as exc:
            raise unreadable(exc) from None
        expected = len(pool_labels) if name == "pool_images" else len(test_labels)
        if len(images) != expected:
            raise unreadable(ValueError(f"{name} holds {len(images)} images for {expected} labels"))
        return images

    return PreparedDataset(pool_labels, test_labels, meta["class_names"], meta["skipped"], key, load_images)
