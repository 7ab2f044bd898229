"""The "What to do next" section's words and tables, shared by report.md and report.html."""

from __future__ import annotations

from typing import Any

from .words import (fmt_chance, fmt_interval, fmt_pct, fmt_score, fmt_size, images_beside, images_note, level_pct,
                    metric_name, size_unit)


def _signed(v: Any) -> str:
    return f"{float(v):+.3f}"


def _share(p: Any) -> str:
    """A probability as "70%" ("less than 1%" and "more than 99%" at the ends)."""
    return fmt_chance(p).removesuffix(" chance")


def _labels(summary: dict) -> str:
    """What is collected: "labels", or with groups their name ("patients")."""
    unit = size_unit(summary)
    return "labels" if unit == "images" else unit


def _pool(summary: dict) -> str:
    """Today's pool: "1,437", or with groups "48 patients"."""
    size, unit = summary["next_steps"]["current_size"], size_unit(summary)
    return fmt_size(size) + ("" if unit == "images" else f" {unit}")


def plan_sentence(summary: dict, plan: dict) -> str:
    """One target's recommendation in one sentence."""
    next_steps = summary["next_steps"]
    s, goal = next_steps["settings"], fmt_pct(plan["target"])
    if plan["stop"] and plan["reason"] == "reached":
        return (f"{goal}: the pool of {_pool(summary)}{images_beside(summary, next_steps['current_size'])} already reaches it "
                f"({fmt_chance(plan['p_this_round'])}); no more labels are needed for it.")
    if plan["stop"]:
        return (f"{goal}: not worth pursuing with this pipeline ({fmt_chance(plan['p_reachable'])} that it is "
                "reachable at all); at these costs, collecting for it costs more than missing it. A better pipeline "
                "(compare one as a variant) is the way there.")
    rounds = int(s["rounds"])
    more = plan["recommended_more"]
    return (f"Label about {fmt_size(more)} more {size_unit(summary)} "
            f"({images_note(summary, more)}to {fmt_size(plan['recommended_total'])}), "
            f"then rerun the sweep: {fmt_chance(plan['p_this_round'])} that this round reaches {goal}, "
            f"{_share(plan['p_within_rounds'])} within {rounds} round"
            f"{'s' if rounds != 1 else ''}; expected total about {fmt_size(plan['expected_total'])} {_labels(summary)}.")


def lead_sentence(summary: dict) -> str:
    """The section's first sentence: the plan for the first target the pool does not reach yet."""
    next_steps = summary["next_steps"]
    plans = next_steps["plans"]
    if not plans:
        return (f"Each 1,000 more {_labels(summary)} add about {_signed(next_steps['gain_per_1000'])} at today's "
                f"pool of {_pool(summary)}; set targets for a collection plan.")
    open_plans = [p for p in plans if p["reason"] != "reached"]
    worth = [p for p in open_plans if not p["stop"]]
    return plan_sentence(summary, (worth or open_plans or plans[-1:])[0])


def settings_sentence(summary: dict) -> str:
    """The costs and limits the plan assumed, naming those left to their defaults."""
    s, defaults = summary["next_steps"]["settings"], summary["next_steps"]["defaults"]
    unit = size_unit(summary)
    named = (f"{'a label' if unit == 'images' else 'labelling one of the ' + unit} costs {s['label_cost']:g}, a missed target {s['miss_cost']:,.0f}; each round collects at most "
             f"{s['max_step']:g}x what there is; {int(s['rounds'])} rounds; assurance {fmt_pct(s['assurance'])}")
    left = f" (defaults: {', '.join(defaults)}; set them under `collection:` in sweep.yaml)" if defaults else ""
    return f"The plan minimises labels x label cost + miss cost x the chance of missing. Assumed: {named}{left}."


def gain_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The gains table: what each number of extra labels buys over the pool."""
    next_steps = summary["next_steps"]
    headers = [f"More {_labels(summary)}", "Total", "Predicted score", "Gain", "Gain interval"]
    rows = [[f"{fmt_size(g['more'])} ({g['label']})", fmt_size(g["total"]), fmt_score(g["score"]), _signed(g["gain"]),
             fmt_interval(g["interval"], _signed)] for g in next_steps["gains"]]
    return headers, rows


def plan_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The plan table: per target, the point and assurance sizes and this round's step."""
    next_steps = summary["next_steps"]
    s = next_steps["settings"]
    headers = ["Target", "Point size", f"Size for {fmt_pct(s['assurance'])} assurance", "This round",
               "Chance this round", f"Within {int(s['rounds'])} rounds", "Expected total"]
    rows = []
    for p in next_steps["plans"]:
        step = ("stop: reached" if p["reason"] == "reached" else "stop: not worth it") if p["stop"] else \
            f"+{fmt_size(p['recommended_more'])} (to {fmt_size(p['recommended_total'])})"
        assured = fmt_size(p["assurance_size"])
        if assured == "unbounded":
            assured = f"none ({_share(p['assurance_probability'])} at best)"
        rows.append([fmt_pct(p["target"]), fmt_size(p["sample_size"]), assured, step,
                     _share(p["p_this_round"]),
                     _share(p["p_within_rounds"]), fmt_size(p["expected_total"])])
    return headers, rows


def gains_caption(summary: dict) -> str:
    ns = summary["next_steps"]
    return (f"What more {_labels(summary)} buy over today's pool of {_pool(summary)} "
            f"({images_note(summary, ns['current_size'])}{metric_name(summary)} {fmt_score(ns['score_now'])}; {_signed(ns['gain_per_1000'])} per 1,000 more "
            f"{_labels(summary)} there). The gain's {level_pct(summary)} interval pairs each bootstrap refit's score at both sizes, "
            "so it is narrower than the two predictions' intervals side by side.")
