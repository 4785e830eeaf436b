#!/usr/bin/env bash
# The full test suite, from a fresh Debian/Ubuntu machine: installs and starts everything the tests
# need (Python venv, Docker engine + locally built base images, Chromium for the browser test), runs
# lint and type checks, then pytest. Stops only what it started. Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
INFRA="$repo/.infra"
mkdir -p "$INFRA"
STARTED_PIDS=()

cleanup() {
  for pid in "${STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# shellcheck source=scripts/infra/docker.sh
source "$repo/scripts/infra/docker.sh"

echo "== Python environment (.venv)"
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
export PATH="$repo/.venv/bin:$PATH"

echo "== Chromium (browser tests)"
[ -x /usr/bin/chromium ] || apt_install chromium chromium-driver fonts-dejavu-core

echo "== Docker"
ensure_docker_engine
export AMLEXEC_TEST_BASE_IMAGE="amlexec-test/python:3.11"
export AMLEXEC_TEST_PYSPARK_IMAGE="amlexec-test/pyspark:3.11"
export AMLEXEC_DEFAULT_BASE_IMAGE="$AMLEXEC_TEST_BASE_IMAGE"
export AMLEXEC_TEST_NETWORK_MODE=host
ensure_base_image "$AMLEXEC_TEST_BASE_IMAGE"
ensure_pyspark_image "$AMLEXEC_TEST_PYSPARK_IMAGE" "$AMLEXEC_TEST_BASE_IMAGE"

echo "== Lint and types"
ruff check jupyter_amlexec tests benchmarks
ruff format --check jupyter_amlexec tests benchmarks
mypy jupyter_amlexec/core

echo "== Tests"
mkdir -p test-artifacts
status=0
python -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ "$status" = 5 ]; then echo "pytest collected no tests: that is a failure" >&2; status=1; fi
exit "$status"
