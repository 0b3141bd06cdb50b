#!/usr/bin/env bash
# The main job: builds everything a provider or buyer runs (the canister
# .wasm files and the provider-node binary) and shows where they are.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-canisters.sh
echo "==> building the provider node" >&2
cargo build --release --locked -p provider-node

echo
echo "Canister modules (deploy with dfx, see README.md):"
ls -l target/canisters/*.wasm
echo
echo "Provider node: target/release/provider-node"
target/release/provider-node --help
