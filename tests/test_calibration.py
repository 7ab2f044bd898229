"""Interval calibration on a small fixed corpus of learning curves (inline, seeded)."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from samplesize.curves import calibration as cal
from samplesize.curves import CALIBRATION, Calibration, fit_learning_curve

LADDER = [int(round(20 * 2 ** (i / 2))) for i in range(12)]  # sqrt(2) steps; the largest is 16x the 4th


def fixed_corpus():
    """Six curves from three 'datasets': saturating, still rising, and flat-then-rising shapes."""
    rng = np.random.default_rng(15)
    shapes = {
        "saturating": lambda n: 0.92 - 0.6 * n ** -0.5,
        "rising": lambda n: 0.45 + 0.05 * np.log(n),
        "late": lambda n: 0.6 + 0.3 / (1 + (2000 / n) ** 1.5),
    }
    curves = []
    for name, f in shapes.items():
        for learner in ("a", "b"):
            shift = 0.0 if learner == "a" else -0.03
            scores = [list(np.round(np.clip(f(n) + shift + rng.normal(0, 0.01, 5), 0, 1), 4)) for n in LADDER]
            curves.append({"dataset": name, "learner": learner, "n_test": 500, "sizes": LADDER, "scores": scores})
    return curves


@pytest.fixture(scope="module")
def records():
    return [r for c in fixed_corpus() for r in cal.held_out_records(c, n_bootstrap=20)]


def test_held_out_records_mirror_the_protocol_of_fitting_up_to_a_quarter_and_an_eighth(records):
    per_fit = {}
    for r in records:
        per_fit.setdefault(id(r.fit), (len(r.fit.sizes), r.fit.max_size, []))[2].append(r.horizon)
    # per curve: the 8 sizes up to 1/4 (horizons 2x, 4x), the 6 up to 1/8 (2x, 4x, 8x), and
    # every other size up to 1/4 (4 sizes; 2x, 4x)
    kinds = sorted((n, LADDER.index(top), tuple(h)) for n, top, h in per_fit.values())
    assert kinds == [(4, 7, (2, 4))] * 6 + [(6, 5, (2, 4, 8))] * 6 + [(8, 7, (2, 4))] * 6
    for r in records:
        assert r.n == pytest.approx(r.horizon * r.max_size, rel=0.1)
        assert r.centre == pytest.approx(float(r.fit.predict(r.n)))


def test_fitted_calibration_covers_eighty_percent_in_sample_at_every_horizon(records):
    fitted = cal.fit_calibration(records)
    table = cal.summarise(cal.outcomes(records, fitted, sizes=False))
    assert set(table) == {2, 4, 8}
    for h, row in table.items():
        # conformal ranks: at least 80% of the records
        assert row["coverage"] >= 0.8, h
        assert row["width"] > 0 and row["interval_score"] >= row["width"]
    assert fitted.k_slope in cal.GRID_K_SLOPE and fitted.k_headroom in cal.GRID_K_HEADROOM
    for low, high in fitted.quantiles:
        assert low <= 0 <= high


def test_cross_validation_scores_each_dataset_with_a_calibration_fitted_without_it(records, monkeypatch):
    seen = []
    real_fit = cal.fit_calibration

    def spy(train, **grid):
        seen.append({r.group for r in train})
        return real_fit(train, **grid)

    monkeypatch.setattr(cal, "fit_calibration", spy)
    rows = cal.cross_validate(records, sizes=False)

    assert len(rows) == len(records)
    groups = {r.group for r in records}
    assert len(seen) == len(groups)
    assert all(len(s) == len(groups) - 1 for s in seen)
    assert {row["group"] for row in rows} == groups


def test_summary_of_hand_made_outcomes():
    rows = [
        {"horizon": 2, "covered": True, "width": 0.1, "interval_score": 0.1, "error": 0.02,
         "size": {"covered": True, "log2_error": 0.5, "unreachable": False, "p_reachable": 0.9}},
        {"horizon": 2, "covered": False, "width": 0.2, "interval_score": 0.6, "error": -0.04,
         "size": {"covered": False, "log2_error": math.inf, "unreachable": True, "p_reachable": 0.3}},
        {"horizon": 2, "covered": True, "width": 0.3, "interval_score": 0.3, "error": 0.0,
         "size": {"covered": True, "log2_error": 1.0, "unreachable": False, "p_reachable": 0.6}},
    ]
    (row,) = cal.summarise(rows).values()
    assert row["coverage"] == pytest.approx(2 / 3)
    assert row["width"] == pytest.approx(0.2) and row["interval_score"] == pytest.approx(1 / 3)
    assert row["mae"] == pytest.approx(0.02) and row["median_ae"] == pytest.approx(0.02)
    assert row["mean_error"] == pytest.approx(-0.02 / 3)
    assert row["size_coverage"] == pytest.approx(2 / 3)
    assert row["size_median_log2"] == 1.0  # the unreachable answer counts as infinitely wrong
    assert row["size_unreachable"] == pytest.approx(1 / 3) and row["p_reachable"] == pytest.approx(0.6)


def test_interval_of_a_fit_uses_the_calibrated_quantiles_beyond_the_data():
    from dataclasses import replace

    sizes = np.repeat(LADDER[:6], 5)
    scores = np.clip(0.9 - 0.5 * sizes ** -0.5 + np.random.default_rng(0).normal(0, 0.01, sizes.size), 0, 1)
    # the global quantiles (the fallback when the conditional band is switched off)
    fit = fit_learning_curve(sizes, scores, n_bootstrap=50, seed=0, n_test=500)
    fit = replace(fit, calibration=replace(CALIBRATION, conditional=None), _grid_cache={})
    at = np.array([2.0, 4.0]) * fit.max_size
    centre, spread = fit._sigma(at)
    low, high = fit.interval(at)
    q = np.array(CALIBRATION.quantiles[:2])
    assert high == pytest.approx(np.clip(centre + q[:, 1] * spread, 0, 1))
    assert np.all(low >= np.clip(centre + q[:, 0] * spread, 0, 1) - 1e-12)  # the running maximum may lift it
    wider = Calibration(CALIBRATION.k_slope, CALIBRATION.k_headroom + 0.5, CALIBRATION.quantiles)
    assert np.all(fit._sigma(at)[1] <= base_spread_with(fit, wider, at))


def base_spread_with(fit, calibration, at):
    from dataclasses import replace
    return replace(fit, calibration=calibration, _grid_cache={})._sigma(at)[1]


def test_load_corpus_reads_the_gzipped_json(tmp_path):
    path = tmp_path / "corpus.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump({"curves": fixed_corpus()}, fh)
    assert cal.load_corpus(str(path))[0]["sizes"] == LADDER
