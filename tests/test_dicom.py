"""DICOM files in a folder source: decoded as a viewer shows them, 16-bit detail kept through the resize, junk skipped.

Each test writes its own files with pydicom (`dicom_files.dicom_bytes`).
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from dicom_files import dicom_bytes
from samplesize.config import load_config
from samplesize.data import decode_image, load_source, prepared_key, scan_folder
from samplesize.data.dicom import dicom_pixels, is_dicom
from samplesize.errors import ConfigError
from samplesize.storage import LocalStorage

SIZE = 8


def ramp(low: int, high: int, dtype=np.uint16) -> np.ndarray:
    """A 16x16 image whose pixels run from `low` (top-left) to `high` (bottom-right)."""
    return np.linspace(low, high, 256).reshape(16, 16).astype(dtype)


def test_monochrome1_is_inverted_so_that_bright_means_dense():
    pixels = np.array([[0, 4095], [2048, 1024]], np.uint16)
    window = {"WindowCenter": 2048, "WindowWidth": 4096}
    mono2 = dicom_pixels(dicom_bytes(pixels, **window))
    mono1 = dicom_pixels(dicom_bytes(pixels, photometric="MONOCHROME1", **window))
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)
    assert mono2[0, 0] == 0.0 and mono1[0, 0] == 1.0  # the lowest stored value is black only in MONOCHROME2
    assert mono2[0, 1] == pytest.approx(1.0, abs=1e-3) and mono1[0, 1] == pytest.approx(0.0, abs=1e-3)


def test_rescale_slope_and_intercept_are_applied_before_the_window():
    # Stored 0..2000 with slope 2 and intercept -1024 is -1024..2976 HU: a window on -1024..976 (centre -24,
    # width 2000) shows stored 0 as black, stored 1000 (976 HU) as white, stored 500 (-24 HU) as mid-grey.
    pixels = np.array([[0, 500], [1000, 2000]], np.uint16)
    unit = dicom_pixels(dicom_bytes(pixels, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=-24,
                                    WindowWidth=2000))
    np.testing.assert_allclose(unit, [[0.0, 0.50025], [1.0, 1.0]], atol=1e-4)
    # Without the rescale the same window would read stored 0 (air, -1024 HU) as mid-grey.
    plain = dicom_pixels(dicom_bytes(pixels, WindowCenter=-24, WindowWidth=2000))
    assert plain[0, 0] == pytest.approx((0 + 24.5) / 1999 + 0.5, abs=1e-5)


def test_the_first_window_is_applied_and_without_one_a_robust_min_max():
    pixels = np.array([[100, 150], [200, 300]], np.uint16)
    unit = dicom_pixels(dicom_bytes(pixels, WindowCenter=[150, 1000], WindowWidth=[101, 4000]))
    # DICOM's linear function: (x - (c - 0.5)) / (w - 1) + 0.5, clipped; the second pair is ignored.
    np.testing.assert_allclose(unit, [[0.005, 0.505], [1.0, 1.0]], atol=1e-5)
    # No window: the 0.5th-99.5th percentile range, so one hot pixel does not darken the rest.
    image = ramp(1000, 2000)
    image[0, 0] = 60000
    fallback = dicom_pixels(dicom_bytes(image))
    low, high = np.percentile(image.astype(np.float32), [0.5, 99.5])
    assert fallback[0, 0] == 1.0 and fallback[0, 1] == 0.0
    assert fallback[8, 8] == pytest.approx((image[8, 8] - low) / (high - low), abs=1e-5)
    assert 0.4 < fallback[8, 8] < 0.6  # a plain min-max would put it near 0.02


def test_sixteen_bit_detail_survives_the_resize_an_early_8_bit_cast_would_lose():
    # 1000 and 1003 in a window of width 20 are 3/19 of the grey range apart; scaled to 8 bits first (by the
    # 16-bit range, as for a PNG) both are 4/255 and the difference is gone.
    window = {"WindowCenter": 1000, "WindowWidth": 20}
    a = decode_image(dicom_bytes(np.full((32, 32), 1000, np.uint16), **window), SIZE)
    b = decode_image(dicom_bytes(np.full((32, 32), 1003, np.uint16), **window), SIZE)
    assert a.shape == b.shape == (SIZE, SIZE, 3) and a.dtype == np.uint8
    assert int(a[0, 0, 0]) == round((1000 - 999.5) / 19 * 255 + 127.5)  # 134
    assert int(b[0, 0, 0]) - int(a[0, 0, 0]) == round(3 / 19 * 255)  # 40 levels apart
    early = [np.round(np.full((32, 32), v) * 255 / 65535).astype(np.uint8) for v in (1000, 1003)]
    assert np.array_equal(early[0], early[1])


def test_a_multi_frame_file_gives_its_first_frame_or_is_refused_by_the_setting(tmp_path):
    frames = np.stack([ramp(0, 100), np.full((16, 16), 7, np.uint16), np.full((16, 16), 9, np.uint16)])
    data = dicom_bytes(frames, WindowCenter=50, WindowWidth=101)
    np.testing.assert_allclose(dicom_pixels(data), dicom_pixels(dicom_bytes(ramp(0, 100), WindowCenter=50,
                                                                            WindowWidth=101)))
    with pytest.raises(ValueError, match="multi-frame DICOM"):
        dicom_pixels(data, dicom_frames="refuse")
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "single.dcm").write_bytes(dicom_bytes(ramp(0, 100)))
    (tmp_path / "a" / "cine.dcm").write_bytes(data)
    assert len(scan_folder(LocalStorage(tmp_path), SIZE).labels) == 3
    refused = scan_folder(LocalStorage(tmp_path), SIZE, dicom_frames="refuse")
    assert refused.labels.tolist() == [0, 1]
    assert refused.skipped.counts == {"multi-frame DICOM (dataset.dicom_frames is refuse)": 1}
    assert refused.skipped.examples[0].startswith("a/cine.dcm")


def test_undecodable_dicom_files_are_skipped_counted_and_named(tmp_path):
    good = dicom_bytes(ramp(0, 4000))
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "ok.dcm").write_bytes(good)
    (tmp_path / "a" / "truncated.dcm").write_bytes(good[:-100])  # pixel data cut short
    no_pixels = Dataset()
    no_pixels.file_meta = FileMetaDataset()
    no_pixels.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    no_pixels.SOPClassUID, no_pixels.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    buf = io.BytesIO()
    no_pixels.save_as(buf, enforce_file_format=True)
    (tmp_path / "a" / "report.dcm").write_bytes(buf.getvalue())
    # A transfer syntax that names a codec the file does not hold: JPEG-LS needs pylibjpeg-libjpeg (not a
    # dependency); installed or not, its "compressed" bytes here are raw pixels and do not decode.
    (tmp_path / "b" / "jpegls.dcm").write_bytes(dicom_bytes(ramp(0, 4000), transfer_syntax=JPEGLSLossless))
    (tmp_path / "b" / "private.dcm").write_bytes(dicom_bytes(ramp(0, 4000), transfer_syntax="1.2.3.4.5"))
    (tmp_path / "b" / "cut.dcm").write_bytes(good[:300])  # cut in the header: pydicom reads what is there

    data = scan_folder(LocalStorage(tmp_path), SIZE)

    assert data.labels.tolist() == [0, 1]
    jpegls = ("undecodable DICOM pixel data" if get_decoder(JPEGLSLossless).is_available else
              "DICOM transfer syntax JPEG-LS Lossless Image Compression needs a decoder that is not installed "
              "(see docs/configuration.md)")
    expected = Counter({"undecodable DICOM pixel data": 1, "DICOM without pixel data": 2,
                        "unsupported DICOM transfer syntax 1.2.3.4.5": 1})
    expected[jpegls] += 1
    assert data.skipped.counts == dict(expected)
    named = " ".join(data.skipped.examples)
    assert all(f"{n}.dcm" in named for n in ("truncated", "report", "private", "cut"))


def test_a_folder_of_dicom_files_loads_grey_and_rgb_and_bare_dcm_files(tmp_path):
    classes = {"dense": 3000, "faint": 1000}
    for cls, value in classes.items():
        (tmp_path / cls).mkdir()
        for i in range(3):
            (tmp_path / cls / f"{i}.dcm").write_bytes(
                dicom_bytes(np.full((24, 24), value + i, np.uint16), WindowCenter=2000, WindowWidth=2001))
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[..., 0] = 255
    (tmp_path / "faint" / "colour.dcm").write_bytes(dicom_bytes(rgb, photometric="RGB"))
    # No preamble: read as DICOM because of its name; the same bytes under another name are not an image.
    bare = dicom_bytes(np.full((24, 24), 3000, np.uint16), preamble=False, WindowCenter=2000, WindowWidth=2001)
    assert not is_dicom(bare) and is_dicom(bare, "x.DCM")
    (tmp_path / "dense" / "old.DCM").write_bytes(bare)
    (tmp_path / "dense" / "old.bin").write_bytes(bare)
    cfg = load_config(overrides=[f"dataset.source=folder:{tmp_path}", f"dataset.image_size={SIZE}"])

    data = load_source(cfg.dataset, LocalStorage(tmp_path))

    assert data.class_names == ["dense", "faint"]
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert data.images.shape == (8, SIZE, SIZE, 3) and data.images.dtype == np.uint8
    assert data.images[:3, 0, 0, 0].tolist() == [255, 255, 255]  # 3000.. above the window
    assert data.images[3, 0, 0].tolist() == [255, 255, 255]  # old.DCM
    assert data.images[4:7, 0, 0, 0].tolist() == [0, 0, 0]  # 1000.. below it
    assert data.images[7, 0, 0].tolist() == [255, 0, 0]  # colour.dcm, sorted after 0-2.dcm
    assert data.skipped.counts == {"not a readable image": 1}
    assert data.skipped.examples[0].startswith("dense/old.bin")
    assert data.formats == [(24, 24, "DICOM MONOCHROME2 16-bit")] * 7 + [(24, 24, "DICOM RGB 8-bit")]


def test_a_dicom_file_s_source_format_is_its_columns_rows_and_photometric_bits():
    formats = []
    wide = dicom_bytes(np.zeros((24, 40), np.uint16), photometric="MONOCHROME1", BitsStored=12, HighBit=11)
    decode_image(wide, SIZE, formats=formats)
    assert formats == [(40, 24, "DICOM MONOCHROME1 12-bit")]


def test_dicom_frames_is_validated_and_enters_the_prepared_key_only_when_set(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.dicom_frames: 'all' is not allowed; choose one of: first, refuse"):
        load_config(overrides=["dataset.dicom_frames=all"])
    default = load_config()
    assert default.dataset.dicom_frames == "first"
    refuse = load_config(overrides=["dataset.dicom_frames=refuse"])
    assert prepared_key(refuse) != prepared_key(default)
    assert refuse.trial_hash() != default.trial_hash()
    # The demo's copy and trials keep the key and hash they had before the setting existed (main at e4ae9fd).
    assert prepared_key(default) == "cache/dataset-e22c82f08d311a00.npz"
    assert default.trial_hash() == "ad998dc1addceacc"


def test_a_seeded_fuzz_of_dicom_files_decodes_each_or_refuses_it_with_a_fixed_reason():
    rng = np.random.default_rng(20)
    seeds = [dicom_bytes(ramp(0, 4000), WindowCenter=2000, WindowWidth=4001, RescaleSlope=1, RescaleIntercept=0),
             dicom_bytes(np.stack([ramp(0, 9), ramp(5, 90)])),
             dicom_bytes(np.zeros((4, 4, 3), np.uint8), photometric="RGB")]
    reasons = set()
    for i in range(600):
        data = bytearray(seeds[i % len(seeds)])
        for at in rng.integers(128, len(data), size=int(rng.integers(1, 6))):
            data[at] = int(rng.integers(0, 256))
        if i % 7 == 0:
            data = data[: int(rng.integers(132, len(data)))]
        try:
            image = decode_image(bytes(data), SIZE, name="x.dcm")
        except ValueError as exc:
            reasons.add(str(exc))
        else:
            assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    # Reasons group files: a few fixed phrases, none carrying a parser's message.
    assert reasons and all(r.isprintable() and len(r) < 120 for r in reasons), reasons
    assert len(reasons) <= 12, reasons


def test_a_frame_past_the_pixel_bound_is_refused_from_its_header_before_decoding():
    from samplesize.data.dicom import MAX_FRAME_PIXELS

    data = dicom_bytes(np.zeros((2, 2), np.uint16), Rows=20_000, Columns=20_000)  # 4e8 pixels declared, 8 bytes held
    assert 20_000 * 20_000 > MAX_FRAME_PIXELS
    with pytest.raises(ValueError, match=rf"^too large \(a DICOM frame over {MAX_FRAME_PIXELS} pixels\)$"):
        decode_image(data, SIZE)
