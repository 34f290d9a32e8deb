#!/usr/bin/env bash
# Installs what Slipway's demo and tests need, idempotently: Debian packages (Docker engine, registry, htpasswd,
# docker-compose), the Temporal CLI (go install, cached in ~/.cache/slipway/bin), npm dependencies, the build.
# --gitops also builds Gitea and Flux (the tests need them; the demo does not, and they are the longest cold builds).
set -euo pipefail
GITOPS=0
for arg in "$@"; do
  case "$arg" in
    --gitops) GITOPS=1 ;;
    *) echo "usage: install.sh [--gitops]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BIN="${SLIPWAY_HOME:-$HOME/.cache/slipway}/bin"
mkdir -p "$BIN"
log() { echo "[install] $*" >&2; }

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -x /bin/busybox ] || need_apt+=(busybox-static)   # base image for tests with RUN steps
command -v go >/dev/null || need_apt+=(golang-go)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)   # the approvals UI's browser tests (playwright-core drives it)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)   # the real node's pod network (bridge, host-local, loopback, portmap)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then log "need root to apt-get install ${need_apt[*]}"; exit 1; fi
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v temporal >/dev/null && [ ! -x "$BIN/temporal" ]; then
  # v1.6+ cannot be go-installed (a local replace directive); v1.5.1 can.
  log "go install github.com/temporalio/cli/cmd/temporal@v1.5.1 (first time: several minutes)"
  GOBIN="$BIN" go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi

TRIVY_LDFLAGS="-X github.com/aquasecurity/trivy/pkg/version/app.ver=v0.74.0"
if ! command -v trivy >/dev/null && [ ! -x "$BIN/trivy" ]; then
  log "building trivy v0.74.0 from the Go module proxy (first time: several minutes)"
  if ! GOBIN="$BIN" GOEXPERIMENT=jsonv2 go install -ldflags "$TRIVY_LDFLAGS" github.com/aquasecurity/trivy/cmd/trivy@v0.74.0 2>/dev/null; then
    # `go install m@v` also lists the module's versions to report deprecations, and this proxy refuses that list
    # for trivy. Building the very same module version in module mode is what go install does, minus that check.
    dir=$(cd /tmp && go mod download -json github.com/aquasecurity/trivy@v0.74.0 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    (cd "$dir" && GOEXPERIMENT=jsonv2 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "$TRIVY_LDFLAGS" -o "$BIN/trivy" ./cmd/trivy)
  fi
fi
if [ ! -x "$BIN/trivy-fixture-db" ] || [ tools/trivy-fixture-db/main.go -nt "$BIN/trivy-fixture-db" ]; then
  log "building tools/trivy-fixture-db (writes Trivy databases for the tests)"
  (cd tools/trivy-fixture-db && go build -o "$BIN/trivy-fixture-db" .)
fi

# Local Kubernetes (docs/local-kubernetes.md): kwok simulates nodes and pods; the control plane is the real one.
if [ ! -x "$BIN/kwokctl" ] || [ ! -x "$BIN/kwok" ]; then
  log "go install sigs.k8s.io/kwok v0.8.0 (first time: ~2 min)"
  GOBIN="$BIN" go install sigs.k8s.io/kwok/cmd/kwok@v0.8.0 sigs.k8s.io/kwok/cmd/kwokctl@v0.8.0
fi
if [ ! -x "$BIN/helm" ]; then
  log "go install helm.sh/helm/v3 v3.21.4 (first time: ~2 min)"
  GOBIN="$BIN" go install -ldflags "-X helm.sh/helm/v3/internal/version.version=v3.21.4" helm.sh/helm/v3/cmd/helm@v3.21.4
fi
# etcd 3.6 from its Go module (Debian's 3.4 lacks the watch progress requests that kube 1.36 clients make).
if [ ! -x "$BIN/etcd" ]; then
  log "building etcd v3.6.16 (first time: ~1 min)"
  (cd tools/etcd && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$BIN/" ./cmd/etcd)
fi
# A stamp of a wrapper module's content (not its mtime, which a fresh clone resets) decides a rebuild:
# stale <stamp> <name> <binaries…> is true when a binary is missing or $BIN/<name>.stamp differs.
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
stale() {
  local stamp=$1 name=$2 b; shift 2
  for b in "$@"; do [ -x "$BIN/$b" ] || return 0; done
  [ "$(cat "$BIN/$name.stamp" 2>/dev/null)" != "$stamp" ]
}
kube_stamp=$(stamp_of tools/kube/go.mod tools/kube/build.sh tools/kube/cmd/*/main.go)
if stale "$kube_stamp" kube kube-apiserver kube-controller-manager kube-scheduler; then
  log "building kube-apiserver, kube-controller-manager, kube-scheduler v1.36.3 (first time: ~7 min)"
  bash tools/kube/build.sh "$BIN"
  echo "$kube_stamp" > "$BIN/kube.stamp"
fi
# The real node's kubelet, kube-proxy and pause binary: the same build, from its own wrapper module (docs/local-kubernetes.md).
kubelet_stamp=$(stamp_of tools/kubelet/go.mod tools/kube/build.sh tools/kubelet/cmd/*/main.go)
if stale "$kubelet_stamp" kubelet kubelet kube-proxy pause; then
  log "building kubelet, kube-proxy and pause (tools/kubelet; first time: ~2 min after tools/kube)"
  bash tools/kube/build.sh "$BIN" tools/kubelet
  echo "$kubelet_stamp" > "$BIN/kubelet.stamp"
fi

# The local clusters' router: Traefik v3.6 from its Go module, and the real Gateway API / Istio VirtualService CRDs
# (first time: ~15 min of CPU on 2 cores; skipped when the pinned version is there). See docs/router.md.
bash tools/router/build.sh "$BIN" "$(dirname "$BIN")/router/crds"

# The stack's Prometheus: 3.16 from its Go module, with kubernetes_sd_configs (Debian's lacks it), without the cloud
# discovery plugins or the web UI's assets (first time: ~6 min of CPU; 17 min on 2 cores busy with other builds;
# skipped when the pinned version is there). See docs/local-kubernetes.md.
bash tools/prometheus/build.sh "$BIN"

# GitOps environments (#13): Gitea 1.27.3 and Flux source-/kustomize-controller v1.9.6 from their Go modules, CRDs
# from the same versions (first time: Gitea ~10 min and the controllers ~12 min of CPU; skipped when built). See docs/gitops.md.
if [ "$GITOPS" = 1 ]; then
  bash tools/gitea/build.sh "$BIN" "$(dirname "$BIN")/gitea-static"
  bash tools/flux/build.sh "$BIN" "$(dirname "$BIN")/flux/crds"
fi

# The workflow tier's time-skipping server: @temporalio/testing cannot download it here, so Maven fetches the Java
# test server and its dependencies from Maven Central into ~/.cache/slipway/temporal-test-server, with a launcher
# the tests pass as an existing executable (it takes the port, then extra arguments, as the SDK calls it).
TTS_VERSION=1.38.0
TTS="$(dirname "$BIN")/temporal-test-server"
if [ "$(cat "$TTS/version" 2>/dev/null)" != "$TTS_VERSION" ] || [ ! -x "$TTS/temporal-test-server" ]; then
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    if [ "$(id -u)" != 0 ]; then log "need root to apt-get install maven (and a JRE) for the time-skipping test server"; exit 1; fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless maven >/dev/null
  fi
  log "fetching io.temporal:temporal-test-server:$TTS_VERSION from Maven Central"
  pom=$(mktemp -d)
  cat > "$pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>slipway</groupId><artifactId>temporal-test-server-deps</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies><dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>$TTS_VERSION</version></dependency></dependencies>
</project>
EOF
  rm -rf "$TTS.tmp" && mkdir -p "$TTS.tmp"
  mvn -q -B -Dstyle.color=never -f "$pom/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$TTS.tmp/lib" >&2
  rm -rf "$pom"
  cat > "$TTS.tmp/temporal-test-server" <<'EOF'
#!/bin/sh
# Temporal's Java time-skipping test server: temporal-test-server <port> [extra args].
exec java -cp "$(dirname "$0")/lib/*" io.temporal.testserver.TestServer "$@"
EOF
  chmod +x "$TTS.tmp/temporal-test-server"
  echo "$TTS_VERSION" > "$TTS.tmp/version"
  rm -rf "$TTS" && mv "$TTS.tmp" "$TTS"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  # npm 11 can write a lock that its own `npm ci` then calls out of sync (@swc/core's optional platform packages);
  # `npm install` honours the same lock and fills the gap.
  npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error
fi
log "tsc"
npx tsc -p tsconfig.json
if [ ! -x services/delivery/bin/delivery ] || [ services/delivery/main.go -nt services/delivery/bin/delivery ]; then
  log "building the sample service binary"
  bash scripts/build-sample.sh
fi
log "ready"
