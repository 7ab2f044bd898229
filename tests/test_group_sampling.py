"""Subsamples by group (issue 20, part 3's sampling): whole patients, without replacement, every class."""

from __future__ import annotations

import numpy as np
import pytest
from samplesize.sampling import draw_group_subsample


def _pool(seed: int, n_groups: int = 40, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes).astype(np.int32)
    labels = np.asarray([g % n_classes if rng.random() < 0.8 else int(rng.integers(n_classes)) for g in groups],
                        np.int32)
    return groups, labels


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("split", [0.05, 0.25, 0.5, 1.0])
def test_whole_groups_are_drawn_and_every_class_is_in_the_draw(seed, split):
    groups, labels = _pool(seed)
    drawn = draw_group_subsample(groups, labels, split, seed, 3)
    assert (np.diff(drawn) > 0).all()  # sorted, no image twice
    taken = set(groups[drawn].tolist())
    assert set(np.flatnonzero(np.isin(groups, list(taken))).tolist()) == set(drawn.tolist())  # whole groups
    assert set(labels[drawn].tolist()) == {0, 1, 2}
    assert len(taken) >= max(1, round(split * 40))
    assert (draw_group_subsample(groups, labels, split, seed, 3) == drawn).all()  # seeded


def test_larger_splits_draw_more_groups_and_the_full_split_draws_all():
    groups, labels = _pool(1)
    counts = [len(set(groups[draw_group_subsample(groups, labels, s, 7, 3)])) for s in (0.1, 0.3, 0.6, 1.0)]
    assert counts == sorted(counts) and counts[-1] == 40
