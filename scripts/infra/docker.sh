# Docker for the tests: install the engine, start dockerd without bridge/iptables, build the base
# images locally (Docker Hub is unreachable here), all cached. Sourced by scripts/test.sh.

docker_bin() { if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi; }
docker_cli() { "$(docker_bin)" "$@"; }

docker_answers() { [ -n "$(docker_bin)" ] && timeout 10 "$(docker_bin)" version >/dev/null 2>&1; }

ensure_docker_engine() {
  if docker_answers; then echo "docker: engine already running"; return; fi
  if ! command -v dockerd >/dev/null; then apt_install docker.io; fi
  echo "docker: starting dockerd (log: $INFRA/dockerd.log)"
  dockerd --bridge=none --iptables=false --pidfile "$INFRA/dockerd.pid" >"$INFRA/dockerd.log" 2>&1 &
  STARTED_PIDS+=("$!")
  for _ in $(seq 1 120); do
    if docker_answers; then echo "docker: engine ready"; return; fi
    sleep 0.5
  done
  echo "docker: dockerd did not come up; last log lines:" >&2
  tail -n 30 "$INFRA/dockerd.log" >&2
  return 1
}

image_exists() { docker_cli image inspect "$1" >/dev/null 2>&1; }

ensure_base_image() {
  local tag="$1"
  if image_exists "$tag"; then echo "docker: $tag cached"; return; fi
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  local mirror
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "docker: building $tag with mmdebstrap (about 30 s)"
  local tar="$INFRA/base-rootfs.tar"
  mmdebstrap --quiet --variant=apt --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,python3-pip,procps \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/host-ca-bundle.crt"; if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates >/dev/null; fi' \
    bookworm "$tar" "$mirror"
  docker_cli import -c 'CMD ["python3"]' -c 'ENV LANG=C.UTF-8' "$tar" "$tag" >/dev/null
  rm -f "$tar"
}

ensure_pyspark_image() {
  local tag="$1" base="$2"
  if image_exists "$tag"; then echo "docker: $tag cached"; return; fi
  echo "docker: building $tag (Java + pyspark; a few minutes the first time)"
  local ctx="$INFRA/pyspark-image"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
RUN mkdir -p /usr/share/man/man1 && apt-get update -qq && apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/env && /opt/env/bin/pip install -q --no-cache-dir pyspark
ENV PATH=/opt/env/bin:\$PATH SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=/opt/env/bin/python
DOCKERFILE
  DOCKER_BUILDKIT=0 docker_cli build -q --network host --force-rm -t "$tag" "$ctx" >/dev/null
}
