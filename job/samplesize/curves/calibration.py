"""Calibrate and check the curve intervals on measured learning curves.

A corpus curve holds, for one dataset and learner, the scores of several
repetitions at each size of a ladder. The protocol mirrors how a sweep is
used: fit on the sizes up to 1/4 (and, separately, 1/8) of the largest, and on
every other size up to 1/4 (4 sizes in doubling steps, as a short sweep has), then
compare the prediction with the mean measured 2x, 4x and 8x beyond the fitted
range. `held_out_records` turns a fit into one `Record` per horizon;
`fit_calibration` chooses the widening (k_slope, k_headroom) and the residual
quantiles per horizon (split-conformal); `cross_validate` does that with one
dataset left out at a time and returns the held-out outcomes, which
`summarise` turns into coverage, width, interval score and point errors.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, replace
from itertools import product
from typing import Any, Sequence

import numpy as np

from .band import LEVEL, Calibration
from .centre import corrected_records, widened_by_kind
from .conditional import STUCK, band_ends
from .conditional_fit import record_multipliers, record_spread
from .fit import fit_learning_curve
from .fitted import LearningCurveFit

HORIZONS = (2, 4, 8)
# (name, cutoff, step): fit on every `step`-th size up to largest / cutoff, counted down from there
PROTOCOLS = (("up to 1/4", 4, 1), ("up to 1/8", 8, 1), ("every other up to 1/4", 4, 2))
# the pilot as a team runs it (fitted on the 6 smallest sizes: 16 to 91 on the corpus's ladders), and
# a short sweep in doubling steps; cutoff 0 means "the first `step` sizes"
PILOT_PROTOCOLS = (("6 smallest", 0, 6), ("every other up to 1/4", 4, 2))
GRID_K_SLOPE = (0.0, 0.25, 0.5, 1.0, 2.0)
GRID_K_HEADROOM = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
# Resamples per corpus fit: the calibration protocol's own value (thousands of fits), not a sweep's default.
PROTOCOL_BOOTSTRAP = 200


@dataclass
class Record:
    """One prediction beyond the fitted range and what was measured there."""

    group: str  # the dataset: cross-validation leaves whole groups out
    horizon: int  # n / largest fitted size: 2, 4 or 8
    n: float
    truth: float  # the measured mean score at n (the true curve, for synthetic sweeps)
    centre: float
    noise: float
    between: float
    edge_slope: float
    max_size: float
    fit: LearningCurveFit | None = None  # for the size answers; None drops them
    learner: str = ""
    kind: str = "tabular"
    learner_group: str = ""
    beyond_max: float = float("nan")  # the best measured mean beyond the fitted range (p_reachable's outcome)

    @property
    def distance(self) -> float:
        return math.log(self.n / self.max_size)


def load_corpus(path: str) -> list[dict]:
    """The curves of a corpus file (gzipped JSON, as bench/real_curves/build.py writes)."""
    with gzip.open(path, "rt") as fh:
        return json.load(fh)["curves"]


def records_from_fit(fit: LearningCurveFit, group: str, at: Sequence[float], truths: Sequence[float],
                     horizons: Sequence[int]) -> list[Record]:
    """Records for predictions of `fit` at sizes `at`, whose true (or measured) scores are `truths`."""
    at = np.asarray(at, float)
    centre, noise, between = fit._spread_parts(at)
    return [Record(group=group, horizon=int(h), n=float(n), truth=float(t), centre=float(c), noise=float(v),
                   between=float(b), edge_slope=fit.edge_slope, max_size=fit.max_size, fit=fit)
            for n, t, c, v, b, h in zip(at, truths, centre, noise, between, horizons)]


def _fitted_mask(sizes: np.ndarray, cutoff: int, step: int) -> np.ndarray:
    if cutoff == 0:
        return np.arange(sizes.size) < step
    fitted = sizes <= sizes[-1] / cutoff * 1.05
    last = int(np.flatnonzero(fitted)[-1]) if fitted.any() else -1
    return fitted & ((last - np.arange(sizes.size)) % step == 0)


def held_out_records(curve: dict, n_bootstrap: int = PROTOCOL_BOOTSTRAP, seed: int = 0,
                     protocols=PROTOCOLS) -> list[Record]:
    """Fit a corpus curve as each of `protocols` says, and record each horizon of HORIZONS
    (up to the cutoff) that the curve measured (within 10% of the ratio)."""
    sizes = np.asarray(curve["sizes"], float)
    means = np.array([np.mean(s) for s in curve["scores"]])
    out: list[Record] = []
    for _, cutoff, step in protocols:
        fitted = _fitted_mask(sizes, cutoff, step)
        if fitted.sum() < 4:
            continue
        top = sizes[fitted][-1]
        at, truths, horizons = [], [], []
        for h in HORIZONS:
            j = int(np.argmin(np.abs(np.log(sizes / (h * top)))))
            if (cutoff == 0 or h <= cutoff) and abs(math.log(sizes[j] / (h * top))) < 0.1:
                at.append(sizes[j])
                truths.append(means[j])
                horizons.append(h)
        if not at:
            continue
        x = np.repeat(sizes[fitted], [len(s) for s, f in zip(curve["scores"], fitted) if f])
        y = np.concatenate([s for s, f in zip(curve["scores"], fitted) if f])
        fit = fit_learning_curve(x, y, n_bootstrap=n_bootstrap, seed=seed, n_test=curve.get("n_test"))
        extra = {"learner": curve.get("learner", ""), "kind": curve.get("kind", "tabular"),
                 "learner_group": curve.get("group", curve.get("learner", "")),
                 "beyond_max": float(means[sizes > top].max())}
        out.extend(replace(r, **extra) for r in records_from_fit(fit, curve["dataset"], at, truths, horizons))
    return out


# --------------------------------------------------------------------------- calibration

def _spread(records: Sequence[Record], k_slope: float, k_headroom: float) -> np.ndarray:
    return record_spread(records, k_slope, k_headroom)


def _quantiles(records: Sequence[Record], spread: np.ndarray) -> tuple[tuple[float, float], ...]:
    resid = np.array([r.truth - r.centre for r in records]) / np.maximum(spread, 1e-9)
    hz = np.array([r.horizon for r in records])
    alpha = (1 - LEVEL) / 2
    out = []
    for h in HORIZONS:
        mask = hz == h
        if not mask.any():  # no data at this horizon: keep the previous pair
            out.append(out[-1] if out else (-1.2816, 1.2816))
            continue
        # split-conformal ranks: the k-th smallest and k-th largest, k = floor(alpha (n + 1)),
        # hold at least 1 - 2 alpha of a new residual from the same population
        ranked = np.sort(resid[mask])
        k = max(1, int(math.floor(alpha * (len(ranked) + 1))))
        lo, hi = ranked[k - 1], ranked[-k]
        out.append((round(float(min(lo, 0.0)), 4), round(float(max(hi, 0.0)), 4)))
    return tuple(out)


def fit_calibration(records: Sequence[Record], grid_k_slope=GRID_K_SLOPE,
                    grid_k_headroom=GRID_K_HEADROOM) -> Calibration:
    """The widening with the lowest mean interval score, each with its conformal quantiles."""
    best, best_score = None, math.inf
    for ks, kh in product(grid_k_slope, grid_k_headroom):
        spread = _spread(records, ks, kh)
        cal = Calibration(ks, kh, _quantiles(records, spread))
        score = float(np.mean(_interval_outcomes(records, cal)["interval_score"]))
        if score < best_score - 1e-12:
            best, best_score = cal, score
    return best


def _interval_outcomes(records: Sequence[Record], cal: Calibration) -> dict[str, np.ndarray]:
    # records of a corrected kind get the calibration's correction of it, as a fit of that kind does
    records = corrected_records(records, cal)
    spread = _spread(records, cal.k_slope, cal.k_headroom)
    if cal.conditional is not None:
        q = record_multipliers(records, cal, spread)
    else:
        idx = np.array([HORIZONS.index(r.horizon) for r in records])
        q = np.array(cal.quantiles)[idx] if cal.quantiles else np.zeros((len(records), 2))
        q = np.column_stack(widened_by_kind(cal, np.array([r.kind for r in records]), q[:, 0], q[:, 1],
                                            np.log2([r.horizon for r in records])))
    centre = np.array([r.centre for r in records])
    truth = np.array([r.truth for r in records])
    # the ends as a fit's band has them (a stuck pilot's open above, under the conditional band)
    stuck = cal.conditional is not None and np.array([r.fit.pilot["stuck"] >= STUCK for r in records])
    low, high = band_ends(centre, q[:, 0], q[:, 1], spread, np.log2([r.horizon for r in records]), stuck)
    alpha = 1 - LEVEL
    score = (high - low) + 2 / alpha * np.maximum(low - truth, 0) + 2 / alpha * np.maximum(truth - high, 0)
    return {"covered": (low <= truth) & (truth <= high), "width": high - low, "interval_score": score,
            "error": centre - truth}


def size_outcome(record: Record, cal: Calibration) -> dict[str, Any]:
    """The size answer for the score measured at the record's size, under `cal`."""
    fit = replace(record.fit, calibration=cal, kind=record.kind, _grid_cache={})
    est = fit.size_for(record.truth, level=LEVEL)
    return {"covered": est.interval[0] <= record.n <= est.interval[1],
            "log2_error": abs(math.log2(est.size / record.n)) if math.isfinite(est.size) else math.inf,
            "unreachable": not est.reachable, "p_reachable": est.p_reachable}


def outcomes(records: Sequence[Record], cal: Calibration, sizes: bool = True) -> list[dict[str, Any]]:
    """Per-record outcomes under `cal`: coverage, width, interval score, error, size answer."""
    iv = _interval_outcomes(records, cal)
    out = []
    for i, r in enumerate(records):
        row = {"group": r.group, "horizon": r.horizon, **{k: v[i] for k, v in iv.items()}}
        if r.fit is not None:
            # how far the target lies above the largest fitted mean, in standard errors of that mean
            se = float(r.fit.stds[-1]) / math.sqrt(float(r.fit.counts[-1]))
            row["gain_se"] = (r.truth - float(r.fit.means[-1])) / max(se, 1e-6)
            if sizes:
                row["size"] = size_outcome(r, cal)
        out.append(row)
    return out


def cross_validate(records: Sequence[Record], sizes: bool = True, key: str = "group", folds: int = 0,
                   fit=None, **grid) -> list[dict[str, Any]]:
    """Leave-one-group-out (or `folds` folds of whole groups): calibrate on the other groups, score
    the held-out one. `key`: the Record attribute that groups (the dataset; "learner" for leave-learner-out);
    `fit`: the calibration method (records -> Calibration), `fit_calibration` by default."""
    fit = fit or (lambda train: fit_calibration(train, **grid))
    out = []
    for test_groups in group_folds([getattr(r, key) for r in records], folds):
        train = [r for r in records if getattr(r, key) not in test_groups]
        test = [r for r in records if getattr(r, key) in test_groups]
        rows = outcomes(test, fit(train), sizes)
        for row, r in zip(rows, test):
            row.update(learner=r.learner, kind=r.kind, learner_group=r.learner_group)
        out.extend(rows)
    return out


def group_folds(groups: Sequence[str], folds: int = 0) -> list[set[str]]:
    """The held-out groups of each fold: one group each (folds=0), or `folds` sets of whole groups,
    assigned deterministically by a hash of the name."""
    import zlib

    names = sorted(set(groups))
    if not folds or folds >= len(names):
        return [{g} for g in names]
    return [s for s in ({g for g in names if zlib.crc32(g.encode()) % folds == f} for f in range(folds)) if s]


def summarise(rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per horizon: coverage, mean width, interval score, mean/median |error|, mean signed
    error, and for the size answers their interval coverage, median |log2| of the point
    (unreachable counts as infinitely wrong), the share called unreachable, mean p_reachable."""
    table = {}
    for h in HORIZONS:
        rs = [r for r in rows if r["horizon"] == h]
        if not rs:
            continue
        err = np.array([r["error"] for r in rs])
        row = {"n": len(rs), "coverage": float(np.mean([r["covered"] for r in rs])),
               "width": float(np.mean([r["width"] for r in rs])),
               "interval_score": float(np.mean([r["interval_score"] for r in rs])),
               "mae": float(np.mean(np.abs(err))), "median_ae": float(np.median(np.abs(err))),
               "mean_error": float(np.mean(err))}
        sz = [r["size"] for r in rs if "size" in r]
        if sz:
            row.update(_summarise_sizes(sz))
        table[h] = row
    return table


def _summarise_sizes(sz: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The size answers of one horizon: interval coverage, median |log2| error, share unreachable, mean p_reachable."""
    return {"size_coverage": float(np.mean([s["covered"] for s in sz])),
            "size_median_log2": float(np.median([s["log2_error"] for s in sz])),
            "size_unreachable": float(np.mean([s["unreachable"] for s in sz])),
            "p_reachable": float(np.mean([s["p_reachable"] for s in sz]))}
