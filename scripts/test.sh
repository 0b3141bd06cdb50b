#!/usr/bin/env bash
# Runs every test: builds the canister and workload .wasm files the tests
# load, then the whole workspace's native, devnet and sandbox tests.
# Installs what it needs (Debian's wasm-capable Rust, ic-wasm, icp-cli,
# the npm packages of web/ and Debian's chromium)
# idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-canisters.sh

# icp-cli, which testkit/local-replica/tests/icp_cli.rs runs against the
# devnet's HTTP server, and tests/tests/deploy.rs runs with the deploy
# scripts: npm's prebuilt binary, kept under .tools beside ic-wasm (npm is
# there once build-canisters.sh has run).
ICP_VERSION=1.5.0
ICP_TOOLS=.tools
ICP_CLI="$PWD/$ICP_TOOLS/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp"
if [ "$("$ICP_CLI" --version 2>/dev/null)" != "icp $ICP_VERSION" ]; then
    echo "==> npm install @icp-sdk/icp-cli-linux-x64@$ICP_VERSION into $ICP_TOOLS" >&2
    mkdir -p "$ICP_TOOLS"
    npm install --prefix "$ICP_TOOLS" --silent --no-audit --no-fund \
        "@icp-sdk/icp-cli-linux-x64@$ICP_VERSION" >&2
fi
export ICP_CLI
if [ -x scripts/build-workloads.sh ]; then
    scripts/build-workloads.sh
fi
# The explorer's page, the TypeScript bindings and example (checked and
# bundled), and Debian's chromium, for tests/tests/explorer.rs.
scripts/web.sh --browser

echo "==> cargo test --workspace" >&2
cargo test --workspace --locked "$@"
