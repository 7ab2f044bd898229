"""Learning curves: fit score-vs-sample-size families, blend them, invert them.

`fit_learning_curve(sizes, scores)` takes one (sample size, score) pair per
trial and returns a `LearningCurveFit`:

- every family in `FAMILIES` is fitted by weighted nonlinear least squares to
  the per-size mean scores, each size weighted by n_trials / variance: many
  seeded starts in one vectorised Levenberg-Marquardt batch, the best polished
  by `scipy.optimize.least_squares` (trust-region with bounds);
- each family is backtested: refitted without the largest size(s) and scored
  on how well it predicts them; the point prediction is a blend of the
  families with a ceiling, weighted by that backtest error (or the single best);
- intervals combine a bootstrap over trials (noise), the spread between the
  blended families (shape disagreement) and a term that grows with the
  log-distance beyond the largest measured size, in proportion to the edge
  slope and to the headroom below 1; beyond the data the band's ends are
  quantiles of held-out residuals (split-conformal), calibrated on a corpus of
  real learning curves by `bench/curve_calibration.py` (docs/learning-curves.md);
- `size_for(target)` inverts the curve and its band, and says how likely the
  target is reachable at all (`p_reachable`).

Assumptions: scores are "higher is better" metrics in [0, 1] (accuracy,
balanced accuracy, macro F1, AUC) whose expected value does not decrease as
the sample size grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import brentq, least_squares
from scipy.special import expit
from scipy.stats import norm

from .errors import DataError
from .jsonsafe import json_safe

__all__ = ["FAMILIES", "Calibration", "CurveFitError", "Family", "FamilyFit", "LearningCurveFit", "SizeEstimate",
           "fit_learning_curve"]


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


def base_spread(cal: Calibration, centre, noise, between, distance, edge_slope):
    """The spread that the calibrated quantiles multiply (see `Calibration`); distance = ln(n / largest)."""
    widen = distance * (cal.k_slope * edge_slope + cal.k_headroom * (1.0 - centre))
    return np.sqrt(noise + between + widen ** 2)


# Calibrated by bench/curve_calibration.py on bench/real_curves/corpus.json.gz (real curves,
# leave-dataset-out cross-validation; held-out figures in docs/learning-curves.md).
# Re-run that bench after changing the fit, and paste its "calibration:" line here.
CALIBRATION = Calibration(k_slope=0.25, k_headroom=0.02,
                          quantiles=((-1.0229, 1.7737), (-0.9031, 1.561), (-0.8689, 1.596)))
# Kept for callers of the previous API: the slope multiplier of the distance term.
EXTRAPOLATION_K = CALIBRATION.k_slope
# p_reachable: the chance that the score reaches the target within this many times the
# largest measured size ("with this pipeline": far beyond that, the data is another project).
REACH_HORIZON = 64.0
# Test-set size assumed for the binomial noise floor when the caller gives none.
DEFAULT_N_TEST = 1000
DEFAULT_BOOTSTRAP = 1000  # resamples for intervals: the CLI's and every fit's default
# Weak pull of shape parameters toward typical values, in standard errors per prior
# scale: it only matters where the data cannot decide (a 4-parameter family on 3-4 sizes).
PRIOR_WEIGHT = 0.1
N_STARTS = 16
MAX_BACKTEST_FOLDS = 2
# Families lighter than this keep their full-data fit in every bootstrap replicate.
MIN_BOOTSTRAP_WEIGHT = 0.01
# A prediction more than this many times the largest fitted size is a far extrapolation.
FAR_FACTOR = 4.0
LEVEL = 0.8  # the nominal level of every interval the package reports (curves, comparison, calibration)
# The level the extrapolation quantiles were calibrated at (calibration.py); other levels scale from it.
CALIBRATED_LEVEL = 0.8


class CurveFitError(DataError, ValueError):
    """The sizes and scores cannot support a learning-curve fit."""


# --------------------------------------------------------------------------- families

@dataclass(frozen=True)
class Family:
    """A curve family.

    `formula`, `param_names` and `bounds` describe the natural parameters (in terms of
    the sample size n) shown in reports. Internally each family is fitted on
    u = n / scale (scale = the largest fitted size) with a reparameterisation that
    keeps the problem well conditioned; `natural` converts back.
    """

    name: str
    formula: str
    param_names: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    has_ceiling: bool
    curve: Callable = field(repr=False)  # (theta[..., P], u[M]) -> y[..., M]
    lower: tuple[float, ...] = field(repr=False)
    upper: tuple[float, ...] = field(repr=False)
    start: Callable = field(repr=False)  # (rng, DataSummary) -> theta
    natural: Callable = field(repr=False)  # (theta, scale) -> dict
    limit: Callable = field(repr=False)  # theta -> ceiling
    prior: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)  # index -> (centre, scale)

    @property
    def n_params(self) -> int:
        return len(self.lower)


def _p(theta):
    """Columns of theta, shaped to broadcast against a size axis."""
    theta = np.asarray(theta, float)
    return [theta[..., i, None] for i in range(theta.shape[-1])]


@dataclass(frozen=True)
class _DataSummary:
    first: float  # mean score at the smallest size
    last: float  # mean score at the largest size
    log_u_min: float  # log(smallest / largest size), < 0


def _ceiling_start(rng, d: _DataSummary) -> float:
    return float(min(1.0, d.last + rng.uniform(0.003, 0.25) * max(1.0 - d.last, 0.05) * 4))


def _pow2_curve(theta, u):
    a, b = _p(theta)
    return a * np.exp(b * np.log(u))


def _pow2_start(rng, d):
    rise = max(d.last, 1e-3) / max(d.first, 1e-3)
    b = max(math.log(max(rise, 1.0 + 1e-4)) / -d.log_u_min, 1e-3) * rng.uniform(0.5, 1.5)
    return [d.last, b]


def _pow3_curve(theta, u):
    a, g, c = _p(theta)
    return a - g * np.exp(-c * np.log(u))


def _pow3_start(rng, d):
    a = _ceiling_start(rng, d)
    return [a, max(a - d.last, 1e-4), math.exp(rng.uniform(math.log(0.1), math.log(1.5)))]


def _pow4_curve(theta, u):
    a, g, c, off = _p(theta)
    return a - g * ((u + off) / (1.0 + off)) ** (-c)


def _pow4_start(rng, d):
    return _pow3_start(rng, d) + [float(rng.choice([0.0, rng.uniform(0.0, 0.3)]))]


def _mmf4_curve(theta, u):
    c, g, beta, dd = _p(theta)
    return c - g * expit(beta - dd * np.log(u))


def _mmf4_start(rng, d):
    c = _ceiling_start(rng, d)
    g = min(1.0, max(c - d.first, 1e-3) * rng.uniform(1.0, 1.6))
    frac = min(max((c - d.last) / g, 1e-4), 1 - 1e-4)  # makes the start pass through the last mean
    return [c, g, math.log(frac / (1 - frac)), math.exp(rng.uniform(math.log(0.3), math.log(2.0)))]


def _wbl4_curve(theta, u):
    c, b, alpha, dd = _p(theta)
    return c - b * np.exp(-np.exp(alpha + dd * np.log(u)))


def _wbl4_start(rng, d):
    c = _ceiling_start(rng, d)
    b = min(1.0, max(c - d.first, 1e-3) * rng.uniform(1.0, 1.6))
    frac = min(max((c - d.last) / b, 1e-4), 1 - 1e-4)
    return [c, b, math.log(-math.log(frac)), math.exp(rng.uniform(math.log(0.2), math.log(1.5)))]


def _exp3_curve(theta, u):
    a, b, gamma = _p(theta)
    return a - b * np.exp(-np.exp(gamma) * u)


def _exp3_start(rng, d):
    a = _ceiling_start(rng, d)
    gamma = rng.uniform(math.log(0.5), math.log(20.0))
    b = min(1.0, max(a - d.last, 1e-4) * math.exp(math.exp(gamma)))
    return [a, b, gamma]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            name="pow2", formula="a * n^b", param_names=("a", "b"),
            bounds={"a": (0.0, math.inf), "b": (0.0, 3.0)}, has_ceiling=False,
            # a is the value at the largest size (<= 1); b >= 0 keeps it non-decreasing.
            curve=_pow2_curve, lower=(1e-6, 0.0), upper=(1.0, 3.0), start=_pow2_start,
            natural=lambda t, s: {"a": t[0] * s ** (-t[1]), "b": t[1]},
            limit=lambda t: math.inf if t[1] > 1e-9 else float(t[0]),
        ),
        Family(
            name="pow3", formula="a - b * n^(-c)", param_names=("a", "b", "c"),
            bounds={"a": (0.0, 1.0), "b": (0.0, math.inf), "c": (0.001, 4.0)}, has_ceiling=True,
            # internally b is the gap below the ceiling at the largest size: in [0, 1].
            curve=_pow3_curve, lower=(0.0, 0.0, 1e-3), upper=(1.0, 1.0, 4.0), start=_pow3_start,
            natural=lambda t, s: {"a": t[0], "b": t[1] * s ** t[2], "c": t[2]},
            limit=lambda t: float(t[0]), prior={2: (0.5, 1.0)},
        ),
        Family(
            name="pow4", formula="a - b * (n + d)^(-c)", param_names=("a", "b", "c", "d"),
            bounds={"a": (0.0, 1.0), "b": (0.0, math.inf), "c": (0.001, 4.0), "d": (0.0, math.inf)},
            has_ceiling=True,
            # d shifts the start of the curve (a finite score at n = 0); internally d is in
            # units of the largest size and b is the gap at the largest size.
            curve=_pow4_curve, lower=(0.0, 0.0, 1e-3, 0.0), upper=(1.0, 1.0, 4.0, 4.0), start=_pow4_start,
            natural=lambda t, s: {"a": t[0], "b": t[1] * ((1 + t[3]) * s) ** t[2], "c": t[2], "d": t[3] * s},
            limit=lambda t: float(t[0]), prior={2: (0.5, 1.0), 3: (0.0, 0.5)},
        ),
        Family(
            name="mmf4", formula="(a*b + c * n^d) / (b + n^d)", param_names=("a", "b", "c", "d"),
            bounds={"a": (-1.0, 1.0), "b": (0.0, math.inf), "c": (0.0, 1.0), "d": (0.05, 5.0)},
            has_ceiling=True,
            # Morgan-Mercer-Flodin: from a at n = 0 to the ceiling c; fitted as
            # c - (c - a) * expit(log b - d log n), with c - a in [0, 1] so it never decreases.
            curve=_mmf4_curve, lower=(0.0, 0.0, -20.0, 0.05), upper=(1.0, 1.0, 20.0, 5.0), start=_mmf4_start,
            natural=lambda t, s: {"a": t[0] - t[1], "b": math.exp(t[2]) * s ** t[3], "c": t[0], "d": t[3]},
            limit=lambda t: float(t[0]), prior={3: (1.0, 2.0)},
        ),
        Family(
            name="wbl4", formula="c - b * exp(-a * n^d)", param_names=("a", "b", "c", "d"),
            bounds={"a": (0.0, math.inf), "b": (0.0, 1.0), "c": (0.0, 1.0), "d": (0.05, 5.0)}, has_ceiling=True,
            # Weibull; a is fitted on a log scale because it spans many orders of magnitude.
            curve=_wbl4_curve, lower=(0.0, 0.0, -15.0, 0.05), upper=(1.0, 1.0, 10.0, 5.0), start=_wbl4_start,
            natural=lambda t, s: {"a": math.exp(t[2]) * s ** (-t[3]), "b": t[1], "c": t[0], "d": t[3]},
            limit=lambda t: float(t[0]), prior={3: (1.0, 2.0)},
        ),
        Family(
            name="exp3", formula="a - b * exp(-c * n)", param_names=("a", "b", "c"),
            bounds={"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (0.0, math.inf)}, has_ceiling=True,
            curve=_exp3_curve, lower=(0.0, 0.0, -8.0), upper=(1.0, 1.0, 8.0), start=_exp3_start,
            natural=lambda t, s: {"a": t[0], "b": t[1], "c": math.exp(t[2]) / s},
            limit=lambda t: float(t[0]),
        ),
    ]
}


# --------------------------------------------------------------------------- results

@dataclass
class FamilyFit:
    """One family fitted to the full data.

    `in_sample_rmse` is the RMS gap between the curve and the per-size means;
    `extrapolation_error` the RMS error predicting the largest size(s) after
    refitting without them (nan when there were too few sizes to backtest).
    `predict` returns the raw formula (pow2 may exceed 1; the blend clips).
    """

    name: str
    params: dict[str, float]
    in_sample_rmse: float
    extrapolation_error: float
    weight: float
    ceiling: float
    converged: bool
    theta: np.ndarray = field(repr=False)
    scale: float = field(repr=False)

    def predict(self, n) -> np.ndarray:
        n = np.asarray(n, float)
        return FAMILIES[self.name].curve(self.theta, n.reshape(-1) / self.scale).reshape(n.shape)


@dataclass(frozen=True)
class SizeEstimate:
    """The sample size needed to reach `target`, with its interval at `level`.

    `size` is math.inf when the curve's ceiling is below the target. `interval`
    is (where the upper band reaches the target, where the lower band does); either
    end is math.inf when that band does not reach it within `REACH_HORIZON` x the
    largest measured size. `far`: size > 4x the largest measured size. `p_reachable`:
    the probability, under the fitted (calibrated) uncertainty, that the expected
    score reaches the target within that horizon.
    """

    target: float
    reachable: bool
    size: float
    interval: tuple[float, float]
    far: bool
    level: float = LEVEL
    p_reachable: float = math.nan


@dataclass
class LearningCurveFit:
    """The fitted learning curve; see `fit_learning_curve`."""

    family: str
    families: dict[str, FamilyFit]
    max_size: float
    min_size: float
    warnings: list[str]
    sizes: np.ndarray = field(repr=False)  # distinct fitted sizes
    means: np.ndarray = field(repr=False)
    stds: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    boot_thetas: dict[str, np.ndarray] = field(repr=False)
    edge_slope: float = 0.0  # d(score)/d(log n) at the largest size, >= 0
    extrapolation_k: float = EXTRAPOLATION_K
    calibration: Calibration = CALIBRATION
    method: dict = field(default_factory=dict, repr=False)
    _grid_cache: dict = field(default_factory=dict, repr=False, compare=False)

    # -- point predictions

    def _family_curves(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clipped predictions of the weighted families, (F, M), and their weights."""
        used = [f for f in self.families.values() if f.weight > 0]
        preds = np.array([np.clip(f.predict(n), 0.0, 1.0) for f in used])
        return preds, np.array([f.weight for f in used])

    def predict(self, n) -> np.ndarray:
        """Predicted expected score at sample size(s) n (same shape as n)."""
        n = np.asarray(n, float)
        preds, w = self._family_curves(n.reshape(-1))
        return (w @ preds).reshape(n.shape)

    @property
    def ceiling(self) -> float:
        """Limit of `predict` as n -> inf (an unbounded family counts as reaching 1)."""
        return float(sum(f.weight * min(f.ceiling, 1.0) for f in self.families.values() if f.weight > 0))

    def is_far(self, n):
        """True where n is more than 4x beyond the largest measured size."""
        out = np.asarray(n, float) > FAR_FACTOR * self.max_size
        return bool(out) if out.ndim == 0 else out

    # -- intervals

    def _sigma(self, n: np.ndarray, k: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Centre and base spread at sizes n (1-d); see `Calibration`."""
        centre, noise, between = self._spread_parts(n)
        cal = self.calibration if k is None else replace(self.calibration, k_slope=k)
        return centre, base_spread(cal, centre, noise, between, np.log(np.maximum(n / self.max_size, 1.0)),
                                   self.edge_slope)

    def _spread_parts(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre, bootstrap (noise) variance and between-family variance at sizes n (1-d)."""
        preds, w = self._family_curves(n)
        centre = w @ preds
        between = w @ (preds - centre) ** 2
        boot = np.zeros((1, n.size))
        used = [f for f in self.families.values() if f.weight > 0]
        if self.boot_thetas:
            u = n / used[0].scale
            boot = sum(f.weight * np.clip(FAMILIES[f.name].curve(self.boot_thetas[f.name], u), 0.0, 1.0)
                       for f in used)
        noise = boot.var(axis=0) if boot.shape[0] > 1 else np.zeros(n.size)
        return centre, noise, between

    def _multipliers(self, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) multipliers of the spread at sizes n: +-z inside the data, the
        calibrated residual quantiles beyond it."""
        z = norm.ppf(0.5 + level / 2)
        z_calibrated = norm.ppf(0.5 + CALIBRATED_LEVEL / 2)
        knots = np.array([0.0] + [float(i + 1) for i in range(len(self.calibration.quantiles))])
        lows = np.array([-z_calibrated] + [q[0] for q in self.calibration.quantiles]) * z / z_calibrated
        highs = np.array([z_calibrated] + [q[1] for q in self.calibration.quantiles]) * z / z_calibrated
        h = np.log2(np.maximum(n / self.max_size, 1.0))
        return np.interp(h, knots, lows), np.interp(h, knots, highs)

    def _bands(self, n: np.ndarray, level: float, k: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        centre, sigma = self._sigma(n, k)
        low, high = self._multipliers(n, level)
        return np.clip(centre + low * sigma, 0.0, 1.0), np.clip(centre + high * sigma, 0.0, 1.0)

    def p_reaches(self, target: float, n) -> np.ndarray:
        """Probability, under the calibrated band, that the expected score at n is >= target.

        The band's ends are read as the 10% and 90% quantiles of a two-piece normal
        around the centre, so that this agrees with `interval` at CALIBRATED_LEVEL."""
        n = np.asarray(n, float).reshape(-1)
        centre, sigma = self._sigma(n)
        low, high = self._multipliers(n, CALIBRATED_LEVEL)
        z_calibrated = norm.ppf(0.5 + CALIBRATED_LEVEL / 2)
        up = np.maximum(high * sigma / z_calibrated, 1e-12)  # spread above the centre
        down = np.maximum(-low * sigma / z_calibrated, 1e-12)
        gap = float(target) - centre
        # each half holds half the probability: the median is the centre, continuous at the target
        return norm.sf(gap / np.where(gap >= 0, up, down))

    def interval(self, n, level: float = LEVEL, *, k: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) band at sample size(s) n holding the expected score with
        probability ~`level`. The lower band never falls as n grows: the expected
        score at n is at least the one at any smaller size."""
        _check_level(level)
        n = np.asarray(n, float)
        flat = n.reshape(-1)
        low, high = self._bands(flat, level, k)
        # running maximum of the lower band over a fixed grid, so the result at one
        # size does not depend on the other sizes asked for
        grid, grid_low = self._lower_grid(level, k)
        idx = np.searchsorted(grid, flat, side="right") - 1
        floor = np.where(idx >= 0, grid_low[np.clip(idx, 0, None)], 0.0)
        return np.maximum(low, floor).reshape(n.shape), high.reshape(n.shape)

    def _lower_grid(self, level: float, k: float | None) -> tuple[np.ndarray, np.ndarray]:
        key = (level, k, self.calibration)
        if key not in self._grid_cache:
            grid = np.geomspace(self.min_size, self.max_size * 1e6, 400)
            self._grid_cache[key] = grid, np.maximum.accumulate(self._bands(grid, level, k)[0])
        return self._grid_cache[key]

    # -- inversion

    def size_for(self, target: float, level: float = LEVEL) -> SizeEstimate:
        """Sample size at which the predicted score reaches `target`, with an interval."""
        _check_level(level)
        target = float(target)
        size = _first_reach(lambda n: self.predict(n), target, self.max_size)
        if target >= self.ceiling:
            size = math.inf
        horizon = REACH_HORIZON * self.max_size
        low = _first_reach(lambda n: self.interval(n, level)[1], target, self.max_size, horizon)
        high = _first_reach(lambda n: self.interval(n, level)[0], target, self.max_size, horizon)
        low = min(low, size)
        high = max(high, size)
        return SizeEstimate(target=target, reachable=math.isfinite(size), size=size, interval=(low, high),
                            far=bool(size > FAR_FACTOR * self.max_size), level=level,
                            p_reachable=self.p_reachable(target))

    def p_reachable(self, target: float) -> float:
        """Probability that the expected score reaches `target` within REACH_HORIZON x the
        largest measured size (0 for a target above 1)."""
        if target > 1.0:
            return 0.0
        # The expected score never falls as n grows, so reaching the target at any n up to the
        # horizon means reaching it by the horizon: the best chance over sizes is a lower bound
        # that uses the measured sizes (narrow band) as well as the far end (wide band).
        grid = np.geomspace(self.min_size, REACH_HORIZON * self.max_size, 64)
        return float(np.max(self.p_reaches(target, grid)))

    # -- serialisation

    def to_dict(self) -> dict:
        """JSON-ready summary: no NaN or inf (None and "inf" instead)."""
        return json_safe({
            "family": self.family,
            "ceiling": self.ceiling,
            "max_size": self.max_size,
            "per_size": [
                {"size": s, "mean": m, "std": sd, "n": int(c)}
                for s, m, sd, c in zip(self.sizes, self.means, self.stds, self.counts)
            ],
            "families": {
                name: {
                    "formula": FAMILIES[name].formula,
                    "params": f.params,
                    "in_sample_rmse": f.in_sample_rmse,
                    "extrapolation_error": f.extrapolation_error,
                    "weight": f.weight,
                    "ceiling": f.ceiling,
                    "converged": f.converged,
                }
                for name, f in self.families.items()
            },
            "warnings": list(self.warnings),
            "method": {**self.method, "edge_slope": self.edge_slope, "extrapolation_k": self.calibration.k_slope,
                       "calibration": {"k_slope": self.calibration.k_slope,
                                       "k_headroom": self.calibration.k_headroom,
                                       "quantiles_2x_4x_8x": [list(q) for q in self.calibration.quantiles]}},
        })


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _first_reach(curve: Callable, target: float, max_size: float, horizon: float | None = None) -> float:
    """Smallest n >= 1 with curve(n) >= target (curve non-decreasing), or inf (also when
    it is reached only beyond `horizon`)."""
    lo, hi = 0.0, math.log(max_size * 1e9 if horizon is None else horizon)

    def gap(log_n: float) -> float:
        return float(np.asarray(curve(np.array([math.exp(log_n)]))).reshape(-1)[0]) - target

    if gap(lo) >= 0:
        return 1.0
    if gap(hi) < 0:
        return math.inf
    return math.exp(brentq(gap, lo, hi, xtol=1e-6))


# --------------------------------------------------------------------------- fitting

@dataclass
class _Data:
    sizes: np.ndarray  # distinct, ascending
    means: np.ndarray
    stds: np.ndarray
    counts: np.ndarray
    var_mean: np.ndarray  # variance of each size's mean score, used for the weights
    groups: list[np.ndarray]  # the trial scores of each size


def _prepare(sizes: np.ndarray, scores: np.ndarray, n_test: int, warnings: list[str] | None) -> _Data:
    distinct = np.unique(sizes)
    groups = [scores[sizes == s] for s in distinct]
    counts = np.array([len(g) for g in groups])
    means = np.array([g.mean() for g in groups])
    var = np.array([g.var(ddof=1) if len(g) > 1 else np.nan for g in groups])
    dof = counts - 1
    # The test set alone makes a trial's score binomial: its spread can never be smaller.
    floor = np.maximum(means * (1 - means), 0.01 * 0.99) / n_test
    if dof.sum() > 0:
        pooled = np.nansum(dof * var) / dof.sum()
        # Shrink each size's variance toward the pooled one: 3-5 trials estimate it poorly,
        # and a size that happened to agree closely would otherwise dominate the fit.
        prior_dof = 2.0
        var = (dof * np.nan_to_num(var) + prior_dof * pooled) / (dof + prior_dof)
    else:
        var = np.zeros_like(means)
        if warnings is not None:
            warnings.append(
                "Only one trial per size: the spread of each size's score is unknown, so a binomial noise "
                f"floor for a {n_test}-example test set stands in for it (bootstrap draws from that noise). "
                "Run 3 or more repetitions for measured spreads and trustworthy intervals."
            )
    var = np.maximum(var, floor)
    stds = np.array([g.std(ddof=1) if len(g) > 1 else 0.0 for g in groups])
    return _Data(distinct, means, stds, counts, var / counts, groups)


def _fit_family(fam: Family, data: _Data, scale: float, rng: np.random.Generator,
                n_starts: int = N_STARTS) -> tuple[np.ndarray, bool]:
    """Weighted least-squares fit of one family: (theta, converged).

    Many seeded starts are run cheaply as one batch (`_refit_batch`); the best is then
    polished by `scipy.optimize.least_squares` (trust-region reflective, with bounds).
    """
    u = data.sizes / scale
    sw = 1.0 / np.sqrt(data.var_mean)
    lo, hi = np.array(fam.lower), np.array(fam.upper)
    summary = _DataSummary(first=float(data.means[0]), last=float(data.means[-1]),
                           log_u_min=float(min(math.log(u[0]), -1e-3)))
    span = hi - lo
    starts = np.clip(np.array([fam.start(rng, summary) for _ in range(n_starts)], float),
                     lo + 1e-6 * span, hi - 1e-6 * span)
    batch = _refit_batch(fam, starts, u, np.tile(data.means, (n_starts, 1)), sw, iterations=25)
    prior_idx = np.array(list(fam.prior), int)
    prior_c = np.array([fam.prior[i][0] for i in prior_idx])
    prior_s = np.array([fam.prior[i][1] for i in prior_idx])

    def residuals(theta):
        r = sw * (fam.curve(theta, u) - data.means)
        return np.concatenate([r, PRIOR_WEIGHT * (theta[prior_idx] - prior_c) / prior_s])

    costs = [np.sum(residuals(t) ** 2) for t in batch]
    x0 = np.clip(batch[int(np.argmin(costs))], lo + 1e-9 * span, hi - 1e-9 * span)
    res = least_squares(residuals, x0, bounds=(lo, hi), method="trf", max_nfev=200,
                        x_scale=np.maximum(np.abs(x0), 0.05), ftol=1e-10, xtol=1e-10, gtol=1e-10)
    return res.x, bool(res.status > 0)


def _backtest(data: _Data, names: list[str], rng: np.random.Generator) -> tuple[dict[str, float], dict]:
    """RMS error of each family predicting the largest size(s) from the smaller ones."""
    k = len(data.sizes)
    folds = list(range(1, min(MAX_BACKTEST_FOLDS, k - 3) + 1))  # keep >= 3 sizes to fit on
    errors: dict[str, list[float]] = {name: [] for name in names}
    noise: list[float] = []
    for j in folds:
        train = _Data(data.sizes[:-j], data.means[:-j], data.stds[:-j], data.counts[:-j],
                      data.var_mean[:-j], data.groups[:-j])
        scale = float(train.sizes[-1])
        held_u = data.sizes[-j:] / scale
        noise.extend(data.var_mean[-j:])
        for name in names:
            fam = FAMILIES[name]
            theta, _ = _fit_family(fam, train, scale, rng)
            errors[name].extend(np.clip(fam.curve(theta, held_u), 0, 1) - data.means[-j:])
    rmse = {name: float(np.sqrt(np.mean(np.square(e)))) if e else math.nan for name, e in errors.items()}
    return rmse, {"folds": folds, "held_out_noise_var": float(np.mean(noise)) if noise else math.nan}


def _weights(names: list[str], errors: dict[str, float], noise_var: float, select: str) -> dict[str, float]:
    """Blend weights from backtest errors.

    Only families with a ceiling are blended when there is one: a score bounded by 1
    cannot follow a curve without a ceiling for long, and on synthetic sweeps putting
    pow2 into the blend made 4x predictions worse (bench/curve_coverage.py). pow2 is
    still fitted, backtested and reported for comparison.
    """
    pool = [n for n in names if FAMILIES[n].has_ceiling] or list(names)
    finite = {n: errors[n] for n in pool if math.isfinite(errors[n])}
    if not finite:
        return {n: (1.0 / len(pool) if n in pool else 0.0) for n in names}
    if select == "best":
        best = min(finite, key=finite.get)
        return {n: float(n == best) for n in names}
    # Inverse-MSE weights; the noise of the held-out mean is added so that families that
    # all predict within noise share the weight instead of one winning by luck.
    raw = {n: 1.0 / (finite[n] ** 2 + noise_var) if n in finite else 0.0 for n in names}
    total = sum(raw.values())
    return {n: v / total for n, v in raw.items()}


def _bootstrap(data: _Data, fits: dict[str, np.ndarray], scale: float, n_bootstrap: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Refit each family on trial-resampled means, warm-started from the full fit."""
    means = np.empty((n_bootstrap, len(data.sizes)))
    for i, g in enumerate(data.groups):
        if len(g) > 1:
            draws = g[rng.integers(0, len(g), size=(n_bootstrap, len(g)))].mean(axis=1)
            # resampled means vary by (n-1)/n of the true variance of a mean: undo that
            means[:, i] = g.mean() + (draws - g.mean()) * math.sqrt(len(g) / (len(g) - 1))
        else:
            means[:, i] = g.mean() + rng.normal(0.0, math.sqrt(data.var_mean[i]), n_bootstrap)
    return {name: _refit_batch(FAMILIES[name], theta, data.sizes / scale, means, 1.0 / np.sqrt(data.var_mean))
            for name, theta in fits.items()}


def _refit_batch(fam: Family, theta0: np.ndarray, u: np.ndarray, targets: np.ndarray, sw: np.ndarray,
                 iterations: int = 40) -> np.ndarray:
    """Weighted least squares for many problems at once: projected Levenberg-Marquardt.

    theta0 is one start (P,) for all rows of `targets` or one per row (B, P). Solving
    all of them as one batch of tiny (P x P) systems in numpy is ~1000x cheaper than a
    `least_squares` call each: it runs the multi-start search and the bootstrap refits
    (each replicate a small perturbation of the data, warm-started from the full fit).
    """
    lo, hi = np.array(fam.lower), np.array(fam.upper)
    theta0 = np.asarray(theta0, float)
    idx = np.array(list(fam.prior), int)
    pc = np.array([fam.prior[i][0] for i in idx])
    ps = np.array([fam.prior[i][1] for i in idx])
    n_rep, n_par = targets.shape[0], theta0.shape[-1]

    def residuals(theta):
        data = sw * (fam.curve(theta, u) - targets)
        return np.concatenate([data, PRIOR_WEIGHT * (theta[:, idx] - pc) / ps], axis=1)

    theta = np.broadcast_to(theta0, (n_rep, n_par)).copy()
    r = residuals(theta)
    cost = np.sum(r * r, axis=1)
    damping = np.full(n_rep, 1e-3)
    for _ in range(iterations):
        step = 1e-7 * np.maximum(np.abs(theta), 1e-2)
        # one-sided differences pointing into the feasible box
        step = np.where(theta + step > hi, -step, step)
        jac = np.empty((n_rep, r.shape[1], n_par))
        for p in range(n_par):
            shifted = theta.copy()
            shifted[:, p] += step[:, p]
            jac[:, :, p] = (residuals(shifted) - r) / step[:, p, None]
        grad = np.einsum("bkp,bk->bp", jac, r)
        # parameters pinned at a bound that the gradient pushes against stay put
        free = ~(((theta <= lo) & (grad > 0)) | ((theta >= hi) & (grad < 0)))
        hess = np.einsum("bkp,bkq->bpq", jac, jac)
        diag = np.einsum("bpp->bp", hess)
        hess = hess + (damping[:, None] * np.maximum(diag, 1e-12) + 1e-12)[:, :, None] * np.eye(n_par)
        mask = free[:, :, None] & free[:, None, :]
        hess = np.where(mask, hess, np.eye(n_par))
        delta = np.linalg.solve(hess, -np.where(free, grad, 0.0)[:, :, None])[:, :, 0]
        trial = np.clip(theta + delta, lo, hi)
        r_trial = residuals(trial)
        cost_trial = np.sum(r_trial * r_trial, axis=1)
        better = cost_trial < cost
        theta = np.where(better[:, None], trial, theta)
        r = np.where(better[:, None], r_trial, r)
        cost = np.where(better, cost_trial, cost)
        damping = np.clip(np.where(better, damping / 3, damping * 4), 1e-9, 1e9)
    return theta


def _edge_slope(fit: LearningCurveFit, data: _Data) -> float:
    """Slope of score per unit log-size at the largest size: fitted and measured, the larger."""
    top = fit.max_size
    fitted = float((fit.predict(top) - fit.predict(top / 2)) / math.log(2))
    measured = 0.0
    if len(data.sizes) >= 3:
        x, y, w = np.log(data.sizes[-3:]), data.means[-3:], 1 / data.var_mean[-3:]
        xm = np.average(x, weights=w)
        measured = float(np.sum(w * (x - xm) * (y - np.average(y, weights=w))) / np.sum(w * (x - xm) ** 2))
    return max(fitted, measured, 0.0)


def fit_learning_curve(sizes: Sequence[float], scores: Sequence[float], families: Sequence[str] | None = None,
                       n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, *, select: str = "blend",
                       n_test: int | None = None) -> LearningCurveFit:
    """Fit learning-curve families to per-trial (sample size, score) pairs.

    sizes, scores: one value per trial; NaN scores are dropped (with a warning).
    families: names from FAMILIES (default: all).
    n_bootstrap: bootstrap replicates over trials for the intervals (0: none).
    seed: seeds the fit starts and the bootstrap, so results are reproducible.
    select: "blend" (average weighted by backtest error) or "best" (lowest backtest error).
    n_test: test-set size, for the binomial floor on each size's spread (default 1000).
    Raises CurveFitError for unusable input.
    """
    warnings: list[str] = []
    names, sizes, scores = _checked_input(sizes, scores, families, select, warnings)
    distinct = np.unique(sizes)
    n_test = DEFAULT_N_TEST if n_test is None else int(n_test)
    data = _prepare(sizes, scores, n_test, warnings)
    if np.ptp(scores) == 0:
        warnings.append("All scores are equal: the curve is flat, and its spread comes from the binomial "
                        "noise floor only.")
    for name in names:
        if FAMILIES[name].n_params > distinct.size:
            warnings.append(f"{name} has {FAMILIES[name].n_params} parameters but there are only "
                            f"{distinct.size} sizes: its fit is underdetermined and rests on a weak prior.")

    rng = np.random.default_rng(seed)
    scale = float(distinct[-1])
    thetas, converged = {}, {}
    for name in names:
        thetas[name], converged[name] = _fit_family(FAMILIES[name], data, scale, rng)
        if not converged[name]:
            warnings.append(f"{name}: the least-squares fit did not converge; its numbers are unreliable.")

    errors, backtest = _backtest(data, names, rng)
    if not backtest["folds"]:
        warnings.append(f"Only {distinct.size} sizes: too few to backtest the families (need 4), so the "
                        "families with a ceiling are averaged with equal weights.")
    noise_var = backtest["held_out_noise_var"] if backtest["folds"] else 0.0
    weights = _weights(names, errors, noise_var, select)
    fams = {name: _family_fit(name, thetas[name], converged[name], errors[name], weights[name], data, scale)
            for name in names}
    boot = _family_bootstrap(data, thetas, weights, scale, n_bootstrap, seed)

    chosen = max(weights, key=weights.get) if max(weights.values()) > 0.999 else "blend"
    fit = LearningCurveFit(
        family=chosen, families=fams, max_size=scale, min_size=float(distinct[0]), warnings=warnings,
        sizes=data.sizes, means=data.means, stds=data.stds, counts=data.counts, boot_thetas=boot,
        method={"selection": select, "n_bootstrap": int(n_bootstrap), "seed": int(seed),
                "backtest_folds": backtest["folds"], "held_out_noise_var": noise_var, "n_test_floor": n_test,
                "weights": "n_trials / shrunk variance of each size",
                "interval": "bootstrap + family spread + log(n / max_size) * (k_slope * edge_slope + "
                            "k_headroom * (1 - centre)), calibrated residual quantiles beyond the data"},
    )
    fit.edge_slope = _edge_slope(fit, data)
    return fit


def _checked_input(sizes: Sequence[float], scores: Sequence[float], families: Sequence[str] | None, select: str,
                   warnings: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The family names (all by default), and sizes and scores as flat arrays with the trials whose
    score is NaN dropped (with a warning).

    Raises CurveFitError unless the sizes are finite and positive, the families known, the scores
    in [0, 1] and at least two distinct sizes remain; ValueError for an unknown `select`."""
    sizes = np.asarray(sizes, float).reshape(-1)
    scores = np.asarray(scores, float).reshape(-1)
    if sizes.shape != scores.shape:
        raise CurveFitError(f"sizes and scores must have one value per trial; got {sizes.size} sizes "
                            f"and {scores.size} scores")
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise CurveFitError("every sample size must be a finite positive number")
    names = list(FAMILIES) if families is None else list(families)
    unknown = [n for n in names if n not in FAMILIES]
    if not names or unknown:
        raise CurveFitError(f"unknown curve families {unknown}; choose from {sorted(FAMILIES)}")
    if select not in ("blend", "best"):
        raise ValueError(f"select must be 'blend' or 'best', got {select!r}")
    dropped = int(np.isnan(scores).sum())
    if dropped == scores.size:
        raise CurveFitError("no finite scores: every trial's score is missing (NaN)")
    if dropped:
        warnings.append(f"Dropped {dropped} trial(s) with a missing (NaN) score.")
        sizes, scores = sizes[~np.isnan(scores)], scores[~np.isnan(scores)]
    if np.any(~np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise CurveFitError(f"scores must lie in [0, 1] (got {scores.min():g} to {scores.max():g}); "
                            "pass fractions, not percentages")
    distinct = np.unique(sizes)
    if distinct.size < 2:
        raise CurveFitError(f"need trials at 2 or more distinct sample sizes to fit a learning curve; "
                            f"got only sample size {distinct[0]:g}")
    return names, sizes, scores


def _family_fit(name: str, theta: np.ndarray, converged: bool, error: float, weight: float, data: _Data,
                scale: float) -> FamilyFit:
    """One family's full-data fit, in natural parameters, with its fit and backtest errors."""
    fam = FAMILIES[name]
    fitted = np.clip(fam.curve(theta, data.sizes / scale), -1, 2)
    return FamilyFit(
        name=name, params={k: float(v) for k, v in fam.natural(theta, scale).items()},
        in_sample_rmse=float(np.sqrt(np.mean((fitted - data.means) ** 2))),
        extrapolation_error=error, weight=float(weight), ceiling=float(fam.limit(theta)),
        converged=bool(converged), theta=theta, scale=scale,
    )


def _family_bootstrap(data: _Data, thetas: dict[str, np.ndarray], weights: dict[str, float], scale: float,
                      n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """Bootstrap refits of the families that carry weight; the light ones ride along at their full-data fit."""
    names = list(thetas)
    heavy = {n: thetas[n] for n in names if weights[n] >= MIN_BOOTSTRAP_WEIGHT}
    boot = _bootstrap(data, heavy, scale, n_bootstrap, np.random.default_rng([seed, 1])) if n_bootstrap > 0 else {}
    for name in names:
        if boot and name not in boot:
            boot[name] = np.broadcast_to(thetas[name], (n_bootstrap, len(thetas[name])))
    return boot
