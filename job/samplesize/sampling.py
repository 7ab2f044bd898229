"""Draw a trial's subsample from the pool, and split it into train and validation.

`stratified` (the default) draws without replacement, allocating the sample
size over classes in proportion to the pool with at least one per class.
`with_replacement` reproduces the original Keras recipe (`np.random.randint`),
whose "50%" split holds only about 79% distinct images.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError


def requested_size(split: float, pool_size: int) -> int:
    return max(1, int(round(split * pool_size)))


def drawn_size(split: float, pool_size: int, n_classes: int, mode: str) -> int:
    """Draws of one trial: stratified takes at least one per class and at most the pool; otherwise the request."""
    n = requested_size(split, pool_size)
    return min(max(n, n_classes), pool_size) if mode == "stratified" else n


def sample_size(split: float, seed: int, pool_size: int, n_classes: int, mode: str) -> int:
    """A trial's sample size: the distinct pool examples it draws (train + validation).

    It follows from the pool's size and class count alone (every class has a
    pool example: `data.split_test`), so `plan` knows it without the labels.
    Stratified draws are distinct; with replacement, the draw itself is
    repeated (it needs only the pool's size) and its repeats removed.
    """
    if mode == "with_replacement":
        return len(np.unique(_draw_with_replacement(split, seed, pool_size)))
    return drawn_size(split, pool_size, n_classes, mode)


def group_sample_bounds(split: float, group_count: int, n_classes: int) -> tuple[int, int]:
    """The fewest and most groups `draw_group_subsample` draws: the request, or more when covering every class takes more.

    The covering takes at most one group per class, so the bounds follow from the counts alone (`plan`).
    """
    wanted = requested_size(split, group_count)
    return wanted, min(max(wanted, n_classes), group_count)


def refuse_equal_group_counts(splits, group_count: int, n_classes: int) -> None:
    """Two splits that ask for the same number of groups: refuse (exit 64). A group may hold every class, so the
    splits are told apart by the groups they ask for, not by the every-class covering."""
    refuse_equal_sample_sizes(splits, group_count, n_classes, "with_replacement", unit="groups")


def refuse_equal_sample_sizes(splits, pool_size: int, n_classes: int, mode: str, unit: str = "images") -> None:
    """Two splits that draw the same number of images (or groups) measure one point twice: refuse (exit 64)."""
    seen: dict[int, float] = {}
    for split in sorted(splits):
        n = drawn_size(split, pool_size, n_classes, mode)
        if n in seen:
            raise ConfigError(
                f"splits: {seen[n]:g} and {split:g} both draw {n} {unit} from this pool of {pool_size}; "
                "remove one, or spread the splits further apart"
            )
        seen[n] = split


def draw_subsample(labels: np.ndarray, split: float, seed: int, mode: str, n_classes: int) -> np.ndarray:
    """Indexes into the pool for one trial (sorted for stratified; in draw order otherwise)."""
    if mode == "with_replacement":
        return _draw_with_replacement(split, seed, len(labels))
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=n_classes)
    present = np.flatnonzero(counts)
    # One per class first, so rare classes are in every trial; the rest by largest remainder in
    # proportion to what each class has left, which can never exceed a class's size.
    spare = counts[present] - 1
    extra = drawn_size(split, len(labels), len(present), "stratified") - len(present)
    quota = spare / max(spare.sum(), 1) * extra
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: extra - take.sum()]] += 1
    take += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(present, take)]
    return np.sort(np.concatenate(chosen))


def _draw_with_replacement(split: float, seed: int, pool_size: int) -> np.ndarray:
    """The original Keras recipe's draw: `requested_size` pool indexes, uniformly, repeats allowed."""
    return np.random.default_rng(seed).integers(0, pool_size, size=requested_size(split, pool_size))


def split_validation(
    indexes: np.ndarray, labels: np.ndarray, fraction: float, seed: int, class_names: list[str], split: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split drawn pool indexes into (train, validation), stratified where every class allows it.

    Raises DataError when the split is too small for every class to reach
    training, or for a non-empty validation part.
    """
    rng = np.random.default_rng([seed, 1])
    sample_labels = labels[indexes]
    train, val = [], []
    for c in np.unique(sample_labels):
        members = rng.permutation(np.flatnonzero(sample_labels == c))
        k = int(round(fraction * len(members))) if len(members) > 1 else 0
        k = min(k, len(members) - 1)  # every class keeps at least one training example
        val.extend(members[:k])
        train.extend(members[k:])
    missing = sorted(set(range(len(class_names))) - set(np.unique(sample_labels).tolist()))
    if missing:
        raise DataError(
            f"split {split} draws too few images: class(es) {[class_names[c] for c in missing]} get no example; "
            f"raise the smallest split or use stratified sampling"
        )
    if not val:
        # Tiny samples: move one example from the largest class into validation.
        by_class = {c: [i for i in train if sample_labels[i] == c] for c in np.unique(sample_labels)}
        biggest = max(by_class, key=lambda c: len(by_class[c]))
        if len(by_class[biggest]) < 2:
            raise DataError(
                f"split {split} draws {len(indexes)} images for {len(class_names)} classes, leaving no validation "
                f"example; raise the smallest split"
            )
        moved = by_class[biggest][0]
        train.remove(moved)
        val.append(moved)
    return indexes[np.sort(train)], indexes[np.sort(val)]


def draw_group_subsample(groups: np.ndarray, labels: np.ndarray, split: float, seed: int, n_classes: int) -> np.ndarray:
    """Sorted pool indexes of whole groups (patients), drawn without replacement: `split` of the pool's groups.

    Every class present in the pool is covered first by one group holding it (its first in a seeded shuffle of
    the groups), then the shuffle's next groups fill the rest; a split asking for fewer groups than that covering
    draws the covering. A sweep's size is then counted in groups, its images beside it (`trial.draw_trial_sample`).
    """
    rng = np.random.default_rng([seed, 4])
    present, group_of = np.unique(groups, return_inverse=True)
    # which classes each group holds, from one pass over the pool (not one pass per group)
    holds = np.zeros((len(present), n_classes), bool)
    holds[group_of, labels] = True
    order = rng.permutation(len(present))  # the same shuffle as permuting `present` itself
    chosen = np.zeros(len(present), bool)
    covered = np.zeros(n_classes, bool)
    for c in range(n_classes):
        if covered[c] or not holds[:, c].any():
            continue
        holder = order[np.argmax(holds[order, c])]
        chosen[holder] = True
        covered |= holds[holder]
    wanted = requested_size(split, len(present))
    for g in order:
        if chosen.sum() >= wanted:
            break
        chosen[g] = True
    return np.flatnonzero(chosen[group_of])
