"""Aggregate a sweep: load and check every result, fit the curves, write the report."""

from __future__ import annotations

from typing import Any, Iterable

from .config import SweepConfig
from .curves import DEFAULT_BOOTSTRAP
from .errors import DataError
from .results import TRIALS_PREFIX, load_results
from .storage import Storage, join_uri
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
    """Read the results once, fit the curves once, write `report/` through `storage`.

    Anything short of every result present, no failed index and a complete Job is
    labelled partial in every report file. With only one fitted split finished, no
    curve is fitted: the report shows the measured scores and says so.

    Args:
        cfg: the sweep's config.
        storage: the sweep's output; results are read from `trials/`, the report goes to `report/`.
        failed_indexes: indexes the cluster gave up on. Defaults to none.
        job_state: the Job's state ("Complete", "Running", "Failed", ...), or None when
            unknown (a local run). Defaults to None.
        n_bootstrap: bootstrap resamples for the intervals. Defaults to `curves.DEFAULT_BOOTSTRAP`.

    Returns:
        The summary as written to `report/summary.json` (`Summary.to_json()`).

    Raises:
        DataError: no usable result exists.
    """
    from .report import write_comparison_report, write_report  # matplotlib is imported only to write a report

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
    build, write = (build_variants_summary, write_comparison_report) if cfg.variants else (build_summary, write_report)
    summary = build(cfg, loaded, failed_indexes=failed_indexes, job_state=job_state, n_bootstrap=n_bootstrap,
                    output_uri=storage.uri)
    write(storage, summary)
    return summary.to_json()
