"""Uncertainty that depends on the curve: what the pilot shows, and the band and p_reachable it implies.

`pilot_features` describes a fit's measured sizes (noise relative to the test set, falls and
zig-zags, how flat it is, curvature, backtest error, edge slope, number of sizes, and whether it is
stuck: flat, with repetitions that differ by less than the test set's noise); `point_features`
adds what depends on the size asked for (distance, headroom, family disagreement). A
`ConditionalBand` turns them into the band's multipliers of the base spread beyond the data: its
10% and 90% quantiles are linear in a few of the features (penalised linear quantile regression
of held-out residuals divided by the spread; the features that are used were chosen by nested
leave-dataset-out cross-validation, the others have coefficient 0), then conformalized per
horizon (2x, 4x, 8x) so that the band holds 80% of held-out residuals. p_reachable goes through
a logistic map of the band's chance and `target_features` (see `ConditionalBand.calibrate_p`).
All of it is constants fitted by `bench/curve_calibration.py` (`conditional_fit.fit_conditional`);
nothing is trained when a sweep is aggregated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PILOT_FEATURES = ("noise", "falls", "zigzag", "flat", "curvature", "backtest", "slope", "n_sizes", "stuck")
POINT_FEATURES = ("distance", "headroom", "disagreement")
FEATURES = ("one",) + PILOT_FEATURES + POINT_FEATURES
# p_reachable's map: logit p = c0 + c1 logit(band's chance) + c2 u + c3 log(edge slope) + c4 log(1 + gap/se)
TARGET_FEATURES = ("one", "logit_p", "headroom_share", "log_slope", "log_gap_se")


@dataclass(frozen=True)
class ConditionalBand:
    """The band's (low, high) multipliers of the spread as linear functions of `FEATURES`.

    low(x) = low_coefs . x - shift[h], high(x) = high_coefs . x + shift[h], where the shifts at
    h = 2x, 4x, 8x are the split-conformal corrections (interpolated in log2 distance, the 8x one
    beyond). A stuck pilot (feature "stuck" >= STUCK) gets its own shifts, `stuck_shift`, fitted on
    stuck pilots alone (Mondrian conformal: such curves may take off or fall later, and one shift
    for all held them 68% of the time against 81% for the rest). `p_coefs`: the coefficients of `TARGET_FEATURES`
    in the logistic map that turns the band's chance of reaching a target into `p_reachable`
    (None: the band's chance as it is).
    """

    low_coefs: tuple[float, ...]
    high_coefs: tuple[float, ...]
    shift: tuple[float, ...]  # per horizon: the conformal widening of both ends
    p_coefs: tuple[float, ...] | None = None
    stuck_shift: tuple[float, ...] | None = None  # per horizon, for stuck pilots (None: `shift`)

    def multipliers(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) multipliers at feature rows x (m, len(FEATURES)) and log2 distances h (m,)."""
        knots = np.arange(1.0, len(self.shift) + 1.0)
        widen = np.interp(h, knots, np.asarray(self.shift, float))
        if self.stuck_shift is not None:
            widen = np.where(is_stuck(x), np.interp(h, knots, np.asarray(self.stuck_shift, float)), widen)
        low = x @ np.asarray(self.low_coefs) - widen
        high = x @ np.asarray(self.high_coefs) + widen
        mid, half = (low + high) / 2, np.maximum((high - low) / 2, MIN_HALF_WIDTH)
        return mid - half, mid + half

    def calibrate_p(self, p: float, target: tuple[float, float, float]) -> float:
        """p_reachable from the band's chance p and `target_features` (u, log slope, log gap/se)."""
        return map_p(self.p_coefs, p, target)


def map_p(coefs: tuple[float, ...] | None, p: float, target: tuple[float, float, float]) -> float:
    """The logistic map of `TARGET_FEATURES` with coefficients `coefs` (None: p as it is)."""
    if coefs is None:
        return float(p)
    x = np.array((1.0, logit(p)) + tuple(target))
    return float(1.0 / (1.0 + math.exp(-float(np.clip(x @ np.asarray(coefs), -30, 30)))))


STUCK = 0.5  # a pilot whose "stuck" feature is at least this is stuck (its own conformal shift, a band open
# above: `open_above`, and a warning)


def is_stuck(x: np.ndarray) -> np.ndarray:
    """Which feature rows (m, len(FEATURES)) are stuck pilots."""
    return np.asarray(x)[:, FEATURES.index("stuck")] >= STUCK


def open_above(high: np.ndarray, h: np.ndarray) -> np.ndarray:
    """A stuck pilot's upper band end (scores) at log2 distances h beyond the data: raised to the ceiling, 1,
    by 2x (linearly in h). No fitted constant: a pilot whose predictions do not depend on the sample says
    nothing of whether, or when, the learner starts to learn, and a calibration fitted without the learners
    whose stuck pilots take off cannot learn it (bench/stuck_pilots.py: only QDA's do; its stuck pilots held
    out by learner were covered 24% by the conformal shift alone)."""
    return high + (1.0 - high) * np.clip(h, 0.0, 1.0)


def band_ends(centre, q_low, q_high, spread, h, stuck) -> tuple[np.ndarray, np.ndarray]:
    """The band's ends in scores: centre + multipliers x spread, within [0, 1], and where `stuck` (a stuck pilot
    under the conditional band) the upper end open above (`open_above`) at log2 distances h beyond the data."""
    low = np.clip(centre + q_low * spread, 0.0, 1.0)
    high = np.clip(centre + q_high * spread, 0.0, 1.0)
    return low, np.where(stuck, open_above(high, h), high)


def logit(p: float) -> float:
    p = min(max(float(p), 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def target_features(fit, target: float) -> tuple[float, float, float]:
    """What p_reachable's map reads besides the band's chance: the share of the headroom above the
    largest measured mean that the target asks for, the log edge slope, and log(1 + the target's
    gap above that mean in standard errors of a measured mean)."""
    top = float(fit.means[-1])
    se = float(np.median(_se(fit)[0]))
    u = (float(target) - top) / max(1.0 - top, 1e-3)
    gap = max(float(target) - top, 0.0) / max(se, 1e-5)
    return (float(np.clip(u, -1.0, 1.0)), float(np.clip(math.log(fit.edge_slope + 1e-3), -7.0, 0.0)),
            float(min(math.log1p(gap), 6.0)))


MIN_HALF_WIDTH = 0.1  # in units of the spread: the band never collapses onto its centre


def _se(fit) -> tuple[np.ndarray, float]:
    """Standard errors of the measured means (floored at the test set's binomial noise) and that floor."""
    n_test = float(fit.method.get("n_test_floor", 1000) or 1000)
    p = float(np.clip(fit.means[-1], 0.02, 0.98))
    binom = math.sqrt(p * (1 - p) / n_test)
    sd = np.maximum(np.asarray(fit.stds, float), binom)
    return sd / np.sqrt(np.maximum(np.asarray(fit.counts, float), 1.0)), binom


def pilot_features(fit) -> dict[str, float]:
    """What the measured sizes show, each clipped to a modest range (see the module's docstring)."""
    m, s = np.asarray(fit.means, float), np.asarray(fit.sizes, float)
    se, binom = _se(fit)
    steps = np.diff(m)
    step_se = np.sqrt(se[1:] ** 2 + se[:-1] ** 2) if m.size > 1 else np.ones(0)
    z = steps / np.maximum(step_se, 1e-9)
    big = z[np.abs(z) > 2]
    rise = (m[-1] - m[0]) / max(math.sqrt(se[0] ** 2 + se[-1] ** 2), 1e-9)
    k = m.size // 2
    logs = np.log(s)
    early = (m[k] - m[0]) / max(logs[k] - logs[0], 1e-9) if m.size >= 3 else 0.0
    late = (m[-1] - m[k]) / max(logs[-1] - logs[k], 1e-9) if m.size >= 3 else 0.0
    errors = [f.extrapolation_error for f in fit.families.values() if f.weight > 0 and np.isfinite(f.extrapolation_error)]
    sd_obs = float(np.median(fit.stds)) if len(fit.stds) else 0.0
    return {
        "noise": float(np.clip(math.log(max(sd_obs, 1e-4) / binom), -2.0, 2.5)),
        "falls": float(np.clip(-z.min(), 0.0, 6.0)) if z.size else 0.0,
        "zigzag": float(np.sum(np.diff(np.sign(big)) != 0)) if big.size > 1 else 0.0,
        "flat": float(np.clip(2.0 - rise, 0.0, 4.0)),  # > 0: the pilot rose by less than 2 standard errors
        "curvature": float(np.clip((late - early) / (abs(early) + abs(late) + 0.01), -1.0, 1.0)),
        "backtest": float(np.clip(math.log(max(min(errors), 1e-5) / binom), -3.0, 3.0)) if errors else 0.0,
        "slope": float(np.clip(10.0 * fit.edge_slope, 0.0, 3.0)),
        "n_sizes": float(min(m.size, 12) / 6.0),
        # flat, and its repetitions differ by less than the test set's sampling noise: at pilot sizes a
        # learner that learns varies more than that, so its predictions barely depend on the sample (say,
        # one class for all); it has not started to learn, and its curve may take off later (0 to 1)
        "stuck": float(np.clip(2.0 - rise, 0.0, 2.0) / 2.0 * np.clip(-math.log(max(sd_obs, 1e-4) / binom), 0.0, 1.0)),
    }


def point_features(pilot: dict[str, float], h: np.ndarray, centre: np.ndarray, between: np.ndarray,
                   spread: np.ndarray) -> np.ndarray:
    """Feature rows (len(h), len(FEATURES)) at log2 distances h beyond the data."""
    rows = np.empty((h.size, len(FEATURES)))
    rows[:, 0] = 1.0
    for j, name in enumerate(PILOT_FEATURES, start=1):
        rows[:, j] = pilot[name]
    rows[:, -3] = np.clip(h, 0.0, 4.0)
    rows[:, -2] = 1.0 - centre
    rows[:, -1] = np.sqrt(between) / np.maximum(spread, 1e-9)
    return rows


def pilot_warnings(pilot: dict[str, float], n_sizes: int) -> list[str]:
    """Plain-language flags for a pilot that is ill-behaved (the band already reflects them)."""
    if n_sizes < 3:
        return []
    out = []
    if pilot["falls"] >= 3.0:
        out.append(f"The pilot's mean score falls between two sizes by {pilot['falls']:.1f} standard errors: "
                   "more than noise. The curve may have peaked; extrapolations from it are less certain.")
    if pilot["zigzag"] >= 2:
        out.append("The pilot's mean score zig-zags beyond its noise (it turns direction "
                   f"{int(pilot['zigzag'])} times by more than 2 standard errors); extrapolations from it are less certain.")
    if pilot["stuck"] >= STUCK:
        out.append("The pilot is flat, and its repetitions differ by less than the test set's sampling noise: the "
                   "learner's predictions barely depend on the sample (it may predict one class for all), so it may "
                   "not have started to learn. Its curve may rise sharply later, or fall: the band beyond the data reaches "
                   "up to a score of 1 by twice the largest size.")
    elif pilot["flat"] >= 1.0:
        out.append("The pilot is flat within its noise: from the smallest to the largest size the mean score "
                   "rises by less than its noise, so the curve's shape (and its ceiling) is barely measured.")
    return out
