"""The summary of one pipeline's results: per-size statistics, the fitted curves, the answer per target.

`build_summary(cfg, loaded, ...)` fits the configured metric's curve and the per-class
recall curves on the loaded results, validates them against the backtest splits, and
returns the summary (the content of `report/summary.json`).

Nothing here imports TensorFlow: aggregation runs on a small CPU pod.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np

from . import __version__
from .config import SweepConfig
from .curves import DEFAULT_BOOTSTRAP, FAR_FACTOR, LEVEL, REACH_HORIZON, CurveFitError, fit_learning_curve
from .jsonsafe import json_safe
from .plan import trial_spec
from .results import LoadedResults, finite
from .text import index_ranges

SUMMARY_SCHEMA_VERSION = 1
COMPLETE_JOB_STATES = ("complete", "completed", "succeeded")
# Per-class curves rank classes by how short of data they are; one robust family
# with a ceiling does that well and keeps aggregation fast with many classes.
CLASS_FAMILIES = ("pow3",)
# Predictions at these multiples of the pool answer "what would more of our kind of data buy".
POOL_MULTIPLES = (2, 4)
# Below this many test images a score moves in steps of more than 0.033: the report says so.
MIN_TEST_SIZE = 30


# ---------------------------------------------------------------- aggregation


def build_summary(cfg: SweepConfig, loaded: LoadedResults, *, failed_indexes: Iterable[int] = (),
                  job_state: str | None = None, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                  output_uri: str = "") -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The summary dict (JSON-safe), the metric's fit (or None) and the per-class fits."""
    results = loaded.results
    head, partial_warning = summary_head(cfg, loaded, failed_indexes, job_state)
    failed = head["trials"]["failed"]
    warnings = [partial_warning] if partial_warning else []
    failed_present = [i for i in failed if i in results]
    if failed_present:
        warnings.append(f"indexes {index_ranges(failed_present)} are marked failed by the Job but have a usable result, which is used")
    warnings.extend(loaded.problems)

    points = _points(cfg, results)
    per_size = _per_size_stats(cfg, results, cfg.metric)
    fitted_splits = sorted({p["split"] for p in points if not p["backtest"]})
    facts = run_facts(cfg, results, output_uri, warnings)
    fit, validation_fit, no_curve = _fit_metric(cfg, points, per_size, fitted_splits, n_bootstrap,
                                                facts["test_size"], warnings)
    # The banners' texts, so that the report can leave them out of the list of warnings.
    facts.update(partial_warning=partial_warning, no_curve=no_curve)
    prediction_sizes = _prediction_sizes(cfg, facts["pool_size"])
    curve, predictions, targets = _answer(cfg, fit, per_size, prediction_sizes, warnings)

    class_boot = max(50, n_bootstrap // 10) if n_bootstrap > 0 else 0
    per_class, class_fits = _per_class(cfg, results, fitted_splits, prediction_sizes, class_boot, warnings)

    summary = {
        **head,
        "per_size": per_size,
        "chosen_family": fit.family if fit is not None else None,
        "curve": curve,
        "predictions": predictions,
        "targets": targets,
        "backtest": _backtest(validation_fit, per_size),
        "validation": _validation(validation_fit, fit, per_size),
        "per_class": per_class,
        "confusion_matrix": _confusion_at_largest(results, per_size),
        "run": facts,
        "points": points,
        "warnings": warnings,
    }
    _guard_small_test_set(summary)
    return json_safe(summary), fit, class_fits


def summary_head(cfg: SweepConfig, loaded: LoadedResults, failed_indexes: Iterable[int],
                  job_state: str | None) -> tuple[dict[str, Any], str | None]:
    """The fields every summary opens with (status, metric, level, trials) and the PARTIAL warning
    (None when the sweep is complete), which its warnings start with."""
    failed = sorted({int(i) for i in failed_indexes})
    reasons = partial_reasons(loaded.missing, [i for i in failed if i not in loaded.results],
                               cfg.trial_count, job_state)
    partial_warning = None
    if reasons:
        partial_warning = ("PARTIAL SWEEP: " + "; ".join(reasons)
                           + ". The numbers below will change when the remaining trials finish; re-run aggregate then.")
    head = {
        "summary_schema_version": SUMMARY_SCHEMA_VERSION,
        "complete": not reasons,
        "status": "partial" if reasons else "complete",
        "partial_reasons": reasons,
        "metric": cfg.metric,
        "level": LEVEL,
        "trials": {
            "expected": cfg.trial_count,
            "usable": len(loaded.results),
            "missing": loaded.missing,
            "failed": failed,
            "rejected": loaded.problems,
            "job_state": job_state,
        },
    }
    return head, partial_warning


def _points(cfg: SweepConfig, results: dict[int, dict]) -> list[dict]:
    """One point per usable trial: its size, its score and whether its split is a backtest split."""
    return [
        {
            "index": i,
            "split": r["split"],
            "repetition": r.get("repetition"),
            "sample_size": r["sample_size"],
            "score": r["metrics"][cfg.metric],
            "backtest": trial_spec(cfg, i).backtest,
        }
        for i, r in sorted(results.items())
    ]


def _fit_metric(cfg: SweepConfig, points: list[dict], per_size: list[dict], fitted_splits: list[float],
                n_bootstrap: int, n_test: int | None, warnings: list[str]) -> tuple[Any, Any, str | None]:
    """The answer's fit, the validation fit (without the backtest splits) and why there is no curve.

    Without a curve both fits are None and the reason (also the first warning) says why."""
    if len(fitted_splits) < 2:
        no_curve = _too_few_splits(fitted_splits, per_size)
        warnings.insert(0, no_curve)
        return None, None, no_curve
    fitted = [p for p in points if not p["backtest"]]
    try:
        validation_fit = fit_learning_curve(
            [p["sample_size"] for p in fitted], [p["score"] for p in fitted],
            n_bootstrap=n_bootstrap, seed=cfg.seed, n_test=n_test,
        )
    except CurveFitError as exc:
        no_curve = f"NO CURVE: the {cfg.metric} curve could not be fitted: {exc}"
        warnings.insert(0, no_curve)
        return None, None, no_curve
    # The backtest splits validate the method (`validation_fit` never saw them); the answer is then
    # refitted on every measured size, since the largest trials are the most informative.
    fit = _answer_fit(points, validation_fit, n_bootstrap, cfg.seed, n_test, warnings)
    warnings.extend(f"curve fit: {w}" for w in fit.warnings)
    if fit is not validation_fit:
        warnings.extend(f"validation fit (without the backtest splits): {w}"
                        for w in validation_fit.warnings if w not in fit.warnings)
    return fit, validation_fit, None


def _too_few_splits(fitted_splits: list[float], per_size: list[dict]) -> str:
    """The NO CURVE reason when fewer than two fitted splits have finished trials."""
    if fitted_splits:
        only = next(row for row in per_size if row["split"] == fitted_splits[0])
        finished = f"only split {fitted_splits[0]:g} (sample size {only['sample_size']:g}) has finished trials"
    else:
        finished = "no split outside backtest_splits has finished trials"
    return (f"NO CURVE: {finished}, so no learning curve can be fitted until at least two splits finish. "
            "This report shows the measured scores only; re-run `samplesize aggregate` when more trials finish.")


def _prediction_sizes(cfg: SweepConfig, pool_size: int | None) -> list[tuple[int, str, int | None]]:
    """(sample size, label, pool multiple or None) of every prediction, in size order."""
    sizes = [(int(n), "predict_at", None) for n in cfg.predict_at]
    if pool_size:
        sizes += [(multiple * pool_size, f"{multiple}x pool", multiple) for multiple in POOL_MULTIPLES]
    return sorted(sizes, key=lambda s: s[:2])  # tables read best in size order


def _answer(cfg: SweepConfig, fit: Any, per_size: list[dict], prediction_sizes: list[tuple],
            warnings: list[str]) -> tuple[dict | None, list[dict] | None, list[dict]]:
    """The curve section, the predictions and the targets (unanswered without a fit)."""
    if fit is None:
        targets = [{"target": t, "reachable": None, "sample_size": None, "interval": None} for t in cfg.targets]
        return None, None, targets
    best_measured = max((row["mean"] for row in per_size), default=None)
    predictions = [_prediction(fit, n, label, multiple) for n, label, multiple in prediction_sizes]
    targets = [_target(fit, t, best_measured) for t in cfg.targets]
    if any(p["far"] for p in predictions):
        warnings.append(
            f"predictions more than {FAR_FACTOR:g}x beyond the largest fitted sample size ({fit.max_size:g}) are far "
            "extrapolations: their intervals are wide for a reason"
        )
    return _curve_section(fit), predictions, targets


# ---------------------------------------------------------------- variants


def partial_reasons(missing: list[int], failed_missing: list[int], expected: int,
                     job_state: str | None) -> list[str]:
    """Why a sweep (or one variant of it) is partial, naming the sweep's indexes; [] when complete."""
    reasons = []
    if missing:
        reasons.append(f"{len(missing)} of {expected} trials have no usable result (indexes {index_ranges(missing)})")
    if failed_missing:
        reasons.append(f"the Job reports indexes {index_ranges(failed_missing)} as failed")
    if job_state is not None and job_state.strip().lower() not in COMPLETE_JOB_STATES:
        reasons.append(f"the Job's state is {job_state!r}, not complete")
    return reasons


def _guard_small_test_set(summary: dict) -> None:
    """Keep a tiny test set from producing false precision.

    - Flag a test set too small to resolve the targets (a score moves in steps of 1/test_size).
    - Never answer a size below the smallest sample a trial can draw: one image per class plus one
      for validation.
    - A backtest within half a test image of its interval is inside it: 1.000 measured against an
      interval of 0.99999999 to 0.99999999 is agreement, not a miss.
    """
    run = summary["run"]
    test = run["test_size"]
    if not isinstance(test, int) or test <= 0:
        return
    step = 1 / test
    _warn_small_test_set(summary, test, step)
    _floor_targets(summary, run["classes"] + 1)
    _accept_backtests_within_resolution(summary, step)


def _warn_small_test_set(summary: dict, test: int, step: float) -> None:
    unresolved = [t["target"] for t in summary["targets"] if 1 - t["target"] < step]
    if test < MIN_TEST_SIZE or unresolved:
        why = f"; targets {unresolved} lie within one step of a perfect score" if unresolved else ""
        summary["warnings"].append(
            f"TEST SET TOO SMALL: {test} images measure {summary['metric']} in steps of about {step:.3f}{why}. "
            f"Sizes and backtests below are only as precise as that; use at least {MIN_TEST_SIZE} test images "
            "(a larger dataset.test_fraction or more data)"
        )


def _floor_targets(summary: dict, smallest: int) -> None:
    """No target size (or interval end) below `smallest`, the smallest sample a trial draws."""
    for target in summary["targets"]:
        if target["sample_size"] is not None and target["sample_size"] < smallest:
            target["sample_size"] = float(smallest)
            target["below_smallest_sample"] = True
            if summary["curve"]:
                target["times_past_data"] = smallest / summary["curve"]["max_fitted_size"]
        if target["interval"]:
            target["interval"] = [max(v, float(smallest)) for v in target["interval"]]


def _accept_backtests_within_resolution(summary: dict, step: float) -> None:
    """A backtest within half a test-score step of its interval counts as inside it, in the table and the answer."""
    resolved = set()
    for row in summary["backtest"]:
        if row["inside"] is False and row["interval"]:
            low, high = row["interval"]
            if low - step / 2 <= row["measured_mean"] <= high + step / 2:
                row["inside"] = True
                row["within_test_resolution"] = True
                resolved.add(row["split"])
    validation = summary.get("validation")
    if validation and resolved:  # the answer must not call out what the backtest table calls agreement
        validation["inside"] += len(resolved)
        validation["contradictions"] = [
            c for c in validation["contradictions"]
            if c["split"] not in resolved or c["measured_mean"] > c["ceiling"] + step / 2
        ]


def _answer_fit(points: list[dict], validation_fit: Any, n_bootstrap: int, seed: int, n_test: int | None,
                warnings: list[str]) -> Any:
    """The fit on every measured size, backtest splits included (the validation fit when there are none)."""
    if not any(p["backtest"] for p in points):
        return validation_fit
    try:
        fit = fit_learning_curve([p["sample_size"] for p in points], [p["score"] for p in points],
                                 n_bootstrap=n_bootstrap, seed=seed, n_test=n_test)
    except CurveFitError as exc:
        warnings.append(f"the curve could not be refitted on every measured size ({exc}); the answer comes "
                        "from the fit without the backtest splits")
        return validation_fit
    return fit


def _validation(validation_fit: Any, answer_fit: Any, per_size: list[dict]) -> dict | None:
    """How the curve fitted without the backtest splits did on them, and whether any contradicts it.

    A backtest contradicts the fit when its measured mean lies outside its interval (at the summary's
    level) or above the fitted ceiling: then the answer (refitted on all sizes) says so, not only the
    backtest table."""
    if validation_fit is None:
        return None
    rows = _backtest(validation_fit, per_size)
    contradictions = []
    for b in rows:
        if b["predicted"] is None:
            continue
        above_ceiling = b["measured_mean"] > validation_fit.ceiling
        if above_ceiling or not b["inside"]:
            contradictions.append({
                "split": b["split"], "sample_size": b["sample_size"], "measured_mean": b["measured_mean"],
                "predicted": b["predicted"], "interval": b["interval"], "ceiling": validation_fit.ceiling,
                "above_ceiling": bool(above_ceiling),
                "side": "above" if b["measured_mean"] > b["interval"][1] else
                        ("below" if b["measured_mean"] < b["interval"][0] else "inside"),
            })
    return {
        "fitted_on": "every measured size, backtest splits included" if answer_fit is not validation_fit
        else "every measured size (no backtest splits finished)",
        "answer_max_size": answer_fit.max_size,
        "validation_max_size": validation_fit.max_size,
        "backtests": sum(b["predicted"] is not None for b in rows),
        "inside": sum(bool(b["inside"]) for b in rows if b["predicted"] is not None),
        "contradictions": contradictions,
    }


def _per_size_stats(cfg: SweepConfig, results: dict[int, dict], metric: str) -> list[dict]:
    groups: dict[float, list[dict]] = defaultdict(list)
    for r in results.values():
        groups[r["split"]].append(r)
    rows = []
    for split in sorted(groups):
        rs = groups[split]
        scores = np.array([r["metrics"][metric] for r in rs], float)
        sizes = np.array([r["sample_size"] for r in rs], float)
        rows.append({
            "split": split,
            "sample_size": float(sizes.mean()),
            "n": len(rs),
            "expected": cfg.repetitions,
            "mean": float(scores.mean()),
            # One trial has no spread to speak of: null, not a misleading 0.
            "std": float(scores.std(ddof=1)) if len(rs) > 1 else None,
            "min": float(scores.min()),
            "max": float(scores.max()),
            "backtest": split in cfg.backtest_splits,
            "indexes": sorted(r["index"] for r in rs),
        })
    return rows


def _at(values: Any) -> float:
    return float(np.asarray(values, float).reshape(-1)[0])


def _prediction(fit: Any, n: float, label: str, pool_multiple: int | None = None) -> dict:
    low, high = fit.interval(np.array([n], float), level=LEVEL)
    return {
        "sample_size": n,
        "label": label,
        "pool_multiple": pool_multiple,  # n is this many times the pool; None for other sizes
        "predicted": _at(fit.predict(np.array([n], float))),
        "interval": [_at(low), _at(high)],
        "times_past_data": n / fit.max_size,
        "far": bool(np.asarray(fit.is_far(n)).reshape(-1)[0]),
    }


def _whole(size: float) -> float:
    """Sizes are counts of images: round up, keep inf as inf."""
    return float(math.ceil(size)) if math.isfinite(size) else math.inf


def _target(fit: Any, target: float, best_measured: float | None) -> dict:
    est = fit.size_for(target, level=LEVEL)
    reachable = bool(est.reachable)
    size = _whole(float(est.size)) if reachable else None
    return {
        "target": target,
        "reachable": reachable,
        "sample_size": size,
        "interval": [_whole(float(est.interval[0])), _whole(float(est.interval[1]))],
        "times_past_data": size / fit.max_size if size is not None else None,
        "far": bool(est.far),
        "reached_in_data": best_measured is not None and best_measured >= target,
        "ceiling": fit.ceiling,
        # probability that the target is reachable at all; an `inf` interval end means beyond this size
        "p_reachable": float(est.p_reachable),
        "reach_horizon": REACH_HORIZON * fit.max_size,
    }


def _curve_section(fit: Any) -> dict:
    """The fit's own record (`CurveFit.to_dict`), with its families as a list that marks the chosen ones."""
    details = fit.to_dict()
    families = [
        {"name": name, **record, "chosen": name == fit.family,
         "in_blend": fit.family == "blend" and fit.families[name].weight > 0}
        for name, record in details.pop("families").items()
    ]
    return {
        "family": fit.family,
        "ceiling": fit.ceiling,
        "max_fitted_size": fit.max_size,
        "far_factor": FAR_FACTOR,  # predictions beyond this many times max_fitted_size are far extrapolations
        "families": families,  # listed once: the details keep the rest of the fit's record
        "details": details,
    }


def _backtest(fit: Any, per_size: list[dict]) -> list[dict]:
    rows = []
    for row in per_size:
        if not row["backtest"]:
            continue
        entry = {
            "split": row["split"],
            "sample_size": row["sample_size"],
            "n": row["n"],
            "measured_mean": row["mean"],
            "measured_std": row["std"],
            "predicted": None,
            "interval": None,
            "inside": None,
            "times_past_data": None,
        }
        if fit is not None:
            p = _prediction(fit, row["sample_size"], "backtest")
            low, high = p["interval"]
            entry.update(
                predicted=p["predicted"],
                interval=p["interval"],
                inside=bool(low <= row["mean"] <= high),
                times_past_data=p["times_past_data"],
            )
        rows.append(entry)
    return rows


def _per_class(
    cfg: SweepConfig,
    results: dict[int, dict],
    fitted_splits: list[float],
    prediction_sizes: list[tuple[int, str, int | None]],
    n_bootstrap: int,
    warnings: list[str],
) -> tuple[list[dict], dict[str, Any]]:
    """One recall curve per class, so the report can show which class is short of data."""
    if not results:
        return [], {}
    class_names = next(iter(results.values()))["class_names"]
    # like the metric's answer, the class curves use every measured size, backtest splits included
    fitted = [r for _, r in sorted(results.items())]
    class_test_sizes = _class_test_sizes(results, class_names)
    out, fits = [], {}
    for name in class_names:
        rows = [(r["split"], r["sample_size"], r["metrics"].get("per_class_recall", {}).get(name)) for r in fitted]
        rows = [row for row in rows if row[2] is not None]
        measured = _class_measured(rows)
        entry: dict[str, Any] = {
            "class": name,
            "measured": measured,
            "recall_at_largest": measured[-1]["mean"] if measured else None,
            "family": None,
            "ceiling": None,
            "predictions": None,
            "targets": None,
        }
        if len(measured) >= 2 and len(fitted_splits) >= 2:
            try:
                f = fit_learning_curve(
                    [r[1] for r in rows], [r[2] for r in rows], families=CLASS_FAMILIES,
                    n_bootstrap=n_bootstrap, seed=cfg.seed, n_test=class_test_sizes.get(name),
                )
            except CurveFitError as exc:
                warnings.append(f"class {name!r}: no recall curve ({exc})")
            else:
                fits[name] = f
                entry.update(_class_answer(f, prediction_sizes, cfg.targets))
        out.append(entry)
    return out, fits


def _class_measured(rows: list[tuple[float, float, float]]) -> list[dict]:
    """Mean and spread of one class's recall per split, from (split, sample size, recall) rows."""
    by_split: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for split, size, recall in rows:
        by_split[split].append((size, recall))
    measured = []
    for split in sorted(by_split):
        arr = np.array(by_split[split], float)
        measured.append({
            "split": split,
            "sample_size": float(arr[:, 0].mean()),
            "n": len(arr),
            "mean": float(arr[:, 1].mean()),
            "std": float(arr[:, 1].std(ddof=1)) if len(arr) > 1 else None,
        })
    return measured


def _class_answer(f: Any, prediction_sizes: list[tuple[int, str, int | None]], targets: Iterable[float]) -> dict:
    """A class's fitted family, ceiling, predictions (at the metric's sizes) and targets."""
    return {
        "family": f.family,
        "ceiling": f.ceiling,
        "predictions": [
            {k: v for k, v in _prediction(f, n, label, multiple).items() if k != "times_past_data"}
            for n, label, multiple in prediction_sizes
        ],
        "targets": [
            {k: v for k, v in _target(f, t, None).items() if k in ("target", "reachable", "sample_size", "interval")}
            for t in targets
        ],
    }


def _class_test_sizes(results: dict[int, dict], class_names: list[str]) -> dict[str, int]:
    """Test examples per class (a confusion-matrix row sum): the binomial floor of its recall's spread."""
    for r in results.values():
        try:
            rows = np.array(r.get("confusion_matrix"), dtype=float)
        except (TypeError, ValueError):
            continue
        if rows.shape == (len(class_names), len(class_names)) and np.all(np.isfinite(rows)):
            return {name: max(1, int(total)) for name, total in zip(class_names, rows.sum(axis=1))}
    return {}


def _confusion_at_largest(results: dict[int, dict], per_size: list[dict]) -> dict | None:
    """Summed counts over the repetitions of the largest split, fitted or backtest."""
    if not per_size:
        return None
    largest = max(per_size, key=lambda row: row["sample_size"])
    names = next(iter(results.values()))["class_names"]
    k = len(names)
    total = np.zeros((k, k), dtype=np.int64)
    used = 0
    for index in largest["indexes"]:
        m = results[index].get("confusion_matrix")
        try:
            arr = np.array(m, dtype=float)
        except (TypeError, ValueError):
            continue
        if arr.shape != (k, k) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            continue  # a malformed matrix is skipped, not summed
        total += arr.astype(np.int64)
        used += 1
    if not used:
        return None
    return {
        "split": largest["split"],
        "sample_size": largest["sample_size"],
        "trials": used,
        "class_names": names,
        "matrix": total.tolist(),
    }


def run_facts(cfg: SweepConfig, results: dict[int, dict], output_uri: str, warnings: list[str]) -> dict:
    def common(key: str) -> Any:
        values = Counter(r.get(key) for r in results.values() if r.get(key) is not None)
        if len(values) > 1:
            warnings.append(f"results disagree on {key}: {dict(values)}; the most common value is shown")
        return values.most_common(1)[0][0] if values else None

    total_s = sum(
        float(r["timings"]["total_s"]) for r in results.values()
        if isinstance(r.get("timings"), dict) and finite(r["timings"].get("total_s"))
    )
    return {
        "sweep": cfg.name,
        "dataset": cfg.dataset.source,
        "image_size": cfg.dataset.image_size,
        "pool_size": common("pool_size"),
        "test_size": common("test_size"),
        "classes": len(next(iter(results.values()))["class_names"]),
        "sampling": cfg.sampling,
        "model": cfg.model.backbone,
        "weights": cfg.model.weights,
        "fine_tune_from": cfg.model.fine_tune_from,
        "splits": list(cfg.splits),
        "backtest_splits": list(cfg.backtest_splits),
        "repetitions": cfg.repetitions,
        "metric": cfg.metric,
        "total_trial_seconds": total_s,
        "accelerators": sorted({str(r["accelerator"]) for r in results.values() if r.get("accelerator")}),
        "package_versions": sorted({str(r["package_version"]) for r in results.values() if r.get("package_version")}),
        "config_hash": cfg.trial_hash(),
        "output": output_uri,
        "aggregated_by": __version__,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
