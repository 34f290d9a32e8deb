#!/usr/bin/env bash
# Builds the Kubernetes control plane from the Go module proxy. k8s.io/kubernetes cannot be `go install`ed (its
# go.mod points the staging modules at local paths), so this module requires it and replaces each staging module
# with its published v0.<minor>.<patch> (list generated from the go.mod the proxy serves; see docs/local-kubernetes.md).
# The -X flags set the version: without them /version says v0.0.0-master, which breaks Helm's kubeVersion checks.
set -euo pipefail
# Usage: build.sh <output dir> [module dir]: the module dir (default this one; tools/kubelet for the real node) holds
# a go.mod of the same shape and cmd/<binary>/main.go wrappers.
OUT="$(realpath -m "${1:?usage: build.sh <output dir> [module dir]}")"
cd "${2:-$(dirname "$0")}"
KV=1.36.3
V=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  V="$V -X $pkg.gitVersion=v$KV -X $pkg.gitMajor=1 -X $pkg.gitMinor=36 -X $pkg.gitTreeState=clean"
  V="$V -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.buildDate=2026-01-01T00:00:00Z"
done
mkdir -p "$OUT"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$V" -o "$OUT/" ./cmd/...
