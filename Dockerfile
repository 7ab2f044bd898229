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
#   docker build -t samplesize .                                 # GPU
#   docker build --build-arg TF_EXTRA=cpu -t samplesize:cpu .    # CPU only
#
# A base that already ships TensorFlow works too: pass TF_EXTRA="" so nothing
# is installed over it (the venv sees the base's site-packages).
#
# Offline builds: put wheels in .ci-work/wheels (scripts/ci_docker.sh does)
# and pip installs from there only, with no index; without them, from PyPI.
ARG BASE_IMAGE=python:3.11-slim-bookworm

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

# Dependencies first, from pyproject.toml alone, so editing the source does
# not reinstall TensorFlow. The wheelhouse glob may match nothing; the COPY
# still succeeds because pyproject.toml always matches.
COPY pyproject.toml scripts/docker_requirements.py ./
COPY pyproject.toml .ci-work/wheel[s] /wheels/
RUN set -- /wheels/*.whl; \
    if [ -e "$1" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    python3 docker_requirements.py pyproject.toml "${TF_EXTRA}" > requirements.txt \
    && pip install --requirement requirements.txt

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
