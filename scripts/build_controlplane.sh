#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager) from
# the Go modules pinned in tests/controlplane/go.mod, into .ci-work/controlplane/bin/.
#
# Idempotent: Go's module and build caches (~/go/pkg/mod, ~/.cache/go-build) make a
# second run take seconds; a cold build of all three on 2 cores takes the time noted
# in docs/controlplane.md. Needs Go (>= the go line in go.mod) and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "build_controlplane.sh: no go on PATH (install Go 1.26 or later)" >&2; exit 1; }

out="$PWD/.ci-work/controlplane/bin"
mkdir -p "$out"
cd tests/controlplane
start=$(date +%s)
# The version the binaries report (helm checks the chart's kubeVersion against it):
# upstream's release build stamps it with -X; without it the server says v0.0.0.
version=$(go list -mod=readonly -m -f '{{.Version}}' k8s.io/kubernetes)
minor=${version#v*.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp="$stamp -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
# -mod=readonly: go.sum pins every module; a build never rewrites go.mod.
# -s -w: no symbol tables, which also makes linking the large binaries faster.
go build -mod=readonly -ldflags="-s -w$stamp" -o "$out/" ./cmd/...
echo "build_controlplane.sh: built $(ls "$out" | tr '\n' ' ')in $(( $(date +%s) - start ))s -> $out" >&2
