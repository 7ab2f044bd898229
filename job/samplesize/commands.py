"""The subcommands of `samplesize`, and the one place that opens URIs from the environment.

Each `cmd_<name>(args, cfg, storage)` runs one subcommand and returns its exit code;
`open_uri` is the opener the CLI hands to the package (GCS options from the environment).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import TYPE_CHECKING

from . import __version__
from .config import SweepConfig
from .errors import EXIT_OK, ConfigError, DataError
from .plan import TrialSpec, parse_index, planned_trials, trial_spec
from .results import result_key
from .size_unit import unit_noun
from .storage import GcsOptions, Storage, open_storage
from .storage.base import DEFAULT_RETRY_DEADLINE, EMULATOR_HOST_ENV, RETRY_DEADLINE_ENV
from .text import cut, index_ranges, one_line, terminal_safe

# Set to 1 by the chart when the trial pod requests a GPU: a trial that then sees
# none exits 75 before loading data, instead of training on the node's CPU.
EXPECT_GPU_ENV = "SAMPLESIZE_EXPECT_GPU"


if TYPE_CHECKING:
    from .data import PoolFacts


def open_output(cfg: SweepConfig) -> Storage:
    """The output storage; an unusable `output` is named as the config key to change."""
    try:
        return open_uri(cfg.output_uri)
    except ConfigError as exc:
        raise ConfigError(f"output: {exc}") from None


def open_uri(uri: str) -> Storage:
    """A Storage for `uri`; a gs:// one is configured from the environment (`gcs_options_from_env`)."""
    return open_storage(uri, gcs_options_from_env() if uri.startswith("gs://") else None)


def gcs_options_from_env(environ=os.environ) -> GcsOptions:
    """GCS settings from SAMPLESIZE_GCS_RETRY_DEADLINE (seconds, default 300) and STORAGE_EMULATOR_HOST."""
    raw = environ.get(RETRY_DEADLINE_ENV, "").strip()
    return GcsOptions(retry_deadline=_positive_seconds(raw) if raw else DEFAULT_RETRY_DEADLINE,
                      emulator_host=environ.get(EMULATOR_HOST_ENV) or None)


MAX_RETRY_DEADLINE = 3600.0  # seconds: past an hour of failing requests, the retried pod does better than waiting


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_RETRY_DEADLINE:  # also refuses nan, inf and 1e999: a deadline that never comes
        raise ConfigError(f"{RETRY_DEADLINE_ENV}={cut(raw)}: expected a number of seconds above 0 and at most "
                          f"{MAX_RETRY_DEADLINE:g} (default {DEFAULT_RETRY_DEADLINE:g})")
    return value


PLAN_BEFORE_PREPARE = ("sample sizes appear after `samplesize prepare`: they depend on the pool's size, "
                       "known once the dataset is prepared")


def _stored_pool(cfg: SweepConfig, storage: Storage) -> PoolFacts | None:
    """The pool's size and class count stored with the prepared data; None before `samplesize prepare`.

    Every variant shares the pool (its labels and order), so the first variant's copy sizes them all.
    """
    from .data import check_source_exists, open_source, read_pool_facts

    source = open_source(cfg.dataset, open_uri)
    check_source_exists(cfg.dataset, source)  # cheap (one listing): a mistyped folder fails here, not in every pod
    return read_pool_facts(cfg.trial_config(trial_spec(cfg, 0).variant), storage, source)


def _prepared_trials(cfg: SweepConfig, storage: Storage, source: Storage | None) -> list[tuple[TrialSpec, int]]:
    """Every trial with its sample size; prepares the dataset first, once, before trials race for it."""
    from .data import group_count, prepare_dataset

    data = prepare_dataset(cfg.trial_config(trial_spec(cfg, 0).variant), storage, source)
    return planned_trials(cfg, data.pool_size, len(data.class_names), group_count(data.pool_groups))


def cmd_plan(args, cfg: SweepConfig, storage: Storage) -> int:
    """The trial table; it reads the stored pool facts and never decodes or prepares the dataset."""
    pool = _stored_pool(cfg, storage)
    trials = planned_trials(cfg, pool.pool_size, pool.class_count, pool.group_count) if pool else planned_trials(cfg)
    rows = [{"index": spec.index, "split": spec.split, "repetition": spec.repetition, "sample_size": size,
             "seed": spec.seed, "backtest": spec.backtest, "variant": spec.variant}
            for spec, size in trials]
    if pool is not None and pool.group_count is not None:  # sizes in groups; their images are known once drawn
        rows = [{**r, "sample_size": None, "sample_groups": r["sample_size"]} for r in rows]
    if args.json:
        print(json.dumps(rows, indent=1))
    elif cfg.variants:
        _print_variant_plan(cfg, rows)
    else:
        _print_plan(cfg, rows)
    if pool is None:
        print(PLAN_BEFORE_PREPARE, file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _size_cell(cfg: SweepConfig, row: dict) -> str:
    """A trial's size: its images, or with groups the groups it draws, named as the report names them."""
    if row.get("sample_groups") is not None:
        return f"{row['sample_groups']} {unit_noun(cfg.dataset.group_column or '')}"
    return "-" if row["sample_size"] is None else str(row["sample_size"])


def _print_plan(cfg: SweepConfig, rows: list[dict]) -> None:
    print(f"{'index':>5}  {'split':>6}  {'repetition':>10}  {'sample_size':>11}  {'seed':>10}")
    for r in rows:
        mark = "  (backtest)" if r["backtest"] else ""
        print(f"{r['index']:>5}  {r['split']:>6g}  {r['repetition']:>10}  {_size_cell(cfg, r):>11}  {r['seed']:>10}{mark}")
    print(f"{len(rows)} trials = {len(cfg.all_splits)} splits x {cfg.repetitions} repetitions; output: {cfg.output_uri}")


def _print_variant_plan(cfg: SweepConfig, rows: list[dict]) -> None:
    """The plan with a variant column; the same seed (subsample) recurs in every variant."""
    width = max(7, *(len(v.name) for v in cfg.variants))
    print(f"{'index':>5}  {'variant':<{width}}  {'split':>6}  {'repetition':>10}  {'sample_size':>11}  {'seed':>10}")
    for r in rows:
        mark = "  (backtest)" if r["backtest"] else ""
        print(f"{r['index']:>5}  {r['variant']:<{width}}  {r['split']:>6g}  {r['repetition']:>10}  "
              f"{_size_cell(cfg, r):>11}  {r['seed']:>10}{mark}")
    print(f"{len(rows)} trials = {len(cfg.all_splits)} splits x {cfg.repetitions} repetitions x {len(cfg.variants)} "
          f"variants (paired: each subsample is trained in every variant); output: {cfg.output_uri}")
    for v in cfg.variants:
        print(f"  {v.name}: {v.describe()}")


def cmd_prepare(args, cfg: SweepConfig, storage: Storage) -> int:
    from .data import open_source, prepare_dataset

    if cfg.variants:
        return _prepare_variants(cfg, storage)
    data = prepare_dataset(cfg, storage, open_source(cfg.dataset, open_uri))
    _warn_other_data(storage, data.key)
    _print_prepared(data)
    return EXIT_OK


def _prepare_variants(cfg: SweepConfig, storage: Storage) -> int:
    """One prepared copy per distinct image size and augmentation among the variants, each summarised once."""
    from .data import open_source, prepare_dataset

    keys = set()
    source = open_source(cfg.dataset, open_uri)  # variants share the source
    for name in cfg.variant_names:
        data = prepare_dataset(cfg.trial_config(name), storage, source)
        if data.key in keys:
            print(f"variant {name}: uses {data.key}, as above")
            continue
        keys.add(data.key)
        _print_prepared(data, f"variant {name}: ")
    _warn_other_data(storage, frozenset(keys))
    return EXIT_OK


def _print_prepared(data, lead: str = "") -> None:
    """The prepared copy's sizes and its dataset summary (`data.DatasetSummary.lines`)."""
    from .data import pool_facts_key

    print(f"{lead}prepared {data.key}: pool {data.pool_size}, test {len(data.test_labels)}, "
          f"{len(data.class_names)} classes")
    if data.summary is not None:
        print("\n".join(data.summary.lines()))
        return
    # A copy prepared before summaries were stored: what its meta holds, and how to get the rest.
    print(one_line(f"{data.skipped.describe()}; {data.duplicates.describe()}"))
    print(f"dataset summary: not recorded (prepared by an older version); delete {data.key} and "
          f"{pool_facts_key(data.key)} and run `samplesize prepare` again to rebuild it with one")


def _warn_other_data(storage: Storage, dataset_key: str | frozenset[str]) -> None:
    from .results import describe_other_data, results_on_other_data

    others = results_on_other_data(storage, dataset_key)
    if others:
        print(f"samplesize: warning: {describe_other_data(others, dataset_key)}", file=sys.stderr)


def cmd_trial(args, cfg: SweepConfig, storage: Storage) -> int:
    from .local_run import PROGRESS_PREFIX
    from .trial import run_trial

    if args.index is not None:
        index = parse_index(args.index, "--index")
    else:
        index = parse_index(os.environ.get("JOB_COMPLETION_INDEX"), "JOB_COMPLETION_INDEX")
    # The architecture first: an image built for the wrong one dies before this
    # line ("exec format error"), and one run under emulation says so here.
    print(f"trial {index}: starting on {platform.machine()}, samplesize {__version__}", flush=True)

    def progress(event: dict) -> None:
        if args.progress == "json":
            print(PROGRESS_PREFIX + json.dumps(event), flush=True)
        elif args.progress == "text":
            extra = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("phase", "epoch", "epochs"))
            print(f"trial {index}: {event['phase']} epoch {event['epoch']}/{event['epochs']} {extra}", flush=True)

    outcome = run_trial(cfg, index, storage, progress=progress, expect_gpu=os.environ.get(EXPECT_GPU_ENV) == "1",
                        open_uri=open_uri)
    if not outcome.written:
        print(f"trial {index}: a result already exists at {storage.uri}/{result_key(index)}; nothing to do")
        return EXIT_OK
    r = outcome.trial
    variant = f"variant {r.variant}, " if r.variant is not None else ""
    print(f"trial {index}: {variant}split {r.split} repetition {r.repetition}, sample size {r.sample_size}: "
          f"{cfg.metric} {r.metrics[cfg.metric]} in {r.timings['total_s']:.1f}s -> {storage.uri}/{result_key(index)}")
    return EXIT_OK


def cmd_run(args, cfg: SweepConfig, storage: Storage) -> int:
    from .local_run import run_sweep

    from .results import refuse_unusable_results

    refuse_unusable_results(cfg, storage)  # another config's results (64), or unusable objects at result keys (65)
    from .data import open_source, prepared_key

    source = open_source(cfg.dataset, open_uri)  # variants share the source
    trials = _prepared_trials(cfg, storage, source)
    _warn_other_data(storage, frozenset(prepared_key(cfg.trial_config(name), source) for name in cfg.variant_names))
    storage.write("sweep.yaml", cfg.to_yaml().encode())
    print(f"sweep {cfg.name}: {len(trials)} trials, {args.workers} worker(s), output {cfg.output_uri}", file=sys.stderr)
    failed = run_sweep(cfg, storage, trials, args.workers)
    code = _aggregate(args, cfg, storage, failed_indexes=failed, job_state="complete" if not failed else "failed")
    if failed:
        print(f"{len(failed)} trial(s) failed: {failed}; run `samplesize run` again to retry only those", file=sys.stderr)
        return 1
    return code


def cmd_aggregate(args, cfg: SweepConfig, storage: Storage) -> int:
    failed, state = [], None
    if args.wait_for_job:
        from .cluster import wait_for_job

        outcome = wait_for_job(args.wait_for_job, args.namespace)
        failed, state = outcome.failed_indexes, outcome.state
    return _aggregate(args, cfg, storage, failed_indexes=failed, job_state=state)


def _aggregate(args, cfg: SweepConfig, storage: Storage, failed_indexes, job_state) -> int:
    from .aggregate import aggregate
    from .report.write import MAX_SUMMARY_BYTES

    # `run` has no --bootstrap; without the flag the fit's own default applies.
    boot = getattr(args, "bootstrap", None)
    aggregate(cfg, storage, failed_indexes=failed_indexes, job_state=job_state,
              **({} if boot is None else {"n_bootstrap": boot}))
    try:
        print(storage.read(_report_key("report.md"), limit=MAX_SUMMARY_BYTES).decode("utf-8", "replace"))
    except (FileNotFoundError, DataError):
        pass  # just written; a replaced or oversized one is not printed (report.html is named below)
    print(f"report: {storage.uri.rstrip('/')}/{_report_key('report.html')}", file=sys.stderr)
    return EXIT_OK


def cmd_report(args, cfg: SweepConfig, storage: Storage) -> int:
    """Render report/ again from a summary.json alone: nothing is refitted and no trial is read."""
    from .report import REPORT_PREFIX, read_report_summary, rewrite_report

    source, key, output = storage, REPORT_PREFIX + "summary.json", storage
    if args.summary:
        folder, _, name = args.summary.rstrip("/").rpartition("/")
        source, key = open_uri(folder or "."), name
        above, _, last = folder.rpartition("/")
        output = open_uri(above or ".") if last == REPORT_PREFIX.rstrip("/") else None
    if args.output:
        output = open_uri(args.output)
    if output is None:
        raise ConfigError(f"--summary {terminal_safe(args.summary[:200])}: it is not in a report/ folder, so pass "
                          "--output to say where report/ should be written")
    keys = rewrite_report(output, read_report_summary(source, key))
    print(f"report: {output.uri.rstrip('/')}/{REPORT_PREFIX}report.html ({len(keys)} files)", file=sys.stderr)
    return EXIT_OK


def cmd_status(args, cfg: SweepConfig, storage: Storage) -> int:
    """Finished trials as `aggregate` counts them: foreign, broken and mismatched files are not finished."""
    from .report import REPORT_FILES, report_set_problem
    from .results import load_results

    summary_key = _report_key("summary.json")
    loaded = load_results(cfg, storage)
    report = [k for k in REPORT_FILES if storage.exists(k)]
    print(f"sweep {cfg.name} at {cfg.output_uri}: {len(loaded.trials)}/{cfg.trial_count} trials finished")
    if loaded.missing:
        print(f"missing indexes: {index_ranges(loaded.missing)}")
    if loaded.problems:
        print(f"{len(loaded.problems)} result file(s) rejected, not counted as finished:")
        for problem in loaded.problems[:10]:
            print(f"  {problem}")
    stale = _stale_report(cfg, storage, summary_key, set(loaded.trials)) if summary_key in report else None
    broken = report_set_problem(storage) if report else None
    if not report:
        print("report: not written yet")
    elif broken:
        print(f"report: not one consistent set ({broken}); run `samplesize aggregate` to write it again")
    elif stale:
        print(f"report: present but stale ({stale}); run `samplesize aggregate` again")
    else:
        print(f"report: present ({', '.join(report)})")
    if args.require_report and (summary_key not in report or stale or broken):
        return 1
    return EXIT_OK


def _report_key(name: str) -> str:
    """The storage key of the report file `name` (one of `report.REPORT_FILES`)."""
    from .report import REPORT_FILES

    return next(key for key in REPORT_FILES if key.rsplit("/", 1)[-1] == name)


def _stale_report(cfg: SweepConfig, storage: Storage, summary_key: str, usable: set[int]) -> str | None:
    """Why the summary at `summary_key` does not describe this sweep's usable results (their indexes), or None."""
    from .report.write import MAX_SUMMARY_BYTES

    try:
        summary = json.loads(storage.read(summary_key, limit=MAX_SUMMARY_BYTES))
        config_hash = summary["run"]["config_hash"]
        used = sorted(int(p["index"]) for p in summary["points"])
    except (FileNotFoundError, DataError, ValueError, RecursionError, KeyError, TypeError):
        return "report/summary.json is unreadable (or larger than any summary)"
    if config_hash != cfg.trial_hash():
        return "it was written for another configuration"
    if used != sorted(usable):
        return f"it used {len(used)} results, {len(usable)} are usable now"
    return None


COMMANDS = {"plan": cmd_plan, "prepare": cmd_prepare, "trial": cmd_trial, "run": cmd_run,
            "aggregate": cmd_aggregate, "report": cmd_report, "status": cmd_status}
