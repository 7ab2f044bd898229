"""Fit a `ConditionalBand` on held-out records (the bench's job, never a sweep's): linear quantile
regression of the residuals divided by the spread, split-conformal shifts per horizon, and the
isotonic map that makes p_reachable a calibrated probability."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy.optimize import linprog

from .band import LEVEL, Calibration, base_spread
from .conditional import ConditionalBand, point_features

HORIZONS = (2, 4, 8)
# p_reachable's forecasts per fit: targets at these fractions of the way from the last fitted mean to 1
TARGET_FRACTIONS = (0.05, 0.15, 0.3, 0.5, 0.75)


def record_spread(records: Sequence, k_slope: float, k_headroom: float) -> np.ndarray:
    """The base spread at held-out records under the widening (k_slope, k_headroom)."""
    cal = Calibration(k_slope, k_headroom, ())
    return np.array([base_spread(cal, r.centre, r.noise, r.between, r.distance, r.edge_slope) for r in records])


def record_features(records: Sequence, spread: np.ndarray) -> np.ndarray:
    """The feature rows of held-out records (their fit's pilot, their distance and centre)."""
    rows = [point_features(r.fit.pilot, np.array([math.log2(r.horizon)]), np.array([r.centre]),
                           np.array([r.between]), np.array([s]))[0] for r, s in zip(records, spread)]
    return np.array(rows)


def record_multipliers(records: Sequence, cal: Calibration, spread: np.ndarray) -> np.ndarray:
    """(m, 2) low and high multipliers of the conditional band at the records."""
    h = np.array([math.log2(r.horizon) for r in records], float)
    low, high = cal.conditional.multipliers(record_features(records, spread), h)
    return np.column_stack([low, high])


def quantile_regression(x: np.ndarray, y: np.ndarray, tau: float) -> np.ndarray:
    """Linear quantile regression (pinball loss) as a linear programme: coefficients of x."""
    m, p = x.shape
    cost = np.concatenate([np.zeros(p), tau * np.ones(m), (1 - tau) * np.ones(m)])
    a_eq = np.hstack([x, np.eye(m), -np.eye(m)]) if m <= 1500 else None
    if a_eq is None:  # sparse for larger problems
        from scipy.sparse import eye, hstack, csr_matrix
        a_eq = hstack([csr_matrix(x), eye(m), -eye(m)]).tocsr()
    bounds = [(None, None)] * p + [(0, None)] * (2 * m)
    res = linprog(cost, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    return res.x[:p] if res.success else np.zeros(p)


def _conformal_shift(e: np.ndarray) -> float:
    """The split-conformal quantile of conformity scores e at LEVEL."""
    k = min(len(e), int(math.ceil(LEVEL * (len(e) + 1))))
    return float(np.sort(e)[k - 1])


def fit_band(records: Sequence, spread: np.ndarray, cross_fit: bool = True) -> ConditionalBand:
    """Quantile regressions at 10% and 90% of (truth - centre) / spread, then per-horizon conformal
    shifts, cross-fitted in two halves of the datasets so that the shifts see out-of-sample scores."""
    import zlib

    x = record_features(records, spread)
    y = np.array([(r.truth - r.centre) for r in records]) / np.maximum(spread, 1e-9)
    hz = np.array([r.horizon for r in records])
    half = np.array([zlib.crc32(r.group.encode()) % 2 for r in records])
    alpha = (1 - LEVEL) / 2
    e = np.zeros(len(records))
    for part in (0, 1) if cross_fit else ():
        tr, te = half != part, half == part
        if tr.sum() < 30 or te.sum() == 0:
            continue
        lo, hi = quantile_regression(x[tr], y[tr], alpha), quantile_regression(x[tr], y[tr], 1 - alpha)
        band = ConditionalBand(tuple(lo), tuple(hi), (0.0,) * len(HORIZONS))
        ql, qh = band.multipliers(x[te], np.log2(hz[te]))
        e[te] = np.maximum(ql - y[te], y[te] - qh)
    lo, hi = quantile_regression(x, y, alpha), quantile_regression(x, y, 1 - alpha)
    shift = tuple(round(_conformal_shift(e[hz == h]), 4) if (hz == h).any() else 0.0 for h in HORIZONS)
    return ConditionalBand(tuple(round(float(v), 5) for v in lo), tuple(round(float(v), 5) for v in hi), shift)


def forecasts(records: Sequence, cal: Calibration, mapped: bool = False) -> tuple[np.ndarray, np.ndarray, list]:
    """p_reachable's raw forecasts (before the isotonic map) and outcomes: per fit, targets between
    its last fitted mean and 1; reached = the curve measured that mean or more beyond the fit."""
    seen, raw, hit, owners = set(), [], [], []
    for r in records:
        if r.fit is None or id(r.fit) in seen or not np.isfinite(r.beyond_max):
            continue
        seen.add(id(r.fit))
        use = cal if mapped or cal.conditional is None else replace(
            cal, conditional=replace(cal.conditional, p_knots=((0.0, 1.0), (0.0, 1.0))))
        fit = replace(r.fit, calibration=use, _grid_cache={})
        top = float(fit.means[-1])
        for u in TARGET_FRACTIONS:
            t = top + u * (1.0 - top)
            raw.append(fit.p_reachable(t))
            hit.append(float(r.beyond_max >= t))
            owners.append(r)
    return np.array(raw), np.array(hit), owners


def isotonic_knots(p: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A monotone map p -> share reached (pool-adjacent-violators on quantile bins), as knots."""
    order = np.argsort(p)
    p, y = p[order], y[order]
    chunks = [c for c in np.array_split(np.arange(len(p)), bins) if c.size]
    xs = [float(np.mean(p[c])) for c in chunks]
    ys = [float(np.mean(y[c])) for c in chunks]
    ws = [float(c.size) for c in chunks]
    i = 0
    while i < len(ys) - 1:  # pool adjacent violators
        if ys[i] > ys[i + 1]:
            w = ws[i] + ws[i + 1]
            ys[i] = (ys[i] * ws[i] + ys[i + 1] * ws[i + 1]) / w
            xs[i] = (xs[i] * ws[i] + xs[i + 1] * ws[i + 1]) / w
            ws[i] = w
            del ys[i + 1], xs[i + 1], ws[i + 1]
            i = max(i - 1, 0)
        else:
            i += 1
    return (tuple(round(v, 4) for v in [0.0] + xs + [1.0]),
            tuple(round(v, 4) for v in [min(ys[0], 0.0)] + ys + [max(ys[-1], 1.0)]))


def fit_conditional(records: Sequence, base: Calibration) -> Calibration:
    """The conditional calibration on `records`: `base`'s spread (k_slope, k_headroom), the band
    of `fit_band`, and the p_reachable map fitted on cross-fitted (out-of-sample) forecasts."""
    import zlib

    _spread = record_spread
    spread = _spread(records, base.k_slope, base.k_headroom)
    band = fit_band(records, spread)
    raw, hit = [], []
    half = np.array([zlib.crc32(r.group.encode()) % 2 for r in records])
    for part in (0, 1):
        tr = [r for r, h in zip(records, half) if h != part]
        te = [r for r, h in zip(records, half) if h == part]
        if len(tr) < 30 or not te:
            continue
        cal_tr = replace(base, conditional=fit_band(tr, _spread(tr, base.k_slope, base.k_headroom), cross_fit=False))
        p, y, _ = forecasts(te, cal_tr)
        raw.append(p)
        hit.append(y)
    knots = isotonic_knots(np.concatenate(raw), np.concatenate(hit)) if raw else ((0.0, 1.0), (0.0, 1.0))
    return replace(base, conditional=replace(band, p_knots=knots))
