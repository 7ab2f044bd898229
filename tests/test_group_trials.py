"""Trials over a pool with groups (issue 20, part 3): whole groups drawn, both counts in the result and the facts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fake_sweep import GROUPED, POOL, fake_result, make_cfg
from samplesize.data.verify import ARRAYS, PoolFacts, copy_digest, parse_facts
from samplesize.errors import DataError
from samplesize.plan import planned_trials, trial_spec
from samplesize.sampling import group_sample_bounds, requested_size
from samplesize.trial import draw_trial_sample
from samplesize.trial_result import RejectedResult, TrialResult

GROUPS = POOL // 3  # three images per patient


def _grouped_data(n_groups: int = 30, per_group: int = 3):
    groups = np.repeat(np.arange(n_groups), per_group).astype(np.int32)
    return SimpleNamespace(pool_groups=groups, pool_labels=(groups % 3).astype(np.int32),
                           class_names=["a", "b", "c"], pool_size=len(groups))


def test_a_grouped_trial_draws_whole_groups_and_counts_groups_and_images():
    cfg, data = make_cfg(), _grouped_data()
    drawn, counts = draw_trial_sample(cfg, 0.5, 7, data)
    taken = set(data.pool_groups[drawn].tolist())
    assert set(np.flatnonzero(np.isin(data.pool_groups, list(taken))).tolist()) == set(drawn.tolist())
    assert counts == {"sample_size": len(drawn), "sample_groups": 15, "pool_groups": 30}
    assert len(drawn) == 45


def test_a_trial_without_groups_counts_images_only():
    cfg = make_cfg()
    data = SimpleNamespace(pool_groups=None, pool_labels=np.arange(90) % 3, class_names=["a", "b", "c"], pool_size=90)
    drawn, counts = draw_trial_sample(cfg, 0.5, 7, data)
    assert counts == {"sample_size": 45} and len(drawn) == 45


def test_a_grouped_result_keeps_both_counts_and_a_result_without_groups_writes_no_group_keys():
    cfg, plain_cfg = make_cfg(**GROUPED), make_cfg()
    grouped = TrialResult.from_json(fake_result(cfg, 0), cfg)
    assert (grouped.sample_groups, grouped.pool_groups) == (requested_size(trial_spec(cfg, 0).split, GROUPS), GROUPS)
    assert grouped.sample_size == 3 * grouped.sample_groups
    plain = TrialResult.from_json(fake_result(plain_cfg, 0), plain_cfg).to_json()
    assert "sample_groups" not in plain and "pool_groups" not in plain


@pytest.mark.parametrize("dropped", ["sample_groups", "pool_groups"])
def test_a_result_with_one_group_count_only_is_rejected(dropped):
    cfg = make_cfg(**GROUPED)
    result = fake_result(cfg, 0)
    del result[dropped]
    with pytest.raises(RejectedResult, match="records both"):
        TrialResult.from_json(result, cfg)


def test_a_result_whose_groups_the_split_cannot_draw_is_rejected():
    cfg = make_cfg(**GROUPED)
    with pytest.raises(RejectedResult, match="sample_groups"):
        TrialResult.from_json(fake_result(cfg, 1, sample_groups=requested_size(trial_spec(cfg, 1).split, GROUPS) + 5), cfg)


def test_a_grouped_result_whose_train_and_validation_are_not_its_images_is_rejected():
    cfg = make_cfg(**GROUPED)
    with pytest.raises(RejectedResult, match="train_size"):
        TrialResult.from_json(fake_result(cfg, 0, train_size=1), cfg)


def test_a_grouped_sweep_refuses_a_result_without_groups_and_a_plain_sweep_one_with_them():
    grouped, plain = make_cfg(**GROUPED), make_cfg()
    with pytest.raises(RejectedResult, match="draws whole groups"):
        TrialResult.from_json({k: v for k, v in fake_result(grouped, 0).items()
                               if k not in ("sample_groups", "pool_groups")}, grouped)
    with pytest.raises(RejectedResult, match="no dataset.group_column"):
        TrialResult.from_json({**fake_result(plain, 0), "sample_groups": 10, "pool_groups": GROUPS}, plain)


def test_facts_without_groups_are_written_as_before_and_facts_with_groups_round_trip():
    digests = dict.fromkeys(ARRAYS, "0" * 64)
    plain = PoolFacts(90, 3, copy_digest(digests), digests)
    assert b"group_count" not in plain.to_json()
    grouped = PoolFacts(90, 3, copy_digest(digests), digests, group_count=30)
    assert parse_facts(grouped.to_json(), "k").group_count == 30
    assert parse_facts(plain.to_json(), "k").group_count is None


def test_facts_with_more_groups_than_images_are_refused():
    digests = dict.fromkeys(ARRAYS, "0" * 64)
    with pytest.raises(DataError, match="group_count"):
        parse_facts(PoolFacts(90, 3, copy_digest(digests), digests, group_count=91).to_json(), "k")


def test_the_plan_counts_sizes_in_groups_when_the_pool_has_groups():
    cfg = make_cfg()
    sizes = {spec.split: size for spec, size in planned_trials(cfg, 90, 3, group_count=30)}
    assert sizes == {s: group_sample_bounds(s, 30, 3)[0] for s in (0.1, 0.25, 0.5, 1.0)}
    assert sizes[0.5] == 15
