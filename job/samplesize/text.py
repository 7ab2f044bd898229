"""Make untrusted text safe to show: file and class names, result fields, anything printed.

Names come from folders and buckets that anyone may fill, and result files
from anyone who can write to the output. They may hold bytes that are not
UTF-8 (a lone surrogate in Python, which cannot be encoded, drawn or written
to JSON as UTF-8) or terminal control sequences that clear the screen,
retitle the window or fake output. Both are shown escaped, never obeyed.
`index_ranges` keeps long lists of trial indexes in messages short.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

# C0 controls except tab and newline, DEL and C1 controls (0x9b is a one-byte CSI).
# A carriage return is kept: progress lines rewrite themselves with it.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


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
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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
