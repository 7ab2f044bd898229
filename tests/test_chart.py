"""The Helm chart, rendered by a real helm and validated against Kubernetes' schemas.

helm comes from $HELM, .tools/bin/helm (scripts/install_helm.sh, which .ci/run
calls) or PATH; without it these tests skip with that hint, unless
SAMPLESIZE_REQUIRE_HELM=1 (CI) turns the skip into a failure.

Every rendered object is checked with kubernetes-validate --strict for every
Kubernetes version the chart claims (Chart.yaml kubeVersion) that
kubernetes-validate ships schemas for. The rest asserts what no schema can:
the Indexed Job's arithmetic and wiring, one config for trials and
aggregator, the security settings, and the aggregator's minimal RBAC.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from packaging.version import Version
from render_k8s import find_helm  # one helm lookup for the script and the tests

from samplesize import config as sweep_config
from samplesize.backbones import BACKBONE_NAMES
from samplesize.config import SweepConfig, build_config
from samplesize.config.schema import MAX_TRIALS
from samplesize.errors import EXIT_CONFIG, EXIT_DATA

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "samplesize"
RELEASE = "sweep"
NAMESPACE = "ml"
CONFIG_PATH = "/etc/samplesize/sweep.yaml"
GPU = "nvidia.com/gpu"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)

# Offline, helm assumes a Kubernetes version of its own (v1.32 for helm 3.17),
# which the chart's kubeVersion refuses; render as the floor it claims.
KUBE = ("--kube-version", "1.33.0")

# What `helm install` requires (no defaults for them): every render below adds
# these unless the test is about a missing one.
REQUIRED = {
    "image": {"repository": "us-docker.pkg.dev/proj/repo/samplesize"},
    "sweep": {"output": "gs://my-bucket/sweeps/demo"},
    "gpu": {"accelerator": "nvidia-l4"},
}

# Value sets rendered and validated beside the defaults.
VALUE_SETS = {
    "defaults": {},
    "kueue": {"kueue": {"queueName": "gpu-queue", "priorityClass": "batch-low"}},
    "cpu-only": {"gpu": {"enabled": False, "accelerator": ""}, "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}},
    "custom-splits": {
        "sweep": {"splits": [0.1, 0.2, 0.4, 0.6, 0.8], "backtest_splits": [], "repetitions": 4},
        "parallelism": 8,
        "maxFailedIndexes": 3,
        "activeDeadlineSeconds": 86400,
        "ttlSecondsAfterFinished": None,
    },
    "gke-extras": {
        "image": {"digest": "sha256:" + "0123456789abcdef" * 4},
        "gpu": {"sharing": {"strategy": "time-sharing", "clientsPerGpu": 4}, "spot": True},
        "trial": {"logFormat": "json"},
        "sweep": {"variants": [{"name": "a"}, {"name": "b", "training": {"learning_rate": 5e-4}}]},
    },
    "workload-identity": {
        "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "ss@proj.iam.gserviceaccount.com"}},
        "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "tolerations": [{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
                         "effect": "NoSchedule"}],
        "sweep": {
            "output": "gs://my-bucket/sweeps/flowers",
            "dataset": {"source": "folder:gs://my-bucket/images/flowers", "image_size": 224},
            "model": {"backbone": "efficientnet_b0", "weights": "imagenet", "fine_tune_from": "block6a_expand_conv"},
        },
    },
    "csv-source": {
        "sweep": {"dataset": {"source": "csv:gs://my-bucket/export/labels.csv", "path_column": "file",
                              "label_column": "diagnosis", "group_column": "patient"}},
    },
}


# ----------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def helm() -> str:
    found = find_helm()
    if found:
        return found
    reason = "helm not found: run scripts/install_helm.sh (it installs .tools/bin/helm)"
    if os.environ.get("SAMPLESIZE_REQUIRE_HELM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def run_helm(helm: str, *args: str, values: dict | None = None, tmp_path: Path | None = None):
    cmd = [helm, *args]
    if values:
        assert tmp_path is not None
        f = tmp_path / "values.yaml"
        f.write_text(yaml.safe_dump(values), encoding="utf-8")
        cmd += ["-f", str(f)]
    return subprocess.run(cmd, capture_output=True, text=True)


def render(helm: str, tmp_path: Path, values: dict | None = None, *extra: str) -> list[dict]:
    """The chart's objects for `values` on top of REQUIRED."""
    proc = template(helm, tmp_path, values, *extra)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def template(helm: str, tmp_path: Path, values: dict | None = None, *extra: str, required: bool = True):
    """`helm template` with `values` (on top of REQUIRED unless required=False); the finished process."""
    merged = deep_merge(REQUIRED, values or {}) if required else values
    return run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *KUBE, *extra,
                    values=merged, tmp_path=tmp_path)


def one(docs: list[dict], kind: str, component: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind
             and (component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)]
    assert len(found) == 1, f"expected one {kind} {component or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def trials_job(docs):
    return one(docs, "Job", "trial")


def aggregate_job(docs):
    return one(docs, "Job", "aggregate")


def pod_specs(docs):
    """(name, pod spec) of every pod the chart can start: both Jobs and the test pod."""
    out = []
    for d in docs:
        if d["kind"] == "Job":
            out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            out.append((d["metadata"]["name"], d["spec"]))
    return out


def env_of(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def claimed_versions() -> list[str]:
    """Versions kubernetes-validate ships that satisfy Chart.yaml's kubeVersion (a ">=X" floor)."""
    kube = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    m = re.fullmatch(r">=\s*(\d+\.\d+)\.\d+(-0)?", kube)
    assert m, f"kubeVersion {kube!r}: the tests understand only a '>=X.Y.Z-0' floor"
    floor = Version(m.group(1))
    versions = [v for v in all_versions() if Version(v) >= floor]
    assert versions and Version(versions[0]).release[:2] == floor.release[:2], (
        f"kubernetes-validate has no schemas for the claimed floor {floor}"
    )
    return versions


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def chart_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


# ------------------------------------------------------------------ lint


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_chart_passes_helm_lint_strict(helm, tmp_path, value_set):
    proc = run_helm(helm, "lint", "--strict", str(CHART), *KUBE,
                    values=deep_merge(REQUIRED, VALUE_SETS[value_set]), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_refuses_clusters_older_than_its_kube_version(helm, tmp_path):
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--kube-version", "1.32.0")
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "kubernetes version" in proc.stderr.lower()


# ----------------------------------------------------- kubernetes-validate


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_validates_strictly_for_each_claimed_kubernetes_version(helm, tmp_path, value_set):
    docs = render(helm, tmp_path, VALUE_SETS[value_set])
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap", "Job", "Job", "Pod", "Role", "RoleBinding", "ServiceAccount",
                            "ServiceAccount"])
    for version in claimed_versions():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: "
                            f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_claimed_versions_start_at_the_ga_release_of_backoff_limit_per_index():
    # backoffLimitPerIndex, maxFailedIndexes and FailIndex went GA in 1.33.
    assert claimed_versions()[0].startswith("1.33")


def test_every_object_is_validated_for_kubernetes_1_33_to_1_37():
    # The releases GKE offers while this chart is current; kubernetes-validate must
    # ship a schema for each, or the strict validation above silently covers fewer.
    minors = {tuple(Version(v).release[:2]) for v in claimed_versions()}
    assert {(1, m) for m in range(33, 38)} <= minors, sorted(minors)


# ------------------------------------------------------------- the trials


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_trials_run_as_an_indexed_job_with_one_index_per_trial(helm, tmp_path, value_set):
    values = VALUE_SETS[value_set]
    docs = render(helm, tmp_path, values)
    spec = trials_job(docs)["spec"]
    sweep = deep_merge(deep_merge(chart_values()["sweep"], REQUIRED["sweep"]), values.get("sweep", {}))
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == build_config(sweep).trial_count
    assert spec["parallelism"] == values.get("parallelism", chart_values()["parallelism"])
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["backoffLimitPerIndex"] == chart_values()["backoffLimitPerIndex"]
    assert "backoffLimit" not in spec  # with a per-index limit the global one is unbounded by default


def test_completions_count_fitted_and_backtest_splits_times_repetitions(helm, tmp_path):
    docs = render(helm, tmp_path, {"sweep": {"splits": [0.1, 0.3], "backtest_splits": [0.6, 1.0], "repetitions": 5}})
    assert trials_job(docs)["spec"]["completions"] == (2 + 2) * 5


def test_trial_reads_its_index_from_job_completion_index(helm, tmp_path):
    docs = render(helm, tmp_path)
    pod = trials_job(docs)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["trial", "--config", CONFIG_PATH]
    # No --index and no JOB_COMPLETION_INDEX of our own: the Job controller sets
    # it in Indexed mode, and anything here would shadow it.
    assert not any(a.startswith("--index") for a in container["args"])
    assert "JOB_COMPLETION_INDEX" not in env_of(container)
    assert "command" not in container  # the image's entrypoint is `samplesize`


def test_pod_failure_policy_ignores_disruptions_and_fails_an_index_on_config_or_data_errors(helm, tmp_path):
    docs = render(helm, tmp_path)
    job = trials_job(docs)
    rules = job["spec"]["podFailurePolicy"]["rules"]
    container = job["spec"]["template"]["spec"]["containers"][0]["name"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailIndex"
    assert rules[1]["onExitCodes"] == {"containerName": container, "operator": "In",
                                       "values": [EXIT_CONFIG, EXIT_DATA]}
    assert len(rules) == 2


def test_failed_index_limits_and_deadlines_reach_the_job(helm, tmp_path):
    spec = trials_job(render(helm, tmp_path, VALUE_SETS["custom-splits"]))["spec"]
    assert spec["maxFailedIndexes"] == 3
    assert spec["activeDeadlineSeconds"] == 86400
    assert "ttlSecondsAfterFinished" not in spec
    defaults = trials_job(render(helm, tmp_path))["spec"]
    assert "maxFailedIndexes" not in defaults
    assert defaults["ttlSecondsAfterFinished"] == chart_values()["ttlSecondsAfterFinished"]


def test_both_jobs_have_finite_deadlines_by_default_and_the_aggregator_outlives_the_trials(helm, tmp_path):
    # An unpullable image or an unschedulable pod must not hold nodes (or wait) forever.
    docs = render(helm, tmp_path)
    trials = trials_job(docs)["spec"]["activeDeadlineSeconds"]
    aggregator = aggregate_job(docs)["spec"]["activeDeadlineSeconds"]
    assert 0 < trials < aggregator
    proc = template(helm, tmp_path, {"activeDeadlineSeconds": 7200, "aggregate": {"activeDeadlineSeconds": 3600}})
    assert proc.returncode != 0
    assert "aggregate.activeDeadlineSeconds (3600) must exceed activeDeadlineSeconds (7200)" in proc.stderr


def test_more_tolerated_failed_indexes_than_trials_is_refused(helm, tmp_path):
    proc = template(helm, tmp_path, {"maxFailedIndexes": 16})
    assert proc.returncode != 0
    assert "maxFailedIndexes (16) must not exceed the number of trials (15)" in proc.stderr


# -------------------------------------------------------------- resources


def test_gpu_is_requested_and_limited_equally_by_default(helm, tmp_path):
    pod = trials_job(render(helm, tmp_path))["spec"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert res["requests"][GPU] == res["limits"][GPU] == 1
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_gpu_off_requests_no_gpu_and_tolerates_no_gpu_taint(helm, tmp_path):
    docs = render(helm, tmp_path, VALUE_SETS["cpu-only"])
    pod = trials_job(docs)["spec"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert GPU not in res.get("requests", {}) and GPU not in res.get("limits", {})
    assert res["requests"]["cpu"] == "2"
    assert "tolerations" not in pod


def test_aggregator_never_asks_for_a_gpu(helm, tmp_path):
    pod = aggregate_job(render(helm, tmp_path))["spec"]["template"]["spec"]
    assert GPU not in json.dumps(pod)


def test_node_placement_applies_to_trials_only(helm, tmp_path):
    docs = render(helm, tmp_path, VALUE_SETS["workload-identity"])
    trials = trials_job(docs)["spec"]["template"]["spec"]
    assert trials["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert trials["tolerations"][0]["key"] == "cloud.google.com/gke-spot"
    assert "nodeSelector" not in aggregate_job(docs)["spec"]["template"]["spec"]


# ------------------------------------------------------------------ kueue


def test_kueue_queue_labels_the_trials_job_and_leaves_suspend_to_kueue(helm, tmp_path):
    docs = render(helm, tmp_path, VALUE_SETS["kueue"])
    job = trials_job(docs)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "batch-low"
    # Kueue's webhook suspends the Job at creation. A `suspend: true` in the manifest
    # would be put back by helm 3's upgrade (stopping the admitted sweep's pods) and
    # conflict with Kueue's field manager under helm 4's server-side apply
    # (tests/test_controlplane.py runs both upgrades).
    assert "suspend" not in job["spec"]
    # The aggregator is a small CPU pod that only waits; it is not queued.
    agg = aggregate_job(docs)
    assert "suspend" not in agg["spec"]
    assert "kueue.x-k8s.io/queue-name" not in agg["metadata"]["labels"]


def test_without_kueue_the_trials_job_starts_at_once(helm, tmp_path):
    job = trials_job(render(helm, tmp_path))
    assert "suspend" not in job["spec"]
    assert not any(k.startswith("kueue.x-k8s.io/") for k in job["metadata"]["labels"])


# ----------------------------------------------------------------- config


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_configmap_holds_a_valid_sweep_yaml_equal_to_the_sweep_values(helm, tmp_path, value_set):
    values = VALUE_SETS[value_set]
    docs = render(helm, tmp_path, values)
    text = one(docs, "ConfigMap")["data"]["sweep.yaml"]
    cfg = build_config(yaml.safe_load(text))
    expected = build_config(deep_merge(deep_merge(chart_values()["sweep"], REQUIRED["sweep"]), values.get("sweep", {})))
    assert cfg == expected


def test_chart_sweep_defaults_are_the_config_defaults_except_output():
    cfg = build_config(chart_values()["sweep"])
    assert cfg.output == ""  # required at install: no placeholder bucket anyone could own
    assert cfg == SweepConfig(output=cfg.output)


def test_trials_aggregator_and_test_pod_read_one_configmap_at_one_path(helm, tmp_path):
    docs = render(helm, tmp_path)
    cm = one(docs, "ConfigMap")
    assert cm["immutable"] is True
    mounted = {}
    for name, pod in pod_specs(docs):
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        assert container["args"][1:3] == ["--config", CONFIG_PATH], name
        mount = next(m for m in container["volumeMounts"] if CONFIG_PATH.startswith(m["mountPath"] + "/"))
        assert mount.get("readOnly") is True
        mounted[name] = volumes[mount["name"]]["configMap"]["name"]
    assert set(mounted.values()) == {cm["metadata"]["name"]}
    assert len(mounted) == 3


def test_config_change_changes_the_pod_templates(helm, tmp_path):
    # Job pod templates are immutable, so an upgrade with another sweep fails
    # instead of feeding running trials a different config mid-sweep.
    a = trials_job(render(helm, tmp_path))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    b = trials_job(render(helm, tmp_path, {"sweep": {"seed": 7}}))["spec"]["template"]["metadata"]["annotations"]
    assert b["checksum/config"] != a


# ------------------------------------------------------------- aggregator


def test_aggregator_waits_for_the_trials_job_of_its_own_namespace(helm, tmp_path):
    docs = render(helm, tmp_path)
    job = aggregate_job(docs)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["aggregate", "--config", CONFIG_PATH]
    assert args[args.index("--wait-for-job") + 1] == trials_job(docs)["metadata"]["name"]
    assert args[args.index("--namespace") + 1] == "$(POD_NAMESPACE)"
    assert env_of(container)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_aggregation_is_a_plain_job_not_a_helm_hook(helm, tmp_path):
    docs = render(helm, tmp_path)
    for d in docs:
        hooks = d["metadata"].get("annotations", {}).get("helm.sh/hook")
        if d["kind"] == "Pod":
            assert hooks == "test"
        else:
            assert hooks is None, d["metadata"]["name"]


def test_helm_test_pod_requires_the_report(helm, tmp_path):
    pod = one(render(helm, tmp_path), "Pod")
    assert pod["spec"]["containers"][0]["args"] == ["status", "--config", CONFIG_PATH, "--require-report"]
    assert pod["spec"]["restartPolicy"] == "Never"


# -------------------------------------------------------------- security


@pytest.mark.parametrize("value_set", ["defaults", "cpu-only"])
def test_every_pod_runs_locked_down_with_a_writable_tmp(helm, tmp_path, value_set):
    docs = render(helm, tmp_path, VALUE_SETS[value_set])
    for name, pod in pod_specs(docs):
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000 and "fsGroup" in sc, name
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            csc = c["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc["readOnlyRootFilesystem"] is True, name
            assert csc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in csc["capabilities"], name
            assert not csc.get("privileged"), name
            tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in volumes[tmp["name"]], name
            env = env_of(c)
            assert env["HOME"] == "/tmp", name
            assert env["KERAS_HOME"].startswith("/tmp"), name
            assert env["MPLCONFIGDIR"].startswith("/tmp"), name


def test_aggregator_may_only_get_the_trials_job(helm, tmp_path):
    docs = render(helm, tmp_path)
    assert not any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in docs)
    role = one(docs, "Role")
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["batch"]
    assert rule["resources"] == ["jobs"]
    assert rule["verbs"] == ["get"]
    assert rule["resourceNames"] == [trials_job(docs)["metadata"]["name"]]
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    agg_sa = aggregate_job(docs)["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": agg_sa}]


def test_trial_pods_have_no_kubernetes_api_token_or_rbac(helm, tmp_path):
    docs = render(helm, tmp_path)
    pod = trials_job(docs)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    bound = {s["name"] for s in one(docs, "RoleBinding")["subjects"]}
    assert pod["serviceAccountName"] not in bound
    assert one(docs, "Pod")["spec"]["serviceAccountName"] == pod["serviceAccountName"]


def test_workload_identity_annotation_reaches_both_service_accounts(helm, tmp_path):
    docs = render(helm, tmp_path, VALUE_SETS["workload-identity"])
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(accounts) == 2
    for sa in accounts:
        assert sa["metadata"]["annotations"] == {
            "iam.gke.io/gcp-service-account": "ss@proj.iam.gserviceaccount.com"}
    names = {sa["metadata"]["name"] for sa in accounts}
    used = {pod["serviceAccountName"] for _, pod in pod_specs(docs)}
    assert used == names


def test_existing_service_accounts_can_be_used_instead(helm, tmp_path):
    docs = render(helm, tmp_path, {
        "serviceAccount": {"create": False, "name": "sweeper"},
        "aggregate": {"serviceAccount": {"create": False, "name": "sweep-reader"}},
    })
    assert not any(d["kind"] == "ServiceAccount" for d in docs)
    assert trials_job(docs)["spec"]["template"]["spec"]["serviceAccountName"] == "sweeper"
    assert one(docs, "RoleBinding")["subjects"][0]["name"] == "sweep-reader"


def test_values_hold_no_credentials():
    text = (CHART / "values.yaml").read_text().lower()
    for word in ("private_key", "client_secret", "password", "credentials.json", "google_application_credentials"):
        assert word not in text


# ---------------------------------------------------------------- hygiene


def test_every_object_carries_the_standard_labels_and_no_namespace(helm, tmp_path):
    for d in render(helm, tmp_path):
        labels = d["metadata"]["labels"]
        for key in STANDARD_LABELS:
            assert key in labels, f"{d['kind']}/{d['metadata']['name']} lacks {key}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert "namespace" not in d["metadata"]  # set by helm -n / kubectl -n


def test_one_resource_per_template_file_named_for_its_kind():
    for f in (CHART / "templates").rglob("*.yaml"):
        kinds = re.findall(r"^kind: (\w+)", f.read_text(), flags=re.M)
        assert len(kinds) == 1, f
        assert kinds[0].lower() in f.name.replace("-", ""), f


def test_every_value_is_documented_by_a_comment_starting_with_its_name():
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*# ([A-Za-z_][\w.]*) --", text, flags=re.M))
    values = chart_values()
    missing = [k for k in values if k not in documented]

    def walk(prefix, node):
        for k, v in node.items():
            key = f"{prefix}.{k}"
            if key not in documented:
                missing.append(key)
            if isinstance(v, dict):
                walk(key, v)

    walk("sweep", values["sweep"])
    # Optional sweep keys without a default are documented as comments.
    missing += [k for k in ("sweep.dataset.data_dir", "sweep.model.fine_tune_from") if k not in documented]
    for section in ("image", "gpu", "serviceAccount", "kueue", "tmp", "rbac", "test"):
        missing += [f"{section}.{k}" for k in values[section] if f"{section}.{k}" not in documented]
    assert not missing, f"undocumented values: {missing}"


def render_notes(helm: str, tmp_path: Path, values: dict | None = None) -> str:
    """NOTES.txt as `helm install` prints it.

    `helm install --dry-run=client` has no --kube-version and assumes the
    Kubernetes version of its own build, so it runs on a copy of the chart
    without the kubeVersion floor. Helm 3's still dials a cluster: skip there.
    """
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True).stdout
    if version.startswith("v3."):
        pytest.skip(f"helm {version.strip()}: install --dry-run=client needs a cluster; helm 4 renders NOTES offline")
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"^kubeVersion:.*$", "", meta.read_text(), flags=re.M))
    proc = run_helm(helm, "install", RELEASE, str(chart), "--dry-run=client", "--namespace", NAMESPACE,
                    values=deep_merge(REQUIRED, values or {}), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_say_how_to_follow_progress_and_where_the_report_lands(helm, tmp_path):
    notes = render_notes(helm, tmp_path, {"sweep": {"output": "gs://my-bucket/sweeps/x"}})
    assert f"kubectl get job -n {NAMESPACE} sweep-samplesize-trials" in notes
    assert "{.status.completedIndexes}" in notes
    assert "gs://my-bucket/sweeps/x/report/report.html" in notes
    assert "helm test sweep" in notes
    assert "FailedScheduling" in notes  # what to look at while pods stay Pending


def test_notes_name_the_gpu_the_trials_wait_for(helm, tmp_path):
    (tmp_path / "gpu").mkdir()
    (tmp_path / "cpu").mkdir()
    assert "cloud.google.com/gke-accelerator=nvidia-l4" in render_notes(helm, tmp_path / "gpu")
    assert "Trials run on CPU" in render_notes(helm, tmp_path / "cpu", VALUE_SETS["cpu-only"])


def test_notes_point_at_kueue_when_queued(helm, tmp_path):
    notes = render_notes(helm, tmp_path, VALUE_SETS["kueue"])
    assert "suspended" in notes and '"gpu-queue"' in notes


# ----------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"sweep": {"splits": [1.5]}}, "/sweep/splits/0"),
        ({"sweep": {"splits": [0.0, 0.5]}}, "/sweep/splits/0"),
        ({"sweep": {"splits": []}}, "/sweep/splits"),
        ({"sweep": {"splits": ["0.1", "1.5"]}}, "/sweep/splits/1"),
        ({"sweep": {"splits": ["ten percent"]}}, "/sweep/splits/0"),
        ({"sweep": {"training": {"learning_rate": "0"}}}, "/sweep/training/learning_rate"),
        ({"gpu": {"accelerator": "NVIDIA L4"}}, "/gpu/accelerator"),
        ({"sweep": {"backtest_splits": [2]}}, "/sweep/backtest_splits/0"),
        ({"sweep": {"repetitions": 0}}, "/sweep/repetitions"),
        ({"sweep": {"metric": "bogus"}}, "/sweep/metric"),
        ({"sweep": {"sampling": "bootstrap"}}, "/sweep/sampling"),
        ({"sweep": {"model": {"backbone": "vgg16"}}}, "/sweep/model/backbone"),
        ({"sweep": {"training": {"augment": "heavy"}}}, "/sweep/training/augment"),
        ({"sweep": {"targets": [1.0]}}, "/sweep/targets/0"),
        ({"sweep": {"repetitons": 3}}, "repetitons"),
        ({"sweep": {"output": "my-bucket/prefix"}}, "/sweep/output"),
        ({"sweep": {"dataset": {"source": "s3://bucket"}}}, "/sweep/dataset/source"),
        ({"sweep": {"dataset": {"source": "csv:x.csv", "label_column": ""}}}, "/sweep/dataset/label_column"),
        ({"sweep": {"dataset": {"source": "csv:x.csv", "group_column": " patient"}}}, "/sweep/dataset/group_column"),
        ({"parallelism": 0}, "/parallelism"),
        ({"backoffLimitPerIndex": -1}, "/backoffLimitPerIndex"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        # Registries take only lower case after the host: the docs' placeholders.
        ({"image": {"repository": "us-docker.pkg.dev/PROJECT/REPO/samplesize"}}, "/image/repository"),
        ({"image": {"repository": "PROJECT/samplesize"}}, "/image/repository"),
        ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
        ({"image": {"digest": "SHA256:" + "a" * 64}}, "/image/digest"),
        ({"image": {"digest": "sha256:" + "A" * 64}}, "/image/digest"),
        ({"gpu": {"sharing": {"strategy": "mig"}}}, "/gpu/sharing/strategy"),
        ({"gpu": {"sharing": {"strategy": "mps", "clientsPerGpu": 1}}}, "/gpu/sharing/clientsPerGpu"),
        ({"gpu": {"sharing": {"strategy": "mps", "clientsPerGpu": 49}}}, "/gpu/sharing/clientsPerGpu"),
        ({"trial": {"logFormat": "yaml"}}, "/trial/logFormat"),
        ({"sweep": {"name": -1}}, "/sweep/name"),
        ({"paralelism": 4}, "paralelism"),
        ({"sweep": {"collection": {"rounds": 0}}}, "/sweep/collection/rounds"),
        ({"sweep": {"collection": {"label_cost": 0}}}, "/sweep/collection/label_cost"),
        ({"sweep": {"collection": {"assurance": 1}}}, "/sweep/collection/assurance"),
        ({"sweep": {"collection": {"miss_cost": "lots"}}}, "/sweep/collection/miss_cost"),
        ({"sweep": {"collection": {"labelcost": 1}}}, "labelcost"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_schema_refuses_bad_values_at_install_time(helm, tmp_path, values, complaint):
    proc = template(helm, tmp_path, values)
    assert proc.returncode != 0, f"accepted {values}"
    # helm 4 names the value as a JSON pointer (/sweep/splits/0), helm 3 dotted (sweep.splits.0).
    dotted = complaint.strip("/").replace("/", ".")
    assert "schema" in proc.stderr and (complaint in proc.stderr or dotted in proc.stderr), proc.stderr


def test_schema_mirrors_every_sweep_key_and_allowed_value_of_the_config():
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["sweep"]["properties"]
    import dataclasses

    def fields(cls):
        return {f.name for f in dataclasses.fields(cls)}

    assert set(schema) == fields(sweep_config.SweepConfig)
    for section, cls in (("dataset", sweep_config.DatasetConfig), ("model", sweep_config.ModelConfig),
                         ("training", sweep_config.TrainingConfig), ("collection", sweep_config.CollectionConfig)):
        assert set(schema[section]["properties"]) == fields(cls), section
    assert schema["metric"]["enum"] == list(sweep_config.METRICS)
    assert schema["sampling"]["enum"] == list(sweep_config.SAMPLING_MODES)
    assert schema["dataset"]["properties"]["duplicates"]["enum"] == list(sweep_config.DUPLICATE_MODES)
    assert schema["model"]["properties"]["backbone"]["enum"] == list(BACKBONE_NAMES)
    assert schema["dataset"]["properties"]["dicom_frames"]["enum"] == list(sweep_config.DICOM_FRAMES_MODES)
    training = schema["training"]["properties"]
    assert training["augment"]["enum"] == list(sweep_config.AUGMENT_MODES)
    assert training["feature_cache"]["enum"] == list(sweep_config.FEATURE_CACHE_MODES)
    assert training["mixed_precision"]["enum"] == list(sweep_config.MIXED_PRECISION_MODES)


# --------------------------------------------------------------------- k8s/


def test_plain_manifests_in_k8s_equal_the_chart_default_render(helm):
    env = dict(os.environ, HELM=helm)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "render_k8s.py"), "--check"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plain_manifests_validate_for_each_claimed_kubernetes_version():
    docs = [d for d in yaml.safe_load_all((REPO / "k8s" / "samplesize.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {"ConfigMap", "Job", "Role", "RoleBinding", "ServiceAccount"}
    for version in claimed_versions():
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


# ------------------------------------------------ required values and GKE


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ({"image": {"repository": ""}}, "image.repository is required"),
        ({"sweep": {"output": ""}}, "sweep.output is required"),
        ({"gpu": {"accelerator": ""}}, "gpu.accelerator is required when gpu.enabled is true"),
    ],
    ids=["image.repository", "sweep.output", "gpu.accelerator"],
)
def test_install_fails_without_each_required_value_and_says_what_to_set(helm, tmp_path, missing, message):
    proc = template(helm, tmp_path, missing)
    assert proc.returncode != 0
    assert message in proc.stderr and "--set " in proc.stderr


def test_chart_defaults_alone_do_not_install(helm, tmp_path):
    # No placeholder image or bucket: a bare `helm install` names what is missing.
    proc = template(helm, tmp_path, None, required=False)
    assert proc.returncode != 0 and "is required" in proc.stderr


def test_gpu_accelerator_becomes_the_gke_accelerator_node_selector(helm, tmp_path):
    pod = trials_job(render(helm, tmp_path, {"gpu": {"accelerator": "nvidia-tesla-t4"}}))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}


def test_a_node_selector_can_stand_in_for_the_accelerator_but_not_contradict_it(helm, tmp_path):
    other_cloud = {"gpu": {"accelerator": ""}, "nodeSelector": {"gpu-type": "a10"}}
    pod = trials_job(render(helm, tmp_path, other_cloud))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu-type": "a10"}
    clash = template(helm, tmp_path, {"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}})
    assert clash.returncode != 0 and "disagree" in clash.stderr


def test_cpu_trials_need_no_accelerator_and_are_not_told_to_expect_a_gpu(helm, tmp_path):
    docs = render(helm, tmp_path, VALUE_SETS["cpu-only"])
    pod = trials_job(docs)["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    assert "SAMPLESIZE_EXPECT_GPU" not in env_of(pod["containers"][0])


def test_gpu_trials_are_told_to_expect_a_gpu(helm, tmp_path):
    from samplesize.commands import EXPECT_GPU_ENV

    pod = trials_job(render(helm, tmp_path))["spec"]["template"]["spec"]
    assert env_of(pod["containers"][0])[EXPECT_GPU_ENV] == "1"
    # Only the trials: the aggregator and the test pod never use a GPU.
    for name, spec in pod_specs(render(helm, tmp_path)):
        if spec is not pod and "trials" not in name:
            assert EXPECT_GPU_ENV not in env_of(spec["containers"][0]), name


def test_every_container_reports_its_last_log_lines_as_termination_message(helm, tmp_path):
    for name, pod in pod_specs(render(helm, tmp_path)):
        for c in pod["containers"]:
            assert c["terminationMessagePolicy"] == "FallbackToLogsOnError", name


# GKE's node allocatable: what it keeps of each machine for the kubelet and
# the system (docs.cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes).
def _gke_allocatable(vcpus: int, memory_gib: float) -> tuple[float, float]:
    cpu_reserved = 0.06 + 0.01 + 0.005 * 2 + 0.0025 * max(vcpus - 4, 0)
    memory_reserved, left = 0.0, memory_gib
    for size, share in ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (float("inf"), 0.02)):
        memory_reserved += min(left, size) * share
        left -= min(left, size)
    return vcpus - cpu_reserved, memory_gib - memory_reserved - 100 / 1024  # 100 MiB eviction threshold


def _quantity(text) -> float:
    """cpu in cores or memory in GiB from a Kubernetes quantity."""
    text = str(text)
    units = {"m": 1e-3, "Ki": 2**-20, "Mi": 2**-10, "Gi": 1, "Ti": 2**10}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


@pytest.mark.parametrize(("machine", "vcpus", "memory_gib"),
                         [("g2-standard-4 (1 L4)", 4, 16 * 1e9 / 2**30), ("n1-standard-4 (1 T4)", 4, 15 * 1e9 / 2**30)])
def test_default_trial_requests_fit_the_smallest_gke_gpu_machines(helm, tmp_path, machine, vcpus, memory_gib):
    requests = trials_job(render(helm, tmp_path))["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    cpu, memory = _gke_allocatable(vcpus, memory_gib)
    # Leave room for GKE's own DaemonSets on a GPU node (logging, metrics, device plugin, kube-proxy).
    assert _quantity(requests["cpu"]) <= cpu - 0.5, machine
    assert _quantity(requests["memory"]) <= memory - 1.0, machine


def test_pods_request_ephemeral_storage_to_match_their_tmp(helm, tmp_path):
    # Autopilot requests 1 GiB when none is given and evicts a pod that writes more.
    docs = render(helm, tmp_path)
    for name, pod in pod_specs(docs):
        limit = next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"]["sizeLimit"]
        assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] == limit, name
    assert trials_job(docs)["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"][
        "ephemeral-storage"] == chart_values()["tmp"]["sizeLimit"]
    in_memory = render(helm, tmp_path, {"tmp": {"medium": "Memory", "sizeLimit": "4Gi"},
                                        "aggregate": {"tmpSizeLimit": "256Mi"}})
    for name, pod in pod_specs(in_memory):
        assert "ephemeral-storage" not in pod["containers"][0]["resources"].get("requests", {}), name


def test_pod_labels_and_annotations_land_only_where_the_values_say(helm, tmp_path):
    docs = render(helm, tmp_path, {"podLabels": {"team": "vision"}, "podAnnotations": {"note": "trial"},
                                   "aggregate": {"podLabels": {"role": "agg"}, "podAnnotations": {"note": "agg"}}})
    trial = trials_job(docs)["spec"]["template"]["metadata"]
    agg = aggregate_job(docs)["spec"]["template"]["metadata"]
    assert trial["labels"]["team"] == "vision" and "role" not in trial["labels"]
    assert trial["annotations"]["note"] == "trial"
    assert agg["labels"]["role"] == "agg" and "team" not in agg["labels"]
    assert agg["annotations"]["note"] == "agg"
    test_pod = one(docs, "Pod")["metadata"]
    assert "team" not in test_pod["labels"] and "role" not in test_pod["labels"]


def test_helm_test_pod_is_deleted_when_it_passes_and_asks_for_little(helm, tmp_path):
    pod = one(render(helm, tmp_path), "Pod")
    policies = pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
    assert "hook-succeeded" in policies and "before-hook-creation" in policies
    requests = pod["spec"]["containers"][0]["resources"]["requests"]
    assert _quantity(requests["cpu"]) <= 0.25 and _quantity(requests["memory"]) <= 1


def test_service_account_names_can_stay_fixed_across_sweeps(helm, tmp_path):
    # Workload Identity binds IAM to a namespace/name: one binding for every sweep.
    fixed = {"serviceAccount": {"create": False, "name": "samplesize"},
             "aggregate": {"serviceAccount": {"create": False, "name": "samplesize-aggregate"}}}
    names = set()
    for release in ("flowers-a", "flowers-b"):
        proc = run_helm(helm, "template", release, str(CHART), *KUBE, values=deep_merge(REQUIRED, fixed),
                        tmp_path=tmp_path)
        assert proc.returncode == 0, proc.stderr
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        assert not any(d["kind"] == "ServiceAccount" for d in docs)
        names |= {(n.split("-")[0] if n.startswith(release) else n, pod["serviceAccountName"])
                  for n, pod in pod_specs(docs)}
    assert {sa for _, sa in names} == {"samplesize", "samplesize-aggregate"}


def test_chart_metadata_has_no_placeholder_addresses():
    text = (CHART / "Chart.yaml").read_text()
    meta = yaml.safe_load(text)
    # No published address yet: home and sources stay out rather than point nowhere.
    assert ".example" not in text
    for url in [meta.get("home"), *meta.get("sources", [])]:
        assert url is None or url.startswith("https://"), url
    assert meta["maintainers"] and all(m["name"] for m in meta["maintainers"])


def test_chart_readme_says_how_to_package_and_push_the_chart_to_a_registry():
    readme = (CHART / "README.md").read_text()
    assert "helm package charts/samplesize" in readme
    assert re.search(r"helm push samplesize-\S+\.tgz oci://REGION-docker\.pkg\.dev/", readme)
    assert re.search(r"helm install \S+ oci://REGION-docker\.pkg\.dev/\S+/samplesize --version", readme)


def test_role_grants_exactly_the_api_calls_the_aggregator_makes(helm, tmp_path):
    # The Kubernetes client's method names map to verbs: read_* is get, list_* list, watch=True watch.
    import ast

    source = (REPO / "job" / "samplesize" / "cluster.py").read_text()
    calls = {node.func.attr for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr.endswith("_namespaced_job")}
    verbs = {call.split("_", 1)[0].replace("read", "get") for call in calls}
    (rule,) = one(render(helm, tmp_path), "Role")["rules"]
    assert calls and sorted(verbs) == rule["verbs"]


# ------------------------------------------- config rules at install time


def _bad_configs():
    """(id, sweep values) that samplesize's config refuses with a cross-field rule."""
    from samplesize.backbones import APPLICATIONS

    cases = [
        ("split-also-backtest", {"splits": [0.25, 0.5, 1.0], "backtest_splits": [1.0, 0.5]}),
        ("duplicate-split", {"splits": [0.1, 0.3, 0.1]}),
        ("duplicate-backtest-split", {"backtest_splits": [0.9, 0.9]}),
        ("imagenet-with-small-cnn", {"model": {"weights": "imagenet"}}),
        ("weights-file-with-small-cnn", {"model": {"weights": "gs://bucket/weights.h5"}}),
        ("fine-tune-small-cnn", {"model": {"fine_tune_from": "block_1"}}),
    ]
    for name, backbone in APPLICATIONS.items():
        cases.append((f"image-size-below-{name}",
                      {"dataset": {"image_size": backbone.min_size - 1}, "model": {"backbone": name}}))
    return cases


@pytest.mark.parametrize(("case", "sweep"), _bad_configs(), ids=[c for c, _ in _bad_configs()])
def test_config_mistakes_fail_helm_install_with_the_cli_message(helm, tmp_path, case, sweep):
    from samplesize.errors import ConfigError

    merged = deep_merge(deep_merge(chart_values()["sweep"], REQUIRED["sweep"]), sweep)
    with pytest.raises(ConfigError) as refused:
        build_config(merged)  # what `samplesize plan` and every pod do first
    proc = template(helm, tmp_path, {"sweep": sweep})
    assert proc.returncode != 0, f"helm accepted {sweep}"
    assert str(refused.value) in proc.stderr, proc.stderr


@pytest.mark.parametrize("backbone", sorted(__import__("samplesize.backbones").backbones.APPLICATIONS))
def test_each_backbone_installs_at_its_minimum_image_size(helm, tmp_path, backbone):
    from samplesize.backbones import APPLICATIONS

    sweep = {"dataset": {"image_size": APPLICATIONS[backbone].min_size}, "model": {"backbone": backbone}}
    build_config(deep_merge(deep_merge(chart_values()["sweep"], REQUIRED["sweep"]), sweep))
    assert template(helm, tmp_path, {"sweep": sweep}).returncode == 0


# ------------------------------------------------------- --set decimals


def test_set_with_decimals_passes_numbers_to_the_config(helm, tmp_path):
    # helm's --set passes 0.1 as the string "0.1"; the everyday form must work.
    args = ["--set", "sweep.splits={0.1,0.2,0.4}", "--set", "sweep.backtest_splits={0.8}",
            "--set", "sweep.training.learning_rate=1e-4", "--set", "sweep.dataset.test_fraction=0.25",
            "--set", "sweep.model.dropout=0", "--set", "sweep.targets={0.9,0.95}"]
    docs = render(helm, tmp_path, None, *args)
    cfg = build_config(yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"]))
    assert cfg.splits == (0.1, 0.2, 0.4) and cfg.backtest_splits == (0.8,)
    assert cfg.training.learning_rate == 1e-4 and cfg.dataset.test_fraction == 0.25
    assert cfg.model.dropout == 0.0 and cfg.targets == (0.9, 0.95)
    assert trials_job(docs)["spec"]["completions"] == 4 * cfg.repetitions
    # The same sweep written as numbers (a values file, --set-json) renders the same pods.
    as_numbers = render(helm, tmp_path, {"sweep": {"splits": [0.1, 0.2, 0.4], "backtest_splits": [0.8],
                                                   "training": {"learning_rate": 1e-4},
                                                   "dataset": {"test_fraction": 0.25}, "model": {"dropout": 0},
                                                   "targets": [0.9, 0.95]}})
    assert trials_job(as_numbers)["spec"]["template"] == trials_job(docs)["spec"]["template"]


def test_set_json_passes_numbers_as_documented(helm, tmp_path):
    docs = render(helm, tmp_path, None, "--set-json", 'sweep.splits=[0.1,0.3]')
    assert build_config(yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"])).splits == (0.1, 0.3)


def test_set_with_a_split_in_both_lists_fails_with_the_cli_message(helm, tmp_path):
    proc = template(helm, tmp_path, None, "--set", "sweep.splits={0.5,1.0}", "--set", "sweep.backtest_splits={1}")
    assert "backtest_splits: [1.0] are also in splits; a backtest split must be left out of the fit" in proc.stderr


@pytest.mark.parametrize(
    ("pointer", "low", "high", "low_open", "high_open"),
    [
        ("splits/items", 0, 1, True, False),
        ("dataset/properties/test_fraction", 0, 1, True, True),
        ("model/properties/dropout", 0, 1, False, True),
        ("training/properties/learning_rate", 0, 1, True, False),
        ("training/properties/validation_fraction", 0, 1, True, True),
    ],
)
def test_decimal_string_patterns_accept_exactly_the_numeric_range(pointer, low, high, low_open, high_open):
    node = json.loads((CHART / "values.schema.json").read_text())["properties"]["sweep"]["properties"]
    for part in pointer.split("/"):
        node = node[part]
    assert node.get("exclusiveMinimum" if low_open else "minimum") == low
    assert node.get("exclusiveMaximum" if high_open else "maximum") == high
    pattern = re.compile(node["pattern"])

    def in_range(text):
        try:
            value = float(text)
        except ValueError:
            return False
        return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)

    # Everyday forms: accepted exactly when in range.
    for text in ("0", "0.0", "00.5", ".5", "0.05", "0.5", "0.999", "1", "1.0", "1.00", "1.5", "2", "1e-4",
                 "5E-2", "9.9e-1", "1e1", "-0.5", "0.5.1", "", "nan", "inf", "0.5e-3", ".5E-3", "0.5e3"):
        assert bool(pattern.search(text)) == in_range(text), (pointer, text)
    # Rarer spellings may be refused (the schema then names the key), but nothing out of range passes.
    for text in ("1e0", "1e-0", "0.5e-1", "10e-2", "1e+0", "+0.5", " 0.5", "0x1", "1_0", "٠.5"):
        assert not pattern.search(text) or in_range(text), (pointer, text)


def test_chart_readme_lists_every_value_and_a_complete_install():
    readme = (CHART / "README.md").read_text()
    text = (CHART / "values.yaml").read_text()
    documented = re.findall(r"^\s*# ([A-Za-z_][\w.]*) --", text, flags=re.M)
    sections = {"image", "gpu", "gpu.sharing", "tmp", "serviceAccount", "kueue", "aggregate",
                "aggregate.serviceAccount", "rbac", "trial", "test", "sweep"}
    missing = [key for key in documented if key not in sections and not key.startswith("sweep.")
               and f"`{key}`" not in readme]
    assert not missing, f"values missing from charts/samplesize/README.md: {missing}"
    install = re.search(r"```sh\n(helm install .*?)```", readme, flags=re.S).group(1)
    for key in ("image.repository", "sweep.output", "gpu.accelerator"):
        assert f"--set {key}=" in install


def test_helm_show_readme_prints_the_chart_readme(helm):
    proc = subprocess.run([helm, "show", "readme", str(CHART)], capture_output=True, text=True)
    assert proc.returncode == 0 and "gpu.accelerator" in proc.stdout and "Autopilot" in proc.stdout


# ------------------------------------------------------------- variants


VARIANTS = [{"name": "cnn-8", "dataset": {"image_size": 8}}, {"name": "cnn-16", "model": {"dropout": 0.3}}]


def test_completions_count_every_variant_and_the_configmap_holds_the_variants(helm, tmp_path):
    sweep = {"splits": [0.1, 0.3], "backtest_splits": [1.0], "repetitions": 2, "variants": VARIANTS}
    docs = render(helm, tmp_path, {"sweep": sweep})
    cfg = build_config(yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"]))
    assert [v.name for v in cfg.variants] == ["cnn-8", "cnn-16"]
    assert trials_job(docs)["spec"]["completions"] == cfg.trial_count == 3 * 2 * 2


def test_collection_costs_reach_the_config_from_values_and_from_set(helm, tmp_path):
    docs = render(helm, tmp_path, {"sweep": {"collection": {"label_cost": 12, "rounds": 2}}},
                  "--set", "sweep.collection.miss_cost=2.5e6", "--set", "sweep.collection.assurance=0.9")
    cfg = build_config(yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"]))
    assert (cfg.collection.label_cost, cfg.collection.rounds) == (12, 2)
    assert (cfg.collection.miss_cost, cfg.collection.assurance) == (2.5e6, 0.9)


def test_set_decimals_inside_a_variant_reach_the_config_as_numbers(helm, tmp_path):
    docs = render(helm, tmp_path, {"sweep": {"variants": VARIANTS}},
                  "--set", "sweep.variants[1].model.dropout=0.3", "--set", "sweep.variants[1].training.learning_rate=1e-4")
    cfg = build_config(yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"]))
    assert cfg.variants[1].overrides["model"]["dropout"] == 0.3
    assert cfg.variants[1].overrides["training"]["learning_rate"] == 1e-4


@pytest.mark.parametrize(
    ("variants", "complaint"),
    [
        ([{"name": "a", "dataset": {"source": "builtin:digits"}}, {"name": "b"}], "dataset"),
        ([{"name": "a", "splits": [0.5]}, {"name": "b"}], "splits"),
        ([{"name": "only"}], "variants"),
        ([{"name": "a b"}, {"name": "c"}], "name"),
    ],
    ids=["dataset-source", "top-level-key", "one-variant", "bad-name"],
)
def test_schema_refuses_variant_overrides_of_shared_keys(helm, tmp_path, variants, complaint):
    proc = template(helm, tmp_path, {"sweep": {"variants": variants}})
    assert proc.returncode != 0 and "schema" in proc.stderr and complaint in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "variants",
    [
        [{"name": "a"}, {"name": "big", "model": {"backbone": "mobilenet_v2"}}],
        [{"name": "a"}, {"name": "net", "model": {"weights": "imagenet"}}],
        [{"name": "a", "model": {"fine_tune_from": "block_1"}}, {"name": "b"}],
        [{"name": "a"}, {"name": "a", "model": {"dropout": 0.1}}],
    ],
    ids=["image-size-below-backbone", "imagenet-with-small-cnn", "fine-tune-small-cnn", "duplicate-name"],
)
def test_variant_mistakes_fail_helm_install_with_the_cli_message(helm, tmp_path, variants):
    from samplesize.errors import ConfigError

    merged = deep_merge(deep_merge(chart_values()["sweep"], REQUIRED["sweep"]), {"variants": variants})
    with pytest.raises(ConfigError) as refused:
        build_config(merged)
    proc = template(helm, tmp_path, {"sweep": {"variants": variants}})
    assert proc.returncode != 0, f"helm accepted {variants}"
    assert str(refused.value) in proc.stderr, proc.stderr


# ------------------------------------------- counts and sizes at install time (issue 24)

# Every count the chart takes, with its largest allowed value: a typo such as
# parallelism 100000000000000 renders as 1e+14 otherwise. The trial counts
# are the package's own (MAX_TRIALS); the rest are far past any real sweep.
CHART_COUNT_MAXIMA = {
    "parallelism": MAX_TRIALS,
    "maxFailedIndexes": MAX_TRIALS,
    "gpu/count": 16,
    "backoffLimitPerIndex": 100,
    "activeDeadlineSeconds": 31_536_000,
    "ttlSecondsAfterFinished": 31_536_000,
    "aggregate/backoffLimit": 100,
    "aggregate/activeDeadlineSeconds": 31_622_400,
}


def _schema_node(pointer: str) -> dict:
    node = json.loads((CHART / "values.schema.json").read_text())
    for part in pointer.split("/"):
        node = node["properties"][part]
    return node


def _nested(pointer: str, value) -> dict:
    tree = value
    for part in reversed(pointer.split("/")):
        tree = {part: tree}
    return tree


def test_chart_counts_have_an_upper_bound_equal_to_the_package_limits():
    for pointer, maximum in CHART_COUNT_MAXIMA.items():
        assert _schema_node(pointer).get("maximum") == maximum, pointer

    def integers(node, path):
        if "integer" in (node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]):
            yield path, node
        for key, child in node.get("properties", {}).items():
            yield from integers(child, f"{path}/{key}")
        if isinstance(node.get("items"), dict):
            yield from integers(node["items"], f"{path}/items")

    schema = json.loads((CHART / "values.schema.json").read_text())
    unbounded = [p for p, n in integers(schema, "") if "maximum" not in n]
    assert not unbounded, f"counts without a maximum: {unbounded}"


@pytest.mark.parametrize("pointer", sorted(CHART_COUNT_MAXIMA))
def test_chart_counts_have_an_upper_bound_at_install(helm, tmp_path, pointer):
    proc = template(helm, tmp_path, _nested(pointer, 100_000_000_000_000))
    assert proc.returncode != 0, f"{pointer}=1e14 installed"
    assert "schema" in proc.stderr and (f"/{pointer}" in proc.stderr or pointer.replace("/", ".") in proc.stderr)


def test_chart_counts_at_their_maximum_render_as_integers(helm, tmp_path):
    values = {
        "sweep": {"splits": [i / 100 for i in range(1, 101)], "backtest_splits": [], "repetitions": 1000},
        **{k: v for k, v in CHART_COUNT_MAXIMA.items() if "/" not in k},
        "gpu": {"count": CHART_COUNT_MAXIMA["gpu/count"]},
        "aggregate": {"backoffLimit": CHART_COUNT_MAXIMA["aggregate/backoffLimit"],
                      "activeDeadlineSeconds": CHART_COUNT_MAXIMA["aggregate/activeDeadlineSeconds"]},
    }
    proc = template(helm, tmp_path, values)
    assert proc.returncode == 0, proc.stderr
    assert "e+" not in proc.stdout, "a count rendered in exponent form"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    spec, agg = trials_job(docs)["spec"], aggregate_job(docs)["spec"]
    assert spec["completions"] == spec["parallelism"] == spec["maxFailedIndexes"] == MAX_TRIALS
    assert spec["activeDeadlineSeconds"] == 31_536_000 and spec["ttlSecondsAfterFinished"] == 31_536_000
    assert agg["activeDeadlineSeconds"] == 31_622_400 and agg["backoffLimit"] == 100


def test_chart_counts_more_trials_than_an_indexed_job_takes_fail_install_with_the_cli_message(helm, tmp_path):
    from samplesize.errors import ConfigError

    sweep = {"splits": [i / 101 for i in range(1, 101)], "backtest_splits": [1.0], "repetitions": 1000}
    with pytest.raises(ConfigError) as refused:
        build_config(deep_merge(deep_merge(chart_values()["sweep"], REQUIRED["sweep"]), sweep))
    proc = template(helm, tmp_path, {"sweep": sweep})
    assert proc.returncode != 0, "101,000 trials installed"
    assert str(refused.value) in proc.stderr, proc.stderr


def test_chart_configmap_over_1_mib_fails_install_naming_the_value_to_shrink(helm, tmp_path):
    weights = "gs://my-bucket/weights/" + "w" * (1 << 20) + ".weights.h5"
    def sweep(weights: str) -> dict:  # a backbone that loads weights files (small_cnn refuses any)
        return {"sweep": {"model": {"backbone": "mobilenet_v2", "weights": weights}, "dataset": {"image_size": 32}}}

    proc = template(helm, tmp_path, sweep(weights))
    assert proc.returncode != 0, "a ConfigMap over Kubernetes' 1 MiB rendered"
    assert "1 MiB" in proc.stderr and "sweep.model.weights" in proc.stderr, proc.stderr[-2000:]
    assert "w" * 200 not in proc.stderr, "the message repeats the huge value"
    # Just under the limit installs: the bound is Kubernetes', not a smaller one of the chart's.
    fits = "gs://my-bucket/weights/" + "w" * ((1 << 20) // 2) + ".weights.h5"
    assert template(helm, tmp_path, sweep(fits)).returncode == 0


# ------------------------------------------- hostile values never splice into YAML (issue 24)

# Whoever installs the chart chooses the values, but a value is data: a newline
# in `priorityClassName` must not give trial pods `hostPID`, and a newline in
# `kueue.queueName` must not add a label to the Job. For every string in
# values.yaml (and the optional ones it leaves unset), a hostile value is
# rendered: either `helm template` refuses it on purpose (the schema, or a
# template's `fail`), or the rendered objects, parsed, hold no injected key and
# the value only as one intact string.

MARK = "evil"
INJECTED = ("hostPID", "hostNetwork", "injected")
# A newline and the indentation of a pod spec, both quote characters, a flow
# mapping and a list item: whatever raw splicing a template does, one of them breaks out.
HOSTILE = (f"{MARK}'\"\n      hostPID: true\n      hostNetwork: true\ninjected: {{a: 1}}\n- injected: 1 # ")
# Short enough for any length limit: only a pattern stops it.
SHORT = f"{MARK}\nhostPID: 1"

def _optional(hostile: str) -> dict:
    """Strings values.yaml leaves unset (commented out, or inside empty lists and maps): name -> values."""
    cases = {
        "sweep.dataset.data_dir": {"sweep": {"dataset": {"data_dir": hostile}}},
        "sweep.model.fine_tune_from": {"sweep": {"dataset": {"image_size": 32},
                                                 "model": {"backbone": "efficientnet_b0", "fine_tune_from": hostile}}},
        "sweep.variants[].name": {"sweep": {"variants": [{"name": hostile}, {"name": "b"}]}},
        "imagePullSecrets[].name": {"imagePullSecrets": [{"name": hostile}]},
        "env[].value": {"env": [{"name": "SAMPLESIZE_NOTE", "value": hostile}]},
        "tolerations[].key": {"tolerations": [{"key": hostile, "operator": "Exists"}]},
        "extraVolumes[].name": {"extraVolumes": [{"name": hostile, "emptyDir": {}}]},
    }
    for dotted in ("nodeSelector", "podLabels", "podAnnotations", "serviceAccount.annotations",
                   "aggregate.nodeSelector", "aggregate.podLabels", "aggregate.podAnnotations",
                   "aggregate.serviceAccount.annotations"):
        for what, tree in (("value", {"example.com/key": hostile}), ("key", {hostile: "v"})):
            for part in reversed(dotted.split(".")):
                tree = {part: tree}
            cases[f"{dotted} ({what})"] = tree
    return cases


def _string_leaves(node, path=()):
    """(path, value) of every string in a values tree; a path part is a key or a list index."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _string_leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _string_leaves(value, (*path, i))
    elif isinstance(node, str):
        yield path, node


def _with(values, path, value):
    """A copy of `values` with the leaf at `path` replaced."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(values, list):
        return [_with(v, rest, value) if i == head else v for i, v in enumerate(values)]
    return {**values, head: _with(values[head], rest, value)}


def _value_cases():
    defaults = deep_merge(chart_values(), REQUIRED)
    cases = {}
    for hostile, kind in ((HOSTILE, "long"), (SHORT, "short")):
        for path, _ in _string_leaves(defaults):
            cases[".".join(str(p) for p in path) + f" {kind}"] = (_with(defaults, path, hostile), hostile)
        for name, extra in _optional(hostile).items():
            cases[f"{name} {kind}"] = (deep_merge(defaults, extra), hostile)
    return cases


CASES = _value_cases()


def _walk(node, found):
    """Every mapping key and string in `node`, parsing sweep.yaml's text as YAML too."""
    if isinstance(node, dict):
        for key, value in node.items():
            found["keys"].append(key)
            # The ConfigMap's text holds the value escaped; what pods read is the parsed YAML.
            _walk(yaml.safe_load(value) if key == "sweep.yaml" else value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)
    elif isinstance(node, str):
        found["strings"].append(node)


def assert_not_spliced(proc, hostile=HOSTILE):
    if proc.returncode != 0:
        # Refused on purpose (schema or a template's fail), not by YAML that the value broke.
        assert "schema" in proc.stderr or "execution error" in proc.stderr, proc.stderr
        return
    found = {"keys": [], "strings": []}
    for doc in yaml.safe_load_all(proc.stdout):
        _walk(doc, found)
    assert not set(INJECTED) & {str(k) for k in found["keys"]}, "an injected key reached the rendered objects"
    spliced = [s for s in found["keys"] + found["strings"] if MARK in str(s) and hostile not in str(s)]
    assert not spliced, f"the value was cut into pieces: {spliced[:3]}"


@pytest.mark.parametrize("path", sorted(CASES))
def test_helm_values_splice_into_yaml_never_for_any_string_value(helm, tmp_path, path):
    values, hostile = CASES[path]
    assert_not_spliced(template(helm, tmp_path, values, required=False), hostile)


def test_helm_values_splice_into_yaml_never_through_priority_class_name(helm, tmp_path):
    hostile = "low\n      hostPID: true\n      hostNetwork: true"
    proc = template(helm, tmp_path, {"priorityClassName": hostile})
    assert proc.returncode != 0 and "/priorityClassName" in proc.stderr, proc.stdout[-2000:]


def test_helm_values_splice_into_yaml_never_through_the_kueue_queue_label(helm, tmp_path):
    proc = template(helm, tmp_path, {"kueue": {"queueName": "gpu\n    injected: label"}})
    assert proc.returncode != 0 and "/kueue/queueName" in proc.stderr, proc.stdout[-2000:]


def test_valid_names_labels_and_annotation_keys_still_install(helm, tmp_path):
    values = {
        "nameOverride": "ss", "fullnameOverride": "flowers-sweep-1", "priorityClassName": "batch.low-priority",
        "image": {"repository": "localhost:5000/team/samplesize", "tag": "1.2.3_rc.1"},
        "kueue": {"queueName": "gpu-queue", "priorityClass": "Batch_Low.1"},
        "serviceAccount": {"name": "samplesize.trials", "annotations": {"iam.gke.io/gcp-service-account": "a@b.c"}},
        "podLabels": {"example.com/team": "Vision_1", "tier": ""},
        "podAnnotations": {"example.com/note": "any text: even\nnewlines and 'quotes'"},
        "nodeSelector": {"cloud.google.com/gke-spot": "true"},
        "tmp": {"sizeLimit": "1.5Gi"}, "aggregate": {"tmpSizeLimit": "500M"},
    }
    job = trials_job([d for d in yaml.safe_load_all(template(helm, tmp_path, values).stdout) if d])
    pod = job["spec"]["template"]
    assert pod["spec"]["priorityClassName"] == "batch.low-priority"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert pod["metadata"]["labels"]["tier"] == "" and pod["metadata"]["labels"]["example.com/team"] == "Vision_1"
    assert pod["metadata"]["annotations"]["example.com/note"] == values["podAnnotations"]["example.com/note"]
    assert pod["spec"]["containers"][0]["image"] == "localhost:5000/team/samplesize:1.2.3_rc.1"
    assert pod["spec"]["volumes"][1]["emptyDir"]["sizeLimit"] == "1.5Gi"


# ------------------------------------------------- issue 19: GKE, round 3


def test_helm_upgrade_check_records_what_a_job_keeps_from_its_creation(helm, tmp_path):
    # `helm upgrade` compares these annotations with the running Jobs' (lookup is empty
    # under `helm template`; tests/test_controlplane.py runs the refusal for real).
    def fixed(values=None):
        docs = render(helm, tmp_path, values)
        return {c: json.loads(one(docs, "Job", c)["metadata"]["annotations"]["samplesize/immutable"])
                for c in ("trial", "aggregate")}

    base = fixed()
    assert set(base["trial"]) == {"sweep", "image", "pods", "completions", "backoffLimitPerIndex"}
    # What an upgrade may change leaves them as they are ...
    assert fixed({"parallelism": 9, "maxFailedIndexes": 2, "activeDeadlineSeconds": 1000,
                  "ttlSecondsAfterFinished": 60,
                  "aggregate": {"backoffLimit": 5, "activeDeadlineSeconds": 2000}}) == base
    # ... and what a Job keeps from its creation does not.
    assert fixed({"backoffLimitPerIndex": 3})["trial"]["backoffLimitPerIndex"] == "3"
    assert fixed({"resources": {"requests": {"cpu": "2"}}})["trial"]["pods"] != base["trial"]["pods"]
    aggregator = fixed({"aggregate": {"resources": {"requests": {"cpu": "2"}}}})["aggregate"]
    assert aggregator["pods"] != base["aggregate"]["pods"]
    assert fixed({"sweep": {"seed": 7}})["trial"]["sweep"] != base["trial"]["sweep"]


def test_upgrade_refusal_names_the_values_an_upgrade_may_change():
    text = (CHART / "templates" / "_validate.tpl").read_text()
    for value in ("parallelism", "maxFailedIndexes", "activeDeadlineSeconds", "ttlSecondsAfterFinished",
                  "aggregate.backoffLimit", "aggregate.activeDeadlineSeconds"):
        assert value in text.split('define "samplesize.checkUpgrade"')[1]
        assert f"`{value}`" in (CHART / "README.md").read_text().split("## Upgrading a running sweep")[1]


def readme_cluster_queue() -> dict:
    """The ClusterQueue of the chart README's Kueue section."""
    readme = (CHART / "README.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S):
        for doc in yaml.safe_load_all(block):
            if doc and doc.get("kind") == "ClusterQueue":
                return doc
    raise AssertionError("charts/samplesize/README.md has no ClusterQueue example")


@pytest.mark.parametrize("value_set", ["kueue", "cpu-only"])
def test_documented_cluster_queue_covers_every_resource_a_trial_requests(helm, tmp_path, value_set):
    # A resource missing from coveredResources keeps the workload pending for ever.
    queue = readme_cluster_queue()
    covered = set()
    for group in queue["spec"]["resourceGroups"]:
        covered |= set(group["coveredResources"])
        for flavor in group["flavors"]:
            assert {r["name"] for r in flavor["resources"]} == set(group["coveredResources"]), flavor
    excluded = queue["spec"].get("excludeResourcePrefixes", [])
    container = trials_job(render(helm, tmp_path, deep_merge(VALUE_SETS["kueue"], VALUE_SETS[value_set])))[
        "spec"]["template"]["spec"]["containers"][0]
    requested = set(container["resources"]["requests"]) | set(container["resources"].get("limits", {}))
    assert "ephemeral-storage" in requested
    missing = {r for r in requested if r not in covered and not any(r.startswith(p) for p in excluded)}
    assert not missing, f"the README's ClusterQueue does not cover {missing}"


def test_notes_with_kueue_say_the_cluster_queue_must_cover_every_requested_resource(helm, tmp_path):
    (tmp_path / "kueue").mkdir()
    (tmp_path / "plain").mkdir()
    notes = render_notes(helm, tmp_path / "kueue", VALUE_SETS["kueue"])
    for word in ("cpu", "memory", "ephemeral-storage", GPU, "excludeResourcePrefixes", "ClusterQueue"):
        assert word in notes, word
    assert "ClusterQueue" not in render_notes(helm, tmp_path / "plain")


def test_notes_count_variants_and_say_how_to_watch_and_debug_a_sweep(helm, tmp_path):
    notes = render_notes(helm, tmp_path, {"sweep": {"variants": [{"name": "a"}, {"name": "b"}]}})
    assert "30 trials (5 splits x 3 repetitions x 2 variants)" in notes
    assert f"kubectl get job -n {NAMESPACE} sweep-samplesize-trials sweep-samplesize-aggregate -w" in notes
    assert "samplesize status --config sweep.yaml" in notes
    assert "sweep-samplesize-config" in notes
    for reason in ("FailedScheduling", "NotTriggerScaleUp", "FailedScaleUp"):
        assert f"reason={reason}" in notes
    assert "exec format error" in notes and "docker buildx build --platform linux/amd64" in notes


def test_image_digest_pins_the_image_of_every_pod(helm, tmp_path):
    digest = "sha256:" + "0123456789abcdef" * 4
    docs = render(helm, tmp_path, {"image": {"digest": digest, "tag": "v1"}})
    images = {c["image"] for _, pod in pod_specs(docs) for c in pod["containers"]}
    assert images == {f"{REQUIRED['image']['repository']}@{digest}"}


def test_log_format_reaches_the_trials_as_an_environment_variable(helm, tmp_path):
    # The package reads SAMPLESIZE_LOG_FORMAT (json: one object per line for Cloud Logging).
    container = lambda docs: trials_job(docs)["spec"]["template"]["spec"]["containers"][0]  # noqa: E731
    assert env_of(container(render(helm, tmp_path)))["SAMPLESIZE_LOG_FORMAT"] == "text"
    as_json = render(helm, tmp_path, {"trial": {"logFormat": "json"}})
    assert env_of(container(as_json))["SAMPLESIZE_LOG_FORMAT"] == "json"


def test_gpu_sharing_and_spot_render_gkes_node_selectors_and_toleration(helm, tmp_path):
    spec = trials_job(render(helm, tmp_path, VALUE_SETS["gke-extras"]))["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4",
                                    "cloud.google.com/gke-gpu-sharing-strategy": "time-sharing",
                                    "cloud.google.com/gke-max-shared-clients-per-gpu": "4",
                                    "cloud.google.com/gke-spot": "true"}
    assert {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in spec["tolerations"]
    # One trial per pod and one (shared) GPU per container, as GKE requires.
    assert spec["containers"][0]["resources"]["limits"][GPU] == 1
    mps = trials_job(render(helm, tmp_path, {"gpu": {"sharing": {"strategy": "mps"}}}))
    assert mps["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-gpu-sharing-strategy"] == "mps"
    plain = trials_job(render(helm, tmp_path))["spec"]["template"]["spec"]
    assert not any("gke-spot" in k or "sharing" in k for k in plain["nodeSelector"])
    assert not any(t["key"] == "cloud.google.com/gke-spot" for t in plain.get("tolerations", []))


@pytest.mark.parametrize(("values", "complaint"), [
    ({"gpu": {"count": 2, "sharing": {"strategy": "time-sharing"}}}, "set gpu.count=1"),
    ({"gpu": {"enabled": False, "sharing": {"strategy": "mps"}}}, "needs gpu.enabled=true"),
])
def test_gpu_sharing_mistakes_fail_install(helm, tmp_path, values, complaint):
    proc = template(helm, tmp_path, values)
    assert proc.returncode != 0 and complaint in proc.stderr, proc.stderr


@pytest.mark.parametrize(("values", "complaint"), [
    ({"tmp": {"medium": "Memory"}}, "tmp.sizeLimit (20Gi) must be below resources.limits.memory (10Gi)"),
    ({"tmp": {"medium": "Memory", "sizeLimit": "10Gi"}}, "tmp.sizeLimit (10Gi) must be below"),
    ({"tmp": {"medium": "Memory", "sizeLimit": "4Gi"}},
     "aggregate.tmpSizeLimit (2Gi) must be below aggregate.resources.limits.memory (2Gi)"),
    ({"tmp": {"medium": "Memory", "sizeLimit": "4Gi"}, "aggregate": {"tmpSizeLimit": "1Gi"}},
     "aggregate.tmpSizeLimit (1Gi) must be below test.resources.limits.memory (512Mi)"),
])
def test_memory_backed_tmp_at_or_over_the_memory_limit_fails_install(helm, tmp_path, values, complaint):
    proc = template(helm, tmp_path, values)
    assert proc.returncode != 0 and complaint in proc.stderr, proc.stderr


def test_memory_backed_tmp_below_the_memory_limit_installs(helm, tmp_path):
    # 10737418240 bytes is 10Gi: quantities of any suffix compare by their bytes.
    docs = render(helm, tmp_path, {"tmp": {"medium": "Memory", "sizeLimit": "9000M"},
                                   "resources": {"limits": {"memory": "10737418240"}},
                                   "aggregate": {"tmpSizeLimit": "256Mi"}})
    assert next(v for v in trials_job(docs)["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "tmp")["emptyDir"] == {"medium": "Memory", "sizeLimit": "9000M"}


def test_set_with_a_decimal_exponent_reaches_the_config_as_a_number(helm, tmp_path):
    docs = render(helm, tmp_path, None, "--set", "sweep.training.learning_rate=0.5e-3",
                  "--set", "sweep.splits={0.5e-1,0.5}")
    cfg = build_config(yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"]))
    assert cfg.training.learning_rate == 0.0005 and cfg.splits == (0.05, 0.5)


def test_set_with_a_numeric_sweep_name_is_the_name_the_cli_reads(helm, tmp_path):
    # --set passes 2024 as a number; the CLI takes `name: 2024` as the text "2024".
    docs = render(helm, tmp_path, None, "--set", "sweep.name=2024")
    data = yaml.safe_load(one(docs, "ConfigMap")["data"]["sweep.yaml"])
    assert data["name"] == "2024"
    assert build_config(data).name == build_config({**data, "name": 2024}).name == "2024"
