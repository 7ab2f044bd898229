"""How many labels to collect next: the assurance size of a target, and a plan over several rounds.

Teams label in rounds: collect some, rerun the sweep, decide again. `plan_collection` chooses this
round's size by minimising the expected cost, labels times `label_cost` plus `miss_cost` times the
chance of still missing the target after the remaining rounds, under the fit's calibrated
uncertainty:

- the chance that the target is reached by size n, F(n), is the calibrated band's `p_reaches`
  made non-decreasing in n, and scaled so that at the horizon it is the calibrated `p_reachable`
  (which also reads how far above the data the target is): held out, the band's chance alone was
  overconfident on some curves and underconfident on others (image curves);
- a round that collects up to n and misses learns that the target needs more than n; the next
  round's chances are F conditioned on that (F(m) - F(n)) / (1 - F(n)), so the uncertainty
  narrows as the curve is refitted on the new sizes;
- a round collects at most `max_step` times what the team has, since the band is calibrated only
  that far beyond the data;
- stopping is one of the choices: "reached" when the pool's chance is at least `assurance`, else
  "not worth it".

A dynamic programme over a grid of sizes gives the optimal first step, and following its policy
gives the chance of reaching the target this round and within the rounds, and the expected total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .band import CALIBRATION, REACH_HORIZON
from .fitted import LearningCurveFit

DEFAULT_ASSURANCE = 0.8
DEFAULT_ROUNDS = 3
# Missing the target costs, by default, as much as labelling this many times the current pool.
# Chosen on the "tune" half of the corpus's datasets by bench/collection_plan.py (3 rounds, held out
# by dataset): 20 pools reached 74% of reachable targets, 50 88%, 100 93% and 300 97%, while the
# unreachable ones it stopped for at once fell from 64% to 42%, 31% and 20%, and the 90th
# percentile of labels over the minimum rose past 2x at 300. 100 is the dearest miss that still
# keeps that tail at 2x (docs/collection-plan.md).
DEFAULT_MISS_POOLS = 100.0
# The band is calibrated up to 2^(its horizons) beyond the data (8x): one round goes no further.
DEFAULT_MAX_STEP = float(2 ** len(CALIBRATION.quantiles))
GRID_POINTS = 160


@dataclass(frozen=True)
class AssuranceSize:
    """The smallest size at which the chance of reaching `target` is at least `assurance`.

    `size` is math.inf when no size up to `REACH_HORIZON` x the largest measured size gets
    there; `probability` is then the best chance within that horizon, else the chance at `size`."""

    target: float
    assurance: float
    size: float
    probability: float


@dataclass(frozen=True)
class CollectionPlan:
    """This round's recommendation for one target (see `plan_collection`).

    `recommended_total` is the size to collect up to this round and `recommended_more` the labels
    to add to `current_size`; with `stop` both say "collect nothing" (`recommended_more` 0) and
    `reason` says why: `"reached"` (more labels are not worth it, and the pool's chance of reaching
    the target is at least `assurance`) or `"not worth it"` (trying costs more than missing). `p_this_round` is the
    chance that the recommended size reaches the target; `p_within_rounds` the chance that the
    plan reaches it within `rounds`; `expected_total` the expected labels in the end."""

    target: float
    current_size: float
    recommended_total: float
    recommended_more: float
    stop: bool
    reason: str | None
    p_this_round: float
    p_within_rounds: float
    expected_total: float
    rounds: int
    label_cost: float
    miss_cost: float
    max_step: float
    assurance: float


def assurance_size(fit: LearningCurveFit, target: float, assurance: float = DEFAULT_ASSURANCE) -> AssuranceSize:
    """The smallest size whose calibrated chance of reaching `target` (as the plan reads it: `reach_chances`) is
    >= `assurance`.

    Args:
        fit: the fitted curve.
        target: the score to reach.
        assurance: the chance asked for, in (0, 1). Defaults to `DEFAULT_ASSURANCE` (0.8).

    Returns:
        The `AssuranceSize`; its size is inf (with the best chance) when no size within the horizon
        gets there, and is found to within 0.1% in size.

    Raises:
        ValueError: `assurance` is not in (0, 1).
    """
    _check_chance("assurance", assurance)
    chance = _chance(fit, target)
    grid = np.geomspace(fit.min_size, REACH_HORIZON * fit.max_size, 4 * GRID_POINTS)
    p = chance(grid)
    hits = np.flatnonzero(p >= assurance)
    if hits.size == 0:
        return AssuranceSize(target, assurance, math.inf, float(p.max()))
    i = int(hits[0])
    if i == 0:
        return AssuranceSize(target, assurance, float(grid[0]), float(p[0]))
    low, high = float(grid[i - 1]), float(grid[i])  # bisect in log size between the grid points
    while high / low > 1.001:
        mid = math.sqrt(low * high)
        low, high = (mid, high) if chance(mid)[0] < assurance else (low, mid)
    return AssuranceSize(target, assurance, high, float(chance(high)[0]))


def plan_collection(fit: LearningCurveFit, target: float, current_size: float | None = None, *,
                    label_cost: float = 1.0, miss_cost: float | None = None, rounds: int = DEFAULT_ROUNDS,
                    max_step: float | None = None, assurance: float = DEFAULT_ASSURANCE) -> CollectionPlan:
    """How many labels to collect in this round to reach `target`, or to stop.

    Args:
        fit: the fitted curve.
        target: the score to reach.
        current_size: the labelled pool today. Defaults to the largest measured size.
        label_cost: the cost of one label, any unit, > 0. Defaults to 1.
        miss_cost: the cost of ending below the target, in that unit, >= 0. Defaults to
            `DEFAULT_MISS_POOLS` x `current_size` x `label_cost`.
        rounds: the rounds the team can still run, >= 1 (this one included). Defaults to 3.
        max_step: the largest multiple of what the team has that one round collects up to, > 1.
            Defaults to `DEFAULT_MAX_STEP` (how far the calibrated band is trusted).
        assurance: the chance at which a stop counts as "reached". Defaults to 0.8.

    Returns:
        The `CollectionPlan`.

    Raises:
        ValueError: a cost, size, step or round count out of its range.

    Example:

    >>> from samplesize.curves import fit_learning_curve
    >>> sizes = [50, 100, 200, 400, 800] * 3
    >>> fit = fit_learning_curve(sizes, [0.95 - 2.0 * n ** -0.5 for n in sizes], n_bootstrap=100, n_test=500)
    >>> plan = plan_collection(fit, 0.9, 800)
    >>> plan.stop, plan.recommended_total > 800, 0 < plan.p_this_round <= plan.p_within_rounds <= 1
    (False, True, True)
    >>> plan_collection(fit, 1.2, 800).reason
    'not worth it'
    """
    current = float(fit.max_size if current_size is None else current_size)
    miss = DEFAULT_MISS_POOLS * current * label_cost if miss_cost is None else float(miss_cost)
    step = DEFAULT_MAX_STEP if max_step is None else float(max_step)
    _check_plan_inputs(current, label_cost, miss, rounds, step)
    _check_chance("assurance", assurance)
    settings = dict(target=target, current_size=current, rounds=int(rounds), label_cost=float(label_cost),
                    miss_cost=miss, max_step=step, assurance=assurance)
    grid = np.unique(np.concatenate([[current], np.geomspace(current, max(current, REACH_HORIZON * fit.max_size),
                                                             GRID_POINTS)]))
    reach = reach_chances(fit, target, grid)
    policy = _optimal_policy(grid, reach, int(rounds), label_cost, miss, step)
    totals, p_round, p_within, expected = _follow(grid, reach, policy, int(rounds))
    if not totals:  # collecting more is not worth its labels: the pool reaches it already, or it is out of reach
        return CollectionPlan(recommended_total=current, recommended_more=0.0, stop=True,
                              reason="reached" if reach[0] >= assurance else "not worth it",
                              p_this_round=float(reach[0]), p_within_rounds=float(reach[0]),
                              expected_total=current, **settings)
    return CollectionPlan(recommended_total=totals[0], recommended_more=totals[0] - current, stop=False, reason=None,
                          p_this_round=p_round, p_within_rounds=p_within, expected_total=expected, **settings)


def reach_chances(fit: LearningCurveFit, target: float, sizes: np.ndarray) -> np.ndarray:
    """F(n): the chance that the target is reached by each of `sizes` (ascending), non-decreasing in n:
    the band's chance scaled to the calibrated `p_reachable` at the horizon (`_chance`)."""
    return np.maximum.accumulate(_chance(fit, target)(np.asarray(sizes, float)))


def _chance(fit: LearningCurveFit, target: float):
    """n -> the band's chance (`fit.p_reaches`) of reaching `target` by n, times p_reachable over the band's
    best chance within the horizon (so that it ends at p_reachable there), at most 1; 0 above 1."""
    if target > 1.0:
        return lambda n: np.zeros(np.size(n))
    best = float(fit.p_reaches(target, np.geomspace(fit.min_size, REACH_HORIZON * fit.max_size, GRID_POINTS)).max())
    scale = fit.p_reachable(target) / best if best > 0 else 1.0
    return lambda n: np.minimum(fit.p_reaches(target, n) * scale, 1.0)


def _optimal_policy(grid: np.ndarray, reach: np.ndarray, rounds: int, label_cost: float, miss: float,
                    max_step: float) -> list[np.ndarray]:
    """policy[r][i]: the grid index to collect up to with r + 1 rounds left, having missed at grid[i]
    (i itself: stop). The start, grid[0], is the pool, whose chance is not yet known to be 0."""
    n = len(grid)
    value = np.full(n, miss)  # no rounds left: a miss for sure, given it was missed at grid[i]
    policy = []
    gaps = grid[None, :] - grid[:, None]  # labels to go from grid[i] to grid[j]
    allowed = (gaps > 0) & (grid[None, :] <= max_step * grid[:, None] * (1 + 1e-9))
    for _ in range(rounds):
        # the chance of missing at j given a miss at i (the start: unconditional)
        still = np.clip(1 - reach[None, :], 0, 1) / np.clip(1 - reach[:, None], 1e-12, None)
        still[0] = 1 - reach
        cost = np.where(allowed, label_cost * gaps + np.clip(still, 0, 1) * value[None, :], np.inf)
        stop = miss * np.ones(n)
        stop[0] = miss * (1 - reach[0])
        best = np.argmin(cost, axis=1)
        take = cost[np.arange(n), best] < stop
        policy.append(np.where(take, best, np.arange(n)))
        value = np.where(take, cost[np.arange(n), best], stop)
    return policy[::-1]  # policy[0]: this round, with every round still ahead


def _follow(grid: np.ndarray, reach: np.ndarray, policy: list[np.ndarray],
            rounds: int) -> tuple[list[float], float, float, float]:
    """The totals the plan collects up to round by round (each round only if the last one missed),
    the chance of reaching the target this round and within the rounds, and the expected total."""
    i, totals, expected = 0, [], float(grid[0])
    for r in range(rounds):
        j = int(policy[r][i])
        if j == i:
            break
        # the first round always collects; a later one only when the one before it missed
        expected += (1.0 if r == 0 else 1.0 - float(reach[i])) * float(grid[j] - grid[i])
        totals.append(float(grid[j]))
        i = j
    p_round = float(reach[int(policy[0][0])])
    return totals, p_round, float(reach[i]), expected


def _check_chance(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def _check_plan_inputs(current: float, label_cost: float, miss: float, rounds: int, max_step: float) -> None:
    if not (math.isfinite(current) and current > 0):
        raise ValueError(f"current_size must be a positive size, got {current!r}")
    if not (math.isfinite(label_cost) and label_cost > 0):
        raise ValueError(f"label_cost must be > 0, got {label_cost!r}")
    if not (math.isfinite(miss) and miss >= 0):
        raise ValueError(f"miss_cost must be >= 0, got {miss!r}")
    if isinstance(rounds, bool) or int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be a whole number >= 1, got {rounds!r}")
    if not (math.isfinite(max_step) and max_step > 1):
        raise ValueError(f"max_step must be > 1 (a multiple of the pool), got {max_step!r}")
