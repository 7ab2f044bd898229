"""bench/real_curves/build.py's later image sets: glyphs rendered from matplotlib's fonts and patches of
bundled photos (shape, range, classes, a disjoint fixed test split, determinism; no network)."""

from __future__ import annotations

import importlib.util

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
