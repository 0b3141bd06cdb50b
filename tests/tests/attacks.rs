//! Attacks a hostile buyer, provider or stranger can try on the deployed
//! market, each made from the attacker's own principal against the real
//! `.wasm` files on the devnet, and what stops it.

use candid::Principal;
use market_api::matcher::{
    HeartbeatAck, HeartbeatItem, JobResult, MatcherError, OfferSpec, RunOutcome, SubmitResultArgs,
};
use market_api::registry::{ProviderProfile, RegistryError};
use market_api::{JobId, OfferId};
use market_fixture::{
    FUEL_PER_SEC, ICP, MarketFixture, Settings, exited, heartbeat_item, node, principal, provider,
};

fn buyer() -> Principal {
    principal(1)
}

fn offer(net: &MarketFixture, price: u128) -> OfferSpec {
    OfferSpec {
        currency: None,
        slots: 4,
        memory_per_slot_mib: 256,
        max_fuel_per_interval: 1_000_000,
        price_per_gfuel: price,
        fuel_per_sec: FUEL_PER_SEC,
        price_per_interval: price,
        ledger: net.ids.ledger,
        min_interval_secs: 1,
        max_interval_secs: 3_600,
        tags: vec![],
        audits: None,
    }
}

/// A market with a funded buyer and provider 1 (node 1) offering slots.
fn market() -> (MarketFixture, OfferId) {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(1), node(1), 50 * ICP)
        .unwrap();
    let offer_id = net.post_offer(provider(1), &offer(&net, 100_000)).unwrap();
    (net, offer_id)
}

/// A job of the buyer's that provider 1's node has acknowledged.
fn acknowledged_job(net: &MarketFixture) -> JobId {
    let job = submit(net, buyer());
    assert!(matches!(
        heartbeat(net, node(1), job, 1),
        HeartbeatAck::Accepted { .. }
    ));
    job
}

fn submit(net: &MarketFixture, who: Principal) -> JobId {
    let spec = net.url_job(60, 10, 100_000);
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, who, "submit_job", &spec)
        .unwrap();
    let id = r.expect("submit_job");
    net.settle_outbox();
    id
}

fn heartbeat(net: &MarketFixture, from: Principal, job_id: JobId, attempt: u32) -> HeartbeatAck {
    let items = vec![heartbeat_item(job_id, attempt, 0)];
    let r: Result<Vec<HeartbeatAck>, MatcherError> = net
        .update(net.ids.matcher, from, "heartbeat", &items)
        .unwrap();
    let mut acks = r.expect("a heartbeat batch is answered item by item");
    assert_eq!(acks.len(), 1);
    acks.remove(0)
}

/// `from` reports a forged result for attempt 1 of `job`.
fn report_forged(net: &MarketFixture, from: Principal, job: JobId) -> Result<(), MatcherError> {
    let args = SubmitResultArgs {
        job_id: job,
        attempt: 1,
        result: result(),
    };
    net.update(net.ids.matcher, from, "submit_result", &args)
        .unwrap()
}

fn result() -> JobResult {
    JobResult {
        outcome: RunOutcome::Exited { code: 0 },
        output: b"forged".to_vec(),
        output_sha256: [0; 32],
        fuel_used: 1,
        engine: "wasmtime".into(),
    }
}

/// A provider whose node key leaked rotates it: it names a new node in the
/// registry and posts its offer again. From then on the old key speaks for
/// nobody: its heartbeats, results and hand-backs for the provider's
/// running job are refused, and the new node's are taken.
#[test]
fn a_rotated_out_node_key_can_no_longer_act_for_its_provider() {
    let (net, offer_id) = market();
    let job = acknowledged_job(&net);

    let new_node = principal(0x29);
    let profile = ProviderProfile {
        display_name: "provider 1".into(),
        region: "local".into(),
        node: new_node,
        total_slots: 4,
        memory_per_slot_mib: 512,
        tags: vec![],
        endpoint: None,
    };
    let r: Result<(), RegistryError> = net
        .update(net.ids.registry, provider(1), "update_profile", &profile)
        .unwrap();
    r.unwrap();
    let r: Result<OfferId, MatcherError> = net
        .update_args(
            net.ids.matcher,
            provider(1),
            "update_offer",
            (offer_id, offer(&net, 100_000)),
        )
        .map(|(r,)| r)
        .unwrap();
    assert_eq!(r, Ok(offer_id));

    // The thief, holding the old key, heartbeats when the next one is due.
    net.advance(std::time::Duration::from_secs(60));
    let stolen = node(1);
    match heartbeat(&net, stolen, job, 1) {
        HeartbeatAck::Refused { reason } => assert!(
            reason.contains("not assigned to this provider"),
            "refused for another reason: {reason}"
        ),
        ack => panic!("the old node key still heartbeats for the provider: {ack:?}"),
    }
    let r: Result<(), MatcherError> = report_forged(&net, stolen, job);
    assert!(
        matches!(r, Err(MatcherError::Unauthorized { .. })),
        "the old node key reported a result: {r:?}"
    );
    let r: Result<(), MatcherError> = net
        .update_args(net.ids.matcher, stolen, "hand_back", (job, 1u32))
        .map(|(r,)| r)
        .unwrap();
    assert!(
        matches!(r, Err(MatcherError::Unauthorized { .. })),
        "the old node key handed the job back: {r:?}"
    );

    // The provider's new node carries on with the job.
    assert!(matches!(
        heartbeat(&net, new_node, job, 1),
        HeartbeatAck::Accepted { .. }
    ));
    net.audit().unwrap();
}

/// A throwaway principal (self-authenticating in shape, never funded).
fn stranger(i: u16) -> Principal {
    let mut bytes = [0x5A; 29];
    bytes[..2].copy_from_slice(&i.to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Decodes the reply of a call submitted with `submit_call`.
fn reply<R: candid::CandidType + for<'a> candid::Deserialize<'a>>(
    dn: &mut devnet::Devnet,
    id: devnet::MessageId,
) -> R {
    let bytes = dn.await_call(id).expect("the call is answered");
    candid::decode_one(&bytes).expect("the reply decodes")
}

/// Starts `method` of `canister` as `caller`, with the one argument `arg`;
/// the devnet runs it as it runs everything else.
fn start<A: candid::CandidType>(
    dn: &mut devnet::Devnet,
    canister: Principal,
    caller: Principal,
    method: &str,
    arg: &A,
) -> devnet::MessageId {
    dn.submit_call(canister, caller, method, candid::encode_one(arg).unwrap())
        .unwrap()
}

/// Strangers each start a `post_offer` (which waits on the registry) at
/// once; a buyer who submits a job meanwhile is served, not told `Busy`.
#[test]
fn strangers_flooding_offers_do_not_lock_buyers_out() {
    let (net, _) = market();
    let spec = net.url_job(60, 10, 100_000);
    let mut dn = net.devnet();
    let flood = 150;
    let offer = candid::encode_one(offer(&net, 1)).unwrap();
    for i in 0..flood {
        dn.submit_call(net.ids.matcher, stranger(i), "post_offer", offer.clone())
            .expect("accepted for execution");
    }
    // Each stranger's call runs up to its registry call and waits there.
    for _ in 0..flood {
        assert!(dn.step());
    }
    let submitted = start(&mut dn, net.ids.matcher, buyer(), "submit_job", &spec);
    dn.tick();
    let r: Result<JobId, MatcherError> = reply(&mut dn, submitted);
    assert!(r.is_ok(), "the buyer was locked out by strangers: {r:?}");
}

/// A stranger calls `notify_deposit` for someone else's balance just before
/// its owner withdraws: the withdrawal goes through.
#[test]
fn notifying_for_someone_else_does_not_block_their_withdrawal() {
    use market_api::escrow::{NotifyDepositArgs, WithdrawArgs};
    let (net, _) = market();
    let mut dn = net.devnet();
    let notify = NotifyDepositArgs {
        beneficiary: buyer(),
        ledger: net.ids.ledger,
    };
    let notified = start(
        &mut dn,
        net.ids.escrow,
        stranger(1),
        "notify_deposit",
        &notify,
    );
    let withdraw = WithdrawArgs {
        ledger: net.ids.ledger,
        amount: ICP,
        to: market_fixture::account(buyer()),
    };
    let withdrawn = start(&mut dn, net.ids.escrow, buyer(), "withdraw", &withdraw);
    dn.tick();
    let _: Result<u128, market_api::escrow::EscrowError> = reply(&mut dn, notified);
    let r: Result<u128, market_api::escrow::EscrowError> = reply(&mut dn, withdrawn);
    assert!(
        r.is_ok(),
        "the stranger blocked the owner's withdrawal: {r:?}"
    );
    drop(dn);
    net.audit().unwrap();
}

/// A provider that misses its deadline keeps a `stake` call of its own in
/// flight whenever the matcher's slash arrives: the slash lands anyway.
#[test]
fn a_provider_cannot_dodge_its_slash_by_keeping_its_stake_busy() {
    let (net, _) = market();
    acknowledged_job(&net);
    assert_eq!(slashed_total(&net, provider(1)), 0);
    // The provider goes silent, and from now on always has one `stake`
    // call queued ahead of whatever the matcher sends.
    for _ in 0..20 {
        let mut dn = net.devnet();
        start(
            &mut dn,
            net.ids.registry,
            provider(1),
            "stake",
            &candid::Nat::from(1u8),
        );
        dn.advance_time(std::time::Duration::from_secs(30));
        dn.tick();
    }
    assert_slashed(
        &net,
        "the silent provider was never slashed while it kept its stake busy",
    );
}

fn slashed_total(net: &MarketFixture, who: Principal) -> u128 {
    let p: Option<market_api::registry::Provider> =
        net.query(net.ids.registry, "get_provider", &who).unwrap();
    p.expect("registered").slashed_total
}

/// `who` submits `spec` and cancels the job at once; returns its id.
fn submit_and_cancel(
    net: &MarketFixture,
    who: Principal,
    spec: &market_api::matcher::JobSpec,
) -> JobId {
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, who, "submit_job", spec)
        .unwrap();
    let job = r.expect("submit_job");
    let r: Result<(), MatcherError> = net
        .update(net.ids.matcher, who, "cancel_job", &job)
        .unwrap();
    r.expect("cancel_job");
    job
}

/// Provider 1 has lost stake (else `escaped`), and the money is all
/// accounted for.
fn assert_slashed(net: &MarketFixture, escaped: &str) {
    assert!(slashed_total(net, provider(1)) > 0, "{escaped}");
    net.audit().unwrap();
}

/// A provider can offer work so cheap that `slash_multiple` times the
/// value of a job (its budget at its price) is at or below the ledger fee
/// (5 x 10 billion fuel at 100 e8s per billion = 5,000 e8s here, with a
/// 10,000 e8s fee). Missing a deadline still costs it stake: a slash is
/// never smaller than the market's minimum, which is well above the fee.
#[test]
fn a_cheap_provider_that_misses_its_deadline_is_still_slashed() {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(1), node(1), 50 * ICP)
        .unwrap();
    net.post_offer(provider(1), &offer(&net, 100)).unwrap();
    let spec = net.url_job(60, 10, 100);
    let value = spec.max_cost().unwrap();
    assert!(value * u128::from(net.settings.slash_multiple) < net.settings.fee);
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, buyer(), "submit_job", &spec)
        .unwrap();
    let job = r.unwrap();
    net.settle_outbox();
    assert!(matches!(
        heartbeat(&net, node(1), job, 1),
        HeartbeatAck::Accepted { .. }
    ));
    // Silence past the deadline.
    net.wait_secs(200);
    net.settle_outbox();
    let slashed = slashed_total(&net, provider(1));
    assert!(
        slashed >= 10 * net.settings.fee,
        "a missed deadline cost the provider {slashed} e8s of stake"
    );
    net.audit().unwrap();
}

/// A provider past its deadline sends its heartbeat (or hands the job back)
/// before the matcher's deadline timer has run: the late call is refused,
/// and the provider is slashed all the same.
#[test]
fn a_late_heartbeat_or_hand_back_does_not_escape_the_slash() {
    for late in ["heartbeat", "hand_back"] {
        let (net, _) = market();
        let job = submit(&net, buyer());
        let HeartbeatAck::Accepted { next_deadline_ns } = heartbeat(&net, node(1), job, 1) else {
            panic!("the first heartbeat acknowledges");
        };
        // The matcher runs its timers until just before the deadline (and
        // its grace); a moment past it, no timer has run yet. (A clock
        // that jumps far past it with no run between would be the
        // matcher's own outage, which moves the deadline: see
        // `matcher::market::outages`.)
        net.wait_secs((next_deadline_ns - net.time_ns()) / 1_000_000_000 - 1);
        let mut dn = net.devnet();
        let now = dn.time_nanos();
        assert!(now < next_deadline_ns);
        dn.advance_time(std::time::Duration::from_nanos(
            next_deadline_ns - now + 1_000_000_000,
        ));
        let arg = match late {
            "heartbeat" => candid::encode_one(vec![heartbeat_item(job, 1, 0)]).unwrap(),
            _ => candid::encode_args((job, 1u32)).unwrap(),
        };
        let id = dn.submit_call(net.ids.matcher, node(1), late, arg).unwrap();
        // The provider's call is the first thing the matcher runs.
        assert!(dn.step());
        let bytes = dn.await_call(id).expect("answered");
        let accepted = match late {
            "heartbeat" => {
                let r: Result<Vec<HeartbeatAck>, MatcherError> =
                    candid::decode_one(&bytes).unwrap();
                matches!(r.as_deref(), Ok([HeartbeatAck::Accepted { .. }]))
            }
            _ => {
                let r: Result<(), MatcherError> = candid::decode_one(&bytes).unwrap();
                r.is_ok()
            }
        };
        drop(dn);
        assert!(!accepted, "a {late} past the deadline was accepted");
        net.settle_outbox();
        assert_slashed(
            &net,
            &format!("the provider escaped its slash with a late {late}"),
        );
    }
}

/// A provider holding a reserved slot heartbeats the slot, busy or idle,
/// but never runs the jobs the reservation's owner puts in it. A job it
/// leaves unacknowledged past its deadline costs it stake, valued at the
/// reservation's price (a job in a slot has no price of its own).
#[test]
fn a_slot_holder_that_never_runs_the_owners_jobs_is_slashed() {
    use market_api::matcher::{Assignment, JobKind, ReservationSpec, ReservedJobArgs};
    let (net, _) = market();
    let spec = ReservationSpec {
        currency: None,
        slots: 1,
        memory_mib: 64,
        fuel_per_interval: 1_000,
        interval_secs: 60,
        intervals: 30,
        max_price_per_interval: 100_000,
        ledger: net.ids.ledger,
        min_provider_stake: 0,
        max_rematches: 0,
        delegates: vec![],
        service: None,
    };
    let r: Result<u64, MatcherError> = net
        .update(net.ids.matcher, buyer(), "reserve", &spec)
        .unwrap();
    let reservation = r.unwrap();
    net.settle_outbox();
    let slot_items = |net: &MarketFixture| -> Vec<HeartbeatItem> {
        let mine: Vec<Assignment> = net.assignments(provider(1)).unwrap();
        mine.iter()
            .filter(|a| matches!(a.kind, JobKind::ReservedSlot { .. }))
            .map(|a| heartbeat_item(a.job_id, a.attempt, 0))
            .collect()
    };
    let beat = |net: &MarketFixture| {
        let items = slot_items(net);
        assert_eq!(items.len(), 1, "provider 1 holds the slot");
        let r: Result<Vec<HeartbeatAck>, MatcherError> = net
            .update(net.ids.matcher, node(1), "heartbeat", &items)
            .unwrap();
        assert!(matches!(r.as_deref(), Ok([HeartbeatAck::Accepted { .. }])));
    };
    beat(&net);
    let job = net.url_job(60, 5, 0);
    let r: Result<JobId, MatcherError> = net
        .update(
            net.ids.matcher,
            buyer(),
            "submit_reserved_job",
            &ReservedJobArgs {
                reservation,
                spec: job,
            },
        )
        .unwrap();
    r.unwrap();
    // Ten intervals of the slot heartbeated and the job ignored.
    for _ in 0..10 {
        net.wait_secs(60);
        beat(&net);
    }
    net.settle_outbox();
    assert_slashed(
        &net,
        "the slot holder ignored the owner's job and lost nothing",
    );
}

/// Ingress that can't succeed is refused before any canister executes it
/// (and so before it costs the canister anything): from the anonymous
/// principal, larger than its method takes, a controller's method from a
/// stranger, a method only the matcher may call, a query sent as an update.
#[test]
fn ingress_that_cannot_succeed_is_refused_before_it_runs() {
    let (net, _) = market();
    let ids = net.ids;
    let spec = candid::encode_one(net.url_job(60, 10, 100_000)).unwrap();
    let empty = candid::encode_args(()).unwrap();
    let cases: Vec<(Principal, Principal, &str, Vec<u8>, &str)> = vec![
        (
            ids.matcher,
            Principal::anonymous(),
            "submit_job",
            spec,
            "anonymous",
        ),
        (
            ids.escrow,
            Principal::anonymous(),
            "withdraw",
            empty.clone(),
            "anonymous",
        ),
        (
            ids.matcher,
            stranger(1),
            "heartbeat",
            vec![0; 100 * 1024],
            "takes at most",
        ),
        (
            ids.escrow,
            stranger(1),
            "lock",
            empty.clone(),
            "Matcher only",
        ),
        (
            ids.registry,
            stranger(1),
            "slash",
            empty.clone(),
            "Matcher only",
        ),
        (
            ids.registry,
            stranger(1),
            "update_config",
            empty.clone(),
            "Controllers only",
        ),
        (
            ids.matcher,
            stranger(1),
            "register_dao",
            empty.clone(),
            "Controllers only",
        ),
        (
            ids.matcher,
            stranger(1),
            "get_job",
            candid::encode_one(1u64).unwrap(),
            "not an update method",
        ),
    ];
    let mut dn = net.devnet();
    for (canister, sender, method, arg, why) in cases {
        let queued = dn.queued_messages();
        match dn.submit_call(canister, sender, method, arg) {
            Ok(_) => panic!("{method} from {sender} was accepted for execution"),
            Err(reject) => assert!(
                reject.to_string().contains(why),
                "{method} from {sender} refused for another reason: {reject}"
            ),
        }
        assert_eq!(dn.queued_messages(), queued, "nothing was queued");
    }
}

/// A provider posts an offer and then unstakes everything: its offer still
/// shows the stake it had when posted. A buyer's job is matched to it, and
/// while the registry can't be reached for the bond the provider
/// acknowledges the job and reports a result at once. Nothing is paid and
/// no result is taken before the bond holds; when the registry refuses the
/// bond, the provider's offers leave the book.
#[test]
fn a_provider_without_stake_is_not_paid_and_its_offers_leave_the_book() {
    use devnet::{Fault, FaultKind, RejectCode};
    use market_api::matcher::{Job, JobStatus, Offer};
    use market_api::registry::Unbonding;
    let (net, _) = market();
    let r: Result<Unbonding, RegistryError> = net
        .update(net.ids.registry, provider(1), "unstake", &(50 * ICP))
        .unwrap();
    r.expect("unstake");
    net.devnet().inject_fault(Fault {
        caller: Some(net.ids.matcher),
        callee: net.ids.registry,
        method: Some("bond".into()),
        kind: FaultKind::Reject {
            code: RejectCode::SysTransient,
            message: "registry unreachable".into(),
        },
        count: u32::MAX,
    });
    let spec = net.url_job(60, 10, 100_000);
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, buyer(), "submit_job", &spec)
        .unwrap();
    let job = r.expect("submit_job");

    let ack = heartbeat(&net, node(1), job, 1);
    let reported: Result<(), MatcherError> = report_forged(&net, node(1), job);
    net.devnet().clear_faults();
    net.settle_outbox();

    let earned = net.escrow_balance(provider(1)).unwrap();
    assert_eq!(
        (earned.claimable, earned.pending),
        (0, 0),
        "a provider with no stake was paid: {earned:?} (ack {ack:?}, result {reported:?})"
    );
    assert!(reported.is_err(), "a result was taken before the bond held");
    let j: Option<Job> = net.query(net.ids.matcher, "get_job", &job).unwrap();
    assert_eq!(j.expect("job").status, JobStatus::Open);
    let offers: Vec<Offer> = net
        .query(net.ids.matcher, "offers_of", &provider(1))
        .unwrap();
    assert!(
        offers.is_empty(),
        "the offer of a provider without stake is still in the book: {offers:?}"
    );
    net.audit().unwrap();
}

/// One principal pins the module store: many small modules, each named by
/// a 1-e8s job no offer can ever run (or one asking for 4 GiB of memory
/// and more), so none of them is ever idle and none is ever collected.
/// Limits are bounded; one principal stores a bounded number of modules;
/// a bid that rests unmatched for a day expires, is refunded, and lets its
/// module go.
#[test]
fn one_principal_cannot_pin_the_module_store() {
    use market_api::matcher::{
        Job, JobSpec, JobStatus, MAX_MODULES_PER_UPLOADER, ModuleInfo, ModuleSource,
    };
    let (net, _) = market();
    let attacker = principal(0x66);
    net.mint(attacker, 10 * ICP).unwrap();
    net.deposit(attacker, 5 * ICP).unwrap();
    let job_on = |sha256: [u8; 32], memory_mib: u32| JobSpec {
        module: ModuleSource::Stored { sha256 },
        limits: market_api::matcher::JobLimits {
            memory_mib,
            fuel: 1_000,
        },
        ..net.url_job(60, 1, 1)
    };
    let submit = |spec: &JobSpec| -> Result<JobId, MatcherError> {
        net.update(net.ids.matcher, attacker, "submit_job", spec)
            .unwrap()
    };

    let first = net.store_module(attacker, b"module 0").unwrap().unwrap();
    let r = submit(&job_on(first, u32::MAX));
    assert!(
        matches!(r, Err(MatcherError::InvalidArgument { .. })),
        "a job asking for u32::MAX MiB was taken: {r:?}"
    );

    // Every module pinned by a job that rests: 4 GiB is more than any
    // offer here has.
    let mut pinned = vec![];
    let mut refused = None;
    for i in 0..(MAX_MODULES_PER_UPLOADER as usize + 8) {
        match net
            .store_module(attacker, format!("module {i}").as_bytes())
            .unwrap()
        {
            Ok(sha) => {
                let job = submit(&job_on(sha, 4_096)).expect("a resting job");
                pinned.push((sha, job));
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        pinned.len() <= MAX_MODULES_PER_UPLOADER as usize,
        "one principal stored {} modules ({refused:?})",
        pinned.len()
    );
    assert!(
        matches!(refused, Some(MatcherError::LimitReached { .. })),
        "{refused:?}"
    );

    // A day and a bit later the resting jobs have expired and their
    // modules are collected.
    for _ in 0..30 {
        net.wait_secs(3_600);
    }
    net.settle_outbox();
    for (sha, job) in &pinned {
        let j: Option<Job> = net.query(net.ids.matcher, "get_job", job).unwrap();
        assert_eq!(j.expect("job").status, JobStatus::Expired);
        let m: Option<ModuleInfo> = net.query(net.ids.matcher, "module_info_of", sha).unwrap();
        assert_eq!(m, None, "a module of an expired job is still stored");
    }
    assert!(net.store_module(attacker, b"after").unwrap().is_ok());
    net.audit().unwrap();
}

/// One attacker loops submit-and-cancel with the largest job it may send
/// (1 MiB of input, 64 args of 1 KiB), each bid too low to be matched, to
/// leave megabytes in the matcher's stable memory for nothing. A finished
/// job keeps its result but not its input, and is deleted after the
/// retention period; its events stay.
#[test]
fn submit_and_cancel_loops_leave_no_lasting_storage() {
    use market_api::escrow::{EscrowEvent, JobLock};
    use market_api::matcher::{
        FINISHED_JOB_RETENTION_SECS, Job, MAX_ARG_LEN, MAX_ARGS, MAX_INPUT_BYTES, MatcherEvent,
    };
    use market_api::{EventPage, PageRequest};
    const ROUNDS: usize = 1_000;
    const MIB: usize = 1024 * 1024;
    let (net, _) = market();
    let attacker = principal(0x67);
    net.mint(attacker, 10 * ICP).unwrap();
    net.deposit(attacker, 5 * ICP).unwrap();
    let mut spec = net.url_job(60, 1, 1);
    spec.input = vec![0xAB; MAX_INPUT_BYTES];
    spec.args = (0..MAX_ARGS).map(|_| "x".repeat(MAX_ARG_LEN)).collect();
    let stable = |c: Principal| net.devnet().stable_memory_size(c).unwrap();
    let (matcher_before, escrow_before) = (stable(net.ids.matcher), stable(net.ids.escrow));
    let mut jobs = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        jobs.push(submit_and_cancel(&net, attacker, &spec));
    }
    net.settle_outbox();
    // Each round paid for what it stored, cancelled or not.
    let fee_per_round =
        market_api::escrow::storage_fee(net.settings.fee, spec.stored_bytes()).unwrap();
    let spent = 5 * ICP - net.escrow_balance(attacker).unwrap().free;
    let collected = net.escrow_balance(net.ids.matcher).unwrap().claimable;
    eprintln!("{ROUNDS} rounds cost the attacker {spent} e8s; the market collected {collected}");
    assert_eq!(spent, ROUNDS as u128 * fee_per_round, "storage was free");
    assert_eq!(collected, spent);
    let matcher_growth = stable(net.ids.matcher) - matcher_before;
    let escrow_growth = stable(net.ids.escrow) - escrow_before;
    eprintln!(
        "{ROUNDS} rounds of {} KiB each: matcher stable memory +{} KiB, escrow +{} KiB",
        (MAX_INPUT_BYTES + MAX_ARGS * MAX_ARG_LEN) / 1024,
        matcher_growth / 1024,
        escrow_growth / 1024
    );
    assert!(
        matcher_growth <= 64 * MIB,
        "the matcher kept {} MiB after {ROUNDS} cancelled jobs",
        matcher_growth / MIB
    );
    assert!(
        escrow_growth <= 16 * MIB,
        "the escrow kept {escrow_growth} bytes"
    );

    // After the retention period the jobs are gone; their events stay.
    net.advance(std::time::Duration::from_secs(FINISHED_JOB_RETENTION_SECS));
    net.wait_secs(1_200);
    for job in [jobs[0], jobs[ROUNDS - 1]] {
        let j: Option<Job> = net.query(net.ids.matcher, "get_job", &job).unwrap();
        assert_eq!(j, None, "job {job} outlived its retention");
    }
    let page: EventPage<MatcherEvent> = net
        .query(net.ids.matcher, "get_events", &PageRequest::default())
        .unwrap();
    assert!(page.total >= 2 * ROUNDS as u64, "{} events", page.total);
    // So are their locks in the escrow, and their events stay there too.
    for job in [jobs[0], jobs[ROUNDS - 1]] {
        let lock: Option<JobLock> = net
            .query(net.ids.escrow, "get_lock", &format!("job/{job}"))
            .unwrap();
        assert_eq!(lock, None, "the lock of job {job} outlived its retention");
    }
    let metrics = net.metrics(net.ids.escrow).unwrap();
    let locks = market_fixture::metrics::metric_value(&metrics, "escrow_locks").unwrap();
    assert_eq!(locks, 0.0, "the escrow still keeps {locks} settled locks");
    let page: EventPage<EscrowEvent> = net
        .query(net.ids.escrow, "get_events", &PageRequest::default())
        .unwrap();
    assert!(
        page.total >= 2 * ROUNDS as u64,
        "{} escrow events",
        page.total
    );
}

/// Instructions the last upgrade of `canister` took: its `pre_upgrade`
/// (if the old module has one) plus its `post_upgrade`.
fn upgrade_instructions(net: &MarketFixture, canister: Principal, name: &str, arg: Vec<u8>) -> u64 {
    let wasm = market_fixture::canister_wasm(name).unwrap();
    net.upgrade(canister, &wasm, arg)
}

/// Upgrades the registry, escrow and matcher to the same modules with no
/// argument; returns what each upgrade took, in that order.
fn upgrade_all(net: &MarketFixture) -> [u64; 3] {
    use market_api::escrow::EscrowInit;
    use market_api::matcher::MatcherInit;
    use market_api::registry::RegistryConfigUpdate;
    let ids = net.ids;
    [
        upgrade_instructions(
            net,
            ids.registry,
            "registry",
            candid::encode_one(None::<RegistryConfigUpdate>).unwrap(),
        ),
        upgrade_instructions(
            net,
            ids.escrow,
            "escrow",
            candid::encode_one(None::<EscrowInit>).unwrap(),
        ),
        upgrade_instructions(
            net,
            ids.matcher,
            "matcher",
            candid::encode_one(None::<MatcherInit>).unwrap(),
        ),
    ]
}

/// Strangers pile up state as cheaply as the market lets them: each
/// registers as a provider (free), and one funded attacker submits and
/// cancels job after job, leaving a job record in the matcher and a lock in
/// the escrow per round. An upgrade that reads all of it would one day
/// exceed the upgrade's instruction limit (300 B) and roll back, just when
/// a fix is urgent. So an upgrade costs the same at ten times the state.
#[test]
fn piled_up_state_does_not_make_upgrades_dearer() {
    const SMALL: u16 = 15;
    let started = std::time::Instant::now();
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    let attacker = principal(66);
    net.mint(attacker, 10 * ICP).unwrap();
    net.deposit(attacker, 5 * ICP).unwrap();
    let pile_up = |from: u16, to: u16| {
        for i in from..to {
            let mut node = stranger(i).as_slice().to_vec();
            node[2] = 0x4E;
            let node = Principal::from_slice(&node);
            net.register_provider(stranger(i), node).unwrap();
            submit_and_cancel(&net, attacker, &net.url_job(60, 1, 1));
        }
        net.settle_outbox();
    };
    pile_up(0, SMALL);
    let small = upgrade_all(&net);
    pile_up(SMALL, 10 * SMALL);
    let large = upgrade_all(&net);
    eprintln!(
        "upgrade instructions at {SMALL} and {} providers and cancelled jobs \
         (registry, escrow, matcher): {small:?} -> {large:?}; {:.1} s",
        10 * SMALL,
        started.elapsed().as_secs_f64()
    );
    for (i, name) in ["registry", "escrow", "matcher"].iter().enumerate() {
        assert!(
            large[i] <= small[i] + small[i] / 20,
            "the {name}'s upgrade grew with the state: {} instructions at {SMALL} \
             strangers' records, {} at {}",
            small[i],
            large[i],
            10 * SMALL
        );
    }
    net.audit().unwrap();
}

/// How a transfer whose answer was lost really ended on the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lost {
    /// The ledger executed it; only its reply was lost.
    Landed,
    /// It never reached the ledger.
    NeverArrived,
}

impl Lost {
    /// The faults that make the next `attempts` transfers of `caller` end
    /// with an unknown outcome: the first one this way, its resends never
    /// arriving.
    fn faults(self, caller: Principal, ledger: Principal, attempts: u32) -> Vec<devnet::Fault> {
        let never_arrived = || devnet::FaultKind::Reject {
            code: devnet::RejectCode::SysUnknown,
            message: "the request timed out".into(),
        };
        let first = match self {
            Lost::Landed => devnet::FaultKind::Timeout,
            Lost::NeverArrived => never_arrived(),
        };
        let fault = |kind, count| {
            devnet::Fault::new(ledger, kind, count)
                .caller(caller)
                .method("icrc1_transfer")
        };
        let mut faults = vec![fault(first, 1)];
        if attempts > 1 {
            faults.push(fault(never_arrived(), attempts - 1));
        }
        faults
    }

    fn inject(self, net: &MarketFixture, caller: Principal, attempts: u32) {
        let mut dn = net.devnet();
        for f in self.faults(caller, net.ids.ledger, attempts) {
            dn.inject_fault(f);
        }
    }
}

/// A day and an hour: past the ledgers' 24 h deduplication window (and
/// its drift), after which a repeated transfer is refused as `TooOld`
/// whether or not the first one went through.
const PAST_DEDUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(25 * 3_600);

/// A withdrawal from the escrow and a provider's unbonded-stake payout from
/// the registry lose their ledger answers (the transfer landed, or never
/// arrived), and nobody looks again for 25 hours, past the ledger's
/// deduplication window. Meanwhile the provider misses a deadline. Both
/// canisters then learn from the ledger's blocks what happened: a landed
/// transfer is booked once (no second payout), a lost one is undone (the
/// balance or the unbonding stake back, the key free), and the provider's
/// slash goes through.
#[test]
fn transfers_unknown_past_the_dedup_window_are_resolved_from_the_ledger() {
    use market_api::escrow::{
        EscrowError, EscrowEvent, PendingOperation, ReconcileArgs, WithdrawArgs,
    };
    use market_api::registry::{Provider, Unbonding};
    use market_api::{EventPage, LedgerCallError, PageRequest};
    for lost in [Lost::Landed, Lost::NeverArrived] {
        let net = MarketFixture::deploy(Settings {
            unbonding_period_secs: 60,
            ..Settings::default()
        })
        .expect("deploy");
        let fee = net.settings.fee;
        net.mint(buyer(), 100 * ICP).unwrap();
        net.deposit(buyer(), 50 * ICP).unwrap();
        net.onboard_provider(provider(1), node(1), 50 * ICP)
            .unwrap();
        net.post_offer(provider(1), &offer(&net, 100_000)).unwrap();
        let ids = net.ids;

        // The buyer withdraws 10 ICP; the escrow's ledger answer is lost.
        let wallet = market_fixture::account(buyer());
        let wallet_before = net.balance(wallet).unwrap();
        lost.inject(&net, ids.escrow, 1);
        let withdraw = WithdrawArgs {
            ledger: ids.ledger,
            amount: 10 * ICP,
            to: wallet,
        };
        let r: Result<u128, EscrowError> = net
            .update(ids.escrow, buyer(), "withdraw", &withdraw)
            .unwrap();
        assert_eq!(
            r,
            Err(EscrowError::Ledger(LedgerCallError::OutcomeUnknown)),
            "{lost:?}: the withdrawal's outcome is unknown"
        );

        // The provider unbonds 1 ICP and withdraws it; the registry's ledger
        // answer is lost.
        let r: Result<Unbonding, RegistryError> = net
            .update(ids.registry, provider(1), "unstake", &ICP)
            .unwrap();
        r.expect("unstake");
        net.advance(std::time::Duration::from_secs(61));
        let provider_wallet = market_fixture::account(provider(1));
        let provider_wallet_before = net.balance(provider_wallet).unwrap();
        // The registry sends a transfer up to 3 times per message.
        lost.inject(&net, ids.registry, 3);
        let r: Result<u128, RegistryError> = net
            .update_args(ids.registry, provider(1), "withdraw_unbonded", ())
            .map(|(r,)| r)
            .unwrap();
        assert_eq!(
            r,
            Err(RegistryError::Ledger(LedgerCallError::OutcomeUnknown)),
            "{lost:?}: the payout's outcome is unknown"
        );

        // The provider takes a job, heartbeats once and goes silent.
        acknowledged_job(&net);

        // Nobody looks again for 25 hours. The devnet's clock jumps there
        // with no timer run on the way, which to the matcher is an outage
        // of its own: the missed deadline is enforced a grace period after.
        net.advance(PAST_DEDUP_WINDOW);
        net.wait_secs(net.settings.grace_secs + 5);
        net.settle_outbox();
        let reconcile = ReconcileArgs {
            owner: buyer(),
            ledger: ids.ledger,
        };
        // Anyone's `reconcile` settles it, if the canister has not found out
        // by itself already (the matcher's notify of the slash's
        // compensation to the buyer takes the buyer's key).
        let mut resolved = None;
        for _ in 0..10 {
            let r: Result<bool, EscrowError> = net
                .update(ids.escrow, stranger(1), "reconcile", &reconcile)
                .unwrap();
            match r {
                Err(EscrowError::PendingOperation { .. }) => net.tick(),
                other => {
                    resolved = Some(other);
                    break;
                }
            }
        }
        let pending: Vec<PendingOperation> = net
            .query(ids.escrow, "pending_operations", &PageRequest::default())
            .unwrap();
        assert!(
            pending.is_empty() && matches!(resolved, Some(Ok(_))),
            "{lost:?}: the withdrawal is still pending 25 h later ({resolved:?}): {pending:?}"
        );
        let booked = |net: &MarketFixture| {
            let page: EventPage<EscrowEvent> = net
                .query(ids.escrow, "get_events", &PageRequest::default())
                .unwrap();
            assert!(page.next.is_none(), "one page holds the log");
            let mine = |e: &EscrowEvent| match e {
                EscrowEvent::Withdrawn { owner, amount, .. } if *owner == buyer() => {
                    Some((true, *amount))
                }
                EscrowEvent::WithdrawalRefunded { owner, amount, .. } if *owner == buyer() => {
                    Some((false, *amount))
                }
                _ => None,
            };
            page.events
                .iter()
                .filter_map(|e| mine(&e.event))
                .collect::<Vec<_>>()
        };
        let wallet_now = net.balance(wallet).unwrap();
        match lost {
            Lost::Landed => {
                assert_eq!(booked(&net), [(true, 10 * ICP)], "debited once");
                assert_eq!(wallet_now, wallet_before + 10 * ICP - fee, "paid once");
            }
            Lost::NeverArrived => {
                assert_eq!(booked(&net), [(false, 10 * ICP)], "the debit is restored");
                assert_eq!(wallet_now, wallet_before, "nothing was paid");
                // The key is free: the buyer withdraws again.
                let r: Result<u128, EscrowError> = net
                    .update(ids.escrow, buyer(), "withdraw", &withdraw)
                    .unwrap();
                assert!(r.is_ok(), "the buyer's key stays blocked: {r:?}");
                assert_eq!(net.balance(wallet).unwrap(), wallet_before + 10 * ICP - fee);
            }
        }

        // The matcher's slash for the missed deadline resolved the payout
        // first, then went through.
        net.settle_outbox();
        let p: Option<Provider> = net
            .query(ids.registry, "get_provider", &provider(1))
            .unwrap();
        let p = p.expect("registered");
        assert!(
            p.pending_operation.is_none() && p.slashed_total > 0,
            "{lost:?}: 25 h later the payout is still pending ({:?}) and the provider was slashed {} e8s",
            p.pending_operation,
            p.slashed_total
        );
        let paid = net.balance(provider_wallet).unwrap() - provider_wallet_before;
        let unbonding: u128 = p.stake.unbonding.iter().map(|u| u.amount).sum();
        let r: Result<u128, RegistryError> = net
            .update_args(ids.registry, provider(1), "withdraw_unbonded", ())
            .map(|(r,)| r)
            .unwrap();
        match lost {
            Lost::Landed => {
                assert_eq!(paid, ICP - fee, "paid once");
                assert_eq!(unbonding, 0);
                assert_eq!(r, Err(RegistryError::NothingToWithdraw), "no second payout");
            }
            Lost::NeverArrived => {
                assert_eq!(paid, 0, "nothing was paid");
                assert_eq!(unbonding, ICP, "the unbonding stake is back");
                assert!(r.is_ok(), "the payout can't be made again: {r:?}");
                let paid = net.balance(provider_wallet).unwrap() - provider_wallet_before;
                assert_eq!(paid, ICP - fee);
            }
        }
        net.audit().unwrap();
    }
}

/// What the example client canister recorded of one finished job: the
/// notice the matcher sent and the output it then read from the matcher.
#[derive(candid::CandidType, serde::Deserialize, Debug)]
struct Delivery {
    notice: market_api::matcher::JobNotice,
    output: Vec<u8>,
    output_verified: bool,
}

/// The largest job a buyer canister can submit (a 1 MiB input, 64 args
/// and 64 env pairs of 1 KiB each, the longest module URL), run with the
/// `echo` workload, which prints its input: 1 MiB of output, the most the
/// matcher keeps. With the whole job in it, the callback's argument would
/// pass the IC's 2 MiB limit on an inter-canister request. The buyer's
/// canister is told all the same, with a notice of a bounded size, and
/// reads the full output from the matcher.
#[test]
fn the_largest_job_still_reaches_its_buyers_callback() {
    use market_api::PageRequest;
    use market_api::matcher::{
        JobStatus, MAX_ARG_LEN, MAX_ARGS, MAX_INPUT_BYTES, MAX_NOTICE_BYTES, MAX_OUTPUT_BYTES,
        ModuleSource,
    };
    use sha2::Digest;

    let (net, _) = market();
    let dapp_team = principal(0x61);
    let (client, funded) = net.deploy_funded_example_client(dapp_team).unwrap();
    funded.expect("the client funds its escrow balance");

    let mut spec = net.url_job(60, 10, 100_000);
    spec.module = ModuleSource::Url {
        url: format!("https://example.org/{}", "e".repeat(2_048 - 20)),
        sha256: [7; 32],
    };
    spec.input = (0..MAX_INPUT_BYTES).map(|i| (i % 251) as u8).collect();
    spec.args = (0..MAX_ARGS)
        .map(|i| format!("{i:0>MAX_ARG_LEN$}"))
        .collect();
    spec.env = (0..MAX_ARGS)
        .map(|i| (format!("{i:V>MAX_ARG_LEN$}"), "v".repeat(MAX_ARG_LEN)))
        .collect();
    let submitted: Result<JobId, String> = net.update(client, dapp_team, "submit", &spec).unwrap();
    let job = submitted.expect("the largest job is accepted");
    net.settle_outbox();
    assert!(matches!(
        heartbeat(&net, node(1), job, 1),
        HeartbeatAck::Accepted { .. }
    ));

    // Provider 1 runs `echo`: stdout is the input, 1 MiB, for 2 billion
    // fuel of its 10 billion budget.
    let fuel_used = 2 * market_api::matcher::GFUEL;
    let output = spec.input.clone();
    assert_eq!(output.len(), MAX_OUTPUT_BYTES);
    let sha: [u8; 32] = sha2::Sha256::digest(&output).into();
    let r: Result<(), MatcherError> = net
        .update(
            net.ids.matcher,
            node(1),
            "submit_result",
            &SubmitResultArgs {
                job_id: job,
                attempt: 1,
                result: exited(&output, fuel_used),
            },
        )
        .unwrap();
    r.expect("the provider's result is taken");
    net.settle_outbox();
    // The result's pay waits in the provider's pending balance while its
    // challenge window is open; the buyer's canister hears when it closes.
    let bill = market_api::matcher::fuel_cost(fuel_used, 100_000).unwrap();
    let earned = net.escrow_balance(provider(1)).unwrap();
    assert_eq!((earned.pending, earned.claimable), (bill, 0));
    let got: Vec<Delivery> = net
        .query(client, "deliveries", &PageRequest::default())
        .unwrap();
    assert!(got.is_empty(), "told before the challenge window closed");
    net.wait_secs(net.settings.challenge_window_secs + 30);
    let earned = net.escrow_balance(provider(1)).unwrap();
    assert_eq!((earned.pending, earned.claimable), (0, bill));

    let got: Vec<Delivery> = net
        .query(client, "deliveries", &PageRequest::default())
        .unwrap();
    println!(
        "deliveries to the buyer's canister after the largest job: {}",
        got.len()
    );
    assert_eq!(got.len(), 1, "the callback of the largest job was lost");
    let d = &got[0];
    let notice_bytes = candid::encode_one(&d.notice).unwrap().len();
    println!("the notice took {notice_bytes} bytes");
    assert!(
        notice_bytes <= MAX_NOTICE_BYTES,
        "a notice of {notice_bytes} bytes, over its bound of {MAX_NOTICE_BYTES}"
    );
    assert_eq!(
        (d.notice.job_id, d.notice.status, d.notice.output_len),
        (job, JobStatus::Succeeded, MAX_OUTPUT_BYTES as u64)
    );
    assert_eq!(d.notice.output_sha256, Some(sha));
    assert_eq!(d.notice.fuel_used, Some(fuel_used));
    assert_eq!(d.notice.paid, bill, "the notice says what the job cost");
    assert_eq!(
        d.output.len(),
        MAX_OUTPUT_BYTES,
        "the client read the whole output"
    );
    assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(&d.output)), sha);
    assert!(d.output_verified, "the client checked the output's hash");
    // Nothing left pending and nothing lost. (The full audit reads each job
    // whole with `get_job`, whose reply for this job passes 2 MiB.)
    assert_eq!(net.outbox_steps().unwrap(), 0, "a step of the job is stuck");
    let client_funds = net.escrow_balance(client).unwrap();
    assert_eq!(client_funds.locked, 0, "the job's lock was settled");
    net.audit_ledger().unwrap();
}

/// The largest job a buyer may submit: 1 MiB of input, 64 args and 64 env
/// pairs of the longest length (about 1.2 MiB in all).
fn largest_job(net: &MarketFixture, fill: u8) -> market_api::matcher::JobSpec {
    use market_api::matcher::{MAX_ARG_LEN, MAX_ARGS, MAX_INPUT_BYTES};
    let text = |c: char| c.to_string().repeat(MAX_ARG_LEN);
    let mut spec = net.url_job(60, 10, 100_000);
    spec.input = vec![fill; MAX_INPUT_BYTES];
    spec.args = (0..MAX_ARGS).map(|_| text('a')).collect();
    spec.env = (0..MAX_ARGS)
        .map(|i| (format!("{i:0>width$}", width = MAX_ARG_LEN), text('v')))
        .collect();
    spec
}

/// One turn of an honest provider's node: it reads its jobs as its daemon
/// does, acknowledges or heartbeats each, and reports a result for each it
/// has run. A reply it can't read is counted, and the node carries on.
fn honest_provider_turn(
    net: &MarketFixture,
    ran: &mut std::collections::BTreeSet<JobId>,
    unreadable: &mut Vec<String>,
) {
    let held = match net.assignments(provider(1)) {
        Ok(held) => held,
        Err(e) => {
            unreadable.push(e.to_string());
            return;
        }
    };
    let items = market_fixture::heartbeat_items(&held, 0);
    if !items.is_empty() {
        let r: Result<Vec<HeartbeatAck>, MatcherError> = net
            .update(net.ids.matcher, node(1), "heartbeat", &items)
            .unwrap();
        r.expect("the batch is answered");
    }
    for a in &held {
        if ran.insert(a.job_id) {
            // Its spec and input, read in replies of their own.
            match net.job_to_run(a.job_id) {
                Ok(spec) => assert_eq!(spec.input.len() as u64, a.input_bytes),
                Err(e) => unreadable.push(e.to_string()),
            }
            continue; // runs until the next turn
        }
        let args = SubmitResultArgs {
            job_id: a.job_id,
            attempt: a.attempt,
            result: result(),
        };
        let r: Result<(), MatcherError> = net
            .update(net.ids.matcher, node(1), "submit_result", &args)
            .unwrap();
        r.expect("the result of a job held is taken");
    }
}

/// A stranger submits three of the largest jobs, priced to land on one
/// honest provider, hoping that provider's node can no longer read its
/// jobs (a listing of them all would exceed the 2 MiB reply limit), misses
/// every deadline and is slashed, the slashes paid to the stranger. The
/// provider's node keeps reading its jobs, runs every one (an honest
/// buyer's too), and is never slashed.
#[test]
fn oversized_jobs_aimed_at_one_provider_do_not_get_it_slashed() {
    let (net, _) = market();
    let attacker = principal(0x66);
    net.mint(attacker, 20 * ICP).unwrap();
    net.deposit(attacker, 10 * ICP).unwrap();
    let honest = submit(&net, buyer());
    let mut jobs = vec![honest];
    for fill in 0..3 {
        let r: Result<JobId, MatcherError> = net
            .update(
                net.ids.matcher,
                attacker,
                "submit_job",
                &largest_job(&net, fill),
            )
            .unwrap();
        jobs.push(r.expect("the largest job is a valid job"));
    }
    net.settle_outbox();
    let attacker_before = net.escrow_balance(attacker).unwrap();

    let mut ran = std::collections::BTreeSet::new();
    let mut unreadable = Vec::new();
    for _ in 0..8 {
        honest_provider_turn(&net, &mut ran, &mut unreadable);
        net.wait_secs(30);
        net.settle_outbox();
    }

    let slashed = slashed_total(&net, provider(1));
    let attacker_after = net.escrow_balance(attacker).unwrap();
    println!(
        "honest provider slashed {slashed} e8s; its view failed {} times: {:?}; \
         attacker's free escrow balance {} -> {}",
        unreadable.len(),
        unreadable.first(),
        attacker_before.free,
        attacker_after.free
    );
    assert_eq!(slashed, 0, "the honest provider was slashed");
    assert!(
        unreadable.is_empty(),
        "the provider could not read its jobs"
    );
    for id in jobs {
        let job: Option<market_api::matcher::Job> =
            net.query(net.ids.matcher, "get_job", &id).unwrap();
        let status = job.map(|j| j.status);
        assert_eq!(
            status,
            Some(market_api::matcher::JobStatus::Succeeded),
            "job {id} was not run"
        );
    }
    net.audit().unwrap();
}

/// A buyer with two of the largest jobs (1.2 MiB of spec each) lists its
/// own jobs with `list_jobs` and the default page: the page carries every
/// job whole, passes the 2 MiB reply limit, and the query traps, so the
/// buyer (and the `market` CLI) can no longer see its jobs. Found by the
/// chaos test's oversized jobs. A page must stay under the reply limit
/// whatever the jobs hold.
#[test]
fn a_buyer_with_large_jobs_can_still_list_them() {
    let (net, _) = market();
    for fill in 0..2 {
        let r: Result<JobId, MatcherError> = net
            .update(
                net.ids.matcher,
                buyer(),
                "submit_job",
                &largest_job(&net, fill),
            )
            .unwrap();
        r.expect("the largest job is a valid job");
    }
    net.settle_outbox();
    let listed = net.jobs_of(buyer());
    assert!(
        listed.is_ok(),
        "the buyer could not list its own jobs: {:?}",
        listed.err()
    );
}
