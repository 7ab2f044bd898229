"""Faults lose nothing: a killed trial reruns identically, racing pods write one result."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_sweep_sets

pytestmark = pytest.mark.slow

SETS = tiny_sweep_sets("training.head_epochs=6")
VOLATILE = ("timings", "finished_at")


def _trial(out, index, *extra):
    return [sys.executable, "-m", "samplesize", "trial", "--index", str(index), "--set", f"output={out}", *SETS, *extra]


def _stable(path):
    result = json.loads(path.read_text())
    return {k: v for k, v in result.items() if k not in VOLATILE}


def test_trial_killed_mid_training_reruns_to_the_identical_result(tmp_path):
    reference = tmp_path / "reference"
    assert subprocess.run(_trial(reference, 0), capture_output=True, cwd=ROOT, timeout=600).returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen(_trial(out, 0), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    for line in proc.stdout:
        if "epoch 2/" in line:  # well inside training
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    trials = out / "trials"
    assert not trials.exists() or not [p for p in trials.iterdir() if not p.name.startswith(".")]

    assert subprocess.run(_trial(out, 0), capture_output=True, cwd=ROOT, timeout=600).returncode == 0
    assert sorted(p.name for p in trials.iterdir()) == ["trial-00000.json"]
    assert _stable(trials / "trial-00000.json") == _stable(reference / "trials" / "trial-00000.json")


def test_two_pods_running_the_same_index_leave_one_result_and_both_exit_0(tmp_path):
    out = tmp_path / "out"
    # Prepare first so the two racers contend on the result, the interesting write.
    assert subprocess.run([sys.executable, "-m", "samplesize", "prepare", "--set", f"output={out}", *SETS],
                          capture_output=True, cwd=ROOT, timeout=300).returncode == 0
    procs = [subprocess.Popen(_trial(out, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    # The race really happened: both pods trained (each printed epochs, so both passed the
    # existence check), and exactly one of them lost the create-only write.
    assert all("epoch 1/" in stdout for stdout, _ in outputs), outputs
    assert sum("a result already exists" in stdout for stdout, _ in outputs) == 1, outputs
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-00001.json"]
    json.loads((out / "trials" / "trial-00001.json").read_text())  # complete, parseable


def test_trials_racing_to_prepare_the_dataset_share_one_copy(tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(_trial(out, i), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for i in (2, 3)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    cache = [p.name for p in (out / "cache").iterdir()]
    assert len([n for n in cache if n.startswith("dataset-") and n.endswith(".npz")]) == 1
    assert not [n for n in cache if n.endswith(".part")]


def test_unwritable_output_is_a_clear_error_and_earlier_results_survive(tmp_path):
    out = tmp_path / "out"
    assert subprocess.run(_trial(out, 3), capture_output=True, cwd=ROOT, timeout=600).returncode == 0
    before = (out / "trials" / "trial-00003.json").read_bytes()
    # Root ignores permission bits, so block the write the way root cannot bypass either:
    # the result's folder path is taken by a file.
    os.rename(out / "trials", out / "kept")
    (out / "trials").write_text("not a folder")
    try:
        proc = subprocess.run(_trial(out, 2), capture_output=True, text=True, cwd=ROOT, timeout=600)
    finally:
        (out / "trials").unlink()
        os.rename(out / "kept", out / "trials")
    assert proc.returncode == 77, proc.stderr
    assert "cannot write" in proc.stderr and "trials" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "trials" / "trial-00003.json").read_bytes() == before


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs: a real disk that fills up (needs root and mount, as on CI machines)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_disk_full_is_a_clear_error_and_earlier_results_survive(tiny_disk):
    out = tiny_disk / "out"
    assert subprocess.run(_trial(out, 3), capture_output=True, cwd=ROOT, timeout=600).returncode == 0
    before = (out / "trials" / "trial-00003.json").read_bytes()
    with open(tiny_disk / "filler", "wb", buffering=0) as f:  # take every byte that is left
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    proc = subprocess.run(_trial(out, 2), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 77, proc.stderr
    assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "trials" / "trial-00003.json").read_bytes() == before
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-00003.json"]  # no partial file
