//! Instructions each canister's upgrade takes as its state grows: the
//! registry with many providers, the escrow with many locks and the
//! matcher with many jobs (submitted and cancelled, so each leaves a job
//! record in the matcher and a settled lock in the escrow, as a buyer's
//! history does). Counts come from the devnet's per-message instruction
//! counter running the real `.wasm` files, so the host's speed does not
//! matter; the IC's limit for an upgrade's hooks is 300 B.
//!
//! With `--before DIR`, each canister is first upgraded to the module of
//! the same name in `DIR` (say, the modules of an older commit) and then
//! to the current one, so both are measured on the same state in one run.
//! After the upgrade to the current module the bench lets the background
//! audit run and reports its chunks.
//!
//! ```sh
//! scripts/build-canisters.sh
//! cargo bench --profile dev -p market-tests --bench upgrade                    # 100000 jobs, 10000 providers
//! cargo bench --profile dev -p market-tests --bench upgrade -- --jobs 1000 --providers 100
//! cargo bench --profile dev -p market-tests --bench upgrade -- --before target/canisters-before
//! ```

use candid::{CandidType, Principal};
use devnet::MessageId;
use market_api::JobId;
use market_api::escrow::EscrowInit;
use market_api::matcher::{MatcherError, MatcherInit};
use market_api::registry::{ProviderProfile, RegistryConfigUpdate, RegistryError};
use market_fixture::{ICP, MarketFixture, Settings};
use market_tests::thousands;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Messages submitted before the devnet runs them.
const BATCH: usize = 1_000;

fn who(tag: u8, i: usize) -> Principal {
    let mut b = [tag; 29];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Principal::from_slice(&b)
}

/// Submits every call, runs them, and returns their replies in order.
fn run_batch<A: CandidType>(
    net: &MarketFixture,
    canister: Principal,
    calls: Vec<(Principal, &str, A)>,
) -> Vec<Vec<u8>> {
    let mut dn = net.devnet();
    let ids: Vec<MessageId> = calls
        .into_iter()
        .map(|(from, method, arg)| {
            dn.submit_call(canister, from, method, candid::encode_one(arg).unwrap())
                .unwrap_or_else(|r| panic!("{method} refused: {r}"))
        })
        .collect();
    ids.into_iter()
        .map(|id| dn.await_call(id).expect("answered"))
        .collect()
}

fn register_providers(net: &MarketFixture, n: usize) {
    for start in (0..n).step_by(BATCH) {
        let calls = (start..n.min(start + BATCH))
            .map(|i| {
                let profile = ProviderProfile {
                    display_name: format!("provider {i}"),
                    region: "local".into(),
                    node: who(0x4E, i),
                    total_slots: 4,
                    memory_per_slot_mib: 512,
                    tags: vec![],
                    endpoint: None,
                };
                (who(0x50, i), "register_provider", profile)
            })
            .collect();
        for r in run_batch(net, net.ids.registry, calls) {
            let r: Result<(), RegistryError> = candid::decode_one(&r).unwrap();
            r.expect("registered");
        }
    }
}

/// Buyers submitting at once (one call each: a buyer's calls take turns).
const BUYERS: usize = 100;

/// `n` jobs submitted and cancelled, by 100 buyers, 100 at a time.
fn submit_and_cancel(net: &MarketFixture, n: usize, started: Instant) {
    for b in 0..BUYERS {
        net.mint(who(0x42, b), 100 * ICP).unwrap();
        net.deposit(who(0x42, b), 90 * ICP).unwrap();
    }
    let spec = net.url_job(60, 1, 1);
    for start in (0..n).step_by(BUYERS) {
        let k = BUYERS.min(n - start);
        let calls = (0..k)
            .map(|b| (who(0x42, b), "submit_job", spec.clone()))
            .collect();
        let ids: Vec<JobId> = run_batch(net, net.ids.matcher, calls)
            .iter()
            .map(|r| {
                let r: Result<JobId, MatcherError> = candid::decode_one(r).unwrap();
                r.expect("submit_job")
            })
            .collect();
        let calls = ids
            .into_iter()
            .enumerate()
            .map(|(b, id)| (who(0x42, b), "cancel_job", id))
            .collect();
        for r in run_batch(net, net.ids.matcher, calls) {
            let r: Result<(), MatcherError> = candid::decode_one(&r).unwrap();
            r.expect("cancel_job");
        }
        net.settle_outbox();
        if (start + k).is_multiple_of(20_000) {
            eprintln!("  {} jobs ({:.0?})", start + k, started.elapsed());
        }
    }
}

/// Lets the audit timers run until each canister's pass is done: the
/// number of audit runs and the most instructions one took, per canister.
fn audit(net: &MarketFixture, canisters: &[Principal]) -> Vec<(usize, u64)> {
    let mut stats = vec![(0usize, 0u64); canisters.len()];
    for _ in 0..200 {
        net.devnet().take_executions();
        net.advance(Duration::from_secs(30));
        for e in net.devnet().take_executions() {
            // A timer's work runs in ic-cdk's self-call, not in the
            // global timer entry that starts it.
            if e.entry.contains("timer_executor")
                && let Some(i) = canisters.iter().position(|c| *c == e.canister)
            {
                stats[i].0 += 1;
                stats[i].1 = stats[i].1.max(e.instructions);
            }
        }
        let done = canisters.iter().all(|c| {
            let page: market_api::HttpResponse = net
                .query(
                    *c,
                    "http_request",
                    &market_api::HttpRequest {
                        method: "GET".into(),
                        url: "/metrics".into(),
                        headers: vec![],
                        body: vec![],
                    },
                )
                .unwrap();
            let text = String::from_utf8_lossy(&page.body).into_owned();
            text.lines().any(|l| {
                l.contains("_audit_passes_total ") && !l.starts_with('#') && !l.contains(" 0 ")
            })
        });
        if done {
            break;
        }
    }
    stats
}

fn main() {
    let mut jobs = 100_000;
    let mut providers = 10_000;
    let mut before: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jobs" => jobs = args.next().and_then(|v| v.parse().ok()).expect("--jobs N"),
            "--providers" => {
                providers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--providers N")
            }
            "--before" => before = Some(args.next().expect("--before DIR").into()),
            _ => {} // cargo bench's own flags
        }
    }
    let started = Instant::now();
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    register_providers(&net, providers);
    eprintln!("  {providers} providers ({:.0?})", started.elapsed());
    submit_and_cancel(&net, jobs, started);
    eprintln!("  {jobs} jobs ({:.0?})", started.elapsed());
    let ids = net.ids;
    let targets: [(&str, Principal, Vec<u8>); 3] = [
        (
            "registry",
            ids.registry,
            candid::encode_one(None::<RegistryConfigUpdate>).unwrap(),
        ),
        (
            "escrow",
            ids.escrow,
            candid::encode_one(None::<EscrowInit>).unwrap(),
        ),
        (
            "matcher",
            ids.matcher,
            candid::encode_one(None::<MatcherInit>).unwrap(),
        ),
    ];
    println!("| canister | state | upgrade before (instructions) | upgrade now (instructions) |");
    println!("|---|---|---|---|");
    for (name, id, arg) in &targets {
        let old = before.as_ref().map(|dir| {
            let wasm = std::fs::read(dir.join(format!("{name}.wasm"))).expect("old module");
            net.upgrade(*id, &wasm, arg.clone())
        });
        let now = net.upgrade(
            *id,
            &market_fixture::canister_wasm(name).unwrap(),
            arg.clone(),
        );
        let state = if *name == "registry" {
            format!("{providers} providers")
        } else {
            format!("{jobs} jobs")
        };
        let old = old.map_or("-".to_string(), |n| thousands(u128::from(n)));
        println!(
            "| {name} | {state} | {old} | {} |",
            thousands(u128::from(now))
        );
    }
    let stats = audit(&net, &[ids.registry, ids.escrow, ids.matcher]);
    for ((name, _, _), (runs, max)) in targets.iter().zip(stats) {
        println!(
            "audit of the {name}: {runs} timer runs, at most {} instructions in one",
            thousands(u128::from(max))
        );
    }
    eprintln!("total {:.0?}", started.elapsed());
}
