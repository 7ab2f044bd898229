"""Fit a `ConditionalBand` on held-out records (the bench's job, never a sweep's): penalised linear
quantile regression of the residuals divided by the spread on a few pilot features (the set chosen
by leave-dataset-out cross-validation), split-conformal shifts per horizon, and the logistic map
that makes p_reachable a calibrated probability."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from .band import LEVEL, Calibration, base_spread
from .conditional import FEATURES, ConditionalBand, band_ends, is_stuck, logit, point_features, target_features
from .centre import CORRECTED_KINDS, widened_by_kind

HORIZONS = (2, 4, 8)
# p_reachable's forecasts per fit: targets at these fractions of the way from the last fitted mean to 1
TARGET_FRACTIONS = (0.05, 0.15, 0.3, 0.5, 0.75)
# the candidate feature sets of the band (besides its intercept); `choose_features` picks one
FEATURE_SETS = {
    "distance": ("distance",),
    "shape": ("distance", "curvature", "disagreement"),
    "shape+slope": ("distance", "curvature", "disagreement", "slope"),
    "shape+slope+noise": ("distance", "curvature", "disagreement", "slope", "noise"),
    "shape+slope+pilot": ("distance", "curvature", "disagreement", "slope", "backtest", "flat", "falls"),
}
L2 = 0.01  # ridge penalty on the standardised coefficients of the quantile regressions
SMOOTH = 0.02  # the pinball loss is smoothed over this width (in spreads), so that L-BFGS can fit it
# the conformal shifts are computed on out-of-fold scores: the regressions refitted without each of
# these many parts of the datasets (more parts: models closer to the final one, shifts less conservative)
CONFORMAL_FOLDS = 5
# stuck pilots get their own conformal shift at a horizon with at least this many of them (else the shared one)
MIN_STUCK = 20


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
    # a corrected kind's re-conformalized band
    return np.column_stack(widened_by_kind(cal, np.array([r.kind for r in records]), low, high, h))


def quantile_regression(x: np.ndarray, y: np.ndarray, tau: float, l2: float = L2) -> np.ndarray:
    """Coefficients of x (its first column the intercept) for the tau-quantile of y: the pinball loss
    smoothed by a softplus of width SMOOTH, plus l2 on the other coefficients after standardising
    their columns; returned in x's own units. Deterministic (L-BFGS from the unconditional quantile)."""
    mu, sd = x[:, 1:].mean(axis=0), x[:, 1:].std(axis=0)
    sd = np.where(sd > 1e-9, sd, np.inf)  # a constant column gets coefficient 0
    z = np.column_stack([np.ones(len(y)), (x[:, 1:] - mu) / sd])

    def loss(b):
        t = -(y - z @ b) / SMOOTH
        grad_u = tau - expit(t)
        value = np.mean(-SMOOTH * t * tau + SMOOTH * np.logaddexp(0.0, t)) + l2 * float(b[1:] @ b[1:])
        return value, -(z.T @ grad_u) / len(y) + np.concatenate([[0.0], 2 * l2 * b[1:]])

    b0 = np.zeros(z.shape[1])
    b0[0] = np.quantile(y, tau)
    b = minimize(loss, b0, jac=True, method="L-BFGS-B").x
    coefs = b[1:] / sd
    return np.concatenate([[b[0] - float(coefs @ mu)], coefs])


def conformal_shift(e: np.ndarray) -> float:
    """The split-conformal quantile of conformity scores e at LEVEL."""
    k = min(len(e), int(math.ceil(LEVEL * (len(e) + 1))))
    return float(np.sort(e)[k - 1])


def _parts(records: Sequence, k: int = 2) -> np.ndarray:
    return np.array([zlib.crc32(r.group.encode()) % k for r in records])


def _regress(x: np.ndarray, y: np.ndarray, cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The 10% and 90% coefficient vectors over every feature (0 outside `cols`)."""
    alpha = (1 - LEVEL) / 2
    out = []
    for tau in (alpha, 1 - alpha):
        full = np.zeros(x.shape[1])
        full[cols] = quantile_regression(x[:, cols], y, tau)
        out.append(full)
    return out[0], out[1]


def fit_band(records: Sequence, spread: np.ndarray, features: Sequence[str] = FEATURE_SETS["shape+slope"],
             cross_fit: bool = True) -> ConditionalBand:
    """Quantile regressions at 10% and 90% of (truth - centre) / spread on `features`, then per-horizon
    conformal shifts, cross-fitted over CONFORMAL_FOLDS parts of the datasets so that the shifts see
    out-of-sample scores."""
    x = record_features(records, spread)
    y = np.array([(r.truth - r.centre) for r in records]) / np.maximum(spread, 1e-9)
    hz = np.array([r.horizon for r in records])
    cols = [0] + [FEATURES.index(f) for f in features]
    fold = _parts(records, CONFORMAL_FOLDS)
    e = np.zeros(len(records))
    for part in range(CONFORMAL_FOLDS) if cross_fit else ():
        tr, te = fold != part, fold == part
        if tr.sum() < 30 or te.sum() == 0:
            continue
        lo, hi = _regress(x[tr], y[tr], cols)
        ql, qh = ConditionalBand(tuple(lo), tuple(hi), (0.0,) * len(HORIZONS)).multipliers(x[te], np.log2(hz[te]))
        e[te] = np.maximum(ql - y[te], y[te] - qh)
    lo, hi = _regress(x, y, cols)
    if not cross_fit:
        ql, qh = ConditionalBand(tuple(lo), tuple(hi), (0.0,) * len(HORIZONS)).multipliers(x, np.log2(hz))
        e = np.maximum(ql - y, y - qh)
    shift, stuck_shift = _mondrian_shifts(e, hz, is_stuck(x))
    return ConditionalBand(tuple(round(float(v), 5) for v in lo), tuple(round(float(v), 5) for v in hi), shift,
                           stuck_shift=stuck_shift)


def _mondrian_shifts(e: np.ndarray, hz: np.ndarray, stuck: np.ndarray) -> tuple[tuple, tuple | None]:
    """The conformal shifts per horizon of the other pilots' scores, and of the stuck pilots' own where a horizon
    has at least MIN_STUCK of them (the shared one elsewhere; None where no horizon has)."""
    shift = tuple(0.0 if v is None else v for v in _shifts(e[~stuck], hz[~stuck]))
    own = _shifts(e[stuck], hz[stuck], MIN_STUCK)
    if all(v is None for v in own):
        return shift, None
    return shift, tuple(a if b is None else b for a, b in zip(shift, own))


def _shifts(e: np.ndarray, hz: np.ndarray, least: int = 1) -> tuple:
    """The conformal shift per horizon of scores e; None at a horizon with fewer than `least` of them."""
    return tuple(round(conformal_shift(e[hz == h]), 4) if (hz == h).sum() >= least else None for h in HORIZONS)


def band_interval_score(records: Sequence, spread: np.ndarray, band: ConditionalBand) -> float:
    """The mean over horizons of the band's mean interval score (width + 10 x the miss) at the records."""
    h = np.array([math.log2(r.horizon) for r in records])
    low, high = band.multipliers(record_features(records, spread), h)
    centre, truth = np.array([r.centre for r in records]), np.array([r.truth for r in records])
    # the regressions' own band: the stuck pilots' open upper end is a fixed rule, not part of what is fitted
    low, high = band_ends(centre, low, high, spread, h, False)
    alpha = 1 - LEVEL
    score = high - low + 2 / alpha * (np.maximum(low - truth, 0) + np.maximum(truth - high, 0))
    return float(np.mean([score[h == k].mean() for k in np.unique(h)]))


def choose_features(records: Sequence, base: Calibration, folds: int = 5) -> str:
    """The name of the FEATURE_SETS entry with the lowest interval score, `folds`-fold leave-dataset-out
    within `records` (called inside an outer cross-validation, this is the nested choice)."""
    fold = np.array([zlib.crc32(r.group.encode()) % folds for r in records])
    spread = record_spread(records, base.k_slope, base.k_headroom)
    scores = {}
    for name, features in FEATURE_SETS.items():
        total, count = 0.0, 0
        for f in range(folds):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            if len(tr) < 30 or not len(te):
                continue
            band = fit_band([records[i] for i in tr], spread[tr], features)
            total, count = total + band_interval_score([records[i] for i in te], spread[te], band) * len(te), count + len(te)
        scores[name] = total / max(count, 1)
    return min(scores, key=lambda k: (round(scores[k], 6), list(FEATURE_SETS).index(k)))


def forecasts(records: Sequence, cal: Calibration, mapped: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p_reachable's forecasts and outcomes: per fit, targets between its last fitted mean and 1;
    reached = the curve measured that mean or more beyond the fit (within its measured range).
    Unmapped (`mapped=False`): the band's chance before the logistic map, and the map's other inputs."""
    seen, raw, hit, extra = set(), [], [], []
    use = cal
    if not mapped and cal.conditional is not None:
        use = replace(cal, conditional=replace(cal.conditional, p_coefs=None))
        for kind in CORRECTED_KINDS:
            if use.shift_for(kind) is not None:
                use = use.with_shift(kind, replace(use.shift_for(kind), p_coefs=None))
    for r in records:
        if r.fit is None or id(r.fit) in seen or not np.isfinite(r.beyond_max):
            continue
        seen.add(id(r.fit))
        # its cache's keys name the calibration and the correction of the record's kind
        fit = replace(r.fit, calibration=use, kind=r.kind, _grid_cache=r.fit._grid_cache)
        top = float(fit.means[-1])
        for u in TARGET_FRACTIONS:
            t = top + u * (1.0 - top)
            raw.append(fit.p_reachable(t))
            hit.append(float(r.beyond_max >= t))
            extra.append(target_features(fit, t))
    return np.array(raw), np.array(hit), np.array(extra).reshape(-1, 3)


def fit_p_map(p: np.ndarray, target: np.ndarray, hit: np.ndarray, l2: float = 1e-3) -> tuple[float, ...]:
    """Logistic regression of the outcome on (1, logit p, target features), monotone by its bounds: the
    chance rises with the band's chance and falls with the headroom share and the gap asked for."""
    x = np.column_stack([np.ones(len(p)), [logit(v) for v in p], target])

    def loss(b):
        z = x @ b
        q = expit(z)
        value = np.mean(np.logaddexp(0.0, z) - hit * z) + l2 * float(b[1:] @ b[1:])
        return value, x.T @ (q - hit) / len(p) + np.concatenate([[0.0], 2 * l2 * b[1:]])

    bounds = [(None, None), (0.0, None), (None, 0.0), (None, None), (None, 0.0)]
    b = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds).x
    return tuple(round(float(v), 4) for v in b)


def fit_conditional(records: Sequence, base: Calibration, features: str | None = None) -> Calibration:
    """The conditional calibration on `records`: `base`'s spread (k_slope, k_headroom), the band of
    `fit_band` on the feature set `features` (None: `choose_features` picks it), and the p_reachable
    map fitted on cross-fitted (out-of-sample) forecasts."""
    chosen = FEATURE_SETS[features or choose_features(records, base)]
    band = fit_band(records, record_spread(records, base.k_slope, base.k_headroom), chosen)
    raw, hit, extra = [], [], []
    half = _parts(records)
    for part in (0, 1):
        tr = [r for r, h in zip(records, half) if h != part]
        te = [r for r, h in zip(records, half) if h == part]
        if len(tr) < 30 or not te:
            continue
        cal_tr = replace(base, conditional=fit_band(tr, record_spread(tr, base.k_slope, base.k_headroom), chosen))
        p, y, x = forecasts(te, cal_tr)
        raw.append(p), hit.append(y), extra.append(x)
    coefs = fit_p_map(np.concatenate(raw), np.concatenate(extra), np.concatenate(hit)) if raw else None
    return replace(base, conditional=replace(band, p_coefs=coefs))
