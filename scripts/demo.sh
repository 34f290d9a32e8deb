#!/usr/bin/env bash
# The demo: installs what it needs, brings the embedded local stack up (Temporal, Docker, registry, two local
# Kubernetes clusters with a real node and a Traefik router each, Prometheus), runs the workers, and releases the
# sample service the way CI and an approver would — start and wait for approval (built, scanned, pushed, deployed to
# QA, smoke-tested), approve from the CLI, wait for the end (promoted, deployed to production's real node, smoke-tested
# through the Service and the Gateway) — then shows the registry's digests and the clusters' inventory. It ends with a
# second release that goes to production as a canary behind Traefik while a bounded load runs through the Gateway:
# each interval's judge score and per-metric classification is printed, and the canary is promoted.
# Leaves the stack running (`slipway stack down` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="${SLIPWAY_HOME:-$HOME/.cache/slipway}/bin:$PATH"
slipway() { node dist/client/cli.js "$@"; }

slipway stack up
export KUBECONFIG="${KUBECONFIG:-${SLIPWAY_HOME:-$HOME/.cache/slipway}/kwok/kubeconfig}"
mkdir -p .slipway
# Not through the slipway function: a backgrounded function is a subshell, and killing it would leave node running.
node dist/client/cli.js worker > .slipway/demo-worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT

# A finished release cannot be released again under the same version: later runs get fresh pre-releases.
VERSION="${VERSION:-v1.0.2}"
CANARY_VERSION="${CANARY_VERSION:-v1.0.3}"
if slipway release status --service delivery --version "$VERSION" --json >/dev/null 2>&1 ||
  slipway release status --service delivery --version "$CANARY_VERSION" --json >/dev/null 2>&1; then
  STAMP="$(date +%s)"
  VERSION="v1.0.2-demo.$STAMP"
  CANARY_VERSION="v1.0.3-demo.$STAMP"
fi
ID="release:delivery:$VERSION"

echo "== CI: start the release and wait until it needs a person"
# No --git-sha: the sample's image copies bin/delivery, a build output that no commit holds (a --git-sha build exports
# exactly that commit and nothing else); the status records the checkout's HEAD and whether it had changes instead.
slipway release start --service delivery --version "$VERSION" --requester carol --wait-for approval --timeout 10m
echo "== the inbox"
slipway release list --awaiting-approval
echo "== carol asked for this release, so she may not approve it; mallory is no approver"
slipway release approve "$ID" --as carol || echo "(refused, exit $?)"
slipway release approve "$ID" --as mallory || echo "(refused, exit $?)"
echo "== an approver approves"
slipway release approve "$ID" --as alice --comment "QA looks good"
echo "== CI: wait for the end"
slipway release wait "$ID" --timeout 10m
echo
echo "Temporal Web: http://127.0.0.1:8233/namespaces/default/workflows/$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$ID")"
echo "== the registry's own word (OCI API): both tags carry the released digest"
CREDS="${SLIPWAY_HOME:-$HOME/.cache/slipway}/registry/credentials.json"
for repo in delivery prod/delivery; do
  # The password goes to curl on stdin (-K -), never on its command line.
  node -e 'const c=require(process.argv[1]);console.log(`user = "${c.username}:${c.password}"`)' "$CREDS" |
    curl -sS -K - -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://127.0.0.1:5000/v2/$repo/manifests/$VERSION" | tr -d '\r' | sed -n "s|^[Dd]ocker-[Cc]ontent-[Dd]igest: |  127.0.0.1:5000/$repo:$VERSION  |p"
done
echo "== what runs where, read from the clusters' labels and annotations"
slipway inventory
echo "== Helm's own record in production"
helm history delivery --kube-context kwok-slipway-prod --namespace delivery

echo
echo "== the next release goes to production as a canary behind Traefik, judged on real traffic"
CANARY_ID="release:delivery:$CANARY_VERSION"
slipway release start --service delivery --version "$CANARY_VERSION" --requester carol --wait-for approval --timeout 10m
slipway release approve "$CANARY_ID" --as alice --comment "canary it"
# Requests through prod's Traefik (loopback) for the whole canary: 30 a second, a new connection each (so every request
# is routed anew), for at most 4 minutes — the sample's own bounded load mode, stopped below if the release ends first.
services/delivery/bin/delivery load -url http://127.0.0.1:19290/api/deliveries -header Host:delivery.slipway.local \
  -rps 30 -duration 240s -keepalive=false > .slipway/demo-load.log 2>&1 &
LOAD=$!
trap 'kill $WORKER $LOAD 2>/dev/null || true' EXIT
echo "   (load: 30 requests/s through http://127.0.0.1:19290 with Host delivery.slipway.local)"
slipway release wait "$CANARY_ID" --timeout 10m
kill -INT $LOAD 2>/dev/null || true
wait $LOAD 2>/dev/null || true
echo "== the load generator's count (by version and status)"
cat .slipway/demo-load.log
echo "== production now: every request answered by $CANARY_VERSION"
curl -sS -o /dev/null -D - -H 'Host: delivery.slipway.local' http://127.0.0.1:19290/api/deliveries | tr -d '\r' | grep -i '^x-delivery-version' || true
