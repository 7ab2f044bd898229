"""Fit one kind's correction of the centre (`centre.CentreShift`: image curves, CNN curves) on held-out
records: the bench's job (bench/curve_calibration.py), never a sweep's. `fit_centre_shift` fits one form;
`choose_centre_shift` picks the form and estimator from `CANDIDATES` by leave-learner-group-out
interval score of the kind's records; `fit_kind_p_map` fits the kind's own p_reachable map."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from .calibration import HORIZONS, outcomes
from .centre import FORMS, CentreShift, shifted_records
from .conditional_fit import conformal_shift, fit_p_map, forecasts, record_multipliers, record_spread

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
    cal = cal.with_shift(kind, None)  # the widening is fitted against the band without it
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
    widen: list[float] = []
    for h in HORIZONS:  # a horizon without records keeps the nearer one's widening (the CNN ladders stop at 4x)
        widen.append(round(conformal_shift(e[hz == h]), 4) if (hz == h).any() else (widen[-1] if widen else 0.0))
    return replace(shift, widen=tuple(widen))


def kind_interval_score(records: Sequence, cal, kind: str = "image") -> float:
    """The mean over horizons of the mean interval score of `kind`'s records under `cal`."""
    mine = [r for r in records if r.kind == kind]
    score = np.array([row["interval_score"] for row in outcomes(mine, cal, sizes=False)])
    hz = np.array([r.horizon for r in mine])
    return float(np.mean([score[hz == h].mean() for h in np.unique(hz)]))


def inner_groups(records: Sequence) -> tuple[str, list[str]]:
    """What the inner folds leave out, and its values: learner groups, or learners where the records hold
    fewer than two groups (the CNN curves are one group, "cnn", of many architectures)."""
    for key in ("learner_group", "learner"):
        groups = sorted({getattr(r, key) for r in records})
        if len(groups) >= 2:
            break
    return key, groups


def choose_centre_shift(records: Sequence, cal, kind: str = "image") -> tuple[str, str]:
    """The (form, estimator) of CANDIDATES with the lowest interval score of `kind`'s records, each
    learner group (`inner_groups`) left out in turn (called inside the bench's cross-validation, this is the nested
    choice: within a fold by dataset the training image curves may all come from one dataset, so the
    inner folds leave out learner groups). Ties go to the earlier candidate."""
    mine = [r for r in records if r.kind == kind]
    key, groups = inner_groups(mine)
    scores = {}
    for form, estimator in CANDIDATES:
        total, count = 0.0, 0
        for g in groups:
            train = [r for r in mine if getattr(r, key) != g]
            test = [r for r in mine if getattr(r, key) == g]
            shift = fit_centre_shift(train, cal, form, kind, estimator=estimator)
            total += kind_interval_score(test, cal.with_shift(kind, shift), kind) * len(test)
            count += len(test)
        scores[form, estimator] = total / max(count, 1)
    return min(scores, key=lambda k: (round(scores[k], 6), CANDIDATES.index(k)))


def fit_kind_p_map(records: Sequence, cal, form: str, estimator: str = "mean",
                   kind: str = "image") -> tuple[float, ...] | None:
    """The logistic p_reachable map (`conditional.map_p`) of `kind`'s fits under `cal`'s band with
    its correction of that kind, fitted on cross-fitted forecasts: each learner group's forecasts
    come from the correction refitted without that group (so that its band is out of sample).
    None with fewer than two learner groups of that kind."""
    mine = [r for r in records if r.kind == kind]
    key, groups = inner_groups(mine)
    if len(groups) < 2:
        return None
    raw, hit, extra = [], [], []
    for g in groups:
        shift = fit_centre_shift([r for r in mine if getattr(r, key) != g], cal, form, kind, estimator=estimator)
        p, y, x = forecasts([r for r in mine if getattr(r, key) == g], cal.with_shift(kind, shift))
        raw.append(p), hit.append(y), extra.append(x)
    return fit_p_map(np.concatenate(raw), np.concatenate(extra), np.concatenate(hit))
