#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their Go modules and extracts their CRDs.
# Usage: build.sh <bin dir> <crd dir>. Idempotent: a controller is rebuilt only when <bin dir>/<name>.version does not
# hold its pinned version (the controllers print no version of their own); the CRD files are rewritten every time.
# - v1.9.6: the newest release whose go.mod says `go 1.26.0` (v1.10.x says go 1.27.0, newer than this machine's Go).
# - Each controller's go.mod replaces its own `api` module with `./api`, a nested module that the module zip leaves
#   out. The proxy serves it as github.com/fluxcd/<controller>/api at the same version, so it is copied to ./api in
#   a writable copy of the controller's module. (A wrapper module cannot work: main.go imports internal/ packages.)
# - source-controller v1.9.6 requires github.com/fluxcd/pkg/artifact v0.18.3, which the proxy does not serve; the
#   build replaces it with v0.18.0, the nearest version it does (same minor: storage/server code, patch fixes only).
#   No v1.9.x release requires a served artifact version (v1.9.4 wants v0.18.2), and v1.10.x needs Go 1.27.
# - helm-controller and notification-controller are not served by the Go module proxy (only helm-controller/api):
#   HelmRelease delivery stays contract-only, and merges are applied promptly through the
#   reconcile.fluxcd.io/requestedAt annotation instead of a notification-controller Receiver (docs/gitops.md).
# Builds share the default Go build cache. Every go command runs under `nice` (other work shares 2 cores).
set -euo pipefail
BIN="$(realpath -m "${1:?usage: build.sh <bin dir> <crd dir>}")"
CRDS="$(realpath -m "${2:?usage: build.sh <bin dir> <crd dir>}")"
FLUX_VERSION=v1.9.6 # source-controller and kustomize-controller (both released together as Flux v2.8.x)
CONTROLLERS=(source-controller kustomize-controller)
# Dependencies pinned by a controller's go.mod that the Go module proxy does not serve → the served stand-in.
declare -A REPLACE=(
  [source-controller]="github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0"
)

# Prints the module's unpacked directory in the module cache (downloads it through the Go module proxy if needed).
module_dir() {
  local dir
  dir="$(go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "$dir" ]] || { echo "could not download $1 through the Go module proxy" >&2; return 1; }
  echo "$dir"
}

mkdir -p "$BIN" "$CRDS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flux-src.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
for c in "${CONTROLLERS[@]}"; do
  SRC="$(module_dir "github.com/fluxcd/${c}@${FLUX_VERSION}")"
  if [[ -x "$BIN/$c" ]] && [[ "$(cat "$BIN/$c.version" 2>/dev/null)" == "$FLUX_VERSION ${REPLACE[$c]:-}" ]]; then
    echo "$c ${FLUX_VERSION} already in $BIN"
  else
    API="$(module_dir "github.com/fluxcd/${c}/api@${FLUX_VERSION}")"
    # The module cache is read-only; build in a writable copy so `go` may write go.sum entries it needs.
    cp -r "$SRC" "$WORK/$c"
    cp -r "$API" "$WORK/$c/api"
    chmod -R u+w "$WORK/$c"
    if [[ -n "${REPLACE[$c]:-}" ]]; then (cd "$WORK/$c" && go mod edit -replace="${REPLACE[$c]}"); fi
    start=$(date +%s)
    (cd "$WORK/$c" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN/$c.tmp" .)
    mv "$BIN/$c.tmp" "$BIN/$c"
    echo "$FLUX_VERSION ${REPLACE[$c]:-}" > "$BIN/$c.version"
    echo "built $c ${FLUX_VERSION} into $BIN in $(( $(date +%s) - start ))s"
  fi
  # CRDs of the same module version (config/crd/bases is generated from its api module's types).
  rm -f "$CRDS/$c/"*.yaml
  mkdir -p "$CRDS/$c"
  install -m 0644 "$SRC"/config/crd/bases/*.yaml "$CRDS/$c/"
done
echo "CRDs: $(find "$CRDS" -name '*.yaml' | wc -l) Flux ${FLUX_VERSION} CRDs in $CRDS"
