"""What a sample size counts: images, or whole groups (patients) with `dataset.group_column`.

A sweep over groups draws whole patients, so its curve is fitted on the number of patients drawn, and
its answers are in patients: that is the number a study's budget is decided on. Images are shown beside
them, at the pool's images per group. Without groups everything stays in images, as before groups existed.

Nothing here imports TensorFlow: aggregation runs on a small CPU pod.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

_ID_SUFFIX = re.compile(r"[\s_-]*id$", re.IGNORECASE)


@dataclass(frozen=True)
class SizeUnit:
    """The unit of a sweep's sample sizes: `name` (plural, for the report) and, with groups, images per group."""

    name: str = "images"
    images_per_group: float | None = None  # the pool's; None when sizes count images

    @property
    def grouped(self) -> bool:
        return self.images_per_group is not None

    def images(self, size: float | None) -> float | None:
        """About how many images `size` groups hold, rounded up (None when sizes count images, or for no size)."""
        if not self.grouped or size is None:
            return None
        images = float(size) * self.images_per_group
        return float(math.ceil(images)) if math.isfinite(images) else math.inf

    def counted(self, results: Mapping[int, dict]) -> dict[int, dict]:
        """The results with `sample_size` in this unit: with groups, the groups drawn, and the images drawn as
        `sample_images`; without, the results themselves."""
        if not self.grouped:
            return dict(results)
        return {i: {**r, "sample_size": r["sample_groups"], "sample_images": r["sample_size"]}
                for i, r in results.items()}


def unit_noun(group_column: str) -> str:
    """The report's plural for a group column: "patient" and "PatientID" read "patients", "study" "studies";
    a name that is no plain word reads "groups"."""
    word = _ID_SUFFIX.sub("", group_column.strip()).lower()
    if not re.fullmatch(r"[a-z]{3,30}", word):
        return "groups"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def size_unit(group_column: str | None, results: Mapping[int, dict]) -> SizeUnit:
    """The unit of `results`' sizes: groups when they were drawn by group (they carry `sample_groups`).

    Images per group are the pool's (`pool_size / pool_groups`), what a further draw of whole groups holds on
    average; results disagreeing on the pool are warned about in the run facts."""
    pools = [(r["pool_size"], r["pool_groups"]) for r in results.values() if r.get("sample_groups") is not None]
    if not pools:
        return SizeUnit()
    images, groups = max(set(pools), key=pools.count)
    return SizeUnit(unit_noun(group_column) if group_column else "groups", images / groups)
