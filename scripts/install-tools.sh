#!/usr/bin/env bash
# Installs the pinned tools that check what we ship into .tools/ (git-ignored), from the
# package registries only (no downloads from anywhere else). Idempotent: a tool already at its
# pinned version is left alone, so a second run takes a second or two.
#
#   kustomize            renders k8s/ (Go module, built with the local Go toolchain)
#   kubernetes-validate  validates every rendered object against the Kubernetes JSON schemas it
#                        bundles (PyPI; works offline), in a virtualenv with every package pinned
#   ghz                  drives the Check RPC in `npm run bench:check` (Go module, built like kustomize)
#   node 24              the official Node.js 24 binary from the npm registry; the Dockerfile's
#                        runtime, so `npm run test:node24` tests the runtime that ships
#   Envoy Gateway CRDs   the OpenAPI schemas of the pinned Envoy Gateway's CRDs, extracted from
#                        its Go module (scripts/envoy-gateway-crds.ts), which
#                        test/e2e/envoy-gateway-manifests.test.ts checks k8s/overlays/envoy-gateway
#                        against
#
# test/e2e/manifests.test.ts reads the pins below and checks the Dockerfile uses the same Node.
set -euo pipefail
cd "$(dirname "$0")/.."

KUSTOMIZE_VERSION=v5.8.1
KUBERNETES_VALIDATE_VERSION=1.37.0
NODE24_VERSION=24.21.0
GHZ_VERSION=v0.120.0
ENVOY_GATEWAY_VERSION=v1.9.1

TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/bin"

log() { echo "install-tools: $*"; }

# require_go <what for>: the pinned Go-module tools build (or download) with the Go on the machine.
require_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: Go is needed to $1" >&2
    exit 1
  fi
}

install_kustomize() {
  local bin="$TOOLS/bin/kustomize"
  if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null)" = "$KUSTOMIZE_VERSION" ]; then
    log "kustomize $KUSTOMIZE_VERSION already in .tools/bin"
    return
  fi
  require_go "build kustomize (sigs.k8s.io/kustomize/kustomize/v5)"
  log "building kustomize $KUSTOMIZE_VERSION with $(go version | cut -d' ' -f3) (about a minute the first time)"
  # GOTOOLCHAIN=local: never fetch another Go; the pin builds with the Go on the machine.
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  [ "$("$bin" version)" = "$KUSTOMIZE_VERSION" ] || { echo "install-tools: kustomize version mismatch" >&2; exit 1; }
}

install_ghz() {
  local bin="$TOOLS/bin/ghz" stamp="$TOOLS/bin/ghz.version"
  # `go install` of a module stamps no version into ghz (it prints "dev"): a stamp file says
  # which pin is installed.
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$GHZ_VERSION" ]; then
    log "ghz $GHZ_VERSION already in .tools/bin"
    return
  fi
  require_go "build ghz (github.com/bojand/ghz/cmd/ghz)"
  log "building ghz $GHZ_VERSION with $(go version | cut -d' ' -f3) (about a minute the first time)"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
  echo "$GHZ_VERSION" >"$stamp"
}

install_kubernetes_validate() {
  local venv="$TOOLS/k8s-validate"
  local requirements="scripts/tools-requirements.txt"
  # The stamp is the requirements file as installed: a changed pin reinstalls.
  if [ -x "$venv/bin/kubernetes-validate" ] && cmp -s "$requirements" "$venv/installed-requirements.txt"; then
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION already in .tools/k8s-validate"
    return
  fi
  grep -qx "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "$requirements" ||
    { echo "install-tools: $requirements does not pin kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2; exit 1; }
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into .tools/k8s-validate"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  # --no-deps: exactly the pinned set, nothing resolved anew on a later day.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
  cp "$requirements" "$venv/installed-requirements.txt"
}

install_node24() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "install-tools: no Node.js package for $(uname -m)" >&2; exit 1 ;;
  esac
  local dir="$TOOLS/node24" link="$TOOLS/node24/bin/node"
  if [ -x "$link" ] && [ "$("$link" --version 2>/dev/null)" = "v$NODE24_VERSION" ]; then
    log "node $NODE24_VERSION already in .tools/node24"
    return
  fi
  log "installing node $NODE24_VERSION (npm package node-linux-$arch) into .tools/node24"
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  # `node-linux-<arch>` is the package the registry's `node` package installs for this
  # platform (from its preinstall script); asking for it directly needs no install scripts.
  npm install --prefix "$dir" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
    --loglevel=error "node-linux-$arch@$NODE24_VERSION" >/dev/null
  ln -sf "../node_modules/node-linux-$arch/bin/node" "$link"
  [ "$("$link" --version)" = "v$NODE24_VERSION" ] || { echo "install-tools: node version mismatch" >&2; exit 1; }
}

install_envoy_gateway_crds() {
  local dir="$TOOLS/envoy-gateway/$ENVOY_GATEWAY_VERSION"
  local out="$dir/crd-schemas.json" stamp="$dir/extracted-by.sha256"
  # The stamp is the extraction script as it ran: a changed script extracts again.
  if [ -s "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$(sha256sum scripts/envoy-gateway-crds.ts | cut -d' ' -f1)" ]; then
    log "Envoy Gateway $ENVOY_GATEWAY_VERSION CRD schemas already in .tools/envoy-gateway"
    return
  fi
  require_go "fetch the Envoy Gateway module (github.com/envoyproxy/gateway)"
  # From the Go module proxy into the module cache (a few seconds on a cold cache), then read.
  log "extracting the CRD schemas of Envoy Gateway $ENVOY_GATEWAY_VERSION into .tools/envoy-gateway"
  node --import tsx scripts/envoy-gateway-crds.ts "$ENVOY_GATEWAY_VERSION" "$out"
  sha256sum scripts/envoy-gateway-crds.ts | cut -d' ' -f1 >"$stamp"
}

install_kustomize
install_kubernetes_validate
install_node24
install_ghz
install_envoy_gateway_crds
log "done (kustomize $KUSTOMIZE_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION, node $NODE24_VERSION, ghz $GHZ_VERSION, Envoy Gateway CRDs $ENVOY_GATEWAY_VERSION)"
