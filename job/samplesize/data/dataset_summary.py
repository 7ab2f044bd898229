"""The dataset summary `samplesize prepare` prints and stores: classes, groups, source formats, skipped files, copies.

`summarize_dataset` builds it once, from the decoded source and its split, and
it is stored under `summary` in the copy's facts (`cache/dataset-<hash>.json`),
so a second `prepare` prints the same summary without decoding anything, and
the aggregator reads it for the report's run facts (`prepared.stored_summary`).

It stays small whatever the dataset: the first `MAX_LISTED_CLASSES` classes
are listed and the rest summed; of the source sizes, modes and skip reasons
the `MAX_LISTED_VALUES` most common are counted and the rest summed; every
text is quoted as a message quotes a name (`listing.shown`), escaped and cut.
Read back, it is untrusted like the rest of the facts: `from_json` checks
types and bounds and raises ValueError naming the part that is wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .duplicates import DROPPED_REASON, DuplicateImages
from .group_split import group_ids
from .listing import shown
from .sources import LabelledImages

MAX_LISTED_CLASSES = 50
MAX_LISTED_VALUES = 10  # sizes, modes and skip reasons counted one by one; the rest are summed
MAX_COUNT = 10**9  # as verify.MAX_IMAGES (which imports this module): no count in a summary is larger
MAX_TEXT_CHARS = 300  # a class name, size, mode, reason or example, once quoted (`shown`)
# Stored texts are cut shorter, so that the facts stay under verify.MAX_FACTS_BYTES (64 KiB) however odd the
# names: 50 class names of 60 four-byte characters, 10 reasons and 10 examples (skipped, duplicates) of 240.
_NAME_CHARS, _STORED_CHARS = 60, 240
_EXAMPLES = 5  # as SkippedFiles and DuplicateImages keep


@dataclass(frozen=True)
class ImageCounts:
    """Images in the pool and the test set; with groups, the distinct groups among them too."""

    pool_images: int
    test_images: int
    pool_groups: int | None = None
    test_groups: int | None = None

    def to_json(self) -> dict:
        counts = {"pool_images": self.pool_images, "test_images": self.test_images}
        if self.pool_groups is not None:
            counts.update(pool_groups=self.pool_groups, test_groups=self.test_groups)
        return counts

    @classmethod
    def from_json(cls, data, where: str) -> ImageCounts:
        if not isinstance(data, dict):
            raise ValueError(f"{where} is not an object")
        images = [_count(data.get(k), f"{where}.{k}") for k in ("pool_images", "test_images")]
        grouped = "pool_groups" in data or "test_groups" in data
        groups = [_count(data.get(k), f"{where}.{k}") if grouped else None for k in ("pool_groups", "test_groups")]
        return cls(*images, *groups)


@dataclass(frozen=True)
class Tally:
    """The most common values with their image counts, most common first, and the rest summed."""

    counts: dict[str, int] = field(default_factory=dict)
    other_values: int = 0
    other_images: int = 0

    @classmethod
    def of(cls, counter: Counter) -> Tally:
        ranked = sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))  # ties in a fixed order
        listed, rest = ranked[:MAX_LISTED_VALUES], ranked[MAX_LISTED_VALUES:]
        counts: dict[str, int] = {}
        for value, n in listed:  # two long values cut to one text add up
            text = shown(str(value), _STORED_CHARS)
            counts[text] = counts.get(text, 0) + n
        return cls(counts, len(rest), sum(n for _, n in rest))

    def describe(self, noun: str, unit: str = "images") -> str:
        """`RGB (30), L (2) and 3 other modes (5 images)`; `none` when empty. Reasons read `2 zero-byte`."""
        listed = ", ".join(f"{n:,} {shown(v)}" if noun == "reason" else f"{shown(v)} ({n:,})"
                           for v, n in self.counts.items()) or "none"
        if self.other_values:
            listed += f" and {self.other_values:,} other {noun}s ({self.other_images:,} {unit})"
        return listed

    def to_json(self) -> dict:
        return {"counts": self.counts, "others": {"values": self.other_values, "images": self.other_images}}

    @classmethod
    def from_json(cls, data, where: str) -> Tally:
        if not isinstance(data, dict) or not isinstance(data.get("counts"), dict) \
                or not isinstance(data.get("others"), dict):
            raise ValueError(f"{where} is not {{counts: {{...}}, others: {{values, images}}}}")
        counts = data["counts"]
        if len(counts) > MAX_LISTED_VALUES:
            raise ValueError(f"{where}.counts lists over {MAX_LISTED_VALUES} values")
        for value, n in counts.items():
            _text(value, f"{where}.counts")
            _count(n, f"{where}.counts")
        others = data["others"]
        return cls(dict(counts), _count(others.get("values"), f"{where}.others.values"),
                   _count(others.get("images"), f"{where}.others.images"))


@dataclass(frozen=True)
class DatasetSummary:
    """What a prepared copy holds and what was left out, as `samplesize prepare` shows it.

    `classes` is the first `MAX_LISTED_CLASSES` classes in class order, `other_classes` the rest summed (their
    number and counts), `total` every class. Sizes are the source images' width x height before the resize.
    """

    classes: list[tuple[str, ImageCounts]]
    total: ImageCounts
    sizes: Tally
    modes: Tally
    skipped: Tally  # skip reasons, counted in files
    skipped_examples: list[str]
    duplicates: DuplicateImages  # identical images kept
    dropped_duplicates: int = 0  # copies `dataset.duplicates: drop` removed (also among the skipped files)
    other_classes: tuple[int, ImageCounts] | None = None

    @property
    def notable(self) -> bool:
        """Whether the report's run facts list it: files were skipped, duplicates kept or dropped, or groups drawn."""
        return bool(self.skipped.counts or self.skipped.other_images or self.duplicates.total
                    or self.dropped_duplicates or self.total.pool_groups is not None)

    def to_json(self) -> dict:
        out = {
            "classes": [{"name": name, **counts.to_json()} for name, counts in self.classes],
            "total": self.total.to_json(),
            "sizes": self.sizes.to_json(),
            "modes": self.modes.to_json(),
            "skipped": {**self.skipped.to_json(), "examples": self.skipped_examples},
            "duplicates": {**self.duplicates.to_json(), "dropped": self.dropped_duplicates},
        }
        if self.other_classes is not None:
            out["other_classes"] = {"classes": self.other_classes[0], **self.other_classes[1].to_json()}
        return out

    @classmethod
    def from_json(cls, data) -> DatasetSummary:
        """The record `to_json` wrote, checked; raises ValueError naming the part that is not one."""
        if not isinstance(data, dict):
            raise ValueError("summary is not an object")
        listed = data.get("classes")
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_LISTED_CLASSES:
            raise ValueError(f"summary.classes is not a list of 1 to {MAX_LISTED_CLASSES} classes")
        classes = [(_text(c.get("name") if isinstance(c, dict) else None, f"summary.classes[{i}].name"),
                    ImageCounts.from_json(c, f"summary.classes[{i}]")) for i, c in enumerate(listed)]
        other = data.get("other_classes")
        if other is not None:
            other = (_count(other.get("classes") if isinstance(other, dict) else None, "summary.other_classes.classes"),
                     ImageCounts.from_json(other, "summary.other_classes"))
        skipped = data.get("skipped")
        examples = skipped.get("examples") if isinstance(skipped, dict) else None
        if not isinstance(examples, list) or len(examples) > _EXAMPLES:
            raise ValueError(f"summary.skipped.examples is not a list of at most {_EXAMPLES} texts")
        return cls(classes, ImageCounts.from_json(data.get("total"), "summary.total"),
                   Tally.from_json(data.get("sizes"), "summary.sizes"),
                   Tally.from_json(data.get("modes"), "summary.modes"),
                   Tally.from_json(skipped, "summary.skipped"),
                   [_text(e, "summary.skipped.examples") for e in examples],
                   *_duplicates_from_json(data.get("duplicates")), other)

    def lines(self) -> list[str]:
        """The summary as short lines of text: a table of classes, then sizes, modes, skipped files, duplicates.

        Every text is quoted again (`shown`): the summary may have been read from a shared bucket."""
        grouped = self.total.pool_groups is not None
        header = ["class", "pool images", "test images", *(["pool groups", "test groups"] if grouped else [])]
        rows = [[shown(name, 40), *_cells(counts)] for name, counts in self.classes]
        if self.other_classes is not None:
            rows.append([f"({self.other_classes[0]} more classes)", *_cells(self.other_classes[1])])
        rows.append(["total", *_cells(self.total)])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        table = ["  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:]))]).rstrip()
                 for row in [header, *rows]]
        skipped = sum(self.skipped.counts.values()) + self.skipped.other_images
        out = [*table,
               f"source image sizes (width x height): {self.sizes.describe('size')}",
               f"source image modes: {self.modes.describe('mode')}",
               f"skipped files: {skipped}" + (f" ({self.skipped.describe('reason', 'files')})" if skipped else "")]
        out += [f"  skipped {shown(e, MAX_TEXT_CHARS)}" for e in self.skipped_examples]
        kept = shown(self.duplicates.describe(), 2 * MAX_TEXT_CHARS) if self.duplicates.total else "none"
        dropped = f"; {self.dropped_duplicates:,} copies dropped (dataset.duplicates: drop)" \
            if self.dropped_duplicates else ""
        out.append(f"duplicate images kept: {kept}{dropped}")
        return out


def summarize_dataset(data: LabelledImages, pool: np.ndarray, test: np.ndarray,
                      duplicates: DuplicateImages) -> DatasetSummary:
    """The summary of a split source: `pool` and `test` index `data`'s images; `duplicates` are those kept."""
    n_classes = len(data.class_names)
    ids = group_ids(data.groups)[1] if data.groups is not None else None

    def counts(classes: np.ndarray) -> ImageCounts:
        """The images (and distinct groups) of these classes in the pool and the test set."""
        parts = [rows[np.isin(data.labels[rows], classes)] for rows in (pool, test)]
        groups = [len(np.unique(ids[rows])) for rows in parts] if ids is not None else [None, None]
        return ImageCounts(len(parts[0]), len(parts[1]), *groups)

    listed = [(shown(data.class_names[c], _NAME_CHARS), counts(np.array([c])))
              for c in range(min(n_classes, MAX_LISTED_CLASSES))]
    rest = np.arange(MAX_LISTED_CLASSES, n_classes)
    used = np.concatenate([pool, test])
    formats = [data.formats[i] for i in used] if data.formats is not None else []
    skipped = data.skipped
    return DatasetSummary(
        classes=listed,
        total=counts(np.arange(n_classes)),
        sizes=Tally.of(Counter(f"{width}x{height}" for width, height, _ in formats)),
        modes=Tally.of(Counter(mode for _, _, mode in formats)),
        skipped=Tally.of(Counter(skipped.counts)),
        skipped_examples=[shown(e, _STORED_CHARS) for e in skipped.examples[:_EXAMPLES]],
        duplicates=DuplicateImages(dict(duplicates.counts),
                                   [shown(e, _STORED_CHARS) for e in duplicates.examples[:_EXAMPLES]]),
        dropped_duplicates=skipped.counts.get(DROPPED_REASON, 0),
        other_classes=(len(rest), counts(rest)) if len(rest) else None,
    )


def _duplicates_from_json(data) -> tuple[DuplicateImages, int]:
    """(the duplicates kept, the copies dropped) of a summary's `duplicates`, checked."""
    if not isinstance(data, dict):
        raise ValueError("summary.duplicates is not an object")
    try:
        found = DuplicateImages.from_json(data)
    except ValueError as exc:
        raise ValueError(f"summary.duplicates: {exc}") from None
    if len(found.counts) > 3 or len(found.examples) > _EXAMPLES:  # pool, test, pool/test
        raise ValueError(f"summary.duplicates holds over 3 counts or {_EXAMPLES} examples")
    for where, n in found.counts.items():
        _text(where, "summary.duplicates.counts")
        _count(n, "summary.duplicates.counts")
    examples = [_text(e, "summary.duplicates.examples") for e in found.examples]
    return DuplicateImages(found.counts, examples), _count(data.get("dropped"), "summary.duplicates.dropped")


def _cells(counts: ImageCounts) -> list[str]:
    groups = [counts.pool_groups, counts.test_groups] if counts.pool_groups is not None else []
    return [f"{n:,}" for n in (counts.pool_images, counts.test_images, *groups)]


def _count(value, where: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT):
        raise ValueError(f"{where} must be a whole number from 0 to {MAX_COUNT:,}")
    return value


def _text(value, where: str) -> str:
    if not (isinstance(value, str) and len(value) <= MAX_TEXT_CHARS):
        raise ValueError(f"{where} must be texts of at most {MAX_TEXT_CHARS} characters")
    return value
