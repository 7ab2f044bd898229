"""Issue 20's done-when, end to end: a sweep over a CSV of DICOM files with 3 images per patient, local and from a
bucket on the GCS emulator, to the report; no patient in both the pool and the test set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, tiny_sweep_sets
from dicom_files import dicom_bytes
from samplesize.commands import open_uri
from samplesize.config import load_config
from samplesize.data import open_source, prepare_dataset

pytestmark = pytest.mark.slow

PATIENTS, PER_PATIENT = 15, 3


def _write_export(root: Path) -> Path:
    """`root/labels.csv` (path,label,patient) and `root/img/*.dcm`: 15 patients of 3 images, one class each."""
    rng = np.random.default_rng(20)
    (root / "img").mkdir(parents=True)
    rows = []
    for p in range(PATIENTS):
        label = p % 3
        for i in range(PER_PATIENT):
            # Classes are grey levels a tiny model tells apart: stored 800, 2000, 3200 (+ noise) in a 0..4095 window.
            pixels = (800 + 1200 * label + rng.integers(0, 300, (16, 16))).astype(np.uint16)
            name = f"img/p{p}_{i}.dcm"
            (root / name).write_bytes(dicom_bytes(pixels, WindowCenter=2048, WindowWidth=4096))
            rows.append(f"{name},{'abc'[label]},p{p}\n")
    (root / "labels.csv").write_text("path,label,patient\n" + "".join(rows))
    return root


def _assert_answers_in_patients(summary: dict, report_md: str) -> None:
    """The report of a grouped sweep answers in patients, with the images they hold beside them."""
    assert summary["run"]["size_unit"] == "patients"
    assert all("images" in t for t in summary["targets"] if t.get("sample_size") is not None)
    assert summary["per_size"] and all("images" in row for row in summary["per_size"])
    section = report_md.split("## Answer\n", 1)[1].split("\n## ", 1)[0]
    answers = [line for line in section.splitlines() if line.startswith("- ")]
    # every answer counts patients (a size it gives has its images beside), none counts labelled images
    assert answers and all(" patients" in line and "labelled images" not in line for line in answers), answers
    assert not [line for line in answers if re.search(r"about [\d,]+ patients(?! \(≈)", line)], answers
    groups = summary["run"]["dataset_summary"]["total"]  # the run facts list patients per class
    assert groups["pool_groups"] + groups["test_groups"] == PATIENTS
    assert "- Patients per class (pool / test): " in report_md


def _assert_whole_patients(sets: list[str], output: str, results: list[dict], summary: dict, report_md: str) -> None:
    """No patient in both the pool and the test set; every trial drew whole patients; the report is complete."""
    cfg = load_config(None, [s for s in sets if s != "--set"])
    data = prepare_dataset(cfg.trial_config(None), open_uri(output), open_source(cfg.dataset, open_uri))
    pool, test = set(data.pool_groups.tolist()), set(data.test_groups.tolist())
    assert pool and test and not pool & test
    assert len(pool | test) == PATIENTS
    assert len(results) == 4
    for r in results:
        assert r["pool_groups"] == len(pool)
        assert r["sample_groups"] == round(r["split"] * len(pool))
        assert r["sample_size"] == PER_PATIENT * r["sample_groups"]
    assert summary["complete"] is True
    assert report_md.strip()
    _assert_answers_in_patients(summary, report_md)


def test_a_local_sweep_over_a_csv_of_dicom_patients_runs_to_the_report(tmp_path):
    _write_export(tmp_path / "export")
    out = tmp_path / "out"
    # Run from elsewhere: the CSV's paths are relative to its folder, not to the working directory.
    sets = tiny_sweep_sets(f"output={out}", f"dataset.source=csv:{tmp_path / 'export' / 'labels.csv'}",
                           "dataset.group_column=patient")
    proc = run_cli("run", "--workers", "2", *sets, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    results = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("trial-*.json"))]
    summary = json.loads((out / "report" / "summary.json").read_text())
    _assert_whole_patients(sets, str(out), results, summary, (out / "report" / "report.md").read_text())


def test_a_sweep_over_a_csv_of_dicom_patients_in_a_bucket_writes_its_report_there(gcs_emulator, tmp_path):
    export = _write_export(tmp_path / "export")
    bucket = gcs_emulator.new_bucket()
    raw = gcs_emulator.client().bucket(bucket)
    for path in sorted(p for p in export.rglob("*") if p.is_file()):
        raw.blob(f"export/{path.relative_to(export).as_posix()}").upload_from_filename(str(path))
    output = f"gs://{bucket}/out"
    sets = tiny_sweep_sets(f"output={output}", f"dataset.source=csv:gs://{bucket}/export/labels.csv",
                           "dataset.group_column=patient")
    run_dir = tmp_path / "cwd"
    run_dir.mkdir()
    proc = run_cli("run", "--workers", "2", *sets, cwd=run_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(run_dir.iterdir()), "nothing may be written locally when the output is a bucket"

    trials = sorted(b.name for b in gcs_emulator.client().list_blobs(bucket, prefix="out/trials/"))
    results = [json.loads(raw.blob(name).download_as_bytes()) for name in trials]
    summary = json.loads(raw.blob("out/report/summary.json").download_as_bytes())
    report_md = raw.blob("out/report/report.md").download_as_bytes().decode()
    _assert_whole_patients(sets, output, results, summary, report_md)
