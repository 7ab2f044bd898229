"""Fixtures for the `controlplane` tests (registered in conftest.py's pytest_plugins).

- `control_plane`: etcd + kube-apiserver + kube-controller-manager for the session
  (tests/kube_controlplane.py), built or reused by scripts/build_controlplane.sh.
- `pod_runner`: the test kubelet (tests/podrunner.py) running pods of that control plane
  with the image under Docker.
- `kube`: typed API clients (core, batch, rbac) as cluster admin.
- `cluster_helm`: the helm binary, found as for the chart tests.

Module-scoped: the control plane stops when the module that used it is done, so it
does not run through the rest of the suite.

A plain `pytest` on a machine without Go or Docker skips these tests with the reason.
`pytest -m controlplane`, and any run with SAMPLESIZE_REQUIRE_CONTROLPLANE=1 (set by
.ci/run), fails instead: whoever asked for them must learn that they did not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IMAGE = os.environ.get("SAMPLESIZE_IMAGE", "samplesize:ci")


def _required(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", "") or ""
    asked = "controlplane" in markexpr and "not controlplane" not in markexpr
    return asked or os.environ.get("SAMPLESIZE_REQUIRE_CONTROLPLANE") == "1"


def _unavailable(config: pytest.Config, reason: str) -> None:
    if _required(config):
        pytest.fail(f"the control plane is required here: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def control_plane(request: pytest.FixtureRequest):
    from kube_controlplane import ControlPlane, ControlPlaneUnavailable, build_binaries

    workdir = Path(tempfile.mkdtemp(prefix="samplesize-controlplane-"))
    plane = None
    try:
        build_binaries()
        plane = ControlPlane(workdir).start()
    except ControlPlaneUnavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        _unavailable(request.config, str(exc))
    yield plane
    plane.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_image(request: pytest.FixtureRequest) -> str:
    """The image the pods run; the daemon comes from DOCKER_HOST as for tests/test_image.py."""
    if shutil.which("docker") is None:
        _unavailable(request.config, "no docker client on PATH")
    try:
        info = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        _unavailable(request.config, "docker daemon did not answer within 30 s")
    if info.returncode != 0:
        _unavailable(request.config, f"image {IMAGE} not available (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): "
                     f"{info.stderr.strip()}; run scripts/ci_docker.sh")
    return IMAGE


@pytest.fixture(scope="module")
def pod_runner(control_plane, docker_image):
    from podrunner import PodRunner

    workdir = Path(tempfile.mkdtemp(prefix="samplesize-podrunner-"))
    runner = PodRunner(control_plane.api_client(), "127.0.0.1", control_plane.api_port, workdir).start()
    yield runner
    runner.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Kube:
    core: Any
    batch: Any
    rbac: Any
    api_client: Any
    kubeconfig: Path


@pytest.fixture(scope="module")
def kube(control_plane) -> Kube:
    from kubernetes import client

    api = control_plane.api_client()
    return Kube(client.CoreV1Api(api), client.BatchV1Api(api), client.RbacAuthorizationV1Api(api), api,
                control_plane.kubeconfig)


@pytest.fixture(scope="session")
def cluster_helm(request: pytest.FixtureRequest) -> str:
    from render_k8s import find_helm

    found = find_helm()
    if found is None:
        _unavailable(request.config, "helm not found: run scripts/install_helm.sh (it installs .tools/bin/helm)")
    return found


__all__ = ["control_plane", "docker_image", "pod_runner", "kube", "cluster_helm", "Kube", "IMAGE"]
