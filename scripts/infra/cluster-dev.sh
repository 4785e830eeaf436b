#!/usr/bin/env bash
# The Spark cluster target's tests with their real infrastructure: the sshd "head node" hosts of
# sshd.sh, a Spark standalone master + worker, a single-node YARN and a Livy server (spark.sh), all
# on loopback. Starts (or reuses) them, runs pytest with the given arguments, and stops at exit
# exactly the processes it started (common.sh's traps).
#   bash scripts/infra/cluster-dev.sh [pytest args]       default: tests/core/executors/test_spark*.py
#   CLUSTER_DEV_SERVICES="sshd standalone yarn livy"      which services to start (default: all)
#   CLUSTER_DEV_HOLD=1 bash scripts/infra/cluster-dev.sh  no pytest: write the exports to
#       .infra/cluster-dev.env and keep the services up until this script gets SIGTERM/SIGINT
# Ports come from the AMLEXEC_TEST_* variables of sshd.sh and spark.sh (defaults there).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
INFRA="$REPO/.infra"
mkdir -p "$INFRA"
cd "$REPO"
source "$REPO/scripts/infra/common.sh"
source "$REPO/scripts/infra/sshd.sh"
source "$REPO/scripts/infra/spark.sh"
source "$REPO/scripts/infra/cluster.sh"
install_traps

echo "== Python environment (.venv)"
ensure_venv

start=$(date +%s)
# shellcheck disable=SC2086 # a list of service names
ensure_cluster_infra ${CLUSTER_DEV_SERVICES:-}
echo "cluster-dev: services ready in $(($(date +%s) - start)) s"

if [ "${CLUSTER_DEV_HOLD:-0}" = 1 ]; then
  export -p | grep -E ' AMLEXEC_TEST_|JAVA_HOME' >"$INFRA/cluster-dev.env"
  echo "cluster-dev: holding; exports in $INFRA/cluster-dev.env (stop with kill -TERM $$)"
  while true; do sleep 1; done
fi

if [ $# -eq 0 ]; then
  set -- tests/core/executors/test_spark.py tests/core/executors/test_spark_local.py \
    tests/core/executors/test_spark_livy.py tests/core/executors/test_spark_settings.py
fi
status=0
"$REPO/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@" </dev/null || status=$?
exit "$status"
