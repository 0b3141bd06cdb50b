#!/usr/bin/env bash
# Builds the sandbox's guest workloads (workloads/, a separate cargo
# workspace) for wasm32-wasip1 and copies each program to
# target/workloads/<name>.wasm. Hand-written WAT workloads (workloads/wat/)
# are parsed by the tests at run time and need no build.
#
# Env: WASM_TARGET_DIR (default target/wasm) is cargo's target dir for the
# wasm build; the outputs always land in target/workloads/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

TARGET=wasm32-wasip1
wasm_toolchain "$TARGET"

TARGET_DIR="${WASM_TARGET_DIR:-target/wasm}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
OUT_DIR="$ROOT/target/workloads"
mkdir -p "$OUT_DIR"

ENV=("${WASM_ENV[@]}")
if [ "${WASM_CARGO[0]}" = /usr/bin/cargo ]; then
    # Debian's Rust has no self-contained WASI sysroot: link against the
    # distribution's wasi-libc (package wasi-libc).
    ENV+=("RUSTFLAGS=-L /usr/lib/wasm32-wasi -C link-self-contained=no -C link-arg=/usr/lib/wasm32-wasi/crt1-command.o")
fi

PROGRAMS=(echo sha256sum cpu-kernel clock-random floats memory-bomb recursion output-flood sleeper sandbox-escape)

echo "==> building workloads for $TARGET into $OUT_DIR" >&2
env "${ENV[@]}" "${WASM_CARGO[@]}" build --release --locked --quiet \
    "${WASM_BUILD_STD_FLAGS[@]}" --target "$TARGET" \
    --manifest-path workloads/Cargo.toml --target-dir "$TARGET_DIR" \
    $(printf -- '-p %s ' "${PROGRAMS[@]}")

for name in "${PROGRAMS[@]}"; do
    src="$TARGET_DIR/$TARGET/release/$name.wasm"
    dst="$OUT_DIR/$name.wasm"
    if ! cmp -s "$src" "$dst" 2>/dev/null; then
        cp "$src" "$dst"
    fi
done
echo "==> workloads ready: ${PROGRAMS[*]}" >&2
