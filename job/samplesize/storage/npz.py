"""Create-only `.npz` objects in storage: the prepared dataset and the feature cache share one format.

Each object holds named arrays and a `meta` array: JSON as uint8 bytes.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import zipfile

import numpy as np

from .base import Storage, check_key
from .local import LocalStorage

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
        before = _part_files(storage, key)
        try:
            return storage.write_once_from_file(key, path)
        except BaseException:  # SIGTERM (TransientError from the CLI's handler), a full disk, any error
            _remove_new_part_files(storage, key, before)
            raise


def _part_files(storage: Storage, key: str) -> set[str]:
    """The temp files a local write of `key` stages beside it (`.<name>.<random>.part`); none on GCS."""
    if not isinstance(storage, LocalStorage):
        return set()
    folder = (storage.root / check_key(key)).parent
    name = key.rpartition("/")[2]
    return {str(p) for p in folder.glob(f".{glob.escape(name)}.*.part")} if folder.is_dir() else set()


def _remove_new_part_files(storage: Storage, key: str, before: set[str]) -> None:
    """Remove the temp files this write left: an interrupted 1.4 GB `.dataset-….part` would stay for ever.

    Only those that appeared during the write: a lease lets one process build an object at a time.
    """
    for path in _part_files(storage, key) - before:
        try:
            os.unlink(path)
        except OSError:
            pass
