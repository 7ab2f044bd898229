"""Model building: backbones by name, weights from files, clear errors for bad model settings."""

import keras
import numpy as np
import pytest

from samplesize.config import load_config
from samplesize.errors import ConfigError, DataError
from samplesize.training.models import build_classifier, unfreeze_from


def _model_cfg(*sets):
    return load_config(overrides=["dataset.image_size=32", *sets]).model


def test_small_cnn_maps_pixels_to_class_probabilities():
    clf = build_classifier(_model_cfg(), 32, n_classes=4)
    probs = clf.model.predict(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"), verbose=0)
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert not clf.two_phase


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_b0", "resnet50"])
def test_keras_applications_backbones_build_with_their_preprocessing(backbone):
    clf = build_classifier(_model_cfg(f"model.backbone={backbone}"), 32, n_classes=3)
    assert clf.two_phase and clf.base is not None
    assert clf.model.get_layer("preprocess") is not None
    assert clf.model.output_shape == (None, 3)


def test_unfreezing_keeps_batchnorm_frozen_and_earlier_blocks_frozen():
    clf = build_classifier(_model_cfg("model.backbone=mobilenet_v2"), 32, n_classes=3)
    unfreeze_from(clf, "block_10")
    names = [layer.name for layer in clf.base.layers]
    start = next(i for i, n in enumerate(names) if n.startswith("block_10_"))
    for i, layer in enumerate(clf.base.layers):
        if isinstance(layer, keras.layers.BatchNormalization) or i < start:
            assert not layer.trainable, layer.name
    assert clf.base.get_layer("block_10_expand").trainable


def test_unknown_fine_tune_block_lists_the_valid_names():
    clf = build_classifier(_model_cfg("model.backbone=mobilenet_v2"), 32, n_classes=3)
    with pytest.raises(ConfigError) as err:
        unfreeze_from(clf, "block_99")
    assert "block_99" in str(err.value) and "block_10" in str(err.value)


def test_weights_file_is_loaded_into_the_backbone(tmp_path):
    donor = build_classifier(_model_cfg("model.backbone=mobilenet_v2"), 32, n_classes=3)
    path = str(tmp_path / "mobilenet_v2_notop.weights.h5")
    donor.base.save_weights(path)
    clf = build_classifier(_model_cfg("model.backbone=mobilenet_v2", f"model.weights={path}"), 32, n_classes=3)
    for a, b in zip(donor.base.get_weights(), clf.base.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="nope.h5 does not exist"):
        build_classifier(_model_cfg("model.backbone=mobilenet_v2", f"model.weights={tmp_path}/nope.h5"), 32, 3)


def test_weights_file_for_another_backbone_is_a_clear_error(tmp_path):
    donor = build_classifier(_model_cfg("model.backbone=mobilenet_v2"), 32, n_classes=3)
    path = str(tmp_path / "mobilenet.weights.h5")
    donor.base.save_weights(path)
    with pytest.raises(DataError, match="does not fit efficientnet_b0"):
        build_classifier(_model_cfg("model.backbone=efficientnet_b0", f"model.weights={path}"), 32, 3)


class _FlakyDownload:
    """keras.applications.MobileNetV2 whose ImageNet download fails `failures` times, as offline keras does."""

    def __init__(self, failures):
        self.failures, self.calls = failures, 0
        self.real = keras.applications.MobileNetV2

    def __call__(self, include_top, weights, input_shape):
        assert weights == "imagenet"
        self.calls += 1
        if self.calls <= self.failures:
            # What keras.utils.get_file raises when the weights URL cannot be fetched.
            raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                            "Temporary failure in name resolution")
        return self.real(include_top=include_top, weights=None, input_shape=input_shape)  # never downloads


@pytest.fixture
def flaky_imagenet(monkeypatch):
    from samplesize.training import models

    monkeypatch.setattr(models, "WEIGHTS_RETRY_WAIT_S", 0.0)

    def install(failures):
        fake = _FlakyDownload(failures)
        monkeypatch.setattr(keras.applications, "MobileNetV2", fake)
        return fake

    return install


def test_imagenet_download_is_retried_in_process_until_it_succeeds(flaky_imagenet):
    from samplesize.training.models import WEIGHTS_DOWNLOAD_ATTEMPTS

    fake = flaky_imagenet(WEIGHTS_DOWNLOAD_ATTEMPTS - 1)
    clf = build_classifier(_model_cfg("model.backbone=mobilenet_v2", "model.weights=imagenet"), 32, n_classes=3)
    assert fake.calls == WEIGHTS_DOWNLOAD_ATTEMPTS
    assert clf.weights_identity == "imagenet"


def test_imagenet_download_that_keeps_failing_exits_transient_not_data(flaky_imagenet):
    from samplesize.errors import EXIT_TRANSIENT, TransientError
    from samplesize.training.models import WEIGHTS_DOWNLOAD_ATTEMPTS

    fake = flaky_imagenet(100)
    with pytest.raises(TransientError) as failed:
        build_classifier(_model_cfg("model.backbone=mobilenet_v2", "model.weights=imagenet"), 32, n_classes=3)
    assert failed.value.exit_code == EXIT_TRANSIENT
    assert fake.calls == WEIGHTS_DOWNLOAD_ATTEMPTS  # bounded
    assert "mobilenet_v2" in str(failed.value) and "model.weights" in str(failed.value)
    assert "path or gs:// URI" in str(failed.value)  # the way out on an air-gapped cluster


@pytest.mark.parametrize("weights", ["missing.weights.h5", "gs://bucket/weights.h5", "present.weights.h5"])
def test_weights_file_for_small_cnn_is_refused_as_it_cannot_load_one(tmp_path, weights):
    """small_cnn trains from scratch: a weights path was silently ignored (exit 0) while the run facts named it."""
    if not weights.startswith("gs://"):
        weights = str(tmp_path / weights)
        if "present" in weights:
            (tmp_path / "present.weights.h5").write_bytes(b"weights")
    with pytest.raises(ConfigError, match="small_cnn trains from scratch and cannot load weights"):
        build_classifier(_model_cfg("model.backbone=small_cnn", f"model.weights={weights}"), 32, 3)


def test_weights_file_for_small_cnn_makes_the_trial_exit_64(tmp_path):
    from conftest import run_cli, tiny_sweep_sets

    proc = run_cli("trial", "--index", "0", *tiny_sweep_sets("model.backbone=small_cnn",
                                                              f"model.weights={tmp_path}/nope.h5", f"output={tmp_path}/out"))
    assert proc.returncode == 64, proc.stderr
    assert "model.weights" in proc.stderr and not (tmp_path / "out" / "trials").exists()


@pytest.mark.parametrize("weights", ["imagenet", "weights.h5"])
def test_weights_for_small_cnn_are_refused_when_the_config_loads(tmp_path, weights):
    """`plan` (which builds no model) refuses them too: the config says so before any pod starts."""
    from conftest import run_cli, tiny_sweep_sets

    proc = run_cli("plan", *tiny_sweep_sets("model.backbone=small_cnn", f"model.weights={weights}",
                                            f"output={tmp_path}/out"))
    assert proc.returncode == 64, proc.stderr
    assert "small_cnn trains from scratch and cannot load weights" in proc.stderr
