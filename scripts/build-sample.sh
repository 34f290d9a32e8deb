#!/usr/bin/env bash
# Builds the sample service's static binary into its Docker build context.
set -euo pipefail
cd "$(dirname "$0")/../services/delivery"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/delivery .
