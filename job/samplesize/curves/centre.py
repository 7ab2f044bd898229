"""A correction of the centre beyond the data for one kind of curve, and its band.

Two kinds get one: "image" (an image classifier on a backbone's features) and "cnn" (an image
classifier trained end to end from scratch, the `small_cnn` backbone). Held out on the real-curve
corpus, the fitted centre of both is pessimistic, and more so the further it extrapolates; a CNN's
small pilots are still speeding up, and its centre is far lower (docs/learning-curves.md). A
`CentreShift` raises it by `per_doubling * g`, where g grows with the log2 distance beyond the
largest measured size (capped at 8x: beyond that nothing measured says how it goes on) and, in the
"headroom" form, with the headroom below 1 of the uncorrected centre ("slope": with the edge slope).
The band is then computed about the corrected centre as for any curve, and widened (or narrowed) by
per-horizon amounts that make it hold 80% of the corrected residuals of that kind's curves
(split-conformal), and p_reachable goes through a logistic map fitted on that kind's forecasts (held
out, the shared map was underconfident for image curves). `centre_fit` fits all three on held-out
records (the bench's job); a sweep only applies the constants in `band.py`, one correction per kind
(`Calibration.shift_for`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .conditional import MIN_HALF_WIDTH

# the shift stops growing beyond this log2 distance (8x), the largest horizon it was fitted on
MAX_DOUBLINGS = 3.0
FORMS = ("distance", "headroom", "slope")
# the kinds of curve with a correction of their own: a field of `band.Calibration` each
CORRECTED_KINDS = ("image", "cnn")
KINDS = (None, "tabular") + CORRECTED_KINDS


@dataclass(frozen=True)
class CentreShift:
    """centre' = centre + per_doubling * g(h, centre, edge slope), h = log2(n / largest size) in [0, 3].

    g is h ("distance"), h * (1 - centre) ("headroom") or h * ln 2 * edge slope ("slope");
    `widen` holds the additive widening of the band's 10% and 90% multipliers at 2x, 4x, 8x
    (interpolated in h, the 8x one beyond), fitted on the corrected residuals. `p_coefs`: this
    kind's own p_reachable map (`conditional.map_p`), fitted on its forecasts under the corrected
    band; None: the conditional band's map, as for any curve.
    """

    per_doubling: float
    form: str = "headroom"
    widen: tuple[float, ...] = (0.0, 0.0, 0.0)
    p_coefs: tuple[float, ...] | None = None

    def shift(self, h, centre, edge_slope: float) -> np.ndarray:
        """The amount added to the centre at log2 distances h (0 inside the data)."""
        h = np.clip(np.asarray(h, float), 0.0, MAX_DOUBLINGS)
        if self.form == "distance":
            g = h
        elif self.form == "headroom":
            g = h * (1.0 - np.asarray(centre, float))
        else:
            g = h * math.log(2.0) * float(edge_slope)
        return self.per_doubling * g

    def widened(self, low: np.ndarray, high: np.ndarray, h) -> tuple[np.ndarray, np.ndarray]:
        """The band's multipliers (low, high) at log2 distances h, re-conformalized for this kind."""
        knots = np.arange(1.0, len(self.widen) + 1.0)
        w = np.interp(np.asarray(h, float), knots, np.asarray(self.widen, float))
        low, high = low - w, high + w
        mid, half = (low + high) / 2, np.maximum((high - low) / 2, MIN_HALF_WIDTH)
        return mid - half, mid + half


def check_kind(kind: str | None) -> str | None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}; pass kind='image' for an image classifier "
                         "on a backbone's features, kind='cnn' for one trained end to end from scratch")
    return kind


def shifted_records(records: Sequence, shift: CentreShift | None, kind: str = "image") -> list:
    """The records with the centre of those of `kind` corrected by `shift` (the others as they are)."""
    if shift is None:
        return list(records)
    return [replace(r, centre=float(np.clip(r.centre + shift.shift(math.log2(r.horizon), r.centre, r.edge_slope),
                                            0.0, 1.0)))
            if r.kind == kind else r for r in records]


def corrected_records(records: Sequence, cal) -> list:
    """The records with each one's centre corrected by `cal`'s correction of its kind, as a fit of that kind has it."""
    for kind in CORRECTED_KINDS:
        records = shifted_records(records, cal.shift_for(kind), kind)
    return list(records)


def widened_by_kind(cal, kinds: np.ndarray, low: np.ndarray, high: np.ndarray, h: np.ndarray):
    """The multipliers (low, high) of rows of kinds `kinds` at log2 distances h, each row's re-conformalized by
    `cal`'s correction of its kind (`CentreShift.widened`); rows of other kinds as they are."""
    low, high = np.array(low, float), np.array(high, float)
    for kind in CORRECTED_KINDS:
        shift, rows = cal.shift_for(kind), np.asarray(kinds) == kind
        if shift is not None and rows.any():
            low[rows], high[rows] = shift.widened(low[rows], high[rows], np.asarray(h, float)[rows])
    return low, high
