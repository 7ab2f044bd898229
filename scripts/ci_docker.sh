#!/usr/bin/env bash
# Build the samplesize image in CI, offline, with the real Dockerfile.
#
# No registry image can be pulled here, so this script:
#   1. installs Debian's docker.io and debootstrap (if missing);
#   2. starts a private dockerd (own data root, exec root, pidfile and socket
#      under $SAMPLESIZE_DOCKER_WORK, so it clashes with no other daemon);
#   3. makes the base image samplesize-base:ci with debootstrap (bookworm,
#      python3.11) and `docker import` (if missing);
#   4. prepares a wheelhouse on the host (.ci-work/wheels, inside the build
#      context and gitignored): every file of docker/requirements-cpu.lock for
#      Linux x86_64 / CPython 3.11, hash-checked, so the offline build installs
#      exactly what a networked one would;
#   5. builds samplesize:ci with `--network none`, changing only the base image
#      and the TensorFlow extra, with BuildKit where the client allows.
#
# Every step is skipped when its product already exists, so rerunning is cheap.
# Progress goes to stderr; stdout is one line, `export DOCKER_HOST=...`, so
# `eval "$(scripts/ci_docker.sh)"` works (the line is also in $work/env).
#
# Environment knobs (all optional):
#   SAMPLESIZE_DOCKER_WORK   work dir (default: <repo>/.ci-work/docker)
#   SAMPLESIZE_IMAGE         image tag to build (default: samplesize:ci)
#   SAMPLESIZE_BASE_IMAGE    base tag (default: samplesize-base:ci)
#   SAMPLESIZE_STORAGE_DRIVER  overlay2 (default) or vfs
#   DEBIAN_MIRROR            default: first Debian URI in apt's sources
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${SAMPLESIZE_DOCKER_WORK:-$repo/.ci-work/docker}"
image="${SAMPLESIZE_IMAGE:-samplesize:ci}"
base_image="${SAMPLESIZE_BASE_IMAGE:-samplesize-base:ci}"
wheels="$repo/.ci-work/wheels"
suite=bookworm
python_version=3.11

mkdir -p "$work"
sock="$work/docker.sock"
export DOCKER_HOST="unix://$sock"

log() { printf '[ci_docker %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Time each step, so CI logs show where the docker budget goes.
timed() {
    local name="$1"; shift
    local start=$SECONDS
    "$@"
    log "step '$name' took $((SECONDS - start)) s"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

daemon_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
    if daemon_up; then
        log "dockerd already answers on $DOCKER_HOST"
        return 0
    fi
    local driver="${SAMPLESIZE_STORAGE_DRIVER:-overlay2}"
    if ! try_dockerd "$driver"; then
        if [ "$driver" = overlay2 ]; then
            # Nested overlay (e.g. this host itself on overlayfs) refuses
            # overlay2; vfs is slow and large but always works.
            log "overlay2 failed; falling back to the vfs storage driver"
            try_dockerd vfs || { tail -n 30 "$work/dockerd.log" >&2; exit 1; }
        else
            tail -n 30 "$work/dockerd.log" >&2; exit 1
        fi
    fi
}

try_dockerd() {
    local driver="$1"
    log "starting dockerd (storage driver $driver)"
    mkdir -p "$work/data-$driver" "$work/exec"
    rm -f "$sock" "$work/dockerd.pid"
    local run_as=()
    [ "$(id -u)" -eq 0 ] || run_as=(sudo)
    # setsid: the daemon must outlive this script (and CI's pytest after it).
    "${run_as[@]}" setsid dockerd \
        --host "$DOCKER_HOST" \
        --data-root "$work/data-$driver" \
        --exec-root "$work/exec" \
        --pidfile "$work/dockerd.pid" \
        --storage-driver "$driver" \
        --iptables=false --ip6tables=false --bridge=none \
        >"$work/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 60); do
        if daemon_up; then
            # A non-root CI user must be able to reach the socket.
            as_root chmod 666 "$sock"
            log "dockerd up after ${i}x0.5 s, driver $(docker info --format '{{.Driver}}')"
            return 0
        fi
        if ! kill -0 "$!" 2>/dev/null; then
            log "dockerd exited: $(tail -n 3 "$work/dockerd.log" | tr '\n' ' ')"
            return 1
        fi
        sleep 0.5
    done
    log "dockerd did not answer within 30 s"
    as_root kill "$!" 2>/dev/null || true
    return 1
}

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri
    uri="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    if docker image inspect "$base_image" >/dev/null 2>&1; then
        log "base $base_image already present"
        return 0
    fi
    local rootfs="$work/rootfs" mirror
    mirror="$(debian_mirror)"
    log "debootstrap $suite (minbase) from $mirror"
    as_root rm -rf "$rootfs"
    as_root debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
        "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
    # Drop apt lists and the package cache: they only bloat the base.
    as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    as_root tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        - "$base_image" >/dev/null
    as_root rm -rf "$rootfs"
    log "imported $base_image ($(docker image inspect --format '{{.Size}}' "$base_image") bytes)"
}

# pip on the host may run on another Python or OS than the image; ask for
# files that fit the image explicitly: CPython 3.11, glibc <= 2.36 (bookworm),
# x86_64. --no-deps: the lock is complete (the Dockerfile's install checks it),
# and it lets pip take an sdist where a package has no wheel (promise, which
# the image builds with the lock's setuptools, also in the wheelhouse).
prepare_wheelhouse() {
    local stamp="$wheels/.stamp" want lock="$repo/docker/requirements-cpu.lock"
    want="$(sha256sum <"$lock" | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "wheelhouse up to date ($(find "$wheels" -name '*.whl' | wc -l) wheels)"
        return 0
    fi
    local py="${PYTHON:-}"
    if [ -z "$py" ]; then
        if [ -x "$repo/.venv/bin/python" ]; then py="$repo/.venv/bin/python"; else py=python3; fi
    fi
    rm -rf "$wheels"
    mkdir -p "$wheels"
    # pip takes the platform tags literally: list every glibc up to bookworm's.
    local platforms=(--platform linux_x86_64 --platform manylinux2014_x86_64) minor
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
    log "collecting the files of $(grep -c '^[a-z0-9]' "$lock") locked requirements"
    "$py" -m pip download --quiet --disable-pip-version-check --no-cache-dir \
        --dest "$wheels" --no-deps --require-hashes \
        --implementation cp --python-version "$python_version" \
        "${platforms[@]}" \
        -r "$lock"
    echo "$want" >"$stamp"
    log "wheelhouse: $(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$wheels" | cut -f1)"
}

# BuildKit builds this image about 3x faster than the legacy builder (no tar
# commit of the 2 GB venv layer per step). It needs either the buildx plugin or
# a client older than 23 that still embeds it, as Debian bookworm's docker.io
# (/usr/bin/docker) does; a newer client without buildx gets the legacy builder.
build_image() {
    local client=(docker)
    if docker buildx version >/dev/null 2>&1; then
        client=(env DOCKER_BUILDKIT=1 docker build --progress plain)
    elif [ -x /usr/bin/docker ] && [ "$(/usr/bin/docker version --format '{{.Client.Version}}' \
            2>/dev/null | cut -d. -f1)" -lt 23 ]; then
        client=(env DOCKER_BUILDKIT=1 /usr/bin/docker build --progress plain)
    else
        log "no BuildKit client (buildx missing); the legacy builder is slower"
        client=(docker build)
    fi
    log "docker build $image (base $base_image, network none): ${client[*]}"
    "${client[@]}" --network none \
        --build-arg BASE_IMAGE="$base_image" \
        --build-arg TF_EXTRA=cpu \
        --build-arg VCS_REF="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        -t "$image" "$repo" >&2
}

timed install-tools install_tools
timed dockerd start_dockerd
timed base build_base
timed wheelhouse prepare_wheelhouse
timed build build_image

echo "export DOCKER_HOST=$DOCKER_HOST" >"$work/env"
log "daemon: DOCKER_HOST=$DOCKER_HOST (also in $work/env)"
echo "export DOCKER_HOST=$DOCKER_HOST"
