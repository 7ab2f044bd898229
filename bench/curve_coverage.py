"""Coverage and point error of learning-curve extrapolations on synthetic sweeps.

Generates sweeps from known true curves (several shapes, some outside the fitted
families), fits them as `samplesize aggregate` would, and compares strategies at
2x and 4x beyond the largest measured size:

- blend: families with a ceiling averaged by backtest error (the default);
- best:  the single family with the lowest backtest error;
- pow3:  always pow3;
- pow2:  the original recipe's a*n^b (point only);
- blend+pow2, equal: point-only variants from the same fit: pow2 admitted to the
  backtest-weighted blend, and all six families averaged equally;
- boot-only: the blend with a bootstrap-only interval (what the issue warns about).

Coverage is the share of nominal-80% intervals that hold the true expected score.
`--calibrate` also shows coverage over a grid of the slope multiplier k_slope.
The interval itself is calibrated on real curves, not on these shapes:
bench/curve_calibration.py (which reuses `make_sweep` for its synthetic rows).

    .venv/bin/python bench/curve_coverage.py --curves 240 --seed 1 --jobs 2
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.special import expit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "job"))
from samplesize.curves import LEVEL, fit_learning_curve  # noqa: E402

FACTORS = (2.0, 4.0)
SHAPES = ("pow3", "exp_early", "loglinear", "sigmoid_start", "broken_power", "mmf4", "wbl4")


def true_curve(shape: str, rng: np.random.Generator, n_min: float):
    """A random true curve f(n) of the given shape, scaled to the sweep's sizes."""
    n_max = 16 * n_min
    if shape == "pow3":  # in the families, moderate saturation
        a, c, gap0 = rng.uniform(0.8, 0.99), rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.35)
        return lambda n: a - gap0 * (n / n_min) ** -c
    if shape == "exp_early":  # saturates inside the data
        a, gap0, tau = rng.uniform(0.8, 0.99), rng.uniform(0.1, 0.3), n_min * rng.uniform(1, 4)
        return lambda n: a - gap0 * np.exp(-(n - n_min) / tau)
    if shape == "loglinear":  # keeps improving; no ceiling in sight (outside the families)
        top = rng.uniform(0.85, 0.97)
        beta = rng.uniform(0.015, 0.05)
        y0 = top - beta * math.log(64)  # reaches `top` at 4x beyond the data
        return lambda n: y0 + beta * np.log(n / n_min)
    if shape == "sigmoid_start":  # near chance at the smallest sizes, then a rise (outside)
        chance, top = rng.uniform(0.1, 0.5), rng.uniform(0.8, 0.98)
        mid, width = math.log(n_min * rng.uniform(1.5, 6)), rng.uniform(0.5, 1.2)
        return lambda n: chance + (top - chance) * expit((np.log(n) - mid) / width)
    if shape == "broken_power":  # error slope changes near the data's edge (outside)
        a, e0 = rng.uniform(0.85, 1.0), rng.uniform(0.1, 0.3)
        c1, c2 = rng.uniform(0.3, 0.9), rng.uniform(0.05, 0.4)
        n_break = n_max * rng.uniform(0.3, 2.0)
        return lambda n: a - e0 * (n / n_min) ** -c1 * (1 + n / n_break) ** (c1 - c2)
    if shape == "mmf4":
        lo, c, d = rng.uniform(0.0, 0.5), rng.uniform(0.8, 0.99), rng.uniform(0.5, 2.0)
        half = n_min * rng.uniform(0.3, 8)
        return lambda n: c - (c - lo) / (1 + (n / half) ** d)
    if shape == "wbl4":
        c, b, d = rng.uniform(0.8, 0.99), rng.uniform(0.3, 0.7), rng.uniform(0.3, 1.2)
        scale = n_min * rng.uniform(0.5, 10)
        return lambda n: c - b * np.exp(-((n / scale) ** d))
    raise ValueError(shape)


def make_sweep(rng: np.random.Generator, shape: str):
    """Sizes and trial scores of one synthetic sweep, plus its true curve."""
    n_min = float(np.exp(rng.uniform(math.log(50), math.log(500))))
    f = true_curve(shape, rng, n_min)
    sizes = n_min * 2.0 ** np.arange(5)
    reps = int(rng.integers(3, 6))
    n_test = int(rng.choice([300, 500, 1000]))
    # training variability shrinks with size; small samples are noisy starts
    spread = rng.uniform(0.05, 0.4)
    all_sizes, scores = [], []
    for n in sizes:
        p = np.clip(f(n) + rng.normal(0, spread * (1 - f(n)) * math.sqrt(n_min / n), reps), 0, 1)
        scores.extend(rng.binomial(n_test, p) / n_test)
        all_sizes.extend([n] * reps)
    return np.array(all_sizes), np.array(scores), f, n_test


def _one(args):
    index, seed, n_bootstrap, ks = args
    rng = np.random.default_rng([seed, index])
    shape = SHAPES[index % len(SHAPES)]
    sizes, scores, f, n_test = make_sweep(rng, shape)
    at = sizes.max() * np.array(FACTORS)
    truth = f(at)
    blend = fit_learning_curve(sizes, scores, n_bootstrap=n_bootstrap, seed=index, n_test=n_test)
    best = fit_learning_curve(sizes, scores, n_bootstrap=n_bootstrap, seed=index, n_test=n_test, select="best")
    pow3 = fit_learning_curve(sizes, scores, families=["pow3"], n_bootstrap=n_bootstrap, seed=index, n_test=n_test)
    out = {"shape": shape, "truth": truth, "pred": {}, "cover": {}}
    for name, fit in (("blend", blend), ("best", best), ("pow3", pow3)):
        out["pred"][name] = fit.predict(at)
        low, high = fit.interval(at, LEVEL)
        out["cover"][name] = (low <= truth) & (truth <= high)
    fams = blend.families.values()
    preds = {f.name: np.clip(f.predict(at), 0, 1) for f in fams}
    out["pred"]["pow2"] = preds["pow2"]
    raw = {f.name: 1 / (f.extrapolation_error ** 2 + blend.method["held_out_noise_var"]) for f in fams}
    out["pred"]["blend+pow2"] = sum(raw[n] * preds[n] for n in raw) / sum(raw.values())
    out["pred"]["equal"] = np.mean(list(preds.values()), axis=0)
    # bootstrap-only percentile band of the blend, as the baseline
    boot = sum(fm.weight * np.clip(_boot_curve(blend, fm.name, at), 0, 1)
               for fm in blend.families.values() if fm.weight > 0)
    q = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    out["cover"]["boot-only"] = (q[0] <= truth) & (truth <= q[1])
    out["pred"]["boot-only"] = out["pred"]["blend"]
    out["by_k"] = {k: _covered(blend, at, truth, k) for k in ks}
    out["width"] = np.subtract(*blend.interval(at, LEVEL)[::-1])
    return out


def _boot_curve(fit, name, at):
    from samplesize.curves import FAMILIES

    return FAMILIES[name].curve(fit.boot_thetas[name], at / fit.max_size)


def _covered(fit, at, truth, k):
    low, high = fit.interval(at, LEVEL, k=k)
    return (low <= truth) & (truth <= high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=int, default=140)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--calibrate", action="store_true", help="also report coverage over a grid of k")
    args = ap.parse_args()
    ks = tuple(np.round(np.arange(0.0, 1.61, 0.1), 2)) if args.calibrate else ()
    start = time.perf_counter()
    work = [(i, args.seed, args.bootstrap, ks) for i in range(args.curves)]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(_one, work, chunksize=4))
    print(f"{len(runs)} synthetic sweeps (5 sizes x 3-5 repetitions, shapes: {', '.join(SHAPES)}), "
          f"seed {args.seed}, {args.bootstrap} bootstrap replicates, {time.perf_counter() - start:.0f} s\n")
    print(f"{'strategy':<10} {'cover@2x':>9} {'cover@4x':>9} {'MAE@2x':>8} {'MAE@4x':>8} {'RMSE@4x':>8}")
    for name in ("blend", "best", "pow3", "pow2", "blend+pow2", "equal", "boot-only"):
        err = np.array([r["pred"][name] - r["truth"] for r in runs])
        cov = np.array([r["cover"][name] for r in runs]) if name in runs[0]["cover"] else None
        c = [f"{100 * cov[:, j].mean():8.0f}%" for j in range(2)] if cov is not None else ["       -"] * 2
        print(f"{name:<10} {c[0]:>9} {c[1]:>9} {np.abs(err[:, 0]).mean():8.4f} {np.abs(err[:, 1]).mean():8.4f} "
              f"{np.sqrt((err[:, 1] ** 2).mean()):8.4f}")
    print("\nblend by true shape:")
    print(f"{'shape':<14} {'cover@2x':>9} {'cover@4x':>9} {'MAE@4x':>8} {'width@4x':>9}")
    for shape in SHAPES:
        rs = [r for r in runs if r["shape"] == shape]
        cov = np.array([r["cover"]["blend"] for r in rs])
        err = np.array([r["pred"]["blend"] - r["truth"] for r in rs])
        width = np.array([r["width"] for r in rs])
        print(f"{shape:<14} {100 * cov[:, 0].mean():8.0f}% {100 * cov[:, 1].mean():8.0f}% "
              f"{np.abs(err[:, 1]).mean():8.4f} {np.median(width[:, 1]):9.4f}")
    if ks:
        print("\nblend coverage by extrapolation width k (pooled 2x and 4x):")
        for k in ks:
            cov = np.array([r["by_k"][k] for r in runs])
            print(f"k={k:4.2f}  2x {100 * cov[:, 0].mean():4.0f}%  4x {100 * cov[:, 1].mean():4.0f}%  "
                  f"pooled {100 * cov.mean():4.0f}%")


if __name__ == "__main__":
    main()
