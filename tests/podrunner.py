"""A test pod runner that plays the kubelet (and the scheduler) for the controlplane tests.

Test code, not part of the product. It gives a real kube-apiserver and Job controller
real pods to act on, with real exit codes, by running each pod's container with its
real image under Docker:

- registers one Node and binds each pending pod to it (at most `max_running` pods run
  at once; the rest stay Pending, as on a full node);
- runs the container with `docker run --network host`, so it reaches the API server
  and the GCS emulator on 127.0.0.1, resolving what the kubelet resolves:
  - env: plain values, `$(VAR)` references, and the downward API (`fieldRef`), which is
    how the Job controller hands out `JOB_COMPLETION_INDEX`; configMapKeyRef;
    KUBERNETES_SERVICE_HOST/PORT point at the API server;
  - volumes: ConfigMap, emptyDir, and projected volumes (a service-account token from
    the TokenRequest API bound to the pod, the `kube-root-ca.crt` ConfigMap, the
    namespace), which the ServiceAccount admission plugin adds to pods whose token is
    mounted; a pod that mounts none of these gets none;
  - securityContext: runAsUser/runAsGroup/fsGroup, runAsNonRoot, readOnlyRootFilesystem,
    capabilities.drop, allowPrivilegeEscalation; a memory limit becomes `--memory`;
- reports phase, start and the container's exit code back (Running, then Succeeded or
  Failed with `state.terminated.exitCode`), so the Job controller's podFailurePolicy
  sees what it would see on a node;
- a deleted pod (a Job deletion through the garbage collector, or an eviction, whose
  DisruptionTarget condition the API server adds) has its container stopped with
  SIGTERM and the pod's grace period, its final status reported, and is then removed,
  as the kubelet does.

Fields it does not know (probes, GPUs, tolerations, affinity...) are ignored, so the
chart can grow without breaking it. `logs(pod_name)` returns a finished container's
output, `exit_codes` its exit code and `ended_at` when it ended, also after the pod is gone.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "podrunner"
POLL_S = 0.5
LABEL = "samplesize-podrunner"  # on every container this runner starts, for cleanup
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class NotReady(Exception):
    """A pod's volume cannot be set up yet (e.g. its ConfigMap does not exist): try again later."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`, the rest is kept."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def field_value(pod: Any, path: str) -> str:
    """The downward API's fieldRef paths that pods use."""
    meta = pod.metadata
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return ((meta.labels if m.group(1) == "labels" else meta.annotations) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.name, "metadata.namespace": meta.namespace, "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name, "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
    }
    if path not in simple:
        raise ValueError(f"fieldRef {path!r} is not supported by the test pod runner")
    return simple[path] or ""


@dataclass
class Running:
    pod_name: str
    namespace: str
    uid: str
    container: str  # docker container name
    started: datetime.datetime
    stopping: bool = False


class PodRunner:
    """Runs the pods of a control plane under Docker; `start()` / `stop()`."""

    def __init__(self, api_client: Any, api_host: str, api_port: int, workdir: Path, *, docker: str = "docker",
                 max_running: int = 2):
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.api_host, self.api_port = api_host, api_port
        self.workdir = Path(workdir)
        self.docker = docker
        self.max_running = max_running
        self.run_id = uuid.uuid4().hex[:8]
        self._running: dict[str, Running] = {}  # by pod uid
        self._finished: set[str] = set()  # pod uids whose container ran and was reported
        self._logs: dict[str, str] = {}  # pod name -> container output
        self.exit_codes: dict[str, int] = {}  # pod name -> container exit code, kept after the pod is gone
        self.ended_at: dict[str, float] = {}  # pod name -> time.monotonic() when its container ended
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []  # problems a test should see (e.g. a pod it could not run)

    # ---------------------------------------------------------- lifecycle

    def start(self) -> "PodRunner":
        self._register_node()
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        ids = subprocess.run([self.docker, "ps", "-aq", "--filter", f"label={LABEL}={self.run_id}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([self.docker, "rm", "-f", *ids], capture_output=True)

    def logs(self, pod_name: str) -> str:
        with self._lock:
            return self._logs.get(pod_name, "")

    def _register_node(self) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        node = client.V1Node(metadata=client.V1ObjectMeta(name=NODE_NAME, labels={"kubernetes.io/hostname": NODE_NAME}))
        try:
            self.core.create_node(node)
        except ApiException as exc:
            if exc.status != 409:
                raise
        status = {"status": {
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "PodRunnerReady",
                            "message": "the test pod runner runs pods under Docker",
                            "lastHeartbeatTime": _now().isoformat(), "lastTransitionTime": _now().isoformat()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }}
        self.core.patch_node_status(NODE_NAME, status, _content_type=STRATEGIC_MERGE)

    # ---------------------------------------------------------- main loop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:  # noqa: BLE001 - keep running; tests read `errors`
                self.errors.append(f"sync: {type(exc).__name__}: {exc}")
            self._stop.wait(POLL_S)

    def _sync(self) -> None:
        pods = self.core.list_pod_for_all_namespaces().items
        pods.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
        for pod in pods:
            uid = pod.metadata.uid
            if pod.spec.node_name not in (None, NODE_NAME):
                continue
            with self._lock:
                running = self._running.get(uid)
                n_running = len(self._running)
            if pod.metadata.deletion_timestamp is not None:
                if running is not None:
                    if not running.stopping:
                        running.stopping = True
                        grace = pod.metadata.deletion_grace_period_seconds or 0
                        threading.Thread(target=self._docker_stop, args=(running.container, grace), daemon=True).start()
                elif pod.spec.node_name == NODE_NAME and pod.metadata.deletion_grace_period_seconds != 0:
                    self._delete_now(pod)  # nothing runs (or ran and was reported): the kubelet's final delete
                continue
            if running is not None or uid in self._finished or pod.status.phase in ("Succeeded", "Failed"):
                continue
            if n_running >= self.max_running:
                continue
            if pod.spec.node_name is None:
                self._bind(pod)
            self._try_start(pod)

    def _bind(self, pod: Any) -> None:
        from kubernetes import client

        body = client.V1Binding(metadata=client.V1ObjectMeta(name=pod.metadata.name),
                                target=client.V1ObjectReference(api_version="v1", kind="Node", name=NODE_NAME))
        # _preload_content=False: the client cannot deserialize the Status that binding returns.
        self.core.create_namespaced_pod_binding(pod.metadata.name, pod.metadata.namespace, body, _preload_content=False)

    def _delete_now(self, pod: Any) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # ---------------------------------------------------------- one pod

    def _try_start(self, pod: Any) -> None:
        uid = pod.metadata.uid
        podname = f"{pod.metadata.namespace}/{pod.metadata.name}"
        try:
            args = self._docker_args(pod)
        except NotReady:
            return
        except Exception as exc:  # noqa: BLE001 - a pod we cannot run fails, as on a node
            self.errors.append(f"{podname}: {exc}")
            self._report_terminated(pod, 128, "CreateContainerError", str(exc), _now())
            with self._lock:
                self._finished.add(uid)
            return
        container = args[args.index("--name") + 1]
        started = _now()
        done = subprocess.run([self.docker, "run", "-d", *args], capture_output=True, text=True)
        if done.returncode != 0:
            self.errors.append(f"{podname}: docker run: {done.stderr.strip()}")
            self._report_terminated(pod, 128, "StartError", done.stderr.strip()[-500:], started)
            with self._lock:
                self._finished.add(uid)
            return
        running = Running(pod.metadata.name, pod.metadata.namespace, uid, container, started)
        with self._lock:
            self._running[uid] = running
        try:
            self._report_running(pod, started)
        finally:  # the container runs either way: always wait for it and report its end
            threading.Thread(target=self._wait_container, args=(running,), name=f"wait-{pod.metadata.name}",
                             daemon=True).start()

    def _wait_container(self, running: Running) -> None:
        done = subprocess.run([self.docker, "wait", running.container], capture_output=True, text=True)
        ended = time.monotonic()
        try:
            code = int(done.stdout.strip())
        except ValueError:
            code = 128
        finished = _now()
        logs = subprocess.run([self.docker, "logs", running.container], capture_output=True, text=True)
        with self._lock:
            self._logs[running.pod_name] = logs.stdout + logs.stderr
            self.exit_codes[running.pod_name] = code
            self.ended_at[running.pod_name] = ended
        subprocess.run([self.docker, "rm", "-f", running.container], capture_output=True)
        try:
            pod = self.core.read_namespaced_pod(running.pod_name, running.namespace)
            reason = "Completed" if code == 0 else "Error"
            self._report_terminated(pod, code, reason, "", running.started, finished)
            if pod.metadata.deletion_timestamp is not None:
                self._delete_now(pod)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{running.namespace}/{running.pod_name}: final status: {exc}")
        finally:
            with self._lock:
                self._running.pop(running.uid, None)
                self._finished.add(running.uid)

    def _docker_stop(self, container: str, grace: int) -> None:
        subprocess.run([self.docker, "stop", "-t", str(int(grace)), container], capture_output=True)

    # ---------------------------------------------------------- status

    def _write_status(self, pod: Any, phase: str, state: dict, started: datetime.datetime) -> None:
        """Patch the pod's status as the kubelet does.

        A strategic merge patch merges `conditions` by type, so conditions the API
        server set (DisruptionTarget on eviction) stay as they are.
        """
        c = pod.spec.containers[0]
        ready = "True" if phase == "Running" else "False"
        now = _now().isoformat()
        status = {
            "phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": started.isoformat(),
            "conditions": [{"type": t, "status": v, "lastTransitionTime": now}
                           for t, v in (("PodScheduled", "True"), ("Initialized", "True"),
                                        ("ContainersReady", ready), ("Ready", ready))],
            "containerStatuses": [{"name": c.name, "image": c.image, "imageID": "", "ready": phase == "Running",
                                   "started": phase == "Running", "restartCount": 0, "state": state}],
        }
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status},
                                              _content_type=STRATEGIC_MERGE)

    def _report_running(self, pod: Any, started: datetime.datetime) -> None:
        self._write_status(pod, "Running", {"running": {"startedAt": started.isoformat()}}, started)

    def _report_terminated(self, pod: Any, code: int, reason: str, message: str, started: datetime.datetime,
                           finished: datetime.datetime | None = None) -> None:
        state = {"terminated": {"exitCode": code, "reason": reason, "message": message or None,
                                "startedAt": started.isoformat(), "finishedAt": (finished or _now()).isoformat()}}
        self._write_status(pod, "Succeeded" if code == 0 else "Failed", state, started)

    # ---------------------------------------------------------- docker run

    def _docker_args(self, pod: Any) -> list[str]:
        spec = pod.spec
        if len(spec.containers) != 1 or spec.init_containers:
            raise ValueError("the test pod runner runs pods with exactly one container and no init containers")
        c = spec.containers[0]
        pod_dir = self.workdir / pod.metadata.uid
        env = self._env(pod, c)
        volumes = self._volumes(pod, pod_dir)  # may raise NotReady before anything is started
        name = f"k8s_{c.name}_{pod.metadata.name}_{pod.metadata.namespace}_{pod.metadata.uid[:8]}"[:120]
        args = ["--name", name, "--network", "host", "--label", f"{LABEL}={self.run_id}",
                "--label", f"io.kubernetes.pod.uid={pod.metadata.uid}"]
        args += self._security_args(pod, c)
        limits = (c.resources.limits if c.resources else None) or {}
        if "memory" in limits:
            args += ["--memory", str(_bytes(limits["memory"]))]
        for k, v in env.items():
            args += ["--env", f"{k}={v}"]
        for m in c.volume_mounts or []:
            if m.name not in volumes:
                raise ValueError(f"volumeMount {m.name!r} names no volume the test pod runner supports")
            host = volumes[m.name] / m.sub_path if m.sub_path else volumes[m.name]
            args += ["--volume", f"{host}:{m.mount_path}{':ro' if m.read_only else ''}"]
        if c.working_dir:
            args += ["--workdir", c.working_dir]
        command = [expand(a, env) for a in (c.command or [])]
        if command:
            args += ["--entrypoint", command[0]]
        args.append(c.image)
        args += command[1:]
        args += [expand(a, env) for a in (c.args or [])]
        return args

    def _env(self, pod: Any, c: Any) -> dict[str, str]:
        env = {"KUBERNETES_SERVICE_HOST": self.api_host, "KUBERNETES_SERVICE_PORT": str(self.api_port),
               "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port), "HOSTNAME": pod.metadata.name}
        for e in c.env or []:
            if e.value_from is None:
                env[e.name] = expand(e.value or "", env)
            elif e.value_from.field_ref is not None:
                env[e.name] = field_value(pod, e.value_from.field_ref.field_path)
            elif e.value_from.config_map_key_ref is not None:
                ref = e.value_from.config_map_key_ref
                env[e.name] = (self._config_map(pod.metadata.namespace, ref.name).data or {})[ref.key]
            else:
                raise ValueError(f"env {e.name}: only value, fieldRef and configMapKeyRef are supported")
        return env

    def _security_args(self, pod: Any, c: Any) -> list[str]:
        psc, sc = pod.spec.security_context, c.security_context

        def pick(attr: str):
            for ctx in (sc, psc):
                value = getattr(ctx, attr, None) if ctx is not None else None
                if value is not None:
                    return value
            return None

        args: list[str] = []
        user, group = pick("run_as_user"), pick("run_as_group")
        if pick("run_as_non_root") and user in (None, 0):
            # Without runAsUser the kubelet checks the image's numeric USER; the runner asks Docker.
            image_user = subprocess.run([self.docker, "image", "inspect", "--format", "{{.Config.User}}", c.image],
                                        capture_output=True, text=True).stdout.strip()
            if user == 0 or not image_user.split(":")[0].isdigit() or int(image_user.split(":")[0]) == 0:
                raise ValueError(f"container {c.name} has runAsNonRoot and would run as root "
                                 f"(runAsUser={user}, image user {image_user!r})")
        if user is not None:
            args += ["--user", f"{user}:{group if group is not None else 0}"]
        if psc is not None and psc.fs_group is not None:
            args += ["--group-add", str(psc.fs_group)]
        for g in (psc.supplemental_groups if psc is not None else None) or []:
            args += ["--group-add", str(g)]
        if sc is not None:
            if sc.read_only_root_filesystem:
                args.append("--read-only")
            if sc.allow_privilege_escalation is False:
                args += ["--security-opt", "no-new-privileges"]
            if sc.capabilities is not None:
                args += [a for cap in sc.capabilities.drop or [] for a in ("--cap-drop", cap)]
                args += [a for cap in sc.capabilities.add or [] for a in ("--cap-add", cap)]
            if sc.privileged:
                raise ValueError(f"container {c.name}: privileged containers are not run by the test pod runner")
        return args

    # ---------------------------------------------------------- volumes

    def _config_map(self, namespace: str, name: str) -> Any:
        from kubernetes.client.rest import ApiException

        try:
            return self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise NotReady(f"configmap {namespace}/{name} does not exist yet") from None
            raise

    def _volumes(self, pod: Any, pod_dir: Path) -> dict[str, Path]:
        """Host folders for the pod's volumes, filled as the kubelet would."""
        out: dict[str, Path] = {}
        staged: list[tuple[str, dict[str, tuple[bytes, int]]]] = []
        fs_group = pod.spec.security_context.fs_group if pod.spec.security_context else None
        for v in pod.spec.volumes or []:
            if v.config_map is not None:
                cm = self._config_map(pod.metadata.namespace, v.config_map.name)
                staged.append((v.name, self._config_map_files(cm, v.config_map.items, v.config_map.default_mode)))
            elif v.projected is not None:
                staged.append((v.name, self._projected_files(pod, v.projected)))
            elif v.empty_dir is not None:
                staged.append((v.name, {}))
            elif v.secret is not None or v.persistent_volume_claim is not None or v.host_path is not None:
                raise ValueError(f"volume {v.name}: only configMap, emptyDir and projected volumes are supported")
            # other volume kinds are ignored unless a container mounts them (checked by the caller)
        for name, files in staged:
            folder = pod_dir / "volumes" / name
            folder.mkdir(parents=True, exist_ok=True)
            # Writable by the pod's user, like an emptyDir owned by fsGroup: the runner is
            # root and the container's uid need not exist here.
            folder.chmod(0o1777 if not files else 0o755)
            for rel, (data, mode) in files.items():
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                path.chmod(mode)
                if fs_group is not None:
                    shutil.chown(path, group=fs_group)
            out[name] = folder
        return out

    @staticmethod
    def _config_map_files(cm: Any, items: Any, default_mode: int | None) -> dict[str, tuple[bytes, int]]:
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        mode = default_mode if default_mode is not None else 0o644
        if not items:
            return {k: (v, mode) for k, v in data.items()}
        return {i.path: (data[i.key], i.mode if i.mode is not None else mode) for i in items}

    def _projected_files(self, pod: Any, projected: Any) -> dict[str, tuple[bytes, int]]:
        mode = projected.default_mode if projected.default_mode is not None else 0o644
        files: dict[str, tuple[bytes, int]] = {}
        for src in projected.sources or []:
            if src.service_account_token is not None:
                t = src.service_account_token
                files[t.path] = (self._token(pod, t.audience, t.expiration_seconds).encode(), mode)
            elif src.config_map is not None:
                cm = self._config_map(pod.metadata.namespace, src.config_map.name)
                files.update(self._config_map_files(cm, src.config_map.items, mode))
            elif src.downward_api is not None:
                for item in src.downward_api.items or []:
                    if item.field_ref is None:
                        raise ValueError("projected downwardAPI: only fieldRef items are supported")
                    files[item.path] = (field_value(pod, item.field_ref.field_path).encode(), mode)
            else:
                raise ValueError("projected volume: only serviceAccountToken, configMap and downwardAPI are supported")
        return files

    def _token(self, pod: Any, audience: str | None, expiration: int | None) -> str:
        """A token for the pod's service account, bound to the pod, from the TokenRequest API."""
        from kubernetes import client

        spec = client.V1TokenRequestSpec(
            audiences=[audience] if audience else [], expiration_seconds=expiration or 3607,
            bound_object_ref=client.V1BoundObjectReference(api_version="v1", kind="Pod", name=pod.metadata.name,
                                                           uid=pod.metadata.uid))
        resp = self.core.create_namespaced_service_account_token(
            pod.spec.service_account_name or "default", pod.metadata.namespace, client.AuthenticationV1TokenRequest(spec=spec))
        return resp.status.token


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _bytes(quantity: str) -> int:
    """A memory quantity ("512Mi", "2G", "1000") in bytes."""
    q = str(quantity)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * _UNITS[suffix])
    return int(float(q))


def dump_status(core: Any, namespace: str) -> str:
    """Pods of a namespace with phase and exit codes, for assertion messages."""
    rows = []
    for p in core.list_namespaced_pod(namespace).items:
        codes = [cs.state.terminated.exit_code for cs in (p.status.container_statuses or [])
                 if cs.state and cs.state.terminated]
        rows.append({"pod": p.metadata.name, "phase": p.status.phase, "exit": codes,
                     "index": (p.metadata.annotations or {}).get("batch.kubernetes.io/job-completion-index")})
    return json.dumps(rows, indent=1)
