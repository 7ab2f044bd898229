"""bench/real_curves/build.py: its later image sets, glyphs rendered from matplotlib's fonts and patches of
bundled photos (shape, range, classes, a disjoint fixed test split, determinism; no network), and its cache of
end-to-end CNN curves under their training protocol."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("real_curves_build", ROOT / "bench" / "real_curves" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_glyphs_are_14x14_in_range_balanced_and_deterministic(build):
    x, y = build._glyphs("OQ7", 20)
    assert x.shape == (60, 14, 14) and 0 <= x.min() and x.max() <= 1
    assert np.bincount(y).tolist() == [20, 20, 20]
    assert x.reshape(60, -1).max(axis=1).min() > 0.3  # every glyph has ink
    x2, _ = build._glyphs("OQ7", 20)
    assert np.array_equal(x, x2)
    assert len(build._glyph_fonts("ABC")) == len(build.GLYPH_FONTS)


def test_photo_patches_have_a_balanced_fixed_test_split(build):
    pytest.importorskip("skimage")
    x, y, test = build._photos("photos_textures")
    assert x.shape == (3600, 14, 14) and 0 <= x.min() and x.max() <= 1
    assert np.bincount(y).tolist() == [1200] * 3 and np.bincount(y[test]).tolist() == [300] * 3
    assert np.array_equal(build._photos("photos_textures")[0], x)


def test_new_tasks_count_as_their_image_set(build):
    for task in build.MORE_RAW_TASKS + build.MORE_FROZEN_TASKS:
        assert build.dataset_of(task) == task.split("_")[0]
    assert build.dataset_of("digits_frozen_3v8") == "digits"


def test_a_new_cnn_protocol_rebuilds_the_cnn_curves_and_keeps_the_others(build, tmp_path):
    def curve(learner, **extra):
        return {"task": "digits", "dataset": "digits", "learner": learner, "kind": "image", "sizes": [16],
                "scores": [[0.5]], **extra}

    old_cnn, tree = curve("cnn_w8_px8"), curve("tree")  # a CNN curve from before protocols were recorded
    out = str(tmp_path / "corpus.json.gz")
    with build.gzip.open(out, "wt") as fh:
        build.json.dump({"curves": [old_cnn, tree]}, fh)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert build._seed_cache(cache, out) == 2
    # the tree curve is cached as built; the CNN curve is kept under its old protocol's name, so it is rebuilt
    assert build._path(cache, "digits", "tree").exists()
    assert not build._path(cache, "digits", "cnn_w8_px8").exists()
    assert build._path(cache, "digits", "cnn_w8_px8", "budget200").exists()
    assert [c["learner"] for c in build.consolidate(cache, out)["curves"]] == ["tree"]
    new_cnn = curve("cnn_w8_px8", protocol=build.CNN_PROTOCOL)
    build._path(cache, "digits", "cnn_w8_px8").write_text(build.json.dumps(new_cnn))
    assert sorted(c["learner"] for c in build.consolidate(cache, out)["curves"]) == ["cnn_w8_px8", "tree"]
    assert build._seed_cache(cache, out) == 0  # a rerun seeds nothing twice


def test_a_cnn_curve_trains_every_size_the_same_epochs(build, monkeypatch):
    pytest.importorskip("keras")
    # the steps then grow with the sample (the first protocol's budget stopped growing at 128 images)
    assert [math.ceil(n * build.budget_epochs(n, 60) / 32) for n in (128, 181, 256, 362)] == [200, 187, 200, 181]
    assert build.budget_epochs(2500, 15) == 15  # the committed backbone's recipe, unchanged
    trained = []

    def train(model, x, y, seed, epochs):
        model = build_train(model, x, y, seed, epochs)
        trained.append((len(x), epochs, int(model.optimizer.iterations.numpy())))
        return model

    build_train = build._train
    monkeypatch.setattr(build, "_train", train)
    rng = np.random.default_rng(0)
    x_te, y_te = rng.random((10, 8, 8)), rng.integers(0, 2, 10)
    for n in (16, 45):
        build._cnn_score("cnn_w4_px8", rng.random((n, 8, 8)), rng.integers(0, 2, n), x_te, y_te, 2, seed=0)
    assert trained == [(n, build.CNN_EPOCHS, math.ceil(n * build.CNN_EPOCHS / 32)) for n in (16, 45)]
