"""How wide a learning curve's band is beyond the data: the calibrated quantiles and the levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .conditional import ConditionalBand


@dataclass(frozen=True)
class Calibration:
    """How the interval widens beyond the data.

    The base spread at n is sqrt(noise + between + (d * (k_slope * edge_slope +
    k_headroom * (1 - centre)))^2) with d = ln(n / largest size): the headroom part
    widens curves that look flat at their edge yet may keep rising. Beyond the data the
    80% band is centre + quantiles[h] * spread, where quantiles[h] = (low, high) are
    the 10% and 90% quantiles of held-out residuals divided by that spread, at
    h = log2(n / largest size) = 1, 2, 3 (2x, 4x, 8x); interpolated in between, the 8x
    pair beyond. Other levels scale the quantiles by z(level) / z(0.8).
    """

    k_slope: float
    k_headroom: float
    quantiles: tuple[tuple[float, float], ...]  # at 2x, 4x, 8x
    # when set, the multipliers beyond the data are functions of the pilot (conditional.py), and
    # `quantiles` is unused
    conditional: ConditionalBand | None = None


def base_spread(cal: Calibration, centre, noise, between, distance, edge_slope):
    """The spread that the calibrated quantiles multiply (see `Calibration`); distance = ln(n / largest)."""
    widen = distance * (cal.k_slope * edge_slope + cal.k_headroom * (1.0 - centre))
    return np.sqrt(noise + between + widen ** 2)


# Calibrated by bench/curve_calibration.py on bench/real_curves/corpus.json.gz (real curves,
# leave-dataset-out cross-validation; held-out figures in docs/learning-curves.md).
# Re-run that bench after changing the fit, and paste its "calibration:" line here.
CALIBRATION = Calibration(k_slope=0.25, k_headroom=0.02,
                          quantiles=((-1.0229, 1.7737), (-0.9031, 1.561), (-0.8689, 1.596)))




# p_reachable: the chance that the score reaches the target within this many times the
# largest measured size ("with this pipeline": far beyond that, the data is another project).
REACH_HORIZON = 64.0


# A prediction more than this many times the largest fitted size is a far extrapolation.
FAR_FACTOR = 4.0


LEVEL = 0.8  # the nominal level of every interval the package reports (curves, comparison, calibration)


# The level the extrapolation quantiles were calibrated at (calibration.py); other levels scale from it.
CALIBRATED_LEVEL = 0.8


class CurveFitError(DataError, ValueError):
    """The sizes and scores cannot support a learning-curve fit."""
