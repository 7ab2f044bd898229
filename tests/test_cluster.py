"""The aggregator's wait for the trials Job, on real kubernetes client models.

No API server can run here, so the Job objects are real `kubernetes.client`
models (V1Job, V1JobStatus, V1JobCondition) shaped like what the API returns
for each state, and only `read_namespaced_job` is faked.
"""

from __future__ import annotations

import pytest
from kubernetes.client import V1Job, V1JobCondition, V1JobSpec, V1JobStatus, V1ObjectMeta, V1PodTemplateSpec
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from samplesize import cluster
from samplesize.cluster import JobOutcome, job_outcome, parse_indexes, wait_for_job
from samplesize.errors import EXIT_CONFIG, EXIT_PERMISSION, EXIT_TRANSIENT, AccessError, ConfigError, TransientError

NAME, NS = "sweep-samplesize-trials", "ml"


def make_job(*, completions=15, suspend=False, active=0, ready=None, completed="", failed="", conditions=()):
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(name=NAME, namespace=NS),
        spec=V1JobSpec(
            completions=completions,
            completion_mode="Indexed",
            suspend=suspend,
            backoff_limit_per_index=2,
            template=V1PodTemplateSpec(),
        ),
        status=V1JobStatus(
            active=active or None,
            ready=active if ready is None else ready,
            completed_indexes=completed or None,
            failed_indexes=failed or None,
            conditions=[V1JobCondition(type=t, status=s, reason=r, message=m) for t, s, r, m in conditions] or None,
        ),
    )


RUNNING = make_job(active=4, completed="0-2")
COMPLETE = make_job(
    completed="0-14",
    conditions=[
        ("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
    ],
)
FAILED_INDEXES = make_job(
    completed="0-2,4-12,14",
    failed="3,13",
    conditions=[
        ("FailureTarget", "True", "FailedIndexes", "Job has failed indexes"),
        ("Failed", "True", "FailedIndexes", "Job has failed indexes"),
    ],
)
SUSPENDED = make_job(
    suspend=True,
    conditions=[("Suspended", "True", "JobSuspended", "Job suspended")],
)
DEADLINE = make_job(
    completed="0-5",
    conditions=[("Failed", "True", "DeadlineExceeded", "Job was active longer than specified deadline")],
)


class FakeBatchApi:
    """Returns (or raises) the given items in order, repeating the last one."""

    def __init__(self, *items):
        self.items = list(items)
        self.calls = []

    def read_namespaced_job(self, name, namespace):
        self.calls.append((name, namespace))
        item = self.items.pop(0) if len(self.items) > 1 else self.items[0]
        if isinstance(item, BaseException):
            raise item
        return item


def wait(api, **kw):
    logs = []
    kw.setdefault("poll_seconds", 15)
    outcome = wait_for_job(NAME, NS, batch_api=api, log=logs.append, sleep=lambda s: None, **kw)
    return outcome, logs


# ------------------------------------------------------------- job_outcome


def test_index_lists_parse_ranges_and_singles():
    assert parse_indexes("0-2,5") == [0, 1, 2, 5]
    assert parse_indexes("7") == [7]
    assert parse_indexes("") == []
    assert parse_indexes(None) == []
    with pytest.raises(ValueError, match="0-2,5"):
        parse_indexes("a-b")


def test_running_job_has_no_outcome_yet():
    assert job_outcome(RUNNING) is None


def test_suspended_job_has_no_outcome_yet():
    assert job_outcome(SUSPENDED) is None
    assert cluster.is_suspended(SUSPENDED)
    assert cluster.is_suspended(make_job(suspend=True))  # Kueue's suspend before the condition appears


def test_complete_job_lists_every_completed_index():
    outcome = job_outcome(COMPLETE)
    assert outcome == JobOutcome("complete", list(range(15)), [], outcome.message)
    assert outcome.complete
    assert "CompletionsReached" in outcome.message


def test_job_failed_with_failed_indexes_names_them():
    outcome = job_outcome(FAILED_INDEXES)
    assert outcome.state == "failed"
    assert not outcome.complete
    assert outcome.failed_indexes == [3, 13]
    assert outcome.completed_indexes == [0, 1, 2, *range(4, 13), 14]
    assert "FailedIndexes" in outcome.message


def test_failure_target_alone_is_not_yet_an_outcome():
    # Since 1.31 FailureTarget comes first and Failed only once every pod has
    # stopped; a pod still terminating might still write its result.
    job = make_job(failed="3", conditions=[("FailureTarget", "True", "FailedIndexes", "Job has failed indexes")])
    assert job_outcome(job) is None


def test_job_past_its_deadline_is_failed_with_the_reason():
    outcome = job_outcome(DEADLINE)
    assert outcome.state == "failed"
    assert outcome.completed_indexes == list(range(6))
    assert outcome.failed_indexes == []
    assert outcome.message.startswith("DeadlineExceeded")


def test_condition_with_status_false_is_ignored():
    job = make_job(active=1, conditions=[("Complete", "False", None, None), ("Suspended", "False", "JobResumed", "")])
    assert job_outcome(job) is None
    assert not cluster.is_suspended(job)


# ------------------------------------------------------------ wait_for_job


def test_wait_returns_once_the_job_completes_and_logs_progress():
    api = FakeBatchApi(RUNNING, RUNNING, make_job(active=4, completed="0-9"), COMPLETE)
    outcome, logs = wait(api)
    assert outcome.state == "complete"
    assert api.calls == [(NAME, NS)] * 4
    progress = [line for line in logs if "indexes completed" in line]
    # Logged when progress changes, not on every poll.
    assert progress[0].endswith("3/15 indexes completed, 0 failed, 4 running")
    assert progress[1].endswith("10/15 indexes completed, 0 failed, 4 running")
    assert "complete" in logs[-1] and "15 indexes completed" in logs[-1]


def test_wait_returns_failed_outcome_with_failed_indexes():
    outcome, logs = wait(FakeBatchApi(RUNNING, FAILED_INDEXES))
    assert outcome.state == "failed"
    assert outcome.failed_indexes == [3, 13]
    assert "2 failed" in logs[-1]


def test_wait_notes_suspension_by_kueue_once_then_follows_the_admitted_job():
    outcome, logs = wait(FakeBatchApi(SUSPENDED, SUSPENDED, SUSPENDED, RUNNING, COMPLETE))
    assert outcome.complete
    notices = [line for line in logs if "suspended" in line]
    assert len(notices) == 1 and "Kueue" in notices[0]


def test_wait_sleeps_poll_seconds_between_reads():
    slept = []
    api = FakeBatchApi(RUNNING, RUNNING, COMPLETE)
    wait_for_job(NAME, NS, batch_api=api, poll_seconds=7, log=lambda _: None, sleep=slept.append)
    assert slept == [7, 7]


def test_transient_api_errors_are_retried():
    api = FakeBatchApi(
        ApiException(status=503, reason="Service Unavailable"),
        ApiException(status=429, reason="Too Many Requests"),
        MaxRetryError(None, "/apis/batch/v1", "connection refused"),
        ConnectionResetError("reset"),
        COMPLETE,
    )
    outcome, logs = wait(api)
    assert outcome.complete
    assert sum("retrying" in line for line in logs) == 4


def test_endless_transient_errors_give_up_with_the_transient_exit_code():
    api = FakeBatchApi(ApiException(status=500, reason="Internal Server Error"))
    with pytest.raises(TransientError, match="5 times in a row") as err:
        wait(api, max_transient_errors=5)
    assert err.value.exit_code == EXIT_TRANSIENT
    assert len(api.calls) == 5


def test_missing_job_fails_at_once_naming_job_and_namespace():
    api = FakeBatchApi(ApiException(status=404, reason="Not Found"))
    with pytest.raises(ConfigError, match=f"'{NAME}' not found in namespace '{NS}'") as err:
        wait(api)
    assert err.value.exit_code == EXIT_CONFIG
    assert len(api.calls) == 1


def test_forbidden_read_fails_at_once_pointing_at_rbac():
    api = FakeBatchApi(ApiException(status=403, reason="Forbidden"))
    with pytest.raises(AccessError, match="rbac.create") as err:
        wait(api)
    assert err.value.exit_code == EXIT_PERMISSION
    assert len(api.calls) == 1


def test_unexpected_errors_are_not_swallowed():
    api = FakeBatchApi(ApiException(status=422, reason="Unprocessable Entity"))
    with pytest.raises(ApiException):
        wait(api)


def test_wait_gives_up_after_timeout_seconds():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    api = FakeBatchApi(RUNNING)
    with pytest.raises(TransientError, match="did not finish within 60s") as err:
        wait_for_job(
            NAME, NS, batch_api=api, poll_seconds=15, timeout_seconds=60,
            log=lambda _: None, sleep=sleep, clock=lambda: now[0],
        )
    assert err.value.exit_code == EXIT_TRANSIENT
    assert len(api.calls) == 5  # reads at t = 0, 15, 30, 45, 60


def test_without_cluster_or_kubeconfig_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="cannot reach a Kubernetes API") as err:
        cluster.load_batch_api()
    assert err.value.exit_code == EXIT_CONFIG


def test_progress_counts_ready_pods_as_running_and_the_rest_as_starting():
    # status.active includes pods still pulling the image or waiting for a GPU node.
    api = FakeBatchApi(make_job(active=4, ready=1, completed="0-2"), COMPLETE)
    _, logs = wait(api)
    line = next(line for line in logs if "indexes completed" in line)
    assert line.endswith("3/15 indexes completed, 0 failed, 1 running, 3 starting (pulling the image or waiting for a node)")
