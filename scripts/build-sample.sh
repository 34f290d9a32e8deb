#!/usr/bin/env bash
# Builds the sample service's static binary into its Docker build context (the image is FROM scratch, so the binary
# must need no libc: CGO off, and the check below refuses anything dynamically linked).
set -euo pipefail
cd "$(dirname "$0")/../services/delivery"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/delivery .
if command -v file >/dev/null && ! file bin/delivery | grep -q 'statically linked'; then
  echo "build-sample: bin/delivery is not statically linked: $(file bin/delivery)" >&2
  exit 1
fi
