#!/usr/bin/env bash
# Builds the guest workloads (workloads/, a separate cargo workspace) into
# target/workloads/<name>.wasm:
#
# - Batch jobs (echo, sha256sum, ...): WASI preview 1 command modules,
#   built for wasm32-wasip1.
# - Services (hello-service, hostile-service, tcp-relay, tcp-hostile): WASI 0.2
#   components. Each is a `cdylib` written with `wstd` (and its `wasip2`
#   bindings) built for wasm32-unknown-unknown: without a libc, the core
#   module imports nothing but `wasi:*` 0.2 interfaces and carries the
#   bindings' `component-type` sections. testkit/componentize (the
#   `wit-component` crate's ComponentEncoder, what `wasm-tools component new`
#   does) then wraps it into a component, with no preview 1 adapter, and
#   validates it. This route needs no wasm32-wasip2 std, which the machines
#   here don't have; workloads/README.md says how a user builds a service
#   with a normal toolchain.
#
# Hand-written WAT workloads (workloads/wat/) are parsed by the tests at run
# time and need no build.
#
# Env: WASM_TARGET_DIR (default target/wasm) is cargo's target dir for the
# wasm builds; the outputs always land in target/workloads/. The native
# componentize tool builds into the workspace's normal target dir
# (CARGO_TARGET_DIR if set).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

TARGET_DIR="${WASM_TARGET_DIR:-target/wasm}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
OUT_DIR="$ROOT/target/workloads"
mkdir -p "$OUT_DIR"

# install_if_changed SRC DST: copies unless DST already has SRC's bytes, so
# an unchanged workload keeps its mtime.
install_if_changed() {
    if ! cmp -s "$1" "$2" 2>/dev/null; then
        cp "$1" "$2"
    fi
}

# Batch jobs: wasm32-wasip1 command modules.
TARGET=wasm32-wasip1
wasm_toolchain "$TARGET"

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
    install_if_changed "$TARGET_DIR/$TARGET/release/$name.wasm" "$OUT_DIR/$name.wasm"
done

# Services: wasm32-unknown-unknown core modules, then components. No libc
# and no crt1 object here, so none of the wasip1 link flags above.
SERVICE_TARGET=wasm32-unknown-unknown
wasm_toolchain "$SERVICE_TARGET"

SERVICES=(hello-service hostile-service tcp-relay tcp-hostile)

echo "==> building service components into $OUT_DIR" >&2
env "${WASM_ENV[@]}" "${WASM_CARGO[@]}" build --release --locked --quiet \
    "${WASM_BUILD_STD_FLAGS[@]}" --target "$SERVICE_TARGET" \
    --manifest-path workloads/Cargo.toml --target-dir "$TARGET_DIR" \
    $(printf -- '-p %s ' "${SERVICES[@]}")

cargo build --locked --quiet -p componentize
NATIVE_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$NATIVE_TARGET_DIR" in /*) ;; *) NATIVE_TARGET_DIR="$ROOT/$NATIVE_TARGET_DIR" ;; esac
COMPONENTIZE="$NATIVE_TARGET_DIR/debug/componentize"

# What each component must export, and the interfaces it may import: an
# HTTP service only the wasi:http/proxy world's and wasi:cli/environment
# (what the provider's service host links), so a dependency that pulls in,
# say, wasi:filesystem fails here rather than when a provider loads it.
declare -A EXPORT=(
    [hello-service]=wasi:http/incoming-handler
    [hostile-service]=wasi:http/incoming-handler
    [tcp-relay]=wasi:cli/run
    [tcp-hostile]=wasi:cli/run
)
HTTP_IMPORTS='wasi:(io/(poll|error|streams)|clocks/(monotonic-clock|wall-clock)|random/random|http/(types|outgoing-handler)|cli/(stdin|stdout|stderr|environment))'
TCP_IMPORTS='wasi:(io/(poll|error|streams)|clocks/(monotonic-clock|wall-clock)|cli/(stdin|stdout|stderr|environment)|sockets/(network|instance-network|tcp|tcp-create-socket))'
declare -A IMPORTS=(
    [hello-service]="$HTTP_IMPORTS"
    [hostile-service]="$HTTP_IMPORTS"
    [tcp-relay]="$TCP_IMPORTS"
    [tcp-hostile]="$TCP_IMPORTS"
)

for name in "${SERVICES[@]}"; do
    # A cdylib's file name has underscores for the package name's dashes.
    "$COMPONENTIZE" "$TARGET_DIR/$SERVICE_TARGET/release/${name//-/_}.wasm" "$OUT_DIR/$name.wasm"
    world=$("$COMPONENTIZE" --world "$OUT_DIR/$name.wasm")
    if ! grep -Eq "^export ${EXPORT[$name]}@0\.2\.[0-9]+$" <<<"$world" \
        || grep -Ev "^(export ${EXPORT[$name]}|import ${IMPORTS[$name]})@0\.2\.[0-9]+$" <<<"$world" >&2; then
        echo "error: $name.wasm must export ${EXPORT[$name]} and import only ${IMPORTS[$name]}; its world:" >&2
        echo "$world" >&2
        exit 1
    fi
done
echo "==> workloads ready: ${PROGRAMS[*]} ${SERVICES[*]}" >&2
