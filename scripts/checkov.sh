#!/usr/bin/env bash
# Runs checkov (PyPI, pinned) over infra/. Installs it once into a venv under the cargo target dir.
# Every finding is either fixed or skipped in the .bicep file with `// checkov:skip=CKV_…: reason`
# inside the resource's body. A file checkov cannot parse fails this script too: its checks would
# silently not run (checkov's Bicep parser rejects some syntax the Bicep compiler accepts).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION=3.3.30
venv="${CARGO_TARGET_DIR:-target}/checkov-venv"
if ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
fi
out=$("$venv/bin/checkov" --directory infra --framework bicep --compact --quiet --skip-download 2>&1) || status=$?
echo "$out" | grep -vE '^\s*$' | grep -v '^ *[_/|\\(]' || true
if grep -q 'Parsing errors: [1-9]' <<<"$out"; then
  echo "checkov could not parse a file in infra/ (its checks did not run)" >&2; exit 1
fi
exit "${status:-0}"
