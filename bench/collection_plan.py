"""Collect in rounds on real learning curves: the collection plan against three simple policies, held out.

A team starts from a pilot (a corpus curve's 6 smallest sizes, every repetition; --pilot-sizes) and wants a
target score. Each round it fits the curve on everything measured so far (the band calibrated
*without* the curve's dataset, or without its learner: `samplesize.curves.calibration` records,
folds as in bench/curve_calibration.py; image curves with the image centre correction, as a sweep's curve), lets a policy pick a size, and "collects" the corpus's
next ladder size at or above it: that size's measured scores join the data. At most 3 rounds.

- The truth is the isotonic fit (weighted by repetitions) of the ladder's mean scores: a score
  that a curve reaches once by noise and loses at the next size is not "reached".
- Reachable targets: the truth at the ladder size nearest 2x, 4x, 8x and 16x the pilot's
  largest size (where the ladder goes that far and the target is above the pilot's truth); its
  minimum is the smallest ladder size whose truth reaches it. Unreachable: 0.02 above the best
  mean the curve ever measured, one per curve.
- Policies: `plan` (`plan_collection` with its defaults and the rounds left), `point` (the point
  size; its optimistic end when "probably unreachable"), `pessimistic` (the lower band's size;
  then the point, then the optimistic end), `double` (twice the labels each round). The simple
  ones never stop: when a size is unbounded they take the next ladder size.

Printed per hold-out and policy: reached within the rounds, overall and for far targets (8-16x);
labels used over the minimum for reached targets (median, 90th percentile); mean rounds; for
unreachable targets how often it stopped at once and the labels wasted over the pilot (median);
and the mean cost per target, in pilots, at a few miss_cost / label_cost ratios. Then how well the pilot's
p_reachable separates reachable from unreachable targets (keep / stop shares of a threshold rule, ROC AUC).

    nice -n 10 python bench/collection_plan.py [--curves 300] [--jobs 2] [--pilot-sizes 6] [--without-image-centre]

Resumable: per-curve records and simulations are cached under bench/real_curves/.cache/.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import pickle
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "job"))
sys.path.insert(0, str(HERE))
import curve_calibration  # noqa: E402
from samplesize.curves import calibration as cal  # noqa: E402
from samplesize.curves import conditional_fit as cf  # noqa: E402
from samplesize.curves import fit_learning_curve  # noqa: E402
from samplesize.curves.centre import CORRECTED_KINDS  # noqa: E402
from samplesize.curves.collection import DEFAULT_MISS_POOLS, plan_collection  # noqa: E402

CACHE = HERE / "real_curves" / ".cache" / "collection"
PILOT_SIZES = 6  # the default pilot (--pilot-sizes)
ROUNDS = 3
MULTIPLES = (2, 4, 8, 16)
FAR = (8, 16)
UNREACHABLE_MARGIN = 0.02
BOOTSTRAP = 100
FEATURES = "shape"  # the shipped feature set (bench/curve_calibration.py chooses it by leave-dataset-out)
COST_RATIOS = (5, 20, 100)  # a miss costs this many pilots of labels
POLICIES = ("plan", "point", "pessimistic", "double")
# in the simulations' cache key: bump it when the simulation or the plan changes (3: the plan's chance is scaled
# to p_reachable up as well as down; 4: a stuck pilot's band is open above, which moves the size interval that
# the simple policies read)
PROTOCOL = 4


def truth(curve: dict) -> np.ndarray:
    """The isotonic fit of the ladder's mean scores, weighted by their repetitions."""
    means = np.array([np.mean(s) for s in curve["scores"]])
    weights = np.array([len(s) for s in curve["scores"]], float)
    return IsotonicRegression().fit_transform(np.log(curve["sizes"]), means, sample_weight=weights)


def targets(curve: dict, pilot_sizes: int = PILOT_SIZES) -> list[dict]:
    """The reachable targets at 2-16x the pilot and the one unreachable target of `curve`."""
    sizes, true = np.asarray(curve["sizes"], float), truth(curve)
    pilot = sizes[pilot_sizes - 1]
    out = []
    for m in MULTIPLES:
        if sizes[-1] < 0.8 * m * pilot:
            continue
        i = int(np.argmin(np.abs(np.log(sizes / (m * pilot)))))
        target = float(true[i])
        if target <= true[pilot_sizes - 1] + 1e-9:
            continue
        minimum = float(sizes[int(np.argmax(true >= target - 1e-12))])
        out.append({"multiple": m, "target": target, "minimum": minimum})
    best = max(float(np.mean(s)) for s in curve["scores"])
    out.append({"multiple": None, "target": best + UNREACHABLE_MARGIN, "minimum": math.inf})
    return out


def _fit(curve: dict, upto: int, calibration):
    sizes = [n for n, s in zip(curve["sizes"][:upto], curve["scores"][:upto]) for _ in s]
    scores = [v for s in curve["scores"][:upto] for v in s]
    # an image curve is fitted as a sweep fits its curve (`summarize.curve_kind`): with its kind's centre correction
    fit = fit_learning_curve(sizes, scores, n_bootstrap=BOOTSTRAP, n_test=curve.get("n_test"),
                             kind=curve["kind"] if curve["kind"] in CORRECTED_KINDS else None)
    return dataclasses.replace(fit, calibration=calibration, _grid_cache={})


def _pick(policy: str, fit, target: float, current: float, rounds_left: int, miss_pools: float) -> float | None:
    """The size the policy collects up to; None: stop. inf (or a size already measured): the next ladder size."""
    if policy == "plan":
        plan = plan_collection(fit, target, current, rounds=rounds_left, miss_cost=miss_pools * current)
        return None if plan.stop else plan.recommended_total
    if policy == "double":
        return 2 * current
    est = fit.size_for(target)
    optimistic, pessimistic = est.interval
    choices = [est.size if est.reachable else optimistic] if policy == "point" else \
        [pessimistic, est.size if est.reachable else math.inf, optimistic]
    return next((c for c in choices if math.isfinite(c)), math.inf)


def simulate(curve: dict, target: dict, policy: str, calibration, fits: dict, miss_pools: float,
             pilot_sizes: int = PILOT_SIZES) -> dict:
    """One team's rounds for one target under one policy, from a pilot of the curve's `pilot_sizes` smallest sizes."""
    sizes, true = np.asarray(curve["sizes"], float), truth(curve)
    upto, rounds, stopped_at_once = pilot_sizes, 0, False
    first = {}
    for r in range(ROUNDS):
        if upto not in fits:
            fits[upto] = _fit(curve, upto, calibration)
        fit, current = fits[upto], sizes[upto - 1]
        if r == 0 and policy == "plan":
            first = {"p_reachable": fit.p_reachable(target["target"])}
        size = _pick(policy, fit, target["target"], current, ROUNDS - r, miss_pools)
        if size is None:
            stopped_at_once = r == 0
            break
        if upto == len(sizes):  # the ladder ends: nothing more to collect
            break
        rounds += 1
        # the next ladder size at or above the pick (the top of the ladder at most; inf: the next size)
        if not math.isfinite(size):
            upto += 1
        else:
            upto = min(len(sizes), max(upto + 1, int(np.searchsorted(sizes, size * (1 - 1e-9))) + 1))
        if true[upto - 1] >= target["target"] - 1e-12:
            break
    used = float(sizes[upto - 1])
    return {"reached": bool(true[upto - 1] >= target["target"] - 1e-12), "used": used, "rounds": rounds,
            "stopped_at_once": stopped_at_once, "pilot": float(sizes[pilot_sizes - 1]), **first}


def _curve_rows(args) -> list[dict]:
    """Every target x policy of one curve, cached by the curve, its calibration, the policies and this protocol."""
    curve, calibration, scheme, policies, miss_pools, pilot_sizes = args
    key = json.dumps([curve["dataset"], curve["learner"], curve["sizes"], curve["scores"], repr(calibration),
                      pilot_sizes, ROUNDS, MULTIPLES, BOOTSTRAP, policies, miss_pools, PROTOCOL])
    path = CACHE / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    rows, fits = [], {}
    for target in targets(curve, pilot_sizes):
        for policy in policies:
            row = simulate(curve, target, policy, calibration, fits, miss_pools, pilot_sizes)
            rows.append({**row, **target, "policy": policy, "scheme": scheme, "miss_pools": miss_pools,
                         "dataset": curve["dataset"],
                         "learner": curve["learner"], "kind": curve["kind"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(rows))
    return rows


def fold_calibrations(records, curves: list[dict], key: str, image_centre: bool = True) -> list:
    """For each curve, the conditional calibration and the image centre correction with the image curves' own
    p_reachable map (its form chosen on the fold's training image curves, as bench/curve_calibration.py does; left
    out with `image_centre` False) fitted without its dataset (key "group") or its learner."""
    attr = {"group": "dataset", "learner": "learner"}[key]
    folds = cal.group_folds([getattr(r, key) for r in records], 10 if key == "group" else 0)
    fitted = []
    for held in folds:
        train = [r for r in records if getattr(r, key) not in held]
        band = cf.fit_conditional(train, cal.fit_calibration(train), FEATURES)
        if image_centre:
            band = curve_calibration.with_kind_corrections(train, band)
        fitted.append((held, band))
    return [next(c for held, c in fitted if curve[attr] in held) for curve in curves]


def sample(curves: list[dict], n: int, half: str) -> list[dict]:
    """`n` curves (seeded) from one half of the datasets, with ladders long enough for a 2x target.

    The plan's default miss cost is chosen on the "tune" half, and the figures are reported on the
    "report" half: no dataset is in both."""
    # drawn with the default pilot whatever --pilot-sizes says, so that a shorter pilot runs on the same curves
    usable = [c for c in curves if len(c["sizes"]) > PILOT_SIZES + 1
              and ("tune" if zlib.crc32(c["dataset"].encode()) % 2 else "report") == half]
    rng = np.random.default_rng(0)
    return [usable[i] for i in sorted(rng.choice(len(usable), size=min(n, len(usable)), replace=False))]


def _share(values) -> str:
    values = list(values)
    return f"{100 * np.mean(values):5.0f}%" if values else "    -"


def report(rows: list[dict], title: str, policies=POLICIES) -> None:
    print(f"\n{title}")
    print(f"{'policy':>12} {'reached':>8} {'far':>6} {'used/min':>8} {'p90':>6} {'rounds':>6} | "
          f"{'unreach. stop':>13} {'wasted/pilot':>12} | " + " ".join(f"{'cost@' + str(r):>8}" for r in COST_RATIOS))
    for policy in policies:
        mine = [r for r in rows if r["policy"] == policy]
        reach = [r for r in mine if math.isfinite(r["minimum"])]
        far = [r for r in reach if r["multiple"] in FAR]
        ratios = [r["used"] / r["minimum"] for r in reach if r["reached"]]
        unreach = [r for r in mine if not math.isfinite(r["minimum"])]
        wasted = [(r["used"] - r["pilot"]) / r["pilot"] for r in unreach]
        costs = [" ".join(f"{np.mean([(r['used'] - r['pilot']) / r['pilot'] + c * (not r['reached']) for r in mine]):8.2f}"
                          for c in COST_RATIOS)]
        print(f"{policy:>12} {_share(r['reached'] for r in reach):>8} {_share(r['reached'] for r in far):>6} "
              f"{np.median(ratios):8.2f} {np.quantile(ratios, 0.9):6.2f} {np.mean([r['rounds'] for r in reach]):6.2f} | "
              f"{_share(r['stopped_at_once'] for r in unreach):>13} {np.median(wasted):12.2f} | {costs[0]}")
    n_reach = sum(math.isfinite(r["minimum"]) for r in rows) // len(policies)
    n_unreach = sum(not math.isfinite(r["minimum"]) for r in rows) // len(policies)
    print(f"({n_reach} reachable targets, {n_unreach} unreachable; cost in pilots of labels: labels beyond the "
          "pilot + ratio x a miss)")


def separation(rows: list[dict], title: str, thresholds=(0.05, 0.1, 0.2, 0.3, 0.5)) -> None:
    """How well the pilot's p_reachable tells reachable targets from unreachable ones: for a rule "stop at once
    when p_reachable < t", the share of reachable targets it keeps and of unreachable ones it stops, and the
    ROC AUC. The plan's bar asks for both >= 95% kept and >= 60% stopped; no rule on a calibrated chance can
    do better than the best threshold on it."""
    from sklearn.metrics import roc_auc_score

    mine = [r for r in rows if r["policy"] == "plan" and "p_reachable" in r]
    reach = np.array([math.isfinite(r["minimum"]) for r in mine])
    p = np.array([r["p_reachable"] for r in mine])
    if reach.all() or not reach.any():
        return
    print(f"\n{title}: stop at once when the pilot's p_reachable < t (ROC AUC {roc_auc_score(reach, p):.2f})")
    print("  " + "  ".join(f"t={t:<4g} keeps {100 * np.mean(p[reach] >= t):3.0f}% stops {100 * np.mean(p[~reach] < t):3.0f}%"
                           for t in thresholds))


def simulate_all(pool, curves, calibrations, label, policies, miss_pools, pilot_sizes) -> list[dict]:
    return [r for rs in pool.map(_curve_rows, [(c, k, label, policies, miss_pools, pilot_sizes)
                                               for c, k in zip(curves, calibrations)])
            for r in rs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(HERE / "real_curves" / "corpus.json.gz"))
    ap.add_argument("--curves", type=int, default=300, help="curves simulated per half of the datasets")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--tune", type=float, nargs="*", default=[],
                    help="on the tune half: the plan at each of these miss costs (in pools) instead of the report")
    ap.add_argument("--without-image-centre", action="store_true",
                    help="image curves without the image centre correction (the baseline it is measured against)")
    ap.add_argument("--pilot-sizes", type=int, default=PILOT_SIZES,
                    help="the pilot's smallest ladder sizes (5: the corpus ladders reach 16x the pilot more often)")
    args = ap.parse_args()
    start = time.perf_counter()
    corpus = cal.load_corpus(args.corpus)
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for rs in pool.map(curve_calibration.real_records, [(c, BOOTSTRAP) for c in corpus], chunksize=2)
                   for r in rs]
        curves = sample(corpus, args.curves, "tune" if args.tune else "report")
        print(f"pilot: the {args.pilot_sizes} smallest sizes; {len(curves)} of {len(corpus)} corpus curves, {'tune' if args.tune else 'report'} half of the "
              f"datasets ({sum(c['kind'] == 'image' for c in curves)} image, {len({c['dataset'] for c in curves})} "
              f"datasets, {len({c['learner'] for c in curves})} learners); records {time.perf_counter() - start:.0f} s")
        for key, label in (("group", "dataset"), ("learner", "learner")):
            calibrations = fold_calibrations(records, curves, key, not args.without_image_centre)
            if args.tune:
                for m in args.tune:
                    rows = simulate_all(pool, curves, calibrations, label, ("plan",), m, args.pilot_sizes)
                    report(rows, f"tune: held out by {label}, miss cost {m:g} pools", ("plan",))
                continue
            rows = simulate_all(pool, curves, calibrations, label, POLICIES, DEFAULT_MISS_POOLS, args.pilot_sizes)
            report(rows, f"held out by {label}, {ROUNDS} rounds ({time.perf_counter() - start:.0f} s so far)")
            report([r for r in rows if r["kind"] in CORRECTED_KINDS], f"held out by {label}: image curves only")
            separation(rows, f"held out by {label}")
            separation([r for r in rows if r["kind"] in CORRECTED_KINDS], f"held out by {label}, image curves")
    print(f"\n({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
