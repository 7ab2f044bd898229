"""The summary of one pipeline's results: per-size statistics, the fitted curves, the answer per target.

`build_summary(cfg, loaded, ...)` fits the configured metric's curve and the per-class
recall curves on the loaded results, validates them against the backtest splits, and
returns the `Summary` (whose `to_json()` is `report/summary.json`).

Nothing here imports TensorFlow: aggregation runs on a small CPU pod.
"""

from __future__ import annotations

import math

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import numpy as np

from . import __version__
from .answers import backtest_rows, curve_section, next_steps, prediction, target_answer, validation
from .backbones import SMALL_CNN
from .class_curves import add_class_grids, class_curves, confusion_at_largest
from .config import SweepConfig
from .curves import DEFAULT_BOOTSTRAP, FAR_FACTOR, LEVEL, CurveFitError, fit_learning_curve
from .plan import TrialSpec, trial_spec
from .plot_layout import plot_range
from .results import LoadedResults, finite
from .size_unit import SizeUnit, size_unit
from .summary import Head, Point, RunFacts, SizeStats, Summary, TargetAnswer, Trials
from .text import index_ranges

COMPLETE_JOB_STATES = ("complete", "completed", "succeeded")
# Predictions at these multiples of the pool answer "what would more of our kind of data buy".
POOL_MULTIPLES = (2, 4)
# Below this many test images a score moves in steps of more than 0.033: the report says so.
MIN_TEST_SIZE = 30


def curve_kind(model) -> str:
    """The kind of curve a sweep's model makes (`curves.centre`): every sweep trains an image classifier, from
    scratch ("cnn": the small_cnn backbone trains every layer) or on a keras.applications backbone ("image").
    Each kind's curves get their own correction of the centre, chosen by held-out interval score on the
    corpus' curves of that kind (docs/learning-curves.md)."""
    return "cnn" if model.backbone == SMALL_CNN else "image"


@dataclass(frozen=True)
class Pipeline:
    """What one pipeline's summary is built from: its config, its results by the sweep's index and their
    specs, its head, the warnings it starts with, and what its run facts name beyond `cfg`."""

    cfg: SweepConfig
    results: Mapping[int, dict]
    specs: Mapping[int, TrialSpec]
    head: Head
    warnings: list[str]
    partial_warning: str | None = None
    config_hash: str | None = None  # the sweep's, when `cfg` is a variant's
    variant: str | None = None
    datasets: Mapping[str, dict] = field(default_factory=dict)  # stored dataset summaries by prepared copy


def build_summary(cfg: SweepConfig, loaded: LoadedResults, *, failed_indexes: Iterable[int] = (),
                  job_state: str | None = None, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                  output_uri: str = "", datasets: Mapping[str, dict] | None = None) -> Summary:
    """The summary of a sweep without variants.

    Args:
        cfg: the sweep's config.
        loaded: its usable results (`results.load_results`).
        failed_indexes: indexes the cluster gave up on. Defaults to none.
        job_state: the Job's state, or None when unknown (a local run). Defaults to None.
        n_bootstrap: bootstrap resamples for the intervals. Defaults to `curves.DEFAULT_BOOTSTRAP`.
        output_uri: the sweep's output, named in the run facts. Defaults to "".
        datasets: the stored dataset summaries (JSON) by prepared copy (`aggregate.dataset_summaries`), for the
            run facts. Defaults to none.

    Returns:
        The `Summary`. Without two fitted splits (or when the fit fails) it has no curve, and its
        first warning (also `run.no_curve`) says why.
    """
    head, partial_warning = summary_head(cfg, loaded, failed_indexes, job_state)
    warnings = [partial_warning] if partial_warning else []
    failed_present = [i for i in head.trials.failed if i in loaded.results]
    if failed_present:
        warnings.append(f"indexes {index_ranges(failed_present)} are marked failed by the Job but have a usable result, which is used")
    warnings.extend(loaded.problems)
    specs = {i: trial_spec(cfg, i) for i in loaded.results}
    pipeline = Pipeline(cfg, loaded.results, specs, head, warnings, partial_warning=partial_warning,
                        datasets=datasets or {})
    return pipeline_summary(pipeline, n_bootstrap=n_bootstrap, output_uri=output_uri)[0]


def pipeline_summary(pipeline: Pipeline, *, n_bootstrap: int, output_uri: str) -> tuple[Summary, Any]:
    """The summary of one pipeline (a sweep, or one variant of it) and its metric's fit (None without a curve)."""
    cfg, warnings = pipeline.cfg, list(pipeline.warnings)
    # Sizes in the unit the trials drew (patients, with groups): the curve, its answers and the plan count it.
    unit = size_unit(cfg.dataset.group_column, pipeline.results)
    results = unit.counted(pipeline.results)
    points = [_point(cfg, i, r, pipeline.specs[i]) for i, r in sorted(results.items())]
    per_size = _per_size_stats(cfg, results)
    fitted_splits = sorted({p.split for p in points if not p.backtest})
    facts = run_facts(cfg, pipeline.results, output_uri, warnings, config_hash=pipeline.config_hash,
                      variant=pipeline.variant, partial_warning=pipeline.partial_warning,
                      dataset_summary=_dataset_summary(pipeline.results, pipeline.datasets))
    pool = facts.pool_groups if unit.grouped else facts.pool_size
    fit, validation_fit, facts.no_curve = _fit_metric(cfg, points, per_size, fitted_splits, n_bootstrap,
                                                      facts.test_size, warnings)
    test = facts.test_size
    # A score moves in steps of 1 / test size: no answer is more precise than that (see `answers`).
    test_step = 1 / test if isinstance(test, int) and test > 0 else None
    smallest = facts.classes + 1 if test_step is not None else None  # one per class (image or group), one to validate
    prediction_sizes = _prediction_sizes(cfg, pool)
    predictions, targets = _answer(cfg, fit, per_size, prediction_sizes, smallest, warnings)
    _add_images(unit, predictions, targets)
    backtests = backtest_rows(validation_fit, per_size, test_step)
    xlim = plot_range([p.sample_size for p in points], [p.sample_size for p in predictions or []],
                      [(t.reachable, t.sample_size) for t in targets])

    class_boot = max(50, n_bootstrap // 10) if n_bootstrap > 0 else 0
    per_class, class_fits = class_curves(cfg.seed, results, fitted_splits, prediction_sizes, cfg.targets,
                                         class_boot, warnings)
    add_class_grids(per_class, class_fits, xlim)
    if test_step is not None:
        warnings.extend(_small_test_set_warning(cfg.metric, test, test_step, targets))
    summary = Summary(
        head=pipeline.head, per_size=per_size,
        curve=curve_section(fit, xlim) if fit is not None else None,
        predictions=predictions, targets=targets, backtest=backtests,
        validation=validation(validation_fit, fit, backtests, test_step),
        per_class=per_class, confusion_matrix=confusion_at_largest(results, per_size),
        run=facts, points=points, warnings=warnings,
        next_steps=next_steps(fit, cfg.collection, targets, pool, cfg.predict_at),
    )
    return summary, fit


def summary_head(cfg: SweepConfig, loaded: LoadedResults, failed_indexes: Iterable[int],
                 job_state: str | None) -> tuple[Head, str | None]:
    """The fields every summary opens with (status, metric, level, trials) and the PARTIAL warning
    (None when the sweep is complete), which its warnings start with."""
    failed = sorted({int(i) for i in failed_indexes})
    reasons = partial_reasons(loaded.missing, [i for i in failed if i not in loaded.results],
                              cfg.trial_count, job_state)
    partial_warning = None
    if reasons:
        partial_warning = ("PARTIAL SWEEP: " + "; ".join(reasons)
                           + ". The numbers below will change when the remaining trials finish; re-run aggregate then.")
    trials = Trials(expected=cfg.trial_count, usable=len(loaded.results), missing=loaded.missing, failed=failed,
                    rejected=loaded.problems, job_state=job_state)
    return Head(complete=not reasons, partial_reasons=reasons, metric=cfg.metric, level=LEVEL,
                trials=trials), partial_warning


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


def _point(cfg: SweepConfig, index: int, r: dict, spec: TrialSpec) -> Point:
    """A usable trial: its size (and, with groups, its images), its score and whether its split is a backtest."""
    return Point(index=index, split=r["split"], repetition=r.get("repetition"), sample_size=r["sample_size"],
                 score=r["metrics"][cfg.metric], backtest=spec.backtest, variant=spec.variant,
                 images=r.get("sample_images"))


def _add_images(unit: SizeUnit, predictions: list | None, targets: list[TargetAnswer]) -> None:
    """With groups, about how many images each prediction's and target's groups hold."""
    if not unit.grouped:
        return
    for p in predictions or []:
        p.images = unit.images(p.sample_size)
    for t in targets:
        t.images = unit.images(t.sample_size)
        t.images_interval = None if t.interval is None else [unit.images(end) for end in t.interval]


def _fit_metric(cfg: SweepConfig, points: list[Point], per_size: list[SizeStats], fitted_splits: list[float],
                n_bootstrap: int, n_test: int | None, warnings: list[str]) -> tuple[Any, Any, str | None]:
    """The answer's fit, the validation fit (without the backtest splits) and why there is no curve.

    Without a curve both fits are None and the reason (also the first warning) says why."""
    if len(fitted_splits) < 2:
        no_curve = _too_few_splits(fitted_splits, per_size)
        warnings.insert(0, no_curve)
        return None, None, no_curve
    fitted = [p for p in points if not p.backtest]
    try:
        validation_fit = fit_learning_curve(
            [p.sample_size for p in fitted], [p.score for p in fitted],
            n_bootstrap=n_bootstrap, seed=cfg.seed, n_test=n_test, kind=curve_kind(cfg.model),
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


def _too_few_splits(fitted_splits: list[float], per_size: list[SizeStats]) -> str:
    """The NO CURVE reason when fewer than two fitted splits have finished trials."""
    if fitted_splits:
        only = next(row for row in per_size if row.split == fitted_splits[0])
        finished = f"only split {fitted_splits[0]:g} (sample size {only.sample_size:g}) has finished trials"
    else:
        finished = "no split outside backtest_splits has finished trials"
    return (f"NO CURVE: {finished}, so no learning curve can be fitted until at least two splits finish. "
            "This report shows the measured scores only; re-run `samplesize aggregate` when more trials finish.")


def _answer_fit(points: list[Point], validation_fit: Any, n_bootstrap: int, seed: int, n_test: int | None,
                warnings: list[str]) -> Any:
    """The fit on every measured size, backtest splits included (the validation fit when there are none)."""
    if not any(p.backtest for p in points):
        return validation_fit
    try:
        fit = fit_learning_curve([p.sample_size for p in points], [p.score for p in points],
                                 n_bootstrap=n_bootstrap, seed=seed, n_test=n_test, kind=validation_fit.kind)
    except CurveFitError as exc:
        warnings.append(f"the curve could not be refitted on every measured size ({exc}); the answer comes "
                        "from the fit without the backtest splits")
        return validation_fit
    return fit


def _prediction_sizes(cfg: SweepConfig, pool_size: int | None) -> list[tuple[int, str, int | None]]:
    """(sample size, label, pool multiple or None) of every prediction, in size order."""
    sizes = [(int(n), "predict_at", None) for n in cfg.predict_at]
    if pool_size:
        sizes += [(multiple * pool_size, f"{multiple}x pool", multiple) for multiple in POOL_MULTIPLES]
    return sorted(sizes, key=lambda s: s[:2])  # tables read best in size order


def _answer(cfg: SweepConfig, fit: Any, per_size: list[SizeStats], prediction_sizes: list[tuple],
            smallest: int | None, warnings: list[str]) -> tuple[list | None, list[TargetAnswer]]:
    """The predictions and the targets (unanswered without a fit)."""
    if fit is None:
        return None, [TargetAnswer(target=t, reachable=None, sample_size=None, interval=None) for t in cfg.targets]
    best_measured = max((row.mean for row in per_size), default=None)
    predictions = [prediction(fit, n, label, multiple) for n, label, multiple in prediction_sizes]
    targets = [target_answer(fit, t, best_measured, smallest) for t in cfg.targets]
    if any(p.far for p in predictions):
        warnings.append(
            f"predictions more than {FAR_FACTOR:g}x beyond the largest fitted sample size ({fit.max_size:g}) are far "
            "extrapolations: their intervals are wide for a reason"
        )
    return predictions, targets


def _small_test_set_warning(metric: str, test: int, step: float, targets: list[TargetAnswer]) -> list[str]:
    """The TEST SET TOO SMALL warning, when the test set cannot resolve the scores or the targets."""
    unresolved = [t.target for t in targets if 1 - t.target < step]
    if test >= MIN_TEST_SIZE and not unresolved:
        return []
    why = f"; targets {unresolved} lie within one step of a perfect score" if unresolved else ""
    if test < MIN_TEST_SIZE:
        advice = f"use at least {MIN_TEST_SIZE} test images"
    else:  # enough images in general, too few for the target: never "48 images ... use at least 30"
        needed = math.ceil(test * step / (1 - max(unresolved)))
        advice = f"resolving target {max(unresolved):g} takes at least {needed} test images, not {test}"
    return [f"TEST SET TOO SMALL: {test} images measure {metric} in steps of about {step:.3f}{why}. "
            f"Sizes and backtests below are only as precise as that; {advice} "
            "(a larger dataset.test_fraction or more data)"]


def _per_size_stats(cfg: SweepConfig, results: Mapping[int, dict]) -> list[SizeStats]:
    """Each split's scores, and its mean size (and, with groups, its mean images drawn)."""
    by_split: dict[float, list[tuple[int, dict]]] = defaultdict(list)
    for index, r in results.items():
        by_split[r["split"]].append((index, r))
    rows = []
    for split in sorted(by_split):
        rs = by_split[split]
        scores = np.array([r["metrics"][cfg.metric] for _, r in rs], float)
        sizes = np.array([r["sample_size"] for _, r in rs], float)
        images = [r["sample_images"] for _, r in rs if "sample_images" in r]
        rows.append(SizeStats(
            split=split, sample_size=float(sizes.mean()), n=len(rs), expected=cfg.repetitions,
            mean=float(scores.mean()),
            # One trial has no spread to speak of: null, not a misleading 0.
            std=float(scores.std(ddof=1)) if len(rs) > 1 else None,
            min=float(scores.min()), max=float(scores.max()),
            backtest=split in cfg.backtest_splits, indexes=sorted(index for index, _ in rs),
            images=float(np.mean(images)) if images else None,
        ))
    return rows


def _dataset_summary(results: Mapping[int, dict], datasets: Mapping[str, dict]) -> dict | None:
    """The stored summary of the one prepared copy the results ran on; None for none, or for several."""
    keys = {r.get("dataset_key") for r in results.values()}
    return datasets.get(keys.pop()) if len(keys) == 1 else None


def run_facts(cfg: SweepConfig, results: Mapping[int, dict], output_uri: str, warnings: list[str],
              **named: Any) -> RunFacts:
    """What ran, where and when; `named` sets the facts that `cfg` does not give (`config_hash` of
    the sweep for a variant's config, `variant`, `variants`, `partial_warning`)."""
    def common(key: str) -> Any:
        values = Counter(r.get(key) for r in results.values() if r.get(key) is not None)
        if len(values) > 1:
            warnings.append(f"results disagree on {key}: {dict(values)}; the most common value is shown")
        return values.most_common(1)[0][0] if values else None

    total_s = sum(
        float(r["timings"]["total_s"]) for r in results.values()
        if isinstance(r.get("timings"), dict) and finite(r["timings"].get("total_s"))
    )
    named = {k: v for k, v in named.items() if v is not None}
    unit = size_unit(cfg.dataset.group_column, results)
    if unit.grouped:
        named.update(size_unit=unit.name, pool_groups=common("pool_groups"), images_per_group=unit.images_per_group)
    return RunFacts(
        sweep=cfg.name, dataset=cfg.dataset.source, image_size=cfg.dataset.image_size,
        pool_size=common("pool_size"), test_size=common("test_size"),
        classes=len(next(iter(results.values()))["class_names"]),
        sampling=cfg.sampling, model=cfg.model.backbone, weights=cfg.model.weights,
        fine_tune_from=cfg.model.fine_tune_from, splits=list(cfg.splits), backtest_splits=list(cfg.backtest_splits),
        repetitions=cfg.repetitions, metric=cfg.metric, total_trial_seconds=total_s,
        accelerators=sorted({str(r["accelerator"]) for r in results.values() if r.get("accelerator")}),
        package_versions=sorted({str(r["package_version"]) for r in results.values() if r.get("package_version")}),
        config_hash=named.pop("config_hash", cfg.trial_hash()), output=output_uri, aggregated_by=__version__,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **named,
    )
