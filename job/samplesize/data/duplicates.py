"""Exact duplicate images found while preparing: in the pool, in the test set, and across the two (leakage).

An image is hashed as the uint8 pixels the prepared copy stores, after the
resize to `dataset.image_size`: that array is what a model trains on and is
scored on, so two files that become the same pixels there are the same
example to the classifier (a PNG re-saved as a lossless copy, the same scan
exported twice). Hashing the decoded pixels before the resize would miss
nothing a model could tell apart, but would need a hook inside the decoder;
hashing the file bytes would miss a re-encoded copy.

`dataset.duplicates` says what happens:

- `error` (the default): an image in the pool identical to one in the test
  set is a DataError naming both; the test score would measure memory, not
  generalisation. Duplicates inside the pool or inside the test set are
  counted, named in a few examples and kept.
- `drop`: before the split, every copy after the first (in the source's
  order: folder listing, CSV rows) is dropped and counted among the skipped
  files as "duplicate image", its example naming the copy it repeats. No
  duplicate is then left anywhere, across the sets or inside either.
- `allow`: all copies are kept; the duplicates are counted, as for `error`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .listing import shown
from .sources import LabelledImages, SkippedFiles

DROPPED_REASON = "duplicate image"
MAX_EXAMPLES = 5


def image_digests(images: np.ndarray) -> list[str]:
    """sha256 of each image's uint8 bytes (one row read at a time: the images may be a memory map)."""
    return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images]


@dataclass
class DuplicateImages:
    """Images identical to an earlier one, counted by where the two lie (`pool`, `test`, `pool/test`)."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    first_leak: tuple[str, str] | None = field(default=None, compare=False)  # (test image, pool image), not stored

    def add(self, where: str, name: str, first: str) -> None:
        self.counts[where] = self.counts.get(where, 0) + 1
        if where == "pool/test" and self.first_leak is None:
            self.first_leak = (name, first)
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{shown(name)} = {shown(first)} ({where})")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        if not self.total:
            return "no duplicate images"
        where = ", ".join(f"{n} in {w}" for w, n in sorted(self.counts.items()))
        return f"{self.total} duplicate images ({where}); for example: {'; '.join(self.examples)}"

    def to_json(self) -> dict:
        return {"counts": self.counts, "examples": self.examples}

    @classmethod
    def from_json(cls, data) -> DuplicateImages:
        """The record `to_json` wrote; raises ValueError when it is not one (a hand-edited cache file)."""
        if not isinstance(data, dict) or not isinstance(data.get("counts"), dict) \
                or not isinstance(data.get("examples"), list) \
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in data["counts"].values()) \
                or not all(isinstance(e, str) for e in data["examples"]):
            raise ValueError("the duplicate-images record is not {counts: {...}, examples: [...]}")
        return cls(dict(data["counts"]), list(data["examples"]))


def first_copies(data: LabelledImages, digests: list[str], skipped: SkippedFiles) -> np.ndarray:
    """The indexes of each image's first copy in source order (`drop`); later copies are counted in `skipped`."""
    first: dict[str, int] = {}
    keep = []
    for i, digest in enumerate(digests):
        if digest in first:
            skipped.add(data.name(i), DROPPED_REASON, f"duplicate of {shown(data.name(first[digest]))}")
        else:
            first[digest] = i
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def find_duplicates(data: LabelledImages, digests: list[str], pool: np.ndarray, test: np.ndarray) -> DuplicateImages:
    """Every image identical to an earlier one: pool images first, then the test set (so `pool/test` names the
    test image and the pool image it repeats)."""
    found = DuplicateImages()
    seen: dict[str, tuple[str, int]] = {}
    for part, rows in (("pool", pool), ("test", test)):
        for i in rows:
            i = int(i)
            digest = digests[i]
            if digest not in seen:
                seen[digest] = (part, i)
                continue
            first_part, first = seen[digest]
            found.add(part if first_part == part else "pool/test", data.name(i), data.name(first))
    return found


def refuse_leakage(found: DuplicateImages) -> None:
    """`duplicates: error`: a DataError naming the first pool/test pair, when there is one."""
    leaked = found.counts.get("pool/test", 0)
    if not leaked or found.first_leak is None:
        return
    test_name, pool_name = (shown(n) for n in found.first_leak)
    raise DataError(
        f"{leaked} test image{'s are' if leaked != 1 else ' is'} identical to pool images, so the test score would "
        f"reward memory: test image {test_name} is the same as pool image {pool_name}. Remove the copies, or set "
        "dataset.duplicates: drop (keep the first copy of each image) or allow (keep them all)"
    )
