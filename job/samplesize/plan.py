"""Map a trial index to its trial, and a trial to its sample size: pure, deterministic functions.

Indexes are laid out split-major, largest split first, then variant (in the
order of `variants`), then repetition:

    index = (position_of_split_in_descending_order * variants + variant) * repetitions + repetition

Without `variants` there is one (null) variant, so this is today's
`position * repetitions + repetition`. The seed, and so the subsample, does
not depend on the variant: every variant trains on the same images (paired).

Kubernetes starts the pods of an Indexed Job in index order, so running the
longest trials first shortens the sweep when parallelism < completions.
Backtest splits run as trials like any other split; only the fit skips them.

A trial's sample size depends on the pool's size and class count: the
caller reads them (the CLI, from the facts stored with the prepared data);
nothing here touches storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SweepConfig
from .errors import ConfigError
from .sampling import group_sample_bounds, refuse_equal_group_counts, refuse_equal_sample_sizes, sample_size


@dataclass(frozen=True)
class TrialSpec:
    index: int
    split: float
    repetition: int
    seed: int
    backtest: bool
    variant: str | None = None  # the variant's name; None in a sweep without variants


def ordered_splits(cfg: SweepConfig) -> list[float]:
    """All splits that run, largest first."""
    return sorted(cfg.all_splits, reverse=True)


def trial_seed(sweep_seed: int, split: float, repetition: int) -> int:
    """Seed of one trial, derived from (sweep seed, split, repetition) only.

    It does not depend on the index, so adding a split to a sweep does not
    change the subsamples of the others.
    """
    parts = [sweep_seed, int(round(split * 1_000_000)), repetition]
    return int(np.random.SeedSequence(parts).generate_state(1, dtype=np.uint32)[0])


def trial_spec(cfg: SweepConfig, index: int) -> TrialSpec:
    """The trial that `index` runs: a pure function of the config, the same in every pod.

    Indexes go largest split first (Kubernetes starts indexes in order, so the longest
    trials start first), then variant, then repetition.

    Args:
        cfg: the sweep.
        index: the trial's index, 0 to `cfg.trial_count - 1` (a pod's `JOB_COMPLETION_INDEX`).

    Returns:
        A `TrialSpec`: split, repetition, seed (from the sweep seed, the split and the
        repetition only), whether it is a backtest split, and the variant.

    Raises:
        ConfigError: `index` is not an integer, or out of range.

    Example:

    >>> from samplesize.config import build_config
    >>> cfg = build_config({"splits": [0.1, 0.5], "backtest_splits": [1.0], "repetitions": 2})
    >>> [(s.split, s.repetition, s.backtest) for s in (trial_spec(cfg, i) for i in range(cfg.trial_count))]
    [(1.0, 0, True), (1.0, 1, True), (0.5, 0, False), (0.5, 1, False), (0.1, 0, False), (0.1, 1, False)]
    >>> trial_spec(cfg, 6)
    Traceback (most recent call last):
    ...
    samplesize.errors.ConfigError: trial index 6 is out of range: this sweep has 6 trials (indexes 0..5); check completions in the Job against the config
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"trial index {index!r} must be an integer")
    if not 0 <= index < cfg.trial_count:
        raise ConfigError(
            f"trial index {index} is out of range: this sweep has {cfg.trial_count} trials "
            f"(indexes 0..{cfg.trial_count - 1}); check completions in the Job against the config"
        )
    names = cfg.variant_names
    block, repetition = divmod(index, cfg.repetitions)
    split_position, variant_position = divmod(block, len(names))
    split = ordered_splits(cfg)[split_position]
    return TrialSpec(
        index=index,
        split=split,
        repetition=repetition,
        seed=trial_seed(cfg.seed, split, repetition),
        backtest=split in cfg.backtest_splits,
        variant=names[variant_position],
    )


def all_trials(cfg: SweepConfig) -> list[TrialSpec]:
    return [trial_spec(cfg, i) for i in range(cfg.trial_count)]


def planned_trials(cfg: SweepConfig, pool_size: int | None = None, n_classes: int | None = None,
                   group_count: int | None = None) -> list[tuple[TrialSpec, int | None]]:
    """Every trial of the sweep with its sample size, from the pool's size and class count.

    With groups (`dataset.group_column`), sizes are counted in groups: the fewest groups each split draws
    (`sampling.group_sample_bounds`; its images depend on which groups are drawn).

    Args:
        cfg: the sweep.
        pool_size: the prepared pool's size. Defaults to None: before `samplesize prepare`,
            every sample size is None.
        n_classes: the pool's class count. Defaults to None.
        group_count: the pool's groups (the pool facts' `group_count`). Defaults to None (no groups).

    Returns:
        `(TrialSpec, sample size or None)` for every index, in index order.

    Raises:
        ConfigError: two splits would draw the same sample size from this pool.
    """
    trials = all_trials(cfg)
    if pool_size is None or n_classes is None:
        return [(spec, None) for spec in trials]
    if group_count is not None:
        refuse_equal_group_counts(cfg.all_splits, group_count, n_classes)
        return [(spec, group_sample_bounds(spec.split, group_count, n_classes)[0]) for spec in trials]
    refuse_equal_sample_sizes(cfg.all_splits, pool_size, n_classes, cfg.sampling)
    return [(spec, sample_size(spec.split, spec.seed, pool_size, n_classes, cfg.sampling)) for spec in trials]


def parse_index(text: str | None, source: str) -> int:
    """Parse an index from the CLI or JOB_COMPLETION_INDEX, naming where it came from."""
    if text is None or str(text).strip() == "":
        raise ConfigError(
            "no trial index: pass --index N, or set JOB_COMPLETION_INDEX "
            "(Kubernetes sets it in every pod of an Indexed Job)"
        )
    try:
        return int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{source}={text!r} is not an integer trial index") from None
