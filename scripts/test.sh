#!/usr/bin/env bash
# THE test command (README.md; CI runs it through .ci/run). On a fresh Debian 12 machine as root it
# installs what is missing (apt: docker.io, mmdebstrap, chromium, chromium-driver; the .venv with
# jupyter_amlexec[test]), starts dockerd when no engine answers, builds the locally made test images
# (cached by tag), runs ruff, ruff format --check and mypy, then pytest with this script's arguments.
# It stops, at exit, only the processes it started. Exit status: pytest's ("no tests" is a failure).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
INFRA="$REPO/.infra"
cd "$REPO"
mkdir -p "$INFRA"

source "$REPO/scripts/infra/common.sh"
source "$REPO/scripts/infra/docker.sh"
source "$REPO/scripts/infra/images.sh"
source "$REPO/scripts/infra/browser.sh"
source "$REPO/scripts/infra/sshd.sh"
source "$REPO/scripts/infra/spark.sh"
source "$REPO/scripts/infra/cluster.sh"
install_traps

echo "== Python environment (.venv)"
ensure_venv

echo "== Browser"
ensure_browser

source "$REPO/scripts/infra/labext.sh"
echo "== Lab extension (tsc, eslint, jest; sdist -> wheel in a fresh venv without node)"
labext_check_node
labext_install_deps
labext_frontend_checks
labext_build_dist
labext_wheel_check

echo "== Docker"
ensure_docker_engine
export AMLEXEC_TEST_BASE_IMAGE="${AMLEXEC_TEST_BASE_IMAGE:-amlexec-test/python:3.11}"
export AMLEXEC_TEST_PYSPARK_IMAGE="${AMLEXEC_TEST_PYSPARK_IMAGE:-amlexec-test/pyspark:3.11}"
export AMLEXEC_DEFAULT_BASE_IMAGE="${AMLEXEC_DEFAULT_BASE_IMAGE:-$AMLEXEC_TEST_BASE_IMAGE}"
export AMLEXEC_TEST_NETWORK_MODE="${AMLEXEC_TEST_NETWORK_MODE:-host}"
ensure_base_image "$AMLEXEC_TEST_BASE_IMAGE"
ensure_pyspark_image "$AMLEXEC_TEST_PYSPARK_IMAGE" "$AMLEXEC_TEST_BASE_IMAGE"

echo "== SSH hosts (sshd on 127.0.0.2 and 127.0.0.3)"
ensure_sshd_hosts

echo "== Spark: standalone, YARN, Livy, and the SSH user as a cluster user"
ensure_spark_infra
cluster_yarn_user_access

echo "== Lint and types"
ruff check jupyter_amlexec tests benchmarks
ruff format --check jupyter_amlexec tests benchmarks
mypy jupyter_amlexec/core

echo "== Tests"
mkdir -p test-artifacts
status=0
python -m pytest -q -p no:cacheprovider "$@" </dev/null || status=$?
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that counts as a failure" >&2
  status=1
fi
exit "$status"
