"""How far a pilot can tell reachable targets from unreachable ones: the calibrated p_reachable against richer forecasts.

The collection plan's bar asks it to keep (collect for) at least 95% of reachable targets while stopping at once
for at least 60% of unreachable ones (issue 21). The plan stops on a calibrated chance, so its trade-off is bounded
by how well that chance separates the two kinds of target. This bench asks whether more of what the pilot shows
would separate them better: on the collection bench's targets (bench/collection_plan.py: its curves, its 6-size
pilot, reachable targets at 2-16x and one unreachable target per curve 0.02 above its best measured mean; every
band calibrated without the curve's dataset), three forecasts of "reachable" from the pilot fit:

- the calibrated p_reachable alone (what the plan reads);
- a logistic regression on p_reachable's logit, its target features, the band's ends and centre at 16x and 64x
  beyond the data, the target's height, and the pilot's features (stuck, flat, slope, noise, curvature, falls,
  zigzag);
- gradient-boosted trees on the same features.

The two learned forecasts are fitted on the tune half of the datasets and scored on the report half (no dataset
in both), and also cross-validated within the tune half by dataset. Printed: ROC AUC, and the share of reachable
targets kept by the threshold that stops 60% of the unreachable ones.

    nice -n 10 python bench/pilot_separation.py [--jobs 2]

Resumable: the forecasts' inputs are cached per half under bench/real_curves/.cache/separation/.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "job"))
sys.path.insert(0, str(HERE))
import collection_plan as cp  # noqa: E402
import curve_calibration  # noqa: E402
from samplesize.curves import calibration as cal  # noqa: E402
from samplesize.curves.conditional import PILOT_FEATURES, logit, target_features  # noqa: E402

CACHE = HERE / "real_curves" / ".cache" / "separation"
PILOT = ("stuck", "flat", "slope", "noise", "curvature", "falls", "zigzag")
STOPPED = 0.6  # the bar's share of unreachable targets stopped at once


def target_rows(args) -> list[dict]:
    """The forecast inputs and the outcome of every target of one curve, from its pilot fit."""
    curve, calibration = args
    fit = cp._fit(curve, cp.PILOT_SIZES, calibration)
    far = np.array([16.0, 64.0]) * fit.max_size
    low, high = fit.interval(far)
    centre = fit.predict(far)
    rows = []
    for t in cp.targets(curve):
        y = t["target"]
        p = fit.p_reachable(y)
        x = [logit(p), *target_features(fit, y), y - centre[0], high[0] - y, y - low[0],
             high[1] - y, y - float(fit.means[-1]), 1.0 - y, *(fit.pilot[f] for f in PILOT)]
        rows.append({"x": x, "p": p, "reachable": math.isfinite(t["minimum"]), "dataset": curve["dataset"]})
    return rows


def half_rows(pool, corpus, records, half: str) -> list[dict]:
    """Every target of the collection bench's curves in one half, each curve's band calibrated without its dataset."""
    curves = cp.sample(corpus, 300, half)
    key = hashlib.sha1(repr([[c["dataset"], c["learner"], c["sizes"]] for c in curves]).encode()).hexdigest()[:12]
    path = CACHE / f"{half}-{key}-p{cp.PILOT_SIZES}-v{cp.PROTOCOL}.pkl"  # the band's ends are inputs: the protocol too
    if path.exists():
        return pickle.loads(path.read_bytes())
    calibrations = cp.fold_calibrations(records, curves, "group")
    rows = [r for rs in pool.map(target_rows, zip(curves, calibrations)) for r in rs]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(rows))
    return rows


def forecaster(kind: str):
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=0)


def line(name: str, reachable: np.ndarray, score: np.ndarray) -> str:
    """AUC, and the reachable share kept by the threshold that stops STOPPED of the unreachable targets."""
    threshold = np.quantile(score[~reachable], STOPPED)
    return (f"  {name:<38} AUC {roc_auc_score(reachable, score):.3f}   stopping {100 * STOPPED:.0f}% of unreachable "
            f"keeps {100 * np.mean(score[reachable] >= threshold):3.0f}% of reachable")


def arrays(rows):
    return (np.array([r["x"] for r in rows]), np.array([r["reachable"] for r in rows]),
            np.array([r["p"] for r in rows]), np.array([r["dataset"] for r in rows]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    start = time.perf_counter()
    corpus = cal.load_corpus(HERE / "real_curves" / "corpus.json.gz")
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for rs in pool.map(curve_calibration.real_records, [(c, cp.BOOTSTRAP) for c in corpus], chunksize=2)
                   for r in rs]
        tune, report = (half_rows(pool, corpus, records, half) for half in ("tune", "report"))
    (xt, yt, pt, gt), (xr, yr, pr, _) = arrays(tune), arrays(report)
    print(f"pilot: the {cp.PILOT_SIZES} smallest sizes; tune half {len(yt)} targets ({(~yt).sum()} unreachable), "
          f"report half {len(yr)} ({(~yr).sum()} unreachable); {len(xt[0])} features: p_reachable's logit, its 3 "
          f"target features, the band at 16x and 64x, the target's height, the pilot's {', '.join(PILOT)} "
          f"(of {len(PILOT_FEATURES)}); {time.perf_counter() - start:.0f} s")
    print("\nfitted on the tune half, scored on the report half:")
    print(line("calibrated p_reachable (the plan's)", yr, pr))
    for kind in ("logistic", "boosted trees"):
        print(line(f"{kind} on the pilot's features", yr, forecaster(kind).fit(xt, yt).predict_proba(xr)[:, 1]))
    print("\ncross-validated within the tune half (5 folds of whole datasets):")
    print(line("calibrated p_reachable (the plan's)", yt, pt))
    for kind in ("logistic", "boosted trees"):
        out = np.zeros(len(yt))
        for tr, te in GroupKFold(5).split(xt, yt, gt):
            out[te] = forecaster(kind).fit(xt[tr], yt[tr]).predict_proba(xt[te])[:, 1]
        print(line(f"{kind} on the pilot's features", yt, out))
    print(f"\n({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
