"""Index -> trial mapping: deterministic, largest splits first, one trial per (split, repetition)."""

import pytest

from samplesize.config import load_config
from samplesize.errors import ConfigError
from samplesize.plan import all_trials, parse_index, trial_seed, trial_spec


def test_trial_count_is_splits_times_repetitions():
    cfg = load_config(overrides=["splits=[0.1, 0.2, 0.4]", "backtest_splits=[]", "repetitions=4"])
    trials = all_trials(cfg)
    assert len(trials) == 12
    assert {(t.split, t.repetition) for t in trials} == {(s, r) for s in (0.1, 0.2, 0.4) for r in range(4)}


def test_largest_splits_get_the_lowest_indexes():
    cfg = load_config(overrides=["splits=[0.1, 0.5, 0.25]", "backtest_splits=[1.0]", "repetitions=2"])
    splits = [t.split for t in all_trials(cfg)]
    assert splits == sorted(splits, reverse=True)
    assert trial_spec(cfg, 0).split == 1.0 and trial_spec(cfg, 0).backtest
    assert trial_spec(cfg, 7).split == 0.1 and trial_spec(cfg, 7).repetition == 1


def test_plan_is_deterministic_and_seeds_differ_between_trials():
    cfg = load_config()
    first, second = all_trials(cfg), all_trials(load_config())
    assert first == second
    assert len({t.seed for t in first}) == len(first)


def test_trial_seed_does_not_depend_on_other_splits():
    a = load_config(overrides=["splits=[0.1, 0.5]"])
    b = load_config(overrides=["splits=[0.1, 0.3, 0.5]"])
    seed_a = next(t.seed for t in all_trials(a) if t.split == 0.1 and t.repetition == 1)
    seed_b = next(t.seed for t in all_trials(b) if t.split == 0.1 and t.repetition == 1)
    assert seed_a == seed_b == trial_seed(a.seed, 0.1, 1)


@pytest.mark.parametrize("index", [-1, 15, 1000])
def test_out_of_range_index_names_the_valid_range(index):
    with pytest.raises(ConfigError, match=r"0\.\.14"):
        trial_spec(load_config(), index)


@pytest.mark.parametrize("text", [None, "", "  "])
def test_missing_job_completion_index_explains_how_to_set_it(text):
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX"):
        parse_index(text, "JOB_COMPLETION_INDEX")


def test_non_integer_index_is_refused_naming_its_source():
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX='three'"):
        parse_index("three", "JOB_COMPLETION_INDEX")
