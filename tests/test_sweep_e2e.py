"""The whole sweep through the CLI, as a user runs it: trials, results, report."""

import json

import pytest

from conftest import run_cli, tiny_sweep_sets

pytestmark = pytest.mark.slow


def test_tiny_sweep_writes_every_result_and_the_report(tmp_path):
    out = tmp_path / "run out"  # a space in the path must work
    proc = run_cli("run", "--workers", "2", *tiny_sweep_sets(f"output={out}", "name=tiny"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = sorted((out / "trials").glob("trial-*.json"))
    assert [p.name for p in trials] == [f"trial-{i:05d}.json" for i in range(4)]
    for i, path in enumerate(trials):
        r = json.loads(path.read_text())
        assert r["index"] == i and r["schema_version"] == 1
        assert r["split"] == (0.6 if i < 2 else 0.3)
        assert r["sample_size"] == r["train_size"] + r["validation_size"]
        assert set(r["metrics"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "auc", "per_class_recall"}
        assert len(r["confusion_matrix"]) == 10 and r["epochs"]["head"] >= 1
        assert set(r["timings"]) == {"load_s", "train_s", "evaluate_s", "total_s"}
    for name in ("report.html", "learning_curve.png", "summary.json", "report.md"):
        assert (out / "report" / name).stat().st_size > 0
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["complete"] is True
    assert "trials done" in proc.stderr  # progress was shown


def test_second_run_of_a_finished_index_writes_nothing(tmp_path):
    out = tmp_path / "out"
    first = run_cli("trial", "--index", "3", *tiny_sweep_sets(f"output={out}"))
    assert first.returncode == 0, first.stderr
    path = out / "trials" / "trial-00003.json"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    second = run_cli("trial", *tiny_sweep_sets(f"output={out}"), env={"JOB_COMPLETION_INDEX": "3"})
    assert second.returncode == 0, second.stderr
    assert "already exists" in second.stdout
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-00003.json"]


def test_folder_dataset_sweep_reports_skipped_files(tmp_path, image_folder):
    out = tmp_path / "out"
    proc = run_cli("prepare", *tiny_sweep_sets(f"output={out}", f"dataset.source=folder:{image_folder}"))
    assert proc.returncode == 0, proc.stderr
    assert "skipped files: 3" in proc.stdout and "truncated.jpg" in proc.stdout
    proc = run_cli("trial", "--index", "0", *tiny_sweep_sets(f"output={out}", f"dataset.source=folder:{image_folder}"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "trials" / "trial-00000.json").read_text())
    assert result["class_names"] == ["birds", "cats", "dogs"]


def test_plan_json_lists_every_trial_with_its_sample_size(tmp_path):
    assert run_cli("prepare", *tiny_sweep_sets(f"output={tmp_path}")).returncode == 0  # sizes are known once prepared
    proc = run_cli("plan", "--json", *tiny_sweep_sets(f"output={tmp_path}"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert all(set(r) >= {"index", "split", "repetition", "sample_size", "seed"} for r in rows)
    assert rows[0]["sample_size"] > rows[3]["sample_size"]
