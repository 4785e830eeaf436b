# The Docker engine for the tests: installs docker.io when absent and starts dockerd when nothing
# answers (no systemd here: `dockerd --bridge=none --iptables=false`, log and pidfile under .infra/).
# A dockerd started here is stopped at exit by scripts/infra/common.sh; one already running is left
# alone. DOCKER_HOST=unix:///path selects another socket; AMLEXEC_DOCKERD_ARGS adds dockerd flags
# (e.g. --data-root/--exec-root for an engine separate from the machine's). Sourced by scripts/test.sh.

docker_bin() {
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || true; fi
}
docker_cli() { "$(docker_bin)" "$@"; }
docker_answers() { [ -n "$(docker_bin)" ] && timeout 10 "$(docker_bin)" version >/dev/null 2>&1; }

ensure_docker_engine() {
  ensure_packages docker.io:dockerd docker.io:/usr/bin/docker
  if docker_answers; then echo "docker: engine already running (${DOCKER_HOST:-unix:///var/run/docker.sock})"; return; fi
  local name=dockerd args=(--bridge=none --iptables=false)
  case "${DOCKER_HOST:-}" in
    "") ;;
    unix://*)
      name="dockerd-$(printf %s "$DOCKER_HOST" | sha256sum | cut -c1-8)"
      args+=(--host "$DOCKER_HOST")
      ;;
    *) echo "docker: DOCKER_HOST=$DOCKER_HOST does not answer and is not a local socket" >&2; return 1 ;;
  esac
  # shellcheck disable=SC2206 # extra flags are words on purpose
  args+=(--pidfile "$INFRA/$name.pid" ${AMLEXEC_DOCKERD_ARGS:-})
  echo "docker: starting dockerd ${args[*]} (log: $INFRA/$name.log)"
  "$(command -v dockerd || echo /usr/sbin/dockerd)" "${args[@]}" >"$INFRA/$name.log" 2>&1 </dev/null &
  STARTED_PIDS+=("$!")
  local pid=$!
  for _ in $(seq 1 240); do
    if docker_answers; then echo "docker: engine ready (pid $pid)"; return; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.25
  done
  echo "docker: dockerd did not come up; last log lines:" >&2
  tail -n 30 "$INFRA/$name.log" >&2
  return 1
}
