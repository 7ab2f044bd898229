"""DICOM files written with pydicom for the tests: explicit VR little endian, with the 128-byte preamble and `DICM`."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def dicom_bytes(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", preamble: bool = True,
                transfer_syntax=ExplicitVRLittleEndian, **elements) -> bytes:
    """A DICOM file holding `pixels`: (rows, cols) grey, (frames, rows, cols) grey or (rows, cols, 3) RGB."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
    ds.SOPInstanceUID = generate_uid()
    colour = photometric in ("RGB", "YBR_FULL")
    frames = pixels.shape[0] if pixels.ndim == 3 and not colour else 1
    ds.Rows, ds.Columns = (pixels.shape[:2] if colour or pixels.ndim == 2 else pixels.shape[1:3])
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    raw = np.ascontiguousarray(pixels).tobytes()
    ds.PixelData = raw if transfer_syntax == ExplicitVRLittleEndian else encapsulate([raw])
    buf = io.BytesIO()
    private = {} if ds.file_meta.TransferSyntaxUID.is_transfer_syntax else {"implicit_vr": False, "little_endian": True}
    ds.save_as(buf, enforce_file_format=True, **private)
    data = buf.getvalue()
    return data if preamble else data[132:]  # the bare file meta and data set, as old exports write them
