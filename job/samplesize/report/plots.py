"""The report's figures (matplotlib, Agg): the learning curve, per-class curves, the comparison.

Every figure draws from the summary alone: the fitted curves come sampled on the plot's grid
(`curve.grid`, `per_class[].grid`, `comparison.grid`), so nothing here refits.
`$` is escaped before it reaches matplotlib, which would otherwise read it as mathtext.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..plot_layout import COMPARISON_REACH, plot_range, plotted_classes
from .words import (beyond_ceiling, far_factor, far_text, fmt_chance, fmt_pct, fmt_size, is_inf, level_pct, metric_name,
                    size_unit)


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
    return plot_range([p["sample_size"] for p in summary["points"]],
                      [p["sample_size"] for p in summary["predictions"] or []],
                      [(t.get("reachable"), t.get("sample_size")) for t in summary["targets"]])


def plot_learning_curve(summary: dict) -> bytes:
    """The learning curve: trials, means ± std, families, band, extrapolation, targets."""
    fig = Figure(figsize=(9.5, 5.8), dpi=110)
    ax = fig.add_subplot()
    m = metric_name(summary)
    points = summary["points"]
    xlo, xhi = _x_range(summary)
    _plot_measured(ax, points, summary["per_size"])
    if summary["curve"] is not None:
        _plot_fit(ax, summary, summary["curve"], xhi)
    scores = [p["score"] for p in points]
    goals = [t["target"] for t in summary["targets"]]
    ylo = max(0.0, min(scores) - 0.05)
    yhi = min(1.0, max(scores + goals) + 0.04)
    for t in summary["targets"]:
        _plot_target(ax, summary, t, (xlo, xhi), (ylo, yhi))
    _set_axes(ax, summary, (xlo, xhi), (ylo, yhi), m, fontsize=7, ncol=2)
    title = f"{m} against sample size: {_mpl_text(summary['run']['sweep'])}"
    if summary["curve"] is None:
        title += " (no curve yet: fewer than two splits finished)"
    return _finish_plot(fig, ax, summary, title)


def _values(values: list) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], float)  # JSON's null is a NaN


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


def _plot_fit(ax, summary: dict, curve: dict, xhi: float) -> None:
    """The chosen curve with its interval band, the other families faintly, and the extrapolation zones."""
    grid = curve["grid"]
    sizes = _values(grid["sizes"])
    records = {f["name"]: f for f in curve["families"]}
    for name, values in grid.get("families", {}).items():
        role = f"weight {records[name]['weight']:.2f} in the blend" if records[name]["in_blend"] else "not chosen"
        ax.plot(sizes, _values(values), lw=0.9, alpha=0.35, label=f"{name} ({role})")
    ax.fill_between(sizes, _values(grid["low"]), _values(grid["high"]), color="C1", alpha=0.2,
                    label=f"{level_pct(summary)} interval")
    ax.plot(sizes, _values(grid["mean"]), lw=2.4, color="C1", label=f"chosen: {_mpl_text(curve['family'])}")
    ax.axvspan(curve["max_fitted_size"], xhi, color="grey", alpha=0.08, lw=0, label="extrapolation")
    far = far_factor(summary) * curve["max_fitted_size"]
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
        label = f"target {fmt_pct(goal)}: {beyond_ceiling(t).removesuffix(' with this pipeline')}{chance}"
    elif size is not None and not is_inf(size) and size <= xhi:
        ax.plot([size], [goal], marker="v", ms=9, color="C2", zorder=6)
        ax.axvline(size, ymin=0, ymax=(goal - ylo) / (yhi - ylo), ls=":", lw=0.8, color="C2")
        label = f"target {fmt_pct(goal)}: {fmt_size(size)}"
    else:
        label = f"target {fmt_pct(goal)}: {fmt_size(size)} (off the chart)"
    ax.annotate(label, xy=(xlo, goal), xytext=(4, 3), textcoords="offset points", fontsize=8, color="C2")


def _set_axes(ax, summary: dict, xlim: tuple[float, float], ylim: tuple[float, float], ylabel: str,
              **legend: Any) -> None:
    """Log sample-size axis, limits, labels, grid and legend, as every score plot has them."""
    ax.set_xscale("log")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    unit = size_unit(summary)
    ax.set_xlabel(f"sample size ({'labelled images' if unit == 'images' else _mpl_text(unit)} drawn from the pool)")
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


def plot_class_curves(summary: dict) -> bytes | None:
    """Per-class recall against sample size; the weakest classes when there are many."""
    classes = [c for c in summary["per_class"] if c["measured"]]
    if not classes:
        return None
    shown = [summary["per_class"][i] for i in plotted_classes(c["recall_at_largest"] for c in summary["per_class"])]
    fig = Figure(figsize=(9.5, 5.2), dpi=100)
    ax = fig.add_subplot()
    xlo, xhi = _x_range(summary)
    for i, c in enumerate(shown):
        _plot_class(ax, c, f"C{i % 10}")
    if summary["curve"] is not None:
        ax.axvspan(summary["curve"]["max_fitted_size"], xhi, color="grey", alpha=0.08, lw=0)
    ax.set_xscale("log")
    ax.set_xlim(xlo, xhi)
    lowest = min(row["mean"] for c in shown for row in c["measured"])
    ax.set_ylim(max(0.0, lowest - 0.1), 1.02)
    unit = size_unit(summary)
    ax.set_xlabel("sample size" if unit == "images" else f"sample size ({_mpl_text(unit)})")
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


def _plot_class(ax, c: dict, color: str) -> None:
    """One class's mean recall per split and, when fitted, its curve."""
    xs = [row["sample_size"] for row in c["measured"]]
    ys = [row["mean"] for row in c["measured"]]
    ax.plot(xs, ys, "o", color=color, ms=4, label=_mpl_text(c["class"], 30))
    if c.get("grid"):
        ax.plot(_values(c["grid"]["sizes"]), _values(c["grid"]["mean"]), lw=1.2, color=color, alpha=0.8)


def plot_comparison(summary: dict) -> bytes:
    """Every variant's trials, means and fitted curve with its interval band, on one plot."""
    fig = Figure(figsize=(8, 4.8), dpi=90)
    ax = fig.add_subplot()
    sizes = [p["sample_size"] for p in summary["points"]] or [1.0]
    grid = summary["comparison"]["grid"]
    xlo, xhi = min(sizes) / 1.5, max(sizes) * COMPARISON_REACH
    scores = [p["score"] for p in summary["points"]] or [0.5]
    for i, entry in enumerate(summary["variants"]):
        if entry["summary"] is not None:
            _plot_variant(ax, summary, entry, grid, f"C{i % 10}")
    crossed = False
    for c in summary["comparison"]["crossings"]:
        for x in c["fitted"]:
            if xlo <= x["at"] <= xhi:
                ax.axvline(x["at"], ls=":", lw=1, color="black")
                crossed = True
    ax.axvspan(max(sizes), xhi, color="grey", alpha=0.08, lw=0, label="extrapolation")
    for goal in [t["target"] for t in summary["comparison"]["targets"]]:
        ax.axhline(goal, ls="--", lw=0.8, color="grey")
    _set_axes(ax, summary, (xlo, xhi), (max(0.0, min(scores) - 0.05), min(1.0, max(scores) + 0.05)), metric_name(summary),
              fontsize=8)
    title = f"{metric_name(summary)} by variant: {_mpl_text(summary['run'].get('sweep', ''))}"
    title += " (dotted: the fitted curves cross)" if crossed else ""
    return _finish_plot(fig, ax, summary, title)


def _plot_variant(ax, summary: dict, entry: dict, grid: dict, color: str) -> None:
    """One variant's trials, its means and, with a curve, its curve and interval band."""
    vs = entry["summary"]
    pts = vs["points"]
    ax.scatter([p["sample_size"] for p in pts], [p["score"] for p in pts], s=10, alpha=0.35, color=color)
    ax.plot([r["sample_size"] for r in vs["per_size"]], [r["mean"] for r in vs["per_size"]], "s", color=color, ms=5)
    label = _mpl_text(entry["name"], 30)
    curve = grid["variants"].get(entry["name"])
    if curve is None:
        ax.plot([], [], "s", color=color, label=f"{label} (no curve)")
        return
    sizes = _values(grid["sizes"])
    ax.fill_between(sizes, _values(curve["low"]), _values(curve["high"]), color=color, alpha=0.15)
    ax.plot(sizes, _values(curve["mean"]), lw=2, color=color, label=f"{label} ({level_pct(summary)} band)")
