#!/usr/bin/env bash
# Prepares web/ (the explorer page, the TypeScript bindings and example):
# installs its npm packages from package-lock.json, checks that the
# checked-in bindings are those the .did files generate and that the
# TypeScript type-checks, bundles the page, the Node tools and the unit
# tests into web/dist/, and runs the unit tests. With --browser, also installs Debian's chromium for the
# browser test. Idempotent; prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh

timed() {
    local what=$1 start=$EPOCHREALTIME
    shift
    "$@"
    local s=${start/[.,]/} e=${EPOCHREALTIME/[.,]/}
    printf '    %s: %d.%01ds\n' "$what" $(((e - s) / 1000000)) $(((e - s) / 100000 % 10)) >&2
}

if ! command -v npm >/dev/null 2>&1; then
    apt_install "npm (Debian package)" npm
fi
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
    timed "apt-get install chromium" apt_install "Debian's chromium for the browser test" chromium
fi

cd web
# npm ci starts from an empty node_modules; skip it while the installed
# tree is the lock file's (npm writes its own copy of the lock there).
if ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null &&
    ! [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "==> npm ci (web/)" >&2
    timed "npm ci" npm ci --no-audit --no-fund --loglevel=error
fi

echo "==> web/: bindings match the .did files, type-check, bundle, unit tests" >&2
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
node scripts/bindings.mjs "$generated"
if ! diff -r "$generated" bindings/src >/dev/null; then
    echo "error: web/bindings/src is not what the .did files generate; run \`npm run bindings\` in web/" >&2
    diff -r "$generated" bindings/src | head -n 20 >&2
    exit 1
fi
timed "tsc --noEmit" npx --no-install tsc --noEmit -p tsconfig.json
timed "esbuild bundle" node scripts/build.mjs
timed "unit tests (node --test)" node --test --test-reporter=dot dist/test/
