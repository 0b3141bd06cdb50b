#!/usr/bin/env bash
# Deploys the market's canisters with icp-cli (`icp`): creates them, fills
# the init arguments (deploy/init/*.args) with the network's values
# (deploy/NETWORK.env) and the new canisters' ids, and installs the modules
# scripts/build-canisters.sh built. The ids go to the ids file as NAME=ID
# lines (deploy/NETWORK.ids unless --ids says otherwise), and a canister
# already named there is kept, not created again.
#
# Each of the registry, the escrow and the matcher gets an archive canister
# beside it (NAME-archive, the archive.wasm module, its owner in its init
# argument), named to it with `set_log_archiving`: the oldest blocks of its
# event log move there (see src/canister-common/src/event_log.rs).
#
# The explorer canister serves the market's web page: the script uploads
# the page scripts/web.sh bundled (web/dist/explorer/) and prints its URL.
#
#   scripts/deploy.sh devnet [--url http://127.0.0.1:4943]   # the devnet over HTTP
#   scripts/deploy.sh ic                                    # mainnet
#
# Options: --url URL (devnet only), --ids FILE, --identity NAME (icp-cli's
# identity; its default otherwise), --cycles N (cycles per new canister,
# from the identity's cycles ledger account; icp-cli's default otherwise).
# The caller's identity becomes the only controller: hand control to the
# market's SNS afterwards (README, "Deploying").
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }

NETWORK=${1:-}
case "$NETWORK" in
    devnet | ic) shift ;;
    *) die "usage: scripts/deploy.sh devnet|ic [--url URL] [--ids FILE] [--identity NAME] [--cycles N]" ;;
esac
URL=http://127.0.0.1:4943
IDS=deploy/$NETWORK.ids
IDENTITY=()
CYCLES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --url) URL=$2; shift 2 ;;
        --ids) IDS=$2; shift 2 ;;
        --identity) IDENTITY=(--identity "$2"); shift 2 ;;
        --cycles) CYCLES=(--cycles "$2"); shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
ICP=${ICP:-icp}
command -v "$ICP" >/dev/null || die "icp-cli not found: npm install -g @icp-sdk/icp-cli, or set ICP"
if [ "$NETWORK" = ic ]; then
    TARGET=(-n ic)
    CANISTERS=(registry escrow matcher)
else
    TARGET=(-n "$URL" -k fetch)
    CANISTERS=(ledger registry escrow matcher)
fi
LOGS=(registry escrow matcher)
for c in "${LOGS[@]}"; do CANISTERS+=("$c-archive"); done
CANISTERS+=(explorer)
PAGE=web/dist/explorer
# The module of a canister: the archives share one.
wasm_of() { case "$1" in *-archive) echo target/canisters/archive.wasm ;; *) echo "target/canisters/$1.wasm" ;; esac; }
icp() { DO_NOT_TRACK=1 "$ICP" "$@"; }

for c in "${CANISTERS[@]}"; do
    [ -f "$(wasm_of "$c")" ] || die "$(wasm_of "$c") is missing: run scripts/build-canisters.sh"
done
[ -f "$PAGE/index.html" ] || die "$PAGE is missing: run scripts/web.sh"

# The network's values, then the ids already deployed.
set -a
# shellcheck source=/dev/null
source "deploy/$NETWORK.env"
set +a
touch "$IDS"
id_of() { sed -n "s/^$1=//p" "$IDS"; }

DEPLOYER=$(icp identity principal "${IDENTITY[@]}")
export DEPLOYER
echo "deploying to $NETWORK as $DEPLOYER; ids in $IDS" >&2

for c in "${CANISTERS[@]}"; do
    if [ -z "$(id_of "$c")" ]; then
        id=$(icp canister create --detached -q "${CYCLES[@]}" "${TARGET[@]}" "${IDENTITY[@]}")
        [ -n "$id" ] || die "creating $c printed no id"
        echo "$c=$id" >>"$IDS"
        echo "created $c = $id" >&2
    fi
    upper=$(tr '[:lower:]-' '[:upper:]_' <<<"$c")
    export "$upper=$(id_of "$c")"
done
[ "$NETWORK" = ic ] || export STAKE_LEDGER=$LEDGER

# Fills ${NAME} from the environment; a name without a value is an error.
fill() {
    perl -pe 's/\$\{(\w+)\}/defined $ENV{$1} ? $ENV{$1} : die "deploy\/init: no value for \${$1}\n"/ge' "$1"
}

ARGS=$(mktemp -d)
trap 'rm -rf "$ARGS"' EXIT
for c in "${CANISTERS[@]}"; do
    id=$(id_of "$c")
    if icp canister status "$id" --json "${TARGET[@]}" "${IDENTITY[@]}" | grep -q '"module_hash": *"'; then
        echo "$c ($id) already has a module: upgrade it with scripts/upgrade.sh" >&2
        continue
    fi
    fill "deploy/init/$c.args" >"$ARGS/$c.args"
    icp canister install "$id" --mode install --wasm "$(wasm_of "$c")" \
        --args-file "$ARGS/$c.args" -y "${TARGET[@]}" "${IDENTITY[@]}" >&2
    echo "installed $c = $id" >&2
done
# Each log's archive, named by the controllers (again on a redeploy: the
# same archive is a no-op).
for c in "${LOGS[@]}"; do
    icp canister call "$(id_of "$c")" set_log_archiving \
        "(record { archive = opt principal \"$(id_of "$c-archive")\"; max_local_blocks = null })" \
        "${TARGET[@]}" "${IDENTITY[@]}" >&2
    echo "named $c-archive to $c" >&2
done

# The explorer's page, file by file in pieces of 256 KiB, or of
# EXPLORER_PIECE_BYTES (again on a redeploy: a file's first piece replaces
# it).
EXPLORER=$(id_of explorer)
type_of() {
    case "$1" in
        *.html) echo "text/html; charset=utf-8" ;;
        *.js) echo "text/javascript; charset=utf-8" ;;
        *.css) echo "text/css; charset=utf-8" ;;
        *.svg) echo "image/svg+xml" ;;
        *.png) echo "image/png" ;;
        *.json) echo "application/json" ;;
    esac
}
PIECE=${EXPLORER_PIECE_BYTES:-262144}
for file in "$PAGE"/*; do
    name=$(basename "$file")
    type=$(type_of "$name")
    [ -n "$type" ] || continue
    size=$(stat -c %s "$file")
    at=0
    while [ "$at" -eq 0 ] || [ "$at" -lt "$size" ]; do
        append=false
        [ "$at" -eq 0 ] || append=true
        {
            printf '(record { path = "/%s"; content_type = "%s"; append = %s; content = blob "' \
                "$name" "$type" "$append"
            dd if="$file" bs="$PIECE" skip=$((at / PIECE)) count=1 status=none | od -An -v -tx1 | tr -d ' \n' | sed 's/../\\&/g'
            printf '" })\n'
        } >"$ARGS/piece.args"
        reply=$(icp canister call "$EXPLORER" upload_asset --args-file "$ARGS/piece.args" \
            --candid src/explorer/explorer.did "${TARGET[@]}" "${IDENTITY[@]}")
        grep -q 'Ok' <<<"$reply" || die "uploading /$name to the explorer: $reply"
        at=$((at + PIECE))
    done
    echo "uploaded /$name ($size bytes) to the explorer" >&2
done
if [ "$NETWORK" = ic ]; then
    echo "explorer: https://$EXPLORER.icp0.io/" >&2
else
    PORT=${URL##*:}
    PORT=${PORT%%/*}
    echo "explorer: http://$EXPLORER.localhost:$PORT/" >&2
fi
cat "$IDS"
