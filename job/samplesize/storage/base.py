"""The storage interface: keys, the `Storage` protocol, and URI joining.

Keys are relative, '/'-separated paths under the storage root. The one write
that must never overwrite is `write_once`: a finished trial's result or a
shared cache. `GcsOptions` is what the GCS backend takes from the edge.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ..errors import DataError


class Storage(Protocol):
    uri: str

    def write_once(self, key: str, data: bytes) -> bool:
        """Create `key` with `data`; return False, writing nothing, if it exists."""

    def write_once_from_file(self, key: str, path: str) -> bool:
        """`write_once` of a local file's bytes, streamed: for objects too large to hold in memory."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace `key` atomically (reports)."""

    def read(self, key: str, limit: int | None = None) -> bytes:
        """Return the bytes of `key`; raise FileNotFoundError if absent.

        With `limit`, raise `TooLarge` for an object of more than `limit` bytes, reading at most
        `limit + 1` of them: a 6 GB file dropped into the output never reaches memory whole.
        """

    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary file of `key`'s bytes, for reading large arrays piecewise; the caller closes it."""

    def exists(self, key: str) -> bool:
        """True for a stored object; raises DataError when something that is not a file holds the key."""

    def check_writable(self, prefix: str) -> None:
        """Raise AccessError now if writing under `prefix` would fail (before hours of training, not after)."""

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (recursively), sorted, relative to the root."""

    def list_stats(self, prefix: str = "") -> list[tuple[str, int, str]]:
        """(key, size in bytes, version stamp) for each key of `list`: a cheap fingerprint of the contents."""


class TooLarge(DataError):
    """An object is larger than the bound its reader set (`Storage.read(key, limit)`)."""

    def __init__(self, where: str, limit: int, size: int | None = None):
        self.limit, self.size = limit, size
        what = f"{size} bytes" if size is not None else f"over {limit} bytes"
        super().__init__(f"{where} is {what}, more than the {limit} bytes such a file may have; remove or replace it")


def check_key(key: str) -> str:
    """Refuse keys that could escape the root (`..`, absolute, empty parts)."""
    if not key or key.startswith("/") or "\\" in key:
        raise DataError(f"storage key {key!r} is not a relative '/'-separated path")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in ("", ".", ".."):
        raise DataError(f"storage key {key!r} contains an empty, '.' or '..' part; keys may not leave the output prefix")
    return posixpath.normpath(key)


def join_uri(base: str, key: str) -> str:
    return base.rstrip("/") + "/" + key


# Environment variables the command line reads into `GcsOptions` (named here because error messages cite them).
RETRY_DEADLINE_ENV = "SAMPLESIZE_GCS_RETRY_DEADLINE"
EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"
DEFAULT_RETRY_DEADLINE = 300.0  # seconds; long enough to ride out a GCS incident blip or a node's network restart


@dataclass(frozen=True)
class GcsOptions:
    """How to reach Google Cloud Storage; the command line fills it from the environment."""

    retry_deadline: float = DEFAULT_RETRY_DEADLINE  # seconds to keep retrying transient errors
    emulator_host: str | None = None  # an emulator's URL: talk to it anonymously instead of GCS
