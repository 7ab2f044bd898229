"""Aggregation: which results are used, which are refused and why, and the summary.

Results are synthetic dicts following the schema in samplesize.results; no
model is trained here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from fake_sweep import BOOT, CLASSES, POOL, confusion_for, fake_result, make_cfg, rescored, true_score, write_sweep
from samplesize.aggregate import aggregate
from samplesize.errors import DataError
from samplesize.plan import trial_spec
from samplesize.summarize import curve_kind
from samplesize.results import encode_result, load_results, result_key, write_result
from samplesize.storage import LocalStorage


def strict_json(data: bytes) -> dict:
    def refuse(name):
        raise AssertionError(f"summary.json contains {name}")

    return json.loads(data, parse_constant=refuse)


# ---------------------------------------------------------------- complete sweeps


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """One complete sweep, aggregated once for the tests that only read its summary."""
    root = tmp_path_factory.mktemp("complete")
    cfg = make_cfg()
    summary = aggregate(cfg, write_sweep(cfg, root), job_state="Complete", n_bootstrap=BOOT)
    return cfg, root, summary


def test_complete_sweep_is_labelled_complete_and_answers_every_target(complete):
    cfg, tmp_path, summary = complete

    assert summary["complete"] is True and summary["status"] == "complete"
    assert summary["trials"] == {
        "expected": 8, "usable": 8, "missing": [], "failed": [], "rejected": [], "job_state": "Complete",
    }
    assert summary["chosen_family"] == summary["curve"]["family"]
    assert {f["name"] for f in summary["curve"]["families"]} >= {"pow2", "pow3"}
    assert [t["target"] for t in summary["targets"]] == [0.85, 0.99]
    assert all(t["reachable"] in (True, False) for t in summary["targets"])
    labels = [(p["label"], p["sample_size"]) for p in summary["predictions"]]
    assert labels == [("predict_at", 1500), ("2x pool", 2 * POOL), ("4x pool", 4 * POOL)]  # by size
    for p in summary["predictions"]:
        low, high = p["interval"]
        assert low <= high and isinstance(p["far"], bool)
    # relative to the largest measured size: the answer is fitted on every size, the 1000-image backtest included
    assert summary["predictions"][-1]["times_past_data"] == pytest.approx(4 * POOL / 1000)
    assert summary == strict_json((tmp_path / "report" / "summary.json").read_bytes())


def test_per_size_statistics_use_every_repetition(complete):
    cfg, _, summary = complete

    rows = {r["split"]: r for r in summary["per_size"]}
    assert sorted(rows) == [0.1, 0.25, 0.5, 1.0]
    scores = [fake_result(cfg, i)["metrics"]["balanced_accuracy"] for i in rows[0.25]["indexes"]]
    assert rows[0.25]["n"] == 2 and rows[0.25]["sample_size"] == 250
    assert rows[0.25]["mean"] == pytest.approx(np.mean(scores))
    assert rows[0.25]["std"] == pytest.approx(np.std(scores, ddof=1))
    assert rows[1.0]["backtest"] and not rows[0.5]["backtest"]


def test_backtest_split_is_left_out_of_the_validation_fit_and_compared_with_the_prediction(complete):
    cfg, _, summary = complete

    assert summary["validation"]["validation_max_size"] == 500  # the 1.0 split (1000) validates
    assert summary["curve"]["max_fitted_size"] == 1000  # ... and the answer is refitted with it
    (bt,) = summary["backtest"]
    assert bt["split"] == 1.0 and bt["n"] == 2
    low, high = bt["interval"]
    assert bt["inside"] == (low <= bt["measured_mean"] <= high)
    assert bt["predicted"] == pytest.approx(true_score(1000), abs=0.05)


def test_per_class_recall_gets_one_curve_per_class(complete):
    cfg, _, summary = complete

    assert [c["class"] for c in summary["per_class"]] == CLASSES
    for c in summary["per_class"]:
        assert c["family"] is not None
        assert [m["split"] for m in c["measured"]] == [0.1, 0.25, 0.5, 1.0]  # every size, the backtest included
        assert len(c["predictions"]) == 3 and len(c["targets"]) == 2
    cm = summary["confusion_matrix"]
    assert cm["split"] == 1.0 and cm["trials"] == 2
    largest = [i for i in range(cfg.trial_count) if trial_spec(cfg, i).split == 1.0]
    assert cm["matrix"][0] == np.sum([fake_result(cfg, i)["confusion_matrix"][0] for i in largest], axis=0).tolist()


def test_summary_json_holds_no_nan_or_infinity(tmp_path):
    cfg = make_cfg(targets=[0.999])  # above the ceiling of a saturating curve
    storage = write_sweep(cfg, tmp_path)

    aggregate(cfg, storage, n_bootstrap=BOOT)

    text = (tmp_path / "report" / "summary.json").read_text(encoding="utf-8")
    strict_json(text.encode())
    assert "NaN" not in text and "Infinity" not in text


def test_run_facts_name_dataset_sizes_model_and_total_trial_time(complete):
    cfg, _, summary = complete
    run = summary["run"]

    assert run["dataset"] == "builtin:digits" and run["model"] == "small_cnn"
    assert run["pool_size"] == POOL and run["test_size"] == 250
    assert run["total_trial_seconds"] == pytest.approx(8 * 11.0)
    assert run["accelerators"] == ["cpu"]
    assert run["config_hash"] == cfg.trial_hash()


# ---------------------------------------------------------------- partial sweeps


def test_missing_index_is_named_and_the_sweep_labelled_partial(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=[i for i in range(cfg.trial_count) if i != 3])

    summary = aggregate(cfg, storage, n_bootstrap=BOOT)

    assert summary["complete"] is False and summary["status"] == "partial"
    assert summary["trials"]["missing"] == [3]
    assert any("indexes 3" in r for r in summary["partial_reasons"])
    assert summary["warnings"][0].startswith("PARTIAL SWEEP")
    assert strict_json((tmp_path / "report" / "summary.json").read_bytes())["complete"] is False


def test_failed_indexes_make_the_sweep_partial(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))

    summary = aggregate(cfg, storage, failed_indexes=[0], job_state="Failed", n_bootstrap=BOOT)

    assert summary["complete"] is False
    assert summary["trials"]["failed"] == [0]
    reasons = " ".join(summary["partial_reasons"])
    assert "indexes 0 as failed" in reasons and "'Failed'" in reasons


def test_running_job_is_partial_even_when_every_result_is_present(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path)

    summary = aggregate(cfg, storage, job_state="Running", n_bootstrap=BOOT)

    assert summary["complete"] is False
    assert summary["partial_reasons"] == ["the Job's state is 'Running', not complete"]


def test_only_one_split_finished_writes_the_report_with_a_no_curve_warning(tmp_path):
    cfg = make_cfg()
    one_split = [i for i in range(cfg.trial_count) if trial_spec(cfg, i).split == 0.5]
    storage = write_sweep(cfg, tmp_path, indexes=one_split)

    summary = aggregate(cfg, storage, n_bootstrap=BOOT)

    assert summary["curve"] is None and summary["predictions"] is None
    assert summary["warnings"][0].startswith("NO CURVE: only split 0.5")
    assert "at least two splits" in summary["warnings"][0]
    assert [r["split"] for r in summary["per_size"]] == [0.5]
    assert all(t["reachable"] is None for t in summary["targets"])
    assert summary["complete"] is False
    for name in ("learning_curve.png", "report.html", "summary.json", "report.md"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_zero_results_raise_a_data_error_that_says_what_to_do(tmp_path):
    cfg = make_cfg()

    with pytest.raises(DataError, match=r"no usable trial results.*Run the trials first") as exc:
        aggregate(cfg, LocalStorage(tmp_path), n_bootstrap=BOOT)
    assert "expects 8" in str(exc.value)
    assert not (tmp_path / "report").exists()


def test_only_rejected_results_raise_a_data_error_naming_them(tmp_path):
    cfg = make_cfg()
    storage = LocalStorage(tmp_path)
    storage.write(result_key(0), b"{not json")

    with pytest.raises(DataError, match=r"1 file\(s\) were rejected.*trial-00000.json"):
        aggregate(cfg, storage, n_bootstrap=BOOT)


# ---------------------------------------------------------------- refused results


def rejected_for(tmp_path, cfg, index, data: bytes, name: str | None = None):
    storage = write_sweep(cfg, tmp_path, indexes=[i for i in range(cfg.trial_count) if i != index])
    storage.write(name or result_key(index), data)
    return load_results(cfg, storage)


def test_corrupt_result_file_is_named_and_excluded(tmp_path):
    cfg = make_cfg()
    full = encode_result(fake_result(cfg, 2))

    loaded = rejected_for(tmp_path, cfg, 2, full[: len(full) // 2])

    assert 2 not in loaded.results and loaded.missing == [2]
    (problem,) = loaded.problems
    assert "trial-00002.json" in problem and "not valid JSON" in problem


def test_result_from_another_config_is_refused(tmp_path):
    cfg = make_cfg()
    other = make_cfg(repetitions=5)
    stale = fake_result(cfg, 1, config_hash=other.trial_hash())

    loaded = rejected_for(tmp_path, cfg, 1, encode_result(stale))

    assert loaded.missing == [1]
    (problem,) = loaded.problems
    assert "another sweep" in problem and other.trial_hash() in problem and cfg.trial_hash() in problem


def test_report_only_config_changes_keep_results_usable(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path)

    loaded = load_results(make_cfg(targets=[0.7], metric="accuracy", predict_at=[99]), storage)

    assert loaded.problems == [] and len(loaded.results) == cfg.trial_count


def test_wrong_schema_version_is_refused(tmp_path):
    cfg = make_cfg()

    loaded = rejected_for(tmp_path, cfg, 4, encode_result(fake_result(cfg, 4, schema_version=99)))

    assert loaded.missing == [4]
    assert "schema_version 99" in loaded.problems[0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, 1.5])
def test_non_finite_or_missing_metric_is_refused(tmp_path, bad):
    cfg = make_cfg()
    result = fake_result(cfg, 5)
    result["metrics"]["balanced_accuracy"] = bad

    loaded = rejected_for(tmp_path, cfg, 5, json.dumps(result).encode())  # json allows NaN; encode_result would not

    assert loaded.missing == [5]
    assert "balanced_accuracy" in loaded.problems[0] and "trial-00005.json" in loaded.problems[0]


def test_nan_per_class_recall_is_refused(tmp_path):
    cfg = make_cfg()
    result = fake_result(cfg, 5)
    result["metrics"]["per_class_recall"]["dog"] = float("nan")

    loaded = rejected_for(tmp_path, cfg, 5, json.dumps(result).encode())

    assert loaded.missing == [5] and "'dog'" in loaded.problems[0]


def test_duplicated_index_is_named_and_never_averaged(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path)
    copy = fake_result(cfg, 3)
    copy["metrics"]["macro_f1"] = 0.01  # another file (its scores still those of its matrix)
    storage.write("trials/trial-00003 (copy).json", encode_result(copy))

    loaded = load_results(cfg, storage)

    assert loaded.results[3] == fake_result(cfg, 3)
    (problem,) = loaded.problems
    assert problem.startswith(str(tmp_path / "trials" / "trial-00003 (copy).json"))
    assert "holds index 3" in problem and "duplicates trials/trial-00003.json" in problem


def test_result_whose_index_does_not_match_its_name_is_refused(tmp_path):
    cfg = make_cfg()

    loaded = rejected_for(tmp_path, cfg, 6, encode_result(fake_result(cfg, 7)))

    assert loaded.missing == [6]
    assert "trial-00006.json: holds index 7 but is named for index 6" in loaded.problems[0]


def test_index_out_of_range_is_refused(tmp_path):
    cfg = make_cfg()
    result = fake_result(cfg, 0)
    result["index"] = cfg.trial_count

    loaded = rejected_for(tmp_path, cfg, 0, encode_result(result), name=result_key(cfg.trial_count))

    assert loaded.missing == [0]
    assert "outside this sweep's indexes 0..7" in loaded.problems[0]


def test_result_with_other_class_names_is_refused(tmp_path):
    cfg = make_cfg()

    loaded = rejected_for(tmp_path, cfg, 2, encode_result(fake_result(cfg, 2, classes=["cat", "dog", "bird"])))

    assert loaded.missing == [2] and "the dataset changed" in loaded.problems[0]


def test_temp_files_and_other_keys_under_trials_are_ignored(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path)
    (tmp_path / "trials" / ".trial-00000.json.abc.part").write_bytes(b"{half")
    storage.write("trials/cache/features.npz", b"\x00\x01")
    storage.write("trials/notes.txt", b"hello")

    loaded = load_results(cfg, storage)

    assert loaded.problems == [] and loaded.missing == []


# ---------------------------------------------------------------- dependencies


def test_aggregation_never_imports_tensorflow():
    code = (
        "import sys, samplesize.aggregate, samplesize.report; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_interval_widths_are_finite_numbers_or_marked_inf(tmp_path):
    cfg = make_cfg(targets=[0.85, 0.999])
    storage = write_sweep(cfg, tmp_path)

    summary = aggregate(cfg, storage, n_bootstrap=BOOT)

    for t in summary["targets"]:
        for v in t["interval"]:
            assert v == "inf" or (isinstance(v, float) and math.isfinite(v))
        if not t["reachable"]:
            assert t["sample_size"] is None


# ---------------------------------------------------------------- the answer uses every size; backtests validate


def test_answer_comes_from_a_refit_on_every_measured_size_backtests_included(complete):
    from samplesize.curves import fit_learning_curve

    cfg, _, summary = complete
    points = summary["points"]
    assert any(p["backtest"] for p in points)
    refit = fit_learning_curve([p["sample_size"] for p in points], [p["score"] for p in points],
                               n_bootstrap=BOOT, seed=cfg.seed, n_test=250, kind=curve_kind(cfg.model))  # a sweep's: images
    for p in summary["predictions"]:
        assert p["predicted"] == pytest.approx(float(refit.predict(p["sample_size"])))
    assert summary["validation"]["fitted_on"].startswith("every measured size, backtest splits included")
    assert summary["validation"]["backtests"] == 1


def test_targets_carry_p_reachable_and_inf_interval_ends(complete):
    _, tmp_path, summary = complete
    by_target = {t["target"]: t for t in summary["targets"]}
    assert 0.0 <= by_target[0.99]["p_reachable"] < by_target[0.85]["p_reachable"] <= 1.0
    assert by_target[0.99]["interval"][1] == "inf"  # 0.99 is above this curve's ceiling (0.95)
    assert by_target[0.99]["reach_horizon"] == pytest.approx(64 * 1000)
    on_disk = strict_json((tmp_path / "report" / "summary.json").read_bytes())
    assert on_disk["targets"][1]["p_reachable"] == by_target[0.99]["p_reachable"]


def test_backtest_above_the_fitted_ceiling_is_flagged_in_the_answer(tmp_path):
    # a backbone's curve (kind "image"): the small CNN's own correction lifts its ceiling to about 1
    cfg = make_cfg(model={"backbone": "mobilenet_v2", "weights": "imagenet"}, dataset={"image_size": 32})
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        spec = trial_spec(cfg, i)
        changes = {}
        if spec.backtest:  # far above the saturating curve that the smaller splits draw
            score = 0.995 - 0.004 * spec.repetition
            changes = {"confusion_matrix": confusion_for([score] * len(CLASSES), 250)}
        write_result(storage, rescored(fake_result(cfg, i, **changes)))

    summary = aggregate(cfg, storage, n_bootstrap=BOOT)

    (c,) = summary["validation"]["contradictions"]
    assert c["split"] == 1.0 and c["side"] == "above" and c["above_ceiling"]
    answer = (tmp_path / "report" / "report.md").read_text().split("## Predictions")[0]
    assert "CAUTION: at 1,000 images the curve fitted without the backtest predicted" in answer
    assert "above its 80% interval and above its ceiling" in answer
    assert "CAUTION: at 1,000 images" in (tmp_path / "report" / "report.html").read_text()
