"""Aggregate a sweep: load and check every result, fit the curves, write the report."""

from __future__ import annotations

from typing import Any, Iterable

from .config import SweepConfig
from .curves import DEFAULT_BOOTSTRAP
from .errors import DataError
from .results import TRIALS_PREFIX, load_results
from .storage import Storage, join_uri

SUMMARY_SCHEMA_VERSION = 1
COMPLETE_JOB_STATES = ("complete", "completed", "succeeded")
# Per-class curves rank classes by how short of data they are; one robust family
# with a ceiling does that well and keeps aggregation fast with many classes.
CLASS_FAMILIES = ("pow3",)
# Predictions at these multiples of the pool answer "what would more of our kind of data buy".
POOL_MULTIPLES = (2, 4)
# Below this many test images a score moves in steps of more than 0.033: the report says so.
MIN_TEST_SIZE = 30
from .summarize import build_summary
from .variants_summary import build_variants_summary


def aggregate(
    cfg: SweepConfig,
    storage: Storage,
    *,
    failed_indexes: Iterable[int] = (),
    job_state: str | None = None,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
) -> dict[str, Any]:
    """Fit the curves, write `report/` through `storage`, and return the summary.

    `failed_indexes` are indexes the cluster gave up on; `job_state` is the
    Job's state ("Complete", "Running", "Failed", ...) or None when unknown
    (a local run). Anything short of every result present, no failed index and
    a complete Job is labelled partial in every report file.

    Raises DataError when no usable result exists. With only one fitted split
    finished, no curve is fitted: the report shows the measured scores and says
    so.
    """
    from .report import write_report  # matplotlib is imported only when a report is written

    loaded = load_results(cfg, storage)
    if not loaded.results:
        rejected = ""
        if loaded.problems:
            rejected = f" {len(loaded.problems)} file(s) were rejected: " + " | ".join(loaded.problems[:5])
        raise DataError(
            f"no usable trial results under {join_uri(storage.uri, TRIALS_PREFIX)} "
            f"(this sweep expects {cfg.trial_count}). Run the trials first (`samplesize run`, or the "
            "Kubernetes Job), and check that the config's output points at the sweep's folder." + rejected
        )
    if cfg.variants:
        from .report import write_comparison_report

        summary, fits = build_variants_summary(cfg, loaded, failed_indexes=failed_indexes, job_state=job_state,
                                               n_bootstrap=n_bootstrap, output_uri=storage.uri)
        write_comparison_report(storage, summary, fits)
        return summary
    summary, fit, class_fits = build_summary(
        cfg, loaded, failed_indexes=failed_indexes, job_state=job_state,
        n_bootstrap=n_bootstrap, output_uri=storage.uri,
    )
    write_report(storage, summary, fit=fit, class_fits=class_fits)
    return summary
