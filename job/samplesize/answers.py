"""What a fitted curve answers: predictions, the size per target, the backtests and the validation.

A tiny test set measures a score only in steps of 1 / test size; the builders take that step
and the smallest sample a trial draws, so that their answers are never more precise than that:
a target's size is never below the smallest sample, and a backtest within half a step of its
interval is inside it (1.000 measured against 0.99999999 to 0.99999999 is agreement, not a miss).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from .config import CollectionConfig
from .curves import FAR_FACTOR, LEVEL, REACH_HORIZON, whole_size
from .curves.collection import assurance_size, plan_collection
from .curves.gains import DEFAULT_INCREMENTS, gain_per_1000, predicted_gains
from .plot_layout import CURVE_GRID_POINTS
from .collection_summary import GainRow, NextSteps, TargetPlan
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


def next_steps(fit: Any, collection: CollectionConfig, targets: Sequence[TargetAnswer], current_size: float | None,
               predict_at: Sequence[float] = ()) -> NextSteps | None:
    """What more labels buy from `current_size` (the pool; None: the largest measured size) and, per target,
    the assurance size and this round's collection plan (`curves.plan_collection`); None without a fit."""
    if fit is None:
        return None
    current = float(current_size or fit.max_size)
    plans = [_target_plan(fit, collection, answer, current) for answer in targets]
    defaults = CollectionConfig()
    settings = {f.name: getattr(collection, f.name) for f in dataclasses.fields(collection)}
    # the values the plan takes for the keys left to its defaults (None)
    probe = plan_collection(fit, 1.0, current, label_cost=collection.label_cost, miss_cost=collection.miss_cost,
                            max_step=collection.max_step)
    settings.update(miss_cost=probe.miss_cost, max_step=probe.max_step)
    return NextSteps(
        current_size=current, score_now=first_value(fit.predict(np.array([current]))),
        gain_per_1000=gain_per_1000(fit, current), gains=_gain_rows(fit, current, predict_at), plans=plans,
        settings=settings, defaults=[f.name for f in dataclasses.fields(collection)
                                     if getattr(collection, f.name) == getattr(defaults, f.name)])


def _gain_rows(fit: Any, current: float, predict_at: Sequence[float]) -> list[GainRow]:
    """The gains at +25/50/100/300% of the pool and at each `predict_at` size beyond it."""
    more = [(inc * current, f"+{inc:.0%}") for inc in DEFAULT_INCREMENTS]
    totals = {round(current + m) for m, _ in more}
    more += [(float(n) - current, "predict_at") for n in sorted(set(predict_at)) if n > current and n not in totals]
    gains = predicted_gains(fit, current, [m for m, _ in more])
    scores = fit.predict(np.array([g.total for g in gains], float))
    return [GainRow(more=g.more, total=g.total, label=label, gain=g.gain, interval=list(g.interval), score=float(s))
            for g, (_, label), s in zip(gains, more, scores)]


def _target_plan(fit: Any, collection: CollectionConfig, answer: TargetAnswer, current: float) -> TargetPlan:
    assured = assurance_size(fit, answer.target, collection.assurance)
    plan = plan_collection(fit, answer.target, current, label_cost=collection.label_cost,
                           miss_cost=collection.miss_cost, rounds=collection.rounds,
                           max_step=collection.max_step, assurance=collection.assurance)
    return TargetPlan(
        target=answer.target, sample_size=answer.sample_size, p_reachable=answer.p_reachable,
        assurance_size=whole_size(assured.size), assurance_probability=assured.probability,
        stop=plan.stop, reason=plan.reason, recommended_total=whole_size(plan.recommended_total),
        recommended_more=max(0.0, whole_size(plan.recommended_total) - current), p_this_round=plan.p_this_round,
        p_within_rounds=plan.p_within_rounds, expected_total=whole_size(plan.expected_total))
