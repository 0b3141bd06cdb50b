#!/usr/bin/env bash
# Checks that the market's canister modules are reproducible: builds them
# here (scripts/build-canisters.sh: every module, as the tests need) and,
# side by side with that build, a second time from a copy of the sources at
# another path with a fresh target directory, then compares the bytes.
# Prints and writes target/canisters/SHA256SUMS, the hashes to publish with
# a release and to compare with `canister_status`'s module_hash.
#
# The two builds run at once, with half the cores each: each ends in
# minutes of one single-threaded LLVM run (the matcher's, one codegen
# unit), which left the other cores idle when they ran one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."

CANISTERS=(registry escrow matcher archive explorer)

# The toolchain and ic-wasm first, once: both builds use them.
scripts/build-canisters.sh --tools

COPY=$(mktemp -d "${TMPDIR:-/tmp}/market-rebuild.XXXXXX")
second=""
cleanup() {
    [ -z "$second" ] || kill -- "-$second" 2>/dev/null || true
    rm -rf "$COPY"
}
trap cleanup EXIT
# The sources as they are in this checkout (tracked and new files), without
# build outputs; the ic-wasm this checkout installed is shared.
git ls-files -co --exclude-standard -z | tar -c --null -T - -f - | tar -x -C "$COPY"
[ -d .tools ] && ln -s "$PWD/.tools" "$COPY/.tools"
echo "==> building ${CANISTERS[*]} again in $COPY, beside the build here" >&2
# In its own process group (setsid), so that a failure here stops all of it.
cores=$(nproc 2>/dev/null || echo 2)
export CARGO_BUILD_JOBS=$((cores > 1 ? cores / 2 : 1))
WASM_TARGET_DIR="$COPY/target/wasm" setsid bash -c 'cd "$0" && exec scripts/build-canisters.sh "$@"' \
    "$COPY" "${CANISTERS[@]}" > >(sed -u 's/^/[copy] /') 2> >(sed -u 's/^/[copy] /' >&2) &
second=$!
scripts/build-canisters.sh
wait "$second"
second=""

status=0
: >target/canisters/SHA256SUMS
for c in "${CANISTERS[@]}"; do
    first=$(sha256sum "target/canisters/$c.wasm" | cut -d' ' -f1)
    second_hash=$(sha256sum "$COPY/target/canisters/$c.wasm" | cut -d' ' -f1)
    if [ "$first" = "$second_hash" ]; then
        echo "$first  $c.wasm" | tee -a target/canisters/SHA256SUMS
    else
        echo "error: $c.wasm differs between two builds: $first here, $second_hash in $COPY" >&2
        status=1
    fi
done
exit $status
