"""The test split by group (issue 20): with dataset.group_column set, a patient's images are all in the pool or
all in the test set, every class is in both, and the groups are stored in the prepared copy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import image_bytes
from samplesize.commands import open_uri
from samplesize.config import load_config
from samplesize.data import open_source, prepare_dataset, prepared_key
from samplesize.data.group_split import split_test_by_group
from samplesize.errors import DataError
from samplesize.storage import LocalStorage

SIZE = 12


def _random_groups(seed: int, n_classes: int = 3, n_groups: int = 30):
    """Groups of 1-6 images; each group's images mostly of one class, as a patient's scans are."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(n_groups):
        main = g % n_classes
        for _ in range(int(rng.integers(1, 7))):
            labels.append(main if rng.random() < 0.8 else int(rng.integers(n_classes)))
            groups.append(f"p{g}")
    return np.asarray(labels, np.int32), np.asarray(groups), [f"c{c}" for c in range(n_classes)]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.5])
def test_no_group_is_in_both_sets_and_every_class_is_in_each(seed, fraction):
    labels, groups, names = _random_groups(seed)
    pool, test = split_test_by_group(labels, groups, fraction, seed, names)
    assert sorted([*pool, *test]) == list(range(len(labels)))
    assert not set(groups[pool]) & set(groups[test])
    assert set(labels[pool]) == set(labels[test]) == set(range(len(names)))
    again = split_test_by_group(labels, groups, fraction, seed, names)
    assert (again[0] == pool).all() and (again[1] == test).all()  # seeded


def test_the_test_set_is_about_the_test_fraction():
    labels, groups, names = _random_groups(0, n_groups=200)
    _, test = split_test_by_group(labels, groups, 0.2, 1, names)
    assert 0.12 < len(test) / len(labels) < 0.28


def test_a_rare_class_moves_as_a_whole_group():
    # c1 lives only in groups p0 and p1; a split that leaves it out of one set gets a whole group moved.
    labels = np.asarray([1, 1, 1, 1] + [0] * 40, np.int32)
    groups = np.asarray(["p0", "p0", "p1", "p1"] + [f"q{i // 2}" for i in range(40)])
    for seed in range(10):
        pool, test = split_test_by_group(labels, groups, 0.2, seed, ["c0", "c1"])
        assert set(labels[test]) == set(labels[pool]) == {0, 1}
        assert not set(groups[pool]) & set(groups[test])


def test_a_class_of_one_group_cannot_be_in_both_sets():
    labels = np.asarray([1, 1, 0, 0, 0, 0], np.int32)
    groups = np.asarray(["p0", "p0", "p1", "p2", "p3", "p4"])
    with pytest.raises(DataError, match="class c1 cannot be in both the pool and the test set"):
        split_test_by_group(labels, groups, 0.2, 0, ["c0", "c1"])
    with pytest.raises(DataError, match="at least two groups"):
        split_test_by_group(labels, np.asarray(["p"] * 6), 0.2, 0, ["c0", "c1"])


def _export(tmp_path, twins_in_one_group: bool = True):
    """A CSV of 8 patients x 3 images, two classes; patient p0's images include two identical files."""
    rng = np.random.default_rng(4)
    root = tmp_path / "export"
    (root / "img").mkdir(parents=True)
    rows = []
    for p in range(8):
        for i in range(3):
            name = f"img/p{p}-{i}.png"
            (root / name).write_bytes(image_bytes(rng, tint=p % 2))
            rows.append(f"{name},{'ab'[p % 2]},p{p}")
    shutil.copy(root / "img/p0-0.png", root / "img/p0-copy.png")
    rows.append(f"img/p0-copy.png,a,{'p0' if twins_in_one_group else 'p2'}")
    (root / "labels.csv").write_text("path,label,patient\n" + "\n".join(rows) + "\n")
    return root / "labels.csv"


def _prepare(tmp_path, csv, *overrides):
    cfg = load_config(overrides=[f"dataset.source=csv:{csv}", "dataset.group_column=patient",
                                 f"dataset.image_size={SIZE}", *overrides])
    source = open_source(cfg.dataset, open_uri)
    return cfg, source, prepare_dataset(cfg, LocalStorage(tmp_path / "out"), source)


@pytest.mark.parametrize("seed", range(5))
def test_a_groups_duplicates_cannot_cross_the_sets(tmp_path, seed):
    csv = _export(tmp_path)
    _, _, data = _prepare(tmp_path / str(seed), csv, f"seed={seed}")  # duplicates: error, and no error
    assert not set(data.pool_groups.tolist()) & set(data.test_groups.tolist())
    assert data.duplicates.counts.get("pool/test", 0) == 0
    assert sum(data.duplicates.counts.values()) == 1  # the twin, inside one set, counted


def test_the_groups_are_stored_and_read_back_with_the_copy(tmp_path):
    csv = _export(tmp_path)
    cfg, source, data = _prepare(tmp_path, csv)
    assert data.group_names == [f"p{p}" for p in range(8)]
    assert len(data.pool_groups) == data.pool_size and len(data.test_groups) == len(data.test_labels)
    reopened = prepare_dataset(cfg, LocalStorage(tmp_path / "out"), source)
    assert reopened.group_names == data.group_names
    assert (reopened.pool_groups == data.pool_groups).all() and (reopened.test_groups == data.test_groups).all()
    with np.load(tmp_path / "out" / prepared_key(cfg, source)) as z:
        meta = json.loads(z["meta"].tobytes())
    assert set(meta["groups"]) == {"names", "pool", "test"}


def test_a_copy_without_groups_stores_no_group_record(tmp_path):
    cfg = load_config(overrides=["dataset.image_size=8"])
    data = prepare_dataset(cfg, LocalStorage(tmp_path / "out"))
    assert data.group_names is None and data.pool_groups is None
    assert "split" not in json.dumps(prepared_key(cfg))


def test_the_group_split_enters_the_prepared_key(tmp_path):
    csv = _export(tmp_path)
    with_groups = load_config(overrides=[f"dataset.source=csv:{csv}", "dataset.group_column=patient"])
    without = load_config(overrides=[f"dataset.source=csv:{csv}"])
    assert prepared_key(with_groups, open_source(with_groups.dataset, open_uri)) != \
        prepared_key(without, open_source(without.dataset, open_uri))


def test_copies_in_two_groups_across_the_sets_are_still_leakage(tmp_path):
    csv = _export(tmp_path, twins_in_one_group=False)  # p0-0.png and its copy, listed under p0 and p2
    outcomes = set()
    for seed in range(8):
        try:
            _, _, data = _prepare(tmp_path / str(seed), csv, f"seed={seed}")
            outcomes.add("kept")
            assert data.duplicates.counts.get("pool/test", 0) == 0
        except DataError as exc:
            outcomes.add("refused")
            assert "row " in str(exc) and "img/p0-" in str(exc)
    assert "refused" in outcomes
