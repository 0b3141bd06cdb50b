#!/usr/bin/env bash
# Builds the canister .wasm files: target/canisters/<package>.wasm.
#
# Each module is built for wasm32-unknown-unknown with the `canister` profile,
# shrunk with ic-wasm, and given the `candid:service` metadata (public) from
# its checked-in .did file, as dfx and icp-cli expect. Usage:
#   scripts/build-canisters.sh            # every canister
#   scripts/build-canisters.sh escrow     # only the named packages
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh

# package -> .did file ("" for test canisters without a published interface)
declare -A CANISTERS=(
    [registry]=src/registry/registry.did
    [escrow]=src/escrow/escrow.did
    [matcher]=src/matcher/matcher.did
    [archive]=src/archive/archive.did
    [explorer]=src/explorer/explorer.did
    [ledger]=testkit/ledger/ledger.did
    [example-client]=testkit/canisters/example-client/example-client.did
    [probe-canister]=""
    [sns-governance-standin]=""
    [rates-standin]=testkit/canisters/rates/rates-standin.did
)

OUT_DIR=target/canisters
WASM_TARGET_DIR=${WASM_TARGET_DIR:-target/wasm}
IC_WASM_VERSION=0.11.1
TOOLS_DIR=.tools

ensure_ic_wasm() {
    IC_WASM="$TOOLS_DIR/node_modules/@icp-sdk/ic-wasm-linux-x64/bin/ic-wasm"
    if [ -x "$IC_WASM" ] && "$IC_WASM" --version | grep -q "$IC_WASM_VERSION"; then return 0; fi
    if command -v ic-wasm >/dev/null 2>&1 && ic-wasm --version | grep -q "$IC_WASM_VERSION"; then
        IC_WASM=$(command -v ic-wasm)
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "error: ic-wasm is installed with npm, and neither npm nor apt-get is here" >&2
            exit 1
        fi
        apt_install "npm (Debian package) to fetch ic-wasm" npm
    fi
    echo "==> installing ic-wasm $IC_WASM_VERSION (npm @icp-sdk/ic-wasm-linux-x64) into $TOOLS_DIR" >&2
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" \
        "@icp-sdk/ic-wasm-linux-x64@$IC_WASM_VERSION" >&2
}

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
    packages=(registry escrow matcher archive explorer ledger example-client probe-canister sns-governance-standin rates-standin)
fi
for p in "${packages[@]}"; do
    if [ -z "${CANISTERS[$p]+x}" ]; then
        echo "error: unknown canister package '$p' (known: ${!CANISTERS[*]})" >&2
        exit 2
    fi
done

wasm_toolchain wasm32-unknown-unknown
ensure_ic_wasm

# Reproducible: the same sources give the same module bytes on any machine
# of this kind, whatever the checkout's path or the user's home. Paths of
# dependencies' and std's sources (kept in panic messages) are rewritten
# to fixed prefixes; the workspace's own are relative already.
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
REMAP=(
    "--remap-path-prefix=$PWD=/market"
    "--remap-path-prefix=$CARGO_HOME/registry/src=/cargo/registry/src"
    "--remap-path-prefix=$CARGO_HOME/git/checkouts=/cargo/git/checkouts"
    "--remap-path-prefix=$(env "${WASM_ENV[@]}" "${WASM_CARGO[0]%cargo}rustc" --print sysroot)=/rust"
)
WASM_ENV+=("RUSTFLAGS=${REMAP[*]}")

pkg_flags=()
for p in "${packages[@]}"; do pkg_flags+=(-p "$p"); done
echo "==> building ${packages[*]} for wasm32-unknown-unknown" >&2
env "${WASM_ENV[@]}" "${WASM_CARGO[@]}" build --locked --profile canister \
    "${WASM_BUILD_STD_FLAGS[@]}" --target wasm32-unknown-unknown \
    --target-dir "$WASM_TARGET_DIR" "${pkg_flags[@]}"

mkdir -p "$OUT_DIR"
for p in "${packages[@]}"; do
    raw="$WASM_TARGET_DIR/wasm32-unknown-unknown/canister/${p//-/_}.wasm"
    out="$OUT_DIR/$p.wasm"
    "$IC_WASM" "$raw" -o "$out.tmp" shrink
    did="${CANISTERS[$p]}"
    if [ -n "$did" ]; then
        "$IC_WASM" "$out.tmp" -o "$out.tmp" metadata candid:service -f "$did" -v public
    fi
    mv "$out.tmp" "$out"
    echo "    $out ($(stat -c %s "$out") bytes)" >&2
done
