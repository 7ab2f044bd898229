"""The output folder, the command line and tiny data, as a hostile user or cluster would set them.

Each test is named after the case it guards.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli, tiny_sweep_sets
from samplesize.aggregate import aggregate
from samplesize.config import build_config
from samplesize.errors import DataError
from samplesize.plan import trial_spec
from samplesize.results import encode_result, result_key, trial_identity
from samplesize.storage import LocalStorage

SETS = tiny_sweep_sets()


# ---------------------------------------------------------------- the output folder


def test_directory_at_a_result_key_is_an_error_naming_the_path_never_already_done(tmp_path):
    store = LocalStorage(tmp_path)
    (tmp_path / "trials" / "trial-00005.json").mkdir(parents=True)
    with pytest.raises(DataError, match="trial-00005.json.*not a regular file"):
        store.write_once("trials/trial-00005.json", b"{}")
    with pytest.raises(DataError, match="trial-00005.json.*not a regular file"):
        store.exists("trials/trial-00005.json")
    (tmp_path / "trials" / "trial-00000.json").mkdir()
    proc = run_cli("trial", "--index", "0", "--set", f"output={tmp_path}", *SETS)
    assert proc.returncode == 65, proc.stdout + proc.stderr
    assert "trial-00000.json" in proc.stderr and "not a regular file" in proc.stderr
    assert "nothing to do" not in proc.stdout and "epoch" not in proc.stdout  # refused before training


def test_results_cache_and_report_files_are_created_0644(tmp_path):
    old = os.umask(0o022)
    try:
        store = LocalStorage(tmp_path)
        store.write_once("trials/trial-00000.json", b"{}")
        store.write("report/report.html", b"<html>")
    finally:
        os.umask(old)
    for key in ("trials/trial-00000.json", "report/report.html"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o644, key


def test_unwritable_output_fails_before_training(tmp_path):
    out = tmp_path / "out"
    assert run_cli("prepare", "--set", f"output={out}", *SETS).returncode == 0  # the cache exists
    (out / "trials").write_text("not a folder")  # blocks writes even for root
    proc = run_cli("trial", "--index", "1", "--set", f"output={out}", *SETS)
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "cannot write" in proc.stderr and "Traceback" not in proc.stderr
    assert "epoch" not in proc.stdout  # refused before any training


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("args, words", [
    (("run", "--workers", "0"), ["--workers", "0", "at least 1"]),
    (("run", "--workers", "-3"), ["--workers", "-3", "at least 1"]),
    (("aggregate", "--bootstrap", "-5"), ["--bootstrap", "-5", "at least 20"]),
    # "0: no intervals" printed intervals all the same; no report without them is offered
    (("aggregate", "--bootstrap", "0"), ["--bootstrap", "0", "at least 20", "intervals and chances rest on"]),
])
def test_workers_zero_or_negative_and_too_few_bootstrap_resamples_are_refused(tmp_path, args, words):
    proc = run_cli(*args, "--set", f"output={tmp_path}", *SETS)
    assert proc.returncode == 64, proc.stderr
    for word in words:
        assert word in proc.stderr
    assert not (tmp_path / "cache").exists()  # refused before any work


def test_splits_drawing_the_same_sample_size_are_refused(tmp_path):
    # builtin digits: a pool of 1438 images; 0.1 and 0.1003 both draw 144. `plan` knows the pool once prepared.
    assert run_cli("prepare", "--set", f"output={tmp_path}", "--set", "splits=[0.1, 0.1003]").returncode == 0
    proc = run_cli("plan", "--set", f"output={tmp_path}", "--set", "splits=[0.1, 0.1003]")
    assert proc.returncode == 64, proc.stderr
    assert "0.1 and 0.1003" in proc.stderr and "144" in proc.stderr


@pytest.mark.slow
def test_sigterm_exits_75_with_a_message_and_removes_its_temp_files(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "samplesize", "run", "--set", f"output={tmp_path / 'out'}", *SETS,
           "--set", "training.head_epochs=200", "--set", "training.patience=200"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    for line in proc.stderr:
        if "epoch" in line:  # a child is training
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "SIGTERM" in err and "Traceback" not in err
    assert not [p for p in tmp.iterdir() if p.name.startswith("samplesize-")]
    children = subprocess.run(["pgrep", "-f", f"output={tmp_path / 'out'}"], capture_output=True, text=True)
    assert children.stdout.strip() == ""  # no trial left training


# ---------------------------------------------------------------- a test set too small to measure


PERFECT = {0.25: (1.0, 1.0), 0.5: (1.0, 1.0), 1.0: (1.0, 1.0)}  # every trial scores 4 of 4


def _tiny_test_set_sweep(tmp_path, scores):
    cfg = build_config({"splits": [0.25, 0.5], "backtest_splits": [1.0], "repetitions": 2, "targets": [0.98],
                        "predict_at": [40]})
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        spec = trial_spec(cfg, i)
        n = round(spec.split * 20)
        score = scores[spec.split][spec.repetition]
        r = {
            **trial_identity(cfg, spec), "sample_size": n, "train_size": n - 1, "validation_size": 1,
            "test_size": 4, "pool_size": 20, "class_names": ["a", "b"],
            "metrics": {"accuracy": score, "balanced_accuracy": score, "macro_f1": score, "auc": None,
                        "per_class_recall": {"a": score, "b": score}},
            "confusion_matrix": [[2, 0], [0, 2]] if score == 1.0 else [[2, 0], [1, 1]],
        }
        storage.write_once(result_key(i), encode_result(r))
    return cfg, storage


def test_tiny_test_set_is_flagged_and_no_size_below_the_smallest_drawable_sample(tmp_path):
    cfg, storage = _tiny_test_set_sweep(tmp_path, PERFECT)
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=40)
    assert any(w.startswith("TEST SET TOO SMALL") and "4 images" in w for w in summary["warnings"])
    (target,) = summary["targets"]
    assert target["reachable"] is True
    assert target["sample_size"] >= 3  # 2 classes + 1 validation image: nothing smaller can be drawn
    assert all(v == "inf" or v >= 3 for v in target["interval"])
    md = (tmp_path / "report" / "report.md").read_text()
    assert "about 1 labelled images" not in md and "(1 to 1)" not in md


def test_backtest_equal_to_its_prediction_at_the_shown_precision_is_not_outside(tmp_path):
    cfg, storage = _tiny_test_set_sweep(tmp_path, PERFECT)
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=40)
    (bt,) = summary["backtest"]
    assert round(bt["predicted"], 3) == round(bt["measured_mean"], 3) == 1.0
    assert bt["inside"] is True
    md = (tmp_path / "report" / "report.md").read_text()
    assert "measured 1.000, predicted 1.000" in md and "OUTSIDE" not in md
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["backtest"][0]["inside"] is bt["inside"]
