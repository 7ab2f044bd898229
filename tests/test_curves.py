"""Learning-curve engine: fitting, blending, intervals, inversion, degenerate input."""

import json
import math

import numpy as np
import pytest

from samplesize.curves import FAMILIES, CurveFitError, fit_learning_curve

RECIPE_SIZES = [165, 330, 825, 1651]
RECIPE_ACCURACY = [
    [0.8202, 0.7466, 0.8011, 0.8447, 0.8229],
    [0.861, 0.8774, 0.8501, 0.8937, 0.891],
    [0.891, 0.9237, 0.8856, 0.9101, 0.891],
    [0.8937, 0.9373, 0.9128, 0.8719, 0.9128],
]


def recipe_trials():
    return np.repeat(RECIPE_SIZES, 5), np.ravel(RECIPE_ACCURACY)


@pytest.fixture(scope="module")
def recipe_fit():
    return fit_learning_curve(*recipe_trials(), n_bootstrap=300, seed=0)


@pytest.fixture(scope="module")
def synthetic_fit():
    """A pow3-shaped sweep: 5 sizes in a doubling ladder, 4 repetitions, test-set noise."""
    rng = np.random.default_rng(5)
    sizes = np.repeat(200 * 2.0 ** np.arange(5), 4)
    truth = 0.95 - 1.5 * sizes ** -0.45
    scores = rng.binomial(800, truth) / 800
    return fit_learning_curve(sizes, scores, n_bootstrap=300, seed=1)


# Natural parameters of each family, chosen so that the curve bends inside 100..51200.
KNOWN = {
    "pow2": {"a": 0.5, "b": 0.05},
    "pow3": {"a": 0.92, "b": 2.0, "c": 0.5},
    "pow4": {"a": 0.9, "b": 3.0, "c": 0.6, "d": 200.0},
    "mmf4": {"a": 0.1, "b": 300.0, "c": 0.93, "d": 1.0},
    "wbl4": {"a": 0.0326, "b": 0.5, "c": 0.95, "d": 0.6},
    "exp3": {"a": 0.9, "b": 0.4, "c": 1 / 2000},
}


def family_curve(name, p, n):
    n = np.asarray(n, float)
    return {
        "pow2": lambda: p["a"] * n ** p["b"],
        "pow3": lambda: p["a"] - p["b"] * n ** -p["c"],
        "pow4": lambda: p["a"] - p["b"] * (n + p["d"]) ** -p["c"],
        "mmf4": lambda: (p["a"] * p["b"] + p["c"] * n ** p["d"]) / (p["b"] + n ** p["d"]),
        "wbl4": lambda: p["c"] - p["b"] * np.exp(-p["a"] * n ** p["d"]),
        "exp3": lambda: p["a"] - p["b"] * np.exp(-p["c"] * n),
    }[name]()


def test_every_required_family_is_defined_with_formula_and_bounds():
    assert {"pow2", "pow3", "pow4", "mmf4", "wbl4", "exp3"} <= set(FAMILIES)
    for fam in FAMILIES.values():
        assert fam.formula and set(fam.bounds) == set(fam.param_names)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_family_fit_recovers_known_parameters_from_noisy_curve(name):
    rng = np.random.default_rng(0)
    sizes = np.repeat(np.geomspace(100, 51200, 10), 5)
    scores = family_curve(name, KNOWN[name], sizes) + rng.normal(0, 0.0005, sizes.size)
    fit = fit_learning_curve(sizes, scores, families=[name], n_bootstrap=0, seed=0)
    got = fit.families[name].params
    for key, want in KNOWN[name].items():
        assert got[key] == pytest.approx(want, rel=0.15), (key, got)
    # the optimiser reaches the least-squares minimum: no worse than the true curve
    distinct = np.unique(sizes)
    means = np.array([scores[sizes == s].mean() for s in distinct])
    sse = np.sum((fit.predict(distinct) - means) ** 2)
    assert sse <= np.sum((family_curve(name, KNOWN[name], distinct) - means) ** 2)
    n = np.array([1e5, 2e5])
    np.testing.assert_allclose(fit.predict(n), np.clip(family_curve(name, KNOWN[name], n), 0, 1), atol=0.005)


def test_default_blend_on_noisy_pow3_sweep_predicts_4x_beyond_within_interval(synthetic_fit):
    n = 4 * synthetic_fit.max_size
    low, high = synthetic_fit.interval(n)
    truth = 0.95 - 1.5 * n ** -0.45
    assert low <= truth <= high
    assert abs(synthetic_fit.predict(n) - truth) < 0.02


def test_pow2_on_recipe_table_predicts_about_095_at_3303():
    fit = fit_learning_curve(*recipe_trials(), families=["pow2"], n_bootstrap=0)
    assert fit.family == "pow2"
    assert float(fit.predict(3303)) == pytest.approx(0.95, abs=0.01)
    assert math.isinf(fit.families["pow2"].ceiling)


def test_ceiling_family_on_recipe_table_reports_095_unreachable(recipe_fit):
    pow3 = fit_learning_curve(*recipe_trials(), families=["pow3"], n_bootstrap=100)
    for fit in (pow3, recipe_fit):
        assert fit.ceiling < 0.95
        est = fit.size_for(0.95)
        assert not est.reachable
        assert math.isinf(est.size) and math.isinf(est.interval[1])
        assert est.far


def test_blend_gives_pow2_no_weight_when_ceiling_families_are_present(recipe_fit):
    weights = {name: f.weight for name, f in recipe_fit.families.items()}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["pow2"] == 0.0
    assert recipe_fit.family == "blend"
    # every family still reports both errors, so the report can show the alternatives
    for f in recipe_fit.families.values():
        assert math.isfinite(f.in_sample_rmse) and math.isfinite(f.extrapolation_error)


@pytest.mark.parametrize("target", [0.88, 0.9, 0.93])
def test_predict_at_size_for_gives_back_the_target(synthetic_fit, target):
    est = synthetic_fit.size_for(target)
    assert est.reachable
    assert float(synthetic_fit.predict(est.size)) == pytest.approx(target, abs=1e-6)
    low, high = est.interval
    assert low <= est.size <= high


def test_size_for_flags_far_extrapolation(synthetic_fit):
    near = synthetic_fit.size_for(float(synthetic_fit.predict(2 * synthetic_fit.max_size)))
    far = synthetic_fit.size_for(float(synthetic_fit.predict(10 * synthetic_fit.max_size)))
    assert not near.far and far.far
    assert synthetic_fit.is_far(4.5 * synthetic_fit.max_size)
    assert not synthetic_fit.is_far(synthetic_fit.max_size)


def test_seeded_bootstrap_intervals_are_reproducible():
    sizes, scores = recipe_trials()
    n = np.array([1000.0, 3303.0, 6606.0])
    a = fit_learning_curve(sizes, scores, n_bootstrap=200, seed=7).interval(n)
    b = fit_learning_curve(sizes, scores, n_bootstrap=200, seed=7).interval(n)
    c = fit_learning_curve(sizes, scores, n_bootstrap=200, seed=8).interval(n)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_intervals_widen_with_distance_beyond_the_data(synthetic_fit):
    n = synthetic_fit.max_size * np.array([1.0, 2.0, 4.0, 16.0])
    low, high = synthetic_fit.interval(n)
    width = high - low
    assert np.all(np.diff(width) > 0)
    assert np.all(low <= synthetic_fit.predict(n)) and np.all(synthetic_fit.predict(n) <= high)


def test_interval_keeps_the_shape_of_its_input(synthetic_fit):
    low, high = synthetic_fit.interval(np.full((2, 3), 5000.0))
    assert low.shape == high.shape == (2, 3)
    assert synthetic_fit.predict(np.full((2, 3), 5000.0)).shape == (2, 3)


def test_fewer_than_two_distinct_sizes_raise_curve_fit_error():
    with pytest.raises(CurveFitError, match="2 or more distinct sample sizes"):
        fit_learning_curve([500, 500, 500], [0.8, 0.82, 0.81])
    assert issubclass(CurveFitError, ValueError)


def test_all_nan_scores_raise_curve_fit_error():
    with pytest.raises(CurveFitError, match="no finite scores"):
        fit_learning_curve([100, 200], [math.nan, math.nan])


def test_percentages_instead_of_fractions_raise_curve_fit_error():
    with pytest.raises(CurveFitError, match="fractions"):
        fit_learning_curve([100, 200, 400], [80.0, 85.0, 87.0])


def test_nan_scores_are_dropped_with_a_warning():
    sizes, scores = recipe_trials()
    scores = scores.copy()
    scores[[0, 7]] = math.nan
    fit = fit_learning_curve(sizes, scores, n_bootstrap=50)
    assert any("Dropped 2 trial(s)" in w for w in fit.warnings)
    assert list(fit.counts) == [4, 4, 5, 5]


def test_single_trial_per_size_falls_back_to_binomial_noise_floor():
    sizes = 100 * 2.0 ** np.arange(5)
    fit = fit_learning_curve(sizes, 0.93 - 1.2 * sizes ** -0.5, n_bootstrap=100, n_test=500)
    assert any("one trial per size" in w for w in fit.warnings)
    low, high = fit.interval(sizes[-1])
    # the assumed binomial noise of a 500-example test set at ~0.9 is ~0.013 per trial
    assert 0.005 < high - low < 0.1


def test_constant_scores_give_a_flat_curve_and_a_warning():
    fit = fit_learning_curve(np.repeat([100, 200, 400, 800], 3), np.full(12, 0.7), n_bootstrap=100)
    assert any("All scores are equal" in w for w in fit.warnings)
    np.testing.assert_allclose(fit.predict([100, 800, 3200]), 0.7, atol=0.005)
    assert not fit.size_for(0.8).reachable
    low, high = fit.interval(800)
    assert low < 0.7 < high


def test_three_sizes_are_averaged_equally_with_a_warning():
    sizes = np.repeat([100, 300, 900], 3)
    scores = np.array([0.70, 0.72, 0.71, 0.80, 0.81, 0.79, 0.84, 0.85, 0.845])
    fit = fit_learning_curve(sizes, scores, n_bootstrap=50)
    assert any("too few to backtest" in w for w in fit.warnings)
    assert all(math.isnan(f.extrapolation_error) for f in fit.families.values())
    ceiling_weights = [f.weight for f in fit.families.values() if FAMILIES[f.name].has_ceiling]
    assert ceiling_weights == pytest.approx([0.2] * 5)


def test_to_dict_is_strict_json_with_inf_as_string(recipe_fit):
    summary = json.loads(json.dumps(recipe_fit.to_dict(), allow_nan=False))
    assert summary["families"]["pow2"]["ceiling"] == "inf"
    assert summary["family"] == "blend"
    assert set(summary["families"]["pow3"]["params"]) == {"a", "b", "c"}
    assert summary["method"]["n_bootstrap"] == 300


# ---------------------------------------------------------------- p_reachable and the honest size interval


def test_p_reachable_is_about_one_far_below_the_data_and_zero_above_one(synthetic_fit):
    low_target = float(synthetic_fit.means[0]) - 0.1
    assert synthetic_fit.size_for(low_target).p_reachable > 0.99
    assert synthetic_fit.p_reachable(low_target) > 0.99
    est = synthetic_fit.size_for(1.01)
    assert est.p_reachable == 0.0 and not est.reachable
    assert math.isinf(est.size) and math.isinf(est.interval[1])


def test_p_reachable_falls_as_the_target_rises(synthetic_fit):
    targets = np.linspace(0.85, 0.999, 12)
    p = [synthetic_fit.p_reachable(t) for t in targets]
    assert all(a >= b for a, b in zip(p, p[1:]))
    # a target at the fitted ceiling: a coin flip under the band's centre alone, and less under the
    # calibrated p_reachable (on held-out real curves such targets are reached less than half the time)
    assert 0.02 < synthetic_fit.p_reachable(synthetic_fit.ceiling) < 0.65


def test_size_interval_end_is_inf_when_the_lower_band_never_reaches_the_target(recipe_fit):
    est = recipe_fit.size_for(0.97)
    assert math.isinf(est.interval[1])
    assert 0.0 <= est.p_reachable < 0.5
    low, _ = recipe_fit.interval(np.array([est.interval[0]]))
    if math.isfinite(est.interval[0]):
        _, high = recipe_fit.interval(np.array([est.interval[0]]))
        assert float(high[0]) == pytest.approx(0.97, abs=1e-4)  # where the upper band reaches it


def test_size_interval_ends_are_where_the_bands_cross_the_target(synthetic_fit):
    est = synthetic_fit.size_for(0.9)
    low_n, high_n = est.interval
    assert math.isfinite(low_n) and math.isfinite(high_n)
    assert float(synthetic_fit.interval(np.array([low_n]))[1][0]) == pytest.approx(0.9, abs=1e-4)
    assert float(synthetic_fit.interval(np.array([high_n]))[0][0]) == pytest.approx(0.9, abs=1e-4)
    # and the probability of reaching it by the point answer is about one half
    assert float(synthetic_fit.p_reaches(0.9, est.size)[0]) == pytest.approx(0.5, abs=1e-3)
