"""What more labels buy, the assurance size and the collection plan: in the API, summary.json and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fake_sweep import BOOT, POOL, make_cfg, scenario_summary
from samplesize.collection_summary import NextSteps
from samplesize.config import build_config
from samplesize.curves import (REACH_HORIZON, assurance_size, fit_learning_curve, gain_per_1000, plan_collection,
                               predicted_gains, whole_size)
from samplesize.curves.collection import reach_chances
from samplesize.errors import ConfigError
from samplesize.jsonsafe import json_safe
from samplesize.report.markdown import render_markdown
from samplesize.summarize import curve_kind

SIZES = np.repeat([50, 100, 200, 400, 800], 4)


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(3)
    scores = 0.95 - 2.0 * SIZES ** -0.5 + rng.normal(0, 0.01, SIZES.size)
    return fit_learning_curve(SIZES, scores, n_bootstrap=200, n_test=500)


# -- gains

def test_gains_agree_with_predict(fit):
    gains = predicted_gains(fit, 800, [0, 200, 800, 2400])
    for g in gains:
        assert g.total == 800 + g.more
        assert g.gain == pytest.approx(float(fit.predict(g.total) - fit.predict(800)), abs=1e-12)
        assert g.interval[0] <= g.gain <= g.interval[1]
    assert gains[0].gain == pytest.approx(0.0, abs=1e-12) and gains[0].interval[1] == pytest.approx(0.0, abs=1e-9)
    assert [g.gain for g in gains] == sorted(g.gain for g in gains)


def test_default_increments_are_a_quarter_half_double_and_four_times_the_pool(fit):
    assert [g.more for g in predicted_gains(fit, 800)] == [200, 400, 800, 2400]


def test_paired_gain_interval_is_within_the_difference_of_the_two_level_intervals(fit):
    narrower = 0
    for g in predicted_gains(fit, 800, [100, 400, 1600, 6400, 25600]):
        low, high = fit.interval(np.array([800.0, g.total]))
        diff = (low[1] - high[0], high[1] - low[0])
        assert diff[0] - 1e-12 <= g.interval[0] and g.interval[1] <= diff[1] + 1e-12
        assert g.interval[1] - g.interval[0] <= diff[1] - diff[0] + 1e-12
        narrower += g.interval[1] - g.interval[0] < 0.9 * (diff[1] - diff[0])
    assert narrower >= 3, "pairing cancels the shared level of the curve: most gains are clearly narrower"


def test_without_a_bootstrap_the_gain_interval_is_the_difference_of_the_two_intervals():
    rng = np.random.default_rng(3)
    fit = fit_learning_curve(SIZES, 0.95 - 2.0 * SIZES ** -0.5 + rng.normal(0, 0.01, SIZES.size), n_bootstrap=0,
                             n_test=500)
    g = predicted_gains(fit, 800, [800])[0]
    low, high = fit.interval(np.array([800.0, 1600.0]))
    assert g.interval == pytest.approx((max(low[1] - high[0], 0.0), high[1] - low[0]))


def test_gain_per_1000_is_the_slope_of_the_curve(fit):
    slope = gain_per_1000(fit, 800)
    assert slope > 0
    assert slope == pytest.approx(float(fit.predict(810) - fit.predict(790)) / 20 * 1000, rel=1e-3)


def test_gains_refuse_a_bad_size_or_count(fit):
    with pytest.raises(ValueError, match="current_size"):
        predicted_gains(fit, 0)
    with pytest.raises(ValueError, match="more"):
        predicted_gains(fit, 800, [-5])


# -- assurance size

def chance(fit, target, n) -> float:
    return float(reach_chances(fit, target, np.atleast_1d(float(n)))[0])


def test_assurance_size_is_where_the_plans_chance_first_crosses_the_assurance(fit):
    answer = assurance_size(fit, 0.87, 0.8)
    assert math.isfinite(answer.size) and answer.size > fit.min_size
    assert chance(fit, 0.87, answer.size) >= 0.8
    assert chance(fit, 0.87, answer.size / 1.002) < 0.8
    assert answer.probability == pytest.approx(chance(fit, 0.87, answer.size))
    # a higher assurance needs at least as many labels
    assert assurance_size(fit, 0.87, 0.6).size <= answer.size


def test_assurance_size_is_inf_with_its_best_chance_when_no_size_gets_there(fit):
    answer = assurance_size(fit, 0.99, 0.8)
    assert answer.size == math.inf
    # the best chance within the horizon is the calibrated p_reachable: the report's two numbers agree
    assert answer.probability == pytest.approx(fit.p_reachable(0.99), abs=1e-3)
    assert answer.probability < 0.8


def test_the_plans_chance_ends_at_p_reachable_either_way(fit):
    """The band's chance is scaled to the calibrated p_reachable at the horizon, up as well as down."""
    grid = np.geomspace(800, REACH_HORIZON * fit.max_size, 160)
    for target in (0.86, 0.88, 0.9, 0.93):
        reach = reach_chances(fit, target, grid)
        assert np.all(np.diff(reach) >= 0) and reach[-1] <= 1.0
        assert reach[-1] == pytest.approx(fit.p_reachable(target), abs=2e-3)
    band_only = float(fit.p_reaches(0.9, grid).max())
    assert band_only != pytest.approx(fit.p_reachable(0.9), abs=1e-3)  # the map moves it here


# -- the plan

def test_a_target_already_reached_stops_with_reached(fit):
    plan = plan_collection(fit, 0.80, 800)
    assert plan.stop and plan.reason == "reached"
    assert plan.recommended_total == 800 and plan.recommended_more == 0 and plan.expected_total == 800
    assert plan.p_this_round == pytest.approx(chance(fit, 0.80, 800)) and plan.p_this_round >= 0.8


def test_a_target_above_one_is_not_worth_pursuing(fit):
    plan = plan_collection(fit, 1.2, 800)
    assert plan.stop and plan.reason == "not worth it"
    assert plan.p_this_round == plan.p_within_rounds == 0.0 and plan.recommended_more == 0


def test_a_reachable_target_gets_a_step_within_the_trusted_range(fit):
    plan = plan_collection(fit, 0.88, 800)
    assert not plan.stop and plan.reason is None
    assert 800 < plan.recommended_total <= 8 * 800 * (1 + 1e-9)
    assert plan.recommended_more == pytest.approx(plan.recommended_total - 800)
    assert 0 < plan.p_this_round <= plan.p_within_rounds <= 1
    assert plan.expected_total >= plan.recommended_total - 1e-9
    assert plan.miss_cost == 100 * 800 and plan.max_step == 8.0  # the defaults, said in the plan


def test_one_round_plan_minimises_labels_plus_the_expected_miss(fit):
    plan = plan_collection(fit, 0.88, 800, rounds=1, miss_cost=50_000)
    grid = np.unique(np.concatenate([[800.0], np.geomspace(800, 64 * fit.max_size, 160)]))
    grid = grid[grid <= 8 * 800 * (1 + 1e-9)]
    reach = reach_chances(fit, 0.88, grid)
    cost = (grid - 800) + 50_000 * (1 - reach)
    assert plan.recommended_total == pytest.approx(grid[np.argmin(cost)])
    assert plan.p_this_round == plan.p_within_rounds == pytest.approx(reach[np.argmin(cost)])


def test_a_dearer_miss_never_collects_less(fit):
    totals = [plan_collection(fit, 0.89, 800, miss_cost=m).recommended_total for m in (2_000, 20_000, 200_000)]
    assert totals == sorted(totals)
    assert plan_collection(fit, 0.89, 800, miss_cost=0).stop  # nothing lost by missing: collect nothing


def test_more_rounds_never_lower_the_chance_within_them(fit):
    within = [plan_collection(fit, 0.9, 800, rounds=r, miss_cost=100_000).p_within_rounds for r in (1, 2, 3)]
    assert within == sorted(within)


def test_a_smaller_max_step_caps_the_round(fit):
    plan = plan_collection(fit, 0.9, 800, max_step=2, miss_cost=100_000)
    assert plan.recommended_total <= 1600 * (1 + 1e-9)


@pytest.mark.parametrize("kwargs, word", [({"label_cost": 0}, "label_cost"), ({"miss_cost": -1}, "miss_cost"),
                                          ({"rounds": 0}, "rounds"), ({"rounds": 1.5}, "rounds"),
                                          ({"max_step": 1}, "max_step"), ({"assurance": 1.0}, "assurance")])
def test_plan_refuses_out_of_range_settings(fit, kwargs, word):
    with pytest.raises(ValueError, match=word):
        plan_collection(fit, 0.9, 800, **kwargs)


# -- config

@pytest.mark.parametrize("collection, key", [({"label_cost": 0}, "collection.label_cost"),
                                             ({"miss_cost": -3}, "collection.miss_cost"),
                                             ({"rounds": 0}, "collection.rounds"),
                                             ({"max_step": 0.5}, "collection.max_step"),
                                             ({"assurance": 1.5}, "collection.assurance"),
                                             ({"rounds": "two"}, "collection.rounds"),
                                             ({"label_costs": 1}, "collection.label_costs")])
def test_collection_keys_are_validated_naming_the_key(collection, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config({"collection": collection})


def test_collection_keys_change_the_report_not_the_trials():
    plain = build_config({})
    costed = build_config({"collection": {"label_cost": 4.5, "miss_cost": 1e6, "rounds": 2, "max_step": 4}})
    assert costed.collection.miss_cost == 1e6 and costed.collection.rounds == 2
    assert costed.trial_hash() == plain.trial_hash()


# -- summary.json, the report and the API carry the same numbers

@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    return scenario_summary("complete", tmp_path_factory.mktemp("complete"))


def _summary_fit(summary):
    cfg = make_cfg()
    points = summary["points"]
    return fit_learning_curve([p["sample_size"] for p in points], [p["score"] for p in points], n_bootstrap=BOOT,
                              seed=cfg.seed, n_test=summary["run"]["test_size"], kind=curve_kind(cfg.model))


def test_summary_next_steps_are_the_apis_numbers(summary):
    ns, fit = summary["next_steps"], _summary_fit(summary)
    assert ns["current_size"] == POOL
    for row, gain in zip(ns["gains"], predicted_gains(fit, POOL, [r["more"] for r in ns["gains"]])):
        assert row["gain"] == pytest.approx(gain.gain) and row["interval"] == pytest.approx(list(gain.interval))
    assert ns["gain_per_1000"] == pytest.approx(gain_per_1000(fit, POOL))
    for row in ns["plans"]:
        plan = plan_collection(fit, row["target"], POOL)
        assert row["stop"] == plan.stop and row["reason"] == plan.reason
        assert row["recommended_total"] == whole_size(plan.recommended_total)
        assert row["p_this_round"] == pytest.approx(plan.p_this_round)
        assert row["p_within_rounds"] == pytest.approx(plan.p_within_rounds)
        size = assurance_size(fit, row["target"]).size
        assert row["assurance_size"] == ("inf" if size == math.inf else whole_size(size))
    assert ns["defaults"] == ["label_cost", "miss_cost", "rounds", "max_step", "assurance"]


def test_summary_next_steps_read_back_unchanged(summary):
    doc = json.loads(json.dumps(summary["next_steps"]))
    assert json.loads(json.dumps(json_safe(NextSteps.from_json(doc).to_json()))) == doc


def test_report_leads_what_to_do_next_with_one_sentence(summary):
    text = render_markdown(summary)
    section = text.split("## What to do next", 1)[1].split("\n## ", 1)[0]
    lead = section.strip().splitlines()[0]
    assert lead.startswith("**") and lead.endswith("**")
    assert "99%: not worth pursuing" in lead  # 85% is reached; 99% is the open target
    assert "stop: reached" in section and "(defaults: label_cost" in section
    for row in summary["next_steps"]["gains"]:
        assert f"{row['gain']:+.3f}" in section


def test_costs_set_in_the_config_reach_the_plan_and_the_report(tmp_path):
    from fake_sweep import write_sweep
    from samplesize.aggregate import aggregate
    cfg = make_cfg(targets=[0.9], collection={"label_cost": 2, "miss_cost": 1e7, "rounds": 2})
    storage = write_sweep(cfg, tmp_path)
    aggregate(cfg, storage, n_bootstrap=BOOT)
    doc = json.loads((tmp_path / "report" / "summary.json").read_text())
    ns = doc["next_steps"]
    assert ns["settings"]["miss_cost"] == 1e7 and ns["settings"]["rounds"] == 2
    assert ns["defaults"] == ["max_step", "assurance"]
    plan = ns["plans"][0]
    assert not plan["stop"] and plan["recommended_more"] > 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"Label about {plan['recommended_more']:,.0f} more images (to {plan['recommended_total']:,.0f})" in md
    assert "within 2 rounds" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "What to do next" in html and f"{plan['recommended_total']:,.0f}" in html


def test_every_variant_gets_its_own_plan(tmp_path):
    doc = scenario_summary("variants", tmp_path)
    plans = [v["summary"]["next_steps"] for v in doc["variants"]]
    assert all(p is not None and len(p["plans"]) == 2 for p in plans)


def test_without_a_curve_there_are_no_next_steps(tmp_path):
    assert scenario_summary("one-split", tmp_path)["next_steps"] is None
