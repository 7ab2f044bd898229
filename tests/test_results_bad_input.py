"""Hostile or broken result files: none may stop the report, and none may be fitted in silently.

Anyone who can write to the output can drop a file into trials/. Each test
is named after the case it guards; results are synthetic (see fake_sweep).
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from fake_sweep import BOOT, fake_result, make_cfg, rescored, write_sweep
from samplesize.aggregate import aggregate
from samplesize.plan import trial_spec
from samplesize.report import REPORT_FILES
from samplesize.results import encode_result, load_results, result_key
from samplesize.storage import LocalStorage


def aggregate_with(tmp_path, index: int, data: bytes, cfg=None):
    """Aggregate a full sweep in which result `index` is replaced by `data`; return (summary, where)."""
    cfg = cfg or make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=[i for i in range(cfg.trial_count) if i != index])
    (tmp_path / result_key(index)).write_bytes(data)
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    for name in REPORT_FILES:
        assert (tmp_path / name).is_file(), name
    return summary, str(tmp_path / result_key(index))


def changed(cfg, index: int, **fields) -> bytes:
    return json.dumps({**fake_result(cfg, index), **fields}).encode()


# ---------------------------------------------------------------- one bad file never stops aggregation


def test_json_nested_200000_levels_is_rejected_and_the_report_still_written(tmp_path):
    summary, where = aggregate_with(tmp_path, 2, b"[" * 200_000 + b"]" * 200_000)
    assert summary["trials"]["missing"] == [2] and any(where in p and "nested" in p for p in summary["trials"]["rejected"])


@pytest.mark.parametrize("digits", [401, 5001])
def test_integer_of_hundreds_or_thousands_of_digits_is_rejected_and_the_report_still_written(tmp_path, digits):
    cfg = make_cfg()
    text = changed(cfg, 2).decode().replace('"test_size": 250', '"test_size": ' + "9" * digits)
    summary, where = aggregate_with(tmp_path, 2, text.encode(), cfg)
    assert summary["trials"]["missing"] == [2]
    assert any(where in p for p in summary["trials"]["rejected"])


def test_confusion_matrix_full_of_1e308_is_rejected_and_the_report_still_written(tmp_path):
    cfg = make_cfg()
    summary, where = aggregate_with(tmp_path, 1, changed(cfg, 1, confusion_matrix=[[1e308] * 3] * 3), cfg)
    assert any(where in p and "confusion_matrix" in p for p in summary["trials"]["rejected"])
    (other,) = [i for i in range(cfg.trial_count) if trial_spec(cfg, i).split == trial_spec(cfg, 1).split and i != 1]
    assert summary["confusion_matrix"]["matrix"][0] == fake_result(cfg, other)["confusion_matrix"][0]


@pytest.mark.parametrize(
    "fields, word",
    [
        ({"test_size": "lots"}, "test_size"),
        ({"split": int("9" * 401)}, "split"),
        ({"metrics": {"balanced_accuracy": int("9" * 401)}}, "balanced_accuracy"),
        ({"pool_size": [1]}, "pool_size"),
        ({"timings": {"total_s": 1e308}}, "timings"),
        ({"accelerator": {"gpu": 1}}, "accelerator"),
        ({"repetition": 7}, "repetition"),
        ({"metrics": {"balanced_accuracy": 0.5, "per_class_recall": {"nobody": 0.5}}}, "per_class_recall"),
    ],
)
def test_field_of_the_wrong_type_or_range_is_rejected_naming_it_and_the_report_still_written(tmp_path, fields, word):
    cfg = make_cfg()
    summary, where = aggregate_with(tmp_path, 2, changed(cfg, 2, **fields), cfg)
    assert summary["trials"]["missing"] == [2]
    assert any(where in p and word in p for p in summary["trials"]["rejected"]), summary["trials"]["rejected"]


# ---------------------------------------------------------------- sizes checked against the plan


@pytest.mark.parametrize(
    "fields, word",
    [({"sample_size": 5}, "sample_size"), ({"test_size": 0}, "test_size"), ({"pool_size": -100}, "pool_size")],
)
def test_sizes_that_disagree_with_the_plan_are_rejected(tmp_path, fields, word):
    cfg = make_cfg()
    summary, where = aggregate_with(tmp_path, 3, changed(cfg, 3, **fields), cfg)
    assert any(where in p and word in p for p in summary["trials"]["rejected"]), summary["trials"]["rejected"]
    assert 5 not in [row["sample_size"] for row in summary["per_size"]]
    assert all(p["sample_size"] > 0 for p in summary["predictions"])


def test_results_on_a_different_pool_or_test_set_are_not_fitted_together(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(cfg.trial_count - 2))
    for i in range(cfg.trial_count - 2, cfg.trial_count):
        other = fake_result(cfg, i, dataset_key="cache/dataset-other.npz", test_size=300)
        storage.write_once(result_key(i), encode_result(other))
    for i in range(cfg.trial_count - 2):
        data = json.loads((tmp_path / result_key(i)).read_text())
        (tmp_path / result_key(i)).write_text(json.dumps({**data, "dataset_key": "cache/dataset-first.npz"}))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert summary["complete"] is False
    assert summary["trials"]["missing"] == [cfg.trial_count - 2, cfg.trial_count - 1]
    assert sum("another pool or test set" in p for p in summary["trials"]["rejected"]) == 2


def test_results_from_another_copy_under_the_same_key_are_not_fitted_together(tmp_path):
    """A prepared copy replaced in a shared cache/ keeps its key; its digest tells the two apart (issue 24, case 4)."""
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(cfg.trial_count))
    for i in range(cfg.trial_count):
        data = json.loads((tmp_path / result_key(i)).read_text())
        digest = "sha256:" + ("b" if i >= cfg.trial_count - 2 else "a") * 64
        (tmp_path / result_key(i)).write_text(json.dumps({**data, "dataset_key": "cache/dataset-one.npz",
                                                          "dataset_digest": digest}))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert summary["trials"]["missing"] == [cfg.trial_count - 2, cfg.trial_count - 1]
    assert sum("another pool or test set" in p for p in summary["trials"]["rejected"]) == 2
    problems = load_results(cfg, storage).problems  # the full lines, which the summary cuts
    assert sum("sha256:bbbb" in p for p in problems) == 2, problems


# ---------------------------------------------------------------- names


def test_non_utf8_class_name_in_results_does_not_stop_the_report(tmp_path):
    cfg = make_cfg()
    classes = ["cat", "caf\udce9", "dog"]  # what json.dumps wrote for a Latin-1 folder name before
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        (tmp_path / "trials").mkdir(exist_ok=True)
        (tmp_path / result_key(i)).write_text(json.dumps(fake_result(cfg, i, classes=classes)))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert summary["complete"] is True and [c["class"] for c in summary["per_class"]][1] == "caf\\xe9"
    assert "caf\\xe9" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")


def test_recall_null_for_a_class_without_test_images_is_accepted_and_not_fitted(tmp_path):
    cfg = make_cfg()
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        r = fake_result(cfg, i)
        r["confusion_matrix"][1] = [0, 0, 0]  # its recall is None
        storage.write_once(result_key(i), encode_result(rescored(r)))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert summary["trials"]["rejected"] == []
    dog = next(c for c in summary["per_class"] if c["class"] == "dog")
    assert dog["measured"] == [] and dog["recall_at_largest"] is None


def test_terminal_escape_sequences_in_a_trial_file_name_are_printed_escaped(tmp_path):
    cfg_args = ("--set", f"output={tmp_path}", "--set", "splits=[0.1, 0.25, 0.5]", "--set", "backtest_splits=[1.0]",
                "--set", "repetitions=2", "--set", "targets=[0.85, 0.99]", "--set", "predict_at=[1500]")
    cfg = make_cfg(output=str(tmp_path))
    write_sweep(cfg, tmp_path)
    evil = tmp_path / "trials" / "trial-\x1b]0;pwned\x07\x1b[2J\x1b[31m.json"
    evil.write_text("{}")
    for command in (("aggregate", "--bootstrap", "20"), ("status",)):
        proc = run_cli(*command, *cfg_args)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout + proc.stderr
        assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in run_cli("aggregate", "--bootstrap", "20", *cfg_args).stdout


def test_status_counts_only_usable_results_and_flags_a_stale_report(tmp_path):
    cfg = make_cfg(output=str(tmp_path))
    args = ("--set", f"output={tmp_path}", "--set", "splits=[0.1, 0.25, 0.5]", "--set", "backtest_splits=[1.0]",
            "--set", "repetitions=2", "--set", "targets=[0.85, 0.99]", "--set", "predict_at=[1500]")
    storage = write_sweep(cfg, tmp_path, indexes=range(cfg.trial_count - 1))
    aggregate(cfg, storage, n_bootstrap=BOOT)
    foreign = fake_result(cfg, cfg.trial_count - 1, config_hash="0123456789abcdef")
    storage.write_once(result_key(cfg.trial_count - 1), encode_result(foreign))
    (tmp_path / result_key(0)).write_text("{broken")
    proc = run_cli("status", *args)
    assert proc.returncode == 0, proc.stderr
    assert f"{cfg.trial_count - 2}/{cfg.trial_count} trials finished" in proc.stdout
    assert "rejected" in proc.stdout and "stale" in proc.stdout
    assert run_cli("status", "--require-report", *args).returncode == 1
    loaded = load_results(cfg, storage)
    assert sorted(loaded.missing) == [0, cfg.trial_count - 1]
