"""What a fitted curve answers: predictions, the size per target, the backtests and the validation.

A tiny test set measures a score only in steps of 1 / test size; the builders take that step
and the smallest sample a trial draws, so that their answers are never more precise than that:
a target's size is never below the smallest sample, and a backtest within half a step of its
interval is inside it (1.000 measured against 0.99999999 to 0.99999999 is agreement, not a miss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .curves import FAR_FACTOR, LEVEL, REACH_HORIZON, whole_size
from .plot_layout import CURVE_GRID_POINTS
from .summary import Backtest, Contradiction, Curve, CurveGrid, Prediction, SizeStats, TargetAnswer, Validation


def first_value(values: Any) -> float:
    """The one number in a fit's answer for a single size (an array of shape (1,) or a scalar)."""
    return float(np.asarray(values, float).reshape(-1)[0])


def prediction(fit: Any, n: float, label: str, pool_multiple: int | None = None) -> Prediction:
    low, high = fit.interval(np.array([n], float), level=LEVEL)
    return Prediction(
        sample_size=n, label=label, pool_multiple=pool_multiple,
        predicted=first_value(fit.predict(np.array([n], float))),
        interval=[first_value(low), first_value(high)],
        times_past_data=n / fit.max_size,
        far=bool(np.asarray(fit.is_far(n)).reshape(-1)[0]),
    )


def target_answer(fit: Any, target: float, best_measured: float | None = None,
                  smallest_sample: int | None = None) -> TargetAnswer:
    """The size `fit` needs for `target`, never below `smallest_sample` (None: no floor)."""
    est = fit.size_for(target, level=LEVEL)
    reachable = bool(est.reachable)
    size = whole_size(float(est.size)) if reachable else None
    interval = [whole_size(float(est.interval[0])), whole_size(float(est.interval[1]))]
    below = smallest_sample is not None and size is not None and size < smallest_sample
    if below:
        size = float(smallest_sample)
    if smallest_sample is not None:
        interval = [max(end, float(smallest_sample)) for end in interval]
    return TargetAnswer(
        target=target, reachable=reachable, sample_size=size, interval=interval,
        times_past_data=size / fit.max_size if size is not None else None,
        far=bool(est.far),
        reached_in_data=best_measured is not None and best_measured >= target,
        ceiling=fit.ceiling,
        p_reachable=float(est.p_reachable),
        reach_horizon=REACH_HORIZON * fit.max_size,
        below_smallest_sample=below,
    )


def curve_section(fit: Any, xlim: tuple[float, float]) -> Curve:
    """The fit's own record (`CurveFit.to_dict`), with its families as a list that marks the chosen ones,
    and the curve, its band and the other families sampled over the plot's range `xlim`."""
    details = fit.to_dict()
    families = [
        {"name": name, **record, "chosen": name == fit.family,
         "in_blend": fit.family == "blend" and fit.families[name].weight > 0}
        for name, record in details.pop("families").items()
    ]
    sizes = np.geomspace(*xlim, CURVE_GRID_POINTS)
    low, high = fit.interval(sizes, level=LEVEL)
    grid = CurveGrid(
        sizes=sizes.tolist(), mean=np.asarray(fit.predict(sizes), float).tolist(),
        low=np.asarray(low, float).tolist(), high=np.asarray(high, float).tolist(),
        families={name: np.asarray(f.predict(sizes), float).tolist()
                  for name, f in fit.families.items() if name != fit.family},
    )
    return Curve(family=fit.family, ceiling=fit.ceiling, max_fitted_size=fit.max_size, far_factor=FAR_FACTOR,
                 families=families, details=details, grid=grid)


def backtest_rows(fit: Any, per_size: list[SizeStats], test_step: float | None = None) -> list[Backtest]:
    """How `fit` (None: no curve) predicted each backtest split; a miss by less than half a test-score
    step (`test_step`, None when the test size is unknown) counts as inside."""
    rows = []
    for row in per_size:
        if not row.backtest:
            continue
        entry = Backtest(split=row.split, sample_size=row.sample_size, n=row.n, measured_mean=row.mean,
                         measured_std=row.std)
        if fit is not None:
            p = prediction(fit, row.sample_size, "backtest")
            low, high = p.interval
            entry.predicted, entry.interval, entry.times_past_data = p.predicted, p.interval, p.times_past_data
            entry.inside = bool(low <= row.mean <= high)
            if not entry.inside and test_step is not None and low - test_step / 2 <= row.mean <= high + test_step / 2:
                entry.inside = entry.within_test_resolution = True
        rows.append(entry)
    return rows


def validation(validation_fit: Any, answer_fit: Any, rows: list[Backtest],
               test_step: float | None = None) -> Validation | None:
    """How the curve fitted without the backtest splits did on them (`rows`), and whether any contradicts it.

    A backtest contradicts the fit when its measured mean lies outside its interval (at the summary's
    level) or above the fitted ceiling (by more than half a test-score step, for a backtest inside only
    within the test set's resolution): then the answer (refitted on all sizes) says so, not only the
    backtest table."""
    if validation_fit is None:
        return None
    ceiling = validation_fit.ceiling
    contradictions = []
    for b in rows:
        if b.predicted is None:
            continue
        above_ceiling = b.measured_mean > ceiling
        if b.within_test_resolution:
            contradicts = b.measured_mean > ceiling + test_step / 2
        else:
            contradicts = above_ceiling or not b.inside
        if contradicts:
            side = "above" if b.measured_mean > b.interval[1] else ("below" if b.measured_mean < b.interval[0]
                                                                    else "inside")
            contradictions.append(Contradiction(
                split=b.split, sample_size=b.sample_size, measured_mean=b.measured_mean, predicted=b.predicted,
                interval=b.interval, ceiling=ceiling, above_ceiling=bool(above_ceiling), side=side))
    return Validation(
        fitted_on="every measured size, backtest splits included" if answer_fit is not validation_fit
        else "every measured size (no backtest splits finished)",
        answer_max_size=answer_fit.max_size,
        validation_max_size=validation_fit.max_size,
        backtests=sum(b.predicted is not None for b in rows),
        inside=sum(bool(b.inside) for b in rows if b.predicted is not None),
        contradictions=contradictions,
    )
