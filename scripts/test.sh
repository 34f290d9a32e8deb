#!/usr/bin/env bash
# The test command: installs what it needs (idempotent), then lint, type check and the whole jest suite on the real
# local stack (Temporal dev server, Docker engine, registries — started if not running).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --gitops || exit 1
export PATH="${SLIPWAY_HOME:-$HOME/.cache/slipway}/bin:$PATH"
echo "[test] eslint" >&2
npx eslint model host workflows activities workers client test bench || exit 1
mkdir -p .slipway
echo "[test] jest" >&2
# --forceExit: a handle some library leaves open (a test that timed out mid-way, a Temporal connection) must not keep
# CI waiting after the last test; the results are already written.
# The chaos sample in CI uses a fixed seed (override with SLIPWAY_CHAOS_SEED), so a CI run is reproducible;
# `npm run chaos` draws a fresh seed and prints it.
export SLIPWAY_CHAOS_SEED="${SLIPWAY_CHAOS_SEED:-1234}"
npx jest --runInBand --ci --forceExit --json --outputFile=.slipway/jest-results.json "$@"
rc=$?
# The restart tier stops and starts the whole stack, so it runs alone, after every other tier; only on a full run
# (arguments select tests of the other tiers).
rm -f .slipway/jest-restart-results.json
if [ $# -eq 0 ]; then
  echo "[test] jest: restart tier (stack down, stack up)" >&2
  npx jest --runInBand --ci --forceExit --json --outputFile=.slipway/jest-restart-results.json --selectProjects restart || rc=1
fi
# jest's own summary is not a line CI systems read; print the plain one (both runs together).
node -e '
  const fs = require("fs");
  if (!fs.existsSync(".slipway/jest-results.json")) process.exit(1);
  const rs = [".slipway/jest-results.json", ".slipway/jest-restart-results.json"].filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const sum = (k) => rs.reduce((n, r) => n + r[k], 0);
  console.log(`jest: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed, ${sum("numPendingTests")} skipped`);
' || rc=1
exit $rc
