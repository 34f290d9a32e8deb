#!/usr/bin/env bash
# Builds Traefik (the local clusters' router) from its Go module and extracts the Gateway API and Istio CRDs.
# Usage: build.sh <bin dir> <crd dir>. Idempotent: skips the build when <bin dir>/traefik already reports the pinned
# version, and rewrites the CRD files every time (cheap, and an upgrade of the pins replaces them).
# Pins: Traefik v3.6.x because the v3.7 patches `replace` a nested module with a local path the proxy cannot serve;
# v3.6.12's go.mod only replaces modules with other published modules. Builds share the default Go build cache.
set -euo pipefail
BIN="${1:?usage: build.sh <bin dir> <crd dir>}"
CRDS="${2:?usage: build.sh <bin dir> <crd dir>}"
TRAEFIK_VERSION=v3.6.12
GATEWAY_API_VERSION=v1.6.3
ISTIO_API_VERSION=v1.32.0

# Prints the module's unpacked directory in the module cache (downloads it through the Go module proxy if needed).
module_dir() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

mkdir -p "$BIN" "$CRDS"
# (The output is read whole first: `grep -q` closing the pipe early would fail the pipeline under pipefail.)
if [[ -x "$BIN/traefik" ]] && [[ "$("$BIN/traefik" version 2>/dev/null)" =~ Version:[[:space:]]*${TRAEFIK_VERSION#v}($'\n'|$) ]]; then
  echo "traefik ${TRAEFIK_VERSION} already in $BIN"
else
  SRC="$(module_dir "github.com/traefik/traefik/v3@${TRAEFIK_VERSION}")"
  # The module cache is read-only; build in a writable copy so `go` may write go.sum entries it needs.
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/traefik-src.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  cp -r "$SRC/." "$WORK/"
  chmod -R u+w "$WORK"
  start=$(date +%s)
  (cd "$WORK" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION#v} -X github.com/traefik/traefik/v3/pkg/version.Codename=slipway" \
    -o "$BIN/traefik.tmp" ./cmd/traefik)
  mv "$BIN/traefik.tmp" "$BIN/traefik"
  echo "built traefik ${TRAEFIK_VERSION} into $BIN in $(( $(date +%s) - start ))s"
fi

# Gateway API standard channel: every CRD of the bundle (the safe-upgrades admission policy is not a CRD; kept apart).
GW="$(module_dir "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}")"
mkdir -p "$CRDS/gateway-api"
rm -f "$CRDS/gateway-api/"*.yaml
for f in "$GW"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
  case "$f" in *vap_safeupgrades*) continue ;; esac
  install -m 0644 "$f" "$CRDS/gateway-api/"
done

# Istio: only the VirtualService CRD (the multi-document file holds every Istio CRD; no Envoy can be built here,
# so the adapter is contract-tested against the CRD, not routed).
IS="$(module_dir "istio.io/api@${ISTIO_API_VERSION}")"
mkdir -p "$CRDS/istio"
awk 'function flush() { if (doc ~ /\n  name: virtualservices\.networking\.istio\.io\n/) printf "%s", doc; doc = "" }
     /^---[[:space:]]*$/ { flush(); next }
     { doc = doc $0 "\n" }
     END { flush() }' "$IS/kubernetes/customresourcedefinitions.gen.yaml" > "$CRDS/istio/virtualservices.networking.istio.io.yaml"
grep -q '^kind: CustomResourceDefinition' "$CRDS/istio/virtualservices.networking.istio.io.yaml" \
  || { echo "VirtualService CRD not found in istio.io/api@${ISTIO_API_VERSION}" >&2; exit 1; }
echo "CRDs: $(ls "$CRDS/gateway-api" | wc -l) Gateway API (${GATEWAY_API_VERSION} standard), 1 Istio (${ISTIO_API_VERSION}) in $CRDS"
