"""A correction of the centre beyond the data for one kind of curve (image classifiers), and its band.

Held out on the real-curve corpus, the fitted centre of image curves is pessimistic, and more so
the further it extrapolates (docs/learning-curves.md). A `CentreShift` raises it by
`per_doubling * g`, where g grows with the log2 distance beyond the largest measured size
(capped at 8x: beyond that nothing measured says how it goes on) and, in the "headroom" form,
with the headroom below 1 of the uncorrected centre. The band is then computed about the
corrected centre as for any curve, and widened (or narrowed) by per-horizon amounts that make it
hold 80% of the corrected residuals of image curves (split-conformal). `fit_centre_shift` fits
both on held-out records (the bench's job); a sweep only applies the constants in `band.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

# the shift stops growing beyond this log2 distance (8x), the largest horizon it was fitted on
MAX_DOUBLINGS = 3.0
FORMS = ("distance", "headroom", "slope")
KINDS = (None, "tabular", "image")


@dataclass(frozen=True)
class CentreShift:
    """centre' = centre + per_doubling * g(h, centre, edge slope), h = log2(n / largest size) in [0, 3].

    g is h ("distance"), h * (1 - centre) ("headroom") or h * ln 2 * edge slope ("slope");
    `widen` holds the additive widening of the band's 10% and 90% multipliers at 2x, 4x, 8x
    (interpolated in h, the 8x one beyond), fitted on the corrected residuals.
    """

    per_doubling: float
    form: str = "headroom"
    widen: tuple[float, ...] = (0.0, 0.0, 0.0)

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
        from .conditional import MIN_HALF_WIDTH

        knots = np.arange(1.0, len(self.widen) + 1.0)
        w = np.interp(np.asarray(h, float), knots, np.asarray(self.widen, float))
        low, high = low - w, high + w
        mid, half = (low + high) / 2, np.maximum((high - low) / 2, MIN_HALF_WIDTH)
        return mid - half, mid + half


def check_kind(kind: str | None) -> str | None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}; pass kind='image' for an image classifier")
    return kind


def shifted_records(records: Sequence, shift: CentreShift | None, kind: str = "image") -> list:
    """The records with the centre of those of `kind` corrected by `shift` (the others as they are)."""
    if shift is None:
        return list(records)
    return [replace(r, centre=float(np.clip(r.centre + shift.shift(math.log2(r.horizon), r.centre, r.edge_slope),
                                            0.0, 1.0)))
            if r.kind == kind else r for r in records]


ESTIMATORS = ("mean", "ls")
# the candidates that `choose_centre_shift` picks from: (form, estimator), and no shift at all
CANDIDATES = (("none", "mean"),) + tuple((f, e) for f in FORMS for e in ESTIMATORS)


def fit_centre_shift(records: Sequence, cal, form: str = "headroom", kind: str = "image",
                     reconformalize: bool = True, estimator: str = "mean") -> CentreShift | None:
    """The shift of `kind`'s centre on held-out records, then the per-horizon conformal widening of
    `cal`'s band on the corrected records. None without such records.

    per_doubling: sum(truth - centre) / sum(g), so that the corrected records' mean signed error is
    0 ("mean"), or least squares through 0 of (truth - centre) on g ("ls"); clipped at 0 either
    way (the correction only raises the centre, so the corrected curve keeps rising). form "none":
    no shift, the band re-conformalized only."""
    from .calibration import HORIZONS
    from .conditional_fit import _conformal_shift, record_multipliers, record_spread

    mine = [r for r in records if r.kind == kind]
    if not mine:
        return None
    a = 0.0
    if form != "none":
        unit = CentreShift(1.0, form)
        g = np.array([float(unit.shift(math.log2(r.horizon), r.centre, r.edge_slope)) for r in mine])
        resid = np.array([r.truth - r.centre for r in mine])
        a = float(resid.sum() / max(g.sum(), 1e-12) if estimator == "mean" else g @ resid / max(g @ g, 1e-12))
        a = max(a, 0.0)
    else:
        form = "distance"
    shift = CentreShift(round(a, 4), form)
    if not reconformalize or cal.conditional is None:
        return shift
    moved = shifted_records(mine, shift, kind)
    spread = record_spread(moved, cal.k_slope, cal.k_headroom)
    q = record_multipliers(moved, cal, spread)
    y = np.array([r.truth - r.centre for r in moved]) / np.maximum(spread, 1e-9)
    e = np.maximum(q[:, 0] - y, y - q[:, 1])
    hz = np.array([r.horizon for r in moved])
    widen = tuple(round(_conformal_shift(e[hz == h]), 4) if (hz == h).any() else 0.0 for h in HORIZONS)
    return replace(shift, widen=widen)


def image_interval_score(records: Sequence, cal, kind: str = "image") -> float:
    """The mean over horizons of the mean interval score of `kind`'s records under `cal`."""
    from .calibration import _interval_outcomes

    mine = [r for r in records if r.kind == kind]
    score = _interval_outcomes(mine, cal)["interval_score"]
    hz = np.array([r.horizon for r in mine])
    return float(np.mean([score[hz == h].mean() for h in np.unique(hz)]))


def choose_centre_shift(records: Sequence, cal, kind: str = "image") -> tuple[str, str]:
    """The (form, estimator) of CANDIDATES with the lowest interval score of `kind`'s records, each
    learner group left out in turn (called inside the bench's cross-validation, this is the nested
    choice: within a fold by dataset the training image curves may all come from one dataset, so the
    inner folds leave out learner groups). Ties go to the earlier candidate."""
    mine = [r for r in records if r.kind == kind]
    groups = sorted({r.learner_group for r in mine})
    scores = {}
    for form, estimator in CANDIDATES:
        total, count = 0.0, 0
        for g in groups:
            train = [r for r in mine if r.learner_group != g]
            test = [r for r in mine if r.learner_group == g]
            shift = fit_centre_shift(train, cal, form, kind, estimator=estimator)
            total += image_interval_score(test, replace(cal, image=shift), kind) * len(test)
            count += len(test)
        scores[form, estimator] = total / max(count, 1)
    return min(scores, key=lambda k: (round(scores[k], 6), CANDIDATES.index(k)))
