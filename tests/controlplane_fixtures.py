"""Fixtures for the `controlplane` tests (registered in conftest.py's pytest_plugins).

- `control_plane`: etcd + kube-apiserver + kube-controller-manager for the session
  (tests/kube_controlplane.py), built or reused by scripts/build_controlplane.sh.
- `pod_runner`: the test kubelet (tests/podrunner.py) running pods of that control plane
  with the image under Docker.
- `kube`: typed API clients (core, batch, rbac) as cluster admin.
- `cluster_helm`: the helm binary, found as for the chart tests.
- `helm_of_major`: helm 3 or helm 4 by major version, for the upgrade tests that run
  both (helm 3 patches with a three-way merge, helm 4 applies server-side).
- `kueue_webhook`: a MutatingAdmissionPolicy that suspends a Job carrying a
  `kueue.x-k8s.io/queue-name` label at creation, as Kueue's webhook does.

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
import time
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


def _helm_major(binary: str) -> int | None:
    try:
        out = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return int(out[1]) if out.startswith("v") and out[1:2].isdigit() else None


@pytest.fixture(scope="session")
def helm_of_major(request: pytest.FixtureRequest, cluster_helm):
    """helm_of_major(3) or (4): $HELM3/$HELM4, .tools/bin/helm3, the chart tests' helm, PATH."""
    repo = Path(__file__).resolve().parents[1]

    def find(major: int) -> str:
        candidates = [os.environ.get(f"HELM{major}"), str(repo / ".tools" / "bin" / f"helm{major}"),
                      cluster_helm, shutil.which(f"helm{major}"), shutil.which("helm")]
        for c in candidates:
            if c and Path(c).is_file() and _helm_major(c) == major:
                return c
        _unavailable(request.config, f"no helm {major} found (tried $HELM{major}, .tools/bin/helm{major}, PATH): "
                     "scripts/install_helm.sh installs helm 4 as .tools/bin/helm, helm 3 as .tools/bin/helm3")

    return find


# Kueue's job webhook defaults `spec.suspend` to true when a Job with a queue name is
# created (and only then); Kueue's controller unsuspends it on admission. The API
# server's own mutating admission (admissionregistration.k8s.io/v1, GA in 1.36) does the
# first half without a webhook server, so the Job's managed fields come out as they
# would under Kueue: the field is set at creation, under helm's field manager.
KUEUE_WEBHOOK = [
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
     "metadata": {"name": "kueue-suspends-queued-jobs"},
     "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["batch"], "apiVersions": ["v1"],
                                                      "operations": ["CREATE"], "resources": ["jobs"]}]},
              "matchConditions": [{"name": "queued", "expression": "has(object.metadata.labels) && "
                                   "'kueue.x-k8s.io/queue-name' in object.metadata.labels"}],
              "failurePolicy": "Fail", "reinvocationPolicy": "Never",
              "mutations": [{"patchType": "ApplyConfiguration",
                             "applyConfiguration": {"expression": "Object{spec: Object.spec{suspend: true}}"}}]}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
     "metadata": {"name": "kueue-suspends-queued-jobs"}, "spec": {"policyName": "kueue-suspends-queued-jobs"}},
]


@pytest.fixture(scope="module")
def kueue_webhook(kube):
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(kube.api_client)
    made = []
    for body in KUEUE_WEBHOOK:
        resource = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        resource.create(body=body)
        made.append((resource, body["metadata"]["name"]))
    # The policy reaches the admission plugin through an informer: wait until a
    # dry-run create of a queued Job comes back suspended.
    probe = {"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": "probe", "labels": {"kueue.x-k8s.io/queue-name": "probe"}},
             "spec": {"template": {"spec": {"restartPolicy": "Never",
                                            "containers": [{"name": "c", "image": "probe"}]}}}}
    deadline = time.monotonic() + 60
    while not kube.batch.create_namespaced_job("default", probe, dry_run="All").spec.suspend:
        assert time.monotonic() < deadline, "the MutatingAdmissionPolicy never took effect"
        time.sleep(0.5)
    yield
    for resource, name in reversed(made):
        resource.delete(name=name)


__all__ = ["control_plane", "docker_image", "pod_runner", "kube", "cluster_helm", "helm_of_major", "kueue_webhook",
           "Kube", "IMAGE"]
