"""How wide a learning curve's band is beyond the data: the calibrated quantiles and the levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .centre import CentreShift
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
    # the centre correction (and its band's re-conformalization) of image curves, applied to fits
    # made with kind="image" (centre.py); None: image curves are treated as any other
    image: CentreShift | None = None


def base_spread(cal: Calibration, centre, noise, between, distance, edge_slope):
    """The spread that the calibrated quantiles multiply (see `Calibration`); distance = ln(n / largest)."""
    widen = distance * (cal.k_slope * edge_slope + cal.k_headroom * (1.0 - centre))
    return np.sqrt(noise + between + widen ** 2)


# Calibrated by bench/curve_calibration.py on bench/real_curves/corpus.json.gz (1,345 real curves,
# 125 datasets, 308 image curves from 4 image datasets; the conditional band with its own conformal
# shift for stuck pilots, and the p_reachable map; feature set "shape": distance, curvature, family
# disagreement; held-out figures in docs/learning-curves.md). Set `conditional=None` to go back to the
# global quantiles. Re-run that bench after changing the fit, and paste its "conditional calibration
# fitted on every curve" line here. `image`: the correction of image curves' centre (fits made with
# kind="image"), its re-conformalized band and their own p_reachable map, chosen and fitted by the same
# bench's last line against this band. Set `image=None` to treat image curves as any other.
CALIBRATION = Calibration(k_slope=0.25, k_headroom=0.05, quantiles=((-1.1597, 1.2481), (-0.9723, 1.1239), (-0.929, 1.2151)), conditional=ConditionalBand(low_coefs=(-1.06826, 0.0, 0.0, 0.0, 0.0, 0.07241, 0.0, 0.0, 0.0, 0.0, 0.15591, 0.0, -0.58654), high_coefs=(1.58577, 0.0, 0.0, 0.0, 0.0, -0.45805, 0.0, 0.0, 0.0, 0.0, -0.07816, 0.0, -1.53546), shift=(0.0409, -0.0661, 0.0289), p_coefs=(2.9455, 0.1146, -1.3929, 0.2969, -1.63), stuck_shift=(1.7105, 1.7471, 3.1858)),
                          image=CentreShift(per_doubling=0.0328, form='headroom', widen=(0.0176, 0.0398, -0.0193), p_coefs=(2.3543, 0.2646, -3.1112, -0.0558, -1.0298)))




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
