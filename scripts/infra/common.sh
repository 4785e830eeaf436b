# Shared helpers for scripts/test.sh: apt installs on demand (one `apt-get update`, only when
# something is missing) and stopping, at exit, exactly the processes this run started (by PID).
# Sourced, never run; expects REPO and INFRA to be set.

STARTED_PIDS=()
APT_UPDATED=0

stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

install_traps() {
  trap stop_started EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    echo "apt: updating package lists (something is missing: $*)"
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_packages "pkg:command-or-path" ...: apt-install each package whose command or file is missing.
ensure_packages() {
  local missing=() item
  for item in "$@"; do
    command -v "${item#*:}" >/dev/null 2>&1 || [ -e "${item#*:}" ] || missing+=("${item%%:*}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# The project's venv (.venv): created once, re-installed only when pyproject.toml changed.
ensure_venv() {
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  [ -x "$REPO/.venv/bin/python" ] || python3 -m venv "$REPO/.venv"
  local stamp="$REPO/.venv/.amlexec-installed" want
  want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$REPO/.venv/bin/python" -c 'import jupyter_amlexec' 2>/dev/null; then
    echo "venv: installing jupyter_amlexec[test] (editable)"
    "$REPO/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$REPO/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO[test]"
    echo "$want" >"$stamp"
  else
    echo "venv: up to date"
  fi
  # an editable install has no bytecode, and PYTHONDONTWRITEBYTECODE (set on these machines) keeps
  # imports from writing it: every CLI, kernel and guardian process of the tests would compile the
  # package again (~70 ms each). A pip-installed package has its .pyc files; so do we.
  "$REPO/.venv/bin/python" -m compileall -q -j 0 "$REPO/jupyter_amlexec" >/dev/null
  export PATH="$REPO/.venv/bin:$PATH"
}
