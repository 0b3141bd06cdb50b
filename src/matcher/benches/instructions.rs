//! Instructions the matcher's messages use as the book grows: one
//! `submit_job` (the message and its lock callback), one match (an offer
//! posted against the resting bids: the message and its registry callback),
//! one heartbeat item (a batch of 100 jobs, divided by 100: the message
//! alone, and with the escrow releases it causes), and a
//! 16-slot reservation matched at once, one job's result without an audit
//! and with one (the result, the draw, the audit run's match and bond, the
//! auditor's result and the verdict), with
//! 100, 10,000 and 100,000 bids resting, plus the matcher's stable memory
//! per job. Counts come from the devnet's per-message instruction counter
//! running the real `matcher.wasm`, so the host's speed does not matter.
//!
//! With `--providers N`, N providers first post offers that undercut every
//! bid but cannot run any (too little memory per slot): the worst case for
//! matching, as every submission scans the book's bounded window of offers
//! before resting.
//!
//! ```sh
//! scripts/build-canisters.sh
//! cargo bench --profile dev -p matcher --bench instructions            # 100 10000 100000
//! cargo bench --profile dev -p matcher --bench instructions -- 100 1000
//! cargo bench --profile dev -p matcher --bench instructions -- --providers 1000 100000
//! ```

use candid::Principal;
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, AuditVerdict, GFUEL, HeartbeatAck, Job, JobResult, JobSpec, MatcherError,
    OfferSpec, ReservationSpec, RunOutcome, SubmitResultArgs,
};
use market_api::{JobId, Tokens};
use market_fixture::{ICP, MarketFixture, Settings, heartbeat_items, principal};
use std::time::{Duration, Instant};

/// Open bids one buyer may hold (the matcher's per-owner limit).
const BIDS_PER_BUYER: usize = 100;

fn buyer(i: usize) -> Principal {
    let mut b = [0x11u8; 29];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Principal::from_slice(&b)
}

/// The fixture's URL job (ten billion fuel at up to `price` per billion)
/// with 64 bytes of input and one retry.
fn spec(net: &MarketFixture, price: Tokens) -> JobSpec {
    JobSpec {
        input: vec![0; 64],
        max_retries: 1,
        ..net.url_job(60, 10, price)
    }
}

/// Instructions the matcher used since the last call.
fn matcher_instructions(net: &MarketFixture) -> u64 {
    let matcher = net.ids.matcher;
    net.devnet()
        .take_executions()
        .iter()
        .filter(|e| e.canister == matcher)
        .map(|e| e.instructions)
        .sum()
}

fn submit(net: &MarketFixture, who: Principal, price: Tokens) -> (JobId, u64) {
    let _ = matcher_instructions(net);
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, who, "submit_job", &spec(net, price))
        .expect("submit_job");
    (r.expect("accepted"), matcher_instructions(net))
}

/// Results measured per kind (audited or not).
const RESULTS: usize = 10;

/// `who` reports a result for every job it holds that `these` picks;
/// returns how many, and the matcher's instructions for the messages and
/// the outbox steps they caused.
fn report(
    net: &MarketFixture,
    who: Principal,
    these: impl Fn(&market_api::matcher::Assignment) -> bool,
) -> (usize, u64) {
    let held: Vec<_> = net
        .assignments(who)
        .unwrap()
        .into_iter()
        .filter(|a| these(a))
        .collect();
    let _ = matcher_instructions(net);
    for a in &held {
        let args = SubmitResultArgs {
            job_id: a.job_id,
            attempt: a.attempt,
            result: JobResult {
                outcome: RunOutcome::Exited { code: 0 },
                output: b"ok".to_vec(),
                output_sha256: [1; 32],
                fuel_used: GFUEL,
                engine: "bench".into(),
            },
        };
        let r: Result<(), MatcherError> = net
            .update(net.ids.matcher, who, "submit_result", &args)
            .unwrap();
        r.expect("result taken");
    }
    net.settle_outbox();
    (held.len(), matcher_instructions(net))
}

/// Instructions per result of a job never audited (no draw), of one drawn
/// and passed over, and of one audited (by an agreeing auditor), in a
/// market whose book holds the resting bids:
/// `RESULTS` jobs of each kind, run by a provider whose offer no resting
/// bid can afford, audited by another. (A job of the bench's earlier
/// steps, requeued when its deadline passed, may take a slot of theirs:
/// only the jobs submitted here and their audit runs are reported.)
fn results(net: &MarketFixture, buyer: Principal) -> [u64; 3] {
    let runner = principal(0x72);
    let auditor = principal(0x74);
    for (p, node, price) in [(runner, 0x73, 1_950), (auditor, 0x75, 1_960)] {
        net.onboard_provider(p, principal(node), 500 * ICP).unwrap();
        net.post_offer(p, &net.offer_spec(2 * RESULTS as u32, price))
            .unwrap();
    }
    let mut per_result = [0u64; 3];
    // One in a thousand: drawn, and (the devnet's randomness being seeded)
    // passed over each time, which the bench checks.
    let kinds = [None, Some(1_000), Some(AUDIT_ALWAYS_PPM)];
    for (i, audit_ppm) in kinds.into_iter().enumerate() {
        let mut ids = vec![];
        for _ in 0..RESULTS {
            let spec = JobSpec {
                audit_ppm,
                ..spec(net, 2_000)
            };
            let r: Result<market_api::JobId, MatcherError> = net
                .update(net.ids.matcher, buyer, "submit_job", &spec)
                .unwrap();
            let id = r.expect("accepted");
            let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
            assert_eq!(
                job.and_then(|j| j.provider),
                Some(runner),
                "matched at once"
            );
            ids.push(id);
        }
        net.settle_outbox();
        let before: Vec<_> = net
            .assignments(auditor)
            .unwrap()
            .into_iter()
            .map(|a| a.job_id)
            .collect();
        let (n, mut cost) = report(net, runner, |a| ids.contains(&a.job_id));
        assert_eq!(n, RESULTS);
        if audit_ppm == Some(1_000) {
            for id in &ids {
                let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
                let job = job.unwrap();
                assert!(
                    job.audit.is_none() && job.result.is_some(),
                    "job {id} passed over"
                );
            }
        }
        if audit_ppm == Some(AUDIT_ALWAYS_PPM) {
            let (runs, verdicts) = report(net, auditor, |a| !before.contains(&a.job_id));
            assert_eq!(runs, RESULTS, "every result is audited");
            cost += verdicts;
            for id in &ids {
                let job: Option<Job> = net.query(net.ids.matcher, "get_job", id).unwrap();
                let verdict = job.and_then(|j| j.audit).and_then(|a| a.verdict);
                assert_eq!(verdict, Some(AuditVerdict::Agreed), "job {id}");
            }
        }
        per_result[i] = cost / RESULTS as u64;
    }
    per_result
}

fn run(bids: usize, providers: usize) {
    let started = Instant::now();
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    for i in 0..providers {
        let mut b = [0x22u8; 29];
        b[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let p = Principal::from_slice(&b);
        b[8] = 0x23;
        net.onboard_provider(p, Principal::from_slice(&b), 20 * ICP)
            .unwrap();
        let decoy = OfferSpec {
            memory_per_slot_mib: 32,
            ..net.offer_spec(4, 500)
        };
        net.post_offer(p, &decoy).unwrap();
    }
    if providers > 0 {
        eprintln!(
            "  {providers} providers offering ({:.0?})",
            started.elapsed()
        );
    }
    let buyers = bids.div_ceil(BIDS_PER_BUYER) + 1;
    for i in 0..buyers {
        net.mint(buyer(i), 1_000 * ICP).unwrap();
        net.deposit(buyer(i), 900 * ICP).unwrap();
    }
    // Resting bids at 500 price levels, all below the offers to come.
    let mut submit_cost = Vec::new();
    for i in 0..bids {
        let price = 1_000 + (i % 500) as Tokens;
        let (_, n) = submit(&net, buyer(i / BIDS_PER_BUYER), price);
        if i + 100 >= bids {
            submit_cost.push(n);
        }
        if i > 0 && i % 20_000 == 0 {
            eprintln!("  {i} bids resting ({:.0?})", started.elapsed());
        }
    }
    // A provider whose offer at the top of the book takes 100 bids at once.
    let p = principal(0x70);
    let node = principal(0x71);
    net.onboard_provider(p, node, 500 * ICP).unwrap();
    let _ = matcher_instructions(&net);
    // The lowest bid price: the offer takes the best 100 resting bids
    // however many rest.
    let offer = net.offer_spec(100, 1_000);
    net.post_offer(p, &offer).unwrap();
    let post_offer = matcher_instructions(&net);
    // Let the bonds go through, then acknowledge all 100 jobs in one batch.
    net.advance(Duration::from_secs(1));
    net.settle_outbox();
    let items = heartbeat_items(&net.assignments(p).unwrap(), 0);
    assert_eq!(items.len(), 100, "the offer takes 100 resting bids");
    let heartbeat = |net: &MarketFixture, items: &Vec<market_api::matcher::HeartbeatItem>| {
        let acks: Result<Vec<HeartbeatAck>, MatcherError> = net
            .update(net.ids.matcher, node, "heartbeat", items)
            .unwrap();
        assert!(
            acks.unwrap()
                .iter()
                .all(|a| matches!(a, HeartbeatAck::Accepted { .. }))
        );
    };
    // The first heartbeat of each job: the message alone.
    let _ = matcher_instructions(&net);
    heartbeat(&net, &items);
    let ack_cost = matcher_instructions(&net);
    net.settle_outbox();
    // The next interval's heartbeat, reporting a billion fuel more: the
    // message plus the outbox runs that release each item's pay into the
    // provider's pending balance in the escrow.
    net.advance(Duration::from_secs(55));
    let items = heartbeat_items(&net.assignments(p).unwrap(), GFUEL);
    let _ = matcher_instructions(&net);
    heartbeat(&net, &items);
    net.settle_outbox();
    let pay_cost = matcher_instructions(&net);
    // One more submit against a market with a matching offer: a match at
    // once. The offer asks more than any resting bid pays, so none takes it
    // first (a new offer serves resting bids before new ones).
    let offer_single = OfferSpec {
        slots: 1,
        price_per_gfuel: 1_900,
        price_per_interval: 1_900,
        ..offer.clone()
    };
    net.post_offer(p, &offer_single).unwrap();
    let (job, submit_match) = submit(&net, buyer(buyers - 1), 2_000);
    // Behind a window full of decoys the new bid may rest instead: say so
    // rather than report a rest as a match.
    let matched: Option<market_api::matcher::Job> =
        net.query(net.ids.matcher, "get_job", &job).unwrap();
    let submit_match = if matched.and_then(|j| j.provider).is_some() {
        submit_match.to_string()
    } else {
        format!("{submit_match} (rested: no eligible offer in the window)")
    };

    // A reservation of 16 slots, matched at once against a 16-slot offer:
    // the message and its lock callback, which creates and matches the slots.
    // (Its intervals are longer than any resting bid's, so none takes it.)
    let offer_16 = OfferSpec {
        slots: 16,
        price_per_interval: 900,
        min_interval_secs: 120,
        ..offer
    };
    net.post_offer(p, &offer_16).unwrap();
    // Steps still queued by the operations above (releases, bonds) run first.
    net.settle_outbox();
    let _ = matcher_instructions(&net);
    let lease = ReservationSpec {
        currency: None,
        slots: 16,
        memory_mib: 64,
        fuel_per_interval: 1_000_000,
        interval_secs: 120,
        intervals: 10,
        max_price_per_interval: 2_000,
        ledger: net.ids.ledger,
        min_provider_stake: 0,
        max_rematches: 1,
        delegates: vec![],
        service: None,
    };
    // (A matcher without reservations, to compare with an older build, shows "-".)
    let r: Result<Result<JobId, MatcherError>, _> =
        net.update(net.ids.matcher, buyer(buyers - 1), "reserve", &lease);
    let reserve_16 = match r {
        Ok(r) => {
            r.expect("reserved");
            matcher_instructions(&net).to_string()
        }
        Err(_) => "-".to_string(),
    };

    let [result, drawn, audited] = results(&net, buyer(buyers - 1));

    let stable = net
        .devnet()
        .stable_memory_size(net.ids.matcher)
        .unwrap_or(0);
    let avg = submit_cost.iter().sum::<u64>() / submit_cost.len().max(1) as u64;
    let n = items.len().max(1) as u64;
    println!(
        "| {bids} | {providers} | {avg} | {submit_match} | {} | {} | {} | {reserve_16} | {result} | {drawn} | {audited} | {} | {:.0?} |",
        post_offer / n,
        ack_cost / n,
        pay_cost / n,
        stable as u64 / (bids as u64 + 101),
        started.elapsed()
    );
}

fn main() {
    let mut providers = 0;
    let mut sizes: Vec<usize> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--providers" => {
                providers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--providers takes a number");
            }
            // cargo bench passes --bench to harness-less benches.
            other => sizes.extend(other.parse::<usize>().ok()),
        }
    }
    let sizes = if sizes.is_empty() {
        vec![100, 10_000, 100_000]
    } else {
        sizes
    };
    println!(
        "| resting bids | decoy providers | submit_job (rests) | submit_job (matches at once) | match per bid (offer taking 100) | heartbeat item (ack) | heartbeat item (pays) | reserve (16 slots, matched at once) | result (no draw) | result (drawn, passed over) | result (audited, agreeing auditor) | stable bytes per job | wall time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        run(n, providers);
    }
}
