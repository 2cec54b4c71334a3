#!/usr/bin/env bash
# The build steps of the container image, one sub-command per RUN line of the Dockerfile.
#
# The Dockerfile runs this very script (bind-mounted into each stage), so what CI runs here
# without a Docker engine is what `docker build` runs:
#
#   wheels SRC WHEELS      builder stage: the project's wheel, and every dependency as pinned and
#                          hash-checked by SRC/requirements.lock (copied into WHEELS)
#   install WHEELS VENV    final stage: a fresh virtualenv from those wheels only (--no-index),
#                          the lock's hashes checked again, the project with --no-deps
#   smoke VENV CONFIG      final stage: the installed command starts and accepts CONFIG
#   all                    all three in a temporary directory, from a copy of exactly the files
#                          the Dockerfile copies into the builder (CONTEXT_FILES), with this
#                          machine's python3 (CI; tests/test_deploy.py)
#
# PYTHON (default python3) is the interpreter: the image's /usr/local/bin/python3, or this
# machine's for `all`.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
# What the Dockerfile's builder stage COPYs from the build context (besides this script);
# tests/test_deploy.py checks that the two lists agree and that .dockerignore lets them through.
CONTEXT_FILES=(pyproject.toml README.md requirements.lock exporter)

usage() {
    sed -n '2,17p' "$0" >&2
    exit 2
}

step_wheels() {
    local src="$1" wheels="$2"
    mkdir -p "$wheels"
    # Every dependency exactly as requirements.lock pins it, its hash checked, as published
    # wheels only (nothing compiled here); then the project's own wheel, without resolving
    # anything. The final stage needs neither a compiler nor the network.
    "$PYTHON" -m pip download --require-hashes --only-binary=:all: --no-deps \
        --dest "$wheels" --requirement "$src/requirements.lock"
    "$PYTHON" -m pip wheel --no-deps --wheel-dir "$wheels" "$src"
    cp "$src/requirements.lock" "$wheels/requirements.lock"
    ls "$wheels"
}

step_install() {
    local wheels="$1" venv="$2"
    # No pip, setuptools or wheel in the runtime virtualenv: the outer pip installs into it.
    "$PYTHON" -m venv --without-pip "$venv"
    "$PYTHON" -m pip --python "$venv/bin/python" install --no-index --find-links "$wheels" \
        --require-hashes --requirement "$wheels/requirements.lock"
    "$PYTHON" -m pip --python "$venv/bin/python" install --no-index --no-deps \
        "$wheels"/origin_tls_exporter-*.whl
    "$PYTHON" -m pip --python "$venv/bin/python" check
}

step_smoke() {
    local venv="$1" config="$2"
    # Imports the whole command line (daemon, web server, engine): a dependency missing from
    # pyproject.toml fails here, not in production.
    "$venv/bin/origin-tls-exporter" --version
    "$venv/bin/origin-tls-exporter" validate --config.file "$config"
    # Serves: health, metrics and the status page answer (package data such as templates is in
    # the wheel), and SIGTERM ends it with status 0. On 127.0.0.1, a free port.
    "$venv/bin/python" - "$venv/bin/origin-tls-exporter" "$config" <<'PY'
import signal
import socket
import subprocess
import sys
import time
import urllib.request

command, config = sys.argv[1], sys.argv[2]
with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
base = f"http://127.0.0.1:{port}"
server = subprocess.Popen(
    [command, "serve", "--config.file", config, "--web.listen-address", f"127.0.0.1:{port}"]
)
try:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/-/ready", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"smoke: the exporter did not become ready (exit {server.poll()})")
            time.sleep(0.2)
    for path, expect in [
        ("/-/healthy", ""),
        ("/metrics", "origin_tls_exporter_build_info"),
        ("/", "origin-tls-exporter"),
    ]:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            body = response.read().decode()
        if expect not in body:
            sys.exit(f"smoke: {path} answered without {expect!r}")
        print(f"smoke: GET {path}: {response.status}")
finally:
    server.send_signal(signal.SIGTERM)
    status = server.wait(timeout=15)
if status != 0:
    sys.exit(f"smoke: exit status {status} after SIGTERM")
print("smoke: SIGTERM: exit 0")
PY
}

step_all() {
    local repo
    repo="$(cd "$(dirname "$0")/.." && pwd)"
    BUILD_TMP="$(mktemp -d "${TMPDIR:-/tmp}/origin-tls-exporter-build.XXXXXX")"
    trap 'rm -rf "$BUILD_TMP"' EXIT
    local tmp="$BUILD_TMP"
    mkdir -p "$tmp/src"
    (cd "$repo" && cp -R "${CONTEXT_FILES[@]}" "$tmp/src/")
    find "$tmp/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
    echo "--- wheels"
    step_wheels "$tmp/src" "$tmp/wheels"
    echo "--- install"
    step_install "$tmp/wheels" "$tmp/venv"
    echo "--- smoke"
    step_smoke "$tmp/venv" "$repo/deploy/kubernetes/config.yml"
}

case "${1:-}" in
    wheels) [ $# = 3 ] || usage; step_wheels "$2" "$3" ;;
    install) [ $# = 3 ] || usage; step_install "$2" "$3" ;;
    smoke) [ $# = 3 ] || usage; step_smoke "$2" "$3" ;;
    all) [ $# = 1 ] || usage; step_all ;;
    *) usage ;;
esac
