"""Checks of a prepared copy and its facts: the copy in `cache/` is untrusted input, verified on every open.

Whoever can write the output prefix can replace `cache/dataset-<hash>.npz`
(the key only names what shaped it). So every open checks, before any pixel
is used:

- the facts (`cache/dataset-<hash>.json`): at most `MAX_FACTS_BYTES`, a JSON
  object of bounded whole numbers and sha256 digests (a hostile one made
  `plan` print 300-digit sizes), and the dataset summary `prepare` prints
  (`dataset_summary`, bounded texts and counts; absent from copies prepared
  before it);
- the arrays' headers, read without loading them: uint8 images of shape
  (n, size, size, 3), one-dimensional integer labels of the same lengths;
- `meta` (at most `MAX_META_BYTES`): class names, 2 to `MAX_CLASSES` distinct
  texts, and the skipped-files record;
- labels within the class range;
- each array's content digest against the one the facts recorded when the
  copy was written (the labels and meta at once, the images when they are
  first read). The copy's digest (`PoolFacts.digest`) goes into every result
  as `dataset_digest`, so results from different copies are told apart.

Every failure is a DataError naming the file and saying to delete it and
prepare again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..storage import Storage
from .dataset_summary import DatasetSummary

MAX_FACTS_BYTES = 64 * 1024  # a real facts file is under 1 KiB, a few KiB with its summary (at most 50 KiB)
MAX_META_BYTES = 16 * 1024 * 1024  # class names and the skipped-files record
MAX_CLASSES = 100_000
MAX_IMAGES = 10**9  # a pool or test set of more images is not a dataset this package prepares
ARRAYS = ("pool_images", "pool_labels", "test_images", "test_labels", "meta")
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PoolFacts:
    """What planning needs from a prepared copy, stored beside it so that `plan` never decodes or opens it.

    `digests` is each array's sha256 (`array_digest`) and `digest` the copy's (`copy_digest`): recorded when
    the copy is written, checked whenever it is opened. `summary` is not checked against the copy: it is only
    shown.
    """

    pool_size: int
    class_count: int
    digest: str | None = field(default=None, compare=False)
    digests: dict[str, str] | None = field(default=None, compare=False, repr=False)
    group_count: int | None = None  # the pool's groups (patients); None without dataset.group_column
    summary: DatasetSummary | None = field(default=None, compare=False, repr=False)  # None: prepared before it

    def to_json(self) -> bytes:
        facts = {"pool_size": self.pool_size, "class_count": self.class_count, "digest": self.digest,
                 "digests": self.digests}
        if self.group_count is not None:  # facts without groups stay as they were
            facts["group_count"] = self.group_count
        if self.summary is not None:
            facts["summary"] = self.summary.to_json()
        # UTF-8, not \u escapes: the summary's names stay within MAX_FACTS_BYTES (every text is `shown`, so encodable)
        return json.dumps(facts, ensure_ascii=False).encode()


def unusable(key: str, why: str) -> DataError:
    return DataError(f"prepared dataset {key} {why}; delete it (and its .json) and run `samplesize prepare` again")


def array_digest(array: np.ndarray, chunk: int = 256) -> str:
    """sha256 of an array's dtype, shape and bytes, read a few rows at a time (a memory map stays on disk)."""
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    if array.ndim == 0:
        h.update(array.tobytes())
    for start in range(0, len(array) if array.ndim else 0, chunk):
        h.update(np.ascontiguousarray(array[start : start + chunk]).tobytes())
    return h.hexdigest()


def copy_digest(digests: dict[str, str]) -> str:
    """The copy's digest: sha256 of its arrays' digests, in name order."""
    return hashlib.sha256("".join(f"{n}={digests[n]}\n" for n in sorted(digests)).encode()).hexdigest()


def read_facts(storage: Storage, key: str) -> PoolFacts | None:
    """The facts stored at `key` (checked), None when there are none; their size is known before they are read."""
    listed = [size for name, size, _ in storage.list_stats(key.rpartition("/")[0]) if name == key]
    if not listed:
        return None
    if listed[0] > MAX_FACTS_BYTES:
        raise DataError(f"{key} is unreadable ({listed[0]:,} bytes, over {MAX_FACTS_BYTES:,}); delete it and run "
                        "`samplesize prepare` again")
    try:
        with storage.open_read(key) as f:
            raw = f.read(MAX_FACTS_BYTES + 1)
    except FileNotFoundError:
        return None
    return parse_facts(raw, key)


def parse_facts(raw: bytes, key: str) -> PoolFacts:
    def bad(why: str) -> DataError:
        return DataError(f"{key} is unreadable ({why}); delete it and run `samplesize prepare` again")

    if len(raw) > MAX_FACTS_BYTES:
        raise bad(f"over {MAX_FACTS_BYTES:,} bytes")
    try:
        facts = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad("not JSON, or nested too deeply") from None
    if not isinstance(facts, dict):
        raise bad("not a JSON object")
    pool_size, class_count = facts.get("pool_size"), facts.get("class_count")
    if not _whole(pool_size, 1, MAX_IMAGES):
        raise bad(f"pool_size must be a whole number from 1 to {MAX_IMAGES:,}")
    if not _whole(class_count, 2, MAX_CLASSES):
        raise bad(f"class_count must be a whole number from 2 to {MAX_CLASSES:,}")
    group_count = facts.get("group_count")
    if "group_count" in facts and not _whole(group_count, 1, pool_size):
        raise bad(f"group_count must be a whole number from 1 to its pool_size {pool_size:,}")
    digests = facts.get("digests")
    if not (isinstance(digests, dict) and set(digests) == set(ARRAYS)
            and all(isinstance(v, str) and _DIGEST.fullmatch(v) for v in digests.values())):
        raise bad(f"digests must map {', '.join(ARRAYS)} to sha256 hex digests")
    if facts.get("digest") != copy_digest(digests):
        raise bad("its digest is not the digest of its arrays' digests")
    return PoolFacts(pool_size, class_count, facts["digest"], dict(digests), group_count, _summary(facts, key))


def _summary(facts: dict, key: str) -> DatasetSummary | None:
    """The facts' dataset summary, checked; None in the facts of a copy prepared before summaries were stored."""
    if "summary" not in facts:
        return None
    try:
        return DatasetSummary.from_json(facts["summary"])
    except ValueError as exc:
        raise DataError(f"{key} is unreadable ({exc}); delete it and the .npz beside it and run `samplesize "
                        "prepare` again (the summary is recorded only when the copy is built)") from None


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def array_headers(npz, key: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's (shape, dtype) from its .npy header, without reading its data."""
    missing = [n for n in ARRAYS if n not in npz.files]
    if missing:
        raise unusable(key, f"has no {', '.join(missing)}")
    out = {}
    for name in ARRAYS:
        try:
            with npz.zip.open(f"{name}.npy") as f:
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version not in read:
                    raise ValueError(f"npy format {version}")
                shape, _, dtype = read[version](f)
        except (ValueError, KeyError, OSError, EOFError, SyntaxError) as exc:
            raise unusable(key, f"is unreadable ({name}: {str(exc)[:80]})") from None
        out[name] = (tuple(shape), np.dtype(dtype))
    return out


def check_headers(headers: dict, key: str, image_size: int | None, facts: PoolFacts | None) -> None:
    """uint8 images of (n, size, size, 3), integer labels of length n, uint8 meta of bounded size.

    `image_size` is `dataset.image_size`; None takes the pool's, which the test set must share.
    """
    if image_size is None:
        pool_shape = headers["pool_images"][0]
        image_size = pool_shape[1] if len(pool_shape) == 4 else -1
    for part in ("pool", "test"):
        _check_part(headers, part, key, image_size)
    if facts is not None and headers["pool_labels"][0][0] != facts.pool_size:
        raise unusable(key, f"holds a pool of {headers['pool_labels'][0][0]}; its facts say {facts.pool_size}")
    mshape, mdtype = headers["meta"]
    if mdtype != np.uint8 or len(mshape) != 1 or mshape[0] > MAX_META_BYTES:
        raise unusable(key, f"holds a meta of {mdtype} {mshape}, not JSON text of at most {MAX_META_BYTES:,} bytes")


def _check_part(headers: dict, part: str, key: str, image_size: int) -> None:
    (shape, dtype), (lshape, ldtype) = headers[f"{part}_images"], headers[f"{part}_labels"]
    if dtype != np.uint8 or len(shape) != 4 or shape[1:] != (image_size, image_size, 3):
        raise unusable(key, f"holds {part}_images of {dtype} {shape}, not uint8 (n, {image_size}, "
                       f"{image_size}, 3) as dataset.image_size says")
    if ldtype.kind not in "iu" or ldtype.itemsize > 8 or len(lshape) != 1:
        raise unusable(key, f"holds {part}_labels of {ldtype} {lshape}, not whole-number class indexes")
    if lshape[0] != shape[0] or not 1 <= shape[0] <= MAX_IMAGES:
        raise unusable(key, f"holds {lshape[0]} {part}_labels for {shape[0]} {part}_images")


def parse_meta(array: np.ndarray, key: str) -> dict:
    """`{"class_names": [...], "skipped": {...}}`, checked: 2 to MAX_CLASSES distinct texts."""
    try:
        meta = json.loads(array.tobytes().decode())
    except (ValueError, RecursionError):
        raise unusable(key, "holds a meta that is not JSON text, or nested too deeply") from None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and 2 <= len(names) <= MAX_CLASSES and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)):
        raise unusable(key, f"holds a meta without class_names (2 to {MAX_CLASSES:,} distinct texts)")
    if not isinstance(meta.get("skipped"), dict):
        raise unusable(key, "holds a meta without its skipped-files record")
    return meta


def check_labels(labels: np.ndarray, name: str, n_classes: int, key: str) -> np.ndarray:
    """The labels as int32, each within [0, n_classes)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise unusable(key, f"holds {name} from {labels.min()} to {labels.max()}, outside the {n_classes} classes "
                       f"(0 to {n_classes - 1})")
    return labels.astype(np.int32, copy=False)


def check_digest(array: np.ndarray, name: str, facts: PoolFacts, key: str) -> None:
    if array_digest(array) != facts.digests[name]:
        raise unusable(key, f"has {name} that do not match the digest recorded when it was written "
                       "(replaced or altered since)")
