# Test images built locally (Docker Hub is unreachable here), cached by tag — built only when the
# engine lacks them: a Debian python3 base made with mmdebstrap from the machine's own apt mirror
# (read from the apt sources at run time; the host CA bundle baked in so pip works behind the TLS
# proxy), and one with Java + pyspark on top for the PySpark-in-Docker test. Sourced by scripts/test.sh.

image_exists() { docker_cli image inspect "$1" >/dev/null 2>&1; }

apt_mirror() {
  local mirror=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /:\/\//){print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$mirror" ] || { echo "images: no Debian mirror in the apt sources" >&2; return 1; }
  echo "$mirror"
}

ensure_base_image() {
  local tag="$1"
  if image_exists "$tag"; then echo "images: $tag cached"; return; fi
  ensure_packages mmdebstrap:mmdebstrap
  local mirror tar="$INFRA/base-rootfs.tar"
  mirror="$(apt_mirror)"
  echo "images: building $tag with mmdebstrap (about 30 s)"
  rm -f "$tar"
  mmdebstrap --quiet --variant=apt --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,python3-pip,procps,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --customize-hook='if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates >/dev/null; else cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"; fi' \
    bookworm "$tar" "$mirror"
  docker_cli import -c 'CMD ["python3"]' -c 'ENV LANG=C.UTF-8' "$tar" "$tag" >/dev/null
  rm -f "$tar"
  echo "images: $tag built"
}

ensure_pyspark_image() {
  local tag="$1" base="$2"
  if image_exists "$tag"; then echo "images: $tag cached"; return; fi
  echo "images: building $tag (Java + pyspark in /opt/env; a few minutes the first time)"
  local ctx="$INFRA/pyspark-image"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
RUN mkdir -p /usr/share/man/man1 && apt-get update -qq && apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/env && /opt/env/bin/pip install -q --no-cache-dir --disable-pip-version-check pyspark
ENV PATH=/opt/env/bin:\$PATH SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=/opt/env/bin/python
DOCKERFILE
  # The classic builder: BuildKit would try to pull its frontend; host network: no bridge here.
  DOCKER_BUILDKIT=0 docker_cli build -q --network host --force-rm -t "$tag" "$ctx" >/dev/null
  echo "images: $tag built"
}
