#!/usr/bin/env bash
# Finds (and if needed installs) a Rust toolchain that can build WebAssembly.
#
# Source this file, then call `wasm_toolchain TARGET`; it sets WASM_CARGO (the
# cargo command) and WASM_BUILD_STD_FLAGS (extra flags when std must be
# built from source). Prefers an installed rustup target; otherwise uses
# Debian's Rust (rustc-web) with its std sources, building std, installing
# the packages idempotently.
set -euo pipefail

DEBIAN_WASM_PACKAGES=(rustc-web cargo-web rust-web-src lld-22 wasi-libc)

_have_rustup_target() {
    command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$1"
}

_debian_toolchain_present() {
    [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src ] \
        && command -v rust-lld >/dev/null 2>&1 && [ -f /usr/lib/wasm32-wasi/crt1-command.o ]
}

_install_debian_toolchain() {
    if _debian_toolchain_present; then return 0; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: no rustup target for wasm and no apt-get to install Debian's Rust" >&2
        echo "       install the target with: rustup target add $1" >&2
        return 1
    fi
    apt_install "Debian's wasm-capable Rust: ${DEBIAN_WASM_PACKAGES[*]}" "${DEBIAN_WASM_PACKAGES[@]}"
}

# apt_install WHAT PACKAGE...: installs Debian packages (through sudo unless
# root), saying on stderr that it installs WHAT.
apt_install() {
    local what="$1"
    shift
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "==> installing $what" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# wasm_toolchain TARGET: sets WASM_CARGO, WASM_ENV and WASM_BUILD_STD_FLAGS.
wasm_toolchain() {
    local target="$1"
    if _have_rustup_target "$target"; then
        WASM_CARGO=(cargo)
        WASM_ENV=()
        WASM_BUILD_STD_FLAGS=()
        return 0
    fi
    _install_debian_toolchain "$target"
    WASM_CARGO=(/usr/bin/cargo)
    WASM_ENV=(RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc)
    WASM_BUILD_STD_FLAGS=(-Zbuild-std=std,panic_abort)
}
