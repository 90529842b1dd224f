#!/usr/bin/env bash
# Builds the deployable Functions app folder DIR: host.json, one folder per function and an
# xdrsync binary linked against glibc <= 2.28, so it starts on every Linux Functions host image
# (some are Debian 11 with glibc 2.31; a plain `cargo build` on a newer machine needs 2.34+).
#
#   ./scripts/package.sh DIR [--force]
#
# Refuses an existing non-empty DIR unless --force (then DIR is emptied first): stale function
# folders left in DIR would be published with the app. Tools come from the registries this project
# uses and are installed on first use under the cargo target dir (not system-wide):
#   zig          PyPI package `ziglang` (a venv in $TOOLS/venv)
#   cargo-zigbuild  crates.io (`cargo install --locked --root $TOOLS`)
# Environment: CARGO_TARGET_DIR (default ./target), XDRSYNC_PACKAGE_BINARY (skip the build and
# package this binary instead: for tests and for a binary built elsewhere; it is still checked).
set -euo pipefail

ZIGLANG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
GLIBC_TARGET=x86_64-unknown-linux-gnu.2.28
MAX_GLIBC=2.28

usage() { echo "usage: $0 DIR [--force]" >&2; exit 2; }

dir=""
force=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option: $arg" >&2; usage ;;
    *) [ -z "$dir" ] || usage; dir="$arg" ;;
  esac
done
[ -n "$dir" ] || usage

repo="$(cd "$(dirname "$0")/.." && pwd)"

# 1. The destination, before any build: a refusal costs nothing.
if [ -e "$dir" ] && [ ! -d "$dir" ]; then
  echo "error: $dir exists and is not a directory" >&2; exit 1
fi
if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  if ! $force; then
    echo "error: $dir is not empty; stale function folders in it would be published with the app." >&2
    echo "       Use an empty or new directory, or --force to empty it first." >&2
    exit 1
  fi
  case "$(cd "$dir" && pwd)" in
    /|"$repo"|"$HOME") echo "error: refusing to empty $dir" >&2; exit 1 ;;
  esac
  find "$dir" -mindepth 1 -delete
fi

# Highest GLIBC_x.y symbol version a binary needs (readelf, else objdump), e.g. 2.28.
max_glibc() {
  local syms
  if command -v readelf >/dev/null; then syms=$(readelf --wide --version-info "$1")
  elif command -v objdump >/dev/null; then syms=$(objdump -T "$1")
  else echo "error: neither readelf nor objdump is installed (apt-get install binutils)" >&2; return 1
  fi
  grep -o 'GLIBC_[0-9][0-9.]*' <<<"$syms" | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n1
}

# version_le A B: A <= B for dotted versions.
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$1" ]; }

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
if [ -n "${XDRSYNC_PACKAGE_BINARY:-}" ]; then
  binary="$XDRSYNC_PACKAGE_BINARY"
else
  # 2. Tools, installed once under the target dir.
  tools="$target_dir/package-tools"
  if [ ! -x "$tools/venv/bin/python-zig" ]; then
    echo "== installing zig (PyPI ziglang $ZIGLANG_VERSION) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet "ziglang==$ZIGLANG_VERSION"
    # cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH; a tiny `zig` shim keeps it
    # on the venv's python whatever python3 is first on PATH.
    printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$tools/venv/bin/python" >"$tools/venv/bin/python-zig"
    chmod +x "$tools/venv/bin/python-zig"
  fi
  mkdir -p "$tools/bin"
  ln -sf "$tools/venv/bin/python-zig" "$tools/bin/zig"
  if [ ! -x "$tools/bin/cargo-zigbuild" ]; then
    echo "== installing cargo-zigbuild $ZIGBUILD_VERSION (crates.io) into $tools"
    cargo install --locked --quiet --version "$ZIGBUILD_VERSION" --root "$tools" \
      --target-dir "$tools/build" cargo-zigbuild
    rm -rf "$tools/build"
  fi
  export PATH="$tools/bin:$PATH"

  # 3. The build: glibc symbol versions capped at 2.28 by zig's libc stubs.
  echo "== cargo zigbuild --release --target $GLIBC_TARGET -p xdrsync"
  (cd "$repo" && cargo zigbuild --locked --release --target "$GLIBC_TARGET" -p xdrsync)
  binary="$target_dir/x86_64-unknown-linux-gnu/release/xdrsync"
fi
[ -f "$binary" ] || { echo "error: $binary was not built" >&2; exit 1; }

# 4. The glibc check: what the host image must provide.
glibc=$(max_glibc "$binary")
if [ -z "$glibc" ]; then
  echo "error: $binary references no GLIBC symbol version (not a glibc-linked ELF binary?)" >&2; exit 1
fi
if ! version_le "$glibc" "$MAX_GLIBC"; then
  echo "error: $binary needs GLIBC_$glibc, newer than $MAX_GLIBC: it would not start on older Functions hosts" >&2
  exit 1
fi
echo "== $binary needs glibc $glibc (at most $MAX_GLIBC)"

# 5. The app folder, written by the product itself (it refuses a binary that is not xdrsync too).
# Never run a binary that is not xdrsync: look for its marker (src/cli/package.rs) first.
if ! grep -aq "xdrsync-binary-marker:functions-custom-handler " "$binary"; then
  echo "error: $binary is not xdrsync (its marker is missing); refusing to package it" >&2; exit 1
fi
mkdir -p "$dir"
# Step 4 decided the glibc verdict (readelf); the product's own check of it is not repeated.
"$binary" package --out "$dir" --binary "$binary" --allow-newer-glibc
echo "== publish (docs/operations.md, Deploy): Flex Consumption: cd $dir && func azure functionapp publish <functionAppName> --custom"
