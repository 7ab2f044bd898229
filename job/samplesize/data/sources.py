"""Dataset sources decoded into labelled images: `builtin:digits`, `folder:` (junk skipped, counted, named), `csv:`
(the files a labels CSV lists, `csv_source`), `tfds:`."""

from __future__ import annotations

import io
import logging
import os
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..config import DatasetConfig
from ..errors import DataError
from ..storage import Storage
from ..text import safe_name
from .csv_source import csv_location, read_manifest
from .dicom import dicom_pixels_and_mode, is_dicom
from .listing import list_dataset, open_dataset_file, refuse_name_clash, shown

log = logging.getLogger(__name__)

# The formats a dataset of photos or scans needs; Pillow's other decoders (BLP, DDS, SPIDER, ICO, ...) are never
# run on a dataset file: fuzzing found crashes in several of them.
ALLOWED_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")

# The largest image file read: 3 bytes x Pillow's MAX_IMAGE_PIXELS (89,478,485), about 256 MiB, the size of the
# largest uncompressed 8-bit RGB image Pillow decodes without a decompression-bomb warning. A bigger file is
# refused from its size in the listing, never read; smaller ones are read with this bound.
MAX_IMAGE_BYTES = 3 * 89_478_485


@dataclass
class SkippedFiles:
    """Files a folder scan could not use, by reason, with a few example names."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, name: str, reason: str, detail: str | None = None) -> None:
        """Count `name` under `reason`; an example shows `detail` (one file's own words) in place of the reason."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"{shown(name)} ({detail or reason})")

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


SourceFormat = tuple[int, int, str]  # an image's (width, height, mode) before the resize: (640, 480, "RGB")


@dataclass
class LabelledImages:
    images: np.ndarray  # uint8, (n, size, size, 3)
    labels: np.ndarray  # int32, (n,)
    class_names: list[str]
    skipped: SkippedFiles = field(default_factory=SkippedFiles)
    groups: np.ndarray | None = None  # str, (n,): a csv source's group column (a patient ID) per image, when set
    names: list[str] | None = None  # how a message names each image (a file key, a CSV row); None: "image #i"
    formats: list[SourceFormat] | None = None  # each image's source size and mode, for the dataset summary

    def name(self, i: int) -> str:
        return self.names[i] if self.names is not None else f"image #{i}"


def open_source(ds: DatasetConfig, open_uri: Callable[[str], Storage]) -> Storage | None:
    """The folder source (or a csv source's folder) opened with `open_uri`, the caller's way to reach storage;
    None for other sources."""
    if ds.kind == "csv":
        return open_uri(csv_location(ds.location)[0])
    return open_uri(ds.location) if ds.kind == "folder" else None


def folder_storage(ds: DatasetConfig, source: Storage | None) -> Storage:
    if source is None:  # a caller's bug, not the user's
        raise ValueError(f"dataset {ds.source}: pass the folder's storage as `source` (see `open_source`)")
    return source


def load_source(ds: DatasetConfig, source: Storage | None = None) -> LabelledImages:
    """Decode the configured source into uint8 images of the configured size.

    `source` is the dataset folder's storage, or the csv's folder's (`open_source`); builtin and tfds sources
    need none.
    """
    if ds.kind == "builtin":
        return _load_digits(ds.image_size)
    if ds.kind == "folder":
        return scan_folder(folder_storage(ds, source), ds.image_size, where=ds.location, dicom_frames=ds.dicom_frames)
    if ds.kind == "csv":
        return load_csv(folder_storage(ds, source), ds)
    if ds.kind == "tfds":
        return _load_tfds(ds)
    raise DataError(f"dataset.source: unknown kind {ds.kind!r}")


def _load_digits(size: int) -> LabelledImages:
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images / 16.0 * 255.0).astype(np.uint8)  # 8x8, values 0..16
    images = np.stack([_resize(np.repeat(g[:, :, None], 3, axis=2), size) for g in gray])
    return LabelledImages(images, digits.target.astype(np.int32), [str(n) for n in digits.target_names],
                          names=[f"builtin:digits #{i}" for i in range(len(images))],
                          formats=[(g.shape[1], g.shape[0], "L") for g in gray])


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(rgb)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


class RefusedImage(ValueError):
    """A decoded image this package refuses (NaN pixels): its message is the reason."""


def decode_image(data: bytes, size: int, *, name: str = "", dicom_frames: str = "first",
                 formats: list[SourceFormat] | None = None) -> np.ndarray:
    """Decode and resize one image file's bytes; raises ValueError (the reason) when unusable.

    DICOM files (the `DICM` magic, or a `.dcm` name: `dicom.is_dicom`) go to
    `dicom.dicom_pixels` and are resized in float, so 12- and 16-bit detail
    is quantized to 8 bits only at the end; `dicom_frames` is
    `dataset.dicom_frames`. Other files: only `ALLOWED_FORMATS` are decoded,
    and any exception from decoding one file means "this file is corrupt".
    Large images are decoded at reduced size, the EXIF orientation is
    applied, 16-bit and float pixels are scaled to 8 bits (see `_to_rgb8`),
    and images past Pillow's decompression-bomb limit are refused rather
    than decoded. When `formats` is given, the file's `SourceFormat` is
    appended to it (read while decoding: the upright width and height, Pillow's
    mode or the DICOM photometric interpretation and bits stored).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("zero-byte")
    if is_dicom(data, name):
        unit, mode = dicom_pixels_and_mode(data, dicom_frames)
        if formats is not None:
            formats.append((unit.shape[1], unit.shape[0], mode))
        return _resize_unit(unit, size)
    try:
        rgb, source_format = _decode(data, size)
    except Image.DecompressionBombError:
        raise ValueError(f"too large (over {2 * Image.MAX_IMAGE_PIXELS} pixels)") from None
    except UnidentifiedImageError:
        raise ValueError("not a readable image") from None
    except RefusedImage as exc:
        raise ValueError(str(exc)) from None
    except Exception:  # noqa: BLE001 - any decoder failure on one file: BLPFormatError, AttributeError, TypeError...
        raise ValueError("truncated or corrupt") from None
    if formats is not None:
        formats.append(source_format)
    return _resize(rgb, size)


def _resize_unit(unit: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB from float pixels in [0, 1] (grey or RGB): each channel resized in float (mode F), then quantized."""
    from PIL import Image

    channels = [unit] if unit.ndim == 2 else [unit[:, :, c] for c in range(unit.shape[2])]
    resized = []
    for channel in channels:
        img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        resized.append(np.asarray(img, dtype=np.float32))
    rgb = np.stack(resized * 3 if len(resized) == 1 else resized, axis=2)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


# EXIF orientation -> the transpose that shows the image upright (what ImageOps.exif_transpose applies).
_ORIENTATIONS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                 7: "TRANSVERSE", 8: "ROTATE_90"}
_QUARTER_TURNS = (5, 6, 7, 8)  # the orientations that swap width and height


def _decode(data: bytes, size: int) -> tuple[np.ndarray, SourceFormat]:
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        # Between Pillow's warning and error limits the image is decoded, then reduced at once.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data": a broken file fails or decodes, quietly
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            orientation = img.getexif().get(0x0112)  # read before reducing: the reduced copy has no EXIF
            width, height = img.size[::-1] if orientation in _QUARTER_TURNS else img.size
            source_format = (width, height, img.mode)  # before `draft` makes a JPEG smaller
            reduced = _open_reduced(img, size)
            if orientation in _ORIENTATIONS:
                reduced = reduced.transpose(getattr(Image.Transpose, _ORIENTATIONS[orientation]))
            return _to_rgb8(reduced), source_format


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
            raise RefusedImage("float image with NaN or infinite pixels")
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


def scan_folder(storage: Storage, size: int, where: str = "", dicom_frames: str = "first") -> LabelledImages:
    """Read `<class>/<file>` images (any name: PNG, JPEG, ..., DICOM); skip and count files that are not usable.

    The folder is listed once (`listing.list_dataset`: links followed only inside it, sizes known); class
    names are normalised to NFC, and two folders that are one name once normalised are refused, naming both.
    """
    where = where or storage.uri
    listing = list_dataset(storage)
    if not listing.files and not listing.refused:
        raise DataError(
            f"dataset folder {shown(where, 1000)} does not exist or is empty; it must hold one sub-folder per class "
            "with images inside"
        )
    skipped = SkippedFiles()
    for key, reason in listing.refused:
        skipped.add(key, reason)
    by_class = _files_by_class(listing.files, skipped)
    folders = sorted(by_class)
    # Names shown in results and reports must encode as UTF-8 (the keys read keep their original bytes), and one
    # name has one spelling: NFC, as macOS and Windows tools may write either.
    class_names = [unicodedata.normalize("NFC", safe_name(folder)) for folder in folders]
    refuse_name_clash(folders, class_names, where)
    images, labels, names, formats = ImageSink(size, capacity=len(listing.files)), [], [], []
    empty_classes = []
    for label, (folder, name) in enumerate(zip(folders, class_names)):
        before = len(labels)
        for key, nbytes in by_class[folder]:
            try:
                data = read_image_file(storage, key, nbytes)
                images.append(decode_image(data, size, name=key, dicom_frames=dicom_frames, formats=formats))
                labels.append(label)
                names.append(key)
            except ValueError as exc:
                skipped.add(key, str(exc))
        if len(labels) == before:
            empty_classes.append(shown(name))
    if empty_classes:
        raise DataError(
            f"class folder(s) {', '.join(empty_classes)} in {shown(where, 1000)} hold no usable image "
            f"({skipped.describe()}); add images or remove the folder"
        )
    if skipped.total:
        log.warning("dataset %s: %s", shown(where, 1000), skipped.describe())
    return LabelledImages(images.array(), np.asarray(labels, np.int32), class_names, skipped, names=names,
                          formats=formats)


def load_csv(storage: Storage, ds: DatasetConfig) -> LabelledImages:
    """Decode the files a labels CSV lists (`csv_source.read_manifest`); rows and files that fail are skipped,
    counted and named with their row and line, and a label none of whose files decodes is refused."""
    manifest = read_manifest(storage, ds)
    skipped = SkippedFiles()
    for name, reason in manifest.skipped:
        skipped.add(name, reason)
    images, labels, groups, names, formats = ImageSink(ds.image_size, capacity=len(manifest.rows)), [], [], [], []
    for row in manifest.rows:
        try:
            images.append(decode_image(read_image_file(storage, row.key, row.size), ds.image_size,
                                      name=row.key, dicom_frames=ds.dicom_frames, formats=formats))
        except ValueError as exc:
            skipped.add(row.name, str(exc))
            continue
        labels.append(row.label)
        groups.append(row.group)
        names.append(row.name)
    empty = sorted(set(range(len(manifest.class_names))) - set(labels))
    if empty:
        raise DataError(
            f"label(s) {', '.join(shown(manifest.class_names[c]) for c in empty)} in csv:{shown(ds.location, 1000)} "
            f"name no usable image ({skipped.describe()}); fix those rows or remove them"
        )
    if skipped.total:
        log.warning("dataset csv:%s: %s", shown(ds.location, 1000), skipped.describe())
    group_array = np.asarray(groups, dtype=str) if ds.group_column is not None else None
    return LabelledImages(images.array(), np.asarray(labels, np.int32), manifest.class_names, skipped, group_array,
                          names, formats)


def _files_by_class(files: list[tuple[str, int, str]], skipped: SkippedFiles) -> dict[str, list[tuple[str, int]]]:
    """`{class folder: [(key, size)]}`; files in hidden folders, hidden files and loose files counted as skipped."""
    by_class: dict[str, list[tuple[str, int]]] = {}
    for key, nbytes, _ in files:
        parts = key.split("/")
        if in_hidden_folder(parts):
            skipped.add(key, "inside a hidden folder")
        elif len(parts) < 2:
            skipped.add(key, "not inside a class folder")
        elif parts[-1].startswith("."):
            skipped.add(key, "hidden file")
        else:
            by_class.setdefault(parts[0], []).append((key, nbytes))
    return by_class


def too_large_reason() -> str:
    return f"too large (over {MAX_IMAGE_BYTES:,} bytes)"


def read_image_file(storage: Storage, key: str, listed_bytes: int) -> bytes:
    """A listed file's bytes, at most `MAX_IMAGE_BYTES`: refused from its listed size, then read with that bound."""
    if listed_bytes > MAX_IMAGE_BYTES:
        raise ValueError(too_large_reason())
    with open_dataset_file(storage, key) as f:
        data = f.read(listed_bytes + 1)  # read(n) sets aside n bytes: the listed size, not the bound
        if len(data) > listed_bytes:  # grown since it was listed: bounded again
            data += f.read(MAX_IMAGE_BYTES + 1 - len(data))
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(too_large_reason())
    return data


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
    images, labels, formats = [], [], []
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
        img = example["image"]
        formats.append((img.shape[1], img.shape[0], _TFDS_MODES.get(img.shape[-1], f"{img.shape[-1]} channels")))
        if img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        images.append(_resize(img, ds.image_size))
        labels.append(int(example[label_key]))
    return LabelledImages(np.stack(images), np.asarray(labels, np.int32), names,
                          names=[f"tfds:{name} #{i}" for i in range(len(images))], formats=formats)


_TFDS_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # a tfds image's channels, named as Pillow names its modes


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
