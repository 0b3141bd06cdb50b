//! The matcher's real .wasm with the registry, the escrow and the local
//! ledger on the devnet: jobs matched at once and later, heartbeats paying
//! intervals, results settling, missed deadlines slashing and reassigning,
//! retries running out, cancellation, callbacks (delivered and trapping),
//! an upgrade between heartbeats, escrow and registry faults at every
//! cross-canister step, and unauthorized callers.
//!
//! After every scenario the money-conservation audit of `market-fixture` passes:
//! the ledger created nothing, the escrow and registry hold exactly what
//! they owe, every lock paid what the matcher recorded and no more.
//!
//! Needs `scripts/build-canisters.sh` first.

mod common;

use candid::Principal;
use common::{Net, buyer, node, provider};
use devnet::{Fault, FaultKind, RejectCode};
use market_api::escrow::{EscrowError, JobLock, LockArgs};
use market_api::matcher::{
    Assignment, GFUEL, HeartbeatAck, Job, JobNotice, JobSpec, JobStatus, MatcherError,
    MatcherEvent, MatcherInit, ModuleInfo, ModuleSource, ModuleUpload, OfferSpec, OutputChunk,
    PriceUnit, RunOutcome, SubmitResultArgs,
};
use market_api::registry::{Provider, RegistryError, SlashArgs, SlashOutcome};
use market_api::{JobId, PageRequest, Tokens};
use market_fixture::{ICP, MarketFixture, Settings, account, exited, heartbeat_item, principal};
use sha2::{Digest, Sha256};

const INTERVAL: u64 = 60;
const PRICE: Tokens = 1_000_000;

fn buyer2() -> Principal {
    principal(2)
}

type R<T> = Result<T, MatcherError>;

impl Net {
    /// The marketplace with two buyers holding 100 ICP in the escrow each.
    fn new() -> Net {
        let net = Net::with_buyer(Settings::default());
        net.fund(buyer2());
        net
    }

    /// Provider 1 offering at [`PRICE`] and a job of the buyer's paying up
    /// to `max_price` matched to it; returns the buyer's free balance
    /// before the job, and the job.
    fn matched_job(&self, max_price: Tokens) -> (Tokens, JobId) {
        self.provider(1, PRICE);
        let before = self.free(buyer());
        let id = self.submit(buyer(), &self.spec(max_price, 0)).unwrap();
        (before, id)
    }

    /// [`Net::matched_job`] at [`PRICE`], acknowledged and heartbeated
    /// through its first interval by provider 1.
    fn running_job(&self) -> (Tokens, JobId) {
        let (before, id) = self.matched_job(PRICE);
        self.run_first_interval(1, id, 1);
        (before, id)
    }

    /// What the matcher says of the module with hash `sha256`.
    fn module_info(&self, sha256: [u8; 32]) -> Option<ModuleInfo> {
        let key = serde_bytes::ByteBuf::from(sha256.to_vec());
        self.query(self.ids.matcher, "module_info_of", &key)
            .unwrap()
    }

    /// Registers, stakes (100 ICP) and offers provider `n` at `price`.
    fn provider(&self, n: u8, price: Tokens) {
        self.onboard_provider(provider(n), node(n), 100 * ICP)
            .unwrap();
        self.offer(n, price, 1).unwrap();
    }

    fn offer(&self, n: u8, price: Tokens, slots: u32) -> R<u64> {
        self.call(provider(n), "post_offer", &self.offer_spec(slots, price))
    }

    /// The storage fee each of these small jobs pays with its lock: one
    /// ledger fee.
    fn storage_fee(&self) -> Tokens {
        let bytes = self.spec(PRICE, 0).stored_bytes();
        let fee = market_api::escrow::storage_fee(self.settings.fee, bytes).unwrap();
        assert_eq!(fee, self.settings.fee);
        fee
    }

    fn spec(&self, max_price: Tokens, retries: u32) -> JobSpec {
        JobSpec {
            input: b"input".to_vec(),
            args: vec!["--fast".into()],
            max_retries: retries,
            ..self.url_job(INTERVAL, 10, max_price)
        }
    }

    fn submit(&self, who: Principal, spec: &JobSpec) -> R<JobId> {
        let id = self.call(who, "submit_job", spec);
        self.settle_outbox();
        id
    }

    /// A job as its owner sees it (contents included).
    fn job(&self, id: JobId) -> Job {
        let job: Option<Job> = self.query(self.ids.matcher, "get_job", &id).unwrap();
        let owner = job.expect("job exists").owner;
        let job: Option<Job> = self
            .devnet()
            .query(self.ids.matcher, owner, "get_job", &id)
            .unwrap();
        job.expect("job exists")
    }

    fn assignments(&self, n: u8) -> Vec<Assignment> {
        self.net.assignments(provider(n)).unwrap()
    }

    /// The fuel provider `n`'s attempt at `job` reported so far (0 if it
    /// does not hold it).
    fn fuel_reported(&self, n: u8, job: JobId) -> u64 {
        self.assignments(n)
            .into_iter()
            .find(|a| a.job_id == job)
            .map_or(0, |a| a.fuel_reported)
    }

    /// A heartbeat of provider `n` for `job`: the acknowledgement reports
    /// what the attempt reported so far, each later one a billion fuel
    /// more (so it earns one price per billion fuel), within the budget.
    fn heartbeat(&self, n: u8, job: JobId, attempt: u32) -> HeartbeatAck {
        let held = self
            .assignments(n)
            .into_iter()
            .find(|a| a.job_id == job && a.attempt == attempt);
        let fuel_used = match held {
            Some(a) if a.acknowledged => (a.fuel_reported + GFUEL).min(10 * GFUEL),
            Some(a) => a.fuel_reported,
            None => GFUEL,
        };
        let items = vec![heartbeat_item(job, attempt, fuel_used)];
        let acks: R<Vec<HeartbeatAck>> = self.call(node(n), "heartbeat", &items);
        let ack = acks.unwrap().remove(0);
        self.settle_outbox();
        ack
    }

    /// Provider `n` acknowledges `job` (as assignment `attempt`) and
    /// heartbeats again when its first interval ends; both are accepted.
    fn run_first_interval(&self, n: u8, job: JobId, attempt: u32) {
        assert!(accepted(&self.heartbeat(n, job, attempt)));
        assert!(accepted(&self.heartbeat_when_due(n, job, attempt)));
    }

    /// Provider `n`, holding `job` as assignment `attempt`, runs it to a
    /// successful result, final once its challenge window closed.
    fn run_to_success(&self, n: u8, job: JobId, attempt: u32) {
        self.run_first_interval(n, job, attempt);
        self.result(n, job, attempt, b"ok").unwrap();
        assert_eq!(self.job(job).status, JobStatus::Reported);
        self.close_window();
        assert_eq!(self.job(job).status, JobStatus::Succeeded);
    }

    /// Waits out the challenge window of a result just reported.
    fn close_window(&self) {
        self.wait_secs(self.settings.challenge_window_secs + 1);
    }

    /// Providers 1 and 2, the second asking twice the price, and a job
    /// paying up to that with `retries`: the cheaper one takes it and runs
    /// its first interval.
    fn job_on_the_cheaper_of_two(&self, retries: u32) -> JobId {
        self.provider(1, PRICE);
        self.provider(2, 2 * PRICE);
        let id = self
            .submit(buyer(), &self.spec(2 * PRICE, retries))
            .unwrap();
        assert_eq!(self.job(id).provider, Some(provider(1)), "the cheaper one");
        self.run_first_interval(1, id, 1);
        id
    }

    /// Provider `n`'s result for `job`: a billion fuel more than its
    /// heartbeats reported.
    fn result(&self, n: u8, job: JobId, attempt: u32, output: &[u8]) -> R<()> {
        let args = SubmitResultArgs {
            job_id: job,
            attempt,
            result: exited(output, (self.fuel_reported(n, job) + GFUEL).min(10 * GFUEL)),
        };
        let r = self.call(node(n), "submit_result", &args);
        self.settle_outbox();
        r
    }

    /// Lets the outbox run until it is empty (each retry backs off, so the
    /// clock moves a second at a time).
    /// Waits until provider `n`'s next heartbeat for `job` is due (a few
    /// seconds before the interval ends), then sends it.
    fn heartbeat_when_due(&self, n: u8, job: JobId, attempt: u32) -> HeartbeatAck {
        let a = self
            .assignments(n)
            .into_iter()
            .find(|a| a.job_id == job)
            .expect("assigned");
        let due = a.next_deadline_ns - self.settings.grace_secs * 1_000_000_000 - 5_000_000_000;
        let now = self.time_ns();
        if due > now {
            self.wait_secs((due - now) / 1_000_000_000);
        }
        self.heartbeat(n, job, attempt)
    }

    fn free(&self, who: Principal) -> Tokens {
        self.escrow_balance(who).unwrap().free
    }

    fn claimable(&self, who: Principal) -> Tokens {
        self.escrow_balance(who).unwrap().claimable
    }

    fn pending(&self, who: Principal) -> Tokens {
        self.escrow_balance(who).unwrap().pending
    }

    fn stake_of(&self, n: u8) -> Provider {
        let p: Option<Provider> = self
            .query(self.ids.registry, "get_provider", &provider(n))
            .unwrap();
        p.unwrap()
    }

    fn lock(&self, job: JobId) -> JobLock {
        let l: Option<JobLock> = self
            .query(self.ids.escrow, "get_lock", &format!("job/{job}"))
            .unwrap();
        l.unwrap()
    }

    fn audit(&self) -> market_fixture::Audit {
        self.net.audit().unwrap_or_else(|e| panic!("{e}"))
    }
}

fn accepted(ack: &HeartbeatAck) -> bool {
    matches!(ack, HeartbeatAck::Accepted { .. })
}

#[test]
fn job_matched_at_once_heartbeats_pay_and_result_settles() {
    let net = Net::new();
    let (before, id) = net.matched_job(2 * PRICE);
    let job = net.job(id);
    assert_eq!(job.status, JobStatus::Assigned);
    assert_eq!(job.provider, Some(provider(1)));
    assert_eq!(job.price, Some(PRICE), "the offer's price");
    assert_eq!(
        net.lock(id).total,
        20 * PRICE,
        "the maximum cost is locked: 10 billion fuel at 2 PRICE"
    );
    assert_eq!(net.free(buyer()), before - 20 * PRICE - net.storage_fee());
    assert_eq!(
        net.stake_of(1).stake.bonded,
        100 * PRICE,
        "bond_multiple times the job's value (10 billion fuel at PRICE)"
    );

    let events: market_api::EventPage<MatcherEvent> = net
        .query(net.ids.matcher, "get_events", &PageRequest::default())
        .unwrap();
    assert!(
        events.events.iter().any(|e| e.event
            == MatcherEvent::JobAssigned {
                stake_value: Some(10 * PRICE),
                conversion: None,
                job_id: id,
                provider: provider(1),
                attempt: 1,
                price: PRICE,
            }),
        "{events:?}"
    );

    let trades: Vec<market_api::matcher::Trade> = net
        .query(net.ids.matcher, "recent_prices", &net.ids.ledger)
        .unwrap();
    assert_eq!(
        trades
            .iter()
            .map(|t| (t.job_id, t.price, t.unit))
            .collect::<Vec<_>>(),
        vec![(id, PRICE, PriceUnit::Gfuel)]
    );

    let a = net.assignments(1);
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].job_id, a[0].attempt, a[0].acknowledged),
        (id, 1, false)
    );
    assert_eq!(a[0].input_bytes, 5);
    assert_eq!(net.net.job_to_run(id).unwrap().input, b"input");

    assert!(accepted(&net.heartbeat(1, id, 1)), "acknowledges");
    assert_eq!(net.job(id).status, JobStatus::Running);
    assert!(
        !accepted(&net.heartbeat(1, id, 1)),
        "a second heartbeat in the same interval is too early"
    );
    for i in 1..=3u128 {
        assert!(accepted(&net.heartbeat_when_due(1, id, 1)));
        assert_eq!(
            net.pending(provider(1)),
            i * PRICE,
            "a billion fuel more each, pending"
        );
        assert_eq!(net.claimable(provider(1)), 0);
        assert_eq!(net.lock(id).pending, vec![(provider(1), i * PRICE)]);
    }
    net.wait_secs(10);
    net.result(1, id, 1, b"done").unwrap();
    let job = net.job(id);
    assert_eq!(
        job.status,
        JobStatus::Reported,
        "the challenge window is open"
    );
    assert_eq!(job.fuel_reported, 4 * GFUEL);
    assert_eq!(job.paid, 4 * PRICE, "the bill: 4 billion fuel at PRICE");
    assert_eq!(net.pending(provider(1)), 4 * PRICE);
    assert!(!net.lock(id).settled);
    assert!(
        net.assignments(1).is_empty(),
        "the provider is done with it"
    );
    net.close_window();
    let job = net.job(id);
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.provider, Some(provider(1)), "who ran it stays visible");
    assert_eq!(job.result.unwrap().output, b"done");
    let lock = net.lock(id);
    assert!(lock.settled);
    assert_eq!(lock.refunded, 16 * PRICE);
    assert_eq!(lock.storage_fee, net.storage_fee());
    assert_eq!(net.free(buyer()), before - 4 * PRICE - net.storage_fee());
    assert_eq!(
        net.claimable(provider(1)),
        4 * PRICE,
        "claimable once final"
    );
    assert_eq!(net.pending(provider(1)), 0);
    assert_eq!(net.stake_of(1).stake.bonded, 0, "bond released");
    assert!(net.assignments(1).is_empty());
    let audit = net.audit();
    assert_eq!((audit.jobs, audit.released), (1, 4 * PRICE));
}

#[test]
fn bid_rests_until_an_offer_appears_then_matches_highest_first() {
    let net = Net::new();
    let low = net.submit(buyer(), &net.spec(PRICE, 0)).unwrap();
    let high = net.submit(buyer2(), &net.spec(3 * PRICE, 0)).unwrap();
    assert_eq!(net.job(low).status, JobStatus::Open);
    assert_eq!(net.job(high).status, JobStatus::Open);
    assert_eq!(
        net.lock(high).total,
        30 * PRICE,
        "a resting bid is funded in full"
    );
    // One slot at a price both accept: the highest bid gets it.
    net.provider(1, PRICE);
    net.settle_outbox();
    assert_eq!(net.job(high).status, JobStatus::Assigned);
    assert_eq!(net.job(high).price, Some(PRICE));
    assert_eq!(net.job(low).status, JobStatus::Open);
    // A second, too expensive offer does not take the low bid.
    net.provider(2, 2 * PRICE);
    assert_eq!(net.job(low).status, JobStatus::Open);
    // Cancelling the resting bid refunds it whole.
    let before = net.free(buyer());
    let r: R<()> = net.call(buyer(), "cancel_job", &low);
    r.unwrap();
    net.settle_outbox();
    assert_eq!(net.job(low).status, JobStatus::Cancelled);
    assert_eq!(net.free(buyer()), before + 10 * PRICE);
    net.audit();
}

#[test]
fn missed_heartbeat_slashes_and_reassigns_to_a_second_provider() {
    let net = Net::new();
    let id = net.job_on_the_cheaper_of_two(1);
    let free_before = net.free(buyer());
    let stake_before = net.stake_of(1).stake.free + net.stake_of(1).stake.bonded;
    // Provider 1 goes silent: past interval plus grace it is slashed.
    net.wait_secs(INTERVAL + 40);
    let job = net.job(id);
    assert_eq!(job.provider, Some(provider(2)), "reassigned");
    assert_eq!(job.retries_used, 1);
    assert_eq!(job.price, Some(2 * PRICE));
    let p1 = net.stake_of(1);
    let slashed = 50 * PRICE;
    assert_eq!(
        p1.slashed_total, slashed,
        "slash_multiple times the job's value (10 billion fuel at PRICE)"
    );
    assert_eq!(p1.stake.free + p1.stake.bonded, stake_before - slashed);
    assert_eq!(p1.stake.bonded, 0, "the bond of the lost job is released");
    assert_eq!(
        net.free(buyer()),
        free_before + slashed - 2 * net.settings.fee,
        "the slash reaches the buyer's escrow balance, less two ledger fees (payout and sweep)"
    );
    // The old holder is refused; the new one runs it to the end.
    assert!(!accepted(&net.heartbeat(1, id, 1)));
    assert!(matches!(
        net.result(1, id, 1, b"stale"),
        Err(MatcherError::Unauthorized { .. } | MatcherError::InvalidState { .. })
    ));
    let a = net.assignments(2);
    assert_eq!((a[0].job_id, a[0].attempt), (id, 2));
    net.run_to_success(2, id, 2);
    assert_eq!(
        (net.claimable(provider(1)), net.pending(provider(1))),
        (0, 0),
        "the silent provider's pending pay was forfeited"
    );
    assert_eq!(
        net.claimable(provider(2)),
        2 * 2 * PRICE,
        "two billion fuel (a heartbeat's and the result's) at its price"
    );
    assert_eq!(net.audit().slashes, 1);
}

#[test]
fn retries_used_up_fail_the_job_and_refund_the_buyer() {
    let net = Net::new();
    let (before, id) = net.matched_job(PRICE);
    // Never acknowledged: the acknowledgement deadline passes too.
    net.wait_secs(INTERVAL + 40);
    let job = net.job(id);
    assert_eq!(job.status, JobStatus::Failed);
    let lock = net.lock(id);
    assert!(lock.settled);
    assert_eq!(lock.refunded, lock.total);
    assert_eq!(
        net.free(buyer()),
        before + 50 * PRICE - 2 * net.settings.fee - net.storage_fee(),
        "all refunded, plus the slash, less the storage fee"
    );
    // The offer's slot is free again.
    let id2 = net.submit(buyer2(), &net.spec(PRICE, 0)).unwrap();
    assert_eq!(net.job(id2).status, JobStatus::Assigned);
    net.audit();
}

#[test]
fn cancel_pays_heartbeated_intervals_and_refunds_the_rest() {
    let net = Net::new();
    let (before, id) = net.running_job();
    let other: R<()> = net.call(buyer2(), "cancel_job", &id);
    assert!(
        matches!(other, Err(MatcherError::Unauthorized { .. })),
        "{other:?}"
    );
    let r: R<()> = net.call(buyer(), "cancel_job", &id);
    r.unwrap();
    net.settle_outbox();
    assert_eq!(net.job(id).status, JobStatus::Cancelled);
    assert_eq!(net.free(buyer()), before - PRICE - net.storage_fee());
    assert_eq!(net.claimable(provider(1)), PRICE);
    assert!(
        !accepted(&net.heartbeat(1, id, 1)),
        "the provider is told to stop"
    );
    assert_eq!(net.stake_of(1).stake.bonded, 0);
    let again: R<()> = net.call(buyer(), "cancel_job", &id);
    assert!(matches!(again, Err(MatcherError::InvalidState { .. })));
    net.audit();
}

#[derive(candid::CandidType, serde::Deserialize, Debug)]
struct Delivery {
    notice: JobNotice,
    output: Vec<u8>,
    output_verified: bool,
}

#[derive(candid::CandidType)]
enum CallbackMode {
    #[allow(dead_code)]
    Record,
    Trap,
}

#[test]
fn callbacks_are_delivered_once_and_a_trapping_one_harms_nothing() {
    let net = Net::new();
    net.provider(1, PRICE);
    let owner = principal(50);
    let (client, funded) = net.deploy_funded_example_client(owner).unwrap();
    assert_eq!(market_fixture::nat(&funded.unwrap()), 5 * ICP);
    let spec = net.spec(PRICE, 0);
    let stranger: Result<u64, String> = net.update(client, buyer(), "submit", &spec).unwrap();
    assert!(stranger.is_err(), "only the client's controllers submit");
    let id: Result<u64, String> = net.update(client, owner, "submit", &spec).unwrap();
    let id = id.unwrap();
    net.settle_outbox();
    assert!(accepted(&net.heartbeat(1, id, 1)));
    net.result(1, id, 1, b"42").unwrap();
    net.close_window();
    let got: Vec<Delivery> = net
        .query(client, "deliveries", &PageRequest::default())
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let notice = &got[0].notice;
    assert_eq!(
        (notice.job_id, notice.status, got[0].output.as_slice()),
        (id, JobStatus::Succeeded, &b"42"[..])
    );
    assert_eq!(notice.outcome, Some(RunOutcome::Exited { code: 0 }));
    assert_eq!(notice.output_len, 2);
    assert!(got[0].output_verified, "{got:?}");

    // A forged delivery from someone else is refused.
    let forged = net.update::<_, ()>(client, buyer(), "job_finished", notice);
    assert!(forged.is_err());
    // And the job's output is its owner's to read, nobody else's.
    let (stolen,): (Result<OutputChunk, MatcherError>,) = net
        .devnet()
        .query_args(net.ids.matcher, buyer(), "job_output", (id, 0u64))
        .unwrap();
    assert!(matches!(stolen, Err(MatcherError::Unauthorized { .. })));

    // A client whose callback traps: the job still settles, once.
    let r: Result<(), String> = net
        .update(client, owner, "set_callback_mode", &CallbackMode::Trap)
        .unwrap();
    r.unwrap();
    let id2: Result<u64, String> = net.update(client, owner, "submit", &spec).unwrap();
    let id2 = id2.unwrap();
    net.settle_outbox();
    assert!(accepted(&net.heartbeat(1, id2, 1)));
    net.result(1, id2, 1, b"43").unwrap();
    net.wait_secs(700);
    assert_eq!(net.job(id2).status, JobStatus::Succeeded);
    let got: Vec<Delivery> = net
        .query(client, "deliveries", &PageRequest::default())
        .unwrap();
    assert_eq!(got.len(), 1, "the trapped delivery is not retried");
    let calls = net
        .devnet()
        .canister_logs(client)
        .iter()
        .filter(|l| l.contains("set to fail"))
        .count();
    assert!(calls <= 1, "delivered at most once");
    net.audit();
}

#[test]
fn deadline_is_enforced_across_a_matcher_upgrade() {
    let net = Net::new();
    let (_, id) = net.running_job();
    let config: MatcherInit = net.query(net.ids.matcher, "get_config", &()).unwrap();
    net.upgrade_matcher(Some(config));
    assert_eq!(net.job(id).status, JobStatus::Running, "state kept");
    // The provider heartbeats once more after the upgrade, then stops.
    assert!(accepted(&net.heartbeat_when_due(1, id, 1)));
    net.wait_secs(INTERVAL + 40);
    assert_eq!(
        net.job(id).status,
        JobStatus::Failed,
        "the timer was re-armed"
    );
    assert_eq!(net.stake_of(1).slashed_total, 50 * PRICE);
    assert_eq!(
        (net.claimable(provider(1)), net.pending(provider(1))),
        (0, 0),
        "no result, no pay: its pending pay was forfeited"
    );
    net.audit();
}

/// The matcher stopped for an upgrade that takes three minutes, longer
/// than the job's interval and grace: the provider's heartbeats are
/// refused while it is stopped. Started again, it counts the job's
/// deadline from the end of its outage: the node's heartbeats are taken
/// as it catches up, the job runs to its end, and nobody is slashed.
#[test]
fn a_matcher_stopped_past_a_deadline_slashes_nobody_for_its_own_outage() {
    let net = Net::new();
    let (_, id) = net.running_job();
    let m = net.ids.matcher;
    let config: MatcherInit = net.query(m, "get_config", &()).unwrap();
    net.devnet()
        .stop_canister(market_fixture::admin(), m)
        .unwrap();
    let stopped_ns = net.time_ns();
    let items = candid::encode_one(vec![heartbeat_item(id, 1, GFUEL)]).unwrap();
    for _ in 0..18 {
        net.advance(std::time::Duration::from_secs(10));
        let refused = net
            .devnet()
            .update_call(m, node(1), "heartbeat", items.clone());
        assert!(refused.is_err(), "a stopped matcher takes no heartbeat");
    }
    assert!(net.time_ns() - stopped_ns > (INTERVAL + net.settings.grace_secs) * 1_000_000_000);
    net.upgrade_matcher(Some(config));
    net.devnet()
        .start_canister(market_fixture::admin(), m)
        .unwrap();

    let grace_ns = net.settings.grace_secs * 1_000_000_000;
    let mut beats = 0;
    loop {
        let ack = net.heartbeat(1, id, 1);
        let HeartbeatAck::Accepted { next_deadline_ns } = ack else {
            panic!("{ack:?}");
        };
        beats += 1;
        if next_deadline_ns > net.time_ns() + grace_ns {
            break;
        }
        assert!(beats < 10, "catching up ends");
    }
    net.result(1, id, 1, b"ok").unwrap();
    net.close_window();
    assert_eq!(net.job(id).status, JobStatus::Succeeded);
    assert_eq!(net.stake_of(1).slashed_total, 0);
    let page = net.metrics(m).unwrap();
    assert_eq!(
        market_fixture::metrics::metric_value(&page, "matcher_outages_total"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(net.audit().slashes, 0);
}

/// Runs a full job (match, two paid intervals, result) with `fault`
/// injected on the first matching call, then checks that everything
/// converges: the job settles, pay and refunds are exact, the books balance.
fn job_with_fault(fault: Fault) {
    let net = Net::new();
    net.provider(1, PRICE);
    net.devnet().inject_fault(fault.clone());
    let before = net.free(buyer());
    let id = match net.submit(buyer(), &net.spec(PRICE, 0)) {
        Ok(id) => id,
        Err(e) => {
            // The lock was refused outright: nothing may have changed.
            assert!(matches!(e, MatcherError::Downstream { .. }), "{e:?}");
            net.settle_outbox();
            assert_eq!(net.free(buyer()), before, "{fault:?}");
            net.audit();
            return;
        }
    };
    net.wait_secs(30);
    assert!(accepted(&net.heartbeat(1, id, 1)), "{fault:?}");
    assert!(accepted(&net.heartbeat_when_due(1, id, 1)), "{fault:?}");
    net.wait_secs(10);
    net.result(1, id, 1, b"ok").unwrap();
    net.wait_secs(700);
    assert_eq!(net.job(id).status, JobStatus::Succeeded, "{fault:?}");
    assert_eq!(net.claimable(provider(1)), 2 * PRICE, "{fault:?}");
    assert_eq!(
        net.free(buyer()),
        before - 2 * PRICE - net.storage_fee(),
        "{fault:?}"
    );
    assert_eq!(net.stake_of(1).stake.bonded, 0, "{fault:?}");
    net.audit();
}

#[test]
fn escrow_and_registry_faults_at_every_step_converge() {
    let kinds = [
        FaultKind::Reject {
            code: RejectCode::SysTransient,
            message: "injected".into(),
        },
        FaultKind::Trap,
        FaultKind::Timeout,
    ];
    let probe = Net::new();
    let (escrow, registry, matcher) = (probe.ids.escrow, probe.ids.registry, probe.ids.matcher);
    drop(probe);
    let steps = [
        (escrow, "lock"),
        (escrow, "release"),
        (escrow, "forfeit"),
        (escrow, "settle"),
        (registry, "bond"),
        (registry, "unbond"),
    ];
    for (callee, method) in steps {
        for kind in &kinds {
            job_with_fault(
                Fault::new(callee, kind.clone(), 1)
                    .method(method)
                    .caller(matcher),
            );
        }
    }
}

#[test]
fn slash_and_notify_faults_converge_without_double_slashing() {
    for (method, kind) in [
        ("slash", FaultKind::Timeout),
        ("slash", FaultKind::Trap),
        ("notify_deposit", FaultKind::Timeout),
        (
            "notify_deposit",
            FaultKind::Reject {
                code: RejectCode::SysTransient,
                message: "injected".into(),
            },
        ),
    ] {
        let net = Net::new();
        net.provider(1, PRICE);
        let callee = if method == "slash" {
            net.ids.registry
        } else {
            net.ids.escrow
        };
        net.devnet().inject_fault(
            Fault::new(callee, kind.clone(), 1)
                .method(method)
                .caller(net.ids.matcher),
        );
        let before = net.free(buyer());
        let id = net.submit(buyer(), &net.spec(PRICE, 0)).unwrap();
        net.wait_secs(INTERVAL + 40);
        net.wait_secs(700);
        assert_eq!(net.job(id).status, JobStatus::Failed, "{method} {kind:?}");
        assert_eq!(
            net.stake_of(1).slashed_total,
            50 * PRICE,
            "{method} {kind:?}"
        );
        assert_eq!(
            net.free(buyer()),
            before + 50 * PRICE - 2 * net.settings.fee - net.storage_fee(),
            "{method} {kind:?}"
        );
        assert_eq!(net.audit().slashes, 1);
    }
}

#[test]
fn modules_upload_in_chunks_and_only_funded_principals_may_upload() {
    let net = Net::new();
    let module = vec![0xAB; 2 * market_api::matcher::MAX_CHUNK_BYTES + 10];
    let sha: [u8; 32] = Sha256::digest(&module).into();
    let upload = ModuleUpload {
        sha256: sha,
        size: module.len() as u64,
    };
    let broke: R<ModuleInfo> = net.call(principal(77), "begin_module_upload", &upload);
    assert!(
        matches!(broke, Err(MatcherError::Unauthorized { .. })),
        "{broke:?}"
    );
    let info: R<ModuleInfo> = net.call(buyer(), "begin_module_upload", &upload);
    assert_eq!(info.unwrap().chunks, 3);
    for (i, chunk) in module
        .chunks(market_api::matcher::MAX_CHUNK_BYTES)
        .enumerate()
    {
        let r: Result<(), MatcherError> = net
            .update_args(
                net.ids.matcher,
                buyer(),
                "put_module_chunk",
                (sha, i as u32, serde_bytes::ByteBuf::from(chunk.to_vec())),
            )
            .map(|(r,): (R<()>,)| r)
            .unwrap();
        r.unwrap();
    }
    let committed: R<ModuleInfo> = net.call(
        buyer(),
        "commit_module",
        &serde_bytes::ByteBuf::from(sha.to_vec()),
    );
    assert!(committed.unwrap().committed);
    let chunk_as = |who: Principal| {
        let (chunk,): (R<serde_bytes::ByteBuf>,) = net
            .devnet()
            .query_args(
                net.ids.matcher,
                who,
                "module_chunk",
                (serde_bytes::ByteBuf::from(sha.to_vec()), 2u32),
            )
            .unwrap();
        chunk
    };
    assert_eq!(
        chunk_as(buyer()).unwrap().as_slice(),
        &module[2 * market_api::matcher::MAX_CHUNK_BYTES..],
        "the uploader reads it"
    );
    assert!(
        matches!(chunk_as(buyer2()), Err(MatcherError::Unauthorized { .. })),
        "no one else, until a job of theirs runs it"
    );
    let mut spec = net.spec(PRICE, 0);
    spec.module = ModuleSource::Stored { sha256: sha };
    net.submit(buyer(), &spec).unwrap();
    spec.module = ModuleSource::Stored { sha256: [9; 32] };
    assert!(matches!(
        net.submit(buyer(), &spec),
        Err(MatcherError::UnknownModule { .. })
    ));
}

#[test]
fn unauthorized_and_anonymous_callers_are_refused_and_change_nothing() {
    let net = Net::new();
    let (_, id) = net.matched_job(PRICE);
    let anon: R<u64> = net.refused_update(
        net.ids.matcher,
        Principal::anonymous(),
        "submit_job",
        &net.spec(PRICE, 0),
    );
    assert_eq!(anon, Err(MatcherError::AnonymousCaller));
    // A stranger heartbeating a job it does not hold.
    let items = vec![heartbeat_item(id, 1, 0)];
    let acks: R<Vec<HeartbeatAck>> = net.call(principal(66), "heartbeat", &items);
    match acks {
        Ok(acks) => assert!(!accepted(&acks[0])),
        Err(e) => assert!(matches!(e, MatcherError::Unauthorized { .. }), "{e:?}"),
    }
    assert_eq!(net.job(id).status, JobStatus::Assigned);
    // An offer from a principal that is not a registered provider.
    let r: R<u64> = net.call(principal(66), "post_offer", &net.offer_spec(1, PRICE));
    assert!(matches!(r, Err(MatcherError::Unauthorized { .. })), "{r:?}");
    // The escrow and registry take value-moving calls from the matcher only.
    let lock: Result<JobLock, EscrowError> = net.refused_update(
        net.ids.escrow,
        buyer2(),
        "lock",
        &LockArgs {
            job_key: "job/999".into(),
            buyer: buyer(),
            ledger: net.ids.ledger,
            amount: PRICE,
            stored_bytes: None,
        },
    );
    assert!(lock.is_err());
    let slash: Result<SlashOutcome, RegistryError> = net.refused_update(
        net.ids.registry,
        buyer(),
        "slash",
        &SlashArgs {
            provider: provider(1),
            amount: PRICE,
            beneficiary: account(buyer()),
            reason: "forged".into(),
            key: "forged/1".into(),
        },
    );
    assert!(slash.is_err());
    assert_eq!(net.stake_of(1).slashed_total, 0);
    net.audit();
}

/// Found by the chaos test: a timer run that traps (here the timer's
/// self-call) was lost with the deadline it was armed for, and the job
/// stayed assigned for ever. A repeating watchdog re-arms it.
#[test]
fn a_lost_timer_run_does_not_strand_deadlines() {
    let net = Net::new();
    net.provider(1, PRICE);
    let m = net.ids.matcher;
    net.devnet()
        .inject_fault(Fault::new(m, FaultKind::Trap, 3).caller(m));
    let id = net.submit(buyer(), &net.spec(PRICE, 0)).unwrap();
    net.wait_secs(INTERVAL + 40 + 180);
    assert_eq!(net.job(id).status, JobStatus::Failed);
    net.audit();
}

#[test]
fn a_handed_back_job_is_matched_again_without_a_slash() {
    let net = Net::new();
    let id = net.job_on_the_cheaper_of_two(0);
    let stranger: R<()> = net
        .update_args(net.ids.matcher, node(2), "hand_back", (id, 1u32))
        .map(|(r,): (R<()>,)| r)
        .unwrap();
    assert!(matches!(stranger, Err(MatcherError::Unauthorized { .. })));
    let r: R<()> = net
        .update_args(net.ids.matcher, node(1), "hand_back", (id, 1u32))
        .map(|(r,): (R<()>,)| r)
        .unwrap();
    r.unwrap();
    net.settle_outbox();
    let job = net.job(id);
    assert_eq!(job.provider, Some(provider(2)), "matched again at once");
    assert_eq!(job.retries_used, 0, "no retry used");
    assert_eq!(net.stake_of(1).slashed_total, 0, "not slashed");
    assert_eq!(net.stake_of(1).stake.bonded, 0, "its bond released");
    assert_eq!(
        (net.claimable(provider(1)), net.pending(provider(1))),
        (0, 0),
        "its attempt delivered nothing: its pending pay is forfeited"
    );
    // The old deadline is gone: waiting past it slashes nobody.
    net.run_to_success(2, id, 2);
    assert_eq!(net.stake_of(1).slashed_total, 0);
    assert_eq!(net.net.audit().unwrap().slashes, 0);
}

#[test]
fn uploads_that_never_commit_are_collected_and_free_their_quota() {
    let net = Net::new();
    let begin = |n: u8| -> R<ModuleInfo> {
        let module = vec![n; 100];
        net.call(
            buyer(),
            "begin_module_upload",
            &ModuleUpload {
                sha256: Sha256::digest(&module).into(),
                size: 100,
            },
        )
    };
    begin(1).unwrap();
    begin(2).unwrap();
    assert!(
        matches!(begin(3), Err(MatcherError::LimitReached { .. })),
        "two uploads in progress per principal"
    );
    let first: [u8; 32] = Sha256::digest(vec![1u8; 100]).into();
    let info = net.module_info(first);
    assert!(!info.unwrap().committed);
    // An hour later the abandoned uploads are gone and the quota is free.
    for _ in 0..13 {
        net.wait_secs(300);
    }
    let info = net.module_info(first);
    assert_eq!(info, None, "collected");
    begin(3).unwrap();
}

#[test]
fn offers_follow_the_registry_and_the_book_answers_for_them() {
    let net = Net::new();
    net.onboard_provider(provider(1), node(1), 100 * ICP)
        .unwrap();
    // A second provider may not name the first's node, nor the first
    // itself, as the principal that signs its heartbeats.
    for stolen in [node(1), provider(1)] {
        let e = net.register_provider(provider(2), stolen).unwrap_err();
        assert!(format!("{e}").contains("node"), "{e}");
    }
    // Below the registry's minimum stake no offer stands.
    net.register_provider(provider(2), node(2)).unwrap();
    net.mint(provider(2), 10 * ICP).unwrap();
    net.stake(provider(2), 5 * ICP).unwrap();
    match net.offer(2, PRICE, 1) {
        Err(MatcherError::Unauthorized { reason }) => {
            assert!(reason.contains("BelowMinimumStake"), "{reason}")
        }
        other => panic!("offer below the minimum stake: {other:?}"),
    }

    // Post, update, read back through offers_of and book_depth, withdraw.
    let id = net.offer(1, PRICE, 2).unwrap();
    let changed = net.offer_spec(2, 2 * PRICE);
    let update = |who: u8, spec: OfferSpec| -> R<u64> {
        let (r,): (R<u64>,) = net
            .update_args(net.ids.matcher, provider(who), "update_offer", (id, spec))
            .unwrap();
        r
    };
    assert_eq!(update(1, changed), Ok(id));
    let r = update(2, net.offer_spec(1, 1));
    assert!(matches!(r, Err(MatcherError::Unauthorized { .. })), "{r:?}");
    let offers: Vec<market_api::matcher::Offer> = net
        .query(net.ids.matcher, "offers_of", &provider(1))
        .unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].spec.price_per_interval, 2 * PRICE);
    let depth = |net: &Net| -> market_api::matcher::BookDepth {
        net.query(net.ids.matcher, "book_depth", &net.ids.ledger)
            .unwrap()
    };
    assert_eq!(depth(&net).asks.len(), 1);
    assert_eq!(
        (depth(&net).asks[0].price, depth(&net).asks[0].count),
        (2 * PRICE, 2)
    );

    // The provider unstakes after offering: a job asking for more stake than
    // it now holds is not bonded to it (the registry checks the current
    // stake) and rests; one asking for less runs there.
    let r: Result<market_api::registry::Unbonding, RegistryError> = net
        .update(net.ids.registry, provider(1), "unstake", &(60 * ICP))
        .unwrap();
    r.unwrap();
    let mut picky = net.spec(3 * PRICE, 1);
    picky.min_provider_stake = 80 * ICP;
    let picky = net.submit(buyer(), &picky).unwrap();
    assert_eq!(net.job(picky).status, JobStatus::Open);
    assert_eq!(net.job(picky).provider, None);
    let easy = net.submit(buyer(), &net.spec(3 * PRICE, 1)).unwrap();
    assert_eq!(net.job(easy).provider, Some(provider(1)));
    assert_eq!(depth(&net).bids.len(), 1);
    assert_eq!(depth(&net).bids[0].count, 1);

    // list_jobs pages through the buyer's jobs.
    let third = net.submit(buyer(), &net.spec(PRICE, 1)).unwrap();
    let page = |start: Option<u64>| -> Vec<Job> {
        net.query_args(
            net.ids.matcher,
            "list_jobs",
            (
                buyer(),
                PageRequest {
                    start,
                    limit: Some(2),
                },
            ),
        )
        .map(|(jobs,): (Vec<Job>,)| jobs)
        .unwrap()
    };
    let first = page(None);
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        [picky, easy]
    );
    let rest = page(Some(easy + 1));
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), [third]);

    let r: R<()> = net.call(provider(1), "withdraw_offer", &id);
    r.unwrap();
    assert!(depth(&net).asks.is_empty());
    for job in [picky, third] {
        let r: R<()> = net.call(buyer(), "cancel_job", &job);
        r.unwrap();
    }
    net.settle_outbox();
    net.audit();
}

/// A provider that heartbeats every interval on time, claiming fuel, but
/// never reports a result: it is paid nothing, slashed, and the buyer gets
/// its whole lock back.
#[test]
fn a_provider_heartbeating_without_running_is_paid_nothing_and_slashed() {
    let net = Net::new();
    let (before, id) = net.matched_job(PRICE);
    let a = net.assignments(1).remove(0);
    let due = a
        .result_deadline_ns
        .expect("a one-off job has a result deadline");
    let from = a.counting_from_ns.unwrap();
    assert_eq!(
        due - from,
        (100 * 2 + INTERVAL) * 1_000_000_000,
        "twice the 100 s its budget needs at the declared speed, plus an interval"
    );
    // More fuel than the time since the bond held allows is refused.
    let items = vec![heartbeat_item(id, 1, 10 * GFUEL)];
    let acks: R<Vec<HeartbeatAck>> = net.call(node(1), "heartbeat", &items);
    let ack = acks.unwrap().remove(0);
    assert!(
        matches!(&ack, HeartbeatAck::Refused { reason } if reason.contains("declared speed")),
        "{ack:?}"
    );
    // On time every interval, a billion fuel more each, and no result.
    net.run_first_interval(1, id, 1);
    while net.job(id).status == JobStatus::Running {
        // The last wait ends at the result's deadline, before the next
        // heartbeat's window opens: that one is refused, and time runs out.
        if !accepted(&net.heartbeat_when_due(1, id, 1)) {
            net.wait_secs(INTERVAL);
            break;
        }
        assert!(net.pending(provider(1)) > 0, "pending, not claimable");
        assert_eq!(net.claimable(provider(1)), 0);
    }
    net.settle_outbox();
    assert!(
        net.time_ns() >= due + net.settings.grace_secs * 1_000_000_000,
        "it was the result's deadline that passed"
    );
    let job = net.job(id);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.paid, 0);
    assert_eq!(
        (net.pending(provider(1)), net.claimable(provider(1))),
        (0, 0),
        "paid nothing"
    );
    let slashed = 50 * PRICE;
    assert_eq!(net.stake_of(1).slashed_total, slashed);
    assert_eq!(
        net.free(buyer()),
        before + slashed - 2 * net.settings.fee - net.storage_fee(),
        "the whole lock back, and the slash"
    );
    let events: market_api::EventPage<MatcherEvent> = net
        .query(net.ids.matcher, "get_events", &PageRequest::default())
        .unwrap();
    assert!(events.events.iter().any(|e| e.event
        == MatcherEvent::PayForfeited {
            job_id: id,
            provider: provider(1),
            attempt: 1,
        }));
    net.audit();
}

/// The matcher's events so far.
fn matcher_events(net: &Net) -> Vec<MatcherEvent> {
    let page: market_api::EventPage<MatcherEvent> = net
        .query(
            net.ids.matcher,
            "get_events",
            &PageRequest {
                start: None,
                limit: Some(1_000),
            },
        )
        .unwrap();
    page.events.into_iter().map(|e| e.event).collect()
}

/// The value of a counter on the matcher's `/metrics` page.
fn counter(net: &Net, name: &str) -> u128 {
    let text = net.metrics(net.ids.matcher).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap() as u128
}

#[test]
fn a_wrong_result_is_withheld_audited_overturned_and_its_provider_slashed() {
    let net = Net::new();
    for n in 1..=3 {
        net.provider(n, u128::from(n) * PRICE);
    }
    let spec = JobSpec {
        audit_ppm: Some(market_api::matcher::AUDIT_ALWAYS_PPM),
        ..net.spec(3 * PRICE, 0)
    };
    let id = net.submit(buyer(), &spec).unwrap();
    let budget_cost = market_api::matcher::fuel_cost_ceil(10 * GFUEL, 3 * PRICE).unwrap();
    assert_eq!(
        net.lock(id).total,
        2 * budget_cost,
        "the lock holds the run's budget and the audit's"
    );
    net.run_first_interval(1, id, 1);
    net.result(1, id, 1, b"a lie").unwrap();

    // Drawn (always, here): the result is withheld and another provider
    // re-runs the job, with its seed, as if it were any job.
    let job = net.job(id);
    assert_eq!(job.status, JobStatus::Reported);
    assert_eq!(job.result, None);
    let audit = job.audit.expect("audited");
    assert_eq!((audit.verdict, audit.runs.len()), (None, 0));
    let view: Option<market_api::matcher::JobView> =
        net.query(net.ids.matcher, "job_view", &id).unwrap();
    assert_eq!(view.unwrap().output_bytes, 0);
    // The draw picks the auditor among the eligible offers: provider 2 or 3.
    let (auditor, other) = if net.assignments(2).is_empty() {
        (3, 2)
    } else {
        (2, 3)
    };
    let [run] = &net.assignments(auditor)[..] else {
        panic!("provider {auditor} audits")
    };
    assert_eq!(run.kind, market_api::matcher::JobKind::OneOff);
    assert_eq!(run.seed, market_api::matcher::job_seed(id));
    assert_ne!(run.job_id, id);
    assert_eq!(net.job(run.job_id).spec.input, spec.input);
    net.result(auditor, run.job_id, run.attempt, b"the truth")
        .unwrap();
    // They disagree: the third provider breaks the tie.
    let [tie] = &net.assignments(other)[..] else {
        panic!("provider {other} breaks the tie")
    };
    assert_eq!(net.job(id).result, None, "still withheld");
    net.result(other, tie.job_id, tie.attempt, b"the truth")
        .unwrap();

    let job = net.job(id);
    let audit = job.audit.clone().unwrap();
    assert_eq!(
        audit.verdict,
        Some(market_api::matcher::AuditVerdict::Overturned)
    );
    assert_eq!(audit.runs, vec![run.job_id, tie.job_id]);
    assert_eq!(
        job.result.map(|r| r.output),
        Some(b"the truth".to_vec()),
        "the buyer gets the majority's result"
    );
    // The cheat's whole bond: ten times the job's value at its price.
    let bond = 10 * market_api::matcher::fuel_cost(10 * GFUEL, PRICE).unwrap();
    assert_eq!(net.stake_of(1).slashed_total, bond);
    let events = matcher_events(&net);
    assert!(events.contains(&MatcherEvent::ResultRejected {
        job_id: id,
        provider: provider(1),
        attempt: 1,
        slashed: bond,
    }));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, MatcherEvent::AuditStarted { job_id, .. } if *job_id == id))
            .count(),
        2
    );
    net.close_window();
    assert_eq!(net.job(id).status, JobStatus::Succeeded);
    assert_eq!(net.pending(provider(1)) + net.claimable(provider(1)), 0);
    for n in [2, 3] {
        assert_eq!(net.pending(provider(n)), 0);
        assert!(net.claimable(provider(n)) > 0, "auditor {n} is paid");
    }
    assert_eq!(counter(&net, "matcher_audit_runs_total"), 2);
    assert_eq!(counter(&net, "matcher_audits_overturned_total"), 1);
    let audit = net.audit();
    assert_eq!(audit.rejected, 1);
}

#[test]
fn a_disputed_honest_result_pays_the_auditor_and_changes_nothing_else() {
    let net = Net::new();
    net.provider(1, PRICE);
    net.provider(2, 2 * PRICE);
    // Audited one time in two: jobs run until the draw passes one over
    // (the devnet's randomness is seeded, so the same one each run).
    let spec = JobSpec {
        audit_ppm: Some(500_000),
        ..net.spec(2 * PRICE, 0)
    };
    let mut tries: u32 = 0;
    let id = loop {
        tries += 1;
        assert!(tries <= 10, "ten draws in a row said audit");
        let id = net.submit(buyer(), &spec).unwrap();
        net.run_first_interval(1, id, 1);
        net.result(1, id, 1, b"ok").unwrap();
        if net.job(id).audit.is_none() {
            break id;
        }
        // Drawn: provider 2 audits it, and agrees (the same output and,
        // run as long, the same fuel).
        let [run] = &net.assignments(2)[..] else {
            panic!("provider 2 audits")
        };
        net.run_first_interval(2, run.job_id, run.attempt);
        net.result(2, run.job_id, run.attempt, b"ok").unwrap();
        net.close_window();
    };
    let job = net.job(id);
    assert_eq!(job.audit, None, "not drawn");
    let claimable_before = net.claimable(provider(2));
    let reported = job.result.clone().expect("shown");
    let paid = job.paid;

    let refused: R<()> = net.call(buyer2(), "dispute_job", &id);
    assert!(matches!(refused, Err(MatcherError::Unauthorized { .. })));
    let disputed: R<()> = net.call(buyer(), "dispute_job", &id);
    disputed.unwrap();
    net.settle_outbox();
    let again: R<()> = net.call(buyer(), "dispute_job", &id);
    assert!(again.is_err(), "a result is audited once");
    assert_eq!(net.job(id).result, None, "withheld while audited");
    let [run] = &net.assignments(2)[..] else {
        panic!("provider 2 audits")
    };
    net.run_first_interval(2, run.job_id, run.attempt);
    net.result(2, run.job_id, run.attempt, b"ok").unwrap();

    let job = net.job(id);
    let audit = job.audit.clone().unwrap();
    assert!(audit.disputed);
    assert_eq!(
        audit.verdict,
        Some(market_api::matcher::AuditVerdict::Agreed)
    );
    assert_eq!(job.result, Some(reported));
    net.close_window();
    let job = net.job(id);
    assert_eq!(job.status, JobStatus::Succeeded);
    let auditor_pay = net.claimable(provider(2)) - claimable_before;
    assert!(auditor_pay > 0);
    assert_eq!(
        job.paid,
        paid + auditor_pay,
        "the original's pay, and the audit's"
    );
    assert_eq!(
        net.stake_of(1).slashed_total + net.stake_of(2).slashed_total,
        0
    );
    assert_eq!(counter(&net, "matcher_disputes_total"), 1);
    assert_eq!(
        counter(&net, "matcher_audits_agreed_total"),
        u128::from(tries),
        "the drawn audits and the dispute"
    );
    net.audit();
}

/// The matcher reads the rates from canisters answering as the cycles
/// minting and exchange rate canisters do (the exchange rate canister is
/// paid with each request), locks an XDR job in ICP at the ICP/XDR rate
/// plus the buffer, converts the offer's XDR price when matching, and
/// refuses a whitelisted token it has no rate for.
#[test]
fn xdr_prices_lock_and_convert_at_the_rates_the_sources_answer() {
    use market_api::prices::{CYCLES_PER_XDR, Currency, PriceConversion, RatesView};
    use market_fixture::pricing::ETH;
    let net = MarketFixture::deploy(Settings {
        pricing: Some(market_fixture::PricingSettings::default()),
        ..Settings::default()
    })
    .expect("deploy the marketplace");
    let ids = net.pricing_ids();
    // The first reads are made a second after install.
    net.wait_secs(2);
    net.settle_outbox();
    let first: RatesView = net.query(net.ids.matcher, "get_rates", &()).unwrap();
    assert!(first.valuation(net.ids.ledger).is_some(), "{first:?}");
    let rates = net.refresh_rates().unwrap();
    for l in &rates.ledgers {
        assert_eq!(l.last_error, None, "{l:?}");
    }
    // 4 XDR per ICP: an e8 is 40,000 cycles.
    let icp = rates.valuation(net.ids.ledger).unwrap();
    assert_eq!(icp.cycles_floor(1), Some(40_000));
    // 2,500 XDR per ETH.
    let eth = rates.valuation(ids.eth_ledger).unwrap();
    assert_eq!(eth.cycles_floor(ETH), Some(2_500 * CYCLES_PER_XDR));
    assert_eq!(rates.valuation(ids.unrated_ledger), None);

    net.mint(buyer(), 2 * ICP).unwrap();
    net.deposit(buyer(), ICP).unwrap();
    net.onboard_provider(provider(1), node(1), 100 * ICP)
        .unwrap();
    let offer = OfferSpec {
        currency: Some(Currency::Xdr),
        slots: 1,
        memory_per_slot_mib: 256,
        max_fuel_per_interval: 10 * GFUEL,
        price_per_gfuel: 800_000_000,
        fuel_per_sec: GFUEL,
        price_per_interval: 800_000_000,
        ledger: net.ids.ledger,
        min_interval_secs: 10,
        max_interval_secs: 3_600,
        tags: vec![],
        audits: None,
    };
    net.post_offer(provider(1), &offer).unwrap();
    let spec = JobSpec {
        currency: Some(Currency::Xdr),
        input: b"input".to_vec(),
        ..net.url_job(INTERVAL, 10, 1_000_000_000)
    };
    let id: R<JobId> = net
        .update(net.ids.matcher, buyer(), "submit_job", &spec)
        .unwrap();
    let id = id.unwrap();
    net.settle_outbox();
    // 10^10 fuel at 10^9 cycles per billion: 10^10 cycles, 250,000 e8s at
    // 40,000 cycles each, and 10 % more.
    let lock: JobLock = net
        .query(net.ids.escrow, "get_lock", &format!("job/{id}"))
        .map(|l: Option<JobLock>| l.unwrap())
        .unwrap();
    assert_eq!(lock.total, 275_000);
    // Matched at 8 * 10^8 cycles per billion fuel: 20,000 e8s.
    let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
    let job = job.unwrap();
    assert_eq!(job.price, Some(20_000));
    let pricing = job.pricing.unwrap();
    assert_eq!(pricing.terms.lock_rate, icp);
    assert_eq!(
        pricing.conversion,
        Some(PriceConversion {
            price_cycles: 800_000_000,
            rate: icp,
            capped: false,
        })
    );

    // A token the escrow takes but the matcher can't value.
    let unrated = JobSpec {
        currency: None,
        ledger: ids.unrated_ledger,
        ..spec
    };
    let refused: R<JobId> = net
        .update(net.ids.matcher, buyer(), "submit_job", &unrated)
        .unwrap();
    assert_eq!(
        refused,
        Err(MatcherError::NoRateSource {
            ledger: ids.unrated_ledger
        })
    );
    // Only controllers refresh the rates.
    assert!(
        net.update::<_, ()>(net.ids.matcher, buyer(), "refresh_rates", &())
            .is_err()
    );
    net.audit().unwrap();
}
