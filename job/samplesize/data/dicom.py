"""DICOM bytes -> float32 pixels in [0, 1], the way a radiologist's viewer would show them.

`dicom_pixels` reads one file with pydicom (imported on first use) and
returns a (rows, columns) grey or (rows, columns, 3) RGB image in [0, 1],
still float, so that 12- and 16-bit detail survives the resize; the caller
quantizes to uint8 only after resizing (`sources.decode_image`). In order:

1. Read: a file is DICOM when it has the `DICM` magic at offset 128. A file
   named `.dcm` without that preamble (old ACR-NEMA style exports) is read
   with `force=True`; other files without the magic are never parsed as DICOM.
2. Refuse before decoding: no pixel data, no Rows/Columns, a frame over
   `MAX_FRAME_PIXELS`, a multi-frame file when `dicom_frames` is `refuse`, a
   transfer syntax without an installed decoder.
3. Decode only the first frame (`pixel_array(..., index=0)`).
4. Grey images: the Modality LUT (Rescale Slope/Intercept), then the first
   Window Center/Width (VOI LUT, DICOM's linear function), else a robust
   min-max (0.5th-99.5th percentile) to [0, 1]; MONOCHROME1 is inverted so
   that bright means dense, as in MONOCHROME2.
5. Colour images (RGB, YBR_* converted to RGB by pydicom): scaled by their
   Bits Stored.

Every failure raises ValueError whose message is the reason the folder scan
counts (a few fixed phrases, so that reasons group).
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np

from ..config import DICOM_FRAMES_MODES

DICOM_SUFFIXES = (".dcm", ".dicom")

# Pillow refuses images past twice its MAX_IMAGE_PIXELS (89,478,485) as decompression bombs; one DICOM frame
# gets the same bound, checked from the header before any pixel is decoded.
MAX_FRAME_PIXELS = 2 * 89_478_485

class DicomRefused(ValueError):
    """A reason this module gives (a fixed phrase); any other exception while reading a file is "corrupt"."""


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_GREY = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
_LOW_PERCENTILE, _HIGH_PERCENTILE = 0.5, 99.5


def is_dicom(data: bytes, name: str = "") -> bool:
    """True for the `DICM` magic at offset 128, or a file named `.dcm`/`.dicom` (read with `force=True`)."""
    return data[128:132] == b"DICM" or name.lower().endswith(DICOM_SUFFIXES)


def dicom_pixels(data: bytes, dicom_frames: str = "first") -> np.ndarray:
    """The first frame of a DICOM file as float32 in [0, 1]: (rows, columns) grey or (rows, columns, 3) RGB.

    Args:
        data: the file's bytes.
        dicom_frames: `first` decodes the first frame of a multi-frame file; `refuse` refuses such a file.
            Defaults to `first`.

    Returns:
        float32 pixels in [0, 1], bright meaning dense for grey images.

    Raises:
        ValueError: the file is not usable; the message is the reason, one of a few fixed phrases.

    Example:
        >>> import io, numpy as np
        >>> from pydicom.dataset import Dataset, FileMetaDataset
        >>> from pydicom.uid import ExplicitVRLittleEndian
        >>> ds = Dataset()
        >>> ds.file_meta = FileMetaDataset()
        >>> ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        >>> ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3"
        >>> ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 2, 2, 1, "MONOCHROME2"
        >>> ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        >>> ds.WindowCenter, ds.WindowWidth = 1000, 201
        >>> ds.PixelData = np.array([[800, 1000], [1100, 1200]], np.uint16).tobytes()
        >>> buf = io.BytesIO(); ds.save_as(buf, enforce_file_format=True)
        >>> dicom_pixels(buf.getvalue()).round(2).tolist()
        [[0.0, 0.5], [1.0, 1.0]]
    """
    return dicom_pixels_and_mode(data, dicom_frames)[0]


def dicom_pixels_and_mode(data: bytes, dicom_frames: str = "first") -> tuple[np.ndarray, str]:
    """`dicom_pixels`, and the file's mode as the dataset summary counts it: `DICOM MONOCHROME2 16-bit` (its
    photometric interpretation and Bits Stored, read from the header already parsed)."""
    if dicom_frames not in DICOM_FRAMES_MODES:  # a caller's bug: config checks the key
        raise AssertionError(f"dicom_frames {dicom_frames!r} is not one of {DICOM_FRAMES_MODES}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on odd but readable files; a broken one fails below
        try:
            return _decode(data, dicom_frames)
        except DicomRefused:
            raise
        except Exception:  # noqa: BLE001 - pydicom parses elements lazily: a damaged one fails where it is read
            raise DicomRefused("truncated or corrupt DICOM") from None


def _decode(data: bytes, dicom_frames: str) -> tuple[np.ndarray, str]:
    ds = _read(data)
    _refuse_before_decoding(ds, dicom_frames)
    try:
        from pydicom.pixels import pixel_array

        arr = pixel_array(ds, index=0)
    except Exception:  # noqa: BLE001 - any decoder failure on one file: short buffers, codec errors...
        raise DicomRefused("undecodable DICOM pixel data") from None
    try:
        return _to_unit(ds, arr), _mode(ds)
    except DicomRefused:
        raise
    except Exception:  # noqa: BLE001 - a Modality LUT or Bits Stored that does not fit the pixels
        raise DicomRefused("undecodable DICOM pixel data") from None


def _read(data: bytes):
    import pydicom
    from pydicom.errors import InvalidDicomError

    force = data[128:132] != b"DICM"  # is_dicom let it through by its name only
    try:
        return pydicom.dcmread(io.BytesIO(data), force=force)
    except InvalidDicomError:
        raise DicomRefused("not a readable DICOM file") from None
    except Exception:  # noqa: BLE001 - EOFError, struct.error, bad VRs... in a damaged header
        raise DicomRefused("truncated or corrupt DICOM header") from None


def _refuse_before_decoding(ds, dicom_frames: str) -> None:
    """The checks that need only the header: pixel data present, size bounded, frames, a decoder installed."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise DicomRefused("DICOM without pixel data")
    rows, columns = _count(ds, "Rows", 0), _count(ds, "Columns", 0)
    frames, samples = _count(ds, "NumberOfFrames", 1), _count(ds, "SamplesPerPixel", 1)
    if rows < 1 or columns < 1:
        raise DicomRefused("DICOM without Rows/Columns")
    if rows * columns * samples > MAX_FRAME_PIXELS:
        raise DicomRefused(f"too large (a DICOM frame over {MAX_FRAME_PIXELS} pixels)")
    if frames > 1 and dicom_frames == "refuse":
        raise DicomRefused("multi-frame DICOM (dataset.dicom_frames is refuse)")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in _GREY + _COLOUR:
        shown = photometric if re.fullmatch(r"[A-Z0-9_ ]{1,16}", photometric) else "(unreadable)"
        raise DicomRefused(f"unsupported DICOM photometric interpretation {shown}")
    _check_decoder(ds)


def _mode(ds) -> str:
    """`DICOM <photometric interpretation> <bits>-bit`; the interpretation is one `_refuse_before_decoding` let in."""
    try:
        bits = _count(ds, "BitsStored", _count(ds, "BitsAllocated", 0))
    except DicomRefused:  # an unreadable Bits Stored does not refuse a file whose pixels decoded
        bits = 0
    depth = f" {bits}-bit" if 1 <= bits <= 64 else ""
    return f"DICOM {ds.get('PhotometricInterpretation')}{depth}"


def _count(ds, keyword: str, default: int) -> int:
    """An integer element (Rows, NumberOfFrames...); `default` when absent or empty."""
    value = ds.get(keyword)
    try:
        return default if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        raise DicomRefused("truncated or corrupt DICOM header") from None


def _check_decoder(ds) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = UID(str(meta.get("TransferSyntaxUID", "")) if meta is not None else "")
    if not uid:
        return  # a forced read of a bare data set: pydicom guesses the encoding, and decoding says whether it works
    # A reason is shown and counted as it is: a UID that is not digits and dots is not quoted.
    shown = uid.name if uid.is_transfer_syntax else uid if re.fullmatch(r"[0-9.]{1,64}", uid) else "(invalid UID)"
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DicomRefused(f"unsupported DICOM transfer syntax {shown}") from None
    if not decoder.is_available:
        raise DicomRefused(f"DICOM transfer syntax {shown} needs a decoder that is not installed (see docs/configuration.md)")


def _to_unit(ds, arr: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: colour scaled by its bit depth; grey through rescale, window (or min-max), MONOCHROME1."""
    if arr.ndim == 3 and arr.shape[-1] == 3:  # pydicom converts YBR to RGB
        if np.issubdtype(arr.dtype, np.integer):
            bits = _count(ds, "BitsStored", 8)
            top = float(2**bits - 1) if 1 <= bits <= arr.dtype.itemsize * 8 else float(np.iinfo(arr.dtype).max)
            return np.clip(arr.astype(np.float32) / top, 0, 1)
        return _min_max(arr.astype(np.float32))
    if arr.ndim != 2:
        raise DicomRefused("DICOM pixels are not one grey or RGB frame")
    from pydicom.pixels import apply_rescale

    values = np.asarray(apply_rescale(arr, ds), dtype=np.float32)
    if not np.all(np.isfinite(values)):
        raise DicomRefused("DICOM image with NaN or infinite pixels")
    window = _first_window(ds)
    unit = _window(values, *window) if window else _min_max(values)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _first_window(ds) -> tuple[float, float] | None:
    """The first Window Center/Width pair; None when absent, unreadable or of no width."""
    from pydicom.multival import MultiValue

    def first(keyword: str) -> float | None:
        value = ds.get(keyword)
        try:
            return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)
        except (TypeError, ValueError, IndexError):  # absent (None), empty, or not a number
            return None

    centre, width = first("WindowCenter"), first("WindowWidth")
    if centre is None or width is None or not np.isfinite(centre) or not np.isfinite(width) or width < 1:
        return None
    return centre, width


def _window(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1, the linear VOI function, mapped to [0, 1] instead of the output bit range."""
    return np.clip((values - (centre - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)


def _min_max(values: np.ndarray) -> np.ndarray:
    """The 0.5th-99.5th percentile range to [0, 1] (one hot or dead pixel does not set the contrast)."""
    low, high = np.percentile(values, [_LOW_PERCENTILE, _HIGH_PERCENTILE])
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0)
