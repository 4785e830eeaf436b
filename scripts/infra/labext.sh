# The JupyterLab extension in scripts/test.sh: frontend checks (tsc, eslint, jest), the dev
# venv's copy of the extension for the browser tests, and the release path (sdist -> wheel with
# the prebuilt extension) installed into a fresh venv with node hidden. Recipe and pitfalls:
# ../shared/notes/labextension.md. Sourced, never run; expects REPO and INFRA to be set and the
# project venv's bin on PATH (jlpm and jupyter-builder come from jupyter-builder in the venv).

LABEXT_DIR="$REPO/labextension"
LABEXT_OUT="$REPO/jupyter_amlexec/labextension"

# node >= 20.19 (Rspack's range); Debian 12's own nodejs (18) cannot build the extension.
labext_check_node() {
  command -v node >/dev/null || { echo "labext: node is not on PATH (Node 20.19+ is needed to build)" >&2; return 1; }
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || { echo "labext: node $(node --version) is too old: Node ^20.19 or >=22.12 is needed" >&2; return 1; }
  # jlpm (Yarn) reads no npm cafile: behind a TLS-inspecting proxy it needs one of these (pitfall 3)
  if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -z "${YARN_CA_FILE_PATH:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export YARN_CA_FILE_PATH=/etc/ssl/certs/ca-certificates.crt
  fi
}

# jlpm install against the committed lockfile (CI=true makes it immutable: a stale lock fails).
labext_install_deps() {
  (cd "$LABEXT_DIR" && jlpm install >"$INFRA/labext-install.log" 2>&1) \
    || { tail -30 "$INFRA/labext-install.log" >&2; return 1; }
}

# Type check, lint, and the unit tests of the pure logic (labextension/test/*.test.ts).
labext_frontend_checks() {
  (cd "$LABEXT_DIR" && jlpm run typecheck && jlpm run lint && jlpm run test --ci)
}

# Fresh build of the extension into jupyter_amlexec/labextension, linked into the project venv so
# the browser tests run the current TypeScript (an editable install copies a bundle once, pitfall 11).
labext_develop() {
  rm -rf "$LABEXT_OUT"
  (cd "$LABEXT_DIR" && jlpm run build:prod >"$INFRA/labext-build.log" 2>&1) \
    || { tail -30 "$INFRA/labext-build.log" >&2; return 1; }
  (cd "$REPO" && jupyter-builder develop . --overwrite >/dev/null)
}

# sdist (builds the frontend once) then a wheel from that sdist, into $INFRA/dist. The output is
# removed first: skip-if-exists would otherwise pack a stale bundle (pitfall 5).
labext_build_dist() {
  rm -rf "$LABEXT_OUT" "$INFRA/dist"
  python -m pip install -q --disable-pip-version-check build
  (cd "$REPO" && CI=true python -m build --outdir "$INFRA/dist" >"$INFRA/labext-dist.log" 2>&1) \
    || { tail -40 "$INFRA/labext-dist.log" >&2; return 1; }
  ls "$INFRA"/dist/*.whl "$INFRA"/dist/*.tar.gz
  labext_develop  # the build removed nothing of ours, but leave the dev venv on a fresh bundle
}

# The built wheel in a fresh venv, with node hidden from PATH: both extension lists say OK.
labext_wheel_check() {
  local venv="$INFRA/wheel-venv" wheel out
  wheel="$(ls "$INFRA"/dist/jupyter_amlexec-*.whl | head -1)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${wheel}[jupyter]"
  if env -i HOME="$HOME" PATH="$venv/bin" sh -c 'command -v node' >/dev/null 2>&1; then
    echo "labext: node is still on the hidden PATH" >&2; return 1
  fi
  out="$(env -i HOME="$HOME" PATH="$venv/bin" JUPYTER_CONFIG_DIR="$venv/etc/jupyter-user" \
    "$venv/bin/jupyter" labextension list 2>&1)"
  echo "$out" | grep -E "jupyter-amlexec v[0-9.]+ .*enabled.*OK" \
    || { echo "labext: the lab extension is not enabled OK in a fresh venv:" >&2; echo "$out" >&2; return 1; }
  out="$(env -i HOME="$HOME" PATH="$venv/bin" JUPYTER_CONFIG_DIR="$venv/etc/jupyter-user" \
    "$venv/bin/jupyter" server extension list 2>&1)"
  echo "$out" | grep -E "jupyter_amlexec.*enabled" >/dev/null \
    && echo "$out" | grep -E "jupyter_amlexec [0-9.]+ .*OK" \
    || { echo "labext: the server extension is not enabled OK in a fresh venv:" >&2; echo "$out" >&2; return 1; }
}
