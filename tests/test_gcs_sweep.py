"""Whole sweeps through the CLI with `output: gs://...`, against fake-gcs-server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli, tiny_sweep_sets, write_image_folder

pytestmark = pytest.mark.slow

REPORT_FILES = ("report.html", "learning_curve.png", "summary.json", "report.md")


def _objects(emulator, bucket: str, prefix: str) -> dict[str, int]:
    """Object name -> generation, under `prefix`."""
    return {b.name: b.generation for b in emulator.client().list_blobs(bucket, prefix=prefix)}


def test_sweep_with_gcs_output_writes_every_result_and_the_report_to_the_bucket(gcs_emulator, tmp_path):
    bucket = gcs_emulator.new_bucket()
    proc = run_cli("run", "--workers", "2", *tiny_sweep_sets(f"output=gs://{bucket}/sweeps/tiny", "name=tiny"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    objects = _objects(gcs_emulator, bucket, "sweeps/tiny/")
    trials = sorted(n for n in objects if n.startswith("sweeps/tiny/trials/"))
    assert trials == [f"sweeps/tiny/trials/trial-{i:05d}.json" for i in range(4)]
    for name in REPORT_FILES:
        assert f"sweeps/tiny/report/{name}" in objects
    raw = gcs_emulator.client().bucket(bucket)
    summary = json.loads(raw.blob("sweeps/tiny/report/summary.json").download_as_bytes())
    assert summary["complete"] is True
    assert json.loads(raw.blob(trials[0]).download_as_bytes())["index"] == 0
    assert not list(tmp_path.iterdir()), "nothing may be written locally when the output is a bucket"

    # A retried pod of a finished index exits 0 and leaves the stored result untouched.
    again = run_cli("trial", "--index", "3", *tiny_sweep_sets(f"output=gs://{bucket}/sweeps/tiny", "name=tiny"))
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout
    assert _objects(gcs_emulator, bucket, "sweeps/tiny/trials/") == {n: objects[n] for n in trials}


def test_folder_dataset_in_a_bucket_feeds_trials_and_racing_pods_leave_one_result(gcs_emulator, tmp_path):
    bucket = gcs_emulator.new_bucket()
    raw = gcs_emulator.client().bucket(bucket)
    folder = write_image_folder(tmp_path / "images", per_class=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw.blob(f"datasets/pets/{path.relative_to(folder).as_posix()}").upload_from_filename(str(path))
    sets = tiny_sweep_sets(f"output=gs://{bucket}/sweeps/pets", f"dataset.source=folder:gs://{bucket}/datasets/pets")

    prepared = run_cli("prepare", *sets)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr

    # Two pods running the same index at once: one create-only write wins, both exit 0.
    pods = [
        subprocess.Popen([sys.executable, "-m", "samplesize", "trial", "--index", "0", *sets],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=900) for p in pods]
    assert [p.returncode for p in pods] == [0, 0], outputs
    trials = _objects(gcs_emulator, bucket, "sweeps/pets/trials/")
    assert list(trials) == ["sweeps/pets/trials/trial-00000.json"]
    result = json.loads(raw.blob("sweeps/pets/trials/trial-00000.json").download_as_bytes())
    assert result["class_names"] == ["birds", "cats", "dogs"]
