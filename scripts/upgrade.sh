#!/usr/bin/env bash
# Upgrades one of the market's canisters with icp-cli, the way to do it on
# the IC: stop it (its open calls finish, new ones are refused), install the
# new module in upgrade mode (post_upgrade checks the state's invariants and
# traps, rolling the upgrade back, if they fail), check that the module
# hash is the new module's, and start it again. If any step after the stop
# fails, the canister is started again before the script exits.
#
#   scripts/upgrade.sh devnet|ic CANISTER [--wasm FILE] [--args CANDID] [--ids FILE] [--url URL] [--identity NAME]
#
# CANISTER is a name in the ids file scripts/deploy.sh wrote; the module is
# target/canisters/CANISTER.wasm unless --wasm says otherwise. The upgrade
# argument is `(null)` (the configuration is kept) unless --args gives one.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }

NETWORK=${1:-}
NAME=${2:-}
case "$NETWORK" in
    devnet | ic) [ -n "$NAME" ] || die "name the canister"; shift 2 ;;
    *) die "usage: scripts/upgrade.sh devnet|ic CANISTER [--wasm FILE] [--args CANDID] [--ids FILE] [--url URL] [--identity NAME]" ;;
esac
URL=http://127.0.0.1:4943
IDS=deploy/$NETWORK.ids
WASM=target/canisters/$NAME.wasm
ARGS='(null)'
IDENTITY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --url) URL=$2; shift 2 ;;
        --ids) IDS=$2; shift 2 ;;
        --wasm) WASM=$2; shift 2 ;;
        --args) ARGS=$2; shift 2 ;;
        --identity) IDENTITY=(--identity "$2"); shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
ICP=${ICP:-icp}
command -v "$ICP" >/dev/null || die "icp-cli not found: npm install -g @icp-sdk/icp-cli, or set ICP"
icp() { DO_NOT_TRACK=1 "$ICP" "$@"; }
if [ "$NETWORK" = ic ]; then TARGET=(-n ic); else TARGET=(-n "$URL" -k fetch); fi
ID=$(sed -n "s/^$NAME=//p" "$IDS" 2>/dev/null)
[ -n "$ID" ] || die "no canister $NAME in $IDS"
[ -f "$WASM" ] || die "$WASM is missing"
HASH=$(sha256sum "$WASM" | cut -d' ' -f1)

# A field of `icp canister status --json` (one JSON object), lower-cased.
field() {
    icp canister status "$ID" --json "${TARGET[@]}" "${IDENTITY[@]}" | tr -d '\n' |
        sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | tr '[:upper:]' '[:lower:]'
}

echo "stopping $NAME ($ID)" >&2
icp canister stop "$ID" "${TARGET[@]}" "${IDENTITY[@]}" >&2
trap 'echo "starting $NAME again after a failed upgrade" >&2; icp canister start "$ID" "${TARGET[@]}" "${IDENTITY[@]}" >&2' EXIT
[ "$(field status)" = stopped ] || die "$NAME did not stop"

echo "upgrading $NAME to $HASH" >&2
icp canister install "$ID" --mode upgrade --wasm "$WASM" --args "$ARGS" -y \
    "${TARGET[@]}" "${IDENTITY[@]}" >&2
got=$(field module_hash)
[ "${got#0x}" = "$HASH" ] || die "module hash is $got after the upgrade, expected $HASH"

echo "starting $NAME" >&2
icp canister start "$ID" "${TARGET[@]}" "${IDENTITY[@]}" >&2
trap - EXIT
[ "$(field status)" = running ] || die "$NAME is not running after the upgrade"
echo "upgraded $NAME ($ID) to $HASH" >&2
