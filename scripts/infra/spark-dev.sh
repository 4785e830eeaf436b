#!/usr/bin/env bash
# Work on the Spark test infrastructure alone: starts what scripts/infra/spark.sh provides (standalone
# master + worker, YARN, Livy), prints how long that took and the memory each service holds, runs
# tests/infra/ with the given pytest arguments, and stops exactly what it started.
#   bash scripts/infra/spark-dev.sh [pytest args]        SPARK_DEV_SERIAL=1: the three one after another
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
INFRA="$REPO/.infra"
cd "$REPO"
mkdir -p "$INFRA"

source "$REPO/scripts/infra/common.sh"
source "$REPO/scripts/infra/spark.sh"
install_traps

echo "== Python environment (.venv)"
ensure_venv

echo "== Spark: standalone, YARN, Livy"
start=$(date +%s.%N)
if [ "${SPARK_DEV_SERIAL:-0}" = 1 ]; then
  ensure_spark_standalone
  ensure_yarn
  ensure_livy
else
  ensure_spark_infra
fi
printf 'spark: all three ready in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
for pid in "${STARTED_PIDS[@]:-}"; do
  [ -n "$pid" ] || continue
  printf 'spark: pid %s  rss %s MiB  %s\n' "$pid" "$(($(ps -o rss= -p "$pid") / 1024))" \
    "$(ps -o args= -p "$pid" | grep -o 'Master\|Worker\|MiniYarn\|LivyLauncher' | head -n 1)"
done

echo "== Tests"
status=0
python -m pytest -q -p no:cacheprovider tests/infra "$@" </dev/null || status=$?
for pid in "${STARTED_PIDS[@]:-}"; do
  [ -n "$pid" ] || continue
  printf 'spark: after the tests pid %s rss %s MiB\n' "$pid" "$(($(ps -o rss= -p "$pid" 2>/dev/null || echo 0) / 1024))"
done
exit "$status"
