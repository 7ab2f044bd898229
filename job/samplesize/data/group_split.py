"""The test split by group (a patient): every group's images lie all in the pool or all in the test set.

Images of one patient are alike (the same body, scanner, day); with some in the
pool and some in the test set, the test score would measure how well a model
recognises patients it has seen. With `dataset.group_column` set, the test
set is drawn as whole groups: scikit-learn's `StratifiedGroupKFold` (seeded,
shuffled) with `round(1 / test_fraction)` folds, whose first fold is the test
set, so class shares are kept as far as whole groups allow and the test set
holds about `test_fraction` of the images (1/5 for 0.2, 1/3 for 0.3).

Then, as for the image split, every class must appear in both sets: a class
missing from one gets a whole group holding it moved over from the other,
when the other keeps every class without it. A class all of whose images
belong to one group cannot be in both, which is an error naming it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DataError
from .listing import shown


def group_count(groups: np.ndarray | None) -> int | None:
    """How many distinct groups (patients) `groups` holds; None without groups."""
    return None if groups is None else int(len(np.unique(groups)))


def group_ids(groups: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(sorted distinct group names, each image's index into them as int32)."""
    names, ids = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    return [str(n) for n in names], ids.astype(np.int32)


def split_test_by_group(labels: np.ndarray, groups: np.ndarray, test_fraction: float, seed: int,
                        class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (pool, test) index arrays of whole groups, stratified by class as far as groups allow."""
    from sklearn.model_selection import StratifiedGroupKFold

    if len(class_names) < 2:
        raise DataError(f"the dataset has a single class ({class_names}); a classifier needs at least two")
    _, ids = group_ids(groups)
    n_groups = int(ids.max()) + 1
    if n_groups < 2:
        raise DataError("dataset.group_column: every image has the same group; the pool and the test set need "
                        "different groups, so at least two groups are needed")
    # More folds than groups, or than the largest class has images, is refused by scikit-learn; a rare class's
    # warning is dropped, since the class is covered below.
    folds = max(2, min(int(round(1 / test_fraction)), n_groups, int(np.bincount(labels).max())))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pool, test = next(splitter.split(np.zeros(len(labels)), labels, ids))
    in_test = np.zeros(n_groups, dtype=bool)
    in_test[np.unique(ids[test])] = True
    rng = np.random.default_rng([seed, 3])
    _cover_by_group(labels, ids, in_test, True, rng, class_names)
    _cover_by_group(labels, ids, in_test, False, rng, class_names)
    test_rows = np.flatnonzero(in_test[ids])
    pool_rows = np.flatnonzero(~in_test[ids])
    return pool_rows, test_rows


def _classes(labels: np.ndarray, ids: np.ndarray, groups_in: np.ndarray) -> set[int]:
    return set(labels[groups_in[ids]].tolist())


def _cover_by_group(labels: np.ndarray, ids: np.ndarray, in_test: np.ndarray, to_test: bool,
                    rng: np.random.Generator, class_names: list[str]) -> None:
    """Move whole groups so that the test set (`to_test`) or the pool holds every class, keeping the other's."""
    every = set(range(len(class_names)))
    for c in range(len(class_names)):
        have = in_test if to_test else ~in_test
        if c in _classes(labels, ids, have):
            continue
        candidates = [int(g) for g in np.unique(ids[labels == c]) if not have[g]]
        rng.shuffle(candidates)
        for g in candidates:
            in_test[g] = to_test
            if _classes(labels, ids, ~in_test if to_test else in_test) == every:
                break
            in_test[g] = not to_test  # the other set would lose a class: try another group
        else:
            where = "test set" if to_test else "pool"
            raise DataError(
                f"class {shown(class_names[c])} cannot be in both the pool and the test set with whole groups: "
                f"moving any of its groups into the {where} leaves the other without a class; each class needs "
                "images from at least two groups (dataset.group_column)"
            )


def groups_meta(names: list[str], pool_ids: np.ndarray, test_ids: np.ndarray) -> dict:
    """The prepared copy's record of groups (in its meta, digest-checked on open like the class names)."""
    return {"names": names, "pool": pool_ids.tolist(), "test": test_ids.tolist()}


def groups_from_meta(record, n_pool: int, n_test: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, pool ids, test ids) of a `groups_meta` record, checked: one id per image, each naming a group, no
    group in both sets. Raises ValueError when it is not one (a hand-edited cache file)."""
    if not isinstance(record, dict) or not isinstance(record.get("names"), list) \
            or not all(isinstance(n, str) for n in record["names"]):
        raise ValueError("the groups record is not {names: [...], pool: [...], test: [...]}")
    out = []
    for part, n in (("pool", n_pool), ("test", n_test)):
        ids = record.get(part)
        if not isinstance(ids, list) or len(ids) != n \
                or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(record["names"])
                           for i in ids):
            raise ValueError(f"the groups record's {part} is not one group index per {part} image")
        out.append(np.asarray(ids, dtype=np.int32))
    if set(out[0].tolist()) & set(out[1].tolist()):
        raise ValueError("the groups record puts a group in both the pool and the test set")
    return list(record["names"]), out[0], out[1]
