"""The files of a dataset folder: one listing with sizes, links followed only inside the folder, odd names set aside.

A dataset folder is untrusted input (DESIGN.md): anyone who can write to it
may drop a link to `/etc/hostname`, a link loop, a FIFO, a 6 GB sparse file
or a name no storage key can hold. The listing decides what may be read:

- a link (to a file or a class folder) is followed when its target lies
  inside the dataset folder; a link leaving it, a broken link and a link to a
  folder above it (a loop) are set aside with that reason, never read;
- anything that is not a regular file or a folder (a FIFO, a socket, a
  device) is set aside: reading it could block for ever;
- a name holding a backslash cannot be a storage key: set aside, named.

Every file comes with its size, so that an oversized one is refused from the
listing, before any byte of it is read. `shown` is how a file name appears
in a message: one line, escaped, cut.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import BinaryIO

from ..errors import DataError
from ..storage import LocalStorage, Storage
from ..text import CUT, safe_name, terminal_safe

MAX_DEPTH = 64  # folder levels below the dataset root; deeper is a loop or a trap, never a dataset
SHOWN_CHARS = CUT  # a file name quoted in a message is cut to this, with its length (as every quoted value)

_LINE_BREAKS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def shown(name: str, limit: int = SHOWN_CHARS) -> str:
    """`name` as a message quotes it: undecodable bytes, controls, line breaks and bidi marks escaped, then cut.

    A file named `x\\nprepared cache/...` cannot forge an output line, nor U+202E reverse the rest of one.
    """
    text = terminal_safe(safe_name(name))  # controls and bidi marks, as every terminal line has them
    text = "".join(_LINE_BREAKS.get(ch, ch) for ch in text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@dataclass
class FolderListing:
    """What a dataset folder holds: readable files with their sizes, and the entries set aside with a reason."""

    files: list[tuple[str, int, str]] = field(default_factory=list)  # (key, size in bytes, version stamp), sorted
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, reason), sorted


def list_dataset(storage: Storage) -> FolderListing:
    """The listing of a dataset folder; an empty one when the folder does not exist."""
    if isinstance(storage, LocalStorage):
        return _list_local(str(storage.root))
    try:
        stats = storage.list_stats()
    except FileNotFoundError:
        stats = []
    listing = FolderListing()
    for key, size, stamp in stats:
        if "\\" in key:
            listing.refused.append((key, "a backslash in its name"))
        else:
            listing.files.append((key, size, stamp))
    return listing


def open_dataset_file(storage: Storage, key: str) -> BinaryIO:
    """Open a listed file to read; a local link is checked again (it may have been changed since the listing)."""
    if isinstance(storage, LocalStorage):
        root = os.path.realpath(storage.root)
        target = os.path.realpath(os.path.join(storage.root, key))
        if not _inside(target, root) or not os.path.isfile(target):
            raise ValueError("a link leaving the dataset folder")
    return storage.open_read(key)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _list_local(root: str) -> FolderListing:
    listing = FolderListing()
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        return listing
    _walk(root, "", real_root, (real_root,), listing)
    listing.files.sort()
    listing.refused.sort()
    return listing


def _walk(root: str, prefix: str, real_root: str, chain: tuple[str, ...], listing: FolderListing) -> None:
    """Add the entries of folder `prefix` (its real path last in `chain`, the folders above it before)."""
    try:
        entries = sorted(os.scandir(os.path.join(root, prefix) if prefix else root), key=lambda e: e.name)
    except OSError:
        listing.refused.append((prefix, "an unreadable folder"))
        return
    for entry in entries:
        key = f"{prefix}/{entry.name}" if prefix else entry.name
        reason = _entry_refusal(entry, real_root, chain)
        if reason:
            listing.refused.append((key, reason))
        elif _is_dir(entry):
            if len(chain) > MAX_DEPTH:
                listing.refused.append((key, f"more than {MAX_DEPTH} folders deep"))
            else:
                _walk(root, key, real_root, (*chain, os.path.realpath(entry.path)), listing)
        else:
            st = os.stat(entry.path)
            listing.files.append((key, st.st_size, str(st.st_mtime_ns)))


def _entry_refusal(entry: os.DirEntry, real_root: str, chain: tuple[str, ...]) -> str | None:
    """Why the entry is set aside, or None when it is a regular file or a folder to list."""
    if "\\" in entry.name:
        return "a backslash in its name"
    try:
        mode = os.stat(entry.path).st_mode  # follows a link
    except OSError:
        return "a broken link" if entry.is_symlink() else "unreadable"
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if not _inside(target, real_root):
            return "a link leaving the dataset folder"
        if stat.S_ISDIR(mode) and target in chain:
            return "a link to a folder above it"
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        return "not a regular file"
    return None


def _is_dir(entry: os.DirEntry) -> bool:
    return entry.is_dir(follow_symlinks=True)


def refuse_name_clash(folders: list[str], names: list[str], where: str, what: str = "class folders") -> None:
    """Two class folders (or CSV labels: `what`) whose names are one name once normalised (NFC `café` and NFD
    `cafe` + U+0301)."""
    seen: dict[str, str] = {}
    for folder, name in zip(folders, names):
        if name in seen:
            raise DataError(
                f"{what} {ascii(seen[name])[:SHOWN_CHARS]} and {ascii(folder)[:SHOWN_CHARS]} in {shown(where, 1000)} "
                f"are spelt differently but read as the same name {shown(name)} (Unicode normalisation, NFC); "
                "rename or merge one of them"
            )
        seen[name] = folder
