"""A trial refuses, at once and with the exit code the chart acts on, to waste a GPU node or mix configs.

- A pod that requests a GPU (SAMPLESIZE_EXPECT_GPU=1, set by the chart) but
  whose TensorFlow sees none exits 75 before loading any data. This machine
  has no GPU, so it is exactly that pod.
- A result of another config at a trial's key is not "done": the trial exits
  64 naming the output, and `samplesize run` stops before touching sweep.yaml.
"""

import json

import pytest

from conftest import TINY_SWEEP, run_cli, tiny_sweep_sets
from samplesize.config import load_config
from samplesize.errors import EXIT_CONFIG, EXIT_TRANSIENT
from samplesize.plan import trial_spec
from samplesize.results import encode_result, result_key, trial_identity


def _write_result_of_another_config(out, index=0):
    """A result as a trial of the same sweep with another seed wrote it."""
    other = load_config(overrides=[*TINY_SWEEP, "seed=7", f"output={out}"])
    path = out / result_key(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_result({**trial_identity(other, trial_spec(other, index)), "metrics": {}}))
    return path, other.trial_hash()


def test_trial_expecting_a_gpu_that_sees_none_exits_75_before_loading_data(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("trial", "--index", "0", *tiny_sweep_sets(f"output={out}"), env={"SAMPLESIZE_EXPECT_GPU": "1"})
    assert proc.returncode == EXIT_TRANSIENT, proc.stdout + proc.stderr
    assert "sees none" in proc.stderr and "/usr/local/nvidia/lib64" in proc.stderr
    assert not out.exists() or not any(out.rglob("*")), "nothing may be prepared or written"


def test_trial_over_a_result_of_another_config_exits_64_naming_the_output(tmp_path):
    out = tmp_path / "out"
    path, theirs = _write_result_of_another_config(out)
    before = path.read_bytes()
    proc = run_cli("trial", "--index", "0", *tiny_sweep_sets(f"output={out}"))
    assert proc.returncode == EXIT_CONFIG, proc.stdout + proc.stderr
    assert str(out / "trials" / "trial-00000.json") in proc.stderr
    assert theirs in proc.stderr and "new prefix" in proc.stderr
    assert "already exists" not in proc.stdout
    assert path.read_bytes() == before


def test_run_over_results_of_another_config_changes_nothing(tmp_path):
    out = tmp_path / "out"
    path, _ = _write_result_of_another_config(out, index=1)
    (out / "sweep.yaml").write_text("the old sweep.yaml\n")
    proc = run_cli("run", *tiny_sweep_sets(f"output={out}"))
    assert proc.returncode == EXIT_CONFIG, proc.stdout + proc.stderr
    assert "another sweep config" in proc.stderr and str(out) in proc.stderr
    assert (out / "sweep.yaml").read_text() == "the old sweep.yaml\n"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "sweep.yaml", "trials/trial-00001.json"]


@pytest.mark.slow
def test_result_records_the_tensorflow_version_and_gpu_model(tmp_path):
    import tensorflow as tf

    out = tmp_path / "out"
    proc = run_cli("trial", "--index", "3", *tiny_sweep_sets(f"output={out}"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / result_key(3)).read_text())
    assert result["tensorflow_version"] == tf.__version__
    assert result["gpu_model"] is None and result["accelerator"] == "CPU"  # this machine has no GPU
