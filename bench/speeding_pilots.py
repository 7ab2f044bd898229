"""Candidate rules for speeding-up pilots, scored held out on half of the end-to-end CNN curves, then reported on the other.

The CNN curves' small pilots are still speeding up (convex in log size), and the conditional band's upper end
narrows with curvature, so held out they ended above it when they were treated as image curves
(docs/learning-curves.md). Each rule is applied while fitting and scoring bench/curve_calibration.py's
"conditional+image" method:

- "none": as shipped: the CNN curves are a kind of their own, "cnn", with their own centre correction, band and
  p_reachable map (`samplesize.curves.centre`), fitted on the training CNN curves of each fold;
- "as image": as before, the CNN curves treated as image curves (kind "image": the image correction);

and, on top of "as image", the band rules tried first:

- "A": curvature never narrows the upper end (its negative 90% coefficient is undone for convex pilots);
- "T>c": a pilot whose curvature feature exceeds c has an upper end of at least the tangent in log size from its
  last measured mean (last mean + edge slope x ln(n / largest size)); no fitted constant;
- "A+T>0": both.

Printed per rule, held out by dataset (10 folds) and by learner: coverage, interval score and signed error at
2x/4x/8x for the CNN tune half (datasets digits and glyphs), for every other curve, and for the other image curves.
The report half (mnist, photos) and everything is printed only with --report: it was not looked at until the rule
was chosen (the kind of its own, on the tune half). Not a product module: it patches the scoring as a one-off study.

    nice -n 10 python bench/speeding_pilots.py [RULE ...] [--report] [--corpus ...]
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "job"))
sys.path.insert(0, str(HERE))
import curve_calibration as cc  # noqa: E402
from samplesize.curves import calibration as cal  # noqa: E402
from samplesize.curves.conditional import FEATURES, ConditionalBand  # noqa: E402

ORIG_IO = cal._interval_outcomes
ORIG_ENDS = cal.band_ends
ORIG_MULT = ConditionalBand.multipliers
CURV = FEATURES.index("curvature")
TUNE = {"digits", "glyphs"}
REPORT = "--report" in sys.argv


def rule_a(self, x, h):
    low, high = ORIG_MULT(self, x, h)
    c = -self.high_coefs[CURV]
    return low, high + np.maximum(c * np.maximum(x[:, CURV], 0), 0)


def outcomes_with_floor(records, c, threshold):
    """cal._interval_outcomes as it is, with rule T's floor on the upper ends (curvature above `threshold`)."""
    if threshold is None or c.conditional is None:
        return ORIG_IO(records, c)
    # the floor reads what the image correction leaves alone (last mean, edge slope, distance), in record order
    curv = np.array([r.fit.pilot["curvature"] for r in records])
    tangent = np.array([min(float(r.fit.means[-1]) + r.edge_slope * r.distance, 1.0) for r in records])

    def ends(*args):
        low, high = ORIG_ENDS(*args)
        return low, np.where(curv > threshold, np.maximum(high, tangent), high)

    cal.band_ends = ends
    try:
        return ORIG_IO(records, c)
    finally:
        cal.band_ends = ORIG_ENDS


# name: (rule A, rule T's threshold, the CNN curves treated as image curves)
RULES = {"none": (False, None, False), "as image": (False, None, True), "A": (True, None, True),
         "T>0": (False, 0.0, True), "T>0.25": (False, 0.25, True), "T>0.5": (False, 0.5, True),
         "A+T>0": (True, 0.0, True)}


def run(records, name):
    a, thr, as_image = RULES[name]
    if as_image:
        records = [replace(r, kind="image") if r.kind == "cnn" else r for r in records]
    ConditionalBand.multipliers = rule_a if a else ORIG_MULT
    cal._interval_outcomes = lambda rs, c: outcomes_with_floor(rs, c, thr)
    cc._CONDITIONAL.clear()
    res = {}
    for key in ("group", "learner"):
        rows = []
        for test_groups in cal.group_folds([getattr(r, key) for r in records], 10 if key == "group" else 0):
            train = [r for r in records if getattr(r, key) not in test_groups]
            test = [r for r in records if getattr(r, key) in test_groups]
            out = cal.outcomes(test, cc.METHODS[cc.PRIMARY](train), False)
            for row, r in zip(out, test):
                row.update(learner=r.learner, kind=r.kind, cnn="cnn" in r.learner)
            rows.extend(out)
        res[key] = rows
    return res


def show(name, res):
    for key, rows in res.items():
        parts = {"cnn tune": [r for r in rows if r["cnn"] and r["group"] in TUNE],
                 "non-cnn": [r for r in rows if not r["cnn"]],
                 "image non-cnn": [r for r in rows if not r["cnn"] and r["kind"] == "image"]}
        if REPORT:
            parts["cnn report"] = [r for r in rows if r["cnn"] and r["group"] not in TUNE]
            parts["all"] = rows
        for pname, rs in parts.items():
            t = cal.summarise(rs)
            cells = "  ".join(f"{h}x n{t[h]['n']:4d} {100*t[h]['coverage']:3.0f}% IS {t[h]['interval_score']:.4f} "
                              f"sg {t[h]['mean_error']:+.3f}" for h in cal.HORIZONS if h in t)
            print(f"{name:<7} {key:<8} {pname:<14} {cells}", flush=True)


if __name__ == "__main__":
    corpus = cal.load_corpus(sys.argv[sys.argv.index("--corpus") + 1] if "--corpus" in sys.argv
                             else HERE / "real_curves" / "corpus.json.gz")
    t0 = time.time()
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
        records = [r for rs in pool.map(cc.real_records, [(c, 100) for c in corpus], chunksize=2) for r in rs]
    print(f"{len(records)} records, {time.time()-t0:.0f} s", flush=True)
    names = [a for a in sys.argv[1:] if a in RULES] or list(RULES)
    print("rules:", ", ".join(names), "| report half shown:", REPORT, flush=True)
    for name in names:
        t0 = time.time()
        show(name, run(records, name))
        print(f"({time.time()-t0:.0f} s)", flush=True)
