#!/usr/bin/env bash
# Builds the real node's kubelet and kube-proxy from the Go module proxy, from the same k8s.io/kubernetes version as
# the control plane (tools/kube): a wrapper module that requires k8s.io/kubernetes and replaces each staging module
# with its published v0.<minor>.<patch> (go.mod copied from tools/kube). Separate from tools/kube so the control-plane
# build never changes because of node-only dependencies; both share the Go build cache. See docs/local-kubernetes.md.
# The -X flags set the version the node reports (without them: v0.0.0-master, outside the version-skew policy).
set -euo pipefail
cd "$(dirname "$0")"
OUT="${1:?usage: build.sh <output dir>}"
KV=1.36.3
V=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  V="$V -X $pkg.gitVersion=v$KV -X $pkg.gitMajor=1 -X $pkg.gitMinor=36 -X $pkg.gitTreeState=clean"
  V="$V -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.buildDate=2026-01-01T00:00:00Z"
done
mkdir -p "$OUT"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$V" -o "$OUT/" ./cmd/...
