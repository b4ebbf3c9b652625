# syntax=docker/dockerfile:1.7
# reconciler: GitOps release reconciler, run as a sidecar (`reconciler run`).
#
# Stage 1 builds wheels for reconciler and its dependencies; stage 2 installs
# them into a venv on a clean slim image, so no compiler or build cache ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}

# git and ssh for the config repository; tini as PID 1 so git's ssh children
# are reaped and SIGTERM reaches the reconciler.
# DL3008 (pin apt versions) is ignored on purpose: Debian security updates
# remove superseded versions from the mirror, so pins break rebuilds; the base
# image tag plus a regular rebuild pin the distribution instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client gnupg ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install from the wheels built above without copying them into a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir --no-index --find-links=/wheels /wheels/reconciler-*.whl

# Non-root, fixed UID so Kubernetes `runAsNonRoot` can verify it. Everything
# writable lives under the work dir, so a read-only root filesystem works:
# HOME (git and ssh config, known_hosts) points into it; mount a writable
# /tmp (emptyDir) as well when the root filesystem is read-only.
RUN groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/reconciler \
       --shell /usr/sbin/nologin reconciler \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/reconciler
ENV RECONCILER_WORKDIR=/var/lib/reconciler \
    HOME=/var/lib/reconciler \
    RECONCILER_LISTEN=0.0.0.0:8080 \
    GIT_TERMINAL_PROMPT=0
VOLUME ["/var/lib/reconciler"]
WORKDIR /var/lib/reconciler
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["/usr/bin/tini", "--", "reconciler"]
CMD ["run"]
