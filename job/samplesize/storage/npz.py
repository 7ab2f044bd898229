"""Create-only `.npz` objects in storage: the prepared dataset and the feature cache share one format.

Each object holds named arrays and a `meta` array: JSON as uint8 bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from .base import Storage

# What np.load and NpzFile raise for a truncated, foreign or incomplete .npz.
UNREADABLE_NPZ = (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile)


def meta_array(meta: dict) -> np.ndarray:
    """`meta` as JSON bytes in a uint8 array, to store beside the data arrays."""
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def read_meta(array: np.ndarray) -> dict:
    """The dict `meta_array` stored."""
    return json.loads(array.tobytes().decode())


def write_npz_once(storage: Storage, key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Store `arrays` (in order) as one .npz at `key` unless it exists; False when another writer got there first.

    The file is staged in the temp folder and streamed up: a large object is
    never held in memory as bytes.
    """
    with tempfile.TemporaryDirectory(prefix="samplesize-npz-") as staging:
        path = os.path.join(staging, "object.npz")
        np.savez(path, **arrays)
        return storage.write_once_from_file(key, path)
