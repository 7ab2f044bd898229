"""Calibrate the curve intervals on real learning curves, and show how honest they are.

For the real corpus (bench/real_curves/corpus.json.gz): every curve is fitted on
its sizes up to 1/4 and, separately, 1/8 of its largest, and on every other size up
to 1/4 (4 sizes, as a short sweep has); then predicted 2x, 4x and 8x beyond. Printed per horizon:

- "before": the interval as it was (k_slope 0.25, normal quantiles), nothing fitted on the corpus;
- "held out": leave-dataset-out cross-validation of the calibration
  (`samplesize.curves.calibration.cross_validate`): the figures a new dataset can expect;
- "in code": the calibration in samplesize/curves.py (CALIBRATION), on all curves (shown
  when it differs from the one fitted on every dataset, whose in-sample figures follow).

and the same for the synthetic sweeps of bench/curve_coverage.py (fitted on all 5
sizes, scored against the true curve). Columns: coverage of nominal 80% intervals,
mean width, interval score (width + 10 x the miss; lower is better), mean and median
absolute error, mean signed error; for the size answers (the score measured there
as the target): how often the size interval holds the true size, median |log2| of
the point answer (unreachable counts as wrong), the share called unreachable, and
the mean p_reachable (all of these targets were reached). Size answers are also shown
for the targets that lie clearly above the fitted data (>= 2 standard errors of the
largest fitted mean): on a flat curve the measured score 4x further out is within
noise of the data, and no size answer can be right. The last line is the calibration fitted on the whole corpus,
to paste into curves.py.

    nice -n 10 python bench/curve_calibration.py [--jobs 2] [--synthetic 140]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "job"))
sys.path.insert(0, str(HERE))
from curve_coverage import SHAPES, make_sweep  # noqa: E402
from samplesize.curves import calibration as cal  # noqa: E402
from samplesize.curves import CALIBRATION, Calibration, fit_learning_curve  # noqa: E402

CACHE = HERE / "real_curves" / ".cache" / "records"
BEFORE = Calibration(k_slope=0.25, k_headroom=0.0, quantiles=((-1.2816, 1.2816),) * 3)


def _real(args):
    """The held-out records of one curve, cached by its content: a grown corpus refits only its new curves."""
    curve, n_bootstrap = args
    key = json.dumps([curve["dataset"], curve["learner"], curve["sizes"], curve["scores"], n_bootstrap])
    path = CACHE / f"records-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    records = cal.held_out_records(curve, n_bootstrap=n_bootstrap)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(records))
    return records


def _synthetic(args):
    index, seed, n_bootstrap = args
    rng = np.random.default_rng([seed, index])
    sizes, scores, f, n_test = make_sweep(rng, SHAPES[index % len(SHAPES)])
    fit = fit_learning_curve(sizes, scores, n_bootstrap=n_bootstrap, seed=index, n_test=n_test)
    at = sizes.max() * np.array(cal.HORIZONS, float)
    return cal.records_from_fit(fit, f"synthetic {index}", at, f(at), cal.HORIZONS)


def _cached(name: str, key: str, compute):
    path = CACHE / f"records-{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def _print(title: str, table: dict) -> None:
    print(f"\n{title}")
    print(f"{'horizon':>7} {'n':>5} {'cover':>6} {'width':>6} {'IS':>6} {'MAE':>6} {'medAE':>6} {'signed':>7} | "
          f"{'size cover':>10} {'med|log2|':>9} {'unreach':>7} {'p_reach':>7}")
    for h, r in table.items():
        size = (f"{100 * r['size_coverage']:9.0f}% {r['size_median_log2']:9.2f} {100 * r['size_unreachable']:6.0f}% "
                f"{r['p_reachable']:7.2f}") if "size_coverage" in r else f"{'-':>10} {'-':>9} {'-':>7} {'-':>7}"
        print(f"{str(h) + 'x':>7} {r['n']:5d} {100 * r['coverage']:5.0f}% {r['width']:6.3f} {r['interval_score']:6.3f} "
              f"{r['mae']:6.4f} {r['median_ae']:6.4f} {r['mean_error']:+7.4f} | {size}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(HERE / "real_curves" / "corpus.json.gz"))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--synthetic", type=int, default=140, help="synthetic sweeps (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-sizes", action="store_true", help="skip the size answers (faster)")
    args = ap.parse_args()
    start = time.perf_counter()
    curves = cal.load_corpus(args.corpus)
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for rs in pool.map(_real, [(c, args.bootstrap) for c in curves], chunksize=2) for r in rs]
        synth = _cached("synthetic", f"{args.synthetic}-{args.seed}-{args.bootstrap}", lambda: [
            r for rs in pool.map(_synthetic, [(i, args.seed, args.bootstrap) for i in range(args.synthetic)],
                                 chunksize=4) for r in rs]) if args.synthetic else []
    sizes = not args.no_sizes
    print(f"real corpus: {len(curves)} curves, {len({c['dataset'] for c in curves})} datasets, "
          f"learners {', '.join(sorted({c['learner'] for c in curves}))}; {len(records)} held-out predictions "
          f"(fitted on: {'; '.join(p[0] for p in cal.PROTOCOLS)} of the largest size); "
          f"fits {time.perf_counter() - start:.0f} s")
    _print("real, before (k_slope 0.25, normal quantiles):", cal.summarise(cal.outcomes(records, BEFORE, sizes)))
    held_out = cal.cross_validate(records, sizes)
    _print("real, held out (leave-dataset-out calibration):", cal.summarise(held_out))
    rising = [r for r in held_out if r.get("gain_se", 0) >= 2]
    _print(f"real, held out, only targets >= 2 standard errors above the largest fitted mean ({len(rising)}):",
           cal.summarise(rising))
    fitted = cal.fit_calibration(records)
    if fitted != CALIBRATION:
        _print(f"real, in code ({CALIBRATION}):", cal.summarise(cal.outcomes(records, CALIBRATION, sizes)))
    _print("real, fitted on every dataset (in sample; the calibration below):",
           cal.summarise(cal.outcomes(records, fitted, sizes)))
    if synth:
        print(f"\nsynthetic: {args.synthetic} sweeps of bench/curve_coverage.py (seed {args.seed}), "
              "fitted on all 5 sizes, against the true curve")
        _print("synthetic, before:", cal.summarise(cal.outcomes(synth, BEFORE, sizes)))
        _print("synthetic, in code:", cal.summarise(cal.outcomes(synth, CALIBRATION, sizes)))
        if fitted != CALIBRATION:
            _print("synthetic, with the calibration below:", cal.summarise(cal.outcomes(synth, fitted, sizes)))
    print(f"\ncalibration: {fitted}" + ("  (the one in code)" if fitted == CALIBRATION else "  (paste into curves.py)"))
    print(f"({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
