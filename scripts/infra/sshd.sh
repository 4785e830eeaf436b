# Two real SSH "remote hosts" for the tests: sshd on 127.0.0.2:2222 and 127.0.0.3:2222 (loopback
# addresses are distinct hosts), key-only auth, their own configs, host keys and pidfiles under
# $INFRA/sshd. Test users: amlexec-ssh (group docker; the docker CLI of docker.sh is on sshd's default
# PATH) and amlexec-nodocker (no Docker access); client keys: one plain, one with a passphrase; a known_hosts for both hosts.
# An sshd started here is stopped at exit by scripts/infra/common.sh (its PID is in STARTED_PIDS);
# one already answering with this config is left alone. Sourced by scripts/test.sh; expects REPO
# and INFRA. Exports AMLEXEC_TEST_SSH_* (see the end of ensure_sshd_hosts).

SSHD_HOSTS=(127.0.0.2 127.0.0.3)
SSHD_PORT="${AMLEXEC_TEST_SSH_PORT:-2222}"
SSH_TEST_USER=amlexec-ssh
SSH_TEST_NODOCKER_USER=amlexec-nodocker
SSH_TEST_PASSPHRASE=amlexec-test-passphrase # a test key's passphrase, not a secret of anyone's

_sshd_user() {
  local user=$1 group=${2:-}
  local groups=()
  [ -n "$group" ] && groups=(-G "$group")
  # another checkout on this machine may be making the same user right now: exists = fine
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "${groups[@]}" "$user" 2>/dev/null || id "$user" >/dev/null
  usermod -p '*' "$user" # locked accounts are refused by sshd even for keys
}

_sshd_keys() {
  local dir=$INFRA/sshd
  mkdir -p "$dir/authorized" "$dir/client"
  [ -f "$dir/client/id_plain" ] || ssh-keygen -q -t ed25519 -N '' -C amlexec-plain -f "$dir/client/id_plain"
  [ -f "$dir/client/id_pass" ] ||
    ssh-keygen -q -t ed25519 -N "$SSH_TEST_PASSPHRASE" -C amlexec-pass -f "$dir/client/id_pass"
  chmod 600 "$dir/client/id_plain" "$dir/client/id_pass"
  local user
  for user in "$SSH_TEST_USER" "$SSH_TEST_NODOCKER_USER"; do
    cat "$dir/client/id_plain.pub" "$dir/client/id_pass.pub" >"$dir/authorized/$user"
    chmod 644 "$dir/authorized/$user"
  done
}

_sshd_start() {
  local addr=$1 dir=$INFRA/sshd/$1
  mkdir -p "$dir" /run/sshd
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "host-$addr" -f "$dir/host_ed25519"
  cat >"$dir/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress $addr
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $INFRA/sshd/authorized/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
UsePAM no
StrictModes no
AllowTcpForwarding yes
ClientAliveInterval 15
MaxStartups 50:30:100
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  local pid
  pid=$(cat "$dir/sshd.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && _sshd_is_ours "$addr" "$dir"; then
    echo "sshd: $addr:$SSHD_PORT already running (pid $pid)"
    return
  fi
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" -D </dev/null &
  pid=$!
  STARTED_PIDS+=("$pid")
  for _ in $(seq 1 80); do
    # ready = our process alive AND the key answering is our host key (not another sshd's)
    if kill -0 "$pid" 2>/dev/null && _sshd_is_ours "$addr" "$dir"; then
      echo "sshd: $addr:$SSHD_PORT ready (pid $pid, log $dir/sshd.log)"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "sshd: $addr:$SSHD_PORT did not come up (another sshd on that port? set AMLEXEC_TEST_SSH_PORT); log:" >&2
  tail -n 20 "$dir/sshd.log" >&2
  return 1
}

_sshd_is_ours() {
  local addr=$1 dir=$2 key
  key=$(cut -d' ' -f2 "$dir/host_ed25519.pub")
  timeout 3 ssh-keyscan -t ed25519 -p "$SSHD_PORT" "$addr" 2>/dev/null | grep -qF "$key"
}

ensure_sshd_hosts() {
  ensure_packages openssh-server:/usr/sbin/sshd openssh-client:ssh-keyscan
  getent group docker >/dev/null || groupadd docker
  _sshd_user "$SSH_TEST_USER" docker
  _sshd_user "$SSH_TEST_NODOCKER_USER"
  _sshd_keys
  local addr hosts=()
  for addr in "${SSHD_HOSTS[@]}"; do
    _sshd_start "$addr"
    hosts+=("$addr:$SSHD_PORT")
  done
  : >"$INFRA/sshd/known_hosts.tmp"
  for addr in "${SSHD_HOSTS[@]}"; do # from our host keys, not from whoever answers on the port
    printf '[%s]:%s %s\n' "$addr" "$SSHD_PORT" "$(cut -d' ' -f1,2 "$INFRA/sshd/$addr/host_ed25519.pub")" \
      >>"$INFRA/sshd/known_hosts.tmp"
  done
  mv "$INFRA/sshd/known_hosts.tmp" "$INFRA/sshd/known_hosts"
  export AMLEXEC_TEST_SSH_HOSTS="${hosts[*]}"
  export AMLEXEC_TEST_SSH_USER="$SSH_TEST_USER"
  export AMLEXEC_TEST_SSH_NODOCKER_USER="$SSH_TEST_NODOCKER_USER"
  export AMLEXEC_TEST_SSH_KEY="$INFRA/sshd/client/id_plain"
  export AMLEXEC_TEST_SSH_PASS_KEY="$INFRA/sshd/client/id_pass"
  export AMLEXEC_TEST_SSH_KEY_PASSPHRASE="$SSH_TEST_PASSPHRASE"
  export AMLEXEC_TEST_SSH_KNOWN_HOSTS="$INFRA/sshd/known_hosts"
}
