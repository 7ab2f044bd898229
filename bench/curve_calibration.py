"""Calibrate the curve intervals on real learning curves, and show how honest they are, held out.

Every corpus curve (bench/real_curves/corpus.json.gz) is fitted as a pilot is run: on its 6
smallest sizes (16 to 91) and, separately, on every other size up to 1/4 of its largest; then
predicted 2x, 4x and 8x beyond (`samplesize.curves.calibration.PILOT_PROTOCOLS`). Two methods:

- "global": today's calibration (one widening and one pair of residual quantiles per horizon);
- "conditional": quantiles that are linear functions of what the pilot shows, conformalized per
  horizon, and p_reachable mapped to the share reached (`samplesize.curves.conditional_fit`).

- "conditional+image": the conditional band plus each corrected kind's centre correction
  (`samplesize.curves.centre_fit`): image classifiers on a backbone's features ("image") and CNNs trained
  end to end ("cnn"), each one's form chosen inside each fold on the fold's training curves of that kind,
  with the kind's own p_reachable map; each candidate form of the image correction, fixed and with the
  shared map, is printed after it as an ablation (`--no-ablations` skips them).

Each is re-fitted without the held-out curves: by dataset (10 folds of whole datasets) and by
learner (one learner left out at a time); the conditional method's feature set is chosen inside
each fold (5-fold leave-dataset-out on the fold's training curves: nested). Printed: per horizon coverage of nominal 80% intervals,
mean width, interval score (width + 10 x the miss; lower is better), MAE, median |error|, mean
signed error (prediction - measured); the size interval's coverage; per learner group and for
image curves apart (both kinds, then each); p_reachable's reliability table with its Brier score and skill over
the base rate (targets between the last fitted mean and 1, "reached" = measured beyond the pilot); and
the constants fitted on every curve, to paste into samplesize/curves/band.py.

    nice -n 10 python bench/curve_calibration.py [--jobs 2] [--corpus ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "job"))
from samplesize.curves import calibration as cal  # noqa: E402
from samplesize.curves import conditional_fit as cf  # noqa: E402
from samplesize.curves import CALIBRATION  # noqa: E402
from samplesize.curves import centre_fit  # noqa: E402
from samplesize.curves.centre import CORRECTED_KINDS  # noqa: E402

CACHE = HERE / "real_curves" / ".cache" / "records"
_CONDITIONAL: dict = {}


def _conditional(train):
    """The conditional calibration of a fold's training records (once per fold: the image variants share it)."""
    key = frozenset(id(r) for r in train)
    if key not in _CONDITIONAL:
        _CONDITIONAL[key] = cf.fit_conditional(train, cal.fit_calibration(train))
    return _CONDITIONAL[key]


def kind_correction(train, base, kind: str, form: str | None = None, estimator: str = "mean",
                    reconformalize: bool = True, p_map: bool = True):
    """`kind`'s centre correction fitted on the training records `train` only, against the band `base`; form None:
    the form and estimator chosen on them too (`centre_fit.choose_centre_shift`). p_map: the kind's curves get
    their own p_reachable map, fitted on its training curves too."""
    f, e = (form, estimator) if form else centre_fit.choose_centre_shift(train, base, kind)
    if not form:
        CHOSEN.append((kind, f, e))
    shift = centre_fit.fit_centre_shift(train, base, f, kind, reconformalize=reconformalize, estimator=e)
    if p_map and shift is not None:
        shift = replace(shift, p_coefs=centre_fit.fit_kind_p_map(train, base, f, e, kind))
    return shift


def with_kind_corrections(train, base, form: str | None = None, estimator: str = "mean",
                          reconformalize: bool = True, p_map: bool = True):
    """`base` plus each corrected kind's correction (`kind_correction`), fitted on `train`: the image one as the
    arguments say, the CNN one always chosen inside the fold, with its own map."""
    out = base
    for kind in CORRECTED_KINDS:
        fixed = (form, estimator, reconformalize, p_map) if kind == "image" else (None, "mean", True, True)
        out = out.with_shift(kind, kind_correction(train, base, kind, *fixed))
    return out


def _image_centre(form: str | None = None, estimator: str = "mean", reconformalize: bool = True,
                  p_map: bool = True):
    """The conditional calibration plus the kinds' corrections (`with_kind_corrections`), as a method."""
    return lambda train: with_kind_corrections(train, _conditional(train), form, estimator, reconformalize, p_map)


# Each kind's correction is chosen inside each fold (nested) from centre_fit.CANDIDATES, by the interval score of
# the fold's training curves of that kind with each learner group (or learner: `centre_fit.inner_groups`) left
# out in turn, and each kind's curves get their own p_reachable map; every candidate of the image correction,
# fixed and with the shared map, is printed beside it as an ablation (the "headroom, mean" one is the primary
# method without its image map), not to choose from.
PRIMARY = "conditional+image"
CHOSEN: list = []  # the nested choice of each fold
METHODS = {
    "global": lambda train: cal.fit_calibration(train),
    "conditional": _conditional,
    PRIMARY: _image_centre(),
}
ABLATIONS = {f"image fixed: {f}, {e}": _image_centre(f, e, p_map=False) for f, e in centre_fit.CANDIDATES}
ABLATIONS["image fixed: headroom, ls, band not re-conformalized"] = _image_centre("headroom", "ls", False, False)


def _real(args):
    """The held-out records of one curve, cached by its content: a grown corpus refits only its new curves."""
    curve, n_bootstrap = args
    key = json.dumps([curve["dataset"], curve["learner"], curve["sizes"], curve["scores"], n_bootstrap,
                      cal.PILOT_PROTOCOLS, 2])
    path = CACHE / f"pilot-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    records = cal.held_out_records(curve, n_bootstrap=n_bootstrap, protocols=cal.PILOT_PROTOCOLS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(records))
    return records


def real_records(curve_and_bootstrap):
    """`_real`'s records with the curve's kind as the corpus has it now (the cache's key leaves the kind out, so a
    relabelled curve keeps its fits)."""
    kind = curve_and_bootstrap[0].get("kind", "tabular")
    return [replace(r, kind=kind) for r in _real(curve_and_bootstrap)]


def _print(title: str, table: dict) -> None:
    print(f"\n{title}")
    print(f"{'horizon':>7} {'n':>5} {'cover':>6} {'width':>6} {'IS':>6} {'MAE':>6} {'medAE':>6} {'signed':>7} | "
          f"{'size cover':>10} {'med|log2|':>9}")
    for h, r in table.items():
        size = (f"{100 * r['size_coverage']:9.0f}% {r['size_median_log2']:9.2f}" if "size_coverage" in r
                else f"{'-':>10} {'-':>9}")
        print(f"{str(h) + 'x':>7} {r['n']:5d} {100 * r['coverage']:5.0f}% {r['width']:6.3f} {r['interval_score']:6.3f} "
              f"{r['mae']:6.4f} {r['median_ae']:6.4f} {r['mean_error']:+7.4f} | {size}")


def _by(rows, key: str, title: str) -> None:
    print(f"\n{title}: per {key}, 4x (and 2x, 8x) coverage, interval score at 4x, signed error at 4x "
          f"(a group without 4x predictions, as the end-to-end CNN curves' short ladders: its 2x ones)")
    for g in sorted({r[key] for r in rows}):
        t = cal.summarise([r for r in rows if r[key] == g])
        h = 4 if 4 in t else min(t)
        cov = " ".join(f"{100 * t[k]['coverage']:3.0f}%" if k in t else "   -" for k in cal.HORIZONS)
        print(f"  {g:<22} n{h}x {t[h]['n']:4d}  cover 2/4/8x {cov}  IS{h}x {t[h]['interval_score']:.3f}  "
              f"signed{h}x {t[h]['mean_error']:+.4f}")


def held_out(records, method, key: str, sizes: bool):
    """One calibration per fold (whole datasets, or one learner, left out): the held-out interval
    outcomes and p_reachable forecasts (as shipped: mapped for the conditional method) with outcomes."""
    rows, ps, ys, image_p, image_y = [], [], [], [], []
    for test_groups in cal.group_folds([getattr(r, key) for r in records], 10 if key == "group" else 0):
        train = [r for r in records if getattr(r, key) not in test_groups]
        test = [r for r in records if getattr(r, key) in test_groups]
        fitted = method(train)
        out = cal.outcomes(test, fitted, sizes)
        for row, r in zip(out, test):
            row.update(learner=r.learner, kind=r.kind, learner_group=r.learner_group)
        rows.extend(out)
        p, y, _ = cf.forecasts(test, fitted, mapped=True)
        ps.append(p)
        ys.append(y)
        p, y, _ = cf.forecasts([r for r in test if r.kind in CORRECTED_KINDS], fitted, mapped=True)
        image_p.append(p)
        image_y.append(y)
    return rows, np.concatenate(ps), np.concatenate(ys), (np.concatenate(image_p), np.concatenate(image_y))


def _print_reliability(title: str, p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Print the reliability table; return the Brier skill and the largest |stated - reached| over the bins
    of 30 or more forecasts (issue 23's bar: skill >= 0.25, every such bin within 0.10)."""
    print(f"\n{title}")
    print(f"  {'stated p':<10} {'forecasts':>9} {'mean stated':>11} {'share reached':>13}")
    edges, worst = np.linspace(0, 1, 6), 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            print(f"  {lo:.1f}-{hi:.1f}    {m.sum():9d} {p[m].mean():11.2f} {y[m].mean():13.2f}")
        if m.sum() >= 30:
            worst = max(worst, abs(float(p[m].mean() - y[m].mean())))
    brier, base = float(np.mean((p - y) ** 2)), float(np.mean((y.mean() - y) ** 2))
    print(f"  Brier {brier:.3f}, base rate {y.mean():.2f} (Brier {base:.3f}), skill {1 - brier / base:.2f}")
    return 1 - brier / base, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(HERE / "real_curves" / "corpus.json.gz"))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--no-sizes", action="store_true", help="skip the size answers (faster)")
    ap.add_argument("--no-ablations", action="store_true", help="skip the fixed image corrections (faster)")
    args = ap.parse_args()
    start = time.perf_counter()
    curves = cal.load_corpus(args.corpus)
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for rs in pool.map(real_records, [(c, args.bootstrap) for c in curves], chunksize=2) for r in rs]
    sizes = not args.no_sizes
    print(f"real corpus: {len(curves)} curves ({sum(c['kind'] == 'image' for c in curves)} image on a backbone's "
          f"features, {sum(c['kind'] == 'cnn' for c in curves)} CNN trained end to end), "
          f"{len({c['dataset'] for c in curves})} datasets, {len({c['learner'] for c in curves})} learners in "
          f"{len({c.get('group', c['learner']) for c in curves})} groups; {len(records)} held-out predictions "
          f"(fitted on: {'; '.join(p[0] for p in cal.PILOT_PROTOCOLS)}); fits {time.perf_counter() - start:.0f} s")
    print("p_reachable's outcome: a target (5, 15, 30, 50, 75% of the way from the last fitted mean to 1) counts "
          "as reached when a mean measured beyond the fit (up to the ladder's top: 4x to 11x) is at least it")
    image_sets = sorted({c["dataset"] for c in curves if c["kind"] in CORRECTED_KINDS})
    print(f"each kind's correction and p_reachable map: fitted in each fold on that fold's training curves of the "
          f"kind only. By dataset, the {len(image_sets)} image datasets ({', '.join(image_sets)}) are left out by fold")
    verdict, image_tables = {}, {}
    for name, method in {**METHODS, **({} if args.no_ablations else ABLATIONS)}.items():
        for key, label in (("group", "dataset"), ("learner", "learner")):
            CHOSEN.clear()
            rows, p, y, (image_p, image_y) = held_out(records, method, key, sizes and key == "group")
            if CHOSEN:
                print(f"\n{name}, held out by {label}: the nested choice per fold (kind: form, estimator): "
                      + ", ".join(f"{k}: {f}/{e} x{CHOSEN.count((k, f, e))}" for k, f, e in sorted(set(CHOSEN))))
            table = cal.summarise(rows)
            image_rows = [r for r in rows if r["kind"] in CORRECTED_KINDS]
            image = cal.summarise(image_rows)
            _print(f"{name}, held out by {label}:", table)
            _print(f"{name}, held out by {label}, image curves only (both kinds):", image)
            for kind in CORRECTED_KINDS:
                _print(f"{name}, held out by {label}, {kind} curves only:",
                       cal.summarise([r for r in rows if r["kind"] == kind]))
            _by(rows, "learner_group", f"{name}, held out by {label}")
            _by(image_rows, "learner_group", f"{name}, held out by {label}, image curves")
            if key == "group":  # each image dataset, scored by calibrations fitted without it
                for d in sorted({r["group"] for r in image_rows}):
                    _print(f"{name}, held out by {label}, image curves of {d} only:",
                           cal.summarise([r for r in image_rows if r["group"] == d]))
            skill, _ = _print_reliability(f"{name}, held out by {label}: p_reachable reliability", p, y)
            image_reliability = _print_reliability(
                f"{name}, held out by {label}: p_reachable reliability, image curves only", image_p, image_y)
            verdict[name, label] = table, skill
            image_tables[name, label] = image, image_reliability
    _verdict(verdict)
    _image_verdict(verdict, image_tables)
    fitted = METHODS["conditional"](records)
    print(f"\nin code: {CALIBRATION}")
    print(f"conditional calibration fitted on every curve (feature set {cf.choose_features(records, fitted)!r}; "
          f"paste into band.py): {fitted}")
    for kind in CORRECTED_KINDS:
        CHOSEN.clear()
        shipped = kind_correction(records, CALIBRATION, kind)
        print(f"{kind} correction chosen ({'/'.join(CHOSEN[0][1:])}) and fitted on every curve against the shipped "
              f"band (paste into band.py as CALIBRATION.{kind}): {shipped}")
    print(f"({time.perf_counter() - start:.0f} s in all)")


def _image_verdict(verdict: dict, image: dict) -> None:
    """Issue 23's bar for the image correction, held out by dataset and by learner: image 4x signed error within
    +-0.01 and image 4x coverage 75-85%; overall coverage 75-85% at 2x, 4x, 8x, overall interval score no worse
    than the conditional band's there, 4x MAE no worse."""
    print(f"\nimage correction's bar ({PRIMARY} vs conditional, held out):")
    ok = True
    for label in ("dataset", "learner"):
        (c, _), (n, _) = verdict["conditional", label], verdict[PRIMARY, label]
        (ci, (cs, cw)), (ni, (ns, nw)) = image["conditional", label], image[PRIMARY, label]
        good = abs(ni[4]["mean_error"]) <= 0.01 and 0.75 <= ni[4]["coverage"] <= 0.85
        ok &= good
        print(f"  by {label:<8} image 4x: signed {ci[4]['mean_error']:+.4f} -> {ni[4]['mean_error']:+.4f}, cover "
              f"{100 * ci[4]['coverage']:.1f}% -> {100 * ni[4]['coverage']:.1f}%, IS {ci[4]['interval_score']:.3f} -> "
              f"{ni[4]['interval_score']:.3f}  {'ok' if good else 'FAILS'}")
        good = ns >= 0.25 and nw <= 0.10
        ok &= good
        print(f"  by {label:<8} image p_reachable: Brier skill {cs:.2f} -> {ns:.2f}, largest bin gap {cw:.2f} -> "
              f"{nw:.2f}  {'ok' if good else 'FAILS'}")
        for h in cal.HORIZONS:
            good = _holds(n[h], c[h], h, strict=False)
            ok &= good
            print(f"  by {label:<8} all {h}x: IS {c[h]['interval_score']:.5f} -> {n[h]['interval_score']:.5f}, cover "
                  f"{100 * c[h]['coverage']:.0f}% -> {100 * n[h]['coverage']:.0f}%, MAE {c[h]['mae']:.4f} -> "
                  f"{n[h]['mae']:.4f}  {'ok' if good else 'FAILS'}")
    print(f"  -> {'meets the bar: ship CALIBRATION.image and .cnn' if ok else 'does not meet the bar'}")


def _holds(new: dict, old: dict, h: int, strict: bool) -> bool:
    """The bar at horizon h: a held-out interval score lower than `old`'s (or, not `strict`, no higher), coverage
    within 75-85%, and at 4x an MAE no worse."""
    better = new["interval_score"] < old["interval_score"] if strict else \
        new["interval_score"] <= old["interval_score"] + 1e-12
    return better and 0.75 <= new["coverage"] <= 0.85 and (h != 4 or new["mae"] <= old["mae"] + 1e-12)


def _verdict(verdict: dict) -> None:
    """The switch's rule: the conditional method ships only if its held-out interval score is lower at
    2x, 4x and 8x, by dataset and by learner, its coverage within 75-85% there, and 4x MAE no worse."""
    print("\nswitch rule (conditional vs global, held out):")
    ok = True
    for label in ("dataset", "learner"):
        (g, _), (c, skill) = verdict["global", label], verdict["conditional", label]
        for h in cal.HORIZONS:
            if h not in g:
                continue
            good = _holds(c[h], g[h], h, strict=True)
            ok &= good
            print(f"  by {label:<8} {h}x: IS {g[h]['interval_score']:.3f} -> {c[h]['interval_score']:.3f}, "
                  f"cover {100 * g[h]['coverage']:.0f}% -> {100 * c[h]['coverage']:.0f}%, "
                  f"width {g[h]['width']:.3f} -> {c[h]['width']:.3f}  {'ok' if good else 'FAILS'}")
        print(f"  by {label:<8} p_reachable Brier skill {verdict['global', label][1]:.2f} -> {skill:.2f}")
    print(f"  -> {'switch ON (set CALIBRATION.conditional)' if ok else 'keep the switch OFF'}")


if __name__ == "__main__":
    main()
