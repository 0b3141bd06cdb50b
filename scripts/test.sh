#!/usr/bin/env bash
# Runs every test: builds the canister and workload .wasm files the tests
# load, then the whole workspace's native, devnet and sandbox tests.
# Installs what it needs (Debian's wasm-capable Rust, ic-wasm) idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-canisters.sh
if [ -x scripts/build-workloads.sh ]; then
    scripts/build-workloads.sh
fi

echo "==> cargo test --workspace" >&2
cargo test --workspace --locked "$@"
