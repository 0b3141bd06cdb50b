#!/usr/bin/env bash
# Checks that the market's canister modules are reproducible: builds them a
# second time from a copy of the sources at another path, with a fresh
# target directory, and compares the bytes with target/canisters (built by
# scripts/build-canisters.sh, which it runs first if they are missing).
# Prints and writes target/canisters/SHA256SUMS, the hashes to publish with
# a release and to compare with `canister_status`'s module_hash.
set -euo pipefail
cd "$(dirname "$0")/.."

CANISTERS=(registry escrow matcher archive explorer)
for c in "${CANISTERS[@]}"; do
    [ -f "target/canisters/$c.wasm" ] || { scripts/build-canisters.sh "${CANISTERS[@]}"; break; }
done

COPY=$(mktemp -d "${TMPDIR:-/tmp}/market-rebuild.XXXXXX")
trap 'rm -rf "$COPY"' EXIT
# The sources as they are in this checkout (tracked and new files), without
# build outputs; the ic-wasm this checkout installed is shared.
git ls-files -co --exclude-standard -z | tar -c --null -T - -f - | tar -x -C "$COPY"
[ -d .tools ] && ln -s "$PWD/.tools" "$COPY/.tools"
echo "==> building ${CANISTERS[*]} again in $COPY" >&2
(cd "$COPY" && WASM_TARGET_DIR="$COPY/target/wasm" scripts/build-canisters.sh "${CANISTERS[@]}")

status=0
: >target/canisters/SHA256SUMS
for c in "${CANISTERS[@]}"; do
    first=$(sha256sum "target/canisters/$c.wasm" | cut -d' ' -f1)
    second=$(sha256sum "$COPY/target/canisters/$c.wasm" | cut -d' ' -f1)
    if [ "$first" = "$second" ]; then
        echo "$first  $c.wasm" | tee -a target/canisters/SHA256SUMS
    else
        echo "error: $c.wasm differs between two builds: $first here, $second in $COPY" >&2
        status=1
    fi
done
exit $status
