"""A sweep drawn by patient answers in patients, with images beside (issue 20, part 3): the fit, summary.json
and the report count what the trials drew; a sweep without groups is as it was (tests/golden)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import image_bytes
from fake_sweep import BOOT, GROUPED, PER_GROUP, POOL, fake_result, make_cfg, write_sweep
from samplesize.aggregate import aggregate
from samplesize.commands import open_uri
from samplesize.data import open_source, prepare_dataset
from samplesize.results import write_result
from samplesize.storage import LocalStorage
from samplesize.size_unit import SizeUnit, size_unit, unit_noun
from samplesize.summary import Summary


@pytest.fixture(scope="module")
def grouped_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("grouped")
    cfg = make_cfg(**GROUPED)
    aggregate(cfg, write_sweep(cfg, root), n_bootstrap=BOOT)
    return json.loads((root / "report" / "summary.json").read_text()), (root / "report" / "report.md").read_text()


@pytest.mark.parametrize("column, noun", [("patient", "patients"), ("PatientID", "patients"), ("subject_id", "subjects"),
                                          ("study", "studies"), ("case", "cases"), ("box", "boxes"),
                                          ("id", "groups"), ("patient 2", "groups"), ("病人", "groups")])
def test_the_unit_is_named_after_the_group_column(column, noun):
    assert unit_noun(column) == noun


def test_results_without_groups_keep_their_sizes_in_images():
    results = {0: {"sample_size": 40, "pool_size": 100}}
    unit = size_unit("patient", results)
    assert unit == SizeUnit() and not unit.grouped and unit.images(10) is None
    assert unit.counted(results) == results


def test_results_drawn_by_group_count_groups_and_keep_their_images():
    results = {0: {"sample_size": 40, "sample_groups": 10, "pool_size": 99, "pool_groups": 33}}
    unit = size_unit("patient", results)
    assert (unit.name, unit.images_per_group) == ("patients", 3.0)
    assert unit.counted(results)[0] == {**results[0], "sample_size": 10, "sample_images": 40}
    assert unit.images(10.2) == 31.0  # whole images, rounded up
    assert unit.images(float("inf")) == float("inf")


def test_the_curve_is_fitted_on_patients_and_the_summary_carries_images_beside(grouped_report):
    summary, _ = grouped_report
    run = summary["run"]
    assert (run["size_unit"], run["pool_groups"], run["pool_size"]) == ("patients", POOL // PER_GROUP, POOL)
    assert run["images_per_group"] == pytest.approx(POOL / (POOL // PER_GROUP))
    for point in summary["points"]:
        assert point["images"] == PER_GROUP * point["sample_size"]
    for row in summary["per_size"]:
        assert row["images"] == PER_GROUP * row["sample_size"]
    assert summary["curve"]["max_fitted_size"] == POOL // PER_GROUP  # the fit's x axis is patients
    pool_predictions = [p for p in summary["predictions"] if p["pool_multiple"]]
    assert [p["sample_size"] for p in pool_predictions] == [2 * (POOL // PER_GROUP), 4 * (POOL // PER_GROUP)]
    assert summary["next_steps"]["current_size"] == POOL // PER_GROUP
    answered = [t for t in summary["targets"] if t["sample_size"] is not None]
    assert answered
    for t in answered:
        assert t["images"] >= run["images_per_group"] * t["sample_size"]
        assert t["images"] - run["images_per_group"] * t["sample_size"] < 1
        assert len(t["images_interval"]) == 2
    assert Summary.from_json(summary).to_json() == summary  # the report renders again from the file alone


def test_the_report_answers_in_patients_with_images_beside(grouped_report):
    summary, report = grouped_report
    reached = next(t for t in summary["targets"] if t["sample_size"] is not None)
    answer = report.split("## Answer")[1].split("##")[0]
    assert f"about {reached['sample_size']:,.0f} patients (≈ {reached['images']:,.0f} images; 80% interval" in answer
    assert "labelled images" not in answer
    assert f"today's pool of {POOL // PER_GROUP} patients (≈ {POOL:,} images;" in report
    assert "| More patients |" in report
    assert "| 0.5 | 166 (498 images) |" in report  # the measured sizes in patients, their images beside


def test_a_sweep_without_groups_writes_no_unit_and_answers_in_images(tmp_path):
    cfg = make_cfg()
    aggregate(cfg, write_sweep(cfg, tmp_path), n_bootstrap=BOOT)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert not {"size_unit", "pool_groups", "images_per_group"} & set(summary["run"])
    assert all("images" not in row for row in summary["per_size"] + summary["points"] + summary["targets"])
    assert "labelled images" in (tmp_path / "report" / "report.md").read_text()


def _export_with_junk(root):
    """A CSV of 12 patients (3 images each, one class per patient), one row naming a missing file, and one
    patient's image repeated under another patient (a duplicate `allow` keeps)."""
    rng = np.random.default_rng(1)
    (root / "img").mkdir(parents=True)
    rows = []
    for p in range(12):
        for i in range(PER_GROUP):
            (root / "img" / f"p{p}_{i}.png").write_bytes(image_bytes(rng, tint=p % 2))
            rows.append(f"img/p{p}_{i}.png,{'ab'[p % 2]},p{p}")
    shutil.copy(root / "img" / "p0_0.png", root / "img" / "copy.png")
    rows += ["img/copy.png,a,p2", "img/gone.png,a,p4"]
    (root / "labels.csv").write_text("path,label,patient\n" + "\n".join(rows) + "\n")
    return root / "labels.csv"


def test_the_run_facts_list_skipped_files_duplicates_and_patients_per_class(tmp_path):
    csv = _export_with_junk(tmp_path / "export")
    cfg = make_cfg(dataset={"source": f"csv:{csv}", "group_column": "patient", "duplicates": "allow",
                            "image_size": 16})
    storage = LocalStorage(tmp_path / "out")
    data = prepare_dataset(cfg.trial_config(None), storage, open_source(cfg.dataset, open_uri))
    for i in range(cfg.trial_count):
        assert write_result(storage, fake_result(cfg, i, dataset_key=data.key, dataset_digest=data.digest))
    aggregate(cfg, storage, n_bootstrap=BOOT)
    run = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())["run"]
    assert run["dataset_summary"] == data.summary.to_json()
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    facts = report.split("## Data\n", 1)[1].strip().split("\n\n")[0]
    a, b = (counts for _, counts in data.summary.classes)
    assert facts.splitlines() == [
        "- Skipped files: 1 (1 file not found)",
        "- Duplicate images: 1 kept (1 in pool/test)",  # p0's image listed again under p2, across the split
        f"- Patients per class (pool / test): a {a.pool_groups} / {a.test_groups}; b {b.pool_groups} / {b.test_groups}",
    ]
    assert (a.pool_groups + a.test_groups, b.pool_groups + b.test_groups) == (6, 6)
    html = (tmp_path / "out" / "report" / "report.html").read_text()
    assert "Patients per class (pool / test)" in html and "Skipped files" in html
