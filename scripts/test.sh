#!/usr/bin/env bash
# Runs every test: unit, property, simulator-backed and Azurite-backed (tests start Azurite
# themselves on free ports). Installs Azurite from the lock file first if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/azurite ]; then
  npm ci --no-audit --no-fund
fi
cargo test --workspace --locked --all-targets -- --test-threads="${XDRSYNC_TEST_THREADS:-4}"
