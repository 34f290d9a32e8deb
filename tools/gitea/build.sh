#!/usr/bin/env bash
# Builds Gitea (the local Git server and forge for GitOps delivery) from its Go module, without web assets.
# Usage: build.sh <bin dir> [<static dir>]. Idempotent: skips the build when <bin dir>/gitea already reports the
# pinned version; the static dir (default <bin dir>/../gitea-static) is refreshed every time (cheap).
# - SQLite through modernc.org/sqlite, Gitea's default driver since 1.26: pure Go, so CGO_ENABLED=0 (no gcc needed).
# - No `bindata` tag: that would embed public/ assets built by npm/vite, which are not built here. Without it Gitea
#   reads options/ (locales, licences, gitignores) and templates/ from its static root at run time, so those two
#   directories of the same module version are copied into the static dir (client/stack/gitea.ts points
#   STATIC_ROOT_PATH there). The API and Git over HTTP need nothing else; web pages render unstyled.
# Builds share the default Go build cache. Every go command runs under `nice` (other work shares 2 cores).
set -euo pipefail
BIN="$(realpath -m "${1:?usage: build.sh <bin dir> [<static dir>]}")"
STATIC="$(realpath -m "${2:-$BIN/../gitea-static}")"
GITEA_VERSION=v1.27.3 # its go.mod says go 1.26.4 and replaces modules only with other published modules

# Prints the module's unpacked directory in the module cache (downloads it through the Go module proxy if needed).
module_dir() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

mkdir -p "$BIN" "$STATIC"
SRC="$(module_dir "code.gitea.io/gitea@${GITEA_VERSION}")"
[[ -n "$SRC" ]] || { echo "could not download code.gitea.io/gitea@${GITEA_VERSION}" >&2; exit 1; }
# (The output is read whole first: `grep -q` closing the pipe early would fail the pipeline under pipefail.)
if [[ -x "$BIN/gitea" ]] && [[ "$("$BIN/gitea" --version 2>/dev/null)" == *"version ${GITEA_VERSION#v} "* ]]; then
  echo "gitea ${GITEA_VERSION} already in $BIN"
else
  # The module cache is read-only; build in a writable copy so `go` may write go.sum entries it needs.
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/gitea-src.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  cp -r "$SRC/." "$WORK/"
  chmod -R u+w "$WORK"
  start=$(date +%s)
  (cd "$WORK" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath \
    -ldflags "-s -w -X main.Version=${GITEA_VERSION#v} -X main.Tags=" \
    -o "$BIN/gitea.tmp" .)
  mv "$BIN/gitea.tmp" "$BIN/gitea"
  echo "built gitea ${GITEA_VERSION} into $BIN in $(( $(date +%s) - start ))s"
fi

# Static root: options/ and templates/ of the same version (read-only copies in the module cache made writable so
# a later refresh can replace them).
rm -rf "$STATIC/options" "$STATIC/templates"
cp -r "$SRC/options" "$SRC/templates" "$STATIC/"
chmod -R u+w "$STATIC"
echo "${GITEA_VERSION#v}" > "$STATIC/version"
echo "gitea static root (options, templates of ${GITEA_VERSION}) in $STATIC"
