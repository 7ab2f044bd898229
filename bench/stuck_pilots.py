"""Stuck pilots by learner: what their curves do after the pilot, and how the band covers them held out by learner.

A stuck pilot is flat and its repetitions differ by less than the test set's sampling noise
(`samplesize.curves.conditional`: it gets its own conformal shift, a band open above and a warning). Held out by
learner, the discriminant group (LDA, QDA) was the one learner group under issue 23's 70% bar before the band was
open above. This prints, from the held-out records of bench/curve_calibration.py (each corpus curve fitted on its 6
smallest sizes and on every other size up to 1/4 of its ladder, scored 2x, 4x and 8x beyond):

- per learner with stuck pilots: how many, on how many datasets, and the measured mean minus the band's centre
  beyond the pilot (median, 10th and 90th percentiles): does the curve take off, fall or stay?
- for each learner with at least MIN_STUCK_RECORDS of them: the coverage of its stuck and other records by the
  shipped method (the conditional band with the image correction, a stuck pilot's band open above) calibrated
  without that learner.

    nice -n 10 python bench/stuck_pilots.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "job"))
sys.path.insert(0, str(HERE))
import curve_calibration as cc  # noqa: E402
from samplesize.curves import calibration as cal  # noqa: E402
from samplesize.curves.conditional import STUCK  # noqa: E402

MIN_STUCK_RECORDS = 10
BOOTSTRAP = 100  # bench/curve_calibration.py's default: its cached records are the ones read here


def is_stuck(record) -> bool:
    return record.fit.pilot["stuck"] >= STUCK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(HERE / "real_curves" / "corpus.json.gz"))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    start = time.perf_counter()
    corpus = cal.load_corpus(args.corpus)
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for rs in pool.map(cc.real_records, [(c, BOOTSTRAP) for c in corpus], chunksize=2) for r in rs]
    by = defaultdict(list)
    for r in filter(is_stuck, records):
        by[r.learner, r.kind].append(r)
    print(f"{len(records)} held-out records, {sum(map(len, by.values()))} of them from stuck pilots; {time.perf_counter() - start:.0f} s")
    print(f"\n{'learner':<20} {'kind':<8} {'records':>7} {'datasets':>8} | measured - centre: {'median':>7} {'p10':>7} {'p90':>7}")
    for (learner, kind), rs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        d = np.array([r.truth - r.centre for r in rs])
        print(f"{learner:<20} {kind:<8} {len(rs):7d} {len({r.group for r in rs}):8d} | {'':>19}"
              f"{np.median(d):+7.3f} {np.quantile(d, 0.1):+7.3f} {np.quantile(d, 0.9):+7.3f}")
    print(f"\nheld out by learner ({cc.PRIMARY}, calibrated without the learner): coverage of nominal 80% intervals")
    counts = Counter(r.learner for r in filter(is_stuck, records))
    learners = sorted(learner for learner, n in counts.items() if n >= MIN_STUCK_RECORDS)
    for learner in learners:
        train = [r for r in records if r.learner != learner]
        test = [r for r in records if r.learner == learner]
        covered = np.array([o["covered"] for o in cal.outcomes(test, cc.METHODS[cc.PRIMARY](train), False)])
        mine = np.array([is_stuck(r) for r in test])
        print(f"  {learner:<20} stuck {mine.sum():4d} covered {100 * covered[mine].mean():3.0f}%   "
              f"other {(~mine).sum():4d} covered {100 * covered[~mine].mean():3.0f}%")
    print(f"\n({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
