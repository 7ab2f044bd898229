"""Aggregate a sweep: load and check every result, fit the curves, write the report."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

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
                    output_uri=storage.uri, datasets=dataset_summaries(storage, loaded.results.values()))
    write(storage, summary)
    return summary.to_json()


def dataset_summaries(storage: Storage, results: Iterable[Mapping]) -> dict[str, dict]:
    """The stored dataset summary (`data.stored_summary`, as JSON) of each prepared copy the results ran on, by its
    key; only those the run facts list (`DatasetSummary.notable`): a sweep without skipped files, duplicates or
    groups has a summary.json as before they were recorded."""
    from .data import stored_summary

    out = {}
    for key, digest in {(r.get("dataset_key"), r.get("dataset_digest")) for r in results}:
        if isinstance(key, str) and isinstance(digest, str):
            found = stored_summary(storage, key, digest)
            if found is not None and found.notable:
                out[key] = found.to_json()
    return out
