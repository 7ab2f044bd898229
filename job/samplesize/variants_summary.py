"""The summary of a sweep with `variants`: one entry per variant, and their comparison."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from .config import SweepConfig
from .curves import DEFAULT_BOOTSTRAP, LEVEL, compare_curves
from .plan import trial_spec
from .plot_layout import COMPARISON_REACH, CURVE_GRID_POINTS
from .results import LoadedResults
from .summarize import Pipeline, partial_reasons, pipeline_summary, run_facts, summary_head
from .summary import Head, Trials, VariantEntry, VariantsSummary


def build_variants_summary(cfg: SweepConfig, loaded: LoadedResults, *, failed_indexes: Iterable[int] = (),
                           job_state: str | None = None, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                           output_uri: str = "", datasets: Mapping[str, dict] | None = None) -> VariantsSummary:
    """The summary of a sweep with `variants`.

    Each variant gets the summary a sweep of its own would get, built on its trials under the
    sweep's indexes, under `variants`; `comparison` holds the per-target table, the crossings and
    the paired differences (`curves.compare_curves`) and `grid`, each fitted variant's curve and
    band for the plot. A variant without any usable result has `summary` None. The top level
    keeps the sweep's status, trials, run facts, every point (with its variant) and its warnings.

    Args:
        cfg: the sweep's config, with `variants`.
        loaded: the sweep's usable results (`results.load_results`).
        failed_indexes: indexes the cluster gave up on. Defaults to none.
        job_state: the Job's state, or None when unknown (a local run). Defaults to None.
        n_bootstrap: bootstrap resamples for the intervals. Defaults to `curves.DEFAULT_BOOTSTRAP`.
        output_uri: the sweep's output, named in the run facts. Defaults to "".
        datasets: the stored dataset summaries by prepared copy, for each variant's run facts. Defaults to none.

    Returns:
        The `VariantsSummary`.
    """
    head, partial_warning = summary_head(cfg, loaded, failed_indexes, job_state)
    specs = {i: trial_spec(cfg, i) for i in range(cfg.trial_count)}
    entries, fits = [], {}
    for variant in cfg.variants:
        entry, fits[variant.name] = _variant_entry(cfg, variant.name, specs, loaded, head, n_bootstrap, output_uri,
                                                   datasets or {})
        entries.append(entry)
    trials = {e.name: e.summary.points if e.summary else [] for e in entries}

    warnings = [partial_warning] if partial_warning else []
    warnings += loaded.problems + _variants_warnings(entries)
    facts = None
    if loaded.results:
        facts = run_facts(cfg, loaded.results, output_uri, warnings, variants=[e.name for e in entries],
                          partial_warning=partial_warning)
    # As in each variant's summary: no size below the smallest sample a trial draws (one per class, plus one).
    comparison = compare_curves(fits, {name: [p.to_json() for p in points] for name, points in trials.items()},
                                targets=cfg.targets, level=LEVEL, min_size=(facts.classes if facts else 0) + 1)
    points = sorted((p for points in trials.values() for p in points), key=lambda p: p.index)
    comparison["grid"] = _comparison_grid(fits, [p.sample_size for p in points])
    return VariantsSummary(head=head, variants=entries, comparison=comparison, run=facts, points=points,
                           warnings=warnings)


def _variants_warnings(entries: list[VariantEntry]) -> list[str]:
    """Every variant's warnings, named by the variant, then the variants without a result."""
    warnings = [f"{e.name}: {w}" for e in entries if e.summary for w in e.summary.warnings]
    return warnings + [f"{e.name}: no usable result yet, so no curve" for e in entries if not e.summary]


def _variant_entry(cfg: SweepConfig, name: str, specs: dict, loaded: LoadedResults, sweep: Head,
                   n_bootstrap: int, output_uri: str, datasets: Mapping[str, dict]) -> tuple[VariantEntry, Any]:
    """One variant's entry (its name, its changes and the summary of its own trials) and its fit.

    The variant's summary names the sweep's indexes, and is partial for the sweep's reasons that
    concern its own trials."""
    mine = [i for i in sorted(specs) if specs[i].variant == name]
    results = {i: loaded.results[i] for i in mine if i in loaded.results}
    if not results:  # nothing finished yet for this variant: named, no curve
        return VariantEntry(name=name, changes=cfg.variant(name).describe(), summary=None), None
    missing = [i for i in loaded.missing if i in mine]
    failed = [i for i in sweep.trials.failed if i in mine]
    job_state = sweep.trials.job_state
    reasons = partial_reasons(missing, [i for i in failed if i not in loaded.results], len(mine), job_state)
    variant_cfg = cfg.trial_config(name)
    head = Head(complete=not reasons, partial_reasons=reasons, metric=variant_cfg.metric, level=LEVEL,
                trials=Trials(expected=len(mine), usable=len(results), missing=missing, failed=failed,
                              rejected=[], job_state=job_state))
    # The sweep's summary carries the PARTIAL warning and the rejected files once, not once per variant.
    pipeline = Pipeline(variant_cfg, results, specs, head, warnings=[], config_hash=cfg.trial_hash(), variant=name,
                        datasets=datasets)
    summary, fit = pipeline_summary(pipeline, n_bootstrap=n_bootstrap, output_uri=output_uri)
    return VariantEntry(name=name, changes=cfg.variant(name).describe(), summary=summary), fit


def _comparison_grid(fits: dict[str, Any], sizes: list[float]) -> dict:
    """Each fitted variant's curve and band on the comparison plot's grid, so that it draws from the summary."""
    if not sizes:
        return {"sizes": [], "variants": {}}
    grid = np.geomspace(min(sizes) / 1.5, max(sizes) * COMPARISON_REACH, CURVE_GRID_POINTS)
    curves = {}
    for name, fit in fits.items():
        if fit is not None:
            low, high = fit.interval(grid, level=LEVEL)
            curves[name] = {"mean": np.asarray(fit.predict(grid), float).tolist(),
                            "low": np.asarray(low, float).tolist(), "high": np.asarray(high, float).tolist()}
    return {"sizes": grid.tolist(), "variants": curves}
