"""Write the four report files through the Storage interface."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import ConfigError, DataError
from ..storage import Storage, TooLarge
from ..summary import Summary, VariantsSummary, read_summary
from ..text import terminal_safe
from .html import render_comparison_html, render_html
from .markdown import render_comparison_markdown, render_markdown
from .plots import plot_class_curves, plot_comparison, plot_learning_curve

REPORT_PREFIX = "report/"
# A summary.json of thousands of classes and variants stays far below this.
MAX_SUMMARY_BYTES = 64 * 2**20


FILES = ("report.html", "learning_curve.png", "summary.json", "report.md")  # the page a reader opens first


REPORT_FILES = tuple(REPORT_PREFIX + name for name in FILES)  # their keys under the sweep's output
MANIFEST = REPORT_PREFIX + "manifest.json"  # marks the four files as one set (`write_files`)
MAX_MANIFEST_BYTES = 4096


def write_report(storage: Storage, summary: Summary) -> list[str]:
    """Write the four report files of a sweep without variants under `report/`, from the summary alone.

    Args:
        storage: the sweep's output (or wherever the report should go).
        summary: the sweep's `Summary` (from `summarize.build_summary`, or read back with `Summary.from_json`).

    Returns:
        The keys written, `REPORT_FILES` in the order written.
    """
    doc = summary.to_json()
    curve_png = plot_learning_curve(doc)
    class_png = plot_class_curves(doc)
    return write_files(storage, doc, curve_png, render_html(doc, curve_png, class_png), render_markdown(doc))


def write_files(storage: Storage, summary: dict[str, Any], curve_png: bytes, page: str, text: str) -> list[str]:
    """Write the plot, the HTML page, summary.json and the Markdown, each once and in that order; return their keys.

    The four files cannot be replaced together (a bucket has no rename of a folder), so the set is marked:
    `MANIFEST` says "writing" before the first and lists each file's digest after the last. A write stopped
    between (SIGTERM, a full disk) leaves a set that `report_set_problem` calls incomplete, never a new PNG
    silently beside an old page."""
    files = {
        "learning_curve.png": curve_png,
        "report.html": page.encode("utf-8"),
        # allow_nan=False: the summary is already JSON-safe; this guards it.
        "summary.json": json.dumps(summary, indent=1, allow_nan=False, ensure_ascii=False).encode("utf-8"),
        "report.md": text.encode("utf-8"),
    }
    storage.write(MANIFEST, json.dumps({"state": "writing"}).encode())
    for name, data in files.items():
        storage.write(REPORT_PREFIX + name, data)
    storage.write(MANIFEST, json.dumps({"state": "complete", "files": {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()}},
        indent=1).encode())
    return [REPORT_PREFIX + name for name in files]


def report_set_problem(storage: Storage) -> str | None:
    """Why the report files under `report/` are not one set written together, or None when they are.

    A report written before the manifest existed (no `MANIFEST`) is taken as it is."""
    try:
        manifest = json.loads(storage.read(MANIFEST, limit=MAX_MANIFEST_BYTES))
        state = manifest["state"]
    except FileNotFoundError:
        return None
    except (DataError, ValueError, RecursionError, KeyError, TypeError):
        return f"{MANIFEST} is unreadable"
    if state != "complete":
        return "its last write was interrupted before every file was written"
    try:
        listed = {name: (entry["sha256"], int(entry["bytes"])) for name, entry in manifest["files"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return f"{MANIFEST} is unreadable"
    for name in FILES:
        if name not in listed:
            return f"{MANIFEST} does not list {name}"
        digest, size = listed[name]
        if not 0 <= size <= MAX_SUMMARY_BYTES:  # the manifest is untrusted too: never a read of any size it names
            return f"{MANIFEST} is unreadable"
        try:
            data = storage.read(REPORT_PREFIX + name, limit=max(0, size))
        except FileNotFoundError:
            return f"{REPORT_PREFIX}{name} is missing"
        except DataError:
            data = b""  # larger than the set's own file: not the one written with it
        if hashlib.sha256(data).hexdigest() != digest:
            return f"{REPORT_PREFIX}{name} is not the file written with the rest of the set"
    return None


def write_comparison_report(storage: Storage, summary: VariantsSummary) -> list[str]:
    """The report of a sweep with `variants`: the same four files, one curve per variant (see `write_report`)."""
    doc = summary.to_json()
    curve_png = plot_comparison(doc)
    return write_files(storage, doc, curve_png, render_comparison_html(doc, curve_png),
                       render_comparison_markdown(doc))


def rewrite_report(storage: Storage, summary: Summary | VariantsSummary) -> list[str]:
    """Render the report of either kind of summary again (`samplesize report`); return the keys written."""
    if isinstance(summary, VariantsSummary):
        return write_comparison_report(storage, summary)
    return write_report(storage, summary)


def read_report_summary(source: Storage, key: str) -> Summary | VariantsSummary:
    """The summary at `key` (a summary.json), checked like any file under an output: it may be malformed.

    Raises:
        ConfigError: there is no file at `key`.
        DataError: the file is too large, or not a summary this version reads.
    """
    where = f"{source.uri.rstrip('/')}/{key}"
    try:
        data = source.read(key, limit=MAX_SUMMARY_BYTES)  # a 6 GB file is refused from its size, never read whole
    except FileNotFoundError:
        raise ConfigError(f"no summary at {where}: run `samplesize aggregate` first, or pass --summary") from None
    except TooLarge as exc:
        raise DataError(f"{where} is {exc.size or 'over ' + str(MAX_SUMMARY_BYTES)} bytes, far larger than any "
                        f"summary (at most {MAX_SUMMARY_BYTES}); re-run `samplesize aggregate` to write it again") from None
    try:
        return read_summary(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DataError(f"{where} is not a summary this samplesize can render ({terminal_safe(str(exc)[:200])}); "
                        "re-run `samplesize aggregate` to write it again") from None
