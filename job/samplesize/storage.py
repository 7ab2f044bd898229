"""Where results, caches and reports live: a small interface and its backends.

Keys are relative, '/'-separated paths under the storage root. `open_storage`
picks the backend from the URI: `gs://bucket/prefix` is Google Cloud Storage
(see `storage_gcs`), anything else a local folder.

The one write that must never overwrite is `write_once`: a finished trial's
result or a shared cache. Locally it writes a temp file and links it into
place (atomic, refuses an existing name); on GCS it is a create-only upload.
"""

from __future__ import annotations

import errno
import mmap
import os
import posixpath
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import DataError, AccessError


class Storage(Protocol):
    uri: str

    def write_once(self, key: str, data: bytes) -> bool:
        """Create `key` with `data`; return False, writing nothing, if it exists."""

    def write_once_from_file(self, key: str, path: str) -> bool:
        """`write_once` of a local file's bytes, streamed: for objects too large to hold in memory."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace `key` atomically (reports)."""

    def read(self, key: str) -> bytes:
        """Return the bytes of `key`; raise FileNotFoundError if absent."""

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


class LocalStorage:
    """A local folder. Writes go to a temp file in the same folder, then into place."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _temp_file(self, path: Path, data: bytes) -> str:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from a web server or other users
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if "tmp" in locals():
                Path(tmp).unlink(missing_ok=True)
            raise _local_error(path, exc) from None
        return tmp

    def write_once(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if self.exists(key):
            return False
        tmp = self._temp_file(path, data)
        try:
            os.link(tmp, path)  # atomic; fails if another writer got there first
            return True
        except FileExistsError:
            if not path.is_file():
                raise _not_a_file(path) from None
            return False
        except OSError as exc:
            raise _local_error(path, exc) from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def write_once_from_file(self, key: str, source: str) -> bool:
        if os.path.getsize(source) == 0:
            return self.write_once(key, b"")
        # A read-only memory map is bytes-like: written out page by page, never held in memory.
        with open(source, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return self.write_once(key, data)

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp_file(path, data)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _local_error(path, exc) from None

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open_read(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        path = self._path(key)
        if path.is_file():
            return True
        if os.path.lexists(path) and not path.is_file():  # re-checked: another writer may have just linked it
            raise _not_a_file(path)  # never "already done": the result would be thrown away on every run
        return False

    def check_writable(self, prefix: str) -> None:
        probe = self._path(f"{prefix.rstrip('/')}/.write-probe")
        Path(self._temp_file(probe, b"")).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        folder = prefix.rstrip("/")
        base = self.root / check_key(folder) if folder else self.root
        if not base.is_dir():
            return []
        keys = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.endswith(".part"):
                keys.append(p.relative_to(self.root).as_posix())
        return sorted(keys)

    def list_stats(self, prefix: str = "") -> list[tuple[str, int, str]]:
        out = []
        for key in self.list(prefix):
            try:
                st = (self.root / key).stat()
            except FileNotFoundError:
                continue  # removed since listed
            out.append((key, st.st_size, str(st.st_mtime_ns)))
        return out


def _not_a_file(path: Path) -> DataError:
    return DataError(f"{path} exists but is not a regular file (a folder?); remove it, then run again")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _local_error(path: Path, exc: OSError) -> Exception:
    """A user-facing error for a failed local write; nothing already written is touched."""
    if exc.errno == errno.ENOSPC:
        return AccessError(
            f"cannot write {path}: the disk is full; free space or choose another output. Results already written are intact."
        )
    return AccessError(
        f"cannot write {path}: {exc.strerror or exc}; make the output folder writable or choose another output. "
        f"Results already written are intact."
    )


def open_storage(uri: str) -> Storage:
    """A Storage for `uri`: gs://bucket/prefix, or a local folder path."""
    if uri.startswith("gs://"):
        from .storage_gcs import GcsStorage  # imported lazily: the client is slow to import

        return GcsStorage(uri)
    return LocalStorage(uri)
