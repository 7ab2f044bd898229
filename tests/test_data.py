"""Dataset sources and the prepared copy: skip junk files, split test once, fail fast offline."""

import subprocess
import sys

import numpy as np
import pytest

from samplesize.config import load_config
from samplesize.data import (PoolFacts, load_source, pool_facts_key, prepare_dataset, prepared_key, read_pool_facts,
                             scan_folder, split_test)
from samplesize.errors import DataError
from samplesize.storage import LocalStorage


def test_folder_scan_skips_zero_byte_non_image_and_truncated_files(image_folder):
    data = scan_folder(LocalStorage(image_folder), size=16)
    assert data.class_names == ["birds", "cats", "dogs"]
    assert data.images.shape == (36, 16, 16, 3) and data.images.dtype == np.uint8
    assert data.skipped.total == 3
    text = data.skipped.describe()
    for name in ("empty.jpg", "Thumbs.db", "truncated.jpg"):
        assert name in text
    assert "zero-byte" in text and "truncated or corrupt" in text and "not a readable image" in text


def test_missing_folder_is_a_clear_error(tmp_path):
    cfg = load_config(overrides=[f"dataset.source=folder:{tmp_path}/nowhere"])
    with pytest.raises(DataError, match="nowhere.*does not exist or is empty"):
        load_source(cfg.dataset, LocalStorage(cfg.dataset.location))


def test_class_folder_without_usable_image_is_named(image_folder):
    (image_folder / "fish").mkdir()
    (image_folder / "fish" / "broken.png").write_bytes(b"")
    with pytest.raises(DataError, match="fish.*no usable image"):
        scan_folder(LocalStorage(image_folder), size=16)


def test_single_class_is_refused():
    with pytest.raises(DataError, match="single class"):
        split_test(np.zeros(10, dtype=int), 0.2, 0, ["only"])


def test_test_set_is_stratified_fixed_and_disjoint_from_pool():
    labels = np.repeat(np.arange(3), 20)
    pool, test = split_test(labels, 0.25, 7, ["a", "b", "c"])
    again_pool, again_test = split_test(labels, 0.25, 7, ["a", "b", "c"])
    assert np.array_equal(test, again_test) and np.array_equal(pool, again_pool)
    assert not set(pool) & set(test) and len(test) == 15
    assert np.bincount(labels[test]).tolist() == [5, 5, 5]


def test_builtin_digits_is_upscaled_rgb():
    data = load_source(load_config(overrides=["dataset.image_size=24"]).dataset)
    assert data.images.shape == (1797, 24, 24, 3)
    assert len(data.class_names) == 10


def test_prepared_dataset_is_stored_once_and_reused(tmp_path, image_folder):
    cfg = load_config(overrides=[f"dataset.source=folder:{image_folder}", "dataset.image_size=16"])
    storage, source = LocalStorage(tmp_path / "out"), LocalStorage(image_folder)
    first = prepare_dataset(cfg, storage, source)
    key = prepared_key(cfg, source)
    assert storage.exists(key) and key.startswith("cache/")
    stamp = (tmp_path / "out" / key).stat().st_mtime_ns
    again = prepare_dataset(cfg, storage, source)
    assert (tmp_path / "out" / key).stat().st_mtime_ns == stamp
    assert np.array_equal(first.pool_images, again.pool_images)
    assert again.skipped.counts and first.pool_size + len(first.test_labels) == 36


def test_pool_facts_are_stored_beside_the_prepared_copy_for_plan(tmp_path, image_folder):
    cfg = load_config(overrides=[f"dataset.source=folder:{image_folder}", "dataset.image_size=16"])
    storage, source = LocalStorage(tmp_path / "out"), LocalStorage(image_folder)
    assert read_pool_facts(cfg, storage, source) is None  # not prepared yet
    data = prepare_dataset(cfg, storage, source)
    assert read_pool_facts(cfg, storage, source) == PoolFacts(pool_size=data.pool_size, class_count=3)
    (tmp_path / "out" / pool_facts_key(prepared_key(cfg, source))).unlink()  # a copy prepared before facts were stored
    prepare_dataset(cfg, storage, source)
    assert read_pool_facts(cfg, storage, source) == PoolFacts(pool_size=data.pool_size, class_count=3)


def test_corrupt_prepared_copy_says_how_to_recover(tmp_path):
    cfg = load_config()
    storage = LocalStorage(tmp_path)
    storage.write(prepared_key(cfg), b"garbage")
    with pytest.raises(DataError, match="unreadable.*samplesize prepare"):
        prepare_dataset(cfg, storage)


def test_reopened_prepared_copy_reads_pixels_only_when_used(tmp_path, image_folder):
    cfg = load_config(overrides=[f"dataset.source=folder:{image_folder}", "dataset.image_size=16"])
    storage, source = LocalStorage(tmp_path / "out"), LocalStorage(image_folder)
    built = prepare_dataset(cfg, storage, source)
    reopened = prepare_dataset(cfg, storage, source)
    assert np.array_equal(reopened.pool_labels, built.pool_labels) and reopened.class_names == built.class_names
    assert "pool_images" not in vars(reopened) and "test_images" not in vars(reopened)  # not read yet
    assert np.array_equal(reopened.test_images, built.test_images)
    assert reopened.test_images.dtype == np.uint8 and "pool_images" not in vars(reopened)


def test_truncated_prepared_copy_says_how_to_recover(tmp_path, image_folder):
    """Cut mid-way through the pixels: caught when opened or, at the latest, when the pixels are read."""
    cfg = load_config(overrides=[f"dataset.source=folder:{image_folder}", "dataset.image_size=16"])
    storage, source = LocalStorage(tmp_path / "out"), LocalStorage(image_folder)
    prepare_dataset(cfg, storage, source)
    path = tmp_path / "out" / prepared_key(cfg, source)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{prepared_key(cfg, source)} is unreadable.*samplesize prepare"):
        data = prepare_dataset(cfg, storage, source)
        assert data.pool_images.size and data.test_images.size


def test_tfds_offline_and_unprepared_fails_fast_with_instructions(tmp_path):
    code = (
        "from samplesize.config import load_config; from samplesize.data import load_source\n"
        f"load_source(load_config(overrides=['dataset.source=tfds:tf_flowers', 'dataset.data_dir={tmp_path}']).dataset)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "not prepared" in proc.stderr and "download_and_prepare" in proc.stderr and "dataset.download" in proc.stderr


def test_content_hash_names_content_by_sorted_json_regardless_of_key_order():
    import hashlib
    import json

    from samplesize.hashing import content_hash

    shape = {"source": "folder:/x", "seed": 3, "entries": [["a/\udcff.png", 3, "17"]]}
    assert content_hash(shape) == hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    assert content_hash(dict(reversed(shape.items()))) == content_hash(shape)
