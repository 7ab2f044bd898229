"""Hostile image folders: rare classes, 16-bit and float pixels, huge images, hidden and non-UTF-8 folders,
a folder that changes under a sweep. Each test is named after the case it guards."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import image_bytes, run_cli, write_image_folder
from samplesize.config import load_config
from samplesize.data import decode_image, prepare_dataset, scan_folder, split_test
from samplesize.errors import DataError
from samplesize.training.evaluate import score_predictions
from samplesize.storage import LocalStorage


def blank_png(width: int, height: int) -> bytes:
    """A valid grayscale PNG of zeros, built row by row so that the test itself stays small in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- a rare class and the test set


@pytest.mark.parametrize("counts", [(60, 3, 3), (20, 2), (100, 2, 2, 2)])
def test_rare_class_always_gets_a_test_image(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    names = [f"c{i}" for i in range(len(counts))]
    for seed in range(30):
        pool, test = split_test(labels, 0.2, seed, names)
        assert np.all(np.bincount(labels[test], minlength=len(counts)) >= 1), (counts, seed)
        assert np.all(np.bincount(labels[pool], minlength=len(counts)) >= 1), (counts, seed)
        assert len(test) == max(round(0.2 * len(labels)), len(counts))
        again = split_test(labels, 0.2, seed, names)
        assert np.array_equal(again[1], test)


def test_class_too_small_for_a_test_image_is_refused_with_its_count():
    labels = np.repeat(np.arange(3), [50, 4, 1])
    with pytest.raises(DataError, match=r"c2.*1 usable image"):
        split_test(labels, 0.2, 0, ["c0", "c1", "c2"])


def test_no_recall_is_reported_for_a_class_without_test_images():
    labels = np.array([0, 0, 0, 1, 1])  # class 2 has no test image
    probabilities = np.eye(3)[[0, 0, 1, 1, 1]] * 0.9 + 0.05
    metrics, confusion = score_predictions(probabilities, labels, ["a", "b", "c"])
    assert metrics["per_class_recall"]["c"] is None
    assert metrics["per_class_recall"]["a"] == pytest.approx(2 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)  # over the classes that were tested
    assert sum(confusion[2]) == 0


# ---------------------------------------------------------------- 16-bit and float pixels


def test_12_bit_gradient_in_a_16_bit_png_keeps_its_levels():
    gradient = np.arange(4096, dtype=np.uint16).reshape(64, 64)  # 12-bit data, as scanners store it
    buf = io.BytesIO()
    Image.fromarray(gradient).save(buf, format="PNG")
    out = decode_image(buf.getvalue(), 64)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    assert len(np.unique(out)) == 256  # every 8-bit level, not "three values"
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    flat = out[:, :, 0].reshape(-1).astype(int)
    assert np.all(np.diff(flat) >= 0)  # still a gradient
    assert abs(flat[2048] - 128) <= 1 and np.sum(flat == 255) <= 16  # scaled, not clipped at 255


def test_float_tiff_is_scaled_to_8_bits_not_zeroed():
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="TIFF")
    out = decode_image(buf.getvalue(), 64)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and len(np.unique(out)) > 200
    hdr = np.linspace(-5, 300, 64 * 64, dtype=np.float32).reshape(64, 64)  # not in [0, 1]: stretched
    buf = io.BytesIO()
    Image.fromarray(hdr).save(buf, format="TIFF")
    out = decode_image(buf.getvalue(), 64)
    assert out.min() == 0 and out.max() == 255


def test_float_tiff_with_nan_is_refused_with_a_reason():
    bad = np.zeros((16, 16), np.float32)
    bad[3, 3] = np.nan
    buf = io.BytesIO()
    Image.fromarray(bad).save(buf, format="TIFF")
    with pytest.raises(ValueError, match="NaN"):
        decode_image(buf.getvalue(), 16)


# ---------------------------------------------------------------- very large images


def test_decompression_bomb_image_is_skipped_and_counted(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=3)
    (root / "a" / "huge.png").write_bytes(blank_png(14_000, 14_000))
    data = scan_folder(LocalStorage(root), size=16)
    assert len(data.labels) == 6
    assert data.skipped.total == 1 and "huge.png" in data.skipped.describe() and "too large" in data.skipped.describe()


def test_large_image_is_decoded_at_reduced_size_with_bounded_memory(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(blank_png(12_000, 12_000))
    code = (
        "import resource, sys\n"
        "from samplesize.data import decode_image\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = decode_image(data, 32)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(out.shape, (after - before) // 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    shape, grown_mb = proc.stdout.rsplit(" ", 1)
    assert shape.strip() == "(32, 32, 3)"
    # The decoded 8-bit plane alone is 144 MB; an RGB copy and an array copy of it (the old way) pass 1 GB.
    assert int(grown_mb) < 400, proc.stdout


def test_large_jpeg_is_decoded_at_reduced_scale():
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (4000, 4000, 3), dtype=np.uint8))
    buf = io.BytesIO()
    big.save(buf, format="JPEG")
    from samplesize.data.sources import _open_reduced

    with Image.open(io.BytesIO(buf.getvalue())) as img:
        small = _open_reduced(img, 32)
        assert max(small.size) <= 4000 // 8 * 2  # the decoder's 1/8 scale (draft), not a full decode



# ---------------------------------------------------------------- hidden and non-UTF-8 folders


def test_hidden_folders_are_skipped_at_every_level_and_reported(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=4)
    rng = np.random.default_rng(3)
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "x.png").write_bytes(image_bytes(rng))
    (root / "a" / ".thumbs").mkdir()
    for i in range(3):
        (root / "a" / ".thumbs" / f"t{i}.png").write_bytes(image_bytes(rng))
    data = scan_folder(LocalStorage(root), size=16)
    assert data.class_names == ["a", "b"] and len(data.labels) == 8
    assert data.skipped.counts == {"inside a hidden folder": 4}
    proc = run_cli("prepare", "--set", f"dataset.source=folder:{root}", "--set", f"output={tmp_path}/out")
    assert proc.returncode == 0, proc.stderr
    assert "4 inside a hidden folder" in proc.stdout


def test_non_utf8_class_folder_name_is_decoded_safely(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("plain",), per_class=4)
    odd = os.fsencode(str(root)) + b"/caf\xe9"
    os.mkdir(odd)
    rng = np.random.default_rng(4)
    for i in range(4):
        with open(odd + f"/{i}.png".encode(), "wb") as f:
            f.write(image_bytes(rng, tint=1))
    data = scan_folder(LocalStorage(root), size=16)
    assert data.class_names == ["caf\\xe9", "plain"]
    for name in data.class_names:
        name.encode("utf-8")  # printable, JSON-safe and drawable: no lone surrogate left


# ---------------------------------------------------------------- a folder that changes under a sweep


def test_prepare_sees_images_and_a_class_added_after_the_first_prepare(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=6)
    cfg = load_config(overrides=[f"dataset.source=folder:{root}", "dataset.image_size=12"])
    storage, source = LocalStorage(tmp_path / "out"), LocalStorage(root)
    first = prepare_dataset(cfg, storage, source)
    write_image_folder(root, classes=("a", "b", "c"), per_class=8, seed=9)
    second = prepare_dataset(cfg, storage, source)
    assert second.key != first.key and second.class_names == ["a", "b", "c"]
    assert second.pool_size + len(second.test_labels) == 24


def test_prepare_says_when_finished_trials_used_an_earlier_version_of_the_folder(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=6)
    out = tmp_path / "out"
    args = ("--set", f"dataset.source=folder:{root}", "--set", f"output={out}", "--set", "dataset.image_size=12")
    assert run_cli("prepare", *args).returncode == 0
    old_key = next(p.name for p in (out / "cache").iterdir())
    (out / "trials").mkdir()
    (out / "trials" / "trial-00000.json").write_text(f'{{"index": 0, "dataset_key": "cache/{old_key}"}}')
    (root / "b" / "new.png").write_bytes(image_bytes(np.random.default_rng(5), tint=1))
    proc = run_cli("prepare", *args)
    assert proc.returncode == 0, proc.stderr
    assert "1 finished trial" in proc.stderr and "changed" in proc.stderr


def test_gcs_folder_fingerprint_changes_when_an_image_is_added_or_replaced(gcs_emulator):
    from samplesize.config import DatasetConfig
    from samplesize.data import source_fingerprint
    from samplesize.commands import open_uri

    bucket = gcs_emulator.new_bucket()
    store = open_uri(f"gs://{bucket}/images")
    rng = np.random.default_rng(6)
    for i in range(3):
        store.write(f"a/{i}.png", image_bytes(rng))
    ds = DatasetConfig(source=f"folder:gs://{bucket}/images")
    first = source_fingerprint(ds, store)
    assert first == source_fingerprint(ds, store)  # listing twice: the same
    store.write("b/0.png", image_bytes(rng, tint=1))
    second = source_fingerprint(ds, store)
    store.write("a/0.png", image_bytes(rng, tint=2))  # same name, new content: a new generation
    assert len({first, second, source_fingerprint(ds, store)}) == 3
