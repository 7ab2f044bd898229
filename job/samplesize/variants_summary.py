"""The summary of a sweep with `variants`: one entry per variant, and their comparison."""

from __future__ import annotations

from typing import Any, Iterable

from .config import SweepConfig
from .curves import DEFAULT_BOOTSTRAP, LEVEL
from .jsonsafe import json_safe
from .plan import trial_spec
from .results import LoadedResults
from .summarize import build_summary, partial_reasons, run_facts, summary_head

SUMMARY_SCHEMA_VERSION = 1
COMPLETE_JOB_STATES = ("complete", "completed", "succeeded")
# Per-class curves rank classes by how short of data they are; one robust family
# with a ceiling does that well and keeps aggregation fast with many classes.
CLASS_FAMILIES = ("pow3",)
# Predictions at these multiples of the pool answer "what would more of our kind of data buy".
POOL_MULTIPLES = (2, 4)
# Below this many test images a score moves in steps of more than 0.033: the report says so.
MIN_TEST_SIZE = 30


def build_variants_summary(cfg: SweepConfig, loaded: LoadedResults, *, failed_indexes: Iterable[int] = (),
                           job_state: str | None = None, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                           output_uri: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary of a sweep with `variants`, and each variant's fit (None without a curve).

    Each variant gets the summary a sweep of its own would get (`build_summary`
    on its trials, with the sweep's indexes), under `variants`; `comparison`
    holds the per-target table, the crossings and the paired differences
    (`compare.compare_curves`); a variant without any usable result has
    `summary` null. The top level keeps the sweep's status, trials,
    run facts, every point (with its variant) and the sweep's warnings.
    """
    from .curves import compare_curves

    head, partial_warning = summary_head(cfg, loaded, failed_indexes, job_state)
    failed = head["trials"]["failed"]
    specs = [trial_spec(cfg, i) for i in range(cfg.trial_count)]
    entries, fits = [], {}
    for variant in cfg.variants:
        to_global = [s.index for s in specs if s.variant == variant.name]
        entry, fits[variant.name] = _variant_entry(cfg, variant.name, to_global, loaded, failed, job_state,
                                                   n_bootstrap, output_uri)
        entries.append(entry)
    trials = {e["name"]: e["summary"]["points"] if e["summary"] else [] for e in entries}

    warnings = [partial_warning] if partial_warning else []
    warnings += loaded.problems + _variants_warnings(entries)
    facts = run_facts(cfg, loaded.results, output_uri, warnings) if loaded.results else {}
    # As in each variant's summary: no size below the smallest sample a trial draws (one per class, plus one).
    comparison = compare_curves(fits, trials, targets=cfg.targets, level=LEVEL, min_size=facts.get("classes", 0) + 1)
    facts.update(variants=[e["name"] for e in entries], partial_warning=partial_warning)
    summary = {
        **head,
        "variants": entries,
        "comparison": comparison,
        "run": facts,
        "points": sorted((p for points in trials.values() for p in points), key=lambda p: p["index"]),
        "warnings": warnings,
    }
    return json_safe(summary), fits


def _variants_warnings(entries: list[dict]) -> list[str]:
    """Every variant's warnings, named by the variant, then the variants without a result."""
    warnings = [f"{e['name']}: {w}" for e in entries if e["summary"] for w in e["summary"]["warnings"]]
    return warnings + [f"{e['name']}: no usable result yet, so no curve" for e in entries if not e["summary"]]


def _variant_entry(cfg: SweepConfig, name: str, to_global: list[int], loaded: LoadedResults, failed: list[int],
                   job_state: str | None, n_bootstrap: int, output_uri: str) -> tuple[dict, Any]:
    """One variant's entry (its name, its changes and the summary of its own trials) and its fit.

    `to_global` maps the variant's own trial numbers (its plan numbers them 0..n-1 in the sweep's
    order) to the sweep's indexes, which its summary names."""
    local = {j: {**loaded.results[g], "index": j} for j, g in enumerate(to_global) if g in loaded.results}
    if not local:  # nothing finished yet for this variant: named, no curve
        return {"name": name, "changes": cfg.variant(name).describe(), "summary": None}, None
    summary, fit, _ = build_summary(cfg.trial_config(name), LoadedResults(results=local),
                                    n_bootstrap=n_bootstrap, output_uri=output_uri)
    for point in summary["points"]:
        point["index"] = to_global[point["index"]]
        point["variant"] = name
    for row in summary["per_size"]:
        row["indexes"] = [to_global[j] for j in row["indexes"]]
    mine = set(to_global)
    missing = [i for i in loaded.missing if i in mine]
    summary["trials"].update(missing=missing, failed=[i for i in failed if i in mine], job_state=job_state)
    reasons = partial_reasons(missing, [i for i in failed if i in mine and i not in loaded.results],
                               len(to_global), job_state)
    summary.update(complete=not reasons, status="partial" if reasons else "complete", partial_reasons=reasons)
    summary["run"].update(config_hash=cfg.trial_hash(), variant=name)
    return {"name": name, "changes": cfg.variant(name).describe(), "summary": summary}, fit
