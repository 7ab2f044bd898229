"""Index -> trial mapping: deterministic, largest splits first, one trial per (split, repetition)."""

import pytest

from samplesize.config import load_config
from samplesize.errors import ConfigError
from samplesize.plan import all_trials, parse_index, planned_trials, trial_seed, trial_spec


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


def test_planned_trials_have_no_sample_size_until_the_pool_is_known():
    cfg = load_config(overrides=["splits=[0.1, 0.5]", "backtest_splits=[]", "repetitions=2"])
    assert [size for _, size in planned_trials(cfg)] == [None] * 4
    assert [size for _, size in planned_trials(cfg, pool_size=1000, n_classes=10)] == [500, 500, 100, 100]


def test_planned_trials_refuse_splits_that_draw_the_same_sample_size():
    cfg = load_config(overrides=["splits=[0.1, 0.1003]"])
    with pytest.raises(ConfigError, match="both draw 144"):
        planned_trials(cfg, pool_size=1438, n_classes=10)


@pytest.fixture
def cli_main():
    """`samplesize.cli.main` in this process (so a test can watch what it calls); restores the SIGTERM handler."""
    import signal

    from samplesize.cli import main

    saved = signal.getsignal(signal.SIGTERM)
    yield main
    signal.signal(signal.SIGTERM, saved)


def test_plan_before_prepare_shows_fractions_and_never_touches_the_dataset(tmp_path, monkeypatch, capsys, cli_main):
    import json

    import samplesize.data as data

    def refuse(*args, **kwargs):
        raise AssertionError("plan decoded or prepared the dataset")

    monkeypatch.setattr(data, "prepare_dataset", refuse)
    monkeypatch.setattr(data, "load_source", refuse)
    assert cli_main(["plan", "--set", f"output={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "sample sizes appear after `samplesize prepare`" in out
    assert "0.25" in out and "15 trials" in out
    assert cli_main(["plan", "--json", "--set", f"output={tmp_path}"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in rows] == list(range(15))
    assert all(set(r) == {"index", "split", "repetition", "sample_size", "seed", "backtest", "variant"} for r in rows)
    assert all(r["sample_size"] is None for r in rows)
    assert list(tmp_path.iterdir()) == []  # no prepared copy, no cache folder: nothing written


@pytest.mark.parametrize("sampling", ["stratified", "with_replacement"])
def test_plan_after_prepare_shows_the_sample_size_each_trial_draws(tmp_path, capsys, cli_main, sampling):
    import json

    import numpy as np

    from samplesize.data import prepare_dataset
    from samplesize.sampling import draw_subsample
    from samplesize.storage import LocalStorage

    sets = ["--set", f"output={tmp_path}", "--set", f"sampling={sampling}"]
    assert cli_main(["prepare", *sets]) == 0
    capsys.readouterr()
    assert cli_main(["plan", "--json", *sets]) == 0
    rows = json.loads(capsys.readouterr().out)
    cfg = load_config(overrides=[f"output={tmp_path}", f"sampling={sampling}"])
    data = prepare_dataset(cfg, LocalStorage(tmp_path))  # the stored copy: opened, not built again
    n_classes = len(data.class_names)
    drawn = [len(np.unique(draw_subsample(data.pool_labels, s.split, s.seed, sampling, n_classes))) for s in all_trials(cfg)]
    assert [r["sample_size"] for r in rows] == drawn
    assert cli_main(["plan", *sets]) == 0
    out = capsys.readouterr().out
    assert "samplesize prepare" not in out and f"  {drawn[0]:>11}  " in out


def test_plan_of_a_folder_reads_the_facts_of_the_folder_as_it_is_now(tmp_path, capsys, cli_main, image_folder):
    """The folder is listed (never decoded) to name its prepared copy: a changed folder has no sizes until prepared."""
    import json
    import shutil

    sets = ["--set", f"output={tmp_path / 'out'}", "--set", f"dataset.source=folder:{image_folder}",
            "--set", "dataset.image_size=16", "--set", "splits=[0.25, 0.5]", "--set", "repetitions=1"]
    assert cli_main(["plan", "--json", *sets]) == 0
    assert all(r["sample_size"] is None for r in json.loads(capsys.readouterr().out))
    assert cli_main(["prepare", *sets]) == 0
    capsys.readouterr()
    assert cli_main(["plan", "--json", *sets]) == 0
    sizes = [r["sample_size"] for r in json.loads(capsys.readouterr().out)]
    assert all(isinstance(n, int) and n > 0 for n in sizes) and sizes[0] > sizes[1]
    shutil.copy(next((image_folder / "cats").iterdir()), image_folder / "cats" / "added.png")  # the folder changes
    assert cli_main(["plan", "--json", *sets]) == 0
    assert all(r["sample_size"] is None for r in json.loads(capsys.readouterr().out))
