"""Wait for the trials Job through the Kubernetes API.

The aggregation Job starts together with the trials Job and calls
`wait_for_job` until the trials Job is Complete or Failed. `job_outcome` reads
a Job object (a `kubernetes.client.V1Job`) into a small `JobOutcome`; it is
pure, so the wait logic is tested on real client model objects.

Only `get` on one Job is used, which is all the chart's Role grants (`get` on
the release's trials Job, by `resourceNames`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import AccessError, ConfigError, TransientError

COMPLETE = "complete"
FAILED = "failed"

# API statuses worth retrying: throttling, server-side trouble, and 0 (the
# client's status for a connection that never got a response).
_TRANSIENT_STATUSES = {0, 408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class JobOutcome:
    """How a finished Job ended.

    state: "complete" or "failed".
    completed_indexes / failed_indexes: sorted completion indexes.
    message: the Job condition's reason and message, for logs and the report.
    """

    state: str
    completed_indexes: list[int] = field(default_factory=list)
    failed_indexes: list[int] = field(default_factory=list)
    message: str = ""

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE


def parse_indexes(text: str | None) -> list[int]:
    """Parse the Job status index notation ("0-2,5,7-8") into a sorted list."""
    if not text:
        return []
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            if sep:
                out.update(range(int(low), int(high) + 1))
            else:
                out.add(int(low))
        except ValueError:
            raise ValueError(f"not a Job index list: {text!r} (expected e.g. '0-2,5')") from None
    return sorted(out)


def _condition(job: Any, kind: str) -> Any | None:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == kind and str(cond.status) == "True":
            return cond
    return None


def is_suspended(job: Any) -> bool:
    """True while the Job is suspended (e.g. waiting for Kueue to admit it)."""
    if _condition(job, "Suspended") is not None:
        return True
    return bool(job.spec and job.spec.suspend)


def job_outcome(job: Any) -> JobOutcome | None:
    """The outcome of a finished Job, or None while it runs or is suspended.

    A Job is finished once it carries a Complete or Failed condition with
    status True. Failed covers failed indexes beyond maxFailedIndexes, indexes
    that failed when the rest finished, the backoff limit and the deadline;
    the condition's reason says which.
    """
    status = job.status
    completed = parse_indexes(status.completed_indexes if status else None)
    failed = parse_indexes(status.failed_indexes if status else None)
    for kind, state in (("Complete", COMPLETE), ("Failed", FAILED)):
        cond = _condition(job, kind)
        if cond is not None:
            message = ": ".join(p for p in (cond.reason, cond.message) if p)
            return JobOutcome(state, completed, failed, message or kind)
    return None


def _progress(job: Any) -> str:
    status = job.status
    total = job.spec.completions if job.spec and job.spec.completions is not None else "?"
    done = len(parse_indexes(status.completed_indexes if status else None))
    failed = len(parse_indexes(status.failed_indexes if status else None))
    active = (status.active if status else None) or 0
    ready = status.ready if status else None
    if ready is None:  # an API server that does not report ready pods
        return f"{done}/{total} indexes completed, {failed} failed, {active} active"
    # active counts pods still pulling the image or waiting for a node; only ready ones run.
    starting = max(active - ready, 0)
    waiting = f", {starting} starting (pulling the image or waiting for a node)" if starting else ""
    return f"{done}/{total} indexes completed, {failed} failed, {ready} running{waiting}"


def load_batch_api() -> Any:
    """A BatchV1Api using in-cluster config, or the local kubeconfig outside a cluster."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise ConfigError(
                "cannot reach a Kubernetes API: not running in a cluster and no usable kubeconfig "
                f"({exc}); run the aggregator in the cluster or point KUBECONFIG at one"
            ) from None
    return client.BatchV1Api()


def _api_status(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ApiException, else None."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return int(exc.status or 0)
    return None


def _is_transient(exc: BaseException) -> bool:
    import urllib3.exceptions

    status = _api_status(exc)
    if status is not None:
        return status in _TRANSIENT_STATUSES
    return isinstance(exc, (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError))


def wait_for_job(
    name: str,
    namespace: str,
    *,
    batch_api: Any = None,
    poll_seconds: float = 15,
    timeout_seconds: float | None = None,
    log: Callable[[str], Any] = print,
    max_transient_errors: int = 20,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobOutcome:
    """Poll the trials Job until it is Complete or Failed, logging progress whenever it changes.

    Args:
        name: the Job's name.
        namespace: its namespace.
        batch_api: a `kubernetes.client.BatchV1Api`. Defaults to one built from the in-cluster
            (or kubeconfig) credentials.
        poll_seconds: seconds between polls. Defaults to 15.
        timeout_seconds: give up after this long. Defaults to never.
        log: where progress lines go. Defaults to `print`.
        max_transient_errors: transient API errors in a row before giving up. Defaults to 20.
        sleep, clock: injected for tests. Default to `time.sleep` and `time.monotonic`.

    Returns:
        A `JobOutcome`: the final state and the failed indexes.

    Raises:
        ConfigError: the Job does not exist (404).
        AccessError: the service account may not read it (401/403).
        TransientError: `max_transient_errors` in a row, or past `timeout_seconds` (exit 75,
            so Kubernetes retries the aggregator pod).
    """
    api = batch_api if batch_api is not None else load_batch_api()
    started = clock()
    errors_in_row = 0
    last_line = None
    suspended_noted = False
    while True:
        try:
            job = api.read_namespaced_job(name=name, namespace=namespace)
        except Exception as exc:  # noqa: BLE001 - sorted below, re-raised if unknown
            _raise_unless_transient(exc, name, namespace)
            errors_in_row += 1
            if errors_in_row >= max_transient_errors:
                raise TransientError(
                    f"the Kubernetes API failed {errors_in_row} times in a row while reading Job {name!r}: {exc}"
                ) from None
            log(f"reading Job {namespace}/{name} failed ({_short(exc)}); retrying in {poll_seconds:g}s")
        else:
            errors_in_row = 0
            outcome = job_outcome(job)
            if outcome is not None:
                log(
                    f"Job {namespace}/{name} {outcome.state}: {len(outcome.completed_indexes)} indexes completed, "
                    f"{len(outcome.failed_indexes)} failed"
                    + (f" ({outcome.message})" if outcome.message else "")
                )
                return outcome
            if is_suspended(job):
                if not suspended_noted:
                    log(
                        f"Job {namespace}/{name} is suspended; waiting for Kueue (or whoever suspended it) to "
                        "admit it (kubectl get workloads)"
                    )
                    suspended_noted = True
            else:
                suspended_noted = False
                line = f"Job {namespace}/{name}: {_progress(job)}"
                if line != last_line:
                    log(line)
                    last_line = line
        if timeout_seconds is not None and clock() - started >= timeout_seconds:
            raise TransientError(f"Job {namespace}/{name} did not finish within {timeout_seconds:g}s")
        sleep(poll_seconds)


def _raise_unless_transient(exc: Exception, name: str, namespace: str) -> None:
    """Raise the user-facing error for a failed read of the Job, unless retrying may help."""
    status = _api_status(exc)
    if status == 404:
        raise ConfigError(
            f"Job {name!r} not found in namespace {namespace!r}: check --wait-for-job and --namespace "
            "(the chart passes the trials Job of the same release); a finished Job may also have been "
            "deleted by ttlSecondsAfterFinished"
        ) from None
    if status in (401, 403):
        raise AccessError(
            f"not allowed to read Job {name!r} in namespace {namespace!r} (HTTP {status}): the pod's "
            "service account needs get on batch/jobs there; the chart's Role and RoleBinding grant it "
            "(rbac.create=true), or ask a cluster admin for an equivalent binding"
        ) from None
    if not _is_transient(exc):
        raise exc


def _short(exc: BaseException) -> str:
    status = _api_status(exc)
    if status is not None:
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
