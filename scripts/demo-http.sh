#!/usr/bin/env bash
# The marketplace end to end over the IC's HTTP interface, as separate
# processes: the `local-replica` binary serves the real ledger, registry, escrow
# and matcher .wasm files on 127.0.0.1; two `provider-node` daemons and the
# buyer's `market` tool talk to it through ic-agent, exactly as they would
# talk to a local replica or mainnet.
#
# The story: two providers register, stake and offer with `provider-node`,
# then run their daemons; a buyer runs `market run sha256sum.wasm --input`;
# then a long job starts, the daemon running it is killed (SIGKILL), it is
# slashed at its missed deadline, and the other provider finishes the job;
# who earned and paid what. Then services: the daemons restart with an HTTP
# ingress (`--ingress-listen`), a third provider joins, and the buyer leases
# hello-service with two replicas (`market serve ... --detach`); both answer
# curl; the daemon of one replica is killed (SIGKILL), the matcher's probes
# fail it, the replica is re-matched to the third provider and answers
# there; the buyer cancels the lease. The market explorer (the explorer
# canister's page, served by the devnet's gateway) shows all of it; the
# demo ends by printing its URL and, when run from a terminal, keeps the
# devnet up until Ctrl-C so the page can be opened.
#
# DEMO_SPEED=N: devnet seconds per real second (default 20).
# KEEP_LOGS=1: keep the temp dir (identities, configs, daemon logs).
# KEEP_RUNNING=1 / KEEP_RUNNING=0: keep the devnet up at the end, or not
# (default: only when stdin is a terminal).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SPEED="${DEMO_SPEED:-20}"
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
START=$(now_ms)

say() {
    local ms=$(($(now_ms) - START))
    printf '[%3d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
step() { printf '\n==> %s\n' "$*"; }
die() { echo "demo-http: $*" >&2; exit 1; }

step "building the canisters, the workloads, the explorer's page, devnet, provider-node and market"
scripts/build-canisters.sh ledger registry escrow matcher explorer
scripts/build-workloads.sh
scripts/web.sh
cargo build --locked -p local-replica -p provider-node -p market
DEVNET="$ROOT/target/debug/local-replica"
PN="$ROOT/target/debug/provider-node"
MARKET="$ROOT/target/debug/market"
CANISTERS="$ROOT/target/canisters"
WORKLOADS="$ROOT/target/workloads"
START=$(now_ms)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/demo-http.XXXXXX")
PIDS=()
cleanup() {
    local status=$? i pid
    # Newest first, so the daemons can still reach the devnet while they
    # stop (hand back jobs, send final heartbeats); SIGKILL after 8 s.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 80); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        echo "demo-http failed; the last lines of each log:" >&2
        for log in "$WORK"/*.log; do
            [ -f "$log" ] || continue
            echo "--- $log" >&2
            tail -n 15 "$log" >&2
        done
    fi
    if [ -n "${KEEP_LOGS:-}" ]; then
        echo "logs and identities kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Nothing is written outside $WORK: config, cache and state default there.
export XDG_CONFIG_HOME="$WORK/xdg-config" XDG_CACHE_HOME="$WORK/xdg-cache" XDG_STATE_HOME="$WORK/xdg-state"

# Waits up to $2 seconds for file $1 to contain a line matching $3.
wait_for_line() {
    local file=$1 secs=$2 pattern=$3
    local end=$(($(date +%s) + secs))
    until grep -q -- "$pattern" "$file" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || die "no line matching '$pattern' in $file after ${secs}s"
        sleep 0.1
    done
}

step "identities: a buyer, three providers, the ledger's minting account and the canisters' controller (PEM files, as dfx writes them)"
declare -A PRINCIPAL
for who in minter operator alice provider-1 provider-2 provider-3; do
    PRINCIPAL[$who]=$("$PN" --identity "$WORK/$who.pem" identity new 2>/dev/null)
    say "$who: ${PRINCIPAL[$who]}"
done

step "starting the devnet (clock at ${SPEED}x) with the ledger, registry, escrow, matcher and explorer"
# Canister ids are assigned in install order, so each init argument can name
# the canisters installed after it; checked below against what the devnet prints.
LEDGER=bkyz2-fmaaa-aaaaa-qaaaq-cai
REGISTRY=bd3sg-teaaa-aaaaa-qaaba-cai
ESCROW=be2us-64aaa-aaaaa-qaabq-cai
MATCHER=br5f7-7uaaa-aaaaa-qaaca-cai
EXPLORER=bw4dl-smaaa-aaaaa-qaacq-cai
account() { echo "record { owner = principal \"$1\"; subaccount = null }"; }
# The accounts are funded by the ledger's initial balances (minted at init).
LEDGER_ARG="(variant { Init = record {
  token_name = \"Local ICP\"; token_symbol = \"ICP\"; decimals = opt 8;
  transfer_fee = opt 10_000;
  minting_account = $(account "${PRINCIPAL[minter]}");
  initial_balances = vec {
    record { $(account "${PRINCIPAL[alice]}"); 1_000_000_000 };
    record { $(account "${PRINCIPAL[provider-1]}"); 2_000_000_000 };
    record { $(account "${PRINCIPAL[provider-2]}"); 2_000_000_000 };
    record { $(account "${PRINCIPAL[provider-3]}"); 2_000_000_000 } } } })"
REGISTRY_ARG="(record { ledger = principal \"$LEDGER\"; matcher = opt principal \"$MATCHER\";
  min_stake = 500_000_000; unbonding_period_secs = opt 604_800 })"
ESCROW_ARG="(record { matcher = opt principal \"$MATCHER\"; ledgers = vec { principal \"$LEDGER\" } })"
# Services' replicas are probed every 10 s (the shortest the matcher allows).
MATCHER_ARG="(record { registry = principal \"$REGISTRY\"; escrow = principal \"$ESCROW\";
  stake_ledger = principal \"$LEDGER\"; grace_secs = 10; bond_multiple = 10; slash_multiple = 5;
  challenge_window_secs = opt 30; probe_interval_secs = opt 10 })"
EXPLORER_ARG="(record { registry = principal \"$REGISTRY\"; escrow = principal \"$ESCROW\";
  matcher = principal \"$MATCHER\"; fetch_root_key = true })"
"$DEVNET" --port 0 --time-speed "$SPEED" --controller "${PRINCIPAL[operator]}" \
    --install "ledger=$CANISTERS/ledger.wasm:$LEDGER_ARG" \
    --install "registry=$CANISTERS/registry.wasm:$REGISTRY_ARG" \
    --install "escrow=$CANISTERS/escrow.wasm:$ESCROW_ARG" \
    --install "matcher=$CANISTERS/matcher.wasm:$MATCHER_ARG" \
    --install "explorer=$CANISTERS/explorer.wasm:$EXPLORER_ARG" \
    >"$WORK/devnet.out" 2>"$WORK/devnet.log" &
PIDS+=($!)
wait_for_line "$WORK/devnet.out" 60 "^devnet listening on "
URL=$(sed -n 's/^devnet listening on //p' "$WORK/devnet.out")
for pair in ledger=$LEDGER registry=$REGISTRY escrow=$ESCROW matcher=$MATCHER explorer=$EXPLORER; do
    grep -qx "installed ${pair%%=*} = ${pair#*=}" "$WORK/devnet.out" ||
        die "expected 'installed ${pair%%=*} = ${pair#*=}'; the devnet printed: $(cat "$WORK/devnet.out")"
    say "${pair%%=*} ${pair#*=}"
done
say "devnet at $URL"
# The explorer's page, uploaded by the canisters' controller; served by the
# devnet's gateway at <canister id>.localhost.
node web/dist/tools/upload-explorer.mjs --network "$URL" --canister "$EXPLORER" \
    --identity "$WORK/operator.pem" >"$WORK/upload-explorer.log" 2>&1 ||
    die "uploading the explorer's page failed: $(cat "$WORK/upload-explorer.log")"
EXPLORER_URL="http://$EXPLORER.localhost:${URL##*:}/"
say "explorer at $EXPLORER_URL"

# What every process is told: the network and the canister ids, under
# provider-node's names and market's.
export PROVIDER_NODE_NETWORK="$URL" PROVIDER_NODE_LEDGER="$LEDGER" PROVIDER_NODE_REGISTRY="$REGISTRY" \
    PROVIDER_NODE_ESCROW="$ESCROW" PROVIDER_NODE_MATCHER="$MATCHER"
export MARKET_NETWORK="$URL" MARKET_LEDGER="$LEDGER" MARKET_REGISTRY="$REGISTRY" \
    MARKET_ESCROW="$ESCROW" MARKET_MATCHER="$MATCHER"

step "two providers register, stake 10 ICP and offer 2 slots (provider-node)"
# Each provider has its own config file: identity, state and cache
# directories, metrics on an ephemeral port, and a daemon that looks at
# its assignments every 100 ms (the devnet's clock runs ${SPEED}x).
for n in 1 2 3; do
    mkdir -p "$WORK/provider-$n"
    cat >"$WORK/provider-$n/config.toml" <<EOF
identity = "$WORK/provider-$n.pem"
state_dir = "$WORK/provider-$n/state"
cache_dir = "$WORK/provider-$n/cache"
metrics_addr = "127.0.0.1:0"

[sandbox]
concurrent_jobs = 2
max_job_memory_mib = 256

[daemon]
poll_interval_ms = 100
shutdown_grace_secs = 5
EOF
done
pn() {
    local n=$1
    shift
    "$PN" --config "$WORK/provider-$n/config.toml" "$@"
}
# The speed each declares, in fuel per devnet second: a debug-built node
# runs some twenty times this per real second at the default clock.
FUEL_PER_SEC=5000000
join() {
    local n=$1 price=0.00$1
    pn $n register --name "provider-$n" --region local --slots 2 --memory-per-slot-mib 256 >/dev/null 2>&1
    pn $n stake 10 >/dev/null 2>&1
    pn $n offer post --price-per-gfuel "$price" --fuel-per-sec "$FUEL_PER_SEC" --price-per-interval "$price" \
        --slots 2 --memory-mib 256 --min-interval-secs 10 >/dev/null
    say "provider-$n: registered, 10 ICP staked, offers 2 slots at $price ICP per billion fuel or per interval"
}
for n in 1 2; do join $n; done

step "starting both provider daemons (provider-node run)"
declare -A DAEMON
declare -a EARNED SLASHED STAKE
for n in 1 2; do
    # Started directly, not through a function, so that $! is the daemon's pid.
    RUST_LOG=info NO_COLOR=1 "$PN" --config "$WORK/provider-$n/config.toml" run >"$WORK/provider-$n.log" 2>&1 &
    DAEMON[$n]=$!
    PIDS+=($!)
done
for n in 1 2; do
    wait_for_line "$WORK/provider-$n.log" 30 "metrics at"
    say "provider-$n daemon: pid ${DAEMON[$n]}, $(sed -n 's/.*\(metrics at [^ ]*\).*/\1/p' "$WORK/provider-$n.log" | head -n 1)"
done

step "alice deposits 1 ICP and runs sha256sum.wasm (market)"
market() { "$MARKET" --identity "$WORK/alice.pem" "$@"; }
say "$(market deposit 1 2>/dev/null)"
INPUT="$WORK/input.txt"
printf 'pay for compute in ICP\n' >"$INPUT"
market run "$WORKLOADS/sha256sum.wasm" --input "$INPUT" --max-price-per-gfuel 0.002 --fuel 1000000000 \
    --interval-secs 20 >"$WORK/sha256.out" 2>"$WORK/market-run.log" ||
    die "market run failed: $(cat "$WORK/market-run.log")"
sed 's/^/    market: /' "$WORK/market-run.log"
EXPECTED=$(sha256sum "$INPUT" | cut -d' ' -f1)
GOT=$(cat "$WORK/sha256.out")
say "job stdout: $GOT"
case "$GOT" in
*"$EXPECTED"*) say "matches sha256sum computed locally" ;;
*) die "the job printed '$GOT', expected $EXPECTED" ;;
esac

step "a long job (cpu-kernel, a few seconds of work); the daemon running it is killed mid-job"
LONG=$(market submit "$WORKLOADS/cpu-kernel.wasm" --max-price-per-gfuel 0.002 --interval-secs 20 \
    --fuel 200000000000 -- int 2000000000 2>"$WORK/market-submit.log") ||
    die "market submit failed: $(cat "$WORK/market-submit.log")"
say "job $LONG submitted"
"$MARKET" --identity "$WORK/alice.pem" watch "$LONG" >/dev/null 2>"$WORK/watch.log" &
WATCH=$!
PIDS+=($WATCH)
wait_for_line "$WORK/watch.log" 60 "fuel reported"
FIRST=$(sed -n "s/^job $LONG: \(assigned to\|running on\) \([a-z0-9-]*\).*/\2/p" "$WORK/watch.log" | head -n 1)
case "$FIRST" in
"${PRINCIPAL[provider-1]}") VICTIM=1 SURVIVOR=2 ;;
"${PRINCIPAL[provider-2]}") VICTIM=2 SURVIVOR=1 ;;
*) die "job $LONG is on an unknown provider '$FIRST'" ;;
esac
sed 's/^/    market watch: /' "$WORK/watch.log"
kill -KILL "${DAEMON[$VICTIM]}"
wait "${DAEMON[$VICTIM]}" 2>/dev/null || true
say "provider-$VICTIM's daemon killed with SIGKILL (no final heartbeat)"
STATUS=0
wait "$WATCH" || STATUS=$?
sed 's/^/    market watch: /' "$WORK/watch.log" | tail -n +3
[ "$STATUS" -eq 0 ] || die "market watch $LONG exited with $STATUS"
grep -q "re-queued" "$WORK/watch.log" || die "job $LONG was never re-queued"
grep -Eq "(assigned to|running on) ${PRINCIPAL[provider-$SURVIVOR]}" "$WORK/watch.log" ||
    die "job $LONG did not move to provider-$SURVIVOR"
market result "$LONG" >"$WORK/long.out" 2>/dev/null
say "job $LONG stdout (from provider-$SURVIVOR): $(cat "$WORK/long.out")"

step "who earned and paid what"
# Each job is final when its challenge window closes: then the providers'
# pending pay is claimable and nothing stays locked.
for _ in $(seq 120); do
    [ "$(market jobs 2>/dev/null | grep -c Succeeded)" -ge 2 ] && break
    sleep 0.5
done
[ "$(market jobs 2>/dev/null | grep -c Succeeded)" -ge 2 ] || die "the jobs never became final: $(market jobs 2>&1)"
# Amounts as the tools print them ("0.003 ICP"), in e8s and back.
e8s() {
    local n=${1% ICP} frac=
    [[ $n == *.* ]] && frac=${n#*.}
    frac=$(printf '%-8s' "$frac" | tr ' ' 0)
    echo $((10#${n%%.*} * 100000000 + 10#$frac))
}
icp() { printf '%d.%08d' $(($1 / 100000000)) $(($1 % 100000000)) | sed 's/0*$//; s/\.$//'; }
for n in 1 2; do
    pn $n status >"$WORK/status-$n.txt" 2>/dev/null
    EARNED[$n]=$(e8s "$(sed -n 's/^earnings *\([0-9.]*\) ICP.*/\1/p' "$WORK/status-$n.txt")")
    SLASHED[$n]=$(e8s "$(sed -n 's/.*slashed so far \([0-9.]*\) ICP.*/\1/p' "$WORK/status-$n.txt")")
    STAKE[$n]=$(e8s "$(sed -n 's/^stake *free \([0-9.]*\) ICP.*/\1/p' "$WORK/status-$n.txt")")
done
market balance >"$WORK/balance.txt" 2>/dev/null
ESCROW_FREE=$(e8s "$(sed -n 's/^escrow *\([0-9.]*\) ICP free.*/\1/p' "$WORK/balance.txt")")
PAID=$((EARNED[1] + EARNED[2]))
SLASH=$((SLASHED[1] + SLASHED[2]))
FEE=10000
COMPENSATION=$((SLASH - 2 * FEE))
# Each job's module paid its storage fee, as `market` said.
STORAGE=0
for log in "$WORK/market-run.log" "$WORK/market-submit.log"; do
    fee=$(grep -o '[0-9.]* ICP storage fee paid' "$log" | head -n 1) || die "no storage fee in $log"
    STORAGE=$((STORAGE + $(e8s "${fee% storage fee paid}")))
done
printf '  %-11s %s\n' \
    alice "paid $(icp $PAID) ICP for 2 jobs and $(icp $STORAGE) ICP for storing their modules; received $(icp $COMPENSATION) ICP of the slash (less 2 ledger fees on its way to her escrow balance)" \
    provider-1 "earned $(icp "${EARNED[1]}") ICP; slashed $(icp "${SLASHED[1]}") ICP; stake now $(icp "${STAKE[1]}") ICP" \
    provider-2 "earned $(icp "${EARNED[2]}") ICP; slashed $(icp "${SLASHED[2]}") ICP; stake now $(icp "${STAKE[2]}") ICP"
EXPECTED_FREE=$((100000000 - PAID - STORAGE + COMPENSATION))
[ "$ESCROW_FREE" -eq "$EXPECTED_FREE" ] ||
    die "alice's escrow balance is $(icp "$ESCROW_FREE") ICP, expected 1 - $(icp $PAID) - $(icp $STORAGE) + $(icp $COMPENSATION) = $(icp $EXPECTED_FREE)"
say "checked: alice's escrow balance $(icp "$ESCROW_FREE") ICP = 1 deposited - $(icp $PAID) paid - $(icp $STORAGE) storage + $(icp $COMPENSATION) compensation"
market jobs 2>/dev/null | sed 's/^/    /'
for n in 1 2; do
    say "provider-$n: $(pn $n withdraw --earnings-only 2>/dev/null)"
done

step "services: the daemons restart with an HTTP ingress, and a third provider joins"
kill -TERM "${DAEMON[$SURVIVOR]}"
wait "${DAEMON[$SURVIVOR]}" 2>/dev/null || true
say "provider-$SURVIVOR: $(grep -o 'stopped: .*' "$WORK/provider-$SURVIVOR.log" || echo 'stopped')"
join 3
# A free loopback port for each ingress: one nothing answers on yet.
declare -A INGRESS
free_port() {
    local p used
    while :; do
        p=$((20000 + RANDOM % 40000))
        used=0
        for u in "${INGRESS[@]}"; do [ "$u" = "127.0.0.1:$p" ] && used=1; done
        [ "$used" -eq 0 ] || continue
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
for n in 1 2 3; do
    INGRESS[$n]=127.0.0.1:$(free_port)
    RUST_LOG=info NO_COLOR=1 "$PN" --config "$WORK/provider-$n/config.toml" run \
        --ingress-listen "${INGRESS[$n]}" >"$WORK/provider-$n-ingress.log" 2>&1 &
    DAEMON[$n]=$!
    PIDS+=($!)
done
for n in 1 2 3; do
    wait_for_line "$WORK/provider-$n-ingress.log" 30 "services' ingress"
    say "provider-$n daemon: pid ${DAEMON[$n]}, ingress at http://${INGRESS[$n]}"
done

step "alice leases hello-service with 2 replicas (market serve --detach)"
GREETING="hello from a leased slot"
SID=$(market serve "$WORKLOADS/hello-service.wasm" --replicas 2 --intervals 10 --interval-secs 120 \
    --max-price 0.003 --env "GREETING=$GREETING" --detach 2>"$WORK/market-serve.log") ||
    die "market serve failed: $(cat "$WORK/market-serve.log")"
sed 's/^/    market serve: /' "$WORK/market-serve.log"
say "service $SID leased"
# replica SLOT's provider and endpoint in `market service` output: "PRINCIPAL URL".
replica() { sed -n "s/^  replica $2  [A-Za-z]*, provider \([a-z0-9-]*\), \(http[^,]*\),.*/\1 \2/p" "$1"; }
provider_of() {
    local n
    for n in 1 2 3; do
        if [ "${PRINCIPAL[provider-$n]}" = "$1" ]; then echo "$n"; fi
    done
}
for _ in $(seq 300); do
    market service "$SID" >"$WORK/service.txt" 2>&1 || true
    [ -n "$(replica "$WORK/service.txt" 0)" ] && [ -n "$(replica "$WORK/service.txt" 1)" ] && break
    sleep 0.2
done
sed 's/^/    market service: /' "$WORK/service.txt"
declare -A REPLICA_AT REPLICA_ON
for slot in 0 1; do
    read -r who url <<<"$(replica "$WORK/service.txt" $slot)"
    [ -n "${url:-}" ] || die "replica $slot never got an endpoint"
    REPLICA_ON[$slot]=$(provider_of "$who")
    REPLICA_AT[$slot]=$url
    [ -n "${REPLICA_ON[$slot]}" ] || die "replica $slot is on an unknown provider $who"
done
[ "${REPLICA_ON[0]}" != "${REPLICA_ON[1]}" ] || die "both replicas are on provider-${REPLICA_ON[0]}"
# GETs url, prints the answer, and checks that it holds $2.
check_get() {
    local url=$1 want=$2 got
    got=$(curl -sS --max-time 10 "$url") || die "curl $url failed"
    say "curl $url -> $got"
    case "$got" in *"$want"*) ;; *) die "$url answered '$got', not '$want'" ;; esac
}
for slot in 0 1; do
    say "replica $slot on provider-${REPLICA_ON[$slot]}:"
    check_get "${REPLICA_AT[$slot]}json" '"service":"hello"'
    check_get "${REPLICA_AT[$slot]}env/GREETING" "$GREETING"
done

step "replica 0's provider (provider-${REPLICA_ON[0]}) is killed (SIGKILL); the matcher's probes find out"
LOST=${REPLICA_ON[0]}
OLD_URL=${REPLICA_AT[0]}
kill -KILL "${DAEMON[$LOST]}"
wait "${DAEMON[$LOST]}" 2>/dev/null || true
if curl -sS --max-time 5 "${OLD_URL}healthz" >/dev/null 2>"$WORK/curl-lost.err"; then
    die "the killed node's replica still answers at $OLD_URL"
fi
say "curl ${OLD_URL}healthz -> $(head -n 1 "$WORK/curl-lost.err")"
NEW=""
for _ in $(seq 600); do
    market service "$SID" >"$WORK/service.txt" 2>&1 || true
    read -r who url <<<"$(replica "$WORK/service.txt" 0)"
    if [ -n "${url:-}" ] && [ "$url" != "$OLD_URL" ]; then
        NEW=$(provider_of "$who")
        break
    fi
    sleep 0.2
done
sed 's/^/    market service: /' "$WORK/service.txt"
[ -n "$NEW" ] || die "replica 0 was never re-matched"
[ "$NEW" != "$LOST" ] && [ "$NEW" != "${REPLICA_ON[1]}" ] ||
    die "replica 0 moved to provider-$NEW, not to the third provider"
grep -q "^  replica 0 .*, 1 re-match$" "$WORK/service.txt" || die "replica 0 does not show its re-match"
say "replica 0 re-matched to provider-$NEW at $url"
check_get "${url}json" '"service":"hello"'
check_get "${url}env/GREETING" "$GREETING"
check_get "${REPLICA_AT[1]}healthz" "ok"

step "alice cancels the lease (market cancel-reservation)"
say "$(market cancel-reservation "$SID" 2>&1)"
for _ in $(seq 100); do
    market service "$SID" >"$WORK/service.txt" 2>&1 || true
    grep -q "^service $SID  Cancelled" "$WORK/service.txt" && break
    sleep 0.2
done
sed 's/^/    market service: /' "$WORK/service.txt"
grep -q "^service $SID  Cancelled" "$WORK/service.txt" || die "service $SID was not cancelled"

step "stopping the daemons (SIGTERM)"
for n in 1 2 3; do
    [ "$n" = "$LOST" ] && continue
    kill -TERM "${DAEMON[$n]}"
    wait "${DAEMON[$n]}" 2>/dev/null || true
    say "provider-$n: $(grep -o 'stopped: .*' "$WORK/provider-$n-ingress.log" || echo 'stopped')"
done
say "done"

step "the market explorer: providers, jobs, services, slashes and accounts"
curl -sS --max-time 10 "$EXPLORER_URL" | grep -q "Compute market explorer" ||
    die "the explorer does not answer at $EXPLORER_URL"
KEEP_RUNNING=${KEEP_RUNNING:-$([ -t 0 ] && echo 1 || echo 0)}
if [ "$KEEP_RUNNING" = 1 ]; then
    echo "the devnet stays up for the explorer; Ctrl-C stops it"
fi
echo "explorer: $EXPLORER_URL"
if [ "$KEEP_RUNNING" = 1 ]; then
    wait "${PIDS[0]}" || true
fi
