"""The fitting engine behind `fit_learning_curve`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares

from .band import CurveFitError
from .centre import check_kind
from .families import FAMILIES, DataSummary, Family
from .fitted import FamilyFit, LearningCurveFit

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
    summary = DataSummary(first=float(data.means[0]), last=float(data.means[-1]),
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
        # Trials that all agree resample to no spread at all, yet the test set alone makes
        # each score binomial: such a size draws from the noise floor, like a single trial.
        if len(g) > 1 and np.ptp(g) > 0:
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
                       n_test: int | None = None, kind: str | None = None) -> LearningCurveFit:
    """Fit learning-curve families to per-trial (sample size, score) pairs, blend them and calibrate the band.

    Args:
        sizes: the sample size of each trial (one value per trial).
        scores: the score of each trial, in [0, 1], higher is better; NaN scores are dropped
            with a warning.
        families: names from `FAMILIES` to fit. Defaults to all of them.
        n_bootstrap: bootstrap replicates over trials for the intervals; 0 gives no bootstrap.
            Defaults to `DEFAULT_BOOTSTRAP`.
        seed: seeds the fit starts and the bootstrap, so a fit is reproducible. Defaults to 0.
        select: `"blend"` (the families with a ceiling, weighted by backtest error) or
            `"best"` (the single family with the lowest backtest error). Defaults to `"blend"`.
        n_test: the test-set size behind each score, for the binomial floor on each size's
            spread. Defaults to `DEFAULT_N_TEST` (1000).
        kind: what the scores measure: `"image"` (an image classifier on a backbone's features)
            or `"cnn"` (one trained end to end from scratch) applies the calibration's correction
            of the centre beyond the data for curves of that kind, whose fitted centre is
            pessimistic on the real-curve corpus (docs/learning-curves.md), and re-fits the band
            about it; `"tabular"` or None (the default) applies none.

    Returns:
        A `LearningCurveFit`: `predict(n)`, `interval(n)`, `size_for(target)` and
        `p_reachable(target)`, with its `warnings`.

    Raises:
        CurveFitError: fewer than two distinct sizes, sizes that are not finite and positive,
            no finite score, scores outside [0, 1], an unknown family, or sizes and scores of
            different lengths.
        ValueError: `select` is neither `"blend"` nor `"best"`, or `kind` is not None, `"tabular"`,
            `"image"` or `"cnn"`.

    Example:

    >>> sizes = [50, 100, 200, 400, 800] * 3
    >>> noise = [0.004, -0.003, 0.002, -0.001, 0.001] * 2 + [-0.002, 0.003, -0.002, 0.001, -0.001]
    >>> scores = [0.95 - 2.0 * n ** -0.5 + e for n, e in zip(sizes, noise)]
    >>> fit = fit_learning_curve(sizes, scores, n_bootstrap=100, n_test=500)
    >>> round(float(fit.predict(1600)), 3)  # the true curve gives 0.900 at 1,600
    0.899
    >>> [round(float(end), 3) for end in fit.interval(1600)]
    [0.884, 0.914]
    >>> answer = fit.size_for(0.9)
    >>> answer.reachable, round(answer.size, -1), round(answer.p_reachable, 2)
    (True, 1700.0, 0.54)
    """
    check_kind(kind)
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
        sizes=data.sizes, means=data.means, stds=data.stds, counts=data.counts, boot_thetas=boot, kind=kind,
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
