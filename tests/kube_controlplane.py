"""A real Kubernetes control plane on loopback for the `controlplane` tests.

etcd, kube-apiserver and kube-controller-manager are upstream's, built from the Go
module proxy by scripts/build_controlplane.sh into .ci-work/controlplane/bin/. This
module starts them the way a cluster's control plane runs, only smaller:

- etcd on 127.0.0.1 with a data folder under the work directory;
- kube-apiserver on 127.0.0.1 over TLS with a self-signed CA, client-certificate
  authentication, `--authorization-mode=Node,RBAC` and service-account token signing
  (so TokenRequest, bound tokens and the RBAC authorizer are the real ones);
- kube-controller-manager with only the controllers a sweep needs: Job, garbage
  collector, TTL-after-finished, service-account tokens, the service-account and
  root-CA publishers (so every namespace gets `default` and `kube-root-ca.crt`).

There is no scheduler and no kubelet: tests/podrunner.py plays the node.

`ControlPlane(workdir).start()` returns once the API is ready and the controllers run;
`kubeconfig` is then a cluster-admin kubeconfig for helm and the `kubernetes` client.
Run it by hand with `python tests/kube_controlplane.py [WORKDIR]` (Ctrl-C stops it).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN_DIR = REPO / ".ci-work" / "controlplane" / "bin"
BUILD_SCRIPT = REPO / "scripts" / "build_controlplane.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
START_TIMEOUT_S = 300.0  # a cold kube-apiserver on a busy 2-core machine takes a minute or more
SERVICE_CIDR = "10.96.0.0/24"  # only allocates ClusterIPs; nothing routes to it
CONTROLLERS = ",".join([
    "job-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
])


class ControlPlaneUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_binaries() -> Path:
    """Build the three binaries, or reuse them where no Go is installed; returns their folder.

    With Go's caches warm the build script takes seconds, so it always runs when it can:
    binaries from an older go.mod are never used by mistake.
    """
    have_go = shutil.which("go") is not None or Path("/usr/local/go/bin/go").is_file()
    if not have_go and all((BIN_DIR / name).is_file() for name in BINARIES):
        return BIN_DIR
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise ControlPlaneUnavailable(
            f"scripts/build_controlplane.sh exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return BIN_DIR


# ----------------------------------------------------------------- certificates


def _key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert(subject_cn: str, key, *, issuer=None, issuer_key=None, org: str | None = None, ca: bool = False,
          server_names: tuple[str, ...] = (), server_ips: tuple[str, ...] = ()):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    subject = x509.Name(attrs)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_names or server_ips else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server_names or server_ips:
        sans = [x509.DNSName(n) for n in server_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def write_pki(pki: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert and the service-account key pair."""
    from cryptography.hazmat.primitives import serialization

    pki.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert("samplesize-test-ca", ca_key, ca=True)
    server_key = _key()
    server = _cert("kube-apiserver", server_key, issuer=ca, issuer_key=ca_key,
                   server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
                   server_ips=("127.0.0.1", "10.96.0.1"))
    admin_key = _key()
    # O=system:masters is the cluster-admin group that RBAC's bootstrap policy binds.
    admin = _cert("samplesize-test-admin", admin_key, issuer=ca, issuer_key=ca_key, org="system:masters")
    sa_key = _key()
    files = {
        "ca.crt": _pem_cert(ca), "ca.key": _pem_key(ca_key),
        "apiserver.crt": _pem_cert(server), "apiserver.key": _pem_key(server_key),
        "admin.crt": _pem_cert(admin), "admin.key": _pem_key(admin_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    for name, data in files.items():
        (pki / name).write_bytes(data)
        (pki / name).chmod(0o600)


def kubeconfig_text(server: str, pki: Path) -> str:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: controlplane
  cluster:
    server: {server}
    certificate-authority-data: {b64("ca.crt")}
users:
- name: admin
  user:
    client-certificate-data: {b64("admin.crt")}
    client-key-data: {b64("admin.key")}
contexts:
- name: admin@controlplane
  context: {{cluster: controlplane, user: admin}}
current-context: admin@controlplane
"""


# ----------------------------------------------------------------- processes


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager under `workdir`; see the module docstring."""

    def __init__(self, workdir: Path, bin_dir: Path | None = None):
        self.workdir = Path(workdir)
        self.bin_dir = bin_dir or BIN_DIR
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.etcd_port, self.etcd_peer_port, self.api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.ca_file = self.pki / "ca.crt"
        self._procs: dict[str, subprocess.Popen] = {}

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return self.log(name).read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _spawn(self, name: str, args: list[str]) -> None:
        binary = self.bin_dir / name
        if not binary.is_file():
            raise ControlPlaneUnavailable(f"{binary} is missing: run scripts/build_controlplane.sh")
        with open(self.log(name), "ab") as log:
            # start_new_session: Ctrl-C in a terminal stops pytest, and stop() then stops these.
            self._procs[name] = subprocess.Popen([str(binary), *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                                 start_new_session=True)

    def start(self) -> "ControlPlane":
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_pki(self.pki)
        self.kubeconfig.write_text(kubeconfig_text(self.server, self.pki))
        self.kubeconfig.chmod(0o600)
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn("etcd", [
            "--name", "controlplane", "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
            "--initial-cluster", f"controlplane=http://127.0.0.1:{self.etcd_peer_port}",
            "--log-level", "warn",
        ])
        self._wait(lambda: self._http_ok(f"{etcd_url}/health"), "etcd", 60)
        p = self.pki
        self._spawn("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The endpoints reconciler refuses a loopback address for the `kubernetes`
            # Service; pods here reach the API through KUBERNETES_SERVICE_HOST instead.
            "--endpoint-reconciler-type=none",
            "--v=1",
        ])
        self._wait(self._api_ready, "kube-apiserver", START_TIMEOUT_S)
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={self.kubeconfig}", f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--v=1",
        ])
        self._wait(self._controllers_ready, "kube-controller-manager", START_TIMEOUT_S)
        return self

    def _wait(self, ready, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc_name, proc in self._procs.items():
                if proc.poll() is not None:
                    self.stop()
                    raise ControlPlaneUnavailable(
                        f"{proc_name} exited with {proc.returncode} while waiting for {name}:\n{self.log_tail(proc_name)}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001 - not up yet; the deadline reports it
                pass
            time.sleep(0.5)
        self.stop()
        raise ControlPlaneUnavailable(f"{name} was not ready within {timeout:g}s:\n{self.log_tail(name)}")

    @staticmethod
    def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return resp.status == 200

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _api_ready(self) -> bool:
        return self._http_ok(f"{self.server}/readyz", self.ssl_context())

    def _controllers_ready(self) -> bool:
        # The service-account and root-CA controllers fill every namespace once they run.
        api = self.core_api()
        api.read_namespaced_service_account("default", "default")
        api.read_namespaced_config_map("kube-root-ca.crt", "default")
        return True

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))

    def core_api(self):
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    def stop(self) -> None:
        """Stop the controllers first, then the API server, then etcd."""
        for name in reversed(list(self._procs)):
            proc = self._procs.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else REPO / ".ci-work" / "controlplane" / "run"
    build_binaries()
    plane = ControlPlane(workdir).start()
    print(f"control plane up: {plane.server}\nexport KUBECONFIG={plane.kubeconfig}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
