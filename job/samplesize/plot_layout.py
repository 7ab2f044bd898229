"""What the report's plots show, shared by the summary's builder (which samples the curves for them)
and by `report.plots` (which draws them from the summary alone): the x-range, the grids, the classes.

A leaf: it imports nothing of the package.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

MAX_CLASSES_PLOTTED = 10  # a legend of 100 classes helps nobody; plot the weakest
CURVE_GRID_POINTS = 300  # points on the learning curve's grid (and the comparison's)
CLASS_GRID_POINTS = 200  # points on each per-class curve
COMPARISON_REACH = 4.0  # the comparison plot reaches this many times past the largest measured size


def plot_range(point_sizes: Iterable[float], prediction_sizes: Iterable[float],
               targets: Iterable[tuple[bool | None, Any]]) -> tuple[float, float]:
    """The learning-curve plot's sample-size range, from the trials' sizes, the predictions' sizes and
    each target's (reachable, sample size)."""
    sizes = list(point_sizes)
    low, high = min(sizes) / 1.5, max(sizes) * 1.3
    for n in prediction_sizes:
        high = max(high, n * 1.3)
    for reachable, size in targets:
        finite = size is not None and size != "inf" and math.isfinite(size)
        # Reach out for a target's size, but not so far that the data shrinks to a dot.
        if reachable and finite and size < high * 10:
            high = max(high, size * 1.3)
    return low, high


def plotted_classes(recalls: Iterable[float | None]) -> list[int]:
    """Which classes (positions in `per_class`) the per-class plot shows, weakest first: at most
    `MAX_CLASSES_PLOTTED`, from each class's recall at the largest size (None: nothing measured)."""
    measured = [(recall, i) for i, recall in enumerate(recalls) if recall is not None]
    return [i for _, i in sorted(measured, key=lambda pair: pair[0])][:MAX_CLASSES_PLOTTED]
