"""The trial's first log line names the machine architecture it runs as.

An image built on an arm64 Mac without `--platform linux/amd64` fails on x86
GKE nodes before Python starts ("exec format error", docs/failure-handling.md);
one that runs under emulation, or on an arm64 node pool, says so on line one.
"""

import platform

from conftest import run_cli, tiny_sweep_sets


def test_first_line_of_a_trial_names_the_architecture(tmp_path):
    # The GPU guard stops the trial right after the line, before any data is read.
    proc = run_cli("trial", "--index", "0", *tiny_sweep_sets(f"output={tmp_path / 'out'}"),
                   env={"SAMPLESIZE_EXPECT_GPU": "1"})
    first = proc.stdout.splitlines()[0]
    assert first.startswith("trial 0: starting on ") and platform.machine() in first, proc.stdout + proc.stderr


def test_a_gpu_below_the_compute_capability_floor_fails_the_index_naming_it(monkeypatch):
    import pytest
    import tensorflow as tf

    from samplesize.config import load_config
    from samplesize.errors import EXIT_CONFIG, ConfigError
    from samplesize.training.runtime import configure_runtime

    # This machine has no GPU: stand in a Maxwell card (5.2), as TensorFlow would describe it.
    fake = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [fake] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda device, enable: None)
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"device_name": "Tesla M60", "compute_capability": (5, 2)})
    cfg = load_config(overrides=["training.mixed_precision=off"])
    with pytest.raises(ConfigError) as err:
        configure_runtime(cfg.training, seed=1)
    assert err.value.exit_code == EXIT_CONFIG
    assert "Tesla M60" in str(err.value) and "5.2" in str(err.value) and "6.0" in str(err.value)

    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"device_name": "NVIDIA L4", "compute_capability": (8, 9)})
    assert configure_runtime(cfg.training, seed=1) == "GPU x1: NVIDIA L4"
