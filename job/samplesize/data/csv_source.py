"""A `csv:` source's manifest: the rows of a labels CSV, checked, each resolved to one file of the CSV's folder.

The CSV is untrusted input, as a dataset folder is (DESIGN.md). It is read
with a size bound, parsed by the standard `csv` module, and must start with a
header row naming the configured columns (`dataset.path_column`,
`label_column` and the optional `group_column`). Fields are stripped of spaces
around them.

The allowed root is the CSV's own folder (a local folder, or the gs:// prefix
the CSV lies under): a path is relative to it, or absolute inside it (a local
path, or a `gs://` URI when the CSV is on GCS). Every file is looked up in one
listing of that folder (`listing.list_dataset`: sizes known, links followed
only inside it), so a row can never make the job read `/etc/passwd` or another
bucket.

A row that cannot be used is skipped, counted and named with its row and line
(`row 7 (line 8): scans/a.png`), as a folder's junk files are: an empty path,
label or group, a file that is not there, a path outside the allowed root, a
path given twice (the second row; two rows that give one file different
labels or groups are an error naming both lines), a row with the wrong number
of fields. What makes the whole CSV unusable (no header, a missing column,
undecodable text, too many rows or labels) is a `DataError` (exit 65).

The decoding of the files themselves is `sources.load_csv`'s: this module
reads no image.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import posixpath
import unicodedata
from dataclasses import dataclass, field

from ..config import MAX_CLASSES, DatasetConfig
from ..errors import DataError
from ..hashing import content_hash
from ..storage import LocalStorage, Storage, TooLarge
from .listing import list_dataset, refuse_name_clash, shown

MAX_CSV_BYTES = 256 * 2**20  # a million rows of 250 characters; a bigger file is refused unread
MAX_CSV_ROWS = 1_000_000  # data rows; more is not a labelled image set this package can hold in memory
MAX_PATH_CHARS = 4096  # a path field; PATH_MAX, and past a GCS object name's 1024 bytes
MAX_VALUE_CHARS = 255  # a label or group field: it names a class (a folder name's length) or a patient
OUTSIDE = "outside the allowed root, the CSV's folder"


@dataclass(frozen=True)
class ManifestRow:
    """One usable row: its place in the CSV, the file it names (a key of the CSV folder's storage), its label."""

    row: int  # the data row's number, 1 for the row after the header
    line: int  # the line of the CSV the row starts on
    key: str
    size: int  # bytes, from the listing
    stamp: str  # the listing's version stamp (modification time, or GCS generation)
    label: int  # index into `Manifest.class_names`
    group: str | None
    text_label: str  # the label as the CSV spells it

    @property
    def name(self) -> str:
        """How a message names the row: `row 7 (line 8): scans/a.png`."""
        return f"row {self.row} (line {self.line}): {self.key}"


@dataclass
class Manifest:
    """What a labels CSV lists: its usable rows in file order, the class names, and the rows skipped."""

    rows: list[ManifestRow]
    class_names: list[str]  # sorted, NFC: the label of every well-formed row, its file usable or not
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row name, reason)
    csv_digest: str = ""  # SHA-256 of the CSV's bytes


def csv_location(location: str) -> tuple[str, str]:
    """(the CSV's folder, its file name) of `csv:<location>`: the folder is the storage opened, the root allowed."""
    if location.startswith("gs://"):
        folder, _, name = location.rstrip("/").rpartition("/")
        return (folder if folder != "gs:/" else location.rstrip("/")), name
    folder, name = os.path.split(location)
    return folder or ".", name


def read_manifest(storage: Storage, ds: DatasetConfig) -> Manifest:
    """Read and check the CSV of `ds` (a `csv:` source) in `storage`, the CSV's folder (`sources.open_source`).

    Raises:
        DataError: the CSV is missing, too large, not UTF-8 or not CSV, lacks a configured column, has no
            usable row, or its labels are too many or disagree for one file.
    """
    where = shown(ds.location, 1000)
    listing = list_dataset(storage)
    files = {key: (size, stamp) for key, size, stamp in listing.files}
    refused = dict(listing.refused)
    data = _read_csv(storage, csv_location(ds.location)[1], files, refused, where)
    table = _Table(_parse(data, where), ds, where)
    manifest = Manifest([], [], csv_digest=hashlib.sha256(data).hexdigest())
    first: dict[str, tuple[int, str, str | None]] = {}  # key -> (line, label, group) of the row that named it
    labels: set[str] = set()  # of every well-formed row: a class whose files all fail is still a class (an empty one)
    for row, line, fields in table.rows():
        path, label, group = table.values(fields)
        problem = table.problem(fields, (path, label, group))
        if problem is None:
            labels.add(label)
        key, refusal = resolve_path(path, storage)
        name = f"row {row} (line {line})" + (f": {key or path}" if key or path else "")
        refusal = problem or refusal
        if refusal is None and key in first:
            first_line = _check_duplicate(first[key], line, label, group, where)
            refusal, name = "duplicate path", f"row {row} (line {line}, same path as line {first_line}): {key}"
        refusal = refusal or _file_refusal(key, files, refused)
        if refusal:
            manifest.skipped.append((name, refusal))
        else:
            first[key] = (line, label, group)
            manifest.rows.append(ManifestRow(row, line, key, *files[key], -1, group, label))
    manifest.class_names = _class_names(labels, where)
    index = {name: i for i, name in enumerate(manifest.class_names)}
    manifest.rows = [dataclasses.replace(r, label=index[unicodedata.normalize("NFC", r.text_label)])
                     for r in manifest.rows]
    _refuse_empty(manifest, storage, where)
    return manifest


def _file_refusal(key: str, files: dict, refused: dict[str, str]) -> str | None:
    """Why the listing refuses the file `key` (a link leaving the folder, ...), or that it is not there; None."""
    if key in refused:
        return refused[key]
    return None if key in files else "file not found"


def _refuse_empty(manifest: Manifest, storage: Storage, where: str) -> None:
    if not manifest.rows:
        reasons = "; ".join(f"{shown(n)} ({r})" for n, r in manifest.skipped[:5])
        raise DataError(f"dataset.source csv:{where}: no row names a usable file (for example: {reasons}); "
                        f"paths are relative to the CSV's folder {shown(storage.uri, 1000)}")


def manifest_fingerprint(storage: Storage, ds: DatasetConfig) -> str:
    """The CSV's bytes, its columns, and each listed file's key, size and stamp: an edited CSV gets a new copy."""
    manifest = read_manifest(storage, ds)
    return content_hash({
        "csv": manifest.csv_digest,
        "columns": [ds.path_column, ds.label_column, ds.group_column],
        "files": [[r.key, r.size, r.stamp] for r in manifest.rows],
    })


def check_csv_exists(storage: Storage, ds: DatasetConfig) -> None:
    """Raise DataError when the CSV of a `csv:` source is not there: one look, nothing parsed."""
    _, csv_key = csv_location(ds.location)
    try:
        present = storage.exists(csv_key)
    except DataError:
        present = False  # a folder or a link where the CSV should be
    if not present:
        raise DataError(f"dataset.source csv:{shown(ds.location, 1000)}: the CSV file does not exist or is not a "
                        "file; point csv: at a labels CSV with a header row")


def resolve_path(path: str, storage: Storage) -> tuple[str | None, str | None]:
    """(the storage key a CSV path names, None) or (None, why it is refused): relative, or absolute inside the root."""
    if "\\" in path:
        return None, "a backslash in the path (write '/' between folders)"
    if "://" in path:
        base = storage.uri.rstrip("/") + "/"
        if not path.startswith("gs://") or not storage.uri.startswith("gs://") or not path.startswith(base):
            return None, OUTSIDE
        relative = path[len(base):]
    elif path.startswith("/"):
        if not isinstance(storage, LocalStorage):
            return None, OUTSIDE
        relative = _local_relative(path, str(storage.root))
        if relative is None:
            return None, OUTSIDE
    else:
        relative = path
    key = posixpath.normpath(relative)
    if key in (".", "..") or key.startswith(("../", "/")):
        return None, OUTSIDE
    return key, None


def _local_relative(path: str, root: str) -> str | None:
    """`path` relative to `root` when it lies inside it, as written or once links are resolved; else None."""
    for folder, target in ((os.path.abspath(root), os.path.abspath(path)),
                           (os.path.realpath(root), os.path.realpath(path))):
        if target.startswith(folder.rstrip(os.sep) + os.sep):
            return target[len(folder.rstrip(os.sep)) + 1:].replace(os.sep, "/")
    return None


def _read_csv(storage: Storage, key: str, files: dict, refused: dict[str, str], where: str) -> bytes:
    """The CSV's bytes, at most `MAX_CSV_BYTES`; it must be a regular file of its folder's listing."""
    if key in refused:
        raise DataError(f"dataset.source csv:{where}: the CSV is {refused[key]}; point csv: at a regular file")
    if key not in files:
        raise DataError(f"dataset.source csv:{where}: the CSV file does not exist")
    try:
        return storage.read(key, limit=MAX_CSV_BYTES)
    except TooLarge:
        raise DataError(f"dataset.source csv:{where}: the CSV is over {MAX_CSV_BYTES:,} bytes; split the dataset "
                        "or shorten the CSV") from None
    except FileNotFoundError:
        raise DataError(f"dataset.source csv:{where}: the CSV file does not exist") from None


def _parse(data: bytes, where: str) -> list[tuple[int, list[str]]]:
    """(line the record starts on, its fields) for each non-blank record; a BOM (Excel's UTF-8) is dropped."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"dataset.source csv:{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                        f"{line}); save it as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records, line = [], 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                records.append((line, fields))
            if len(records) > MAX_CSV_ROWS + 1:
                raise DataError(f"dataset.source csv:{where} has more than {MAX_CSV_ROWS:,} rows; at most that "
                                "many are read")
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"dataset.source csv:{where}: line {reader.line_num} is not valid CSV ({exc}); check "
                        "its quotes") from None
    if not records:
        raise DataError(f"dataset.source csv:{where} is empty; it needs a header row (path,label) and one row "
                        "per image")
    return records


class _Table:
    """The header's column positions, and each data row's (path, label, group) with what is wrong with it."""

    def __init__(self, records: list[tuple[int, list[str]]], ds: DatasetConfig, where: str):
        header = [f.strip() for f in records[0][1]]
        self.records, self.width = records[1:], len(header)
        self.columns = [self._position(header, ds, key, where) for key in ("path_column", "label_column", "group_column")]
        if not self.records:
            raise DataError(f"dataset.source csv:{where} has a header row and no data rows")

    @staticmethod
    def _position(header: list[str], ds: DatasetConfig, key: str, where: str) -> int | None:
        column = getattr(ds, key)
        if column is None:
            return None
        if header.count(column) != 1:
            found = ", ".join(shown(h, 40) for h in header[:30]) + (", ..." if len(header) > 30 else "")
            how = "names twice" if column in header else "has no"
            raise DataError(f"dataset.source csv:{where}: the header {how} column {shown(column)} (dataset.{key}); "
                            f"the columns are: {found}. Set dataset.{key} to one of them")
        return header.index(column)

    def rows(self):
        """(row number, line, fields) of each data row."""
        for row, (line, fields) in enumerate(self.records, start=1):
            yield row, line, fields

    def values(self, fields: list[str]) -> tuple[str, str, str | None]:
        def value(position: int | None) -> str | None:
            if position is None:
                return None
            return fields[position].strip() if position < len(fields) else ""

        path, label, group = (value(p) for p in self.columns)
        return path or "", label or "", group

    def problem(self, fields: list[str], values: tuple[str, str, str | None]) -> str | None:
        """Why the row cannot be used before its file is looked up; None when it can."""
        path, label, group = values
        if len(fields) != self.width:
            return f"{len(fields)} fields where the header has {self.width}"
        for what, value, limit in (("path", path, MAX_PATH_CHARS), ("label", label, MAX_VALUE_CHARS),
                                   ("group", group, MAX_VALUE_CHARS)):
            if value == "":
                return f"empty {what}"
            if value is not None and len(value) > limit:
                return f"{what} longer than {limit} characters"
        return None


def _check_duplicate(first: tuple[int, str, str | None], line: int, label: str, group: str | None,
                     where: str) -> int:
    """The line of the first row naming a file; two rows that give it different labels or groups are an error."""
    first_line, first_label, first_group = first
    for what, mine, theirs in (("label", label, first_label), ("group", group, first_group)):
        if unicodedata.normalize("NFC", mine or "") != unicodedata.normalize("NFC", theirs or ""):
            raise DataError(f"dataset.source csv:{where}: lines {first_line} and {line} name the same file with "
                            f"different {what}s ({shown(theirs or '')} and {shown(mine or '')}); keep one of them")
    return first_line


def _class_names(raw_labels: set[str], where: str) -> list[str]:
    """Sorted NFC class names; two spellings of one name once normalised are refused, naming both."""
    if len(raw_labels) > MAX_CLASSES:
        raise DataError(f"dataset.source csv:{where} has {len(raw_labels):,} distinct labels, more than the "
                        f"{MAX_CLASSES:,} classes a dataset may have; is dataset.label_column the label column?")
    labels = sorted(raw_labels)
    names = [unicodedata.normalize("NFC", label) for label in labels]
    refuse_name_clash(labels, names, f"csv:{where}", what="labels")
    return sorted(set(names))
