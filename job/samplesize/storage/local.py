"""A local folder as a `Storage`.

`write_once` writes a temp file and links it into place: atomic, and it
refuses an existing name. `write` replaces atomically.
"""

from __future__ import annotations

import errno
import mmap
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import AccessError, DataError
from .base import TooLarge, check_key


class LocalStorage:
    """A local folder. Writes go to a temp file in the same folder, then into place."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_path(self, key: str) -> Path:
        """The path of a key to write: never through a linked folder, which would send the write outside the root.

        Reads may pass links: a dataset folder follows links that stay inside it (`data/listing.py`)."""
        path = self._path(key)
        _refuse_linked_folders(self.root, path)
        return path

    def _temp_file(self, path: Path, data: bytes) -> str:
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from a web server or other users
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as exc:
            # every exit path, SIGTERM's TransientError and Ctrl-C included: a .part file is hidden from
            # list() and would stay forever
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _local_error(path, exc) from None
            raise
        return tmp

    def write_once(self, key: str, data: bytes) -> bool:
        path = self._write_path(key)
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
        path = self._write_path(key)
        tmp = self._temp_file(path, data)
        try:
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _local_error(path, exc) from None
            raise

    def read(self, key: str, limit: int | None = None) -> bytes:
        path = self._path(key)
        if limit is None:
            return path.read_bytes()
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise TooLarge(str(path), limit, size)  # never read: a sparse 6 GB file costs nothing
            data = f.read(limit + 1)  # bounded again: the file may grow while read
        if len(data) > limit:
            raise TooLarge(str(path), limit)
        return data

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
        """Create and remove a temp file in the folder, or in its nearest existing parent: nothing is left behind."""
        target = self._write_path(f"{prefix.rstrip('/')}/.write-probe").parent
        folder = target
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent
        try:
            if not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".part")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise _local_error(target, exc) from None

    def list(self, prefix: str = "") -> list[str]:
        folder = prefix.rstrip("/")
        base = self.root / check_key(folder) if folder else self.root
        _refuse_linked_folders(self.root, base / "_")  # `trials/` itself may not be a link
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


    def non_files(self, prefix: str) -> list[str]:
        """Keys directly under the folder `prefix` that hold something other than a regular file (a folder)."""
        base = self.root / check_key(prefix.rstrip("/"))
        _refuse_linked_folders(self.root, base / "_")
        if not base.is_dir():
            return []
        return sorted(f"{prefix.rstrip('/')}/{p.name}" for p in base.iterdir()
                      if not p.is_file() and not p.name.endswith(".part"))


def _refuse_linked_folders(root: Path, path: Path) -> None:
    """Refuse a key whose folders under the root include a symbolic link (`report/` linked to /etc).

    The root itself may be a link (the user chose it); below it, a link would send
    writes outside the output.
    """
    folder = path.parent
    while folder != root and root in folder.parents:
        if folder.is_symlink():
            raise DataError(f"{folder} is a symbolic link; folders inside the output {root} must be real folders, "
                            "or writes would land outside it. Replace the link with a folder, or choose another output")
        folder = folder.parent


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
