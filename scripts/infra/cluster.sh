# The Spark cluster target's test infrastructure: the sshd "head node" hosts (sshd.sh) in front of a
# Spark standalone master + worker, a single-node YARN and a Livy server (spark.sh), all on loopback,
# plus what makes the SSH user a cluster user as on a real head node: YARN's staging folder is
# writable by it, and its aggregated logs are readable by it (`yarn logs`). Sourced, never run;
# expects REPO and INFRA, common.sh, sshd.sh and spark.sh. Exports what those two export.

# cluster_yarn_user_access: the SSH user submits to YARN and reads its own aggregated logs. On a
# cluster the NodeManager runs as yarn and the user's log folder is the user's; here the NodeManager
# is root, so the user's folder gets the user's group, setgid (what the NodeManager adds later
# inherits it; its files are 640).
cluster_yarn_user_access() {
  chmod 1777 "$INFRA/yarn/staging"
  local logs="$AMLEXEC_TEST_YARN_LOG_DIR/$SSH_TEST_USER"
  mkdir -p "$logs"
  chgrp -R "$SSH_TEST_USER" "$logs"
  chmod -R g+rX "$logs"
  find "$logs" -type d -exec chmod g+s {} +
}

# ensure_cluster_infra [sshd standalone yarn livy]: start (or reuse) the services named (default all).
ensure_cluster_infra() {
  local services=" ${*:-sshd standalone yarn livy} "
  has() { case "$services" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
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
    cluster_yarn_user_access
  fi
  if has livy; then spark_livy_wait; fi
}
