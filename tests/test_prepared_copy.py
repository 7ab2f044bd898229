"""The prepared copy in `cache/` and its facts are untrusted (issue 24, case 4): checked on every open, exit 65
naming the file, never a traceback, never a silently different dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli, write_image_folder
from samplesize.config import load_config
from samplesize.data import pool_facts_key, prepare_dataset, prepared_key, read_pool_facts
from samplesize.errors import DataError
from samplesize.storage import LocalStorage

SIZE = 12


@pytest.fixture
def prepared(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=6)
    cfg = load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}"])
    storage, source = LocalStorage(tmp_path / "out"), LocalStorage(root)
    data = prepare_dataset(cfg, storage, source)
    return cfg, storage, source, data, tmp_path / "out" / prepared_key(cfg, source)


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {name: z[name] for name in z.files}


def _rewrite(path, **changes) -> None:
    arrays = {**_arrays(path), **changes}
    path.unlink()
    np.savez(path, **arrays)


def _meta(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def test_prepared_copy_with_test_labels_shifted_by_one_is_refused_by_its_digest(prepared):
    cfg, storage, source, data, path = prepared
    shifted = ((data.test_labels + 1) % len(data.class_names)).astype(np.int32)
    _rewrite(path, test_labels=shifted)
    with pytest.raises(DataError, match=r"cache/dataset-\w+\.npz has test_labels that do not match the digest"):
        prepare_dataset(cfg, storage, source)


def test_prepared_copy_with_images_replaced_is_refused_when_the_pixels_are_read(prepared):
    cfg, storage, source, data, path = prepared
    _rewrite(path, pool_images=np.zeros_like(_arrays(path)["pool_images"]))
    reopened = prepare_dataset(cfg, storage, source)
    with pytest.raises(DataError, match="pool_images that do not match the digest"):
        assert reopened.pool_images.size


@pytest.mark.parametrize("case", ["labels_out_of_range", "negative_labels", "float_labels", "wrong_image_shape",
                                  "meta_of_100000_brackets", "meta_empty_list", "meta_empty_object",
                                  "labels_longer_than_images", "object_labels"])
def test_prepared_copy_with_hostile_arrays_is_a_data_error_naming_the_file(prepared, case):
    cfg, storage, source, data, path = prepared
    arrays = _arrays(path)
    n_pool = len(arrays["pool_labels"])
    change = {
        "labels_out_of_range": {"pool_labels": np.full(n_pool, 7, np.int32)},
        "negative_labels": {"pool_labels": np.full(n_pool, -1, np.int32)},
        "float_labels": {"pool_labels": arrays["pool_labels"].astype(np.float64) + 0.5},
        "wrong_image_shape": {"test_images": np.zeros((len(arrays["test_labels"]), SIZE + 1, SIZE, 3), np.uint8)},
        "meta_of_100000_brackets": {"meta": _meta("[" * 100000)},
        "meta_empty_list": {"meta": _meta("[]")},
        "meta_empty_object": {"meta": _meta("{}")},
        "labels_longer_than_images": {"pool_labels": np.zeros(n_pool + 5, np.int32)},
        "object_labels": {"pool_labels": np.array(["a"] * n_pool)},
    }[case]
    _rewrite(path, **change)
    with pytest.raises(DataError) as err:
        assert prepare_dataset(cfg, storage, source).test_images.size
    assert prepared_key(cfg, source) in str(err.value) and "samplesize prepare" in str(err.value)


def test_prepared_copy_with_a_hostile_meta_exits_65_without_a_traceback(prepared):
    cfg, storage, source, data, path = prepared
    _rewrite(path, meta=_meta("[" * 100000))
    proc = run_cli("prepare", "--set", f"dataset.source={cfg.dataset.source}", "--set", f"output={storage.uri}",
                   "--set", f"dataset.image_size={SIZE}")
    assert proc.returncode == 65, proc.stderr
    assert "Traceback" not in proc.stderr and prepared_key(cfg, source) in proc.stderr


@pytest.mark.parametrize("facts", [
    '{"pool_size": 1' + "0" * 300 + ', "class_count": 3}',
    '{"pool_size": "lots", "class_count": 3}',
    '{"pool_size": true, "class_count": 3}',
    '{"pool_size": 12.5, "class_count": 3}',
    '{"pool_size": 12, "class_count": -3}',
    "[" * 100000,
    "[]",
    "not json",
])
def test_hostile_pool_facts_are_a_data_error_naming_the_file(prepared, facts):
    cfg, storage, source, data, path = prepared
    facts_path = path.with_suffix(".json")
    facts_path.write_text(facts)
    with pytest.raises(DataError, match=f"{pool_facts_key(prepared_key(cfg, source))} is unreadable"):
        read_pool_facts(cfg, storage, source)


def test_pool_facts_that_disagree_with_the_copy_are_refused(prepared):
    cfg, storage, source, data, path = prepared
    facts_path = path.with_suffix(".json")
    facts = json.loads(facts_path.read_text())
    facts["pool_size"] += 1
    facts_path.write_text(json.dumps(facts))
    with pytest.raises(DataError, match="its facts say"):
        prepare_dataset(cfg, storage, source)


def test_oversized_pool_facts_are_refused_from_their_size_without_being_read(prepared, monkeypatch):
    cfg, storage, source, data, path = prepared
    with open(path.with_suffix(".json"), "wb") as f:
        f.truncate(6 * 1024**3)  # sparse
    monkeypatch.setattr(LocalStorage, "read", lambda self, key: pytest.fail(f"{key} read whole"))
    with pytest.raises(DataError, match="over 65,536"):
        read_pool_facts(cfg, storage, source)


def test_plan_with_hostile_pool_facts_exits_65_and_prints_no_300_digit_size(prepared):
    cfg, storage, source, data, path = prepared
    path.with_suffix(".json").write_text('{"pool_size": 1' + "0" * 300 + ', "class_count": 3}')
    proc = run_cli("plan", "--set", f"dataset.source={cfg.dataset.source}", "--set", f"output={storage.uri}",
                   "--set", f"dataset.image_size={SIZE}")
    assert proc.returncode == 65, proc.stdout + proc.stderr
    assert "0" * 100 not in proc.stdout + proc.stderr


def test_prepared_copy_digest_is_recorded_in_the_facts_and_carried_by_the_dataset(prepared):
    cfg, storage, source, data, path = prepared
    facts = json.loads(path.with_suffix(".json").read_text())
    reopened = prepare_dataset(cfg, storage, source)
    assert data.digest == reopened.digest == facts["digest"] and len(facts["digest"]) == 64


def test_result_carries_the_dataset_digest_and_reads_back(tmp_path):
    from types import SimpleNamespace

    from samplesize.plan import trial_spec
    from samplesize.results import build_result, load_results, trial_identity, write_result
    from samplesize.sampling import sample_size

    cfg = load_config(overrides=[f"output={tmp_path}"])
    spec = trial_spec(cfg, 3)
    names = [str(c) for c in range(10)]
    data = SimpleNamespace(pool_size=1000, test_labels=np.zeros(250), key="cache/dataset-x.npz", class_names=names,
                           digest="ab" * 32)
    size = sample_size(spec.split, spec.seed, data.pool_size, len(names), cfg.sampling)
    result = build_result(
        trial_identity(cfg, spec), data, sample_size=size, train_size=size - size // 5, validation_size=size // 5,
        metrics={"accuracy": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0, "auc": 1.0,
                 "per_class_recall": {n: 1.0 for n in names}},
        confusion=[[25 if i == j else 0 for j in range(10)] for i in range(10)], epochs={"head": 3, "fine_tune": 0},
        clock=(0.0, 1.0, 3.5, 4.0), feature_cache="off: test", accelerator="CPU",
        runtime={"tensorflow_version": "2.x", "gpu_model": None},
    )
    assert result.to_json()["dataset_digest"] == "ab" * 32
    storage = LocalStorage(tmp_path)
    assert write_result(storage, result)
    loaded = load_results(cfg, storage)
    assert loaded.problems == [] and loaded.trials[3].dataset_digest == "ab" * 32


@pytest.mark.parametrize("where", ["decoding", "writing the copy"])
def test_sigterm_during_prepare_leaves_no_temp_file(tmp_path, monkeypatch, where):
    """SIGTERM (the CLI raises TransientError from its handler), an exception or a full disk mid-build: no
    `cache/.dataset-….part` and no staging file is left behind."""
    import os
    import tempfile

    from samplesize.data import sources
    from samplesize.errors import TransientError

    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=6)
    cfg = load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}"])
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    if where == "decoding":
        real = sources.decode_image
        calls = []

        def decode(data, size, **options):
            calls.append(1)
            if len(calls) == 5:
                raise TransientError("stopped by SIGTERM")
            return real(data, size, **options)

        monkeypatch.setattr(sources, "decode_image", decode)
    else:
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(TransientError("stopped by SIGTERM"))
                            if os.fstat(fd).st_size > 2_000 else real_fsync(fd))
    with pytest.raises(TransientError):
        prepare_dataset(cfg, LocalStorage(tmp_path / "out"), LocalStorage(root))
    cache = tmp_path / "out" / "cache"
    left = [p.name for p in cache.iterdir()] if cache.exists() else []
    assert not [n for n in left if n.endswith((".part", ".npz"))], left
    assert list(scratch.iterdir()) == []
