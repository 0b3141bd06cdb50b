#!/usr/bin/env bash
# The main job: the marketplace end to end on the embedded devnet.
#
# Builds the canister .wasm files and the WASI workloads (installing the
# wasm toolchain and ic-wasm if needed), then runs `market-demo`: the real
# ledger, registry, escrow and matcher modules deployed on the devnet, two
# provider daemons running jobs in the wasmtime sandbox, a person and a
# canister buying compute, a cheating provider's forged result overturned by
# an audit and its stake slashed, the canister leasing hello-service with two
# replicas (each provider daemon runs an HTTP ingress on 127.0.0.1; the demo
# calls both), one provider killed mid-job and slashed while another finishes
# it and its replica fails the matcher's probes and answers again on a fourth
# provider, an SNS DAO reserving a slot by proposal for the canister's job,
# and the closing accounts checked against the ledger.
#
# DEMO_SPEED=N sets how many devnet seconds pass per real second (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-canisters.sh
scripts/build-workloads.sh
echo "==> building the demo" >&2
cargo build --locked -p market-demo
exec target/debug/market-demo
