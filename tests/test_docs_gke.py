"""The GKE pages tell one story, and their examples work with what the chart renders.

- One storage-permission story: docs/storage.md, docs/kubernetes.md and
  docs/failure-handling.md name the same roles (objectUser on the output,
  objectViewer on a dataset bucket) and none names the broader admin role.
- The Role the docs describe is the Role the chart creates (`get` only).
- The documented Kueue ClusterQueue covers every resource a trial requests,
  with room for at least one trial, so it admits the sweep.
- The commands the pages give use flags that exist (helm's, checked against
  the installed helm) and the forms issue 19 asked for.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import ROOT
from render_k8s import find_helm

DOCS = ROOT / "docs"
STORAGE_PAGES = ["storage.md", "kubernetes.md", "failure-handling.md"]
STORY_ROLES = {"objectUser", "objectViewer"}


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


@pytest.mark.parametrize("page", STORAGE_PAGES)
def test_each_page_names_the_same_storage_roles_and_never_the_admin_role(page):
    text = _page(page)
    assert set(re.findall(r"roles/storage\.(\w+)", text)) == STORY_ROLES, page
    assert "objectAdmin" not in text


def test_the_code_comments_tell_the_same_story():
    # The role is named in docs only; code comments must not contradict them.
    for path in (ROOT / "job" / "samplesize").rglob("*.py"):
        comments = "\n".join(line for line in path.read_text().splitlines() if line.lstrip().startswith("#"))
        assert "objectAdmin" not in comments and "lacks delete" not in comments, path


def test_the_optional_prefix_condition_is_the_same_on_both_pages():
    expression = 'resource.name.startsWith("projects/_/buckets/BUCKET/objects/PREFIX/")'
    for page in ("storage.md", "kubernetes.md"):
        assert expression in _page(page), page


def test_the_docs_describe_the_role_the_chart_renders():
    role = (ROOT / "charts" / "samplesize" / "templates" / "role.yaml").read_text()
    (verbs,) = re.findall(r"verbs:\s*\[([^\]]*)\]", role)
    assert [v.strip().strip('"') for v in verbs.split(",")] == ["get"]
    for page in ("kubernetes.md", "failure-handling.md"):
        text = _page(page)
        assert "only `get`" in text, page
        assert not re.search(r"get, list|list and watch|list, watch", text), page


def _quantity(value) -> float:
    """A Kubernetes quantity as a float (enough for the suffixes these pages use)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    return float(m[1]) * units.get(m[2], 1)


def _trial_requests() -> dict[str, str]:
    """The trial container's requests in k8s/ (the chart's default render, kept equal by a test)."""
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s" / "samplesize.yaml").read_text()) if d]
    (job,) = [d for d in docs if d["kind"] == "Job" and d["spec"].get("completionMode") == "Indexed"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container["resources"]["requests"]


def test_the_documented_cluster_queue_admits_a_default_trial():
    objects = [d for block in _code_blocks(_page("kubernetes.md"), "yaml") for d in yaml.safe_load_all(block) if d]
    (queue,) = [d for d in objects if d.get("kind") == "ClusterQueue"]
    flavors = {d["metadata"]["name"] for d in objects if d.get("kind") == "ResourceFlavor"}
    (local,) = [d for d in objects if d.get("kind") == "LocalQueue"]
    assert local["spec"]["clusterQueue"] == queue["metadata"]["name"]
    requests = _trial_requests()
    assert "ephemeral-storage" in requests
    (group,) = queue["spec"]["resourceGroups"]
    assert set(requests) <= set(group["coveredResources"]), "Kueue never admits a request it does not cover"
    for flavor in group["flavors"]:
        assert flavor["name"] in flavors
        quota = {r["name"]: r["nominalQuota"] for r in flavor["resources"]}
        assert set(quota) == set(group["coveredResources"])
        for name, value in requests.items():
            assert _quantity(quota[name]) >= _quantity(value), (name, quota[name], value)


def test_the_kueue_alternative_excludes_ephemeral_storage_in_kueues_configuration():
    objects = [d for block in _code_blocks(_page("kubernetes.md"), "yaml") for d in yaml.safe_load_all(block) if d]
    (config,) = [d for d in objects if d.get("kind") == "Configuration"]
    assert config["apiVersion"].startswith("config.kueue.x-k8s.io/")
    assert "ephemeral-storage" in config["resources"]["excludeResourcePrefixes"]


def test_gke_commands_push_a_tag_start_gpu_pools_at_zero_and_mention_quota():
    text = _page("kubernetes.md")
    shell = "\n".join(_code_blocks(text, "sh")).replace("\\\n", " ")
    assert "gcloud auth configure-docker $REGION-docker.pkg.dev" in shell
    assert re.search(r"--push|docker push \S+:\S+", shell)
    pools = [line for line in shell.splitlines() if "node-pools create" in line]
    assert pools and all("--num-nodes 0" in line for line in pools), pools
    for quota in ("NVIDIA_L4_GPUS", "PREEMPTIBLE_NVIDIA_L4_GPUS"):
        assert quota in text
    for topic in ("GCS FUSE", "flex-start", "auto-provisioning", "secondary boot disk", "--spot", "exec format error"):
        assert topic.lower() in text.lower(), topic


def test_every_documented_build_names_the_amd64_platform():
    for page in ("docker.md", "kubernetes.md"):
        text = _page(page).replace("\\\n", " ")
        builds = [line for line in text.splitlines() if re.match(r"\s*docker (buildx )?build ", line)]
        assert builds, page
        for line in builds:
            assert "--platform linux/amd64" in line, line
    assert "gcloud builds submit" in _page("docker.md")


def test_the_chart_is_installable_from_an_oci_registry():
    text = _page("kubernetes.md")
    assert "helm package charts/samplesize" in text
    assert re.search(r"helm push \S+\.tgz oci://\$REGION-docker\.pkg\.dev/", text)


def test_the_helm_wait_warning_names_both_majors_flags_and_they_exist():
    text = _page("kubernetes.md")
    assert "--wait --wait-for-jobs --rollback-on-failure" in text and "`--atomic`" in text
    assert "uninstalls the release" in text
    helm = find_helm()
    if helm is None:
        pytest.skip("helm not found: run scripts/install_helm.sh (make test does)")
    usage = subprocess.run([helm, "install", "--help"], capture_output=True, text=True, check=True).stdout
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, check=True).stdout
    flags = ["--wait", "--wait-for-jobs", "--timeout"]
    flags.append("--rollback-on-failure" if version.startswith("v4") else "--atomic")
    for flag in flags:
        assert re.search(rf"^\s+{flag}\b", usage, re.M), flag
