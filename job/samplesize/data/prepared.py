"""The prepared dataset: decoded, resized and split once per sweep, stored under `<output>/cache/`.

`prepare_dataset` decodes the source, resizes every image to the configured
size, splits off the fixed stratified test set and stores the result as
compact uint8 arrays under `<output>/cache/`, keyed by a hash of everything
that shapes them. Trials load that copy instead of decoding again. Beside it,
a small JSON file holds the pool's size and class count, which is all that
`samplesize plan` needs, and the dataset summary `samplesize prepare` prints
(`dataset_summary`), which `stored_summary` finds by the copy's digest.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..config import DatasetConfig, SweepConfig
from ..errors import DataError
from ..hashing import content_hash
from ..storage import Storage
from ..storage.npz import UNREADABLE_NPZ, meta_array, write_npz_once
from .csv_source import check_csv_exists, manifest_fingerprint
from .dataset_summary import DatasetSummary, summarize_dataset
from .duplicates import DuplicateImages, find_duplicates, first_copies, image_digests, refuse_leakage
from .group_split import group_count, group_ids, groups_from_meta, groups_meta, split_test_by_group
from .listing import list_dataset, shown
from .sources import LabelledImages, SkippedFiles, folder_storage, in_hidden_folder, load_source
from .verify import (
    PoolFacts,
    array_digest,
    array_headers,
    check_digest,
    check_headers,
    check_labels,
    copy_digest,
    parse_meta,
    read_facts,
    unusable,
)

log = logging.getLogger(__name__)


PREPARED_KEY = re.compile(r"cache/dataset-[0-9a-f]{8,64}\.npz")  # what `prepared_key` names
PREPARED_FORMAT = 2  # bump when the stored arrays' layout changes (2: facts carry the arrays' digests)


@dataclass
class PreparedDataset:
    """The pool (what trials subsample) and the fixed test set, as uint8 arrays.

    The image arrays are read from the stored copy on first use: a trial that
    trains only on cached features never loads the pixels (about 600 MB at
    224 px for a 4,000-image dataset).
    """

    pool_labels: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    skipped: SkippedFiles  # files of a folder source that could not be used
    key: str
    load_images: Callable[[str], np.ndarray] = field(repr=False)  # "pool_images" / "test_images" -> uint8 array
    digest: str | None = None  # the copy's content digest (`verify.copy_digest`), carried in each result
    duplicates: DuplicateImages = field(default_factory=DuplicateImages)  # identical images kept (`duplicates`)
    group_names: list[str] | None = None  # dataset.group_column's distinct values, sorted; None without groups
    pool_groups: np.ndarray | None = None  # int32 index into group_names per pool image
    test_groups: np.ndarray | None = None
    summary: DatasetSummary | None = None  # None for a copy prepared before summaries were stored

    @property
    def pool_size(self) -> int:
        return len(self.pool_labels)

    @functools.cached_property
    def pool_images(self) -> np.ndarray:
        return self.load_images("pool_images")

    @functools.cached_property
    def test_images(self) -> np.ndarray:
        return self.load_images("test_images")


def pool_facts_key(key: str) -> str:
    """`cache/dataset-<hash>.json`, beside the prepared copy `cache/dataset-<hash>.npz`."""
    return key.removesuffix(".npz") + ".json"


def read_pool_facts(cfg: SweepConfig, storage: Storage, source: Storage | None = None) -> PoolFacts | None:
    """The stored facts of the prepared copy `cfg` uses, checked (`verify.parse_facts`); None before `prepare`.

    `source` is the folder's storage, as for `load_source`: a folder's copy is named by a listing of it (cheap,
    nothing is decoded)."""
    return read_facts(storage, pool_facts_key(prepared_key(cfg, source)))


def stored_summary(storage: Storage, key: str, digest: str) -> DatasetSummary | None:
    """The dataset summary stored with the prepared copy `key` (a result's `dataset_key`) when its facts record
    `digest` (the result's `dataset_digest`); None when there is none to show.

    Only shown in the report, so it never stops an aggregation: a key that is no prepared copy's, facts that are
    missing, unreadable or of another copy, and a copy prepared before summaries existed all give None (the
    unreadable ones with a logged warning; the trials refuse such facts themselves)."""
    if not PREPARED_KEY.fullmatch(key):
        return None
    try:
        facts = read_facts(storage, pool_facts_key(key))
    except DataError as exc:
        log.warning("%s", exc)
        return None
    return facts.summary if facts is not None and facts.digest == digest else None


def _store_facts(storage: Storage, key: str, facts: PoolFacts) -> PoolFacts:
    """Store the copy's facts once; when some are stored already, they must record the same contents."""
    facts_key = pool_facts_key(key)
    if storage.write_once(facts_key, facts.to_json()):
        return facts
    stored = read_facts(storage, facts_key)
    if stored is None or stored.digest != facts.digest:
        raise DataError(
            f"{facts_key} records other contents than {key}; delete both and run `samplesize prepare` again"
        )
    return stored


def _facts_of(arrays: dict[str, np.ndarray], class_count: int, pool_groups: np.ndarray | None = None,
              summary: DatasetSummary | None = None) -> PoolFacts:
    """The copy's facts; with groups, the pool's group count too (so `plan` counts sizes in groups)."""
    digests = {name: array_digest(a) for name, a in arrays.items()}
    return PoolFacts(len(arrays["pool_labels"]), class_count, copy_digest(digests), digests, group_count(pool_groups),
                     summary)


def prepared_key(cfg: SweepConfig, source: Storage | None = None) -> str:
    """Cache key: everything that changes the prepared arrays (`source`: the folder's storage, as for `load_source`)."""
    ds = cfg.dataset
    shape = {
        "format": PREPARED_FORMAT,
        "source": ds.source,
        "image_size": ds.image_size,
        "test_fraction": ds.test_fraction,
        "seed": cfg.seed,
        "augment": cfg.training.augment == "static",
    }
    # Keys added since copies were first prepared enter only when set, so the copies already prepared keep their key.
    unset = ds.unset_added_keys()
    shape.update({key: getattr(ds, key) for key in ("dicom_frames", "duplicates") if key not in unset})
    if ds.group_column is not None:  # the test set is drawn by group (a copy prepared before was not)
        shape["split"] = "by group"
    contents = source_fingerprint(ds, source)
    if contents is not None:
        shape["contents"] = contents
    return f"cache/dataset-{content_hash(shape)}.npz"


def source_fingerprint(ds: DatasetConfig, source: Storage | None = None) -> str | None:
    """A cheap fingerprint of a folder source: every file's name, size and modification stamp.

    One listing, no file read (on GCS the generation number stands for the
    time). Adding, removing or replacing an image changes it, so a changed
    folder gets a new prepared copy instead of the old pool. None for
    builtin and tfds sources, whose contents a version pins. A csv source's
    is the CSV's bytes and columns plus the listing of the files it names
    (`csv_source.manifest_fingerprint`): an edited CSV gets a new copy too.
    """
    if ds.kind == "csv":
        return manifest_fingerprint(folder_storage(ds, source), ds)
    if ds.kind != "folder":
        return None
    listing = list_dataset(folder_storage(ds, source))
    entries = [*listing.files, *listing.refused]
    return content_hash([list(e) for e in sorted(entries) if not in_hidden_folder(e[0].split("/"))])


def check_source_exists(ds: DatasetConfig, source: Storage | None = None) -> None:
    """Raise DataError when a folder source does not exist or holds nothing (one listing, nothing decoded), or a
    csv source's CSV is not there."""
    if ds.kind == "csv":
        check_csv_exists(folder_storage(ds, source), ds)
    if ds.kind == "folder" and not list_dataset(folder_storage(ds, source)).files:
        raise DataError(
            f"dataset.source {shown(ds.source, 1000)}: the folder does not exist or is empty; it must hold one "
            "sub-folder per class with images inside"
        )


def split_test(labels: np.ndarray, test_fraction: float, seed: int, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded (pool, test) index arrays; every class keeps one pool example."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels, minlength=len(class_names))
    if len(class_names) < 2:
        raise DataError(f"the dataset has a single class ({class_names}); a classifier needs at least two")
    too_few = [f"{class_names[c]} has {counts[c]} usable image{'s' if counts[c] != 1 else ''}"
               for c in range(len(class_names)) if counts[c] < 2]
    if too_few:
        raise DataError(
            f"class {'; class '.join(too_few)}; each class needs at least 2 (one for the pool and one for the "
            "test set); add images or remove the class folder"
        )
    n_test = max(int(round(test_fraction * len(labels))), len(class_names))
    if len(labels) - n_test < len(class_names):
        raise DataError(
            f"dataset.test_fraction {test_fraction} leaves {len(labels) - n_test} images in the pool for "
            f"{len(class_names)} classes; lower test_fraction"
        )
    pool, test = train_test_split(np.arange(len(labels)), test_size=n_test, stratify=labels, random_state=seed)
    test, pool = _cover_every_class(labels, test, pool, seed)
    pool, test = _cover_every_class(labels, pool, test, seed)
    return np.sort(pool), np.sort(test)


def _cover_every_class(labels: np.ndarray, have: np.ndarray, other: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give every class at least one member of `have` (the test set, or the pool), keeping both sizes.

    Stratified rounding can leave a rare class (3 of 66 images) out of the test
    set; its recall would then be meaningless. For each such class one image
    moves from `other` into `have`, and one image of the class with the most
    members in `have` moves back. Splits that already cover every class are
    unchanged.
    """
    rng = np.random.default_rng([seed, 2])
    have, other = list(have), list(other)
    n_classes = int(labels.max()) + 1
    for c in range(n_classes):
        if any(labels[i] == c for i in have):
            continue
        counts = np.bincount(labels[have], minlength=n_classes)
        donor = int(np.argmax(counts))  # >= 2 members: have holds at least one image per class overall
        back = [i for i in have if labels[i] == donor][int(rng.integers(counts[donor]))]
        mine = [i for i in other if labels[i] == c]
        moved = mine[int(rng.integers(len(mine)))]
        other.remove(moved)
        have.remove(back)
        have.append(moved)
        other.append(back)
    return np.asarray(have), np.asarray(other)


def prepare_dataset(cfg: SweepConfig, storage: Storage, source: Storage | None = None) -> PreparedDataset:
    """Open the prepared dataset in the cache, or build and store it.

    `storage` is the sweep's output; `source` the dataset folder's storage
    (`open_source`), None for builtin and tfds sources.

    One process builds while the others of the sweep wait for it (`lease`);
    should two build anyway, the first writer wins and both use its copy.
    """
    from ..storage.lease import build_once

    key = prepared_key(cfg, source)
    size = cfg.dataset.image_size
    return build_once(storage, key, lambda: _build_prepared(cfg, storage, key, source),
                      lambda: _open_prepared(storage, key, size), what="prepared dataset")


def _build_prepared(cfg: SweepConfig, storage: Storage, key: str, source: Storage | None) -> PreparedDataset:
    """Decode, resize and split the source; store it once, staging the arrays on local disk.

    Peak memory stays near one image plus one chunk: the decoded images, the
    pool and test arrays and the stored .npz all live in files under the
    temp folder (/tmp in the pod), read back through memory maps.
    """
    staging = tempfile.TemporaryDirectory(prefix="samplesize-prepare-")
    data = load_source(cfg.dataset, source)
    pool, test, duplicates = _split(cfg, data)
    pool_images = take_rows(data.images, pool, os.path.join(staging.name, "pool_images.npy"))
    if cfg.training.augment == "static":
        from .augment import augment_once

        pool_images = augment_once(pool_images, cfg.seed)  # in memory: static augmentation is for small pools
    images = {"pool_images": pool_images,
              "test_images": take_rows(data.images, test, os.path.join(staging.name, "test_images.npy"))}
    del data.images  # the decoded copy's file can go once the pool and test arrays hold their rows

    def load_images(name: str, _staging=staging) -> np.ndarray:  # _staging keeps the folder while in use
        return images[name]

    prepared = PreparedDataset(
        pool_labels=data.labels[pool],
        test_labels=data.labels[test],
        class_names=data.class_names,
        skipped=data.skipped,
        key=key,
        load_images=load_images,
        duplicates=duplicates,
        summary=summarize_dataset(data, pool, test, duplicates),
    )
    if data.groups is not None:
        prepared.group_names, ids = group_ids(data.groups)
        prepared.pool_groups, prepared.test_groups = ids[pool], ids[test]
    arrays = _prepared_arrays(prepared, images)
    facts = _facts_of(arrays, len(prepared.class_names), prepared.pool_groups, prepared.summary)
    if not write_npz_once(storage, key, arrays):
        # Another trial prepared it concurrently; use the stored copy so every trial sees identical bytes.
        return _open_prepared(storage, key, cfg.dataset.image_size)
    prepared.digest = _store_facts(storage, key, facts).digest
    return prepared


def _split(cfg: SweepConfig, data: LabelledImages) -> tuple[np.ndarray, np.ndarray, DuplicateImages]:
    """(pool, test, the duplicates kept): by group when the source has groups, after `drop` removed copies;
    `error` refuses a test image identical to a pool image (`duplicates`)."""
    ds = cfg.dataset
    digests = image_digests(data.images)
    rows = np.arange(len(data.labels))
    if ds.duplicates == "drop":
        rows = first_copies(data, digests, data.skipped)
        if len(rows) < len(data.labels):
            log.warning("dataset %s: dropped %d duplicate images; %s", shown(ds.source, 1000),
                        len(data.labels) - len(rows), data.skipped.describe())
    if data.groups is not None:
        pool, test = split_test_by_group(data.labels[rows], data.groups[rows], ds.test_fraction, cfg.seed,
                                         data.class_names)
    else:
        pool, test = split_test(data.labels[rows], ds.test_fraction, cfg.seed, data.class_names)
    pool, test = rows[pool], rows[test]
    found = find_duplicates(data, digests, pool, test)
    if ds.duplicates == "error":
        refuse_leakage(found)
    if found.total:
        log.warning("dataset %s: %s (kept)", shown(ds.source, 1000), found.describe())
    return pool, test, found


def take_rows(images: np.ndarray, rows: np.ndarray, path: str, chunk: int = 256) -> np.ndarray:
    """`images[rows]` written chunk by chunk into a new .npy file at `path`, returned memory-mapped."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=images.dtype, shape=(len(rows), *images.shape[1:]))
    for start in range(0, len(rows), chunk):
        out[start : start + chunk] = images[rows[start : start + chunk]]
    out.flush()
    return out


def _prepared_arrays(p: PreparedDataset, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prepared dataset's arrays, the layout `_open_prepared` reads."""
    meta = {"class_names": p.class_names, "skipped": p.skipped.to_json()}
    if p.duplicates.total:  # only when found: a copy without duplicates keeps the meta (and digest) it had
        meta["duplicates"] = p.duplicates.to_json()
    if p.group_names is not None:
        meta["groups"] = groups_meta(p.group_names, p.pool_groups, p.test_groups)
    return {**images, "pool_labels": p.pool_labels, "test_labels": p.test_labels, "meta": meta_array(meta)}


def _open_prepared(storage: Storage, key: str, image_size: int | None = None) -> PreparedDataset:
    """Read and check the labels and names now (`verify`); the image arrays only when first used, checked then."""
    facts = read_facts(storage, pool_facts_key(key))
    source = storage.open_read(key)  # stays open: the image arrays are read from it later
    try:
        arrays = np.load(source)  # an NpzFile: reads each array on access
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise unusable(key, "is not an .npz archive")
        check_headers(array_headers(arrays, key), key, image_size, facts)
        stored = {name: arrays[name] for name in ("pool_labels", "test_labels", "meta")}
        meta = parse_meta(stored["meta"], key)
        n_classes = len(meta["class_names"])
        groups = groups_from_meta(meta["groups"], len(stored["pool_labels"]), len(stored["test_labels"])) \
            if "groups" in meta else (None, None, None)
        if facts is None:  # the writer stopped before storing them: record what is stored (reads the pixels once)
            facts = _store_facts(storage, key, _facts_of({**stored, "pool_images": arrays["pool_images"],
                                                           "test_images": arrays["test_images"]}, n_classes,
                                                          groups[1]))
        if facts.class_count != n_classes:
            raise unusable(key, f"names {n_classes} classes; its facts say {facts.class_count}")
        for name, array in stored.items():
            check_digest(array, name, facts, key)
        pool_labels = check_labels(stored["pool_labels"], "pool_labels", n_classes, key)
        test_labels = check_labels(stored["test_labels"], "test_labels", n_classes, key)
        skipped = SkippedFiles.from_json(meta["skipped"])
        duplicates = DuplicateImages.from_json(meta.get("duplicates", {"counts": {}, "examples": []}))
    except DataError:
        source.close()
        raise
    except UNREADABLE_NPZ as exc:
        source.close()
        raise unusable(key, f"is unreadable ({str(exc)[:80]})") from None

    def load_images(name: str) -> np.ndarray:
        try:
            images = arrays[name]
        except UNREADABLE_NPZ as exc:
            raise unusable(key, f"is unreadable ({str(exc)[:80]})") from None
        check_digest(images, name, facts, key)
        return images

    return PreparedDataset(pool_labels, test_labels, meta["class_names"], skipped, key, load_images, facts.digest,
                           duplicates, *groups, facts.summary)
