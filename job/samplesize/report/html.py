"""The self-contained HTML page; every string from results or config is escaped."""

from __future__ import annotations

import base64
import html
from typing import Any

from .next_steps import gain_rows, gains_caption, lead_sentence, plan_rows, settings_sentence
from .words import (
    class_prediction_column,
    comparison_rows,
    comparison_sentences,
    dataset_facts,
    family_sentence,
    far_text,
    fmt_chance,
    fmt_interval,
    fmt_pct,
    fmt_score,
    fmt_seconds,
    fmt_size,
    fmt_times,
    headline,
    is_inf,
    level_pct,
    listed_warnings,
    metric_name,
    no_curve_warning,
    paired_headers,
    paired_rows,
    partial_banner,
    size_cell,
    size_interval,
    validation_sentences,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}tr.chosen td{font-weight:bold;background:#fff8e6}
.banner{padding:.8em 1em;margin:1em 0;border-radius:4px;font-weight:bold}
.partial{background:#ffe3e3;border:2px solid #c00;color:#900}
.nocurve{background:#fff4d6;border:2px solid #c80;color:#840}
.headline{font-size:1.1em;margin:.4em 0}img{max-width:100%}
.muted{color:#777;font-size:.85em}
"""


def escape(v: Any) -> str:
    return html.escape(str(v), quote=True)


def html_table(headers: list[str], rows: list[list[Any]], left: int = 1, row_classes: list[str] | None = None) -> str:
    """A table; the first `left` columns are text, left-aligned. Every cell is escaped."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{escape(row_classes[r])}"' if row_classes and row_classes[r] else ""
        body.append(f"<tr{cls}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _page_start(summary: dict, title: str, heading: str) -> list[str]:
    """The HTML page's head, its title line and the PARTIAL banner, shared by both kinds of report."""
    sweep = summary["run"].get("sweep", "")
    partial = not summary["complete"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{title}: {escape(sweep)}{' (PARTIAL)' if partial else ''}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{heading}: {escape(sweep)}{' (partial sweep)' if partial else ''}</h1>",
    ]
    banner = partial_banner(summary)
    if banner:
        parts.append(f'<div class="banner partial">{escape(banner)}</div>')
    return parts


def render_html(summary: dict, curve_png: bytes, class_png: bytes | None = None) -> str:
    """The self-contained HTML report (plots embedded as base64)."""
    m = metric_name(summary)
    parts = _page_start(summary, "samplesize report", "How many labelled images")
    nocurve = no_curve_warning(summary)
    if nocurve:
        parts.append(f'<div class="banner nocurve">{escape(nocurve)}</div>')

    parts.append("<h2>Answer</h2>")
    parts += [f'<p class="headline">{escape(headline(summary, t))}</p>' for t in summary["targets"]]
    parts += [f"<p>{escape(text)}</p>" for text in validation_sentences(summary)]
    parts.append(f"<p>{_img(curve_png, f'{m} against sample size')}</p>")
    if summary.get("next_steps"):
        parts += _next_steps_html(summary)
    if summary["predictions"]:
        parts += _predictions_html(summary)
    if summary["curve"]:
        parts += _families_html(summary["curve"])
    parts += _measured_html(summary)
    if summary["backtest"]:
        parts += _backtest_html(summary)
    parts.append(_per_class_html(summary, class_png))
    parts.append(_confusion_html(summary))
    parts += _trials_html(summary)
    parts += _run_facts_html(summary)
    parts.append("</body></html>")
    return "\n".join(parts)


def _next_steps_html(summary: dict) -> list[str]:
    """The "What to do next" section: the lead sentence, the plan per target, what more labels buy."""
    ns = summary["next_steps"]
    parts = ["<h2>What to do next</h2>", f'<p class="headline">{escape(lead_sentence(summary))}</p>']
    if ns["plans"]:
        parts += [html_table(*plan_rows(summary)), f'<p class="muted">{escape(settings_sentence(summary))}</p>']
    return parts + [f"<p>{escape(gains_caption(summary))}</p>", html_table(*gain_rows(summary))]


def _predictions_html(summary: dict) -> list[str]:
    """The predictions at the sizes asked for, and the size each target needs."""
    m, level = metric_name(summary), level_pct(summary)
    rows = [
        [p["label"], size_cell(summary, p["sample_size"], p.get("images")), fmt_score(p["predicted"]), fmt_interval(p["interval"]),
         fmt_times(p["times_past_data"]), "far extrapolation" if p["far"] else ""]
        for p in summary["predictions"]
    ]
    targets = [
        [fmt_pct(t["target"]), "yes" if t["reachable"] else "probably not",
         "-" if t["sample_size"] is None else size_cell(summary, t["sample_size"], t.get("images")),
         size_interval(t), fmt_times(t["times_past_data"]),
         "-" if t.get("p_reachable") is None else fmt_chance(t["p_reachable"])]
        for t in summary["targets"]
    ]
    return [
        "<h2>Predictions</h2>",
        html_table(["Why", "Sample size", f"Predicted {m}", f"{level} interval", "Past the data", "Note"], rows),
        '<p class="muted">"Past the data" is the sample size divided by the largest fitted sample size. '
        f"Beyond {far_text(summary)} the prediction is a far extrapolation.</p>",
        html_table(["Target", "Reachable", "Sample size needed", f"{level} interval", "Past the data",
                "Chance it is reachable"], targets),
    ]


def _families_html(c: dict) -> list[str]:
    """The curve families: which was chosen (or blended) and how each extrapolated."""
    rows, classes = [], []
    for f in c["families"]:
        rows.append([f["name"], f["formula"] or "", fmt_score(f["in_sample_rmse"]), fmt_score(f["extrapolation_error"]),
                     fmt_score(f["weight"]), "none" if is_inf(f["ceiling"]) else fmt_score(f["ceiling"]),
                     "yes" if f["converged"] else "no"])
        classes.append("chosen" if f["chosen"] or f["in_blend"] else "")
    return [
        "<h2>Curve families</h2>",
        f"<p>Chosen: <b>{escape(c['family'])}</b>. {escape(family_sentence(c))} Families are judged by their "
        "extrapolation error (refitted without the largest sizes, then asked to predict them), "
        "not by in-sample fit.</p>",
        html_table(["Family", "Formula", "Fit RMSE", "Extrapolation error", "Weight", "Ceiling", "Converged"],
               rows, left=2, row_classes=classes),
    ]


def _measured_html(summary: dict) -> list[str]:
    rows = [
        [f"{r['split']:g}", "backtest" if r["backtest"] else "fitted", size_cell(summary, r["sample_size"], r.get("images")),
         f"{r['n']} / {r['expected']}",
         fmt_score(r["mean"]), fmt_score(r["std"]), fmt_score(r["min"]), fmt_score(r["max"])]
        for r in summary["per_size"]
    ]
    return ["<h2>Measured scores per size</h2>",
            html_table(["Split", "Role", "Sample size", "Trials", f"Mean {metric_name(summary)}", "Std", "Min", "Max"],
                   rows, left=2)]


def _backtest_html(summary: dict) -> list[str]:
    rows = [
        [f"{b['split']:g}", fmt_size(b["sample_size"]), b["n"], fmt_score(b["measured_mean"]), fmt_score(b["predicted"]),
         fmt_interval(b["interval"]), "-" if b["inside"] is None else ("yes" if b["inside"] else "NO")]
        for b in summary["backtest"]
    ]
    return [
        "<h2>Backtest</h2>",
        "<p>Backtest splits ran as trials and were left out of a validation fit: does that curve "
        "predict them? (The answer above is refitted on every size, backtests included.)</p>",
        html_table(["Split", "Sample size", "Trials", "Measured mean", "Predicted", f"{level_pct(summary)} interval",
                "Measured inside interval"], rows),
    ]


def _trials_html(summary: dict) -> list[str]:
    """The trial counts, the indexes still missing or failed, and every warning not shown as a banner."""
    t = summary["trials"]
    parts = ["<h2>Trials and warnings</h2>", html_table(["", ""], [
        ["Expected trials", t["expected"]],
        ["Usable results", t["usable"]],
        ["Missing indexes", ", ".join(map(str, t["missing"])) or "none"],
        ["Failed indexes (reported by the Job)", ", ".join(map(str, t["failed"])) or "none"],
        ["Job state", t["job_state"] if t["job_state"] is not None else "not known (local run)"],
    ])]
    shown = listed_warnings(summary)
    parts.append("<ul>" + "".join(f"<li>{escape(w)}</li>" for w in shown) + "</ul>" if shown else "<p>No warnings.</p>")
    return parts


def _run_facts_html(summary: dict) -> list[str]:
    run = summary["run"]
    facts = [
        ["Dataset", run["dataset"]],
        ["Pool size", fmt_size(run["pool_size"])],
        *([[f"Pool {run['size_unit']}", f"{fmt_size(run['pool_groups'])} ({run['images_per_group']:.1f} images each; "
            "sample sizes count them)"]] if run.get("pool_groups") is not None else []),
        ["Test set size", fmt_size(run["test_size"])],
        ["Classes", run["classes"]],
        *[[label, text] for label, text in dataset_facts(summary)],
        ["Model", f"{run['model']} (weights: {run['weights']}, fine-tune from: {run['fine_tune_from'] or 'none'})"],
        ["Splits (fitted)", ", ".join(f"{s:g}" for s in run["splits"])],
        ["Backtest splits", ", ".join(f"{s:g}" for s in run["backtest_splits"]) or "none"],
        ["Repetitions", run["repetitions"]],
        ["Sampling", run["sampling"]],
        ["Total trial time", fmt_seconds(run["total_trial_seconds"])],
        ["Accelerator", ", ".join(run["accelerators"]) or "unknown"],
        ["Output", run["output"]],
        ["Config hash", run["config_hash"]],
        ["Generated", f"{run['generated_at']} by samplesize {run['aggregated_by']}"],
    ]
    return ["<h2>Run facts</h2>", html_table(["", ""], facts, left=2)]


def _per_class_html(summary: dict, class_png: bytes | None) -> str:
    classes = summary["per_class"]
    if not classes:
        return ""
    out = ["<h2>Per-class recall</h2>",
           "<p>Classes with the lowest recall or the lowest ceiling are the ones short of data (or hard to tell apart).</p>"]
    if class_png:
        out.append(f"<p>{_img(class_png, 'per-class recall against sample size')}</p>")
    predictions = summary["predictions"] or []
    at = class_prediction_column(predictions)
    last = predictions[at] if predictions else None
    headers = ["Class", "Recall at largest fitted size", "Fitted ceiling"]
    if last:
        headers.append(f"Predicted at {last['label']} ({fmt_size(last['sample_size'])})")
    rows = []
    for c in sorted(classes, key=lambda c: (c["recall_at_largest"] is None, c["recall_at_largest"] or 0)):
        row = [c["class"], fmt_score(c["recall_at_largest"]),
               "-" if c["ceiling"] is None else ("none" if is_inf(c["ceiling"]) else fmt_score(c["ceiling"]))]
        if last:
            p = c["predictions"][at] if c["predictions"] else None
            row.append("-" if p is None else f"{fmt_score(p['predicted'])} ({fmt_interval(p['interval'])})")
        rows.append(row)
    out.append(html_table(headers, rows))
    return "\n".join(out)


def _confusion_html(summary: dict) -> str:
    cm = summary["confusion_matrix"]
    if not cm:
        return ""
    names = cm["class_names"]
    rows = [[name, *counts] for name, counts in zip(names, cm["matrix"])]
    return "\n".join([
        "<h2>Confusion matrix at the largest size</h2>",
        f"<p>Split {escape(format(cm['split'], 'g'))} (sample size {escape(fmt_size(cm['sample_size']))}), counts summed over "
        f"{escape(cm['trials'])} trial(s). Rows: true class; columns: predicted class.</p>",
        html_table(["true \\ predicted", *names], rows),
    ])


def render_comparison_html(summary: dict, curve_png: bytes) -> str:
    """The self-contained HTML report of a comparison sweep."""
    m = metric_name(summary)
    parts = _page_start(summary, "samplesize comparison", "More labels or another pipeline")
    parts.append("<h2>Answer</h2>")
    parts += [f'<p class="headline">{escape(s)}</p>' for s in comparison_sentences(summary)]
    parts.append(f"<p>{_img(curve_png, f'{m} against sample size, one curve per variant')}</p>")
    headers, rows = comparison_rows(summary)
    parts.append("<h2>Sample size needed, by variant</h2>")
    parts.append(html_table(headers, rows))
    parts.append("<h2>Paired differences (measured)</h2>")
    parts.append("<p>Each pair is one (split, repetition): the same subsample, trained in both variants. The "
                 "difference of their scores is the measured comparison, with no curve in between.</p>")
    for pair in summary["comparison"]["paired"]:
        parts.append(f"<p><b>{escape(pair['difference'])}</b> ({escape(m)})</p>")
        parts.append(html_table(paired_headers(summary), paired_rows(pair)))
    for entry in summary["variants"]:
        vs = entry["summary"]
        parts.append(f"<h2>Variant {escape(entry['name'])}</h2><p class=\"muted\">{escape(entry['changes'])}</p>")
        if vs is None:
            parts.append("<p>No usable result yet.</p>")
            continue
        parts += [f"<p>{escape(headline(vs, t))}</p>" for t in vs["targets"]]
        rows = [[f"{r['split']:g}", "backtest" if r["backtest"] else "fitted", fmt_size(r["sample_size"]),
                 f"{r['n']} / {r['expected']}", fmt_score(r["mean"]), fmt_score(r["std"])] for r in vs["per_size"]]
        parts.append(html_table(["Split", "Role", "Sample size", "Trials", f"Mean {m}", "Std"], rows, left=2))
        if vs["curve"]:
            parts.append(f"<p>{escape(family_sentence(vs['curve']))}</p>")
    parts.append("<h2>Warnings</h2>")
    shown = listed_warnings(summary)
    parts.append("<ul>" + "".join(f"<li>{escape(w)}</li>" for w in shown) + "</ul>" if shown else "<p>No warnings.</p>")
    run = summary["run"]
    parts.append(f"<p class=\"muted\">Config hash {escape(run.get('config_hash'))}; generated {escape(run.get('generated_at'))} "
                 f"by samplesize {escape(run.get('aggregated_by'))}.</p></body></html>")
    return "\n".join(parts)
