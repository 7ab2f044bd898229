"""The image's lock files: complete, hashed, in step with pyproject.toml, the Dockerfile, CI and the docs.

The full check (pip resolves each lock with its dependencies, `--require-hashes
--dry-run`) needs the index and runs in .ci/run; these tests read files only.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

LOCKS = {flavour: ROOT / "docker" / f"requirements-{flavour}.lock" for flavour in ("cpu", "gpu")}
# One requirement of a pip hash file: `name==version \` then `--hash=sha256:...` lines.
ENTRY = re.compile(r"^(?P<req>[A-Za-z0-9][^\s\\]*)(?P<rest>(?:\s*\\\n\s+--hash=\S+)*)", re.M)


def _entries(lock) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [hashes])} of a lock file."""
    text = lock.read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = {}
    for m in ENTRY.finditer(body):
        req = Requirement(m["req"])
        (spec,) = req.specifier  # exactly one `==`, or the unpacking fails
        assert spec.operator == "==", m["req"]
        found[canonicalize_name(req.name)] = (spec.version, re.findall(r"--hash=(\S+)", m["rest"]))
    return found


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("flavour", LOCKS)
def test_every_line_of_the_lock_is_a_pinned_requirement_with_a_sha256(flavour):
    lock = LOCKS[flavour]
    entries = _entries(lock)
    assert len(entries) > 50, f"{lock.name} looks truncated"
    for name, (version, hashes) in entries.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    # No stray line the entry pattern skipped (an unhashed or unpinned requirement).
    lines = [line for line in lock.read_text().splitlines() if line and not line.startswith(("#", " "))]
    assert len(lines) == len(entries), set(lines) - {n for n in entries}


@pytest.mark.parametrize("flavour", LOCKS)
def test_the_lock_covers_every_dependency_of_pyproject_within_its_range(flavour):
    entries = _entries(LOCKS[flavour])
    project = _pyproject()
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"][flavour]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in entries, f"{req} is not in {LOCKS[flavour].name}: run scripts/lock_image_requirements.sh"
        assert req.specifier.contains(entries[name][0], prereleases=True), (str(req), entries[name][0])


@pytest.mark.parametrize("flavour", LOCKS)
def test_the_lock_honours_its_constraints(flavour):
    entries = _entries(LOCKS[flavour])
    constraints = (ROOT / "docker" / f"constraints-{flavour}.txt").read_text().splitlines()
    for line in constraints:
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            name = canonicalize_name(req.name)
            assert name in entries and req.specifier.contains(entries[name][0]), (line, entries.get(name))


def test_the_gpu_lock_holds_every_cuda_wheel_and_both_locks_the_same_tensorflow():
    gpu, cpu = _entries(LOCKS["gpu"]), _entries(LOCKS["cpu"])
    cuda = {n for n in gpu if n.startswith("nvidia-")}
    assert {"nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12", "nvidia-cublas-cu12", "nvidia-nccl-cu12"} <= cuda
    assert not any(n.startswith("nvidia-") for n in cpu)
    assert gpu["tensorflow"][0] == cpu["tensorflow-cpu"][0]


def test_the_locks_were_written_by_the_script_at_its_lock_date():
    script = (ROOT / "scripts" / "lock_image_requirements.sh").read_text()
    (default,) = re.findall(r'LOCK_DATE:-([^}]+)\}', script)
    for lock in LOCKS.values():
        assert f"LOCK_DATE={default}" in lock.read_text().splitlines()[1], (
            f"{lock.name} is not the script's output at LOCK_DATE={default}: rerun scripts/lock_image_requirements.sh")


def test_the_dockerfile_installs_from_the_lock_with_hashes_on_a_base_pinned_by_digest():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert 'pip install --require-hashes --requirement "requirements-${TF_EXTRA}.lock"' in dockerfile
    assert "docker/requirements-*.lock" in dockerfile
    assert "!docker/requirements-*.lock" in (ROOT / ".dockerignore").read_text().splitlines()


def test_ci_resolves_both_locks_and_builds_its_wheelhouse_from_the_cpu_lock():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--dry-run" in ci and "--require-hashes" in ci
    assert all(f"docker/requirements-{f}.lock" in ci for f in LOCKS)
    assert "docker/requirements-cpu.lock" in (ROOT / "scripts" / "ci_docker.sh").read_text()


def test_docs_kubernetes_names_the_locked_tensorflow_cuda_and_cudnn():
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    gpu = _entries(LOCKS["gpu"])
    for name in ("tensorflow", "nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12"):
        assert gpu[name][0] in page, f"docs/kubernetes.md does not name {name} {gpu[name][0]} (the GPU lock's)"
