"""The chart and the plain manifests on a real Kubernetes control plane.

kube-apiserver (RBAC, admission, the Job's CEL validation), the Job controller, the
garbage collector and etcd are upstream's (tests/kube_controlplane.py); the pods run
with the real image under Docker (tests/podrunner.py), their output goes to the GCS
emulator over host networking. Each sweep is tiny (digits at 8 px, a small CNN, two
epochs), since every pod imports TensorFlow on a 2-core machine.

Run with `pytest -m controlplane` (see docs/controlplane.md); .ci/run runs them in CI.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from controlplane_fixtures import IMAGE, Kube
from gcs_emulator import FaultProxy, GcsEmulator, _shared_emulator
from podrunner import dump_status
from samplesize.text import index_ranges
from samplesize.cluster import parse_indexes
from samplesize.config import build_config
from samplesize.errors import EXIT_CONFIG, EXIT_DATA, EXIT_TRANSIENT
from samplesize.plan import trial_spec
from samplesize.results import trial_identity

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

CHART = REPO / "charts" / "samplesize"
RELEASE = "sweep"
SWEEP_TIMEOUT_S = 1800  # a pod imports TensorFlow in tens of seconds on a busy 2-core machine
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
FAILURES = "batch.kubernetes.io/job-index-failure-count"
IGNORED_FAILURES = "batch.kubernetes.io/job-index-ignored-failure-count"
TINY_SWEEP = {
    "dataset": {"source": "builtin:digits", "image_size": 8},
    "backtest_splits": [],
    "repetitions": 1,
    "training": {"head_epochs": 2, "fine_tune_epochs": 0, "batch_size": 32, "patience": 2},
}


# ----------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def helm(cluster_helm) -> str:
    return cluster_helm


def run_helm(helm: str, kube: Kube, *args: str, values: dict | None = None, tmp: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    cmd = [helm, *args, "--kubeconfig", str(kube.kubeconfig)]
    if values is not None:
        f = tmp / f"values-{time.monotonic_ns()}.yaml"
        f.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(f)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def chart_values(output: str, storage_host: str, sweep: dict, **extra) -> dict:
    """Values as a CPU-only test install sets them: every required value given explicitly."""
    repository, _, tag = IMAGE.rpartition(":")
    small = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}}
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "gpu": {"enabled": False},
        "resources": small,
        "aggregate": {"resources": small},
        "parallelism": 2,
        "tmp": {"sizeLimit": "2Gi"},
        "env": [{"name": "STORAGE_EMULATOR_HOST", "value": storage_host},
                # A storage fault becomes exit 75 in seconds instead of minutes.
                {"name": "SAMPLESIZE_GCS_RETRY_DEADLINE", "value": "3"}],
        "sweep": {**copy.deepcopy(TINY_SWEEP), **sweep, "output": output},
    }
    values.update(extra)
    return values


def job_finished(job) -> str | None:
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


def wait_for_jobs(kube: Kube, namespace: str, names: list[str], pod_runner, on_poll=None,
                  timeout: float = SWEEP_TIMEOUT_S) -> dict:
    """Wait until every named Job is Complete or Failed; returns {name: V1Job}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_poll is not None:
            on_poll()
        jobs = {n: kube.batch.read_namespaced_job(n, namespace) for n in names}
        if all(job_finished(j) for j in jobs.values()):
            return jobs
        time.sleep(1)
    raise AssertionError(f"jobs {names} in {namespace} did not finish within {timeout:g}s; pods:\n"
                         f"{dump_status(kube.core, namespace)}\nrunner errors: {pod_runner.errors}")


def trial_pods(kube: Kube, namespace: str, job: str) -> dict[int, list]:
    """The Job's pods by completion index, oldest first."""
    out: dict[int, list] = {}
    for p in kube.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items:
        out.setdefault(int(p.metadata.annotations[INDEX_ANNOTATION]), []).append(p)
    for pods in out.values():
        pods.sort(key=lambda p: p.metadata.creation_timestamp)
    return out


def exit_code(pod) -> int | None:
    for cs in pod.status.container_statuses or []:
        if cs.state and cs.state.terminated:
            return cs.state.terminated.exit_code
    return None


def read_object(gcs: GcsEmulator, bucket: str, name: str) -> tuple[bytes, int]:
    blob = gcs.client().bucket(bucket).get_blob(name)
    assert blob is not None, f"gs://{bucket}/{name} does not exist"
    return blob.download_as_bytes(), blob.generation


def summary_without_time(data: bytes) -> dict:
    summary = json.loads(data)
    summary.get("run", {}).pop("generated_at", None)
    return summary


def install_sweep(helm, kube, tmp: Path, namespace: str, values: dict) -> None:
    run_helm(helm, kube, "install", RELEASE, str(CHART), "--namespace", namespace, "--create-namespace",
             values=values, tmp=tmp)


def names(release: str = RELEASE) -> tuple[str, str]:
    fullname = f"{release}-samplesize"
    return f"{fullname}-trials", f"{fullname}-aggregate"


# ----------------------------------------------------------------- a sweep that works


@pytest.fixture(scope="module")
def finished_sweep(request, helm, kube, pod_runner, tmp_path_factory):
    """`helm install` of a two-trial sweep, waited for until the aggregator finished."""
    gcs = _shared_emulator(request.config)
    bucket = gcs.new_bucket("cp")
    output = f"gs://{bucket}/sweeps/ok"
    namespace = "sweep-ok"
    tmp = tmp_path_factory.mktemp("helm-ok")
    values = chart_values(output, gcs.url, {"name": "cp-ok", "splits": [0.3, 0.6]})
    install_sweep(helm, kube, tmp, namespace, values)
    trials, aggregate = names()
    jobs = wait_for_jobs(kube, namespace, [trials, aggregate], pod_runner)
    return {"gcs": gcs, "bucket": bucket, "output": output, "namespace": namespace, "values": values,
            "jobs": jobs, "tmp": tmp}


def test_helm_install_runs_every_index_and_the_aggregator_writes_the_report(finished_sweep, kube, pod_runner):
    trials, aggregate = names()
    jobs, ns = finished_sweep["jobs"], finished_sweep["namespace"]
    context = dump_status(kube.core, ns)
    assert job_finished(jobs[trials]) == "Complete", context
    assert parse_indexes(jobs[trials].status.completed_indexes) == [0, 1], context
    assert job_finished(jobs[aggregate]) == "Complete", context
    gcs, bucket = finished_sweep["gcs"], finished_sweep["bucket"]
    summary = json.loads(read_object(gcs, bucket, "sweeps/ok/report/summary.json")[0])
    assert summary["complete"] is True
    assert [p["index"] for p in summary["points"]] == [0, 1]
    for i in (0, 1):
        read_object(gcs, bucket, f"sweeps/ok/trials/trial-{i:05d}.json")
    # The aggregator learnt the Job's outcome through the API, under its own token.
    agg_pod = kube.core.list_namespaced_pod(ns, label_selector=f"job-name={aggregate}").items[0]
    assert any(v.projected for v in agg_pod.spec.volumes), "the aggregator's token is projected by admission"
    assert pod_runner.errors == []


TEST_POD = f"{RELEASE}-samplesize-test-report"


def wait_until_gone(kube: Kube, namespace: str, pod: str, timeout: float = 120) -> bool:
    from kubernetes.client.rest import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kube.core.read_namespaced_pod(pod, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        time.sleep(1)
    return False


def test_helm_test_passes_once_the_report_exists_and_its_pod_is_deleted(finished_sweep, helm, kube, pod_runner):
    ns = finished_sweep["namespace"]
    done = run_helm(helm, kube, "test", RELEASE, "--namespace", ns, "--timeout", "15m")
    assert "Succeeded" in done.stdout, done.stdout
    assert pod_runner.exit_codes[TEST_POD] == 0, pod_runner.logs(TEST_POD)
    assert "report: present" in pod_runner.logs(TEST_POD), pod_runner.logs(TEST_POD)
    # hook-delete-policy hook-succeeded: a passed test leaves no pod behind.
    assert wait_until_gone(kube, ns, TEST_POD), dump_status(kube.core, ns)


def test_failed_helm_test_keeps_its_pod_for_its_logs(finished_sweep, helm, kube, pod_runner):
    """Without the report `helm test` fails, and its pod stays (kubectl logs) until the next `helm test`."""
    ns, gcs, bucket = (finished_sweep[k] for k in ("namespace", "gcs", "bucket"))
    report = gcs.client().bucket(bucket).blob("sweeps/ok/report/summary.json")
    saved = report.download_as_bytes()
    report.delete()
    try:
        failed = run_helm(helm, kube, "test", RELEASE, "--namespace", ns, "--timeout", "15m", check=False)
    finally:
        report.upload_from_string(saved, content_type="application/json")
    assert failed.returncode != 0, failed.stdout
    pod = kube.core.read_namespaced_pod(TEST_POD, ns)
    assert pod.status.phase == "Failed" and exit_code(pod) == 1, dump_status(kube.core, ns)
    log = pod_runner.logs(TEST_POD)
    # The other three files are there, but not as one set with summary.json: status names the missing file.
    assert "report: not one consistent set (report/summary.json is missing)" in log, log


def test_aggregator_role_gets_its_trials_job_and_nothing_else(finished_sweep, kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ns = finished_sweep["namespace"]
    trials, aggregate = names()
    token = kube.core.create_namespaced_service_account_token(
        aggregate, ns, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))).status.token
    admin = kube.api_client.configuration
    conf = client.Configuration(host=admin.host, api_key={"BearerToken": f"Bearer {token}"})
    conf.ssl_ca_cert = admin.ssl_ca_cert
    as_aggregator = client.ApiClient(conf)
    batch, core = client.BatchV1Api(as_aggregator), client.CoreV1Api(as_aggregator)

    assert batch.read_namespaced_job(trials, ns).metadata.name == trials

    forbidden = {
        "list the trials Job by name": lambda: batch.list_namespaced_job(ns, field_selector=f"metadata.name={trials}"),
        "list pods": lambda: core.list_namespaced_pod(ns),
        "read its own Job": lambda: batch.read_namespaced_job(aggregate, ns),
        "list every Job": lambda: batch.list_namespaced_job(ns),
        "delete the trials Job": lambda: batch.delete_namespaced_job(trials, ns),
        "read the trials Job in another namespace": lambda: batch.read_namespaced_job(trials, "default"),
        "read ConfigMaps": lambda: core.list_namespaced_config_map(ns),
    }
    for what, call in forbidden.items():
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403, f"{what}: {err.value.status} {err.value.reason}"


def test_upgrade_that_changes_the_sweep_is_refused_and_the_same_values_upgrade(finished_sweep, helm, kube):
    ns, tmp, values = finished_sweep["namespace"], finished_sweep["tmp"], finished_sweep["values"]
    changed = copy.deepcopy(values)
    changed["sweep"]["seed"] = values["sweep"].get("seed", 42) + 1
    refused = run_helm(helm, kube, "upgrade", RELEASE, str(CHART), "--namespace", ns, values=changed, tmp=tmp,
                       check=False)
    assert refused.returncode != 0
    # The chart refuses before helm touches an object, naming what changed (the API
    # server would refuse too: the ConfigMap and the Jobs' pod templates are immutable).
    assert "helm upgrade cannot change the sweep" in refused.stderr, refused.stderr
    config = kube.core.read_namespaced_config_map(f"{RELEASE}-samplesize-config", ns)
    assert yaml.safe_load(config.data["sweep.yaml"])["seed"] == values["sweep"].get("seed", 42)
    run_helm(helm, kube, "upgrade", RELEASE, str(CHART), "--namespace", ns, values=values, tmp=tmp)


def test_uninstall_and_second_install_resume_without_retraining(finished_sweep, helm, kube, pod_runner):
    ns, gcs, bucket, tmp = (finished_sweep[k] for k in ("namespace", "gcs", "bucket", "tmp"))
    trials, aggregate = names()
    before = {i: read_object(gcs, bucket, f"sweeps/ok/trials/trial-{i:05d}.json") for i in (0, 1)}
    summary_before = read_object(gcs, bucket, "sweeps/ok/report/summary.json")[0]

    job_pods = "batch.kubernetes.io/job-name"
    hook_pods = sorted(p.metadata.name for p in kube.core.list_namespaced_pod(ns).items
                       if job_pods not in (p.metadata.labels or {}))
    run_helm(helm, kube, "uninstall", RELEASE, "--namespace", ns, "--wait", "--timeout", "5m")
    # The garbage collector removes the Jobs' pods.
    deadline = time.monotonic() + 300
    while kube.core.list_namespaced_pod(ns, label_selector=job_pods).items and time.monotonic() < deadline:
        time.sleep(1)
    assert kube.core.list_namespaced_pod(ns, label_selector=job_pods).items == [], dump_status(kube.core, ns)
    # Helm does not delete hooks with the release: a failed `helm test` pod (a passed one
    # deletes itself) is left, until the next `helm test` replaces it.
    left = sorted(p.metadata.name for p in kube.core.list_namespaced_pod(ns).items)
    assert left == hook_pods, dump_status(kube.core, ns)

    install_sweep(helm, kube, tmp, ns, finished_sweep["values"])
    jobs = wait_for_jobs(kube, ns, [trials, aggregate], pod_runner)
    assert job_finished(jobs[trials]) == "Complete" and job_finished(jobs[aggregate]) == "Complete"
    for i, pods in trial_pods(kube, ns, trials).items():
        assert len(pods) == 1
        assert "nothing to do" in pod_runner.logs(pods[0].metadata.name), pod_runner.logs(pods[0].metadata.name)
    after = {i: read_object(gcs, bucket, f"sweeps/ok/trials/trial-{i:05d}.json") for i in (0, 1)}
    assert after == before, "a finished trial's result was rewritten"
    summary_after = read_object(gcs, bucket, "sweeps/ok/report/summary.json")[0]
    assert summary_without_time(summary_after) == summary_without_time(summary_before)
    run_helm(helm, kube, "uninstall", RELEASE, "--namespace", ns, "--wait", "--timeout", "5m")


@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
def test_upgrade_of_an_admitted_running_sweep_stops_no_pod_and_the_sweep_completes(
        request, major, helm_of_major, kube, pod_runner, kueue_webhook, tmp_path):
    """`helm upgrade --set parallelism=2` while Kueue has admitted the Job and a trial trains.

    Kueue's webhook (its stand-in, `kueue_webhook`) suspends the queued Job at creation;
    Kueue admits it by setting `spec.suspend: false` under its own field manager. With
    `suspend: true` in the chart's manifest, helm 3's three-way merge put it back (the
    Job controller then deleted the running pods), and helm 4's server-side apply failed
    on a conflict with that manager at `.spec.suspend`.
    """
    from kubernetes.client.rest import ApiException

    helm = helm_of_major(major)
    gcs = _shared_emulator(request.config)
    bucket = gcs.new_bucket("cp")
    namespace = f"sweep-upgrade-helm{major}"
    values = chart_values(f"gs://{bucket}/sweeps/upgrade", gcs.url, {"name": "cp-upgrade", "splits": [0.3, 0.6]},
                          parallelism=1, kueue={"queueName": "gpu-queue"})
    trials, aggregate = names()
    install_sweep(helm, kube, tmp_path, namespace, values)
    try:
        assert kube.batch.read_namespaced_job(trials, namespace).spec.suspend is True, "queued, not admitted"
        time.sleep(2)
        assert trial_pods(kube, namespace, trials) == {}, "a suspended Job starts no pod"
        # Admission, as Kueue's controller does it.
        kube.batch.patch_namespaced_job(trials, namespace, {"spec": {"suspend": False}},
                                        field_manager="kueue-admission")
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while True:
            first = trial_pods(kube, namespace, trials).get(0, [None])[0]
            if first is not None and first.status.phase == "Running" and catches_sigterm(first):
                break  # the trial is running (past the interpreter's start)
            assert time.monotonic() < deadline, dump_status(kube.core, namespace)
            time.sleep(1)
        running = first.metadata.name

        raised = {**values, "parallelism": 2}
        run_helm(helm, kube, "upgrade", RELEASE, str(CHART), "--namespace", namespace, values=raised, tmp=tmp_path)
        job = kube.batch.read_namespaced_job(trials, namespace)
        assert job.spec.suspend is False and job.spec.parallelism == 2
        try:
            pod = kube.core.read_namespaced_pod(running, namespace)
        except ApiException as exc:
            pytest.fail(f"helm {major} upgrade deleted the running trial pod {running}: {exc.status}")
        assert pod.metadata.deletion_timestamp is None, f"helm {major} upgrade is stopping {running}"

        jobs = wait_for_jobs(kube, namespace, [trials, aggregate], pod_runner)
        context = dump_status(kube.core, namespace)
        assert job_finished(jobs[trials]) == "Complete" and job_finished(jobs[aggregate]) == "Complete", context
        pods = trial_pods(kube, namespace, trials)
        # No pod was stopped: one pod per index, and index 0's is the one that ran through the upgrade.
        assert {i: [(p.metadata.name, exit_code(p)) for p in ps] for i, ps in pods.items()} == {
            0: [(running, 0)], 1: [(pods[1][0].metadata.name, 0)]}, context
        assert json.loads(read_object(gcs, bucket, "sweeps/upgrade/report/summary.json")[0])["complete"] is True
    finally:
        run_helm(helm, kube, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "5m",
                 check=False)


# ----------------------------------------------------------------- a sweep with failures


FOREIGN_SCORE = 0.987654  # the foreign result's score: it must appear nowhere in the report
EVICTION_GRACE_S = 30  # the kubelet's default terminationGracePeriodSeconds


def foreign_result(cfg, index: int) -> bytes:
    """A finished result at `index` as an earlier sweep with other training settings left it."""
    earlier = build_config({**cfg.to_dict(), "training": {**cfg.to_dict()["training"], "head_epochs": 3}})
    assert earlier.trial_hash() != cfg.trial_hash()
    result = {**trial_identity(earlier, trial_spec(earlier, index)), "sample_size": 500, "class_names": [],
              "metrics": {cfg.metric: FOREIGN_SCORE}}
    return json.dumps(result).encode()


def catches_sigterm(pod) -> bool:
    """Whether the pod's container process has installed its SIGTERM handler (SigCgt in /proc)."""
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.kubernetes.pod.uid={pod.metadata.uid}"],
                         capture_output=True, text=True).stdout.split()
    if not ids:
        return False
    pid = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", ids[0]],
                         capture_output=True, text=True).stdout.strip()
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError):
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.fixture(scope="module")
def faulty_sweep(request, helm, kube, pod_runner, tmp_path_factory):
    """Four indexes: a data error, a result of another config, a storage outage, an eviction.

    - the smallest split (0.002 of the pool: 10 images for 10 classes) leaves no
      validation example, a real data error: exit 65, which FailIndex covers;
    - one index's key already holds a result of another config hash (an earlier sweep
      at the same output): exit 64, which FailIndex covers;
    - the GCS emulator answers 503 for every request on one index's result until that
      index's first pod has failed: exit 75, retried;
    - the fourth index's first pod is evicted through the Eviction API while it trains,
      with the kubelet's default 30 s grace period: the API server marks it
      DisruptionTarget, the runner stops its container with SIGTERM.
    """
    gcs = _shared_emulator(request.config)
    proxy = FaultProxy(gcs)
    bucket = gcs.new_bucket("cp")
    output = f"gs://{bucket}/sweeps/faults"
    namespace = "sweep-faults"
    sweep = {"name": "cp-faults", "splits": [0.002, 0.3, 0.45, 0.6]}
    cfg = build_config({**copy.deepcopy(TINY_SWEEP), **sweep, "output": output})
    by_split = {trial_spec(cfg, i).split: i for i in range(cfg.trial_count)}
    bad_data, foreign, outage, evicted = by_split[0.002], by_split[0.45], by_split[0.6], by_split[0.3]
    gcs.client().bucket(bucket).blob(f"sweeps/faults/trials/trial-{foreign:05d}.json").upload_from_string(
        foreign_result(cfg, foreign), content_type="application/json")
    proxy.fail(503, times=None, path_contains=f"trials/trial-{outage:05d}.json")
    values = chart_values(output, proxy.url, sweep, backoffLimitPerIndex=2)
    tmp = tmp_path_factory.mktemp("helm-faults")
    install_sweep(helm, kube, tmp, namespace, values)
    trials, aggregate = names()
    seen = {"evicted": None, "evicted_at": None}

    def on_poll() -> None:
        from kubernetes import client

        pods = trial_pods(kube, namespace, trials)
        if any(p.status.phase == "Failed" for p in pods.get(outage, [])):
            proxy.clear()
        first = pods.get(evicted, [None])[0]
        if (seen["evicted"] is None and first is not None and first.status.phase == "Running"
                and catches_sigterm(first)):
            # Once the trial runs (its handler is installed; a signal in the interpreter's
            # first instant would hit PID 1 without one), with a realistic grace period.
            kube.core.create_namespaced_pod_eviction(first.metadata.name, namespace, client.V1Eviction(
                metadata=client.V1ObjectMeta(name=first.metadata.name, namespace=namespace),
                delete_options=client.V1DeleteOptions(grace_period_seconds=EVICTION_GRACE_S)))
            seen["evicted"], seen["evicted_at"] = first.metadata.name, time.monotonic()

    try:
        jobs = wait_for_jobs(kube, namespace, [trials, aggregate], pod_runner, on_poll=on_poll)
    finally:
        proxy.close()
    yield {"gcs": gcs, "bucket": bucket, "namespace": namespace, "jobs": jobs, "pods": trial_pods(kube, namespace, trials),
           "bad_data": bad_data, "foreign": foreign, "outage": outage, "evicted": evicted,
           "evicted_pod": seen["evicted"], "evicted_at": seen["evicted_at"]}
    run_helm(helm, kube, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "5m", check=False)


def test_data_error_fails_its_index_at_once(faulty_sweep, kube):
    trials, _ = names()
    job, pods, index = faulty_sweep["jobs"][trials], faulty_sweep["pods"], faulty_sweep["bad_data"]
    context = dump_status(kube.core, faulty_sweep["namespace"])
    assert [exit_code(p) for p in pods[index]] == [EXIT_DATA], context  # one pod: no retry
    assert index in parse_indexes(job.status.failed_indexes), context
    # The Job ran every other index to the end (no maxFailedIndexes) and then failed.
    assert job_finished(job) == "Failed", context


def test_result_of_another_config_fails_its_index_at_once(faulty_sweep, kube, pod_runner):
    trials, _ = names()
    job, pods, index = faulty_sweep["jobs"][trials], faulty_sweep["pods"], faulty_sweep["foreign"]
    context = dump_status(kube.core, faulty_sweep["namespace"])
    assert [exit_code(p) for p in pods[index]] == [EXIT_CONFIG], context  # one pod: FailIndex, no retry
    log = pod_runner.logs(pods[index][0].metadata.name)
    assert f"sweeps/faults/trials/trial-{index:05d}.json holds a result made with another sweep config" in log, log
    # The two indexes that cannot succeed failed; every other index completed.
    failed = {index, faulty_sweep["bad_data"]}
    assert parse_indexes(job.status.failed_indexes) == sorted(failed), context
    assert parse_indexes(job.status.completed_indexes) == sorted(set(range(4)) - failed), context
    # The foreign result is left as it was.
    data, _ = read_object(faulty_sweep["gcs"], faulty_sweep["bucket"], f"sweeps/faults/trials/trial-{index:05d}.json")
    assert json.loads(data)["metrics"] == {"balanced_accuracy": FOREIGN_SCORE}


def test_transient_storage_error_is_retried(faulty_sweep, kube):
    pods, index = faulty_sweep["pods"], faulty_sweep["outage"]
    context = dump_status(kube.core, faulty_sweep["namespace"])
    assert [exit_code(p) for p in pods[index]] == [EXIT_TRANSIENT, 0], context
    assert pods[index][1].metadata.annotations[FAILURES] == "1", "the retry counts against backoffLimitPerIndex"
    trials, _ = names()
    assert index in parse_indexes(faulty_sweep["jobs"][trials].status.completed_indexes)


def test_evicted_pod_is_not_counted_against_its_index(faulty_sweep, kube, pod_runner):
    pods, index = faulty_sweep["pods"], faulty_sweep["evicted"]
    trials, _ = names()
    context = dump_status(kube.core, faulty_sweep["namespace"]) + str(faulty_sweep["jobs"][trials].status)
    assert faulty_sweep["evicted_pod"] is not None, "no pod of the evicted index was ever seen running"
    # The evicted trial stopped on SIGTERM with the transient code, well inside its grace
    # period (137 would be SIGKILL at its end).
    evicted_pod = faulty_sweep["evicted_pod"]
    stopped_after = pod_runner.ended_at[evicted_pod] - faulty_sweep["evicted_at"]
    print(f"evicted trial stopped {stopped_after:.1f} s after its eviction (grace {EVICTION_GRACE_S} s)")
    assert pod_runner.exit_codes[evicted_pod] == EXIT_TRANSIENT, (pod_runner.exit_codes[evicted_pod],
                                                                   pod_runner.logs(evicted_pod))
    assert "stopped by SIGTERM" in pod_runner.logs(evicted_pod), pod_runner.logs(evicted_pod)
    # The evicted pod was deleted by its eviction; its replacement carries the counts.
    assert index in pods, context
    replacement = pods[index][-1]
    assert replacement.metadata.name != faulty_sweep["evicted_pod"]
    assert exit_code(replacement) == 0, context
    assert replacement.metadata.annotations[IGNORED_FAILURES] == "1", replacement.metadata.annotations
    assert replacement.metadata.annotations[FAILURES] == "0", replacement.metadata.annotations


def test_aggregator_names_the_failed_index_in_a_partial_report(faulty_sweep, kube):
    _, aggregate = names()
    assert job_finished(faulty_sweep["jobs"][aggregate]) == "Complete"
    gcs, bucket = faulty_sweep["gcs"], faulty_sweep["bucket"]
    summary = json.loads(read_object(gcs, bucket, "sweeps/faults/report/summary.json")[0])
    assert summary["complete"] is False
    partial = next(w for w in summary["warnings"] if w.startswith("PARTIAL SWEEP"))
    failed = index_ranges([faulty_sweep["bad_data"], faulty_sweep["foreign"]])
    assert f"the Job reports indexes {failed} as failed" in partial, partial
    report = read_object(gcs, bucket, "sweeps/faults/report/report.md")[0].decode()
    assert "PARTIAL SWEEP" in report
    # The foreign result is named and left out of every number.
    foreign = faulty_sweep["foreign"]
    assert any(f"trial-{foreign:05d}.json" in w and "belongs to another sweep" in w for w in summary["warnings"]), \
        summary["warnings"]
    assert foreign not in [p["index"] for p in summary["points"]]
    assert str(FOREIGN_SCORE) not in json.dumps(summary)


# ----------------------------------------------------------------- plain manifests


def test_plain_manifests_apply_and_complete_the_same_sweep(request, kube, pod_runner):
    """k8s/samplesize.yaml, edited as k8s/README.md tells a user, applied with the kubernetes client."""
    from kubernetes import utils

    gcs = _shared_emulator(request.config)
    bucket = gcs.new_bucket("cp")
    output = f"gs://{bucket}/sweeps/plain"
    namespace = "sweep-plain"
    docs = [d for d in yaml.safe_load_all((REPO / "k8s" / "samplesize.yaml").read_text()) if d]
    values = chart_values(output, gcs.url, {"name": "cp-plain", "splits": [0.3, 0.6]})
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            sweep = yaml.safe_load(doc["data"]["sweep.yaml"])
            sweep.update(copy.deepcopy(values["sweep"]))
            doc["data"]["sweep.yaml"] = yaml.safe_dump(sweep)
        if doc["kind"] == "Job":
            spec = doc["spec"]["template"]["spec"]
            container = spec["containers"][0]
            container["image"] = IMAGE
            container["imagePullPolicy"] = "Never"
            # This cluster has no GPU: drop the GPU request, its toleration and node
            # selector, and the check that a GPU is visible.
            container["env"] = [e for e in container["env"] if e["name"] != "SAMPLESIZE_EXPECT_GPU"] + values["env"]
            container["resources"] = values["resources"]
            spec.pop("tolerations", None)
            spec.pop("nodeSelector", None)
            if container["name"] == "trial":
                doc["spec"]["completions"] = 2
                doc["spec"]["parallelism"] = 2
    kube.core.create_namespace({"metadata": {"name": namespace}})
    for doc in docs:
        utils.create_from_dict(kube.api_client, doc, namespace=namespace)
    trials, aggregate = names()
    jobs = wait_for_jobs(kube, namespace, [trials, aggregate], pod_runner)
    context = dump_status(kube.core, namespace)
    assert job_finished(jobs[trials]) == "Complete", context
    assert parse_indexes(jobs[trials].status.completed_indexes) == [0, 1], context
    assert job_finished(jobs[aggregate]) == "Complete", context
    summary = json.loads(read_object(gcs, bucket, "sweeps/plain/report/summary.json")[0])
    assert summary["complete"] is True and [p["index"] for p in summary["points"]] == [0, 1]


# ----------------------------------------------------------------- the test kubelet itself


CHECK_POD = r"""
import os, sys
problems = []
if (os.getuid(), os.getgid()) != (1000, 1000):
    problems.append(f"uid/gid {os.getuid()}/{os.getgid()}")
root = [line.split() for line in open("/proc/self/mounts") if line.split()[1] == "/"]
if not root or "ro" not in root[-1][3].split(","):
    problems.append(f"the root filesystem is not read-only: {root}")
open("/tmp/scratch", "w").write("ok")  # the emptyDir is writable
if open("/etc/check/answer").read() != "42":
    problems.append("configmap volume")
if os.environ.get("MY_NAMESPACE") != "runner-check" or os.environ.get("GREETING") != "hello runner-check":
    problems.append(f"env {os.environ.get('MY_NAMESPACE')!r} {os.environ.get('GREETING')!r}")
if open("/proc/self/status").read().count("CapEff:\t0000000000000000") != 1:
    problems.append("capabilities were not dropped")
print(problems)
sys.exit(3 if problems else 0)
"""


def test_pod_runner_runs_a_pod_as_its_spec_says(kube, pod_runner, docker_image):
    """The stand-in kubelet applies the securityContext, the downward API, `$(VAR)`, ConfigMap and emptyDir."""
    ns = "runner-check"
    kube.core.create_namespace({"metadata": {"name": ns}})
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "check"}, "data": {"answer": "42"}})
    locked = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}}

    def pod(name: str, security: dict, user: int) -> dict:
        return {"metadata": {"name": name}, "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": {"runAsUser": user, "runAsGroup": 1000, "fsGroup": 1000},
            "containers": [{
                "name": "check", "image": docker_image, "imagePullPolicy": "Never",
                "command": ["python", "-c", CHECK_POD], "securityContext": security,
                "env": [{"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "GREETING", "value": "hello $(MY_NAMESPACE)"}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/check", "readOnly": True},
                                 {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "check"}}, {"name": "tmp", "emptyDir": {}}],
        }}

    kube.core.create_namespaced_pod(ns, pod("locked-down", locked, 1000))
    kube.core.create_namespaced_pod(ns, pod("asks-for-root", locked, 0))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        phases = {p.metadata.name: p.status.phase for p in kube.core.list_namespaced_pod(ns).items}
        if all(phase in ("Succeeded", "Failed") for phase in phases.values()):
            break
        time.sleep(1)
    locked_pod = kube.core.read_namespaced_pod("locked-down", ns)
    assert locked_pod.status.phase == "Succeeded", pod_runner.logs("locked-down")
    root_pod = kube.core.read_namespaced_pod("asks-for-root", ns)
    assert root_pod.status.phase == "Failed"  # runAsNonRoot with runAsUser 0 never starts
    assert root_pod.status.container_statuses[0].state.terminated.reason == "CreateContainerError"
    pod_runner.errors[:] = [e for e in pod_runner.errors if "asks-for-root" not in e]
