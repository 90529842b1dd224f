#!/usr/bin/env bash
# The demo on a fresh machine: installs Azurite from the lock file if missing, builds xdrsync,
# then runs Azurite + the simulator + xdrsync standalone with 200 incidents and prints a report.
# Extra arguments go to `xdrsync demo` (e.g. --incidents 500 --json).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/azurite ]; then
  npm ci --no-audit --no-fund
fi
exec cargo run --release --locked --quiet -- demo --repo . "$@"
