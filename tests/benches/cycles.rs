//! Cycles per operation of the market, at the prices the devnet charges (a
//! 13-node application subnet's): what the registry, escrow and matcher
//! burn together for each step of a job's life, and what the ledger burns
//! separately, measured with `Devnet::cycles_burned` on the real `.wasm`
//! files of a market from `market-fixture`. Storage is charged as the clock
//! moves, so it is left out of each operation and given once, per day, for
//! the market as the bench leaves it.
//!
//! Operations: a buyer's deposit (approve and pull) and withdrawal, the
//! only steps that reach the ledger; `submit_job` that rests; the match of a resting bid by an
//! offer (with the bond in the registry); one heartbeat item (an interval's
//! pay released in the escrow); one result (to the start of its challenge
//! window); the settle after the window; the extra of an audited job (the
//! audit run's match, the auditor's result and the verdict); one probe of a
//! service replica (an HTTP outcall to a server of the bench); one lease
//! interval (the heartbeat that pays it); and a whole job from submit to
//! settle. What the canisters burn idle (their timers) is measured first,
//! over an hour, and taken off each operation for the devnet time it lets
//! pass (a settle waits out the challenge window). So is the idle hour of
//! a second market whose matcher turns its fees into cycles
//! (`cycles_top_up`, which reads its balance in the escrow), shown beside
//! it and taken off nothing. The last line is the market fee in ICP e8s that would pay a job's cycles
//! at the devnet's cycles minting canister's rate
//! (`get_icp_xdr_conversion_rate`; 1 XDR = 10^12 cycles), rounded up.
//!
//! ```sh
//! scripts/build-canisters.sh
//! cargo bench --profile dev -p market-tests --bench cycles
//! ```

use candid::Principal;
use devnet::{CMC_ID, CyclesBurned};
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, Assignment, AuditVerdict, GFUEL, HeartbeatAck, HeartbeatItem, Job, JobSpec,
    JobStatus, MatcherError, ServiceView, SubmitResultArgs,
};
use market_api::{JobId, Tokens};
use market_fixture::{ICP, MarketFixture, Settings, exited, heartbeat_item, principal};
use market_tests::thousands;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

const PRICE: Tokens = 100_000;
const INTERVAL_SECS: u64 = 60;
const PROBE_EVERY_SECS: u64 = 10;
/// Probes measured: enough probe periods that the timers' runs among them
/// average out.
const PROBES: u64 = 30;
/// The lease's interval: long enough for [`PROBES`] probes between two
/// heartbeats.
const LEASE_INTERVAL_SECS: u64 = 600;
/// How many times each operation is measured (the table gives the mean).
const RUNS: u128 = 5;

fn buyer() -> Principal {
    principal(1)
}

/// Provider `n` and its node: 1 runs the jobs, 2 audits them, 3 takes
/// the resting bids.
fn provider(n: u8) -> (Principal, Principal) {
    (principal(0x40 + n), principal(0x50 + n))
}

const PROVIDERS: [u8; 3] = [1, 2, 3];

/// The node of one of the bench's providers.
fn node_of(p: Principal) -> Principal {
    PROVIDERS
        .iter()
        .map(|n| provider(*n))
        .find(|(q, _)| *q == p)
        .expect("one of the bench's providers")
        .1
}

/// Every assignment of every provider, with the node that runs it.
fn all_assignments(net: &MarketFixture) -> Vec<(Principal, Assignment)> {
    PROVIDERS
        .iter()
        .flat_map(|n| {
            let (p, node) = provider(*n);
            net.assignments(p)
                .unwrap()
                .into_iter()
                .map(move |a| (node, a))
        })
        .collect()
}

/// Cycles the market's canisters and the ledger burned during one step.
#[derive(Clone, Copy, Default)]
struct Cost {
    /// Registry, escrow and matcher, storage left out.
    market: u128,
    /// Of which the matcher's.
    matcher: u128,
    /// The ledger's, storage left out.
    ledger: u128,
}

impl Cost {
    fn plus(self, o: Cost) -> Cost {
        Cost {
            market: self.market + o.market,
            matcher: self.matcher + o.matcher,
            ledger: self.ledger + o.ledger,
        }
    }

    fn minus(self, o: Cost) -> Cost {
        Cost {
            market: self.market.saturating_sub(o.market),
            matcher: self.matcher.saturating_sub(o.matcher),
            ledger: self.ledger.saturating_sub(o.ledger),
        }
    }

    fn per(self, n: u128) -> Cost {
        Cost {
            market: self.market / n,
            matcher: self.matcher / n,
            ledger: self.ledger / n,
        }
    }
}

fn without_storage(b: CyclesBurned) -> u128 {
    b.total() - b.storage
}

/// What the canisters burn per hour with nothing to do (their timers),
/// once measured: [`measure`] takes it off a step's cost for the time the
/// step lets pass.
static IDLE_PER_HOUR: Mutex<Option<Cost>> = Mutex::new(None);

const NANOS_PER_HOUR: u128 = 3_600_000_000_000;

/// Runs `step` and returns what it burned, less the idle burn of the
/// devnet time it took.
fn measure<R>(net: &MarketFixture, step: impl FnOnce() -> R) -> (R, Cost) {
    net.devnet().reset_cycles_burned();
    let start = net.time_ns();
    let r = step();
    let elapsed = u128::from(net.time_ns() - start);
    let dn = net.devnet();
    let burned = |id| without_storage(dn.cycles_burned(id).expect("exists"));
    let ids = net.ids;
    let cost = Cost {
        market: burned(ids.registry) + burned(ids.escrow) + burned(ids.matcher),
        matcher: burned(ids.matcher),
        ledger: burned(ids.ledger),
    };
    let idle = IDLE_PER_HOUR.lock().unwrap().unwrap_or_default();
    let idle = Cost {
        market: idle.market * elapsed / NANOS_PER_HOUR,
        matcher: idle.matcher * elapsed / NANOS_PER_HOUR,
        ledger: idle.ledger * elapsed / NANOS_PER_HOUR,
    };
    (r, cost.minus(idle))
}

/// Measures the idle burn over an hour of devnet time with nothing to do.
fn measure_idle(net: &MarketFixture) -> Cost {
    let (_, idle) = measure(net, || net.wait_secs(3_600));
    *IDLE_PER_HOUR.lock().unwrap() = Some(idle);
    idle
}

fn submit(net: &MarketFixture, spec: &JobSpec) -> JobId {
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, buyer(), "submit_job", spec)
        .unwrap();
    let id = r.expect("submit_job");
    net.settle_outbox();
    id
}

fn get_job(net: &MarketFixture, id: JobId) -> Job {
    let j: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
    j.expect("the job exists")
}

fn heartbeat(net: &MarketFixture, node: Principal, items: Vec<HeartbeatItem>) {
    let acks: Result<Vec<HeartbeatAck>, MatcherError> = net
        .update(net.ids.matcher, node, "heartbeat", &items)
        .unwrap();
    for ack in acks.expect("answered item by item") {
        assert!(matches!(ack, HeartbeatAck::Accepted { .. }), "{ack:?}");
    }
    net.settle_outbox();
}

fn report(net: &MarketFixture, node: Principal, id: JobId, attempt: u32, fuel: u64) {
    let r: Result<(), MatcherError> = net
        .update(
            net.ids.matcher,
            node,
            "submit_result",
            &SubmitResultArgs {
                job_id: id,
                attempt,
                result: exited(b"done", fuel),
            },
        )
        .unwrap();
    r.expect("the result is taken");
    net.settle_outbox();
}

/// The costs of one job's life on the runner, step by step: the submit
/// (matched at once), the first heartbeat, the heartbeat paying the first
/// interval, the result, and the settle after the challenge window (for an
/// audited job, with the auditor's run and the verdict).
struct Lifecycle {
    submit: Cost,
    ack: Cost,
    pay: Cost,
    result: Cost,
    settle: Cost,
}

impl Lifecycle {
    fn total(&self) -> Cost {
        self.submit
            .plus(self.ack)
            .plus(self.pay)
            .plus(self.result)
            .plus(self.settle)
    }
}

fn lifecycle(net: &MarketFixture, audit_ppm: Option<u32>) -> Lifecycle {
    let spec = JobSpec {
        audit_ppm,
        ..net.url_job(INTERVAL_SECS, 2, PRICE)
    };
    let (id, submit_cost) = measure(net, || submit(net, &spec));
    let holder = get_job(net, id).provider.expect("matched at once");
    let runner_node = node_of(holder);
    let (_, ack) = measure(net, || {
        heartbeat(net, runner_node, vec![heartbeat_item(id, 1, 0)])
    });
    net.wait_secs(INTERVAL_SECS - 5);
    let (_, pay) = measure(net, || {
        heartbeat(net, runner_node, vec![heartbeat_item(id, 1, GFUEL)])
    });
    let before: Vec<JobId> = all_assignments(net).iter().map(|(_, a)| a.job_id).collect();
    let (_, result) = measure(net, || report(net, runner_node, id, 1, GFUEL));
    let (_, settle) = measure(net, || {
        if audit_ppm.is_some() {
            let (node, run) = all_assignments(net)
                .into_iter()
                .find(|(_, a)| !before.contains(&a.job_id))
                .expect("the audit run is assigned to another provider");
            report(net, node, run.job_id, run.attempt, GFUEL);
            let verdict = get_job(net, id).audit.and_then(|a| a.verdict);
            assert_eq!(verdict, Some(AuditVerdict::Agreed));
        }
        net.wait_secs(net.settings.challenge_window_secs + 5);
        net.settle_outbox();
    });
    assert_eq!(get_job(net, id).status, JobStatus::Succeeded);
    Lifecycle {
        submit: submit_cost,
        ack,
        pay,
        result,
        settle,
    }
}

/// A replica stand-in answering `200 OK` to every probe, on a thread of
/// its own for the rest of the bench.
fn replica() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    port
}

/// The cost of one probe and of one lease interval: a one-slot service
/// lease, whose replica answers on a local port.
fn lease(net: &MarketFixture) -> (Cost, Cost) {
    let spec = net.hello_lease_spec(LEASE_INTERVAL_SECS, 20, 2 * PRICE);
    let r: Result<u64, MatcherError> = net
        .update(net.ids.matcher, buyer(), "reserve", &spec)
        .unwrap();
    let rid = r.expect("reserve");
    net.settle_outbox();
    let view: Option<ServiceView> = net.query(net.ids.matcher, "get_service", &rid).unwrap();
    let replica_slot = view.expect("a service").replicas[0].clone();
    let holder_node = node_of(replica_slot.provider.expect("the slot is held"));
    let slot = replica_slot.job_id;
    let endpoint = format!("http://127.0.0.1:{}/{rid}/", replica());
    let item = |endpoint: Option<String>| HeartbeatItem {
        job_id: slot,
        attempt: 1,
        fuel_used: 0,
        endpoint,
        tcp_address: None,
    };
    heartbeat(net, holder_node, vec![item(Some(endpoint.clone()))]);
    // Probes: each probe period's timer run and its outcall.
    let probes_before = probes(net);
    let (_, probe_cost) = measure(net, || {
        for _ in 0..PROBES {
            net.advance(Duration::from_secs(PROBE_EVERY_SECS));
        }
        net.settle_outbox();
    });
    let n = probes(net) - probes_before;
    assert!(n >= u128::from(PROBES), "{n} probes");
    // The lease interval: the heartbeat that closes it and pays it.
    net.wait_secs(LEASE_INTERVAL_SECS - PROBE_EVERY_SECS * PROBES - 1);
    let mut interval = Cost::default();
    for i in 0..RUNS {
        if i > 0 {
            net.wait_secs(LEASE_INTERVAL_SECS);
        }
        let (_, c) = measure(net, || {
            heartbeat(net, holder_node, vec![item(Some(endpoint.clone()))])
        });
        interval = interval.plus(c);
    }
    (probe_cost.per(n), interval.per(RUNS))
}

fn probes(net: &MarketFixture) -> u128 {
    let page = net.metrics(net.ids.matcher).unwrap();
    market_fixture::metrics::metric_value(&page, "matcher_probes_total").unwrap_or(0.0) as u128
}

/// E8s that buy `cycles` at `xdr_permyriad_per_icp`, rounded up: cycles
/// are 10^12 to the XDR, an ICP is 10^8 e8s, so an e8 buys
/// `xdr_permyriad_per_icp` cycles.
fn e8s_for(cycles: u128, xdr_permyriad_per_icp: u64) -> u128 {
    cycles.div_ceil(u128::from(xdr_permyriad_per_icp))
}

fn row(what: &str, c: Cost) {
    println!(
        "| {what} | {} | {} | {} |",
        thousands(c.market),
        thousands(c.matcher),
        thousands(c.ledger)
    );
}

/// A market with a funded buyer and two providers' offers; `top_ups`: the
/// matcher turns its fees into cycles from 1 ICP on.
fn market(top_ups: bool) -> MarketFixture {
    let net = MarketFixture::deploy(Settings {
        probe_interval_secs: Some(PROBE_EVERY_SECS),
        probe_fee: Some(1_000),
        cycles_top_up_threshold: top_ups.then_some(ICP),
        ..Settings::default()
    })
    .expect("deploy");
    net.mint(buyer(), 1_000 * ICP).unwrap();
    net.deposit(buyer(), 900 * ICP).unwrap();
    // The runner is the cheapest; the auditor's offer is there for audit
    // runs (a job's own provider never audits it).
    for (n, price) in [(1u8, PRICE), (2, PRICE + 1)] {
        let (p, node) = provider(n);
        net.onboard_provider(p, node, 500 * ICP).unwrap();
        net.post_offer(p, &net.offer_spec(16, price)).unwrap();
    }
    net
}

fn main() {
    // The same idle hour of a market whose fees become cycles: measured
    // before the idle burn is known, so none is taken off.
    let idle_top_ups = {
        let net = market(true);
        measure(&net, || net.wait_secs(3_600)).1
    };
    let net = market(false);
    let idle = measure_idle(&net);

    // Money in and out: the buyer's approve and pull deposit, and a
    // withdrawal of free funds (each an ICRC call to the ledger).
    let (_, deposit) = measure(&net, || net.deposit(buyer(), ICP).unwrap());
    let (_, withdraw) = measure(&net, || {
        let args = market_api::escrow::WithdrawArgs {
            ledger: net.ids.ledger,
            amount: ICP,
            to: market_fixture::account(buyer()),
        };
        let r: Result<Tokens, market_api::escrow::EscrowError> = net
            .update(net.ids.escrow, buyer(), "withdraw", &args)
            .unwrap();
        r.expect("withdraw");
    });

    // A bid that rests (below every offer), then the match that takes it.
    let resting = JobSpec {
        max_price_per_gfuel: PRICE / 2,
        ..net.url_job(INTERVAL_SECS, 2, PRICE / 2)
    };
    let mut rest = Cost::default();
    for _ in 0..RUNS {
        rest = rest.plus(measure(&net, || submit(&net, &resting)).1);
    }
    let (taker, taker_node) = provider(3);
    net.onboard_provider(taker, taker_node, 500 * ICP).unwrap();
    let (_, matched) = measure(&net, || {
        net.post_offer(taker, &net.offer_spec(RUNS as u32, PRICE / 2))
            .unwrap();
        net.settle_outbox();
    });
    let taken = net.assignments(taker).unwrap();
    assert_eq!(
        taken.len(),
        RUNS as usize,
        "the offer takes every resting bid"
    );
    // They run and finish, so that no missed deadline adds to what follows.
    for a in &taken {
        heartbeat(
            &net,
            taker_node,
            vec![heartbeat_item(a.job_id, a.attempt, 0)],
        );
        report(&net, taker_node, a.job_id, a.attempt, 0);
    }
    net.wait_secs(net.settings.challenge_window_secs + 5);
    net.settle_outbox();

    let mut plain = Vec::new();
    let mut audited = Vec::new();
    for _ in 0..RUNS {
        plain.push(lifecycle(&net, None));
        audited.push(lifecycle(&net, Some(AUDIT_ALWAYS_PPM)));
    }
    let mean = |v: &[Lifecycle], f: fn(&Lifecycle) -> Cost| {
        v.iter().map(f).fold(Cost::default(), Cost::plus).per(RUNS)
    };

    let (probe, interval) = lease(&net);

    let rate: market_api::prices::cmc::IcpXdrConversionRateResponse = net
        .query(CMC_ID, "get_icp_xdr_conversion_rate", &())
        .unwrap();
    let permyriad = rate.data.xdr_permyriad_per_icp;
    let job = mean(&plain, Lifecycle::total);
    let storage_per_day: u128 = [net.ids.registry, net.ids.escrow, net.ids.matcher]
        .iter()
        .map(|id| {
            let s = net.devnet().canister_status(*id).unwrap();
            u128::try_from(s.idle_cycles_burned_per_day.0).unwrap()
        })
        .sum();

    println!(
        "| operation | registry + escrow + matcher (cycles) | of which the matcher | ledger |"
    );
    println!("|---|---:|---:|---:|");
    row("idle, per hour (the timers: audits, the watchdog)", idle);
    row(
        "idle, per hour, with the fees' top-ups to cycles configured",
        idle_top_ups,
    );
    row("deposit (approve, then the escrow's pull)", deposit);
    row("withdraw (the escrow's transfer)", withdraw);
    row("submit_job (rests)", rest.per(RUNS));
    row(
        &format!("match (an offer takes {RUNS} resting bids, per bid)"),
        matched.per(RUNS),
    );
    row("submit_job (matched at once)", mean(&plain, |l| l.submit));
    row(
        "heartbeat item (first, acknowledges)",
        mean(&plain, |l| l.ack),
    );
    row("heartbeat item (pays an interval)", mean(&plain, |l| l.pay));
    row("result", mean(&plain, |l| l.result));
    row(
        "settle after the challenge window",
        mean(&plain, |l| l.settle),
    );
    row(
        "audit (extra of an audited job)",
        mean(&audited, Lifecycle::total).minus(job),
    );
    row("probe of a service replica (outcall)", probe);
    row("lease interval (the heartbeat paying it)", interval);
    row("whole job, submit to settle", job);
    row(
        "whole audited job, submit to settle",
        mean(&audited, Lifecycle::total),
    );
    println!(
        "| storage of the three canisters, per day, as the bench leaves them | {} | | |",
        thousands(storage_per_day)
    );
    println!();
    println!(
        "ICP/XDR rate of the devnet's cycles minting canister: {}.{:04} XDR per ICP",
        permyriad / 10_000,
        permyriad % 10_000
    );
    println!(
        "market fee covering a whole job's cycles: {} e8s (an audited job's: {} e8s)",
        e8s_for(job.market, permyriad),
        e8s_for(mean(&audited, Lifecycle::total).market, permyriad)
    );
}
