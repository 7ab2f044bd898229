"""Each kind's correction of the centre (curves/centre.py: image curves, CNN curves) and its own p_reachable
map: how they are learned from held-out records, and what they do to a fit made with that kind and, not at
all, to any other fit."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from samplesize.curves import CALIBRATION, fit_learning_curve
from samplesize.curves import calibration as cal
from samplesize.curves.centre import CentreShift
from samplesize.curves import conditional_fit as cf
from samplesize.curves.centre_fit import choose_centre_shift, fit_centre_shift, fit_kind_p_map, inner_groups
from samplesize.config.schema import ModelConfig
from samplesize.summarize import curve_kind

SIZES = [50, 100, 200, 400, 800] * 3
NOISE = [0.004, -0.003, 0.002, -0.001, 0.001] * 2 + [-0.002, 0.003, -0.002, 0.001, -0.001]
SCORES = [0.95 - 2.0 * n ** -0.5 + e for n, e in zip(SIZES, NOISE)]
SHIFT = CentreShift(0.05, "headroom", (0.1, 0.2, 0.3))
GLOBAL = replace(CALIBRATION, conditional=None)  # synthetic records carry no fit, so no pilot


def synthetic_records(per_doubling: float = 0.04) -> list[cal.Record]:
    """Image records whose measured score lies per_doubling * h * (1 - centre) above the centre, beside
    tabular records that lie below it (which must not inform the image correction)."""
    out = []
    for i, (centre, horizon) in enumerate((c, h) for c in (0.6, 0.7, 0.8, 0.9) for h in (2, 4, 8)):
        h = math.log2(horizon)
        for kind, truth in (("image", centre + per_doubling * h * (1 - centre)), ("tabular", centre - 0.03)):
            out.append(cal.Record(group=f"{kind}{i % 2}", horizon=horizon, n=100.0 * horizon, truth=truth,
                                  centre=centre, noise=1e-4, between=0.0, edge_slope=0.01, max_size=100.0,
                                  kind=kind, learner_group=f"g{i % 3}"))
    return out


def test_the_correction_is_learned_from_image_records_only():
    records = synthetic_records(0.04)
    for estimator in ("mean", "ls"):
        shift = fit_centre_shift(records, GLOBAL, "headroom", estimator=estimator)
        assert shift.per_doubling == pytest.approx(0.04, abs=1e-4)
    assert fit_centre_shift([r for r in records if r.kind == "tabular"], GLOBAL) is None
    # a pessimistic-only correction: records below the centre give no shift (never a falling curve)
    low = [replace(r, truth=r.centre - 0.02) for r in records]
    assert fit_centre_shift(low, GLOBAL, "distance").per_doubling == 0.0


def test_the_nested_choice_is_deterministic():
    records = synthetic_records(0.04)
    assert choose_centre_shift(records, GLOBAL) == choose_centre_shift(records, GLOBAL) == ("headroom", "mean")


def test_kind_image_raises_the_centre_by_the_learned_amount_at_4x():
    calibration = replace(CALIBRATION, image=SHIFT)
    plain = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500)
    other = replace(plain, calibration=calibration, _grid_cache={})  # default kind: no correction
    image = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="image")
    image = replace(image, calibration=calibration, _grid_cache={})
    top = plain.max_size
    base = float(plain.predict(4 * top))
    assert float(image.predict(4 * top)) == pytest.approx(base + 0.05 * 2 * (1 - base), abs=1e-12)
    assert float(image.predict(top)) == pytest.approx(float(plain.predict(top)), abs=1e-12)  # none inside the data
    # beyond 8x it stops growing
    far = float(plain.predict(64 * top))
    assert float(image.predict(64 * top)) == pytest.approx(far + 0.05 * 3 * (1 - far), abs=1e-12)
    for n in (top, 4 * top, 64 * top):
        assert float(other.predict(n)) == float(plain.predict(n))
        assert [float(v) for v in other.interval(n)] == [float(v) for v in plain.interval(n)]
    assert other.p_reachable(0.93) == plain.p_reachable(0.93)
    assert image.ceiling > plain.ceiling


def test_the_band_moves_with_the_corrected_centre_and_holds_it():
    image = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="image")
    image = replace(image, calibration=replace(CALIBRATION, image=SHIFT), _grid_cache={})
    plain = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500)
    n = np.geomspace(50, 64 * 800, 40)
    low, high = image.interval(n)
    centre = image.predict(n)
    assert np.all(low <= centre + 1e-12) and np.all(centre <= high + 1e-12)
    assert float(image.interval(4 * 800)[1]) > float(plain.interval(4 * 800)[1])
    # the inversion and p_reachable read the corrected curve: a target reached sooner, more likely
    assert image.size_for(0.9).size < plain.size_for(0.9).size
    assert image.p_reachable(0.93) >= plain.p_reachable(0.93)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        fit_learning_curve(SIZES, SCORES, n_bootstrap=0, kind="images")


def test_the_shipped_correction_applies_to_kind_image_only():
    shipped = CALIBRATION.image
    assert shipped is not None and shipped.per_doubling > 0
    plain = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500)
    tabular = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="tabular")
    image = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="image")
    n = 4 * plain.max_size
    base = float(plain.predict(n))
    assert float(image.predict(n)) == pytest.approx(base + shipped.per_doubling * 2 * (1 - base), abs=1e-12)
    assert float(tabular.predict(n)) == base
    assert "centre_shift" in image.to_dict()["method"]["calibration"]
    assert "centre_shift" not in plain.to_dict()["method"]["calibration"]
    low, high = image.interval(n)
    assert low <= image.predict(n) <= high


def _image_records():
    """Held-out records (with their fits) of nine rising image curves from three learner groups."""
    rng = np.random.default_rng(31)
    ladder = [int(round(16 * 2 ** (i / 2))) for i in range(13)]
    curves = []
    for d, ceiling in (("d1", 0.9), ("d2", 0.95), ("d3", 0.85)):
        for k, learner in enumerate(("a", "b", "c")):
            scores = [list(np.round(np.clip(ceiling - 0.6 * n ** -(0.35 + 0.05 * k) + rng.normal(0, 0.01, 5), 0, 1), 4))
                      for n in ladder]
            curves.append({"dataset": d, "learner": learner, "group": "g" + learner, "kind": "image",
                           "n_test": 500, "sizes": ladder, "scores": scores})
    return [r for c in curves for r in cal.held_out_records(c, n_bootstrap=20, protocols=cal.PILOT_PROTOCOLS)]


def test_the_image_p_map_is_fitted_on_image_forecasts_and_is_monotone():
    records = _image_records()
    base = cf.fit_conditional(records, cal.fit_calibration(records), features="shape")
    coefs = fit_kind_p_map(records, base, "headroom")
    assert coefs is not None and len(coefs) == 5
    assert coefs[1] >= 0 and coefs[2] <= 0 and coefs[4] <= 0  # the map's monotone bounds
    assert fit_kind_p_map(records, base, "headroom") == coefs  # deterministic
    one_group = [r for r in records if r.learner_group == "ga"]
    assert fit_kind_p_map(one_group, base, "headroom") is None  # nothing to cross-fit with


def test_image_fits_read_their_own_p_map_and_other_fits_do_not():
    optimistic = replace(SHIFT, p_coefs=(2.0, 1.0, 0.0, 0.0, 0.0))  # logit p + 2
    calibration = replace(CALIBRATION, image=optimistic)
    shared = replace(CALIBRATION, image=replace(optimistic, p_coefs=None))
    image = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="image")
    own = replace(image, calibration=calibration, _grid_cache={})
    same = replace(image, calibration=shared, _grid_cache={})
    target = float(image.means[-1]) + 0.02
    assert own.p_reachable(target) > same.p_reachable(target)
    tabular = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="tabular")
    assert (replace(tabular, calibration=calibration, _grid_cache={}).p_reachable(target)
            == replace(tabular, calibration=shared, _grid_cache={}).p_reachable(target))
    assert own.p_reachable(1.01) == 0.0 and own.p_reachable(float(image.means[0]) - 0.05) > 0.95
    assert own.to_dict()["method"]["calibration"]["centre_shift"]["p_map"] == [2.0, 1.0, 0.0, 0.0, 0.0]


def test_each_kind_reads_its_own_correction_and_no_other():
    steep = CentreShift(0.02, "distance", (0.0, 0.0, 0.0))
    calibration = replace(CALIBRATION, image=SHIFT, cnn=steep)
    plain = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500)
    n = 4 * plain.max_size
    base = float(plain.predict(n))
    fits = {kind: replace(fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind=kind),
                          calibration=calibration, _grid_cache={}) for kind in ("image", "cnn", "tabular")}
    assert float(fits["cnn"].predict(n)) == pytest.approx(base + 0.02 * 2, abs=1e-12)
    assert float(fits["image"].predict(n)) == pytest.approx(base + 0.05 * 2 * (1 - base), abs=1e-12)
    assert float(fits["tabular"].predict(n)) == base
    assert fits["cnn"].to_dict()["method"]["calibration"]["centre_shift"]["form"] == "distance"
    # the held-out scoring applies the same correction to a record of each kind as a fit of that kind has
    for kind, fit in fits.items():
        record = cal.records_from_fit(plain, "d", [n], [0.9], [4])[0]
        row = cal.outcomes([replace(record, kind=kind)], calibration, sizes=False)[0]
        assert row["error"] == pytest.approx(float(fit.predict(n)) - 0.9, abs=1e-9)
        low, high = fit.interval(n)
        assert row["width"] == pytest.approx(float(high - low), abs=1e-6)


def test_a_kinds_correction_is_learned_from_its_records_only():
    records = synthetic_records(0.04)
    cnn = [replace(r, kind="cnn", truth=r.centre + 0.06 * math.log2(r.horizon)) for r in records if r.kind == "image"]
    both = records + cnn
    assert fit_centre_shift(both, GLOBAL, "distance", kind="cnn").per_doubling == pytest.approx(0.06, abs=1e-4)
    assert fit_centre_shift(both, GLOBAL, "headroom", kind="image").per_doubling == pytest.approx(0.04, abs=1e-4)
    # the re-conformalized band of one kind is fitted against the band without that kind's own correction only
    other = replace(GLOBAL, image=SHIFT)
    assert fit_centre_shift(both, other, "distance", kind="cnn") == fit_centre_shift(both, GLOBAL, "distance", kind="cnn")


def test_the_inner_folds_leave_out_learners_where_there_is_one_learner_group():
    records = [replace(r, learner_group="cnn", learner=f"cnn_w{8 * (i % 3 + 1)}") for i, r in enumerate(synthetic_records())]
    assert inner_groups(records) == ("learner", ["cnn_w16", "cnn_w24", "cnn_w8"])
    assert inner_groups(synthetic_records()) == ("learner_group", ["g0", "g1", "g2"])
    assert inner_groups(records[:1])[1] == ["cnn_w8"]  # nothing to leave out: the p_reachable map is then None


def test_a_sweep_names_its_curves_kind_by_its_backbone():
    assert curve_kind(ModelConfig()) == "cnn"  # small_cnn trains every layer from scratch
    assert curve_kind(ModelConfig(backbone="mobilenet_v2", weights="imagenet")) == "image"


def test_the_shipped_cnn_correction_applies_to_kind_cnn_only():
    shipped = CALIBRATION.cnn
    assert shipped is not None and shipped.per_doubling > 0
    plain = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500)
    cnn = fit_learning_curve(SIZES, SCORES, n_bootstrap=50, n_test=500, kind="cnn")
    n = 4 * plain.max_size
    assert float(cnn.predict(n)) == pytest.approx(
        float(np.clip(float(plain.predict(n)) + float(shipped.shift(2.0, plain.predict(n), plain.edge_slope)), 0, 1)))
    assert float(cnn.predict(plain.max_size)) == float(plain.predict(plain.max_size))
    low, high = cnn.interval(n)
    assert low <= cnn.predict(n) <= high
