#!/usr/bin/env bash
# Builds xdrsync (the product) and xdrsync-sim (simulator, demo, benchmarks) in release mode and runs
# `xdrsync-sim "$@"` with XDRSYNC_BIN pointing at the freshly built product binary.
# Examples: ./scripts/sim.sh serve · ./scripts/sim.sh demo --json · ./scripts/sim.sh bench --edits 30
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/azurite ]; then
  npm ci --no-audit --no-fund
fi
cargo build --release --locked --quiet -p xdrsync -p xdrsync-sim
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export XDRSYNC_BIN="$target_dir/release/xdrsync"
exec "$target_dir/release/xdrsync-sim" "$@"
