"""The report's wording: numbers, intervals and sentences shared by the HTML and Markdown pages."""

from __future__ import annotations

import math
from typing import Any

from ..curves import CROSSING_REACH, FAR_FACTOR, LEVEL

METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
    "auc": "AUC",
}


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


def is_inf(v: Any) -> bool:
    return v == "inf" or (isinstance(v, float) and math.isinf(v))


def fmt_size(v: Any) -> str:
    if v is None:
        return "-"
    if is_inf(v):
        return "unbounded"
    return f"{int(math.ceil(float(v))):,}"


def size_unit(summary: dict) -> str:
    """What the summary's sizes count: "images", or the groups' name ("patients") with `dataset.group_column`."""
    return (summary.get("run") or {}).get("size_unit") or "images"


def images_note(summary: dict, size: Any) -> str:
    """With groups, "≈ 1,236 images; " (what `size` groups hold at the pool's images per group), to open the
    parenthesis after a size; else ""."""
    per_group = (summary.get("run") or {}).get("images_per_group")
    if per_group is None or size is None:
        return ""
    return f"≈ {fmt_size('inf' if is_inf(size) else float(size) * per_group)} images; "


def images_beside(summary: dict, size: Any) -> str:
    """With groups, " (≈ 1,236 images)"; else ""."""
    note = images_note(summary, size)
    return f" ({note.removesuffix('; ')})" if note else ""


def labelled(summary: dict, size: Any) -> str:
    """A size in words: "1,234 labelled images", or with groups "412 patients"."""
    unit = size_unit(summary)
    return f"{fmt_size(size)} {'labelled images' if unit == 'images' else unit}"


def size_cell(summary: dict, size: Any, images: Any = None) -> str:
    """A table's size: "1,234", or with groups the measured (or estimated) images beside it: "412 (1,236 images)"."""
    if size_unit(summary) == "images":
        return fmt_size(size)
    if images is None:  # a size beyond the data: at the pool's images per group
        images = float(size) * summary["run"]["images_per_group"]
    return f"{fmt_size(size)} ({fmt_size(images)} images)"


def dataset_facts(summary: dict) -> list[tuple[str, str]]:
    """The run facts' lines about the data (label, text): files skipped by reason, duplicates kept and dropped,
    and groups per class in the pool and the test set; none when the prepared copy recorded nothing to list."""
    data = (summary.get("run") or {}).get("dataset_summary")
    if not data:
        return []
    facts = []
    skipped = data["skipped"]
    n_skipped = sum(skipped["counts"].values()) + skipped["others"]["images"]
    if n_skipped:
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in skipped["counts"].items())
        if skipped["others"]["values"]:
            reasons += f", {skipped['others']['images']:,} for {skipped['others']['values']:,} other reasons"
        facts.append(("Skipped files", f"{n_skipped:,} ({reasons})"))
    kept, dropped = data["duplicates"]["counts"], data["duplicates"]["dropped"]
    if kept or dropped:
        where = ", ".join(f"{n:,} in {w}" for w, n in sorted(kept.items()))
        text = f"{sum(kept.values()):,} kept" + (f" ({where})" if where else "")
        facts.append(("Duplicate images", text + (f"; {dropped:,} dropped (dataset.duplicates: drop)" if dropped else "")))
    if data["total"].get("pool_groups") is not None:
        unit = size_unit(summary)
        classes = [(c["name"], c) for c in data["classes"]]
        if data.get("other_classes"):
            classes.append((f"{data['other_classes']['classes']:,} more classes", data["other_classes"]))
        facts.append((f"{unit.capitalize()} per class (pool / test)",
                      "; ".join(f"{name} {c['pool_groups']:,} / {c['test_groups']:,}" for name, c in classes)))
    return facts


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
    if is_inf(high) and horizon is not None:
        return f"{fmt_size(low) if not is_inf(low) else 'more than ' + fmt_size(horizon)} to more than {fmt_size(horizon)}"
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
        if low is not None and not is_inf(low):
            text += (f" Only the optimistic end of the {level_pct(summary)} interval reaches it, at about "
                     f"{fmt_size(low)} {size_unit(summary)}{images_beside(summary, low)}.")
        return text
    size, times = labelled(summary, target["sample_size"]), fmt_times(target["times_past_data"])
    if target.get("reached_in_data"):
        return (
            f"{goal} {m} is already reached within the measured sizes; the curve puts it at about "
            f"{size} ({images_note(summary, target['sample_size'])}{level_pct(summary)} interval "
            f"{fmt_interval(target['interval'], fmt_size)})."
        )
    text = (
        f"To reach {goal} {m} you need about {size} "
        f"({images_note(summary, target['sample_size'])}{level_pct(summary)} interval {fmt_interval(target['interval'], fmt_size)}), {times} the largest fitted sample size."
    )
    if target["far"]:
        text += f" That is a far extrapolation (more than {far_text(summary)} past the data): treat it as a rough guide."
    return text


def beyond_ceiling(target: dict) -> str:
    """The verdict on a target above the point curve's ceiling, decided by its calibrated chance.

    A confident wrong "unreachable" tells a team to stop collecting: the costliest mistake this report can make."""
    p = target.get("p_reachable")
    if isinstance(p, (int, float)) and p >= 0.5:
        return "above the fitted ceiling, yet more likely reachable than not"
    return "probably unreachable with this pipeline"


def _headline_with_chance(summary: dict, target: dict) -> str:
    """The answer with its size interval and the chance that the target is reachable at all."""
    m, goal = metric_name(summary), fmt_pct(target["target"])
    chance = fmt_chance(target["p_reachable"])
    horizon = fmt_size(target["reach_horizon"]) if target.get("reach_horizon") is not None else None
    if not target["reachable"]:
        text = (f"{goal} {m}: {beyond_ceiling(target)} ({chance} that it is reachable"
                f"{f' within {horizon} {size_unit(summary)}' if horizon else ''}); the fitted ceiling is "
                f"{fmt_score(target['ceiling'])}.")
        low = target["interval"][0] if target["interval"] else None
        if low is not None and not is_inf(low):
            text += (f" Only the optimistic end of the {level_pct(summary)} interval reaches it, at about "
                     f"{fmt_size(low)} {size_unit(summary)}{images_beside(summary, low)}.")
        return text
    size = labelled(summary, target["sample_size"])
    if target.get("reached_in_data"):
        return (f"{goal} {m}: already reached within the measured sizes; the curve puts it at about {size} "
                f"({images_note(summary, target['sample_size'])}{level_pct(summary)} interval {size_interval(target)}).")
    text = (f"{goal} {m}: about {size} ({images_note(summary, target['sample_size'])}{level_pct(summary)} interval {size_interval(target)}; {chance} that it "
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
        text = (f"CAUTION: at {fmt_size(c['sample_size'])} {size_unit(summary)} the curve fitted without the backtest predicted "
                f"{fmt_score(c['predicted'])} ({fmt_interval(c['interval'])}), but {fmt_score(c['measured_mean'])} "
                f"{m} was measured, {where}")
        if c["above_ceiling"]:
            text += f" and above its ceiling ({fmt_score(c['ceiling'])})"
        out.append(text + ". The method missed on this sweep: weigh the answer with that in mind.")
    return out


def class_prediction_column(predictions: list[dict]) -> int:
    """Which prediction the per-class table shows: the largest multiple of the pool answers "what
    would that much more of our data buy this class"; without a pool size, the largest size asked for."""
    pooled = [i for i, p in enumerate(predictions) if p.get("pool_multiple")]
    return max(pooled, key=lambda i: predictions[i]["pool_multiple"]) if pooled else len(predictions) - 1


def comparison_sentences(summary: dict) -> list[str]:
    """Which variant reaches each target with the fewest labels, and where the order changes."""
    m, unit = metric_name(summary), size_unit(summary)
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
            out.append(f"Measured on the same subsamples: {x['before']} leads up to {low} {unit} and {x['after']} "
                       f"from {high}: the order changes between {low} and {high} {unit}.")
        for x in c["fitted"]:
            where = "beyond the measured sizes (an extrapolation)" if x["beyond_data"] else "within the measured sizes"
            out.append(f"Fitted curves of {a} and {b} cross at about {fmt_size(x['at'])} {unit}, {where}: "
                       f"{x['before']} leads below, {x['after']} above.")
        if not c["measured"] and not c["fitted"]:
            out.append(f"The curves of {a} and {b} do not cross in the measured range or up to "
                       f"{CROSSING_REACH:g}x the largest measured size.")
    return out


def comparison_rows(summary: dict) -> tuple[list[str], list[list[Any]]]:
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
                size = fmt_size(v["sample_size"]) if v["reachable"] else beyond_ceiling(v).removesuffix(" with this pipeline")
                row.append(f"{size} ({fmt_interval(v['interval'], fmt_size)}; {fmt_chance(v['p_reachable'])})")
        row.append((t["fewest"] or "none") + ("" if t["clear"] or t["fewest"] is None else " (overlapping)"))
        rows.append(row)
    return headers, rows


def paired_rows(pair: dict) -> list[list[Any]]:
    return [[f"{r['split']:g}" + (" (backtest)" if r["backtest"] else ""), fmt_size(r["sample_size"]), r["pairs"],
             f"{r['mean']:+.3f}", fmt_score(r["std"]),
             "-" if r["interval"] is None else f"{r['interval'][0]:+.3f} to {r['interval'][1]:+.3f}",
             f"{r['min']:+.3f} to {r['max']:+.3f}", f"{r['wins']}/{r['pairs']}"] for r in pair["rows"]]


def paired_headers(summary: dict) -> list[str]:
    return ["Split", "Sample size", "Pairs", "Mean difference", "Std", f"{level_pct(summary)} interval of the mean",
            "Range", "Wins"]
