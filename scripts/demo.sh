#!/usr/bin/env bash
# The demo on a fresh machine: installs Azurite from the lock file if missing, builds xdrsync and
# xdrsync-sim, then runs Azurite + the simulator + the real xdrsync binary standalone with 200
# incidents and prints a report. Extra arguments go to `xdrsync-sim demo` (e.g. --incidents 500 --json).
set -euo pipefail
exec "$(dirname "$0")/sim.sh" demo --repo "$(cd "$(dirname "$0")/.." && pwd)" "$@"
