"""The frozen-feature cache is exact, refuses inexact configurations with a reason, and survives racing writers."""

import threading

import numpy as np
import pytest

from samplesize.config import load_config
from samplesize.training.phases import config_refusal

SIZE = 32
N_CLASSES = 3


def _cfg(*sets):
    return load_config(None, [f"dataset.image_size={SIZE}", "model.backbone=mobilenet_v2",
                              "model.fine_tune_from=block_10", *sets])


@pytest.mark.parametrize(
    "sets, reason",
    [
        (["training.augment=online"], "off: augment=online makes cached features inexact"),
        (["model.backbone=small_cnn", "model.fine_tune_from=null"], "off: small_cnn has no frozen backbone"),
        (["training.feature_cache='off'"], "off: training.feature_cache=off"),
    ],
)
def test_inexact_configuration_refuses_the_cache_with_a_reason(sets, reason):
    assert config_refusal(_cfg(*sets)) == reason


@pytest.mark.parametrize("augment", ["none", "static"])
def test_frozen_base_with_fixed_pool_allows_the_cache(augment):
    assert config_refusal(_cfg(f"training.augment={augment}")) is None


# ---------------------------------------------------------------- exactness (needs TensorFlow)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, SIZE, SIZE, 3), dtype=np.uint8)
    y = np.arange(40) % N_CLASSES
    x[y == 1, :, :, 0] = 250  # classes differ, so training moves the weights
    return x, y.astype(np.int32)


def _classifier(images, seed=7):  # images: uint8 pixels
    from calibrated_weights import calibrate_batchnorm
    from samplesize.training.models import build_classifier

    cfg = _cfg("model.dropout=0.3")
    clf = build_classifier(cfg.model, SIZE, N_CLASSES, backbone_seed=1, head_seed=seed)
    # Random MobileNetV2 weights shrink every activation to ~0; calibrated BatchNormalization gives real features.
    calibrate_batchnorm(clf, images)
    return clf


def _boundary(clf):
    from samplesize.training.phases import fine_tune_boundary
    from samplesize.training.models import fine_tune_start

    return fine_tune_boundary(clf.base, fine_tune_start(clf.base, "block_10"))


def _assert_close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(a).max()))


def test_cached_pooled_features_give_the_whole_networks_probabilities_and_loss(images):
    import keras

    from samplesize.training.feature_cache import extract
    from samplesize.training.phases import head_model

    x, y = images
    clf = _classifier(x)
    cache = extract(clf, None, {"x": x})
    assert np.abs(cache["x_pooled"]).max() > 1e-3 and cache["x_pooled"].std(axis=0).mean() > 1e-3  # not all ~0
    whole = clf.model.predict(x.astype("float32"), verbose=0)
    cached = head_model(clf, cache["x_pooled"].shape[1:]).predict(cache["x_pooled"], verbose=0)
    _assert_close(whole, cached)
    targets = keras.utils.to_categorical(y, N_CLASSES)
    loss = keras.losses.CategoricalCrossentropy()
    _assert_close(float(loss(targets, whole)), float(loss(targets, cached)))


def test_block_10_boundary_is_block_9_add_and_the_layers_above_reproduce_the_base(images):
    from samplesize.training.feature_cache import extract
    from samplesize.training.phases import fine_tune_model

    x, y = images
    clf = _classifier(x)
    boundary, why = _boundary(clf)
    assert boundary is not None, why
    assert boundary._keras_history.operation.name == "block_9_add"
    cache = extract(clf, boundary, {"x": x})
    whole = clf.model.predict(x.astype("float32"), verbose=0)
    cached = fine_tune_model(clf, boundary).predict(cache["x_boundary"], verbose=0)
    _assert_close(whole, cached)


def test_a_boundary_crossed_by_a_skip_connection_is_refused_with_a_reason(images):
    from samplesize.training.phases import fine_tune_boundary
    from samplesize.training.models import fine_tune_start

    clf = _classifier(images[0])
    # Starting inside block 9 leaves block_8_add (the skip) and block 9's depthwise output crossing.
    tensor, why = fine_tune_boundary(clf.base, fine_tune_start(clf.base, "block_9_project"))
    assert tensor is None and "2 tensors cross" in why and "block_8_add" in why


@pytest.mark.slow
def test_training_from_the_cache_matches_training_the_whole_network(images):
    """Both phases, same seeds: the same losses epoch by epoch, the same final probabilities."""
    from samplesize.training.feature_cache import extract
    from samplesize.training.phases import fine_tune_model, head_model
    from samplesize.training.train import PhaseInputs, train_classifier

    x, y = images
    cfg = _cfg("training.head_epochs=2", "training.fine_tune_epochs=2", "training.patience=5",
               "training.batch_size=8", "model.dropout=0.3")
    train_idx, val_idx = np.arange(0, 32), np.arange(32, 40)
    probabilities, losses = [], []
    for cached in (False, True):
        clf = _classifier(x)
        seen = []
        if cached:
            boundary, _ = _boundary(clf)
            arrays = extract(clf, boundary, {"pool": x})
            head = PhaseInputs(head_model(clf, arrays["pool_pooled"].shape[1:]), arrays["pool_pooled"], None, "pooled")
            fine = PhaseInputs(fine_tune_model(clf, boundary), arrays["pool_boundary"], None, "boundary")
        else:
            head = fine = PhaseInputs(clf.model, x, None, "pixels")
        train_classifier(clf, head, fine, training=cfg.training, fine_tune_from=cfg.model.fine_tune_from,
                         train_idx=train_idx, val_idx=val_idx, pool_labels=y, n_classes=N_CLASSES, seed=3,
                         progress=seen.append)
        losses.append([e["loss"] for e in seen])
        probabilities.append(clf.model.predict(x.astype("float32"), verbose=0))  # the full model holds the trained head
    assert len(losses[0]) == 4
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)  # progress rounds losses to 4 decimals
    _assert_close(probabilities[0], probabilities[1])


def test_concurrent_writers_leave_one_valid_cache(tmp_path):
    from types import SimpleNamespace

    from samplesize.training.feature_cache import store
    from samplesize.storage import LocalStorage

    storage = LocalStorage(tmp_path)
    data = SimpleNamespace(pool_size=5, test_labels=np.zeros(2))
    key = "cache/features-0123456789abcdef.npz"
    caches, barrier = [None] * 8, threading.Barrier(8)

    def write(i):
        arrays = {"pool_pooled": np.full((5, 4), i, np.float32), "test_pooled": np.full((2, 4), i, np.float32)}
        barrier.wait()
        caches[i] = store(storage, key, arrays, None, data)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["features-0123456789abcdef.npz"]
    winner = caches[0].pool_pooled[0, 0]
    assert all(np.array_equal(c.pool_pooled, np.full((5, 4), winner)) for c in caches)  # every trial uses the stored bytes


# ---------------------------------------------------------------- whole trials


@pytest.mark.slow
def test_trials_share_one_stored_cache_and_never_load_the_pixels(tmp_path, image_folder, monkeypatch):
    """The first trial builds the cache; later ones read it and train without the prepared pixels."""
    import samplesize.trial as trial_module
    from samplesize.storage import LocalStorage

    opened = []

    def recording(cfg, storage, source, _prepare=trial_module.prepare_dataset):
        opened.append(_prepare(cfg, storage, source))
        return opened[-1]

    monkeypatch.setattr(trial_module, "prepare_dataset", recording)
    sets = [f"dataset.source=folder:{image_folder}", "model.weights=none", "splits=[0.5]", "repetitions=2",
            "backtest_splits=[]", "training.head_epochs=1", "training.fine_tune_epochs=1", "training.batch_size=8"]
    storage = LocalStorage(tmp_path / "out")
    first = trial_module.run_trial(_cfg(*sets), 0, storage).result
    assert first["feature_cache"] == ("used: head phase from cached pooled features; "
                                      "fine-tuning from cached block_9_add activations")
    [cache_key] = [k for k in storage.list("cache") if k.startswith("cache/features-") and k.endswith(".npz")]
    stamp = (tmp_path / "out" / cache_key).stat().st_mtime_ns

    second = trial_module.run_trial(_cfg(*sets), 1, storage).result
    assert second["feature_cache"] == first["feature_cache"]
    assert (tmp_path / "out" / cache_key).stat().st_mtime_ns == stamp  # read, not rebuilt
    assert "pool_images" not in vars(opened[-1]) and "test_images" not in vars(opened[-1])

    # Without the cache the same trial trains on the pixels.
    whole = trial_module.run_trial(_cfg(*sets, "training.feature_cache='off'"), 1, LocalStorage(tmp_path / "off")).result
    assert whole["feature_cache"] == "off: training.feature_cache=off"
    assert "pool_images" in vars(opened[-1]) and "test_images" in vars(opened[-1])


# ---------------------------------------------------------------- a hostile stored cache


@pytest.mark.parametrize("shape", ["n_by_7", "flat"])
def test_feature_cache_arrays_of_the_wrong_shape_are_refused_as_not_matching_the_model(tmp_path, shape):
    """(n, 7) or (n,) pooled features at the cache's key: exit 65 "does not match", never a crash in Keras."""
    from types import SimpleNamespace

    from samplesize.errors import DataError
    from samplesize.storage import LocalStorage
    from samplesize.storage.npz import meta_array, write_npz_once
    from samplesize.training.feature_cache import feature_cache_key, load_or_build
    from samplesize.training.models import build_classifier

    cfg = _cfg("model.fine_tune_from=null")
    clf = build_classifier(cfg.model, SIZE, N_CLASSES, backbone_seed=1, head_seed=2)
    data = SimpleNamespace(key="cache/dataset-0123456789abcdef.npz", pool_size=6, test_labels=np.zeros(3))
    storage = LocalStorage(tmp_path)
    key = feature_cache_key(cfg, data.key, clf.weights_identity, None, clf.base.compute_dtype)
    make = {"n_by_7": lambda n: np.zeros((n, 7), np.float32), "flat": lambda n: np.zeros(n, np.float32)}[shape]
    write_npz_once(storage, key, {"meta": meta_array({"format": 1, "boundary_layer": None}),
                                  "pool_pooled": make(6), "test_pooled": make(3)})
    with pytest.raises(DataError, match=f"feature cache {key} does not match"):
        load_or_build(cfg, storage, data, clf)
