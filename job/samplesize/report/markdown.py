"""The Markdown page (report.md), for a terminal or a pull request."""

from __future__ import annotations

from ..text import one_line
from .next_steps import gain_rows, gains_caption, lead_sentence, plan_rows, settings_sentence
from .words import (
    comparison_rows,
    comparison_sentences,
    dataset_facts,
    family_sentence,
    fmt_interval,
    fmt_score,
    fmt_seconds,
    fmt_size,
    fmt_times,
    headline,
    size_cell,
    level_pct,
    listed_warnings,
    metric_name,
    no_curve_warning,
    paired_headers,
    paired_rows,
    partial_banner,
    validation_sentences,
)


def md_line(text: str) -> str:
    """`text` as one line of Markdown: newlines and bidi controls escaped (`text.one_line`), and `<` too.

    Warnings name files anyone may create: a name holding `\\n# heading` or `<!--`
    must not forge a heading or hide the rest of the page.
    """
    return one_line(text).replace("<", "\\<")


def render_markdown(summary: dict) -> str:
    """A short text report that reads well in a terminal."""
    run = summary["run"]
    lines = [f"# samplesize report: {md_line(run['sweep'])}{' (PARTIAL SWEEP)' if not summary['complete'] else ''}", ""]
    for banner in (partial_banner(summary), no_curve_warning(summary)):
        if banner:
            lines += [f"> **{md_line(banner)}**", ""]
    lines += ["## Answer", ""] + [f"- {headline(summary, t)}" for t in summary["targets"]] + [""]
    lines += [f"{text}\n" for text in validation_sentences(summary)]
    if summary.get("next_steps"):
        lines += next_steps_markdown(summary)
    if summary["predictions"]:
        lines += _predictions_markdown(summary)
    lines += _measured_markdown(summary)
    shown = listed_warnings(summary)
    if shown:
        lines += ["", "## Warnings", ""] + [f"- {md_line(w)}" for w in shown]
    data = dataset_facts(summary)
    if data:
        lines += ["", "## Data", ""] + [f"- {label}: {md_line(text)}" for label, text in data]
    lines += ["", f"Trials: {summary['trials']['usable']} of {summary['trials']['expected']} usable; "
                  f"total trial time {fmt_seconds(run['total_trial_seconds'])}. Full report: report.html", ""]
    return "\n".join(lines)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def next_steps_markdown(summary: dict) -> list[str]:
    """The "What to do next" section: the lead sentence, the plan per target, what more labels buy."""
    ns = summary["next_steps"]
    lines = ["## What to do next", "", f"**{md_line(lead_sentence(summary))}**", ""]
    if ns["plans"]:
        lines += _table(*plan_rows(summary)) + ["", settings_sentence(summary), ""]
    return lines + [gains_caption(summary), ""] + _table(*gain_rows(summary)) + [""]


def _predictions_markdown(summary: dict) -> list[str]:
    lines = [f"## Predictions ({level_pct(summary)} intervals)", "",
             f"| why | sample size | {metric_name(summary)} | interval | past the data |", "|---|---:|---:|---|---:|"]
    for p in summary["predictions"]:
        far = " (far)" if p["far"] else ""
        lines.append(f"| {p['label']} | {size_cell(summary, p['sample_size'], p.get('images'))} | {fmt_score(p['predicted'])} | "
                     f"{fmt_interval(p['interval'])} | {fmt_times(p['times_past_data'])}{far} |")
    return lines + [""]


def _measured_markdown(summary: dict) -> list[str]:
    """The measured table, the curve family and what each backtest says."""
    lines = ["## Measured", "", f"| split | sample size | trials | mean {metric_name(summary)} | std |",
             "|---:|---:|---:|---:|---:|"]
    for r in summary["per_size"]:
        tag = " (backtest)" if r["backtest"] else ""
        lines.append(f"| {r['split']:g}{tag} | {size_cell(summary, r['sample_size'], r.get('images'))} | {r['n']}/{r['expected']} | "
                     f"{fmt_score(r['mean'])} | {fmt_score(r['std'])} |")
    lines.append("")
    if summary["curve"]:
        lines += [family_sentence(summary["curve"]), ""]
    for b in summary["backtest"]:
        if b["predicted"] is not None:
            verdict = "inside" if b["inside"] else "OUTSIDE"
            lines.append(f"Backtest at split {b['split']:g}: measured {fmt_score(b['measured_mean'])}, predicted "
                         f"{fmt_score(b['predicted'])} ({fmt_interval(b['interval'])}): {verdict} the interval.")
    return lines


def render_comparison_markdown(summary: dict) -> str:
    """The comparison in a terminal: the answer, the table per target, the paired differences."""
    m = metric_name(summary)
    lines = [f"# samplesize comparison: {md_line(summary['run'].get('sweep', ''))}"
             f"{' (PARTIAL SWEEP)' if not summary['complete'] else ''}", ""]
    banner = partial_banner(summary)
    if banner:
        lines += [f"> **{banner}**", ""]
    lines += ["## Answer", ""] + [f"- {s}" for s in comparison_sentences(summary)] + [""]
    headers, rows = comparison_rows(summary)
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]
    for pair in summary["comparison"]["paired"]:
        lines += [f"## Paired differences: {pair['difference']} ({m})", "",
                  "| " + " | ".join(paired_headers(summary)) + " |", "|" + "---:|" * len(paired_headers(summary))]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in paired_rows(pair)] + [""]
    shown = listed_warnings(summary)
    if shown:
        lines += ["## Warnings", ""] + [f"- {md_line(w)}" for w in shown] + [""]
    lines += [f"Trials: {summary['trials']['usable']} of {summary['trials']['expected']} usable. Full report: report.html", ""]
    return "\n".join(lines)
