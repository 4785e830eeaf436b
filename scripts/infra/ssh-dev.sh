#!/usr/bin/env bash
# The SSH transport tests alone, with their real sshd hosts: `bash scripts/infra/ssh-dev.sh [pytest args]`.
# Starts (or reuses) the two sshd hosts of sshd.sh, runs pytest on tests/core/transport, and stops
# at exit only the sshd processes it started.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
INFRA="$REPO/.infra"
mkdir -p "$INFRA"
cd "$REPO"
source "$REPO/scripts/infra/common.sh"
source "$REPO/scripts/infra/sshd.sh"
install_traps
ensure_sshd_hosts
PY="$REPO/.venv/bin/python"
"$PY" -m pytest -q -p no:cacheprovider "${@:-tests/core/transport}" </dev/null
