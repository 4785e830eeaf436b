# Spark infrastructure for the tests, all on loopback and all real: a Spark standalone master +
# worker (pyspark 4.x), a single-node YARN (Hadoop's MiniYARNCluster, the Hadoop version of the
# pyspark wheel) and an Apache Livy server (0.7.1, the newest on Maven Central) over a Spark 3.5. Downloads, venvs and jars are cached
# under $INFRA keyed by version; each ensure_* function is idempotent (a service that already
# answers is reused), waits until its service really answers, exports what the tests read
# (AMLEXEC_TEST_*), and appends every PID it starts to STARTED_PIDS (stopped at exit by common.sh).
# ensure_spark_infra prepares the three in parallel, then starts them together and waits for each.
# Sourced, never run; expects REPO and INFRA (and common.sh). Facts and timings: docs/infra-spark.md.

SPARK_PYSPARK_VERSION="${AMLEXEC_TEST_PYSPARK_VERSION:-4.3.0}"
LIVY_PYSPARK_VERSION="${AMLEXEC_TEST_LIVY_PYSPARK_VERSION:-3.5.9}"
LIVY_VERSION=0.7.1-incubating # the newest on Maven Central
SPARK_MASTER_PORT="${AMLEXEC_TEST_SPARK_MASTER_PORT:-7077}"
SPARK_MASTER_WEBUI_PORT="${AMLEXEC_TEST_SPARK_MASTER_WEBUI_PORT:-18080}"
SPARK_MASTER_REST_PORT="${AMLEXEC_TEST_SPARK_MASTER_REST_PORT:-16066}"
SPARK_WORKER_WEBUI_PORT="${AMLEXEC_TEST_SPARK_WORKER_WEBUI_PORT:-18081}"
YARN_PORT_BASE="${AMLEXEC_TEST_YARN_PORT_BASE:-18030}" # RPC base..base+3, web UI/REST at base+58
YARN_NM_MEMORY_MB="${AMLEXEC_TEST_YARN_MEMORY_MB:-6144}"
LIVY_PORT="${AMLEXEC_TEST_LIVY_PORT:-8998}"

spark_log() { echo "spark: $*"; }

# The JDK's home (javac is needed to compile the YARN main; YARN containers need JAVA_HOME).
spark_java_home() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then echo "$JAVA_HOME"; return; fi
  dirname "$(dirname "$(readlink -f "$(command -v javac)")")"
}

spark_tools() {
  ensure_packages default-jdk-headless:javac maven:mvn curl:curl
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  export JAVA_HOME
  JAVA_HOME="$(spark_java_home)"
}

# spark_url_answers URL: true when URL answers 2xx within 3 s.
spark_url_answers() { curl -fsS -m 3 -o /dev/null "$1" 2>/dev/null; }

# spark_wait WHAT PID TIMEOUT_S LOG CHECK...: run CHECK until it succeeds; fail with the log's tail
# if PID dies or TIMEOUT_S passes.
spark_wait() {
  local what="$1" pid="$2" timeout="$3" log="$4" start
  shift 4
  start=$(date +%s)
  while ! "$@"; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "spark: $what exited before it answered; last lines of $log:" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
    if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
      echo "spark: $what did not answer within ${timeout}s; last lines of $log:" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
    sleep 0.3
  done
}

# spark_venv VERSION: $INFRA/spark/pyspark-VERSION, a venv with pyspark==VERSION (flock: the
# standalone and YARN preparations share the 4.x one and may run at once). Prints SPARK_HOME.
spark_venv() {
  local version="$1" dir="$INFRA/spark/pyspark-$1"
  mkdir -p "$INFRA/spark"
  (
    flock 9
    if [ ! -f "$dir/.amlexec-installed" ]; then
      spark_log "installing pyspark==$version into $dir (the first time builds its wheel: ~40 s)" >&2
      rm -rf "$dir"
      python3 -m venv "$dir"
      "$dir/bin/pip" install -q --disable-pip-version-check "pyspark==$version" >&2
      touch "$dir/.amlexec-installed"
    fi
  ) 9>"$INFRA/spark/pyspark-$version.lock"
  "$dir/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}

# spark_mvn_copy POM OUTDIR [ARGS...]: the pom's dependencies copied into OUTDIR, redone only when
# the pom (or ARGS) changed. Maven's local repository is $INFRA/m2 so CI caches it with .infra.
spark_mvn_copy() {
  local pom="$1" out="$2" want stamp
  shift 2
  stamp="$out/.amlexec-copied"
  want="$(cat "$pom" | sha256sum | cut -c1-16) $*"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  spark_log "maven: fetching the dependencies of ${pom#"$REPO"/} into $out"
  rm -rf "$out"
  mkdir -p "$out"
  mvn -B -q -Dmaven.repo.local="$INFRA/m2" -f "$pom" "$@" \
    dependency:copy-dependencies -DoutputDirectory="$out"
  echo "$want" >"$stamp"
}

# ---------------------------------------------------------------- Spark standalone (pyspark 4.x)

spark_standalone_prepare() {
  spark_tools
  spark_venv "$SPARK_PYSPARK_VERSION" >/dev/null
}

spark_master_json() { curl -fsS -m 3 "http://127.0.0.1:$SPARK_MASTER_WEBUI_PORT/json/" 2>/dev/null; }
spark_master_alive() { spark_master_json | grep -q '"status" *: *"ALIVE"'; }
spark_worker_alive() {
  spark_master_json | python3 -c 'import json, sys; sys.exit(not any(w.get("state") == "ALIVE" for w in json.load(sys.stdin).get("workers", [])))' 2>/dev/null
}

spark_standalone_start() {
  local home venv="$INFRA/spark/pyspark-$SPARK_PYSPARK_VERSION" dir="$INFRA/spark/standalone"
  SPARK_STANDALONE_MASTER_PID="" SPARK_STANDALONE_WORKER_PID=""
  if spark_master_alive; then
    spark_log "standalone master already answers on 127.0.0.1:$SPARK_MASTER_WEBUI_PORT: reused"
    return
  fi
  home="$(spark_venv "$SPARK_PYSPARK_VERSION")"
  mkdir -p "$dir"
  rm -rf "$dir/work"
  mkdir -p "$dir/work"
  spark_log "starting the standalone master and worker (logs: $dir/*.log)"
  # The REST submission server (cluster-mode submits, kill and status of drivers) is off by default.
  SPARK_HOME="$home" SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$venv/bin/python" \
    SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=true -Dspark.master.rest.port=$SPARK_MASTER_REST_PORT" \
    "$home/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 \
    --port "$SPARK_MASTER_PORT" --webui-port "$SPARK_MASTER_WEBUI_PORT" \
    >"$dir/master.log" 2>&1 </dev/null &
  SPARK_STANDALONE_MASTER_PID=$!
  STARTED_PIDS+=("$SPARK_STANDALONE_MASTER_PID")
  # The worker retries its registration, so it can start alongside the master.
  SPARK_HOME="$home" SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$venv/bin/python" \
    "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 \
    --cores 2 --memory 2g --webui-port "$SPARK_WORKER_WEBUI_PORT" --work-dir "$dir/work" \
    "spark://127.0.0.1:$SPARK_MASTER_PORT" >"$dir/worker.log" 2>&1 </dev/null &
  SPARK_STANDALONE_WORKER_PID=$!
  STARTED_PIDS+=("$SPARK_STANDALONE_WORKER_PID")
}

spark_standalone_wait() {
  local dir="$INFRA/spark/standalone"
  spark_wait "the standalone master" "${SPARK_STANDALONE_MASTER_PID:-}" 90 "$dir/master.log" spark_master_alive
  spark_wait "the standalone worker" "${SPARK_STANDALONE_WORKER_PID:-}" 90 "$dir/worker.log" spark_worker_alive
  export AMLEXEC_TEST_SPARK_HOME AMLEXEC_TEST_SPARK_PYTHON
  AMLEXEC_TEST_SPARK_HOME="$(spark_venv "$SPARK_PYSPARK_VERSION")"
  AMLEXEC_TEST_SPARK_PYTHON="$INFRA/spark/pyspark-$SPARK_PYSPARK_VERSION/bin/python"
  export AMLEXEC_TEST_SPARK_SUBMIT="$AMLEXEC_TEST_SPARK_HOME/bin/spark-submit"
  export AMLEXEC_TEST_SPARK_MASTER="spark://127.0.0.1:$SPARK_MASTER_PORT"
  export AMLEXEC_TEST_SPARK_MASTER_WEBUI="http://127.0.0.1:$SPARK_MASTER_WEBUI_PORT"
  export AMLEXEC_TEST_SPARK_MASTER_REST="http://127.0.0.1:$SPARK_MASTER_REST_PORT"
  spark_log "standalone ready: $AMLEXEC_TEST_SPARK_MASTER (web UI $AMLEXEC_TEST_SPARK_MASTER_WEBUI)"
}

ensure_spark_standalone() {
  spark_standalone_prepare
  spark_standalone_start
  spark_standalone_wait
}

# ------------------------------------------------------------- YARN (MiniYARNCluster, Hadoop 3.x)

spark_hadoop_version() {
  local jar
  jar="$(ls "$1"/jars/hadoop-client-api-*.jar 2>/dev/null | head -n 1)"
  [ -n "$jar" ] || { echo "spark: no hadoop-client-api jar in $1/jars" >&2; return 1; }
  jar="${jar##*/hadoop-client-api-}"
  echo "${jar%.jar}"
}

spark_yarn_dir() { echo "$INFRA/yarn/hadoop-$1"; }

spark_yarn_prepare() {
  spark_tools
  local home hv dir src="$REPO/scripts/infra/yarn" want
  home="$(spark_venv "$SPARK_PYSPARK_VERSION")"
  hv="$(spark_hadoop_version "$home")"
  dir="$(spark_yarn_dir "$hv")"
  spark_mvn_copy "$src/pom.xml" "$dir/jars" "-Dhadoop.version=$hv"
  want="$(sha256sum "$src/MiniYarn.java" | cut -c1-16)"
  if [ "$(cat "$dir/classes/.amlexec-compiled" 2>/dev/null)" != "$want" ]; then
    rm -rf "$dir/classes"
    mkdir -p "$dir/classes"
    "$JAVA_HOME/bin/javac" -nowarn -d "$dir/classes" -cp "$dir/jars/*" "$src/MiniYarn.java"
    echo "$want" >"$dir/classes/.amlexec-compiled"
  fi
  # A `yarn` command over the same jars, as on a cluster's head node (pyspark ships none):
  # `yarn application -list|-status|-kill`, `yarn logs -applicationId`, `yarn node -list`.
  mkdir -p "$dir/bin"
  cat >"$dir/bin/yarn.tmp" <<YARN
#!/bin/sh
# The yarn CLI of the test YARN (scripts/infra/spark.sh): Hadoop's own CLI classes.
HADOOP_CONF_DIR="\${HADOOP_CONF_DIR:-$INFRA/yarn/conf}"
case "\$1" in
  application|applicationattempt|container) cls=org.apache.hadoop.yarn.client.cli.ApplicationCLI ;;
  logs) cls=org.apache.hadoop.yarn.client.cli.LogsCLI; shift ;;
  node) cls=org.apache.hadoop.yarn.client.cli.NodeCLI; shift ;;
  queue) cls=org.apache.hadoop.yarn.client.cli.QueueCLI; shift ;;
  *) echo "usage: yarn application|applicationattempt|container|logs|node|queue ..." >&2; exit 2 ;;
esac
exec "$JAVA_HOME/bin/java" -Xmx256m -Dlog4j.configuration=file:$src/log4j-cli.properties \\
  -cp "\$HADOOP_CONF_DIR:$dir/jars/*" "\$cls" "\$@"
YARN
  chmod +x "$dir/bin/yarn.tmp"
  mv "$dir/bin/yarn.tmp" "$dir/bin/yarn"
  # The SPARK_HOME's own defaults for YARN, as a head node has them: Spark's jars are already on
  # the node (no 400 MB upload a submit), staging on the local file system, loopback only.
  mkdir -p "$home/conf"
  cat >"$home/conf/spark-defaults.conf.tmp" <<CONF
# Written by scripts/infra/spark.sh (ensure_yarn): the test YARN's node is this machine.
spark.yarn.jars                         local:$home/jars/*
spark.yarn.stagingDir                   file://$INFRA/yarn/staging
spark.yarn.appMasterEnv.SPARK_LOCAL_IP  127.0.0.1
spark.executorEnv.SPARK_LOCAL_IP        127.0.0.1
CONF
  mv "$home/conf/spark-defaults.conf.tmp" "$home/conf/spark-defaults.conf"
}

spark_yarn_web() { echo "http://127.0.0.1:$((YARN_PORT_BASE + 58))"; }
spark_yarn_node_running() { curl -fsS -m 3 "$(spark_yarn_web)/ws/v1/cluster/nodes" 2>/dev/null | grep -q '"state":"RUNNING"'; }
spark_yarn_ready() { grep -q '^MINIYARN READY' "$INFRA/yarn/miniyarn.log" 2>/dev/null && spark_yarn_node_running; }

spark_yarn_start() {
  local home hv dir run="$INFRA/yarn/run"
  SPARK_YARN_PID=""
  if spark_yarn_node_running && [ -f "$INFRA/yarn/conf/yarn-site.xml" ]; then
    spark_log "YARN already answers on $(spark_yarn_web): reused"
    return
  fi
  home="$(spark_venv "$SPARK_PYSPARK_VERSION")"
  hv="$(spark_hadoop_version "$home")"
  dir="$(spark_yarn_dir "$hv")"
  # A fresh cluster each time: no applications, logs or staging files of an earlier run.
  rm -rf "$run" "$INFRA/yarn/conf" "$INFRA/yarn/staging"
  mkdir -p "$run" "$INFRA/yarn/staging"
  spark_log "starting YARN (MiniYARNCluster, Hadoop $hv; log: $INFRA/yarn/miniyarn.log)"
  # cwd: MiniYARNCluster puts its own files under ./target.
  (cd "$run" && exec "$JAVA_HOME/bin/java" -Xmx768m \
    -Dlog4j.configuration="file:$REPO/scripts/infra/yarn/log4j.properties" \
    -cp "$dir/classes:$dir/jars/*" MiniYarn "$INFRA/yarn/conf" "$run" \
    "$YARN_PORT_BASE" "$YARN_NM_MEMORY_MB" 4) >"$INFRA/yarn/miniyarn.log" 2>&1 </dev/null &
  SPARK_YARN_PID=$!
  STARTED_PIDS+=("$SPARK_YARN_PID")
}

spark_yarn_wait() {
  local home hv
  spark_wait "YARN" "${SPARK_YARN_PID:-}" 120 "$INFRA/yarn/miniyarn.log" spark_yarn_node_running
  [ -z "${SPARK_YARN_PID:-}" ] || spark_wait "YARN" "$SPARK_YARN_PID" 30 "$INFRA/yarn/miniyarn.log" spark_yarn_ready
  home="$(spark_venv "$SPARK_PYSPARK_VERSION")"
  hv="$(spark_hadoop_version "$home")"
  export AMLEXEC_TEST_HADOOP_CONF_DIR="$INFRA/yarn/conf"
  export AMLEXEC_TEST_YARN_RM_URL
  AMLEXEC_TEST_YARN_RM_URL="$(spark_yarn_web)"
  export AMLEXEC_TEST_YARN="$(spark_yarn_dir "$hv")/bin/yarn"
  export AMLEXEC_TEST_YARN_HADOOP_VERSION="$hv"
  export AMLEXEC_TEST_YARN_LOG_DIR="$INFRA/yarn/run/app-logs"
  spark_log "YARN ready: ResourceManager $AMLEXEC_TEST_YARN_RM_URL, HADOOP_CONF_DIR=$AMLEXEC_TEST_HADOOP_CONF_DIR"
}

ensure_yarn() {
  spark_yarn_prepare
  spark_yarn_start
  spark_yarn_wait
}

# --------------------------------------------------------------- Apache Livy over Spark 3.5
# Livy 0.7.1-incubating: the newest on Maven Central (0.8.0/0.9.0 were never published there). Its
# server refuses Spark >= 3.0 by a version gate, which LivyLauncher.java lifts before it runs
# Livy's own main. Batches work for real; sessions cannot (Livy's REPL jars are not published).

spark_livy_home() { echo "$INFRA/livy/livy-$LIVY_VERSION"; }

spark_livy_prepare() {
  spark_tools
  local livy src="$REPO/scripts/infra/livy" want
  spark_venv "$LIVY_PYSPARK_VERSION" >/dev/null
  livy="$(spark_livy_home)"
  # The layout of Livy's binary distribution: jars/ (server), rsc-jars/ (sessions' remote context).
  spark_mvn_copy "$src/server/pom.xml" "$livy/jars"
  spark_mvn_copy "$src/rsc/pom.xml" "$livy/rsc-jars"
  want="$(sha256sum "$src/LivyLauncher.java" | cut -c1-16)"
  if [ "$(cat "$livy/classes/.amlexec-compiled" 2>/dev/null)" != "$want" ]; then
    rm -rf "$livy/classes"
    mkdir -p "$livy/classes"
    "$JAVA_HOME/bin/javac" -nowarn -d "$livy/classes" "$src/LivyLauncher.java"
    echo "$want" >"$livy/classes/.amlexec-compiled"
  fi
  mkdir -p "$livy/conf" "$livy/logs"
  cp "$src/log4j.properties" "$livy/conf/log4j.properties"
  cat >"$livy/conf/livy.conf.tmp" <<CONF
# Written by scripts/infra/spark.sh (ensure_livy).
livy.server.host = 127.0.0.1
livy.server.port = $LIVY_PORT
livy.spark.master = local[2]
livy.spark.deploy-mode = client
# Batches may name any local file (the tests' files live in pytest's temp folders).
livy.file.local-dir-whitelist = /
livy.server.recovery.mode = off
CONF
  mv "$livy/conf/livy.conf.tmp" "$livy/conf/livy.conf"
}

spark_livy_answers() { spark_url_answers "http://127.0.0.1:$LIVY_PORT/version"; }

spark_livy_start() {
  local home livy venv="$INFRA/spark/pyspark-$LIVY_PYSPARK_VERSION"
  SPARK_LIVY_PID=""
  if spark_livy_answers; then
    spark_log "Livy already answers on 127.0.0.1:$LIVY_PORT: reused"
    return
  fi
  home="$(spark_venv "$LIVY_PYSPARK_VERSION")"
  livy="$(spark_livy_home)"
  spark_log "starting Livy $LIVY_VERSION over pyspark $LIVY_PYSPARK_VERSION (log: $livy/logs/livy.log)"
  (cd "$livy" && LIVY_HOME="$livy" LIVY_CONF_DIR="$livy/conf" SPARK_HOME="$home" \
    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$venv/bin/python" PATH="$venv/bin:$PATH" \
    exec "$JAVA_HOME/bin/java" -Xmx512m -cp "$livy/jars/*:$livy/conf:$livy/classes" \
    LivyLauncher) >"$livy/logs/livy.log" 2>&1 </dev/null &
  SPARK_LIVY_PID=$!
  STARTED_PIDS+=("$SPARK_LIVY_PID")
}

spark_livy_wait() {
  spark_wait "Livy" "${SPARK_LIVY_PID:-}" 120 "$(spark_livy_home)/logs/livy.log" spark_livy_answers
  export AMLEXEC_TEST_LIVY_URL="http://127.0.0.1:$LIVY_PORT"
  export AMLEXEC_TEST_LIVY_SPARK_HOME
  AMLEXEC_TEST_LIVY_SPARK_HOME="$(spark_venv "$LIVY_PYSPARK_VERSION")"
  export AMLEXEC_TEST_LIVY_PYTHON="$INFRA/spark/pyspark-$LIVY_PYSPARK_VERSION/bin/python"
  spark_log "Livy ready: $AMLEXEC_TEST_LIVY_URL (batches; sessions need REPL jars Livy never published)"
}

ensure_livy() {
  spark_livy_prepare
  spark_livy_start
  spark_livy_wait
}

# ------------------------------------------------------------------------------- all three

# Downloads and builds in parallel (background subshells: they only write files), then the three
# services started together from this shell (their PIDs in STARTED_PIDS), then each waited for.
ensure_spark_infra() {
  local pids=() names=() i status=0
  spark_tools
  spark_venv "$SPARK_PYSPARK_VERSION" >/dev/null & pids+=("$!"); names+=("pyspark $SPARK_PYSPARK_VERSION")
  spark_venv "$LIVY_PYSPARK_VERSION" >/dev/null & pids+=("$!"); names+=("pyspark $LIVY_PYSPARK_VERSION")
  spark_livy_prepare & pids+=("$!"); names+=("Livy")
  spark_yarn_prepare & pids+=("$!"); names+=("YARN")
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "spark: preparing ${names[$i]} failed" >&2; status=1; }
  done
  [ "$status" = 0 ] || return 1
  spark_standalone_start
  spark_yarn_start
  spark_livy_start
  spark_standalone_wait
  spark_yarn_wait
  spark_livy_wait
}
