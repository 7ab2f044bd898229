"""`variants`: several pipelines in one sweep, on the same subsamples, compared curve against curve."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fake_sweep import BOOT, fake_result, make_cfg, rescored, write_sweep
from samplesize.aggregate import aggregate
from samplesize.summarize import build_summary
from samplesize.curves import compare_curves
from samplesize.config import build_config
from samplesize.curves import fit_learning_curve
from samplesize.data import prepare_dataset
from samplesize.errors import ConfigError
from samplesize.plan import all_trials, trial_spec
from samplesize.results import load_results, trial_identity, write_result
from samplesize.sampling import draw_subsample
from samplesize.storage import LocalStorage

TWO = [{"name": "cnn-8", "dataset": {"image_size": 8}}, {"name": "cnn-16", "dataset": {"image_size": 16}}]


def variant_cfg(**overrides):
    return make_cfg(variants=TWO, **overrides)


# ---------------------------------------------------------------- config


def test_variant_overrides_make_each_variants_trial_config():
    cfg = make_cfg(variants=[{"name": "a", "model": {"dropout": 0.5}},
                             {"name": "b", "training": {"augment": "static"}, "dataset": {"image_size": 24}}])
    a, b = cfg.trial_config("a"), cfg.trial_config("b")
    assert (a.model.dropout, a.dataset.image_size, a.training.augment) == (0.5, 16, "none")
    assert (b.model.dropout, b.dataset.image_size, b.training.augment) == (0.2, 24, "static")
    assert a.variants == () and a.splits == cfg.splits and a.seed == cfg.seed
    # sweep.yaml written back (local runs, the chart's ConfigMap) loads into the same sweep.
    assert build_config(cfg.to_dict()) == cfg and build_config(cfg.to_dict()).trial_hash() == cfg.trial_hash()


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ([{"name": "ok"}, {"name": "big", "model": {"backbone": "mobilenet_v3"}}],
         "variants[1] (big): model.backbone: 'mobilenet_v3' is not allowed"),
        ([{"name": "ok"}, {"name": "tiny", "model": {"backbone": "mobilenet_v2"}}],
         "variants[1] (tiny): dataset.image_size: 16 is too small for model.backbone mobilenet_v2"),
        ([{"name": "a", "training": {"head_epochs": 0}}, {"name": "b"}],
         "variants[0] (a): training.head_epochs: 0 must be at least 1"),
        ([{"name": "a", "training": {"epochs": 3}}, {"name": "b"}],
         "variants[0] (a): unknown key training.epochs"),
        ([{"name": "a", "dataset": {"source": "tfds:cifar10"}}, {"name": "b"}],
         "variants[0] (a): dataset.source cannot differ between variants"),
        ([{"name": "a", "splits": [0.5]}, {"name": "b"}], "variants[0] (a): splits cannot differ between variants"),
        ([{"name": "a"}, {"name": "a"}], "variants[1].name: 'a' is also the name of variants[0]"),
        ([{"model": {"dropout": 0.1}}, {"name": "b"}], "variants[0].name: None must be"),
        ([{"name": "only"}], "variants: only one entry (only); a comparison needs at least two"),
    ],
    ids=["bad-backbone", "too-small-image", "bad-training-value", "unknown-key", "shared-dataset-key",
         "shared-top-level-key", "duplicate-name", "no-name", "one-variant"],
)
def test_variant_error_names_the_variant_and_the_key(variants, expected):
    with pytest.raises(ConfigError) as refused:
        make_cfg(variants=variants)
    assert expected in str(refused.value)


def test_a_sweep_without_variants_keeps_its_config_dict_and_trial_hash():
    cfg = build_config({})
    assert "variants" not in cfg.to_dict() and "variants" not in cfg.to_yaml()
    # The hash of the default sweep before variants existed: finished results stay valid.
    assert cfg.trial_hash() == "ad998dc1addceacc"
    assert make_cfg(variants=TWO).trial_hash() != make_cfg().trial_hash()


# ---------------------------------------------------------------- plan


def test_plan_runs_every_variant_of_a_split_before_the_next_smaller_split():
    cfg = variant_cfg()  # splits 0.1 0.25 0.5 + backtest 1.0, 2 repetitions, 2 variants
    specs = all_trials(cfg)
    assert cfg.trial_count == len(specs) == 4 * 2 * 2
    assert [(s.split, s.variant, s.repetition) for s in specs[:6]] == [
        (1.0, "cnn-8", 0), (1.0, "cnn-8", 1), (1.0, "cnn-16", 0), (1.0, "cnn-16", 1),
        (0.5, "cnn-8", 0), (0.5, "cnn-8", 1)]
    assert [s.split for s in specs] == sorted((s.split for s in specs), reverse=True)  # longest first
    # The seed (so the subsample) is the (split, repetition)'s, whatever the variant.
    by_pair = {}
    for s in specs:
        by_pair.setdefault((s.split, s.repetition), set()).add(s.seed)
    assert all(len(seeds) == 1 for seeds in by_pair.values())


def test_plan_without_variants_is_split_major_then_repetition_with_a_null_variant():
    cfg = make_cfg()
    specs = all_trials(cfg)
    splits = sorted(cfg.all_splits, reverse=True)
    assert [(s.split, s.repetition) for s in specs] == [(sp, r) for sp in splits for r in range(cfg.repetitions)]
    assert all(s.variant is None for s in specs)
    assert "variant" not in trial_identity(cfg, specs[0])


def test_every_variant_draws_the_same_images_for_a_split_and_repetition(tmp_path):
    cfg = build_config({"variants": TWO, "output": str(tmp_path), "splits": [0.1, 0.3], "backtest_splits": [],
                        "repetitions": 2})
    storage = LocalStorage(tmp_path)
    drawn = {}
    for spec in all_trials(cfg):
        data = prepare_dataset(cfg.trial_config(spec.variant), storage)  # 8 px and 16 px copies of one pool
        indexes = draw_subsample(data.pool_labels, spec.split, spec.seed, cfg.sampling, len(data.class_names))
        drawn.setdefault((spec.split, spec.repetition), []).append((data.key, data.pool_labels, indexes))
    for pair in drawn.values():
        (key_a, labels_a, a), (key_b, labels_b, b) = pair
        assert key_a != key_b  # two prepared copies (two image sizes) of one pool in one order...
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_array_equal(a, b)  # ...and the same images drawn from each
    assert len({tuple(p[0][2]) for p in drawn.values()}) == len(drawn)  # different pairs draw differently


# ---------------------------------------------------------------- comparison on synthetic curves


def _crossing_trials():
    """Two variants on the same subsamples: `small` learns fast with a low ceiling, `large` overtakes
    it. The true curves cross at n = (2.5 / 0.15)^2 = 278."""
    rng = np.random.default_rng(0)
    curves = {"small": lambda n: 0.80 - 0.5 * n ** -0.5, "large": lambda n: 0.95 - 3.0 * n ** -0.5}
    trials = {name: [] for name in curves}
    for split, n in [(0.05, 50), (0.1, 100), (0.2, 200), (0.4, 400), (0.8, 800), (1.0, 1600)]:
        for rep in range(4):
            luck = rng.normal(0, 0.01)  # the subsample's luck, shared by both variants
            for name, curve in curves.items():
                trials[name].append({"split": split, "repetition": rep, "sample_size": n,
                                     "score": curve(n) + luck + rng.normal(0, 0.003)})
    return trials


def test_comparison_of_crossing_curves_finds_where_the_order_changes():
    trials = _crossing_trials()
    fits = {name: fit_learning_curve([t["sample_size"] for t in ts], [t["score"] for t in ts], n_bootstrap=BOOT)
            for name, ts in trials.items()}
    cmp = compare_curves(fits, trials, targets=[0.75, 0.85])
    (crossing,) = cmp["crossings"]
    assert crossing["variants"] == ["small", "large"]
    assert crossing["measured"] == [{"between": [200.0, 400.0], "before": "small", "after": "large"}]
    (fitted,) = crossing["fitted"]
    assert 200 < fitted["at"] < 400 and not fitted["beyond_data"]
    assert (fitted["before"], fitted["after"]) == ("small", "large")
    low_target, high_target = cmp["targets"]
    assert low_target["fewest"] == "small"  # 0.75: the fast starter gets there first
    assert high_target["fewest"] == "large"  # 0.85 is above small's ceiling of 0.80
    assert high_target["by_variant"]["small"]["reachable"] is False
    assert high_target["by_variant"]["small"]["p_reachable"] < 0.1
    assert high_target["by_variant"]["large"]["interval"][0] <= high_target["by_variant"]["large"]["sample_size"]
    (paired,) = cmp["paired"]
    rows = {r["sample_size"]: r for r in paired["rows"]}
    assert rows[50.0]["mean"] > 0 and rows[1600.0]["mean"] < 0 and rows[1600.0]["wins"] == 0
    # Pairing cancels the shared luck: the spread of the differences is the small independent noise.
    assert all(r["pairs"] == 4 and r["std"] < 0.01 for r in paired["rows"])
    lo, hi = rows[1600.0]["interval"]
    assert lo < rows[1600.0]["mean"] < hi < 0


def test_curves_that_never_cross_report_no_crossing():
    trials = _crossing_trials()
    trials["small"] = [{**t, "score": t["score"] - 0.3} for t in trials["large"]]
    fits = {name: fit_learning_curve([t["sample_size"] for t in ts], [t["score"] for t in ts], n_bootstrap=BOOT)
            for name, ts in trials.items()}
    (crossing,) = compare_curves(fits, trials)["crossings"]
    assert crossing["measured"] == [] and crossing["fitted"] == []


# ---------------------------------------------------------------- aggregation and report


def _variant_sweep(cfg, root):
    """Results for every index; the second variant scores 0.02 higher on each subsample."""
    storage = LocalStorage(root)
    for spec in all_trials(cfg):
        # Both variants of a (split, repetition) get that pair's noise: fake_result seeds by index. With 100 test
        # images a class, 2 more right in each class is exactly 0.02 more balanced accuracy.
        base = fake_result(cfg, spec.index - (spec.index // cfg.repetitions % 2) * cfg.repetitions, test_size=300)
        matrix = [row[:] for row in base["confusion_matrix"]]
        if spec.variant == "cnn-16":
            for i, row in enumerate(matrix):
                j = max((j for j in range(len(row)) if j != i), key=row.__getitem__)  # a miss that has 2 to give
                row[i], row[j] = row[i] + 2, row[j] - 2
        r = fake_result(cfg, spec.index, dataset_key=f"cache/dataset-{spec.variant}.npz", test_size=300,
                        confusion_matrix=matrix)
        assert write_result(storage, rescored(r))
    return storage


def test_two_variant_sweep_summary_holds_both_curves_the_target_table_and_paired_differences(tmp_path):
    cfg = variant_cfg()
    summary = aggregate(cfg, _variant_sweep(cfg, tmp_path), job_state="Complete", n_bootstrap=BOOT)
    assert summary["complete"] and summary["trials"]["expected"] == 16 and summary["trials"]["usable"] == 16
    assert [v["name"] for v in summary["variants"]] == ["cnn-8", "cnn-16"]
    for v in summary["variants"]:
        vs = v["summary"]
        assert vs["curve"] is not None and vs["complete"] and vs["trials"]["expected"] == 8
        assert {p["variant"] for p in vs["points"]} == {v["name"]}
        assert all(trial_spec(cfg, p["index"]).variant == v["name"] for p in vs["points"])
    cmp = summary["comparison"]
    assert [t["target"] for t in cmp["targets"]] == [0.85, 0.99]
    assert cmp["targets"][0]["fewest"] == "cnn-16"
    (paired,) = cmp["paired"]
    assert paired["difference"] == "cnn-8 minus cnn-16"
    assert all(abs(r["mean"] + 0.02) < 1e-9 and r["std"] < 1e-9 for r in paired["rows"])
    assert len(summary["points"]) == 16
    written = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert written["comparison"]["variants"] == ["cnn-8", "cnn-16"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "cnn-16 gets there with the fewest labels" in md and "Paired differences: cnn-8 minus cnn-16" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Sample size needed, by variant" in html and "Variant cnn-8" in html
    assert (tmp_path / "report" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_trial_of_one_variant_makes_that_variant_and_the_sweep_partial(tmp_path):
    cfg = variant_cfg()
    storage = _variant_sweep(cfg, tmp_path)
    (tmp_path / "trials" / "trial-00002.json").unlink()  # split 1.0, cnn-16, repetition 0
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert not summary["complete"] and summary["trials"]["missing"] == [2]
    by_name = {v["name"]: v["summary"] for v in summary["variants"]}
    assert by_name["cnn-8"]["complete"] and not by_name["cnn-16"]["complete"]
    assert by_name["cnn-16"]["trials"]["missing"] == [2]
    assert "indexes 2" in by_name["cnn-16"]["partial_reasons"][0]


def test_result_of_the_wrong_variant_at_an_index_is_refused(tmp_path):
    cfg = variant_cfg()
    storage = LocalStorage(tmp_path)
    assert write_result(storage, fake_result(cfg, 2, variant="cnn-8"))  # index 2 runs cnn-16
    loaded = load_results(cfg, storage)
    assert 2 in loaded.missing and "index 2 runs variant 'cnn-16'" in loaded.problems[0]


def test_sweep_without_variants_has_the_same_summary_as_before(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path)
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    # The single-curve summary's keys (next_steps came later, for every curve), and nothing about variants anywhere.
    assert list(summary) == [
        "summary_schema_version", "complete", "status", "partial_reasons", "metric", "level", "trials", "per_size",
        "chosen_family", "curve", "predictions", "targets", "next_steps", "backtest", "validation", "per_class",
        "confusion_matrix", "run", "points", "warnings"]
    assert not re.search(r"\"(variant|variants|comparison)\":", json.dumps(summary))
    assert set(summary["points"][0]) == {"index", "split", "repetition", "sample_size", "score", "backtest"}
    # The same values as the single-curve summary built directly (bar its timestamp).
    direct = build_summary(cfg, load_results(cfg, storage), job_state="Complete", n_bootstrap=BOOT,
                           output_uri=storage.uri).to_json()
    for s in (summary, direct):
        s["run"].pop("generated_at")
    assert summary == direct


# ---------------------------------------------------------------- through the CLI


TINY_VARIANTS = "variants=[{name: px8, dataset: {image_size: 8}}, {name: px12, dataset: {image_size: 12}}]"


def _tiny_sets(*extra):
    from conftest import TINY_SWEEP

    out = []
    for item in [*TINY_SWEEP, TINY_VARIANTS, *extra]:
        out += ["--set", item]
    return out


def test_plan_json_names_each_trials_variant(tmp_path):
    from conftest import run_cli

    proc = run_cli("plan", "--json", *_tiny_sets(f"output={tmp_path}"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["split"], r["variant"], r["repetition"]) for r in rows] == [
        (0.6, "px8", 0), (0.6, "px8", 1), (0.6, "px12", 0), (0.6, "px12", 1),
        (0.3, "px8", 0), (0.3, "px8", 1), (0.3, "px12", 0), (0.3, "px12", 1)]
    assert rows[0]["seed"] == rows[2]["seed"] and rows[0]["sample_size"] == rows[2]["sample_size"]
    text = run_cli("plan", *_tiny_sets(f"output={tmp_path}"))
    assert "x 2 variants (paired" in text.stdout and "px12: dataset.image_size=12" in text.stdout
    plain = json.loads(run_cli("plan", "--json", "--set", f"output={tmp_path}").stdout)
    assert all(r["variant"] is None for r in plain)


@pytest.mark.slow
def test_two_variant_sweep_runs_end_to_end_and_reports_the_comparison(tmp_path):
    from conftest import run_cli

    out = tmp_path / "out"
    proc = run_cli("run", "--workers", "2", *_tiny_sets(f"output={out}", "name=tiny-compare"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("trial-*.json"))]
    assert [r["variant"] for r in results] == ["px8", "px8", "px12", "px12"] * 2
    by_pair = {}
    for r in results:
        by_pair.setdefault((r["split"], r["repetition"]), []).append(r)
    for a, b in by_pair.values():  # paired: one subsample, two prepared copies (8 and 12 px)
        assert (a["seed"], a["sample_size"], a["train_size"]) == (b["seed"], b["sample_size"], b["train_size"])
        assert a["dataset_key"] != b["dataset_key"]
    assert len(list((out / "cache").glob("dataset-*.npz"))) == 2  # each variant's copy built once
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["complete"] and [v["name"] for v in summary["variants"]] == ["px8", "px12"]
    assert all(v["summary"]["curve"] is not None for v in summary["variants"])
    cmp = summary["comparison"]
    assert len(cmp["targets"]) == 3 and len(cmp["paired"][0]["rows"]) == 2
    assert "## Answer" in proc.stdout and "Paired differences: px8 minus px12" in proc.stdout


def test_each_variant_gets_its_own_feature_cache_unless_only_its_training_differs():
    from samplesize.data import prepared_key
    from samplesize.training.feature_cache import feature_cache_key

    cfg = make_cfg(dataset={"image_size": 32}, variants=[
        {"name": "mnv2", "model": {"backbone": "mobilenet_v2"}},
        {"name": "mnv2-48", "model": {"backbone": "mobilenet_v2"}, "dataset": {"image_size": 48}},
        {"name": "effb0", "model": {"backbone": "efficientnet_b0"}},
        {"name": "mnv2-lr", "model": {"backbone": "mobilenet_v2"}, "training": {"learning_rate": 0.01}},
        {"name": "mnv2-aug", "model": {"backbone": "mobilenet_v2"}, "training": {"augment": "static"}},
    ])

    def key(name):
        vcfg = cfg.trial_config(name)
        return feature_cache_key(vcfg, prepared_key(vcfg), f"none:seed={vcfg.seed}", None, "float32")

    keys = {v.name: key(v.name) for v in cfg.variants}
    assert len({keys[n] for n in ("mnv2", "mnv2-48", "effb0", "mnv2-aug")}) == 4
    # A head-only change computes the very same frozen features: one cache, exact for both.
    assert keys["mnv2-lr"] == keys["mnv2"]


def test_variant_without_any_result_is_named_and_the_other_still_compared(tmp_path):
    cfg = variant_cfg()
    storage = _variant_sweep(cfg, tmp_path)
    for spec in all_trials(cfg):
        if spec.variant == "cnn-16":
            (tmp_path / "trials" / f"trial-{spec.index:05d}.json").unlink()
    summary = aggregate(cfg, storage, n_bootstrap=BOOT)
    assert not summary["complete"] and summary["variants"][1]["summary"] is None
    assert summary["variants"][0]["summary"]["curve"] is not None
    assert "cnn-16: no usable result yet, so no curve" in summary["warnings"]
    target = summary["comparison"]["targets"][0]
    assert target["by_variant"]["cnn-16"] is None and target["fewest"] in ("cnn-8", None)
    assert (tmp_path / "report" / "report.html").read_text().count("No usable result yet") == 1


def test_results_on_any_variants_prepared_copy_are_not_called_other_data(tmp_path):
    from samplesize.results import describe_other_data, results_on_other_data

    storage = LocalStorage(str(tmp_path))
    for index, used in enumerate(["dataset-a.npz", "dataset-b.npz", "dataset-old.npz"]):
        storage.write_once(f"trials/trial-{index:05d}.json", json.dumps({"dataset_key": used}).encode())
    current = frozenset({"dataset-a.npz", "dataset-b.npz"})  # two variants, two image sizes
    others = results_on_other_data(storage, current)
    assert others == {"dataset-old.npz": 1}
    assert "dataset-a.npz, dataset-b.npz" in describe_other_data(others, current)
