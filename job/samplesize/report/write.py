"""Write the four report files through the Storage interface."""

from __future__ import annotations

import json
from typing import Any

from ..storage import Storage
from .html import render_comparison_html, render_html
from .markdown import render_comparison_markdown, render_markdown
from .plots import plot_class_curves, plot_comparison, plot_learning_curve

REPORT_PREFIX = "report/"


FILES = ("report.html", "learning_curve.png", "summary.json", "report.md")  # the page a reader opens first


REPORT_FILES = tuple(REPORT_PREFIX + name for name in FILES)  # their keys under the sweep's output


def write_report(storage: Storage, summary: dict[str, Any], *, fit: Any = None, class_fits: dict | None = None) -> list[str]:
    """Write the four report files under `report/`; return their keys."""
    curve_png = plot_learning_curve(summary, fit)
    class_png = plot_class_curves(summary, class_fits or {})
    return write_files(storage, summary, curve_png, render_html(summary, curve_png, class_png),
                        render_markdown(summary))


def write_files(storage: Storage, summary: dict[str, Any], curve_png: bytes, page: str, text: str) -> list[str]:
    """Write the plot, the HTML page, summary.json and the Markdown, in that order; return their keys."""
    files = {
        "learning_curve.png": curve_png,
        "report.html": page.encode("utf-8"),
        # allow_nan=False: the summary is already JSON-safe; this guards it.
        "summary.json": json.dumps(summary, indent=1, allow_nan=False, ensure_ascii=False).encode("utf-8"),
        "report.md": text.encode("utf-8"),
    }
    for name, data in files.items():
        storage.write(REPORT_PREFIX + name, data)
    return [REPORT_PREFIX + name for name in files]


def write_comparison_report(storage: Storage, summary: dict[str, Any], fits: dict[str, Any]) -> list[str]:
    """The report of a sweep with `variants`: the same four files, one curve per variant."""
    curve_png = plot_comparison(summary, fits)
    return write_files(storage, summary, curve_png, render_comparison_html(summary, curve_png),
                        render_comparison_markdown(summary))
