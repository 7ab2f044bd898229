"""Dataset sources decoded into labelled images: `builtin:digits`, `folder:` (junk skipped, counted, named), `tfds:`."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..config import DatasetConfig
from ..errors import DataError
from ..storage import Storage
from ..text import safe_name

log = logging.getLogger(__name__)


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

    def to_json(self) -> dict:
        """`{"counts": {reason: n}, "examples": [...]}`, as the prepared copy stores it."""
        return {"counts": self.counts, "examples": self.examples}

    @classmethod
    def from_json(cls, data: dict) -> SkippedFiles:
        """The record `to_json` wrote; raises ValueError when it is not one (a hand-edited cache file)."""
        if not isinstance(data, dict) or not isinstance(data.get("counts"), dict) \
                or not isinstance(data.get("examples"), list):
            raise ValueError("the skipped-files record is not {counts: {...}, examples: [...]}")
        return cls(dict(data["counts"]), list(data["examples"]))

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


def open_source(ds: DatasetConfig, open_uri: Callable[[str], Storage]) -> Storage | None:
    """The folder source opened with `open_uri` (the caller's way to reach storage); None for other sources."""
    return open_uri(ds.location) if ds.kind == "folder" else None


def folder_storage(ds: DatasetConfig, source: Storage | None) -> Storage:
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
        return scan_folder(folder_storage(ds, source), ds.image_size, where=ds.location)
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
        if in_hidden_folder(parts):
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


def in_hidden_folder(parts: list[str]) -> bool:
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
