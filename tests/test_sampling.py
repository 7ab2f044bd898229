"""Subsampling: stratified without replacement by default, the recipe's with-replacement on request."""

import numpy as np
import pytest

from samplesize.errors import DataError
from samplesize.sampling import draw_subsample, split_validation

LABELS = np.repeat(np.arange(4), [50, 30, 15, 5])  # imbalanced pool of 100
NAMES = ["a", "b", "c", "d"]


def test_stratified_draw_has_no_duplicates_and_every_class():
    drawn = draw_subsample(LABELS, 0.1, seed=3, mode="stratified", n_classes=4)
    assert len(drawn) == 10
    assert len(set(drawn.tolist())) == len(drawn)
    assert set(LABELS[drawn]) == {0, 1, 2, 3}


def test_stratified_draw_follows_class_proportions():
    drawn = draw_subsample(LABELS, 0.5, seed=3, mode="stratified", n_classes=4)
    counts = np.bincount(LABELS[drawn], minlength=4)
    assert counts.sum() == 50
    np.testing.assert_allclose(counts, [25, 15, 7.5, 2.5], atol=1.5)


def test_draw_is_seeded():
    a = draw_subsample(LABELS, 0.3, seed=11, mode="stratified", n_classes=4)
    b = draw_subsample(LABELS, 0.3, seed=11, mode="stratified", n_classes=4)
    c = draw_subsample(LABELS, 0.3, seed=12, mode="stratified", n_classes=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_full_split_takes_the_whole_pool_once():
    drawn = draw_subsample(LABELS, 1.0, seed=0, mode="stratified", n_classes=4)
    assert np.array_equal(drawn, np.arange(100))


def test_with_replacement_reproduces_the_recipe_duplicates():
    labels = np.zeros(10_000, dtype=int)
    drawn = draw_subsample(labels, 0.5, seed=0, mode="with_replacement", n_classes=1)
    assert len(drawn) == 5000
    distinct = len(np.unique(drawn)) / len(labels)
    assert 0.38 < distinct < 0.41  # 1 - exp(-0.5): the recipe's "50%" holds ~39% of the pool, ~79% of its draws


def test_validation_split_is_stratified_and_keeps_every_class_in_training():
    drawn = draw_subsample(LABELS, 0.5, seed=0, mode="stratified", n_classes=4)
    train, val = split_validation(drawn, LABELS, 0.2, seed=0, class_names=NAMES, split=0.5)
    assert set(train) | set(val) == set(drawn) and not set(train) & set(val)
    assert set(LABELS[train]) == {0, 1, 2, 3}
    assert len(val) == pytest.approx(10, abs=2)


def test_split_so_small_a_class_gets_nothing_is_a_clear_error():
    drawn = draw_subsample(LABELS, 0.03, seed=0, mode="with_replacement", n_classes=4)
    with pytest.raises(DataError, match="split 0.03.*get no example"):
        split_validation(drawn, LABELS, 0.2, seed=0, class_names=NAMES, split=0.03)


def test_no_possible_validation_example_is_a_clear_error():
    labels = np.array([0, 1])
    with pytest.raises(DataError, match="no validation example"):
        split_validation(np.array([0, 1]), labels, 0.2, seed=0, class_names=["a", "b"], split=1.0)


@pytest.mark.parametrize("mode", ["stratified", "with_replacement"])
@pytest.mark.parametrize("split", [0.01, 0.05, 0.3, 0.79, 1.0])
def test_sample_size_counts_the_distinct_examples_the_draw_takes(mode, split):
    from samplesize.sampling import sample_size

    for seed in (0, 7, 123456):
        drawn = draw_subsample(LABELS, split, seed=seed, mode=mode, n_classes=4)
        assert sample_size(split, seed, len(LABELS), 4, mode) == len(np.unique(drawn))
