"""Compare learning curves of several pipelines: "more labels or a better model?"

`compare_curves(fits, trials, targets=...)` takes one fitted curve per variant
(`curves.fit_learning_curve`) and, optionally, each variant's trials, and
returns a plain dict (JSON-ready apart from `inf`) with:

- `targets`: for each target, the size each variant needs (with its interval
  and `p_reachable`), and the variant that gets there with the fewest labels;
- `crossings`: for each pair of variants, where the order changes: between
  which measured sizes the paired means swap (`measured`), and where the
  fitted curves cross (`fitted`, with whether that lies beyond the data);
- `paired`: for each pair, the paired differences at each measured size. The
  trials of one (split, repetition) drew the same images in every variant, so
  their difference cancels the luck of the draw: this is the measured
  comparison, with no curve in between.

Usable from a notebook:

    from samplesize.curves import fit_learning_curve
    from samplesize.curves import compare_curves
    fits = {"small": fit_learning_curve(n_a, s_a), "large": fit_learning_curve(n_b, s_b)}
    cmp = compare_curves(fits, targets=[0.9, 0.95])
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.stats import t as student_t

from .band import LEVEL

# How far past the largest measured size the fitted curves are searched for crossings.
CROSSING_REACH = 4.0
_GRID = 400


def whole_size(size: float) -> float:
    """Sizes are counts of images: round up, keep inf as inf."""
    size = float(size)
    return float(math.ceil(size)) if math.isfinite(size) else math.inf


def compare_curves(
    fits: Mapping[str, Any],
    trials: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    *,
    targets: Sequence[float] = (),
    level: float = LEVEL,
    reach: float = CROSSING_REACH,
    min_size: float = 1.0,
) -> dict[str, Any]:
    """Compare the variants' curves: the size each needs per target, where they cross, paired differences.

    Args:
        fits: variant name -> its `LearningCurveFit`, or None when that variant has no curve.
        trials: variant name -> its trials, each a mapping with `split`, `repetition`,
            `sample_size` and `score` (a `backtest` flag is kept as is). Trials with the same
            (split, repetition) in two variants are a pair. Defaults to none (no paired differences).
        targets: the scores to reach. Defaults to none.
        level: the intervals' nominal level. Defaults to `LEVEL` (0.8).
        reach: crossings of the fitted curves are searched up to `reach` x the largest
            measured size. Defaults to `CROSSING_REACH`.
        min_size: the smallest sample a trial can draw; no size or interval end falls below it.
            Defaults to 1.

    Returns:
        A mapping (JSON-ready apart from `inf`): `variants`, `level`, `targets` (per target,
        each variant's size and interval and the one that needs fewest), `crossings` and
        `paired` (per pair of variants).
    """
    names = list(fits)
    trials = trials or {}
    pairs = list(itertools.combinations(names, 2))
    paired = [paired_differences(a, b, trials.get(a, ()), trials.get(b, ()), level) for a, b in pairs]
    crossings = []
    for (a, b), diffs in zip(pairs, paired):
        crossings.append({
            "variants": [a, b],
            "measured": measured_crossings(a, b, diffs["rows"]),
            "fitted": fitted_crossings(a, b, fits[a], fits[b], reach),
        })
    return {
        "variants": names,
        "level": level,
        "targets": [target_comparison(fits, t, level, min_size) for t in targets],
        "crossings": crossings,
        "paired": paired,
    }


def target_comparison(fits: Mapping[str, Any], target: float, level: float = LEVEL,
                      min_size: float = 1.0) -> dict[str, Any]:
    """Each variant's size for `target`, and which one needs the fewest labels.

    `fewest` is the reachable variant with the smallest point size (None when
    none reaches it); `clear` says whether its interval ends below every other
    variant's interval starts (otherwise the order is within the uncertainty).
    """
    by_variant: dict[str, dict | None] = {}
    for name, fit in fits.items():
        if fit is None:
            by_variant[name] = None
            continue
        est = fit.size_for(target, level=level)
        size = max(whole_size(est.size), min_size) if est.reachable else None
        by_variant[name] = {
            "reachable": bool(est.reachable),
            "sample_size": size,
            "interval": [max(whole_size(end), min_size) for end in est.interval],
            "p_reachable": float(est.p_reachable),
            "far": bool(est.far),
            "times_past_data": size / fit.max_size if size is not None else None,
        }
    reached = {n: v for n, v in by_variant.items() if v and v["reachable"]}
    fewest = min(reached, key=lambda n: reached[n]["sample_size"]) if reached else None
    clear = None
    if fewest is not None:
        others = [v for n, v in by_variant.items() if n != fewest and v is not None]
        clear = all(reached[fewest]["interval"][1] < v["interval"][0] for v in others)
    return {"target": float(target), "by_variant": by_variant, "fewest": fewest, "clear": clear}


def paired_differences(a: str, b: str, trials_a: Sequence[Mapping], trials_b: Sequence[Mapping],
                       level: float = LEVEL) -> dict[str, Any]:
    """Score of `a` minus score of `b` on the same subsample, per measured size.

    Each row: split, sample_size, pairs, mean, std (null for one pair), the
    `level` t-interval of the mean difference (null below two pairs), min, max
    and how many pairs `a` won.
    """
    by_key_b = {(t["split"], t["repetition"]): t for t in trials_b}
    groups: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for t in trials_a:
        other = by_key_b.get((t["split"], t["repetition"]))
        if other is not None:
            groups[t["split"]].append((float(t["sample_size"]), float(t["score"]) - float(other["score"])))
    rows = []
    for split in sorted(groups):
        sizes, diffs = (np.array(x, float) for x in zip(*groups[split]))
        n = len(diffs)
        mean = float(diffs.mean())
        std = float(diffs.std(ddof=1)) if n > 1 else None
        interval = None
        if n > 1:
            half = float(student_t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
            interval = [mean - half, mean + half]
        rows.append({
            "split": split,
            "sample_size": float(sizes.mean()),
            "pairs": n,
            "mean": mean,
            "std": std,
            "interval": interval,
            "min": float(diffs.min()),
            "max": float(diffs.max()),
            "wins": int((diffs > 0).sum()),
            "backtest": any(t.get("backtest", False) for t in trials_a if t["split"] == split),
        })
    rows.sort(key=lambda r: r["sample_size"])
    return {"variants": [a, b], "difference": f"{a} minus {b}", "rows": rows}


def measured_crossings(a: str, b: str, rows: Sequence[Mapping]) -> list[dict[str, Any]]:
    """Where the paired mean difference changes sign between consecutive measured sizes."""
    out = []
    signed = [r for r in rows if r["mean"] != 0]
    for lo, hi in zip(signed, signed[1:]):
        if (lo["mean"] > 0) != (hi["mean"] > 0):
            out.append({
                "between": [lo["sample_size"], hi["sample_size"]],
                "before": a if lo["mean"] > 0 else b,
                "after": a if hi["mean"] > 0 else b,
            })
    return out


def fitted_crossings(a: str, b: str, fit_a: Any, fit_b: Any, reach: float = CROSSING_REACH) -> list[dict[str, Any]]:
    """Sizes where the fitted curves of `a` and `b` cross, from the smallest measured size to
    `reach` x the largest. Each: `at` (the size), `before`/`after` (the leader on either side),
    and `beyond_data` (past the largest size both curves were fitted on)."""
    if fit_a is None or fit_b is None:
        return []
    lo = min(fit_a.min_size, fit_b.min_size)
    data_end = min(fit_a.max_size, fit_b.max_size)
    hi = reach * max(fit_a.max_size, fit_b.max_size)
    log_grid = np.linspace(math.log(lo), math.log(hi), _GRID)

    def gap(log_n: float) -> float:
        n = np.array([math.exp(log_n)])
        return float(fit_a.predict(n)[0] - fit_b.predict(n)[0])

    values = np.array([gap(x) for x in log_grid])
    out = []
    for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
        at = math.exp(brentq(gap, log_grid[i], log_grid[i + 1]))
        out.append({
            "at": at,
            "before": a if values[i] > 0 else b,
            "after": a if values[i + 1] > 0 else b,
            "beyond_data": bool(at > data_end),
        })
    return out

