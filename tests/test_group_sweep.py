"""A sweep over a CSV with patients (issue 20, part 3), end to end: prepare, plan and trials draw whole patients."""

from __future__ import annotations

import json

import pytest

import numpy as np

from conftest import image_bytes, run_cli, tiny_sweep_sets
from samplesize.commands import open_uri
from samplesize.config import load_config
from samplesize.data import open_source, prepare_dataset
from samplesize.storage import LocalStorage

PATIENTS, PER_PATIENT = 15, 3


def _grouped_export(tmp_path):
    """A labels CSV of 15 patients with 3 images each, a patient's images all of one class."""
    names = {f"img/p{p}_{i}.png": p % 3 for p in range(PATIENTS) for i in range(PER_PATIENT)}
    rng = np.random.default_rng(0)
    (tmp_path / "export" / "img").mkdir(parents=True)
    for name, tint in names.items():
        (tmp_path / "export" / name).write_bytes(image_bytes(rng, tint=tint))
    rows = "".join(f"{name},{'abc'[tint]},p{name[5:].split('_')[0]}\n" for name, tint in names.items())
    (tmp_path / "export" / "labels.csv").write_text("path,label,patient\n" + rows)
    return tiny_sweep_sets(f"output={tmp_path / 'out'}", f"dataset.source=csv:{tmp_path / 'export' / 'labels.csv'}",
                           "dataset.group_column=patient")


@pytest.mark.slow
def test_a_grouped_csv_sweep_plans_and_trains_on_whole_patients(tmp_path):
    sets = _grouped_export(tmp_path)
    assert run_cli("prepare", *sets).returncode == 0
    cfg = load_config(None, [s for s in sets if s != "--set"])
    data = prepare_dataset(cfg.trial_config(None), LocalStorage(tmp_path / "out"), open_source(cfg.dataset, open_uri))
    pool, test = set(data.pool_groups.tolist()), set(data.test_groups.tolist())
    assert pool and test and not pool & test  # no patient in both the pool and the test set
    plan = run_cli("plan", "--json", *sets)
    assert plan.returncode == 0, plan.stderr
    rows = json.loads(plan.stdout)
    assert len(rows) == 4
    assert all((r["sample_size"], r["sample_groups"]) == (None, round(r["split"] * len(pool))) for r in rows)
    for r in rows:
        proc = run_cli("trial", "--index", str(r["index"]), *sets)
        assert proc.returncode == 0, proc.stderr
        result = json.loads((tmp_path / "out" / "trials" / f"trial-{r['index']:05d}.json").read_text())
        assert result["pool_groups"] == len(pool)
        assert result["sample_groups"] == r["sample_groups"]  # sizes in groups
        assert result["sample_size"] == PER_PATIENT * result["sample_groups"]  # whole patients' images
        assert result["train_size"] + result["validation_size"] == result["sample_size"]
