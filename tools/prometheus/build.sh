#!/usr/bin/env bash
# Builds Prometheus (the stack's own metrics server) from its Go module, with kubernetes_sd_configs: Debian's
# prometheus package (2.42+ds) is built without it, and the stack discovers the real node's pods through the API server.
# Usage: build.sh <bin dir>. Idempotent: skips the build when <bin dir>/prometheus already reports the pinned version.
# Pin: github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.0 (the Go module's v0.3xx.y = release 3.xx.y);
# its go.mod has no `replace`, so the module proxy serves everything it needs. Builds share the default Go build cache.
#
# What is left out, and why:
# - Service discovery: plugins/ holds one file per discovery mechanism (AWS, Azure, GCE, Consul, ...), each pulling
#   in its cloud SDK. The copy keeps only minimum.go (file_sd, http_sd) and plugin_kubernetes.go, so the build
#   compiles a fraction of the dependencies; the other *_sd_configs are rejected as unknown in a configuration.
# - The web UI: its assets come from an npm build (web/ui), which is not run here, and the binary is built without
#   the `builtinassets` tag. The HTTP API (/api/v1/...), /metrics and /-/ready work; the UI pages (/graph, /query)
#   answer without their JavaScript and CSS (404s for the assets).
set -euo pipefail
BIN="${1:?usage: build.sh <bin dir>}"
PROMETHEUS_MODULE=github.com/prometheus/prometheus
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=3.16.0

# Prints the module's unpacked directory in the module cache (downloads it through the Go module proxy if needed).
module_dir() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

mkdir -p "$BIN"
# `prometheus --version` prints "prometheus, version 3.16.0 (branch: ..., revision: ...)".
# (The output is read whole first: `grep -q` closing the pipe early would fail the pipeline under pipefail.)
if [[ -x "$BIN/prometheus" ]] && [[ "$("$BIN/prometheus" --version 2>&1)" =~ ^prometheus,\ version\ ${PROMETHEUS_VERSION//./\\.}[[:space:]] ]]; then
  echo "prometheus ${PROMETHEUS_VERSION} already in $BIN"
  exit 0
fi

SRC="$(module_dir "${PROMETHEUS_MODULE}@${PROMETHEUS_MODULE_VERSION}")"
# The module cache is read-only; build in a writable copy so plugins/ can be trimmed and `go` may write go.sum entries.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/prometheus-src.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -r "$SRC/." "$WORK/"
chmod -R u+w "$WORK"
# Discovery plugins: keep file/http (minimum.go) and Kubernetes; drop the cloud and registry ones (see the header).
find "$WORK/plugins" -name 'plugin_*.go' ! -name plugin_kubernetes.go -delete
[[ -f "$WORK/plugins/minimum.go" && -f "$WORK/plugins/plugin_kubernetes.go" ]] \
  || { echo "plugins/ of ${PROMETHEUS_MODULE}@${PROMETHEUS_MODULE_VERSION} lacks minimum.go or plugin_kubernetes.go" >&2; exit 1; }
# go.work would pull in the repository's other modules (documentation examples, internal tools); build this one alone.
rm -f "$WORK/go.work" "$WORK/go.work.sum"

V=github.com/prometheus/common/version
start=$(date +%s)
(cd "$WORK" && CGO_ENABLED=0 GOWORK=off go build -trimpath -tags netgo \
  -ldflags "-s -w -X $V.Version=${PROMETHEUS_VERSION} -X $V.Revision=${PROMETHEUS_MODULE_VERSION} -X $V.Branch=slipway -X $V.BuildUser=slipway -X $V.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)" \
  -o "$BIN/prometheus.tmp" ./cmd/prometheus)
mv "$BIN/prometheus.tmp" "$BIN/prometheus"
echo "built prometheus ${PROMETHEUS_VERSION} (${PROMETHEUS_MODULE}@${PROMETHEUS_MODULE_VERSION}) into $BIN in $(( $(date +%s) - start ))s"
