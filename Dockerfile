# samplesize: one image for every trial pod and for the aggregation Job.
#
# Default: GPU. TensorFlow comes from the `gpu` extra (tensorflow[and-cuda]),
# whose pip wheels carry CUDA and cuDNN, so a plain Python base is enough and
# the node only needs the NVIDIA driver. Docker with the NVIDIA container
# toolkit injects the driver's libcuda.so.1 into the loader's default path;
# GKE does not use the toolkit: its device plugin mounts the driver libraries
# at /usr/local/nvidia/lib64 (and nvidia-smi at /usr/local/nvidia/bin), so the
# image puts both on the search paths. Without a GPU they are absent and
# harmless: TensorFlow runs on the CPU (see docs/docker.md).
#
# GKE's nodes are x86_64: build for linux/amd64 even on an arm64 Mac, or every
# trial pod fails with "exec format error" (docs/docker.md):
#
#   docker buildx build --platform linux/amd64 -t samplesize .                            # GPU
#   docker buildx build --platform linux/amd64 --build-arg TF_EXTRA=cpu -t samplesize:cpu .  # CPU only
#
# Reproducible: the Python packages come from docker/requirements-<TF_EXTRA>.lock
# (every version pinned, every file hashed, `--require-hashes`; regenerate with
# scripts/lock_image_requirements.sh) and the base is pinned by digest, so two
# builds a month apart install the same bytes. A base that already ships
# TensorFlow works too: pass TF_EXTRA="" so nothing is installed over it; that
# build resolves pyproject.toml's ranges and is not locked.
#
# Offline builds: put the lock's files in .ci-work/wheels (scripts/ci_docker.sh
# does) and pip installs from there only, with no index; without them, from PyPI.
# The digest is the multi-arch index of python:3.11-slim-bookworm; refresh it
# with `docker buildx imagetools inspect python:3.11-slim-bookworm` together
# with a relock, as the lock's target (CPython 3.11, glibc 2.36) comes from it.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE_IMAGE} AS build
ARG TF_EXTRA=gpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# --system-site-packages: a base that already carries TensorFlow lends it.
RUN python3 -m venv --system-site-packages /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, from the lock alone, so editing the source does not
# reinstall TensorFlow. The wheelhouse glob may match nothing; the COPY still
# succeeds because pyproject.toml always matches. Without --no-deps, pip also
# refuses a lock that misses a dependency (it has no hash for it).
COPY pyproject.toml scripts/docker_requirements.py docker/requirements-*.lock ./
COPY pyproject.toml .ci-work/wheel[s] /wheels/
RUN set -- /wheels/*.whl; \
    if [ -e "$1" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    if [ -n "${TF_EXTRA}" ]; then \
        pip install --require-hashes --requirement "requirements-${TF_EXTRA}.lock"; \
    else \
        python3 docker_requirements.py pyproject.toml > requirements.txt \
        && pip install --requirement requirements.txt; \
    fi

# README.md* : the package metadata reads it, but a checkout without it still builds.
COPY pyproject.toml README.md* ./
COPY job ./job
RUN set -- /wheels/*.whl; \
    if [ -e "$1" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    pip install --no-deps /src \
    && samplesize --help > /dev/null


FROM ${BASE_IMAGE}
# Numeric UID so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN useradd --no-log-init --uid 1000 --user-group --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin samplesize

COPY --from=build /opt/venv /opt/venv

# The root filesystem is read-only in the pod; /tmp is the one writable place
# (an emptyDir), so every cache and HOME points there.
# LD_LIBRARY_PATH keeps a base image's own entries (an NGC or TensorFlow base sets one).
ENV PATH=/opt/venv/bin:$PATH:/usr/local/nvidia/bin \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    XDG_CACHE_HOME=/tmp/.cache \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 1000:1000

ENTRYPOINT ["samplesize"]
CMD ["--help"]

# Last, so a new commit (VCS_REF) does not invalidate the venv layer above.
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="samplesize" \
      org.opencontainers.image.description="Learning-curve sweeps: how many labelled images does a classifier need? One image for trial pods and the aggregation Job." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
