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
install_traps

services="${CLUSTER_DEV_SERVICES:-sshd standalone yarn livy}"
has() { case " $services " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

echo "== Python environment (.venv)"
ensure_venv

start=$(date +%s)
if has sshd; then ensure_sshd_hosts; fi
spark_tools
if has standalone; then spark_standalone_prepare; fi
if has yarn; then spark_yarn_prepare; fi
if has livy; then spark_livy_prepare; fi
if has standalone; then spark_standalone_start; fi
if has yarn; then spark_yarn_start; fi
if has livy; then spark_livy_start; fi
if has standalone; then spark_standalone_wait; fi
if has yarn; then
  spark_yarn_wait
  # The SSH user submits to YARN (a head node's user is not the NodeManager's): its staging files
  # go to the shared staging folder, so that folder must be writable by everyone, as /tmp is.
  chmod 1777 "$INFRA/yarn/staging"
  # ... and reads its own aggregated logs (`yarn logs`). On a cluster the NodeManager runs as yarn
  # and the user's log folder is the user's; here the NodeManager is root, so the user's folder is
  # given the user's group, setgid: what the NodeManager adds later inherits it (files are 640).
  logs="$AMLEXEC_TEST_YARN_LOG_DIR/$SSH_TEST_USER"
  mkdir -p "$logs"
  chgrp -R "$SSH_TEST_USER" "$logs"
  chmod -R g+rX "$logs"
  find "$logs" -type d -exec chmod g+s {} +
fi
if has livy; then spark_livy_wait; fi
echo "cluster-dev: services ready in $(($(date +%s) - start)) s"

if [ "${CLUSTER_DEV_HOLD:-0}" = 1 ]; then
  export -p | grep -E ' AMLEXEC_TEST_|JAVA_HOME' >"$INFRA/cluster-dev.env"
  echo "cluster-dev: holding; exports in $INFRA/cluster-dev.env (stop with kill -TERM $$)"
  while true; do sleep 1; done
fi

status=0
"$REPO/.venv/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests/core/executors/test_spark.py}" </dev/null || status=$?
exit "$status"
