"""Render the summary into `<output>/report/`: PNG, self-contained HTML, JSON, Markdown.

`write_report(storage, summary, fit=..., class_fits=...)` writes the four
files through the Storage interface. The summary comes from
`samplesize.aggregate`; the fits are only needed to draw curves.

Every string that comes from results or config is escaped before it reaches
HTML, and `$` is escaped before it reaches matplotlib (which would otherwise
read it as mathtext).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .compare import CROSSING_REACH
from .curves import FAR_FACTOR, LEVEL
from .storage import Storage

REPORT_PREFIX = "report/"
FILES = ("report.html", "learning_curve.png", "summary.json", "report.md")  # the page a reader opens first
REPORT_FILES = tuple(REPORT_PREFIX + name for name in FILES)  # their keys under the sweep's output
MAX_CLASSES_PLOTTED = 10  # a legend of 100 classes helps nobody; plot the weakest
METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
    "auc": "AUC",
}


def write_report(storage: Storage, summary: dict[str, Any], *, fit: Any = None, class_fits: dict | None = None) -> list[str]:
    """Write the four report files under `report/`; return their keys."""
    curve_png = plot_learning_curve(summary, fit)
    class_png = plot_class_curves(summary, class_fits or {})
    return _write_files(storage, summary, curve_png, render_html(summary, curve_png, class_png),
                        render_markdown(summary))


def _write_files(storage: Storage, summary: dict[str, Any], curve_png: bytes, page: str, text: str) -> list[str]:
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


# ---------------------------------------------------------------- words and numbers


def metric_name(summary: dict) -> str:
    return METRIC_NAMES.get(summary["metric"], summary["metric"])


def interval_level(summary: dict) -> float:
    """The level of the summary's intervals (the package's LEVEL for a summary that does not say)."""
    return summary.get("level", LEVEL)


def far_factor(summary: dict) -> float:
    """Past this many times the largest fitted size a prediction is a far extrapolation (from the curve)."""
    return (summary.get("curve") or {}).get("far_factor", FAR_FACTOR)


def level_pct(summary: dict) -> str:
    """The interval level in words: "80%"."""
    return fmt_pct(interval_level(summary))


def far_text(summary: dict) -> str:
    """The far-extrapolation factor in words: "4x"."""
    return f"{far_factor(summary):g}x"


def _is_inf(v: Any) -> bool:
    return v == "inf" or (isinstance(v, float) and math.isinf(v))


def fmt_size(v: Any) -> str:
    if v is None:
        return "-"
    if _is_inf(v):
        return "unbounded"
    return f"{int(math.ceil(float(v))):,}"


def fmt_score(v: Any) -> str:
    return "-" if v is None else f"{float(v):.3f}"


def fmt_pct(v: float) -> str:
    return f"{100 * float(v):.4g}%"


def fmt_interval(iv: Any, fmt=fmt_score) -> str:
    if not iv:
        return "-"
    return f"{fmt(iv[0])} to {fmt(iv[1])}"


def fmt_times(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}x"


def fmt_seconds(s: float) -> str:
    s = float(s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def partial_banner(summary: dict) -> str | None:
    if summary["complete"]:
        return None
    t = summary["trials"]
    return (
        f"PARTIAL SWEEP: {t['usable']} of {t['expected']} trials are usable; "
        + "; ".join(summary["partial_reasons"])
        + ". Numbers will change when the remaining trials finish."
    )


def no_curve_warning(summary: dict) -> str | None:
    if summary["curve"] is not None:
        return None
    return summary["run"].get("no_curve") or "NO CURVE: no learning curve was fitted."


def listed_warnings(summary: dict) -> list[str]:
    """Warnings not already shown as a banner (the summary's run facts name the banners' texts)."""
    run = summary["run"]
    banners = {run.get("partial_warning"), run.get("no_curve")} - {None}
    return [w for w in summary["warnings"] if w not in banners]


def family_sentence(curve: dict) -> str:
    if curve["family"] == "blend":
        used = ", ".join(f"{f['name']} {f['weight']:.2f}" for f in curve["families"] if f["weight"] and f["weight"] > 0)
        return f"The curve is a weighted blend of the curve families ({used})."
    return f"The curve family is {curve['family']}, chosen by how well it predicted the larger sizes from the smaller ones."


def fmt_chance(p: Any) -> str:
    """A probability in words: "70% chance", with "<1%" and ">99%" at the ends."""
    p = float(p)
    if p < 0.01:
        return "less than 1% chance"
    if p > 0.99:
        return "more than 99% chance"
    return f"{100 * p:.0f}% chance"


def size_interval(target: dict) -> str:
    """The size interval; an open end reads "more than <the horizon searched>"."""
    low, high = target["interval"]
    horizon = target.get("reach_horizon")
    if _is_inf(high) and horizon is not None:
        return f"{fmt_size(low) if not _is_inf(low) else 'more than ' + fmt_size(horizon)} to more than {fmt_size(horizon)}"
    return fmt_interval(target["interval"], fmt_size)


def headline(summary: dict, target: dict) -> str:
    """One sentence that answers the user's question for one target."""
    m, goal = metric_name(summary), fmt_pct(target["target"])
    if summary["curve"] is None:
        return f"{goal} {m}: no estimate yet; at least two splits must finish before a curve can be fitted."
    if target.get("p_reachable") is not None:
        return _headline_with_chance(summary, target)
    if not target["reachable"]:
        text = (
            f"{goal} {m} is unreachable with this model and pipeline: the fitted ceiling is "
            f"{fmt_score(target['ceiling'])}."
        )
        low = target["interval"][0] if target["interval"] else None
        if low is not None and not _is_inf(low):
            text += f" Only the optimistic end of the {level_pct(summary)} interval reaches it, at about {fmt_size(low)} images."
        return text
    size, times = fmt_size(target["sample_size"]), fmt_times(target["times_past_data"])
    if target.get("reached_in_data"):
        return (
            f"{goal} {m} is already reached within the measured sizes; the curve puts it at about "
            f"{size} labelled images ({level_pct(summary)} interval {fmt_interval(target['interval'], fmt_size)})."
        )
    text = (
        f"To reach {goal} {m} you need about {size} labelled images "
        f"({level_pct(summary)} interval {fmt_interval(target['interval'], fmt_size)}), {times} the largest fitted sample size."
    )
    if target["far"]:
        text += f" That is a far extrapolation (more than {far_text(summary)} past the data): treat it as a rough guide."
    return text


def _headline_with_chance(summary: dict, target: dict) -> str:
    """The answer with its size interval and the chance that the target is reachable at all."""
    m, goal = metric_name(summary), fmt_pct(target["target"])
    chance = fmt_chance(target["p_reachable"])
    horizon = fmt_size(target["reach_horizon"]) if target.get("reach_horizon") is not None else None
    if not target["reachable"]:
        text = (f"{goal} {m}: probably unreachable with this pipeline ({chance} that it is reachable"
                f"{f' within {horizon} images' if horizon else ''}); the fitted ceiling is "
                f"{fmt_score(target['ceiling'])}.")
        low = target["interval"][0] if target["interval"] else None
        if low is not None and not _is_inf(low):
            text += f" Only the optimistic end of the {level_pct(summary)} interval reaches it, at about {fmt_size(low)} images."
        return text
    size = fmt_size(target["sample_size"])
    if target.get("reached_in_data"):
        return (f"{goal} {m}: already reached within the measured sizes; the curve puts it at about {size} "
                f"labelled images ({level_pct(summary)} interval {size_interval(target)}).")
    text = (f"{goal} {m}: about {size} labelled images ({level_pct(summary)} interval {size_interval(target)}; {chance} that it "
            f"is reachable with this pipeline), {fmt_times(target['times_past_data'])} the largest measured "
            "sample size.")
    if target["far"]:
        text += f" That is a far extrapolation (more than {far_text(summary)} past the data): treat it as a rough guide."
    return text


def validation_sentences(summary: dict) -> list[str]:
    """What the backtests say about the answer: it is fitted on every size, and where a
    backtest contradicted the curve fitted without it, the answer says so."""
    v = summary.get("validation")
    if not v or not v.get("backtests"):
        return []
    m = metric_name(summary)
    out = [f"The answer is fitted on every measured size, the backtest splits included. Fitted without them, "
           f"the curve held {v['inside']} of {v['backtests']} backtest mean(s) inside its {level_pct(summary)} interval."]
    for c in v["contradictions"]:
        where = {"above": f"above its {level_pct(summary)} interval", "below": f"below its {level_pct(summary)} interval"}.get(c["side"], "inside its interval")
        text = (f"CAUTION: at {fmt_size(c['sample_size'])} images the curve fitted without the backtest predicted "
                f"{fmt_score(c['predicted'])} ({fmt_interval(c['interval'])}), but {fmt_score(c['measured_mean'])} "
                f"{m} was measured, {where}")
        if c["above_ceiling"]:
            text += f" and above its ceiling ({fmt_score(c['ceiling'])})"
        out.append(text + ". The method missed on this sweep: weigh the answer with that in mind.")
    return out


# ---------------------------------------------------------------- plots


def _mpl_text(s: Any, limit: int = 40) -> str:
    """Plain text for matplotlib: `$` would start mathtext, and may fail to parse."""
    s = str(s)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _x_range(summary: dict) -> tuple[float, float]:
    sizes = [p["sample_size"] for p in summary["points"]]
    low, high = min(sizes) / 1.5, max(sizes) * 1.3
    for p in summary["predictions"] or []:
        high = max(high, p["sample_size"] * 1.3)
    for t in summary["targets"]:
        s = t.get("sample_size")
        # Reach out for a target's size, but not so far that the data shrinks to a dot.
        if t.get("reachable") and s is not None and not _is_inf(s) and s < high * 10:
            high = max(high, s * 1.3)
    return low, high


def plot_learning_curve(summary: dict, fit: Any = None) -> bytes:
    """The learning curve: trials, means ± std, families, band, extrapolation, targets."""
    fig = Figure(figsize=(9.5, 5.8), dpi=110)
    ax = fig.add_subplot()
    m = metric_name(summary)
    points = summary["points"]
    xlo, xhi = _x_range(summary)
    _plot_measured(ax, points, summary["per_size"])
    if fit is not None:
        _plot_fit(ax, summary, fit, xlo, xhi)
    scores = [p["score"] for p in points]
    goals = [t["target"] for t in summary["targets"]]
    ylo = max(0.0, min(scores) - 0.05)
    yhi = min(1.0, max(scores + goals) + 0.04)
    for t in summary["targets"]:
        _plot_target(ax, summary, t, (xlo, xhi), (ylo, yhi))
    _set_axes(ax, (xlo, xhi), (ylo, yhi), m, fontsize=7, ncol=2)
    title = f"{m} against sample size: {_mpl_text(summary['run']['sweep'])}"
    if fit is None:
        title += " (no curve yet: fewer than two splits finished)"
    return _finish_plot(fig, ax, summary, title)


def _plot_measured(ax, points: list[dict], per_size: list[dict]) -> None:
    """Every trial (backtest trials marked apart) and the mean ± std at each size."""
    fitted = [p for p in points if not p["backtest"]]
    backtest = [p for p in points if p["backtest"]]
    if fitted:
        ax.scatter([p["sample_size"] for p in fitted], [p["score"] for p in fitted],
                   s=16, alpha=0.45, color="C0", label="trial", zorder=3)
    if backtest:
        ax.scatter([p["sample_size"] for p in backtest], [p["score"] for p in backtest],
                   s=36, marker="D", color="C3", alpha=0.8, label="backtest trial (validation; in the answer)", zorder=4)
    for i, row in enumerate(per_size):
        ax.errorbar([row["sample_size"]], [row["mean"]], yerr=[row["std"] or 0.0], fmt="s",
                    color="black", ms=5, capsize=4, zorder=5, label="mean ± std per size" if i == 0 else None)


def _plot_fit(ax, summary: dict, fit: Any, xlo: float, xhi: float) -> None:
    """The chosen curve with its interval band, the other families faintly, and the extrapolation zones."""
    grid = np.geomspace(xlo, xhi, 300)
    for name, f in fit.families.items():
        if name != fit.family:
            role = f"weight {f.weight:.2f} in the blend" if fit.family == "blend" and f.weight > 0 else "not chosen"
            ax.plot(grid, np.asarray(f.predict(grid), float), lw=0.9, alpha=0.35, label=f"{name} ({role})")
    low, high = fit.interval(grid, level=interval_level(summary))
    ax.fill_between(grid, np.asarray(low, float), np.asarray(high, float), color="C1", alpha=0.2,
                    label=f"{level_pct(summary)} interval")
    ax.plot(grid, np.asarray(fit.predict(grid), float), lw=2.4, color="C1", label=f"chosen: {_mpl_text(fit.family)}")
    ax.axvspan(fit.max_size, xhi, color="grey", alpha=0.08, lw=0, label="extrapolation")
    far = far_factor(summary) * fit.max_size
    if far < xhi:
        ax.axvspan(far, xhi, color="grey", alpha=0.10, lw=0, label=f"far extrapolation (>{far_text(summary)})")


def _plot_target(ax, summary: dict, t: dict, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """A target's line, its size marked where it is on the chart, and a label that says it."""
    (xlo, xhi), (ylo, yhi) = xlim, ylim
    goal = t["target"]
    ax.axhline(goal, ls="--", lw=0.9, color="C2")
    size = t.get("sample_size")
    if summary["curve"] is None:
        label = f"target {fmt_pct(goal)}"
    elif not t["reachable"]:
        chance = f" ({fmt_chance(t['p_reachable'])})" if t.get("p_reachable") is not None else ""
        label = f"target {fmt_pct(goal)}: probably unreachable{chance}"
    elif size is not None and not _is_inf(size) and size <= xhi:
        ax.plot([size], [goal], marker="v", ms=9, color="C2", zorder=6)
        ax.axvline(size, ymin=0, ymax=(goal - ylo) / (yhi - ylo), ls=":", lw=0.8, color="C2")
        label = f"target {fmt_pct(goal)}: {fmt_size(size)}"
    else:
        label = f"target {fmt_pct(goal)}: {fmt_size(size)} (off the chart)"
    ax.annotate(label, xy=(xlo, goal), xytext=(4, 3), textcoords="offset points", fontsize=8, color="C2")


def _set_axes(ax, xlim: tuple[float, float], ylim: tuple[float, float], ylabel: str, **legend: Any) -> None:
    """Log sample-size axis, limits, labels, grid and legend, as every score plot has them."""
    ax.set_xscale("log")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("sample size (labelled images drawn from the pool)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", **legend)


def _finish_plot(fig, ax, summary: dict, title: str) -> bytes:
    """Title the plot, mark a partial sweep across the top, and return the PNG."""
    ax.set_title(title, fontsize=10)
    if not summary["complete"]:
        t = summary["trials"]
        fig.suptitle(f"PARTIAL SWEEP: {t['usable']} of {t['expected']} trials usable", color="red", fontweight="bold")
    fig.tight_layout()
    return _png(fig)


def plot_class_curves(summary: dict, class_fits: dict) -> bytes | None:
    """Per-class recall against sample size; the weakest classes when there are many."""
    classes = [c for c in summary["per_class"] if c["measured"]]
    if not classes:
        return None
    classes.sort(key=lambda c: c["recall_at_largest"])
    shown = classes[:MAX_CLASSES_PLOTTED]
    fig = Figure(figsize=(9.5, 5.2), dpi=100)
    ax = fig.add_subplot()
    xlo, xhi = _x_range(summary)
    grid = np.geomspace(xlo, xhi, 200)
    for i, c in enumerate(shown):
        color = f"C{i % 10}"
        xs = [row["sample_size"] for row in c["measured"]]
        ys = [row["mean"] for row in c["measured"]]
        ax.plot(xs, ys, "o", color=color, ms=4, label=_mpl_text(c["class"], 30))
        f = class_fits.get(c["class"])
        if f is not None:
            ax.plot(grid, np.asarray(f.predict(grid), float), lw=1.2, color=color, alpha=0.8)
    if summary["curve"] is not None:
        ax.axvspan(summary["curve"]["max_fitted_size"], xhi, color="grey", alpha=0.08, lw=0)
    ax.set_xscale("log")
    ax.set_xlim(xlo, xhi)
    lowest = min(row["mean"] for c in shown for row in c["measured"])
    ax.set_ylim(max(0.0, lowest - 0.1), 1.02)
    ax.set_xlabel("sample size")
    ax.set_ylabel("recall on the test set")
    extra = f" (the {len(shown)} weakest of {len(classes)})" if len(classes) > len(shown) else ""
    title = f"Per-class recall{extra}: lines are fitted curves, points are means over repetitions"
    if not summary["complete"]:
        title = "PARTIAL SWEEP. " + title
    ax.set_title(title, fontsize=9, color="red" if not summary["complete"] else "black")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------- HTML

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


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _table(headers: list[str], rows: list[list[Any]], left: int = 1, row_classes: list[str] | None = None) -> str:
    """A table; the first `left` columns are text, left-aligned. Every cell is escaped."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{_e(row_classes[r])}"' if row_classes and row_classes[r] else ""
        body.append(f"<tr{cls}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _page_start(summary: dict, title: str, heading: str) -> list[str]:
    """The HTML page's head, its title line and the PARTIAL banner, shared by both kinds of report."""
    sweep = summary["run"].get("sweep", "")
    partial = not summary["complete"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{title}: {_e(sweep)}{' (PARTIAL)' if partial else ''}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{heading}: {_e(sweep)}{' (partial sweep)' if partial else ''}</h1>",
    ]
    banner = partial_banner(summary)
    if banner:
        parts.append(f'<div class="banner partial">{_e(banner)}</div>')
    return parts


def render_html(summary: dict, curve_png: bytes, class_png: bytes | None = None) -> str:
    """The self-contained HTML report (plots embedded as base64)."""
    m = metric_name(summary)
    parts = _page_start(summary, "samplesize report", "How many labelled images")
    nocurve = no_curve_warning(summary)
    if nocurve:
        parts.append(f'<div class="banner nocurve">{_e(nocurve)}</div>')

    parts.append("<h2>Answer</h2>")
    parts += [f'<p class="headline">{_e(headline(summary, t))}</p>' for t in summary["targets"]]
    parts += [f"<p>{_e(text)}</p>" for text in validation_sentences(summary)]
    parts.append(f"<p>{_img(curve_png, f'{m} against sample size')}</p>")
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
    parts += _run_facts_html(summary["run"])
    parts.append("</body></html>")
    return "\n".join(parts)


def _predictions_html(summary: dict) -> list[str]:
    """The predictions at the sizes asked for, and the size each target needs."""
    m, level = metric_name(summary), level_pct(summary)
    rows = [
        [p["label"], fmt_size(p["sample_size"]), fmt_score(p["predicted"]), fmt_interval(p["interval"]),
         fmt_times(p["times_past_data"]), "far extrapolation" if p["far"] else ""]
        for p in summary["predictions"]
    ]
    targets = [
        [fmt_pct(t["target"]), "yes" if t["reachable"] else "probably not", fmt_size(t["sample_size"]),
         size_interval(t), fmt_times(t["times_past_data"]),
         "-" if t.get("p_reachable") is None else fmt_chance(t["p_reachable"])]
        for t in summary["targets"]
    ]
    return [
        "<h2>Predictions</h2>",
        _table(["Why", "Sample size", f"Predicted {m}", f"{level} interval", "Past the data", "Note"], rows),
        '<p class="muted">"Past the data" is the sample size divided by the largest fitted sample size. '
        f"Beyond {far_text(summary)} the prediction is a far extrapolation.</p>",
        _table(["Target", "Reachable", "Sample size needed", f"{level} interval", "Past the data",
                "Chance it is reachable"], targets),
    ]


def _families_html(c: dict) -> list[str]:
    """The curve families: which was chosen (or blended) and how each extrapolated."""
    rows, classes = [], []
    for f in c["families"]:
        rows.append([f["name"], f["formula"] or "", fmt_score(f["in_sample_rmse"]), fmt_score(f["extrapolation_error"]),
                     fmt_score(f["weight"]), "none" if _is_inf(f["ceiling"]) else fmt_score(f["ceiling"]),
                     "yes" if f["converged"] else "no"])
        classes.append("chosen" if f["chosen"] or f["in_blend"] else "")
    return [
        "<h2>Curve families</h2>",
        f"<p>Chosen: <b>{_e(c['family'])}</b>. {_e(family_sentence(c))} Families are judged by their "
        "extrapolation error (refitted without the largest sizes, then asked to predict them), "
        "not by in-sample fit.</p>",
        _table(["Family", "Formula", "Fit RMSE", "Extrapolation error", "Weight", "Ceiling", "Converged"],
               rows, left=2, row_classes=classes),
    ]


def _measured_html(summary: dict) -> list[str]:
    rows = [
        [f"{r['split']:g}", "backtest" if r["backtest"] else "fitted", fmt_size(r["sample_size"]), f"{r['n']} / {r['expected']}",
         fmt_score(r["mean"]), fmt_score(r["std"]), fmt_score(r["min"]), fmt_score(r["max"])]
        for r in summary["per_size"]
    ]
    return ["<h2>Measured scores per size</h2>",
            _table(["Split", "Role", "Sample size", "Trials", f"Mean {metric_name(summary)}", "Std", "Min", "Max"],
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
        _table(["Split", "Sample size", "Trials", "Measured mean", "Predicted", f"{level_pct(summary)} interval",
                "Measured inside interval"], rows),
    ]


def _trials_html(summary: dict) -> list[str]:
    """The trial counts, the indexes still missing or failed, and every warning not shown as a banner."""
    t = summary["trials"]
    parts = ["<h2>Trials and warnings</h2>", _table(["", ""], [
        ["Expected trials", t["expected"]],
        ["Usable results", t["usable"]],
        ["Missing indexes", ", ".join(map(str, t["missing"])) or "none"],
        ["Failed indexes (reported by the Job)", ", ".join(map(str, t["failed"])) or "none"],
        ["Job state", t["job_state"] if t["job_state"] is not None else "not known (local run)"],
    ])]
    shown = listed_warnings(summary)
    parts.append("<ul>" + "".join(f"<li>{_e(w)}</li>" for w in shown) + "</ul>" if shown else "<p>No warnings.</p>")
    return parts


def _run_facts_html(run: dict) -> list[str]:
    facts = [
        ["Dataset", run["dataset"]],
        ["Pool size", fmt_size(run["pool_size"])],
        ["Test set size", fmt_size(run["test_size"])],
        ["Classes", run["classes"]],
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
    return ["<h2>Run facts</h2>", _table(["", ""], facts, left=2)]


def _per_class_html(summary: dict, class_png: bytes | None) -> str:
    classes = summary["per_class"]
    if not classes:
        return ""
    out = ["<h2>Per-class recall</h2>",
           "<p>Classes with the lowest recall or the lowest ceiling are the ones short of data (or hard to tell apart).</p>"]
    if class_png:
        out.append(f"<p>{_img(class_png, 'per-class recall against sample size')}</p>")
    predictions = summary["predictions"] or []
    at = _class_prediction_column(predictions)
    last = predictions[at] if predictions else None
    headers = ["Class", "Recall at largest fitted size", "Fitted ceiling"]
    if last:
        headers.append(f"Predicted at {last['label']} ({fmt_size(last['sample_size'])})")
    rows = []
    for c in sorted(classes, key=lambda c: (c["recall_at_largest"] is None, c["recall_at_largest"] or 0)):
        row = [c["class"], fmt_score(c["recall_at_largest"]),
               "-" if c["ceiling"] is None else ("none" if _is_inf(c["ceiling"]) else fmt_score(c["ceiling"]))]
        if last:
            p = c["predictions"][at] if c["predictions"] else None
            row.append("-" if p is None else f"{fmt_score(p['predicted'])} ({fmt_interval(p['interval'])})")
        rows.append(row)
    out.append(_table(headers, rows))
    return "\n".join(out)


def _class_prediction_column(predictions: list[dict]) -> int:
    """Which prediction the per-class table shows: the largest multiple of the pool answers "what
    would that much more of our data buy this class"; without a pool size, the largest size asked for."""
    pooled = [i for i, p in enumerate(predictions) if p.get("pool_multiple")]
    return max(pooled, key=lambda i: predictions[i]["pool_multiple"]) if pooled else len(predictions) - 1


def _confusion_html(summary: dict) -> str:
    cm = summary["confusion_matrix"]
    if not cm:
        return ""
    names = cm["class_names"]
    rows = [[name, *counts] for name, counts in zip(names, cm["matrix"])]
    return "\n".join([
        "<h2>Confusion matrix at the largest size</h2>",
        f"<p>Split {_e(format(cm['split'], 'g'))} (sample size {_e(fmt_size(cm['sample_size']))}), counts summed over "
        f"{_e(cm['trials'])} trial(s). Rows: true class; columns: predicted class.</p>",
        _table(["true \\ predicted", *names], rows),
    ])


# ---------------------------------------------------------------- Markdown


def render_markdown(summary: dict) -> str:
    """A short text report that reads well in a terminal."""
    run = summary["run"]
    lines = [f"# samplesize report: {run['sweep']}{' (PARTIAL SWEEP)' if not summary['complete'] else ''}", ""]
    for banner in (partial_banner(summary), no_curve_warning(summary)):
        if banner:
            lines += [f"> **{banner}**", ""]
    lines += ["## Answer", ""] + [f"- {headline(summary, t)}" for t in summary["targets"]] + [""]
    lines += [f"{text}\n" for text in validation_sentences(summary)]
    if summary["predictions"]:
        lines += _predictions_markdown(summary)
    lines += _measured_markdown(summary)
    shown = listed_warnings(summary)
    if shown:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in shown]
    lines += ["", f"Trials: {summary['trials']['usable']} of {summary['trials']['expected']} usable; "
                  f"total trial time {fmt_seconds(run['total_trial_seconds'])}. Full report: report.html", ""]
    return "\n".join(lines)


def _predictions_markdown(summary: dict) -> list[str]:
    lines = [f"## Predictions ({level_pct(summary)} intervals)", "",
             f"| why | sample size | {metric_name(summary)} | interval | past the data |", "|---|---:|---:|---|---:|"]
    for p in summary["predictions"]:
        far = " (far)" if p["far"] else ""
        lines.append(f"| {p['label']} | {fmt_size(p['sample_size'])} | {fmt_score(p['predicted'])} | "
                     f"{fmt_interval(p['interval'])} | {fmt_times(p['times_past_data'])}{far} |")
    return lines + [""]


def _measured_markdown(summary: dict) -> list[str]:
    """The measured table, the curve family and what each backtest says."""
    lines = ["## Measured", "", f"| split | sample size | trials | mean {metric_name(summary)} | std |",
             "|---:|---:|---:|---:|---:|"]
    for r in summary["per_size"]:
        tag = " (backtest)" if r["backtest"] else ""
        lines.append(f"| {r['split']:g}{tag} | {fmt_size(r['sample_size'])} | {r['n']}/{r['expected']} | "
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


# ---------------------------------------------------------------- comparison of variants


def write_comparison_report(storage: Storage, summary: dict[str, Any], fits: dict[str, Any]) -> list[str]:
    """The report of a sweep with `variants`: the same four files, one curve per variant."""
    curve_png = plot_comparison(summary, fits)
    return _write_files(storage, summary, curve_png, render_comparison_html(summary, curve_png),
                        render_comparison_markdown(summary))


def plot_comparison(summary: dict, fits: dict[str, Any]) -> bytes:
    """Every variant's trials, means and fitted curve with its interval band, on one plot."""
    fig = Figure(figsize=(8, 4.8), dpi=90)
    ax = fig.add_subplot()
    sizes = [p["sample_size"] for p in summary["points"]] or [1.0]
    xlo, xhi = min(sizes) / 1.5, max(sizes) * 4
    grid = np.geomspace(xlo, xhi, 300)
    scores = [p["score"] for p in summary["points"]] or [0.5]
    for i, entry in enumerate(summary["variants"]):
        if entry["summary"] is not None:
            _plot_variant(ax, summary, entry, fits.get(entry["name"]), grid, f"C{i % 10}")
    crossed = False
    for c in summary["comparison"]["crossings"]:
        for x in c["fitted"]:
            if xlo <= x["at"] <= xhi:
                ax.axvline(x["at"], ls=":", lw=1, color="black")
                crossed = True
    ax.axvspan(max(sizes), xhi, color="grey", alpha=0.08, lw=0, label="extrapolation")
    for goal in [t["target"] for t in summary["comparison"]["targets"]]:
        ax.axhline(goal, ls="--", lw=0.8, color="grey")
    _set_axes(ax, (xlo, xhi), (max(0.0, min(scores) - 0.05), min(1.0, max(scores) + 0.05)), metric_name(summary),
              fontsize=8)
    title = f"{metric_name(summary)} by variant: {_mpl_text(summary['run'].get('sweep', ''))}"
    title += " (dotted: the fitted curves cross)" if crossed else ""
    return _finish_plot(fig, ax, summary, title)


def _plot_variant(ax, summary: dict, entry: dict, fit: Any, grid: np.ndarray, color: str) -> None:
    """One variant's trials, its means and, with a fit, its curve and interval band."""
    vs = entry["summary"]
    pts = vs["points"]
    ax.scatter([p["sample_size"] for p in pts], [p["score"] for p in pts], s=10, alpha=0.35, color=color)
    ax.plot([r["sample_size"] for r in vs["per_size"]], [r["mean"] for r in vs["per_size"]], "s", color=color, ms=5)
    label = _mpl_text(entry["name"], 30)
    if fit is None:
        ax.plot([], [], "s", color=color, label=f"{label} (no curve)")
        return
    low, high = fit.interval(grid, level=interval_level(summary))
    ax.fill_between(grid, np.asarray(low, float), np.asarray(high, float), color=color, alpha=0.15)
    ax.plot(grid, np.asarray(fit.predict(grid), float), lw=2, color=color, label=f"{label} ({level_pct(summary)} band)")


def comparison_sentences(summary: dict) -> list[str]:
    """Which variant reaches each target with the fewest labels, and where the order changes."""
    m = metric_name(summary)
    out = []
    for t in summary["comparison"]["targets"]:
        goal = fmt_pct(t["target"])
        best = t["fewest"]
        if best is None:
            out.append(f"{goal} {m}: no variant's curve reaches it.")
            continue
        size = t["by_variant"][best]["sample_size"]
        how = (f"clearly: its {level_pct(summary)} interval ends before any other variant's begins" if t["clear"]
               else "but the intervals overlap, so the order is within the uncertainty")
        out.append(f"{goal} {m}: {best} gets there with the fewest labels (about {fmt_size(size)}), {how}.")
    for c in summary["comparison"]["crossings"]:
        a, b = c["variants"]
        for x in c["measured"]:
            low, high = (fmt_size(v) for v in x["between"])
            out.append(f"Measured on the same subsamples: {x['before']} leads up to {low} images and {x['after']} "
                       f"from {high}: the order changes between {low} and {high} images.")
        for x in c["fitted"]:
            where = "beyond the measured sizes (an extrapolation)" if x["beyond_data"] else "within the measured sizes"
            out.append(f"Fitted curves of {a} and {b} cross at about {fmt_size(x['at'])} images, {where}: "
                       f"{x['before']} leads below, {x['after']} above.")
        if not c["measured"] and not c["fitted"]:
            out.append(f"The curves of {a} and {b} do not cross in the measured range or up to "
                       f"{CROSSING_REACH:g}x the largest measured size.")
    return out


def _comparison_rows(summary: dict) -> tuple[list[str], list[list[Any]]]:
    names = summary["comparison"]["variants"]
    headers = ["Target"] + [f"{n}: size ({level_pct(summary)} interval; chance reachable)" for n in names] + ["Fewest labels"]
    rows = []
    for t in summary["comparison"]["targets"]:
        row = [fmt_pct(t["target"])]
        for n in names:
            v = t["by_variant"].get(n)
            if v is None:
                row.append("no curve")
            else:
                size = fmt_size(v["sample_size"]) if v["reachable"] else "probably unreachable"
                row.append(f"{size} ({fmt_interval(v['interval'], fmt_size)}; {fmt_chance(v['p_reachable'])})")
        row.append((t["fewest"] or "none") + ("" if t["clear"] or t["fewest"] is None else " (overlapping)"))
        rows.append(row)
    return headers, rows


def _paired_rows(pair: dict) -> list[list[Any]]:
    return [[f"{r['split']:g}" + (" (backtest)" if r["backtest"] else ""), fmt_size(r["sample_size"]), r["pairs"],
             f"{r['mean']:+.3f}", fmt_score(r["std"]),
             "-" if r["interval"] is None else f"{r['interval'][0]:+.3f} to {r['interval'][1]:+.3f}",
             f"{r['min']:+.3f} to {r['max']:+.3f}", f"{r['wins']}/{r['pairs']}"] for r in pair["rows"]]


def _paired_headers(summary: dict) -> list[str]:
    return ["Split", "Sample size", "Pairs", "Mean difference", "Std", f"{level_pct(summary)} interval of the mean",
            "Range", "Wins"]


def render_comparison_html(summary: dict, curve_png: bytes) -> str:
    """The self-contained HTML report of a comparison sweep."""
    m = metric_name(summary)
    parts = _page_start(summary, "samplesize comparison", "More labels or another pipeline")
    parts.append("<h2>Answer</h2>")
    parts += [f'<p class="headline">{_e(s)}</p>' for s in comparison_sentences(summary)]
    parts.append(f"<p>{_img(curve_png, f'{m} against sample size, one curve per variant')}</p>")
    headers, rows = _comparison_rows(summary)
    parts.append("<h2>Sample size needed, by variant</h2>")
    parts.append(_table(headers, rows))
    parts.append("<h2>Paired differences (measured)</h2>")
    parts.append("<p>Each pair is one (split, repetition): the same subsample, trained in both variants. The "
                 "difference of their scores is the measured comparison, with no curve in between.</p>")
    for pair in summary["comparison"]["paired"]:
        parts.append(f"<p><b>{_e(pair['difference'])}</b> ({_e(m)})</p>")
        parts.append(_table(_paired_headers(summary), _paired_rows(pair)))
    for entry in summary["variants"]:
        vs = entry["summary"]
        parts.append(f"<h2>Variant {_e(entry['name'])}</h2><p class=\"muted\">{_e(entry['changes'])}</p>")
        if vs is None:
            parts.append("<p>No usable result yet.</p>")
            continue
        parts += [f"<p>{_e(headline(vs, t))}</p>" for t in vs["targets"]]
        rows = [[f"{r['split']:g}", "backtest" if r["backtest"] else "fitted", fmt_size(r["sample_size"]),
                 f"{r['n']} / {r['expected']}", fmt_score(r["mean"]), fmt_score(r["std"])] for r in vs["per_size"]]
        parts.append(_table(["Split", "Role", "Sample size", "Trials", f"Mean {m}", "Std"], rows, left=2))
        if vs["curve"]:
            parts.append(f"<p>{_e(family_sentence(vs['curve']))}</p>")
    parts.append("<h2>Warnings</h2>")
    shown = listed_warnings(summary)
    parts.append("<ul>" + "".join(f"<li>{_e(w)}</li>" for w in shown) + "</ul>" if shown else "<p>No warnings.</p>")
    run = summary["run"]
    parts.append(f"<p class=\"muted\">Config hash {_e(run.get('config_hash'))}; generated {_e(run.get('generated_at'))} "
                 f"by samplesize {_e(run.get('aggregated_by'))}.</p></body></html>")
    return "\n".join(parts)


def render_comparison_markdown(summary: dict) -> str:
    """The comparison in a terminal: the answer, the table per target, the paired differences."""
    m = metric_name(summary)
    lines = [f"# samplesize comparison: {summary['run'].get('sweep', '')}"
             f"{' (PARTIAL SWEEP)' if not summary['complete'] else ''}", ""]
    banner = partial_banner(summary)
    if banner:
        lines += [f"> **{banner}**", ""]
    lines += ["## Answer", ""] + [f"- {s}" for s in comparison_sentences(summary)] + [""]
    headers, rows = _comparison_rows(summary)
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]
    for pair in summary["comparison"]["paired"]:
        lines += [f"## Paired differences: {pair['difference']} ({m})", "",
                  "| " + " | ".join(_paired_headers(summary)) + " |", "|" + "---:|" * len(_paired_headers(summary))]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in _paired_rows(pair)] + [""]
    shown = listed_warnings(summary)
    if shown:
        lines += ["## Warnings", ""] + [f"- {w}" for w in shown] + [""]
    lines += [f"Trials: {summary['trials']['usable']} of {summary['trials']['expected']} usable. Full report: report.html", ""]
    return "\n".join(lines)
