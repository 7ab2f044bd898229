"""How wide a learning curve's band is beyond the data: the calibrated quantiles and the levels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import DataError
from .centre import CORRECTED_KINDS, CentreShift
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
    # the same for image classifiers trained end to end from scratch (kind="cnn"): their pilots are still
    # speeding up, and the image curves' correction leaves their centre far too low
    cnn: CentreShift | None = None

    def shift_for(self, kind: str | None) -> CentreShift | None:
        """The correction of the centre of fits of `kind` (None for a kind without one)."""
        return getattr(self, kind) if kind in CORRECTED_KINDS else None

    def with_shift(self, kind: str, shift: CentreShift | None) -> "Calibration":
        """This calibration with `shift` as its correction of `kind`."""
        return replace(self, **{kind: shift})


def base_spread(cal: Calibration, centre, noise, between, distance, edge_slope):
    """The spread that the calibrated quantiles multiply (see `Calibration`); distance = ln(n / largest)."""
    widen = distance * (cal.k_slope * edge_slope + cal.k_headroom * (1.0 - centre))
    return np.sqrt(noise + between + widen ** 2)


# Calibrated by bench/curve_calibration.py on bench/real_curves/corpus.json.gz (1,361 real curves,
# 125 datasets, 324 image curves from 4 image datasets: 296 on a backbone's features, 28 CNNs trained end
# to end; the conditional band with its own conformal shift for stuck pilots, and the p_reachable map;
# feature set "shape+slope": distance, curvature, family disagreement, edge slope; held-out figures in
# docs/learning-curves.md). Set `conditional=None` to go back to the global quantiles. Re-run that bench
# after changing the fit, and paste its "conditional calibration fitted on every curve" line here.
# `image` and `cnn`: the correction of each kind's centre (fits made with kind="image" or "cnn"), its
# re-conformalized band and its own p_reachable map, chosen and fitted by the same bench's last lines
# against this band. Set either to None to treat that kind's curves as any other.
CALIBRATION = Calibration(k_slope=0.25, k_headroom=0.05, quantiles=((-1.1443, 1.2612), (-0.9626, 1.1279), (-0.929, 1.2151)), conditional=ConditionalBand(low_coefs=(-1.05603, 0.0, 0.0, 0.0, 0.0, 0.07042, 0.0, 0.04808, 0.0, 0.0, 0.14201, 0.0, -0.59164), high_coefs=(1.5627, 0.0, 0.0, 0.0, 0.0, -0.44691, 0.0, 0.1369, 0.0, 0.0, -0.09027, 0.0, -1.54179), shift=(0.0224, -0.059, 0.0036), p_coefs=(2.9207, 0.1434, -1.4702, 0.3224, -1.4866), stuck_shift=(1.6941, 1.768, 3.1747)),
                          image=CentreShift(per_doubling=0.0336, form='headroom', widen=(0.0118, 0.026, 0.0034), p_coefs=(2.2846, 0.3211, -2.9273, -0.0755, -1.0634)),
                          cnn=CentreShift(per_doubling=0.3879, form='slope', widen=(0.3487, 0.5508, 0.5508), p_coefs=(1.4742, 1.0583, -3.6703, -0.1171, -0.2311)))




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
