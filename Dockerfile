# syntax=docker/dockerfile:1
#
# origin-tls-exporter container image (docs/deploy.md, "Container image").
#
#   docker build -t origin-tls-exporter:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp -p 10043:10043 \
#     -v "$PWD/config.yml:/etc/origin-tls-exporter/config.yml:ro" origin-tls-exporter:0.1.0
#
# Every RUN line is a sub-command of scripts/docker-build-steps.sh, bind-mounted from the build
# context: CI runs `scripts/docker-build-steps.sh all` (the same commands, in a temporary
# virtualenv) on machines without a Docker engine. Change a step there, not here.
# Needs BuildKit (the default builder since Docker 23) for RUN --mount.

# ---------------------------------------------------------------------------------------------
# builder: the project's wheel and every dependency as requirements.lock pins it (hashes
# checked: pip --require-hashes), in /wheels.
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# The same list as CONTEXT_FILES in scripts/docker-build-steps.sh.
COPY pyproject.toml README.md requirements.lock ./
COPY exporter ./exporter
RUN --mount=type=bind,source=scripts/docker-build-steps.sh,target=/build-steps.sh \
    bash /build-steps.sh wheels /src /wheels

# ---------------------------------------------------------------------------------------------
# final: a virtualenv installed from those wheels only (the lock's hashes checked again, then
# the project with --no-deps), owned by root, run as uid 10001.
FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="origin-tls-exporter" \
      org.opencontainers.image.description="Prometheus exporter: can CloudFront complete its TLS handshake to your custom origins, and if not, why" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# PYTHONDONTWRITEBYTECODE: never write .pyc files at run time (pip compiled them at install),
# so a read-only root filesystem works; only /tmp must be writable, and only for `demo`.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH="/opt/venv/bin:${PATH}"

# The default configuration: no origins, so the container starts and serves its own metrics
# until you mount yours over it.
COPY deploy/kubernetes/config.yml /etc/origin-tls-exporter/config.yml

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,source=scripts/docker-build-steps.sh,target=/build-steps.sh \
    bash /build-steps.sh install /wheels /opt/venv \
    && groupadd --system --gid 10001 origin-tls-exporter \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin origin-tls-exporter

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# As the runtime user: the command starts and accepts the default configuration.
RUN --mount=type=bind,source=scripts/docker-build-steps.sh,target=/build-steps.sh \
    bash /build-steps.sh smoke /opt/venv /etc/origin-tls-exporter/config.yml

EXPOSE 10043

# No curl in the slim image; Python's urllib raises (exit 1) on anything but a 2xx answer.
# Assumes the default port: change it here if you pass another --web.listen-address.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10043/-/healthy', timeout=3)"]

ENTRYPOINT ["origin-tls-exporter"]
CMD ["serve", "--config.file", "/etc/origin-tls-exporter/config.yml"]
