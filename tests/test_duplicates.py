"""Exact duplicate images at preparation (issue 20): a pool/test copy is an error naming both files unless
`dataset.duplicates` says drop or allow; copies inside the pool or the test set are counted and named."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import image_bytes, run_cli, write_image_folder
from samplesize.config import load_config
from samplesize.config.schema import SweepConfig
from samplesize.data import prepare_dataset, prepared_key
from samplesize.errors import ConfigError, DataError
from samplesize.storage import LocalStorage

SIZE = 12


def _folder_with_copies(tmp_path, copies: int = 8):
    """Classes a, b, c of 6 distinct images each, and `copies` copies of one image of a (`a/img 0.png`): a holds
    the copies in both the pool and the test set, whatever the split."""
    root = write_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=6)
    for i in range(copies):
        shutil.copy(root / "a" / "img 0.png", root / "a" / f"copy {i}.png")
    return root


def _prepare(tmp_path, root, *overrides: str):
    cfg = load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}", *overrides])
    return prepare_dataset(cfg, LocalStorage(tmp_path / "out"), LocalStorage(root))


def test_a_pool_test_duplicate_is_an_error_naming_both_files(tmp_path):
    root = _folder_with_copies(tmp_path)
    with pytest.raises(DataError) as err:
        _prepare(tmp_path, root)
    message = str(err.value)
    assert "identical to pool images" in message and "dataset.duplicates: drop" in message
    named = [n for n in ["a/img 0.png", *(f"a/copy {i}.png" for i in range(8))] if n in message]
    assert len(named) == 2, message  # the test image and the pool image it repeats
    assert not list((tmp_path / "out").rglob("dataset-*.npz"))


def test_the_cli_exits_65_naming_both_files(tmp_path):
    root = _folder_with_copies(tmp_path)
    proc = run_cli("prepare", "--set", f"dataset.source=folder:{root}", "--set", f"output={tmp_path / 'out'}",
                   "--set", f"dataset.image_size={SIZE}")
    assert proc.returncode == 65, proc.stderr
    assert "is the same as pool image a/" in proc.stderr and "test image a/" in proc.stderr


def test_drop_keeps_the_first_copy_and_counts_the_others_as_skipped(tmp_path):
    root = _folder_with_copies(tmp_path)
    data = _prepare(tmp_path, root, "dataset.duplicates=drop")
    assert data.pool_size + len(data.test_labels) == 18  # 6 per class, the 8 copies dropped
    assert data.skipped.counts == {"duplicate image": 8}
    assert any("(duplicate of a/" in e for e in data.skipped.examples), data.skipped.examples
    assert data.duplicates.total == 0
    images = np.concatenate([data.pool_images, data.test_images]).reshape(18, -1)
    assert len(np.unique(images, axis=0)) == 18


def test_allow_keeps_every_copy_and_counts_them(tmp_path):
    root = _folder_with_copies(tmp_path)
    data = _prepare(tmp_path, root, "dataset.duplicates=allow")
    assert data.pool_size + len(data.test_labels) == 26
    assert data.duplicates.total == 8 and data.duplicates.counts["pool/test"] >= 1
    assert data.duplicates.examples
    reopened = _prepare(tmp_path, root, "dataset.duplicates=allow")  # the record is stored in the copy
    assert reopened.duplicates == data.duplicates


def test_copies_inside_the_pool_are_counted_and_kept_under_error(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=6)
    rng = np.random.default_rng(9)
    pixels = image_bytes(rng, tint=0)
    for seed in range(50):  # find a seed whose split puts both copies in the pool
        (root / "a" / "twin 1.png").write_bytes(pixels)
        (root / "a" / "twin 2.png").write_bytes(pixels)
        cfg = load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}", f"seed={seed}"])
        try:
            data = prepare_dataset(cfg, LocalStorage(tmp_path / f"out{seed}"), LocalStorage(root))
        except DataError:
            continue  # this seed split the twins across the sets
        if data.duplicates.counts.get("pool"):
            break
    else:
        pytest.fail("no seed put both copies in the pool")
    assert data.duplicates.counts == {"pool": 1}
    assert data.pool_size + len(data.test_labels) == 14
    assert "a/twin 2.png = a/twin 1.png (pool)" in data.duplicates.examples


def test_the_key_and_the_sweep_dict_are_unchanged_at_the_default(tmp_path):
    default = SweepConfig()
    assert "duplicates" not in default.to_dict()["dataset"]
    assert prepared_key(load_config(overrides=["dataset.duplicates=error"])) == prepared_key(default)
    dropped = load_config(overrides=["dataset.duplicates=drop"])
    assert dropped.to_dict()["dataset"]["duplicates"] == "drop"
    assert dropped.trial_hash() != default.trial_hash() and prepared_key(dropped) != prepared_key(default)
    with pytest.raises(ConfigError, match="dataset.duplicates"):
        load_config(overrides=["dataset.duplicates=ignore"])


def test_the_builtin_digits_have_no_duplicates_and_prepare_as_before(tmp_path):
    cfg = load_config(overrides=["dataset.image_size=8"])
    data = prepare_dataset(cfg, LocalStorage(tmp_path / "out"))
    assert data.duplicates.total == 0 and data.skipped.total == 0
    assert data.pool_size + len(data.test_labels) == 1797
