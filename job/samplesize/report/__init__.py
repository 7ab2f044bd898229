"""Render a sweep's summary into `<output>/report/`: HTML, PNG, summary.json and Markdown.

`write_report(storage, summary)` writes the four files (`REPORT_FILES`), marked as one set by
`MANIFEST`, through the Storage interface, from the `Summary` alone: nothing here refits a curve or reads a trial. Modules: `words` (numbers and sentences), `plots` (matplotlib),
`html` and `markdown` (the pages), `write` (the files).
"""

from .write import (
    MANIFEST,
    REPORT_FILES,
    REPORT_PREFIX,
    read_report_summary,
    report_set_problem,
    rewrite_report,
    write_comparison_report,
    write_report,
)

__all__ = ["MANIFEST", "REPORT_FILES", "REPORT_PREFIX", "read_report_summary", "report_set_problem", "rewrite_report", "write_comparison_report", "write_report"]
