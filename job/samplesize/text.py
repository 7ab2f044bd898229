"""Make untrusted text safe to show: file and class names, result fields, anything printed.

Names come from folders and buckets that anyone may fill, and result files
from anyone who can write to the output. They may hold bytes that are not
UTF-8 (a lone surrogate in Python, which cannot be encoded, drawn or written
to JSON as UTF-8) or terminal control sequences that clear the screen,
retitle the window or fake output. Both are shown escaped, never obeyed.
A name shown on one line (`one_line`) also has its newlines and bidi controls
escaped, so it cannot forge a heading or a line, or reorder the text around it;
a value quoted in a message (`cut`) is cut to about 80 characters, with its size.
`index_ranges` keeps long lists of trial indexes in messages short.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Iterable
from typing import Any

# C0 controls except tab and newline, DEL and C1 controls (0x9b is a one-byte CSI).
# A carriage return is kept: progress lines rewrite themselves with it.
# Bidi controls reorder what a terminal, a page or a plot legend shows (U+202E turns "exe.txt" around).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]")
# In a name shown on one line, newline, carriage return, tab and the Unicode line separators too.
_NOT_IN_A_LINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}\\u2028\\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
CUT = 80  # characters of a hostile value that a message quotes


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_name(name: str) -> str:
    """A folder or file name with undecodable bytes written as `\\xNN` (`caf\\xe9`), so it encodes as UTF-8.

    Distinct names stay distinct: an escape is never produced from valid UTF-8
    text that did not already contain it.
    """
    if not _SURROGATE.search(name):
        return name
    try:
        raw = os.fsencode(name)  # surrogateescape: the original bytes
    except UnicodeEncodeError:
        raw = None
    if raw is not None:
        return raw.decode("utf-8", "backslashreplace")
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def terminal_safe(text: str) -> str:
    """`text` with control characters and lone surrogates escaped, safe to print to a terminal."""
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return _CONTROL.sub(lambda m: _escape(m.group()), text)


def one_line(name: str) -> str:
    """A file, class or result name safe to show on one line of Markdown, HTML, a terminal or a plot legend.

    Undecodable bytes as in `safe_name`; newlines, carriage returns, tabs, other
    control characters, line separators and bidi controls written as `\\xNN` or `\\uNNNN`,
    so a name cannot start a fake heading or line, or reorder the text around it.
    """
    return _NOT_IN_A_LINE.sub(lambda m: _escape(m.group()), safe_name(name))


class _Bounded(reprlib.Repr):
    """`repr` with bounded work and length: a few items per level, a few levels, no huge integer spelt out."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 3, 6, 6, 6, 6
        self.maxstring, self.maxother, self.maxlong = CUT, CUT, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)

    def repr_str(self, x: str, level: int) -> str:
        return repr(x) if len(x) <= self.maxstring else f"{x[: self.maxstring]!r}... ({len(x)} characters)"


_BOUNDED = _Bounded()


def cut(value: Any, limit: int = CUT) -> str:
    """`repr(value)` for a message, cut to about `limit` characters, with the value's size when it was cut.

    Every message that quotes a value read from a file or a bucket uses this: a
    15 MiB string, a 5,000-digit integer or a YAML alias bomb is never formatted whole.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = _BOUNDED.repr(value)
    if len(text) > limit + 40:
        size = f"{len(value)} items" if isinstance(value, (list, tuple, dict, set)) else f"{len(text)} characters"
        text = f"{text[:limit]}... ({size})"
    return text


def index_ranges(indexes: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5': long lists of indexes stay readable."""
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")


def unknown_scheme(uri: str) -> str | None:
    """Why `uri` names a storage scheme samplesize does not have (`s3://`, `GS://`, `gs:/`), or None.

    Only `gs://` and local paths are storage; any other `scheme:/` would silently become a local folder.
    """
    match = _SCHEME.match(uri)
    if not match or uri.startswith("gs://"):
        return None
    scheme = match.group()[:-2]
    hint = " (did you mean gs://, in lower case with two slashes?)" if scheme.lower() in ("gs", "gcs") else ""
    return (f"{cut(uri)}: unknown storage scheme {scheme!r}{hint}; write gs://bucket/prefix for Google Cloud "
            "Storage, or a local folder path (./name for a folder whose name holds ':/')")
