"""A fitted learning curve: the blend, its band, predictions and the inversion to a sample size."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from ..jsonsafe import json_safe
from .band import (
    CALIBRATED_LEVEL,
    CALIBRATION,
    FAR_FACTOR,
    LEVEL,
    REACH_HORIZON,
    Calibration,
    base_spread,
)
from .conditional import (
    PILOT_FEATURES, STUCK, band_ends, map_p, pilot_features, pilot_warnings, point_features, target_features,
)
from .families import FAMILIES


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
    calibration: Calibration = CALIBRATION
    kind: str | None = None  # "image" or "cnn": the calibration's correction of that kind's centre applies
    method: dict = field(default_factory=dict, repr=False)
    _grid_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # an ill-behaved pilot (falls, zig-zags, flat within noise) is said so in the warnings
        if len(self.means) >= 3:
            for w in pilot_warnings(self.pilot, len(self.means)):
                if w not in self.warnings:
                    self.warnings.append(w)

    @property
    def pilot(self) -> dict[str, float]:
        """What the measured sizes show (`conditional.pilot_features`); the conditional band uses it.

        Cached per edge slope: the fit sets `edge_slope` after construction, so a pilot read
        earlier (for the warnings) must not stand in for the one with the slope."""
        key = ("pilot", PILOT_FEATURES, self.edge_slope)  # the names too: a pickled fit may hold older ones
        if key not in self._grid_cache:
            self._grid_cache[key] = pilot_features(self)
        return self._grid_cache[key]

    @property
    def centre_shift(self):
        """The calibration's correction of the centre for this fit's kind (`centre.CentreShift`), or None."""
        return self.calibration.shift_for(self.kind)

    def _shifted(self, n: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """The centre at sizes n corrected for the fit's kind (as it is without a correction)."""
        shift = self.centre_shift
        if shift is None:
            return centre
        h = np.log2(np.maximum(n / self.max_size, 1.0))
        return np.clip(centre + shift.shift(h, centre, self.edge_slope), 0.0, 1.0)

    # -- point predictions

    def _family_curves(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clipped predictions of the weighted families, (F, M), and their weights."""
        used = [f for f in self.families.values() if f.weight > 0]
        preds = np.array([np.clip(f.predict(n), 0.0, 1.0) for f in used])
        return preds, np.array([f.weight for f in used])

    def predict(self, n) -> np.ndarray:
        """The predicted expected score at sample size(s) `n`.

        Args:
            n: a sample size or an array of them.

        Returns:
            The blend's score, an array of the same shape as `n`.
        """
        n = np.asarray(n, float)
        flat = n.reshape(-1)
        preds, w = self._family_curves(flat)
        return self._shifted(flat, w @ preds).reshape(n.shape)

    @property
    def ceiling(self) -> float:
        """Limit of `predict` as n -> inf (an unbounded family counts as reaching 1)."""
        limit = float(sum(f.weight * min(f.ceiling, 1.0) for f in self.families.values() if f.weight > 0))
        if self.centre_shift is None:
            return limit
        return float(self._shifted(np.array([np.inf]), np.array([limit]))[0])

    def is_far(self, n):
        """True where n is more than 4x beyond the largest measured size."""
        out = np.asarray(n, float) > FAR_FACTOR * self.max_size
        return bool(out) if out.ndim == 0 else out

    # -- intervals

    def _sigma(self, n: np.ndarray, k: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Centre and base spread at sizes n (1-d); see `Calibration`."""
        return self._parts(n, k)[:2]

    def _parts(self, n: np.ndarray, k: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre, base spread and between-family variance at sizes n (1-d)."""
        centre, noise, between = self._spread_parts(n)
        cal = self.calibration if k is None else replace(self.calibration, k_slope=k)
        return centre, base_spread(cal, centre, noise, between, np.log(np.maximum(n / self.max_size, 1.0)),
                                   self.edge_slope), between

    def _spread_parts(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre, bootstrap (noise) variance and between-family variance at sizes n (1-d)."""
        preds, w = self._family_curves(n)
        centre = w @ preds
        between = w @ (preds - centre) ** 2
        boot = self.replicates(n)
        noise = boot.var(axis=0) if boot is not None and boot.shape[0] > 1 else np.zeros(n.size)
        return self._shifted(n, centre), noise, between

    def replicates(self, n: np.ndarray) -> np.ndarray | None:
        """The blend of each bootstrap refit at sizes n (1-d): (replicates, sizes); None without a bootstrap.

        One row is one refit, so that differences between sizes within a row are paired (`gains`)."""
        if not self.boot_thetas:
            return None
        used = [f for f in self.families.values() if f.weight > 0]
        u = np.asarray(n, float) / used[0].scale
        return sum(f.weight * np.clip(FAMILIES[f.name].curve(self.boot_thetas[f.name], u), 0.0, 1.0) for f in used)

    def _multipliers(self, n: np.ndarray, level: float, parts=None) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) multipliers of the spread at sizes n: +-z inside the data, the
        calibrated residual quantiles beyond it (functions of the pilot, with a conditional
        calibration). `parts`: `_parts(n)`, when the caller has it."""
        z = norm.ppf(0.5 + level / 2)
        z_calibrated = norm.ppf(0.5 + CALIBRATED_LEVEL / 2)
        if self.calibration.conditional is not None:
            return self._conditional_multipliers(n, z / z_calibrated, parts)
        knots = np.array([0.0] + [float(i + 1) for i in range(len(self.calibration.quantiles))])
        q_low, q_high = (np.array([q[j] for q in self.calibration.quantiles]) for j in (0, 1))
        if self.centre_shift is not None:
            q_low, q_high = self.centre_shift.widened(q_low, q_high, knots[1:])
        lows = np.concatenate([[-z_calibrated], q_low]) * z / z_calibrated
        highs = np.concatenate([[z_calibrated], q_high]) * z / z_calibrated
        h = np.log2(np.maximum(n / self.max_size, 1.0))
        return np.interp(h, knots, lows), np.interp(h, knots, highs)

    def _conditional_multipliers(self, n: np.ndarray, ratio: float, parts) -> tuple[np.ndarray, np.ndarray]:
        """The conditional band's multipliers, +-z at the largest size blending into them by 2x,
        scaled about their middle by z(level) / z(calibrated level)."""
        centre, sigma, between = self._parts(n) if parts is None else parts
        h = np.log2(np.maximum(n / self.max_size, 1.0))
        low, high = self.calibration.conditional.multipliers(point_features(self.pilot, h, centre, between, sigma), h)
        if self.centre_shift is not None:
            low, high = self.centre_shift.widened(low, high, h)
        z_calibrated = norm.ppf(0.5 + CALIBRATED_LEVEL / 2)
        w = np.clip(h, 0.0, 1.0)
        low, high = (1 - w) * -z_calibrated + w * low, (1 - w) * z_calibrated + w * high
        mid, half = (low + high) / 2, (high - low) / 2 * ratio
        return mid - half, mid + half

    def _bands(self, n: np.ndarray, level: float, k: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        parts = self._parts(n, k)
        centre, sigma = parts[:2]
        low, high = self._multipliers(n, level, parts)
        stuck = self.calibration.conditional is not None and self.pilot["stuck"] >= STUCK
        return band_ends(centre, low, high, sigma, np.log2(np.maximum(n / self.max_size, 1.0)), stuck)

    def p_reaches(self, target: float, n) -> np.ndarray:
        """Probability, under the calibrated band, that the expected score at n is >= target.

        The band's ends are read as the 10% and 90% quantiles of a two-piece normal
        around the centre, so that this agrees with `interval` at CALIBRATED_LEVEL."""
        n = np.asarray(n, float).reshape(-1)
        parts = self._parts(n)
        return self._chance(target, parts, self._multipliers(n, CALIBRATED_LEVEL, parts))

    def _chance(self, target: float, parts, multipliers) -> np.ndarray:
        """`p_reaches` from the centre and spread (`parts`) and the 80% multipliers at some sizes."""
        centre, sigma = parts[:2]
        low, high = multipliers
        z_calibrated = norm.ppf(0.5 + CALIBRATED_LEVEL / 2)
        if self.calibration.conditional is not None:  # a normal whose 10% and 90% points are the band's ends
            mid, half = centre + (low + high) / 2 * sigma, np.maximum((high - low) / 2 * sigma / z_calibrated, 1e-12)
            return norm.sf((float(target) - mid) / half)
        up = np.maximum(high * sigma / z_calibrated, 1e-12)  # spread above the centre
        down = np.maximum(-low * sigma / z_calibrated, 1e-12)
        gap = float(target) - centre
        # each half holds half the probability: the median is the centre, continuous at the target
        return norm.sf(gap / np.where(gap >= 0, up, down))

    def _reach_grid(self):
        """p_reachable's grid of sizes, with its centre and spread and the 80% multipliers there
        (cached: they do not depend on the target)."""
        key = ("reach", self.calibration, self.centre_shift)
        if key not in self._grid_cache:
            grid = np.geomspace(self.min_size, REACH_HORIZON * self.max_size, 64)
            parts_key = ("reach parts", self.calibration.k_slope, self.calibration.k_headroom, self.centre_shift)
            if parts_key not in self._grid_cache:
                self._grid_cache[parts_key] = self._parts(grid)
            parts = self._grid_cache[parts_key]
            self._grid_cache[key] = grid, parts, self._multipliers(grid, CALIBRATED_LEVEL, parts)
        return self._grid_cache[key]

    def interval(self, n, level: float = LEVEL, *, k: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The band that holds the expected score at sample size(s) `n` with probability about `level`.

        The lower end never falls as n grows: the expected score at n is at least the one
        at any smaller size. Beyond the data the ends are the calibrated quantiles.

        Args:
            n: a sample size or an array of them.
            level: the nominal level, in (0, 1). Defaults to `LEVEL` (0.8).
            k: the slope multiplier of the distance term, for calibration studies only.
                Defaults to the calibrated one.

        Returns:
            `(low, high)`, each of the same shape as `n`.

        Raises:
            ValueError: `level` is not in (0, 1).
        """
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
        key = (level, k, self.calibration, self.centre_shift)
        if key not in self._grid_cache:
            grid = np.geomspace(self.min_size, self.max_size * 1e6, 400)
            self._grid_cache[key] = grid, np.maximum.accumulate(self._bands(grid, level, k)[0])
        return self._grid_cache[key]

    # -- inversion

    def size_for(self, target: float, level: float = LEVEL) -> SizeEstimate:
        """The sample size at which the predicted score reaches `target`, with its interval.

        Args:
            target: the score to reach.
            level: the interval's nominal level. Defaults to `LEVEL` (0.8).

        Returns:
            A `SizeEstimate`: `size` (math.inf when the curve's ceiling is below the target),
            `interval` (an end is math.inf when that band never reaches the target within
            `REACH_HORIZON` x the largest measured size), `far` and `p_reachable`.

        Raises:
            ValueError: `level` is not in (0, 1).
        """
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
        """The probability that the expected score reaches `target` "with this pipeline".

        Args:
            target: the score to reach.

        Returns:
            The chance, under the calibrated band, that the expected score reaches `target`
            within `REACH_HORIZON` x the largest measured size; 0 for a target above 1.
        """
        if target > 1.0:
            return 0.0
        # The expected score never falls as n grows, so reaching the target at any n up to the
        # horizon means reaching it by the horizon: the best chance over sizes is a lower bound
        # that uses the measured sizes (narrow band) as well as the far end (wide band).
        grid, parts, multipliers = self._reach_grid()
        p = self._chance(target, parts, multipliers)
        cond = self.calibration.conditional
        if cond is None:
            return float(np.max(p))
        # the band's chance goes through the logistic map fitted on held-out curves (it also reads
        # how far above the data the target is, in headroom and in standard errors); inside the
        # data the measured sizes speak for themselves
        inside = grid <= self.max_size
        shift = self.centre_shift
        coefs = shift.p_coefs if shift is not None and shift.p_coefs is not None else cond.p_coefs
        mapped = map_p(coefs, float(np.max(p)), target_features(self, target))
        return float(max(np.max(p[inside], initial=0.0), mapped))

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
                                       "quantiles_2x_4x_8x": [list(q) for q in self.calibration.quantiles],
                                       # when true the band beyond the data depends on the pilot
                                       # (curves/conditional.py) and the quantiles are unused
                                       "conditional": self.calibration.conditional is not None,
                                       # only for a kind with a correction, so that other fits read as before
                                       **({"kind": self.kind, "centre_shift": {
                                           "per_doubling": self.centre_shift.per_doubling,
                                           "form": self.centre_shift.form,
                                           "widen_2x_4x_8x": list(self.centre_shift.widen),
                                           # this kind's own p_reachable map (None: the band's)
                                           "p_map": (list(self.centre_shift.p_coefs)
                                                     if self.centre_shift.p_coefs is not None else None)}}
                                          if self.centre_shift is not None else {})}},
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
