//! Scenario tests of the market's rules, natively.

use crate::lifecycle::{Effect, Params};
use crate::market::{Market, Memories};
use candid::Principal;
use canister_common::audit::Books;
use ic_stable_structures::VectorMemory;
use market_api::JobId;
use market_api::matcher::{
    HeartbeatAck, JobLimits, JobResult, JobSpec, JobStatus, MatcherError, ModuleSource, OfferSpec,
    ReservationSpec, ServiceLimits, ServiceSpec, SubmitResultArgs,
};
use market_fixture::{exited, heartbeat_item};

const S: u64 = 1_000_000_000;
pub(crate) const P: Params = Params {
    grace_secs: 30,
    bond_multiple: 2,
    slash_multiple: 3,
    min_slash: 1,
    challenge_window_secs: 100,
    min_audit_ppm: 0,
    probe_interval_secs: 60,
    probe_failures: 3,
    probe_fee: 0,
    market_fee_ppm: 0,
};
const G: u64 = market_api::matcher::GFUEL;

fn mem() -> VectorMemory {
    VectorMemory::default()
}

pub(crate) fn market() -> Market<VectorMemory> {
    Market::init(Memories {
        jobs: mem(),
        jobs_by_owner: mem(),
        active_by_owner: mem(),
        assigned_by_provider: mem(),
        deadlines: mem(),
        finished: mem(),
        nodes: [mem(), mem()],
        book: [mem(), mem(), mem(), mem()],
        modules: Default::default(),
        outbox: [mem(), mem()],
        reservations: [mem(), mem(), mem()],
        probes: mem(),
        outages: mem(),
    })
}

pub(crate) fn icp() -> Principal {
    Principal::from_slice(&[0x10])
}

pub(crate) fn buyer() -> Principal {
    Principal::from_slice(&[0x20])
}

pub(crate) fn provider(n: u8) -> Principal {
    Principal::from_slice(&[0x30, n])
}

pub(crate) fn node(n: u8) -> Principal {
    Principal::from_slice(&[0x40, n])
}

pub(crate) fn spec(max_price: u128, retries: u32) -> JobSpec {
    JobSpec {
        sealed: None,
        currency: None,
        module: ModuleSource::Url {
            url: "https://example.org/job.wasm".into(),
            sha256: [1; 32],
        },
        input: b"hello".to_vec(),
        args: vec![],
        env: vec![],
        limits: JobLimits {
            memory_mib: 64,
            fuel: 10 * G,
        },
        max_price_per_gfuel: max_price,
        deadline_secs: None,
        interval_secs: 60,
        ledger: icp(),
        min_provider_stake: 0,
        min_record: None,
        max_retries: retries,
        callback: None,
        audit_ppm: None,
    }
}

pub(crate) fn offer(price: u128) -> OfferSpec {
    OfferSpec {
        currency: None,
        slots: 1,
        memory_per_slot_mib: 256,
        max_fuel_per_interval: 10_000_000,
        price_per_gfuel: price,
        // A tenth of a billion fuel a second: a job's default deadline
        // (200 s for its budget, plus an interval) outlasts the heartbeat
        // deadlines these tests play with.
        fuel_per_sec: 100_000_000,
        price_per_interval: price,
        ledger: icp(),
        min_interval_secs: 10,
        max_interval_secs: 3_600,
        tags: vec![],
        audits: None,
    }
}

/// Puts an offer of one slot at `price` by each `(n, price)`: provider
/// `n` on node `n`.
pub(crate) fn offers(m: &mut Market<VectorMemory>, p: &Params, offers: &[(u8, u128)]) {
    for &(n, price) in offers {
        m.put_offer(p, 0, provider(n), node(n), 0, None, offer(price))
            .unwrap();
    }
}

/// The buyer's job of `spec`, created and funded at 0 (matched if an
/// offer can run it); its id.
pub(crate) fn funded_job(m: &mut Market<VectorMemory>, spec: JobSpec) -> JobId {
    let id = m.create_job(&P, 0, buyer(), spec).unwrap().state.id;
    m.job_funded(&P, 0, id);
    id
}

/// The buyer's lease of `spec`, created and funded at 0; its id and its
/// slots' job ids.
pub(crate) fn funded_lease(
    m: &mut Market<VectorMemory>,
    p: &Params,
    spec: ReservationSpec,
) -> (JobId, Vec<JobId>) {
    let rid = m.create_reservation(p, 0, buyer(), spec).unwrap().state.id;
    m.job_funded(p, 0, rid);
    let slots = m.reservation_record(rid).unwrap().slots;
    (rid, slots)
}

/// A lease of `slots` for `intervals` minutes at up to 100 a slot and
/// interval, rematched at most twice, with no service and no delegates.
pub(crate) fn lease(slots: u32, intervals: u32) -> ReservationSpec {
    ReservationSpec {
        currency: None,
        slots,
        memory_mib: 128,
        fuel_per_interval: 1_000_000,
        interval_secs: 60,
        intervals,
        max_price_per_interval: 100,
        ledger: icp(),
        min_provider_stake: 0,
        max_rematches: 2,
        delegates: vec![],
        service: None,
    }
}

/// An HTTP service from a URL, with an env, one allowed host and an
/// endpoint callback.
pub(crate) fn service() -> ServiceSpec {
    ServiceSpec {
        sealed: None,
        component: ModuleSource::Url {
            url: "https://example.org/service.wasm".into(),
            sha256: [2; 32],
        },
        env: vec![("API_KEY".into(), "secret".into())],
        allowed_hosts: vec!["api.example.org".into()],
        health_path: "/healthz".into(),
        callback: Some("on_endpoint".into()),
        limits: ServiceLimits::default(),
        tcp: None,
    }
}

/// The current attempt of `job_id`.
pub(crate) fn attempt(m: &Market<VectorMemory>, job_id: JobId) -> u32 {
    m.job(job_id).unwrap().state.assignment.unwrap().attempt
}

/// The SHA-256 of `bytes`, as a module's is named.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(bytes).into()
}

/// Uploads `bytes` as one chunk and commits them as `uploader`'s module.
pub(crate) fn store_module(m: &mut Market<VectorMemory>, uploader: Principal, bytes: &[u8]) {
    let sha = sha256(bytes);
    m.modules
        .begin(0, uploader, sha, bytes.len() as u64)
        .unwrap();
    m.modules
        .put_chunk(uploader, sha, 0, bytes.to_vec())
        .unwrap();
    m.modules.commit(0, uploader, sha).unwrap();
}

/// A market where provider 1 offers at 50 and a funded job paying up to 80,
/// with `retries`, was matched to it.
fn market_with_a_matched_job(retries: u32) -> (Market<VectorMemory>, u64) {
    let mut m = market();
    offers(&mut m, &P, &[(1, 50)]);
    let id = funded_job(&mut m, spec(80, retries));
    (m, id)
}

/// Performs every ready step as if its callee took it at once.
fn steps(m: &mut Market<VectorMemory>) -> Vec<Effect> {
    let ready = m.outbox.take_ready(u64::MAX, 1_000);
    for (seq, step) in &ready {
        m.outbox.complete(*seq);
        bond_taken(m, step.job_id, &step.effect);
    }
    let mut more = ready.into_iter().map(|(_, s)| s.effect).collect::<Vec<_>>();
    if !m.outbox.is_empty() {
        more.extend(steps(m));
    }
    more
}

/// What the outbox does when the registry takes a bond: the assignment
/// holds (at the time it was made, in these tests).
fn bond_taken(m: &mut Market<VectorMemory>, job_id: u64, effect: &Effect) {
    if let Effect::Bond { key, .. } = effect {
        m.bond_held(&P, 0, job_id, key.attempt);
    }
}

/// Performs every ready step as if its callee took it at once (a bond
/// holds at `t` when taken); returns (job, effect) pairs in order.
pub(crate) fn drain_at(m: &mut Market<VectorMemory>, t: u64) -> Vec<(JobId, Effect)> {
    let mut all = vec![];
    loop {
        let ready = m.outbox.take_ready(u64::MAX, 1_000);
        if ready.is_empty() {
            return all;
        }
        for (seq, step) in ready {
            m.outbox.complete(seq);
            if let Effect::Bond { key, .. } = &step.effect {
                m.bond_held(&P, t, step.job_id, key.attempt);
            }
            all.push((step.job_id, step.effect));
        }
    }
}

#[test]
fn job_runs_misses_a_deadline_and_finishes_on_a_second_provider() {
    let mut m = market();
    m.put_offer(&P, 0, provider(1), node(1), 1_000, None, offer(50))
        .unwrap();
    let job = m.create_job(&P, 0, buyer(), spec(80, 1)).unwrap();
    let id = job.state.id;
    assert!(m.job(id).unwrap().to_job().status == JobStatus::Open);
    assert_eq!(
        m.job_funded(&P, 0, id),
        Some(provider(1)),
        "matched at once"
    );
    assert_eq!(
        steps(&mut m),
        vec![Effect::Bond {
            key: "job/1/bond/1".into(),
            provider: provider(1),
            amount: 1_000
        }],
        "twice the job's value: 10 billion fuel at 50"
    );

    // The node acknowledges, then heartbeats one interval later, reporting
    // a billion fuel, and is paid for it into its pending balance.
    let hb = |attempt, fuel_used| vec![heartbeat_item(id, attempt, fuel_used)];
    assert!(matches!(
        m.heartbeat(&P, S, node(1), &hb(1, 0)).unwrap()[0],
        HeartbeatAck::Accepted { .. }
    ));
    assert!(matches!(
        m.heartbeat(&P, 61 * S, node(1), &hb(1, G)).unwrap()[0],
        HeartbeatAck::Accepted { .. }
    ));
    assert_eq!(
        steps(&mut m),
        vec![Effect::Release {
            fee: 0,
            seq: 0,
            provider: provider(1),
            amount: 50,
            fuel: Some(G),
        }]
    );
    // Another node can't heartbeat it.
    assert!(matches!(
        m.heartbeat(&P, 62 * S, node(2), &hb(1, G)).unwrap()[0],
        HeartbeatAck::Refused { .. }
    ));

    // Provider 1 goes silent; a second provider is offering at a higher price.
    m.put_offer(&P, 70 * S, provider(2), node(2), 1_000, None, offer(70))
        .unwrap();
    assert_eq!(m.process_deadlines(&P, 150 * S, 100), 0, "not yet due");
    assert_eq!(m.process_deadlines(&P, 152 * S, 100), 1);
    assert_eq!(m.process_deadlines(&P, 200 * S, 100), 0, "handled once");
    let fx = steps(&mut m);
    assert!(fx.contains(&Effect::Slash {
        key: "job/1/slash/1".into(),
        provider: provider(1),
        amount: 1_500,
        owner: buyer()
    }));
    assert!(
        fx.contains(&Effect::Forfeit {
            provider: provider(1),
            attempt: 1
        }),
        "the silent provider loses its pending pay"
    );
    assert!(fx.contains(&Effect::Bond {
        key: "job/1/bond/2".into(),
        provider: provider(2),
        amount: 1_400
    }));
    let j = m.job(id).unwrap().to_job();
    assert_eq!(
        (j.status, j.provider),
        (JobStatus::Assigned, Some(provider(2)))
    );

    // Provider 2 finishes it.
    m.heartbeat(&P, 160 * S, node(2), &hb(2, 0)).unwrap();
    let result = exited(b"done", G);
    m.submit_result(
        &P,
        170 * S,
        node(2),
        SubmitResultArgs {
            job_id: id,
            attempt: 2,
            result,
        },
    )
    .unwrap();
    let fx = steps(&mut m);
    assert_eq!(
        fx,
        vec![Effect::Release {
            fee: 0,
            seq: 1,
            provider: provider(2),
            amount: 70,
            fuel: Some(G),
        }],
        "the bill: a billion fuel at provider 2's price"
    );
    // Its slot is free at once; the result waits out its challenge window.
    assert!(m.offers_of(provider(2))[0].slots_used == 0);
    let j = m.job(id).unwrap().to_job();
    assert_eq!(j.status, JobStatus::Reported);
    assert_eq!(j.window_closes_at_ns, Some(270 * S));
    assert_eq!(j.paid, 70, "the first attempt's pay was forfeited");
    assert_eq!(m.process_deadlines(&P, 269 * S, 100), 0);
    assert_eq!(m.process_deadlines(&P, 270 * S, 100), 1);
    let fx = steps(&mut m);
    assert_eq!(fx.last(), Some(&Effect::Settle));
    assert_eq!(m.job(id).unwrap().to_job().status, JobStatus::Succeeded);
    assert_eq!(m.next_deadline_ns(&P), None);
}

#[test]
fn resting_bid_is_matched_when_capacity_appears() {
    let mut m = market();
    let id = m.create_job(&P, 0, buyer(), spec(80, 0)).unwrap().state.id;
    assert_eq!(m.job_funded(&P, 0, id), None);
    assert_eq!(m.book.bid_count(), 1);
    m.put_offer(&P, 5, provider(1), node(1), 0, None, offer(90))
        .unwrap();
    assert_eq!(m.book.bid_count(), 1, "too expensive for the bid");
    m.put_offer(&P, 6, provider(2), node(2), 0, None, offer(60))
        .unwrap();
    assert_eq!(m.book.bid_count(), 0);
    assert_eq!(m.job(id).unwrap().to_job().provider, Some(provider(2)));
    assert!(
        m.assignments_of(provider(2)).is_empty(),
        "not the provider's until its bond holds"
    );
    steps(&mut m);
    assert_eq!(m.assignments_of(provider(2)).len(), 1);
}

#[test]
fn a_lock_whose_answer_is_lost_to_a_trap_is_asked_again_and_funds_the_job() {
    use crate::outbox::STALE_IN_FLIGHT_NS;
    let mut m = market();
    let id = m.create_job(&P, 0, buyer(), spec(80, 0)).unwrap().state.id;
    // submit_job records the lock, in flight, then calls the escrow itself.
    let seq = m.lock_in_flight(0, id).unwrap();
    assert_eq!(m.lock_in_flight(0, id), None, "one lock step per job");
    // Its callback traps after the escrow locked: nothing after the await
    // is kept. The step is not handed out while the call may still be
    // running, then it is, with the job's lock key.
    assert!(m.outbox.take_ready(STALE_IN_FLIGHT_NS - 1, 10).is_empty());
    assert_eq!(
        m.cancel(&P, 1, buyer(), id),
        Err(MatcherError::Busy),
        "a cancel waits for the lock to be known"
    );
    let ready = m.outbox.take_ready(STALE_IN_FLIGHT_NS, 10);
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].0, seq);
    assert!(matches!(
        ready[0].1.effect,
        Effect::Lock { amount: 800, .. }
    ));
    // The escrow answers the repeated lock (same key): the job is funded.
    m.outbox.complete(seq);
    m.job_funded(&P, STALE_IN_FLIGHT_NS, id);
    assert!(m.job(id).unwrap().funded);
    assert_eq!(m.book.bid_count(), 1);
    m.cancel(&P, STALE_IN_FLIGHT_NS, buyer(), id).unwrap();
    assert!(steps(&mut m).contains(&Effect::Settle));
}

#[test]
fn the_active_jobs_limit_counts_only_jobs_not_yet_finished() {
    use crate::market::MAX_ACTIVE_JOBS_PER_OWNER;
    let mut m = market();
    let mut ids = vec![];
    for t in 0..MAX_ACTIVE_JOBS_PER_OWNER {
        let id = m.create_job(&P, t, buyer(), spec(80, 0)).unwrap().state.id;
        m.job_funded(&P, t, id);
        ids.push(id);
    }
    assert_eq!(
        m.create_job(&P, 200, buyer(), spec(80, 0)),
        Err(MatcherError::LimitReached {
            what: "active jobs".into(),
            limit: MAX_ACTIVE_JOBS_PER_OWNER
        })
    );
    assert!(
        m.create_job(&P, 200, provider(1), spec(80, 0)).is_ok(),
        "per owner"
    );
    // Finished jobs free their place; an unfunded job dropped does too.
    m.cancel(&P, 201, buyer(), ids[0]).unwrap();
    let id = m
        .create_job(&P, 202, buyer(), spec(80, 0))
        .unwrap()
        .state
        .id;
    assert!(m.create_job(&P, 203, buyer(), spec(80, 0)).is_err());
    m.drop_unfunded(204, id);
    m.create_job(&P, 205, buyer(), spec(80, 0)).unwrap();
    // The index is rebuilt, the same, for a state saved without it.
    assert_eq!(m.index_active_jobs_if_missing(), 0);
    m.clear_active_index_for_tests();
    assert_eq!(
        m.index_active_jobs_if_missing() as u64,
        MAX_ACTIVE_JOBS_PER_OWNER + 1
    );
    assert!(m.create_job(&P, 206, buyer(), spec(80, 0)).is_err());
}

#[test]
fn the_sweep_matches_a_bid_resting_behind_many_that_no_offer_can_run() {
    use crate::book::MAX_SCAN;
    let mut m = market();
    // More than MAX_SCAN high bids that need more memory than anyone offers,
    // from several owners (each may hold 100 active jobs).
    for i in 0..MAX_SCAN + 10 {
        let mut s = spec(100, 0);
        s.limits.memory_mib = 4096;
        let owner = Principal::from_slice(&[0x50, (i / 100) as u8]);
        let id = m.create_job(&P, i as u64, owner, s).unwrap().state.id;
        m.job_funded(&P, i as u64, id);
    }
    let low = m
        .create_job(&P, 1_000, buyer(), spec(80, 0))
        .unwrap()
        .state
        .id;
    m.job_funded(&P, 1_000, low);
    // A new offer looks at the best MAX_SCAN bids only: the low one is not reached.
    m.put_offer(&P, 2_000, provider(1), node(1), 0, None, offer(50))
        .unwrap();
    assert_eq!(m.job(low).unwrap().to_job().provider, None);
    // The sweep looks at every resting bid, a budget per run, and matches it.
    let first = m.sweep_resting_bids(&P, 3_000, None, 200);
    assert!(first.is_some(), "more bids than one run's budget");
    assert_eq!(m.job(low).unwrap().to_job().provider, None);
    assert_eq!(m.sweep_resting_bids(&P, 3_001, first, 200), None);
    assert_eq!(m.job(low).unwrap().to_job().provider, Some(provider(1)));
    assert_eq!(m.book.bid_count() as usize, MAX_SCAN + 10);
    // With no free slot left the sweep still walks the bids (to expire
    // those resting too long) but matches nothing.
    assert!(m.sweep_resting_bids(&P, 3_002, None, 200).is_some());
    assert_eq!(m.book.bid_count() as usize, MAX_SCAN + 10);
}

/// A market where provider 1 offers five slots at 50.
fn market_with_five_slots() -> Market<VectorMemory> {
    let mut m = market();
    let five = OfferSpec {
        slots: 5,
        ..offer(50)
    };
    m.put_offer(&P, 0, provider(1), node(1), 0, None, five)
        .unwrap();
    m
}

#[test]
fn a_deadline_run_handles_at_most_its_budget_and_the_rest_next_time() {
    let mut m = market_with_five_slots();
    let ids: Vec<u64> = (0..5)
        .map(|t| {
            let id = m.create_job(&P, t, buyer(), spec(80, 0)).unwrap().state.id;
            m.job_funded(&P, t, id);
            id
        })
        .collect();
    assert!(
        ids.iter()
            .all(|id| m.job(*id).unwrap().to_job().provider.is_some())
    );
    assert_eq!(
        m.next_deadline_ns(&P),
        None,
        "no deadline runs before the bonds hold"
    );
    steps(&mut m);
    let late = m.next_deadline_ns(&P).unwrap() + 3_600 * S;
    assert_eq!(m.process_deadlines(&P, late, 2), 2);
    let failed = |m: &Market<VectorMemory>| {
        ids.iter()
            .filter(|id| m.job(**id).unwrap().state.status == JobStatus::Failed)
            .count()
    };
    assert_eq!(failed(&m), 2);
    assert_eq!(m.process_deadlines(&P, late, 2), 2);
    assert_eq!(m.process_deadlines(&P, late, 2), 1);
    assert_eq!(m.process_deadlines(&P, late, 2), 0, "each deadline once");
    assert_eq!(failed(&m), 5);
    assert_eq!(m.next_deadline_ns(&P), None);
}

/// The matcher doesn't run for ten minutes (frozen, say): the deadlines
/// that fell in the outage move to a grace period after it, the heartbeat
/// that comes in that time is taken, and a job whose holder stays silent
/// fails a grace period after the outage, not at its own deadline.
#[test]
fn deadlines_that_fell_in_the_matchers_outage_move_a_grace_period_past_it() {
    let mut m = market_with_five_slots();
    let ids: Vec<u64> = (0..2)
        .map(|_| {
            let id = m.create_job(&P, 0, buyer(), spec(80, 0)).unwrap().state.id;
            m.job_funded(&P, 0, id);
            id
        })
        .collect();
    steps(&mut m);
    let (live, silent) = (ids[0], ids[1]);
    for id in &ids {
        let acks = m
            .heartbeat(&P, S, node(1), &[heartbeat_item(*id, 1, 0)])
            .unwrap();
        assert!(matches!(acks[0], HeartbeatAck::Accepted { .. }));
    }
    let deadline = m.next_deadline_ns(&P).unwrap();
    // It last ran a second after the heartbeats, then not until ten
    // minutes after the deadline.
    assert_eq!(m.observe_run(2 * S), None);
    let back = deadline + 600 * S;
    let outage = m.observe_run(back).expect("an outage");
    assert_eq!((outage.from_ns, outage.until_ns), (2 * S, back));
    let moved = back + P.grace_secs * S;
    assert_eq!(m.next_deadline_ns(&P), Some(moved));
    assert_eq!(m.process_deadlines(&P, back, 10), 0, "nothing is due yet");
    let acks = m
        .heartbeat(&P, back, node(1), &[heartbeat_item(live, 1, 0)])
        .unwrap();
    assert!(
        matches!(acks[0], HeartbeatAck::Accepted { next_deadline_ns } if next_deadline_ns == moved),
        "{acks:?}"
    );
    assert_eq!(m.job(silent).unwrap().state.status, JobStatus::Running);
    // Its result was due in the outage too: it comes in the grace after.
    m.submit_result(
        &P,
        back + S,
        node(1),
        SubmitResultArgs {
            job_id: live,
            attempt: 1,
            result: exited(b"done", 0),
        },
    )
    .unwrap();
    assert_eq!(m.process_deadlines(&P, moved - 1, 10), 0);
    assert_eq!(m.process_deadlines(&P, moved, 10), 1);
    assert_eq!(m.job(silent).unwrap().state.status, JobStatus::Failed);
    assert_eq!(m.job(live).unwrap().state.status, JobStatus::Reported);
}

#[test]
fn a_providers_assignments_follow_its_jobs_through_reassignment_and_the_end() {
    let (mut m, id) = market_with_a_matched_job(1);
    let ids = |m: &Market<VectorMemory>, n: u8| -> Vec<u64> {
        m.assignments_of(provider(n))
            .iter()
            .map(|r| r.state.id)
            .collect()
    };
    steps(&mut m);
    assert_eq!(ids(&m, 1), [id]);
    // Provider 1 misses its deadline; provider 2 takes the job over.
    m.put_offer(&P, 1, provider(2), node(2), 0, None, offer(60))
        .unwrap();
    let late = m.next_deadline_ns(&P).unwrap();
    m.process_deadlines(&P, late, 10);
    assert_eq!(ids(&m, 1), Vec::<u64>::new());
    steps(&mut m);
    assert_eq!(ids(&m, 2), [id]);
    // Rebuilt the same from the deadlines for a state saved without it.
    m.clear_assignment_index_for_tests();
    assert_eq!(ids(&m, 2), Vec::<u64>::new());
    assert_eq!(m.index_assignments_if_missing(), 1);
    assert_eq!(ids(&m, 2), [id]);
    // A finished job is nobody's assignment.
    m.cancel(&P, late + 1, buyer(), id).unwrap();
    assert_eq!(ids(&m, 2), Vec::<u64>::new());
}

#[test]
fn a_providers_assignments_come_in_pages_and_its_jobs_in_chunks() {
    use market_api::matcher::{JobChunkRequest, JobPart, MAX_CHUNK_BYTES, MAX_INPUT_BYTES};
    use sha2::Digest;
    let mut m = market_with_five_slots();
    let mut jobs = vec![];
    for n in 0..5u8 {
        let mut s = spec(80, 0);
        s.input = vec![n; MAX_INPUT_BYTES];
        let id = m.create_job(&P, 0, buyer(), s).unwrap().state.id;
        m.job_funded(&P, 0, id);
        jobs.push(id);
    }
    // Pages of two: every job once, in id order, then no next page.
    let mut seen = vec![];
    let mut start = 0;
    loop {
        let (page, next) = m.assignments_page(provider(1), start, 2);
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|r| r.state.id));
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
    assert_eq!(seen, jobs);
    assert_eq!(m.assignments_page(provider(2), 0, 2), (vec![], None));
    // The view leaves the bytes out; the chunks give them back, hashed.
    let id = jobs[3];
    let view = m.job_view(buyer(), id).unwrap();
    assert!(view.job.spec.input.is_empty());
    assert_eq!(view.input_bytes, MAX_INPUT_BYTES as u64);
    let whole = vec![3u8; MAX_INPUT_BYTES];
    assert_eq!(
        view.input_sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(&whole))
    );
    let chunk = |offset| {
        m.job_chunk(
            buyer(),
            &JobChunkRequest {
                job_id: id,
                part: JobPart::Input,
                offset,
            },
        )
        .unwrap()
    };
    let first = chunk(0);
    assert_eq!(first.bytes.len(), MAX_CHUNK_BYTES.min(MAX_INPUT_BYTES));
    assert_eq!(first.sha256, view.input_sha256);
    let tail = chunk(MAX_INPUT_BYTES as u64 - 10);
    assert_eq!(tail.bytes, vec![3u8; 10]);
    assert!(chunk(u64::MAX).bytes.is_empty());
    assert!(
        m.job_chunk(
            buyer(),
            &JobChunkRequest {
                job_id: 999,
                part: JobPart::Output,
                offset: 0
            }
        )
        .is_err()
    );
}

#[test]
fn the_invariant_check_finds_an_index_out_of_step_with_the_jobs() {
    let (mut m, id) = market_with_a_matched_job(1);
    steps(&mut m);
    m.check_invariants().unwrap();
    m.clear_assignment_index_for_tests();
    let broken = m.check_invariants().unwrap_err();
    assert!(broken.contains(&format!("job {id}")), "{broken}");
    m.index_assignments_if_missing();
    m.check_invariants().unwrap();
    m.clear_active_index_for_tests();
    m.index_active_jobs_if_missing();
    m.cancel(&P, 1, buyer(), id).unwrap();
    m.check_invariants().unwrap();
}

#[test]
fn refused_bond_moves_the_job_on_and_cancel_settles() {
    let (mut m, id) = market_with_a_matched_job(0);
    m.bond_refused(&P, 1, id, 1);
    let j = m.job(id).unwrap();
    assert_eq!(j.state.status, JobStatus::Open);
    assert_eq!(
        m.book.bid_count(),
        1,
        "back in the book, provider 1 excluded"
    );
    assert_eq!(
        m.cancel(&P, 2, provider(1), id),
        Err(MatcherError::Unauthorized {
            reason: "only the job's owner may do this".into()
        })
    );
    m.cancel(&P, 2, buyer(), id).unwrap();
    assert_eq!(m.book.bid_count(), 0);
    assert!(steps(&mut m).contains(&Effect::Settle));
}

#[test]
fn bad_specs_and_limits_are_refused() {
    let mut m = market();
    let mut s = spec(80, 0);
    s.interval_secs = 0;
    assert!(matches!(
        m.create_job(&P, 0, buyer(), s),
        Err(MatcherError::InvalidArgument { .. })
    ));
    let mut s = spec(u128::MAX, 0);
    s.limits.fuel = 2 * G;
    assert!(matches!(
        m.create_job(&P, 0, buyer(), s),
        Err(MatcherError::InvalidArgument { .. })
    ));
    let s = JobSpec {
        module: ModuleSource::Stored { sha256: [9; 32] },
        ..spec(1, 0)
    };
    assert_eq!(
        m.create_job(&P, 0, buyer(), s),
        Err(MatcherError::UnknownModule { sha256: [9; 32] })
    );
    for i in 0..crate::market::MAX_OFFERS_PER_PROVIDER {
        m.put_offer(&P, i as u64, provider(1), node(1), 0, None, offer(50))
            .unwrap();
    }
    assert!(matches!(
        m.put_offer(&P, 99, provider(1), node(1), 0, None, offer(50)),
        Err(MatcherError::LimitReached { .. })
    ));
}

mod reservations {
    use super::*;
    use crate::market::reservations::reservation_cost;
    use market_api::matcher::{
        ExtendReservationArgs, JobKind, ReservationSpec, ReservationStatus, ReservedJobArgs,
        SetDelegatesArgs,
    };

    fn delegate() -> Principal {
        Principal::from_slice(&[0x50])
    }

    /// A lease the delegate may run jobs in.
    fn lease(slots: u32, intervals: u32) -> ReservationSpec {
        ReservationSpec {
            delegates: vec![delegate()],
            ..super::lease(slots, intervals)
        }
    }

    /// Performs every ready step; returns (job id, effect) pairs.
    fn drain(m: &mut Market<VectorMemory>) -> Vec<(u64, Effect)> {
        drain_at(m, 0)
    }

    fn hb(m: &mut Market<VectorMemory>, t: u64, n: u8, job_id: u64) -> HeartbeatAck {
        let item = heartbeat_item(job_id, attempt(m, job_id), 0);
        m.heartbeat(&P, t, node(n), &[item]).unwrap().remove(0)
    }

    fn released_from(fx: &[(u64, Effect)], lock_job: u64) -> u128 {
        fx.iter()
            .filter(|(id, _)| *id == lock_job)
            .map(|(_, e)| match e {
                Effect::Release { amount, .. } => *amount,
                _ => 0,
            })
            .sum()
    }

    fn ok_result() -> JobResult {
        exited(b"ok", 1)
    }

    #[test]
    fn slots_are_held_paid_rematched_and_run_delegates_jobs_then_cancel_settles() {
        let mut m = market();
        offers(&mut m, &P, &[(1, 50), (2, 60), (3, 70)]);
        let r = m.create_reservation(&P, 0, buyer(), lease(2, 5)).unwrap();
        let rid = r.state.id;
        assert_eq!(
            r.state.max_cost(),
            Some(2 * 5 * 100),
            "the whole term is locked"
        );
        m.job_funded(&P, 0, rid);
        let view = m.reservation(rid).unwrap();
        assert_eq!(view.status, ReservationStatus::Active);
        assert_eq!(view.locked, 1_000);
        let slots: Vec<u64> = view.slots.iter().map(|s| s.job_id).collect();
        assert_eq!(
            view.slots.iter().map(|s| s.provider).collect::<Vec<_>>(),
            vec![Some(provider(1)), Some(provider(2))],
            "the cheapest offers"
        );
        let fx = drain(&mut m);
        assert!(
            fx.iter()
                .all(|(id, e)| matches!(e, Effect::Bond { .. }) && slots.contains(id))
        );

        // Only the owner and delegates run jobs in it, and they fit a slot.
        let job = |s: JobSpec| ReservedJobArgs {
            reservation: rid,
            spec: s,
        };
        assert!(matches!(
            m.submit_reserved_job(&P, 1, provider(9), job(spec(1, 0))),
            Err(MatcherError::Unauthorized { .. })
        ));
        let mut big = spec(1, 0);
        big.limits.memory_mib = 129;
        assert!(matches!(
            m.submit_reserved_job(&P, 1, delegate(), job(big)),
            Err(MatcherError::InvalidArgument { .. })
        ));
        let j1 = m
            .submit_reserved_job(&P, 1, delegate(), job(spec(0, 0)))
            .unwrap();
        let j2 = m
            .submit_reserved_job(&P, 1, buyer(), job(spec(0, 0)))
            .unwrap();
        let j3 = m
            .submit_reserved_job(&P, 1, delegate(), job(spec(0, 0)))
            .unwrap();
        assert_eq!(
            m.reservation(rid).unwrap().queued_jobs,
            1,
            "two slots, three jobs"
        );
        let held = |m: &Market<VectorMemory>, id| m.job(id).unwrap().to_job().provider;
        assert_eq!(held(&m, j1), Some(provider(1)));
        assert_eq!(held(&m, j2), Some(provider(2)));
        assert_eq!(
            m.job(j1).unwrap().kind,
            JobKind::InReservation { reservation: rid }
        );
        assert_eq!(
            m.assignments_of(provider(1)).len(),
            2,
            "the slot and its job"
        );

        // Both providers acknowledge; the slots pay per interval, the jobs nothing.
        for (n, id) in [(1, slots[0]), (1, j1), (2, slots[1]), (2, j2)] {
            assert!(matches!(
                hb(&mut m, 2 * S, n, id),
                HeartbeatAck::Accepted { .. }
            ));
        }
        for (n, id) in [(1, slots[0]), (1, j1), (2, slots[1]), (2, j2)] {
            assert!(matches!(
                hb(&mut m, 62 * S, n, id),
                HeartbeatAck::Accepted { .. }
            ));
        }
        let fx = drain(&mut m);
        assert_eq!(
            fx,
            vec![
                (
                    rid,
                    Effect::Release {
                        fee: 0,
                        seq: 0,
                        provider: provider(1),
                        amount: 50,
                        fuel: None,
                    }
                ),
                (
                    rid,
                    Effect::Release {
                        fee: 0,
                        seq: 1 << 32,
                        provider: provider(2),
                        amount: 60,
                        fuel: None,
                    }
                ),
            ],
            "from the reservation's lock, numbered per slot"
        );

        // Job 1 finishes; job 3 takes its slot.
        m.submit_result(
            &P,
            70 * S,
            node(1),
            SubmitResultArgs {
                job_id: j1,
                attempt: 1,
                result: ok_result(),
            },
        )
        .unwrap();
        assert_eq!(m.job(j1).unwrap().state.status, JobStatus::Succeeded);
        assert_eq!(held(&m, j3), Some(provider(1)));
        let fx = drain(&mut m);
        assert_eq!(
            fx,
            vec![(j1, Effect::Settle)],
            "no release, no unbond for the job"
        );
        assert!(
            m.submit_result(
                &P,
                70 * S,
                node(1),
                SubmitResultArgs {
                    job_id: slots[0],
                    attempt: 1,
                    result: ok_result()
                }
            )
            .is_err(),
            "a slot has no result"
        );

        // Provider 2 goes silent: its slot is slashed and matched anew with
        // provider 3; job 2 goes back to the queue and runs there.
        hb(&mut m, 100 * S, 1, slots[0]);
        hb(&mut m, 100 * S, 1, j3);
        m.process_deadlines(&P, 153 * S, 100);
        let fx = drain(&mut m);
        assert!(fx.contains(&(
            slots[1],
            Effect::Slash {
                key: format!("job/{}/slash/1", slots[1]).as_str().into(),
                provider: provider(2),
                amount: 180,
                owner: buyer()
            }
        )));
        let view = m.reservation(rid).unwrap();
        assert_eq!(view.slots[1].provider, Some(provider(3)));
        assert_eq!(view.slots[1].rematches, 1);
        assert_eq!(held(&m, j2), Some(provider(3)), "the job follows the slot");
        assert_eq!(m.job(j2).unwrap().state.status, JobStatus::Assigned);

        // Delegates change; a removed delegate can't submit.
        m.set_delegates(
            buyer(),
            &SetDelegatesArgs {
                reservation: rid,
                add: vec![],
                remove: vec![delegate()],
            },
        )
        .unwrap();
        assert!(matches!(
            m.submit_reserved_job(&P, 160 * S, delegate(), job(spec(0, 0))),
            Err(MatcherError::Unauthorized { .. })
        ));

        // Only the owner cancels; the slots end, the jobs with them, and the
        // lock settles after every release.
        assert!(m.cancel_reservation(&P, 170 * S, delegate(), rid).is_err());
        assert!(
            m.cancel(&P, 170 * S, buyer(), slots[0]).is_err(),
            "not slot by slot"
        );
        m.cancel_reservation(&P, 170 * S, buyer(), rid).unwrap();
        let view = m.reservation(rid).unwrap();
        assert_eq!(view.status, ReservationStatus::Cancelled);
        assert!(view.slots.iter().all(|s| s.status == JobStatus::Cancelled));
        for id in [j2, j3] {
            assert!(m.job(id).unwrap().state.status.is_terminal());
        }
        assert_eq!(m.offers_of(provider(1))[0].slots_used, 0, "capacity freed");
        let fx = drain(&mut m);
        assert_eq!(
            fx.iter()
                .filter(|(id, e)| *id == rid && *e == Effect::Settle)
                .count(),
            1
        );
        assert_eq!(m.next_deadline_ns(&P), None);
        assert!(m.cancel_reservation(&P, 171 * S, buyer(), rid).is_err());
    }

    #[test]
    fn a_reservation_ends_after_its_term_and_extends_before() {
        let mut m = market();
        offers(&mut m, &P, &[(1, 40)]);
        let (rid, slots) = funded_lease(&mut m, &P, lease(1, 2));
        let slot = slots[0];
        drain(&mut m);
        hb(&mut m, S, 1, slot);

        let ext = ExtendReservationArgs {
            reservation: rid,
            intervals: 1,
        };
        assert!(m.prepare_extension(delegate(), &ext).is_err(), "owner only");
        let e = m.prepare_extension(buyer(), &ext).unwrap();
        assert_eq!(
            (e.number, e.amount, e.live_slots, e.intervals),
            (1, 100, 1, 1)
        );
        let seq = m.begin_extension(0, rid, e);
        assert_eq!(
            m.prepare_extension(buyer(), &ext),
            Err(MatcherError::Busy),
            "one extension at a time, until the escrow answers"
        );
        assert!(m.outbox.take_ready(0, 10).iter().all(|(s, _)| *s != seq));
        // The answer never comes (an upgrade dropped the callback): after
        // the upgrade the outbox asks again, with the same number.
        m.outbox.reset_in_flight();
        let again = m.outbox.take_ready(0, 100);
        assert!(again.iter().any(|(s, step)| *s == seq
            && step.effect
                == Effect::ExtendLock {
                    number: 1,
                    amount: 100,
                    intervals: 1
                }));
        m.outbox.complete(seq);
        m.apply_extension(rid, e.number, e.amount, 1);
        m.apply_extension(rid, e.number, e.amount, 1);
        assert_eq!(m.prepare_extension(buyer(), &ext).unwrap().number, 2);
        let view = m.reservation(rid).unwrap();
        assert_eq!((view.spec.intervals, view.locked), (3, 300), "applied once");

        let mut paid = vec![];
        for i in 1..=3 {
            assert!(matches!(
                hb(&mut m, (1 + 60 * i) * S, 1, slot),
                HeartbeatAck::Accepted { .. }
            ));
            paid.extend(drain(&mut m));
        }
        assert_eq!(released_from(&paid, rid), 120);
        // The term is used up: the heartbeat that paid its last interval
        // ended the slot, without a slash, and the reservation settled.
        assert!(!paid.iter().any(|(_, e)| matches!(e, Effect::Slash { .. })));
        assert!(paid.contains(&(rid, Effect::Settle)));
        m.process_deadlines(&P, 400 * S, 100);
        assert!(drain(&mut m).is_empty(), "nothing is left to expire");
        let view = m.reservation(rid).unwrap();
        assert_eq!(view.status, ReservationStatus::Ended);
        assert_eq!(view.paid, 120);
        assert!(matches!(
            m.submit_reserved_job(
                &P,
                401 * S,
                buyer(),
                ReservedJobArgs {
                    reservation: rid,
                    spec: spec(0, 0)
                }
            ),
            Err(MatcherError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn unfunded_reservations_leave_nothing_and_bad_ones_are_refused() {
        let mut m = market();
        let rid = m
            .create_reservation(&P, 0, buyer(), lease(2, 5))
            .unwrap()
            .state
            .id;
        m.drop_unfunded(1, rid);
        assert!(m.reservation(rid).is_none());
        assert!(m.job(rid).is_none());
        for bad in [
            ReservationSpec {
                slots: 0,
                ..lease(1, 1)
            },
            ReservationSpec {
                slots: 17,
                ..lease(1, 1)
            },
            ReservationSpec {
                intervals: 0,
                ..lease(1, 1)
            },
            ReservationSpec {
                max_price_per_interval: u128::MAX,
                ..lease(2, 2)
            },
            ReservationSpec {
                delegates: vec![Principal::anonymous()],
                ..lease(1, 1)
            },
        ] {
            assert!(reservation_cost(&bad).is_none_or(|_| true));
            assert!(matches!(
                m.create_reservation(&P, 0, buyer(), bad),
                Err(MatcherError::InvalidArgument { .. })
            ));
        }
    }

    proptest::proptest! {
        /// Whatever the providers do, a reservation never pays out more than
        /// it locked, and once its slots end its lock is settled once, after
        /// every release.
        #[test]
        fn releases_never_exceed_the_lock(
            ops in proptest::collection::vec((0u8..4, 0u8..3, 1u64..200), 1..60),
            extend in proptest::option::of(1u32..4),
        ) {
            let mut m = market();
            for n in 1..=3u8 {
                m.put_offer(&P, 0, provider(n), node(n), 0, None, offer(30 + u128::from(n) * 10)).unwrap();
            }
            let (rid, _) = funded_lease(&mut m, &P, lease(2, 3));
            let mut t = 0u64;
            let mut fx = vec![];
            for (op, n, dt) in ops {
                t += dt * S;
                let slots: Vec<u64> = m.reservation(rid).unwrap().slots.iter().map(|s| s.job_id).collect();
                match op {
                    0 | 1 => for id in slots {
                        if m.job(id).and_then(|r| r.state.assignment).is_some_and(|a| a.provider == provider(n + 1)) {
                            hb(&mut m, t, n + 1, id);
                        }
                    },
                    2 => { m.process_deadlines(&P, t, 100); }
                    _ => if let Some(k) = extend
                        && let Ok(e) = m.prepare_extension(buyer(), &ExtendReservationArgs { reservation: rid, intervals: k }) {
                            m.apply_extension(rid, e.number, e.amount, k);
                        },
                }
                fx.extend(drain(&mut m));
                let view = m.reservation(rid).unwrap();
                proptest::prop_assert!(released_from(&fx, rid) <= view.locked);
                proptest::prop_assert_eq!(released_from(&fx, rid), view.paid);
            }
            m.process_deadlines(&P, u64::MAX / 2, 10_000);
            m.cancel_reservation(&P, u64::MAX / 2, buyer(), rid).ok();
            fx.extend(drain(&mut m));
            let settles: Vec<usize> = fx.iter().enumerate()
                .filter(|(_, (id, e))| *id == rid && *e == Effect::Settle).map(|(i, _)| i).collect();
            proptest::prop_assert_eq!(settles.len(), 1);
            let last_release = fx.iter().rposition(|(id, e)| *id == rid && matches!(e, Effect::Release { .. }));
            proptest::prop_assert!(last_release.is_none_or(|i| i < settles[0]));
        }
    }
}

#[test]
fn only_the_node_of_a_providers_latest_offer_acts_for_it() {
    let mut m = market();
    let id = m
        .put_offer(&P, 0, provider(1), node(1), 0, None, offer(50))
        .unwrap();
    assert_eq!(m.provider_of(node(1)), provider(1));
    assert_eq!(m.provider_of(provider(1)), provider(1));
    // The provider rotates its node key and posts its offer again.
    m.put_offer(&P, 1, provider(1), node(9), 0, Some(id), offer(50))
        .unwrap();
    assert_eq!(m.provider_of(node(9)), provider(1));
    assert_eq!(
        m.provider_of(node(1)),
        node(1),
        "the old node speaks only for itself"
    );
    assert_eq!(m.provider_of(provider(1)), provider(1));
    // Back to the old key: the new one is unbound.
    m.put_offer(&P, 2, provider(1), node(1), 0, Some(id), offer(50))
        .unwrap();
    assert_eq!(m.provider_of(node(1)), provider(1));
    assert_eq!(m.provider_of(node(9)), node(9));
}

#[test]
fn a_bid_resting_a_day_unmatched_expires_and_lets_its_module_go() {
    use market_api::matcher::MAX_RESTING_SECS;
    let mut m = market();
    let bytes = b"module";
    let sha = sha256(bytes);
    store_module(&mut m, buyer(), bytes);
    let mut job = spec(80, 0);
    job.module = ModuleSource::Stored { sha256: sha };
    let id = m.create_job(&P, 0, buyer(), job).unwrap().state.id;
    m.job_funded(&P, 0, id);
    assert_eq!(m.book.bid_count(), 1, "no offer: the bid rests");
    let day = MAX_RESTING_SECS * S;
    m.sweep_resting_bids(&P, day - 1, None, 10);
    assert_eq!(m.job(id).unwrap().state.status, JobStatus::Open);
    m.sweep_resting_bids(&P, day, None, 10);
    assert_eq!(m.job(id).unwrap().state.status, JobStatus::Expired);
    assert_eq!(m.book.bid_count(), 0);
    assert_eq!(steps(&mut m), vec![Effect::Settle]);
    assert_eq!(m.modules.meta(&sha).unwrap().refs, 0);
    assert_eq!(
        m.modules
            .collect_garbage(day + crate::modules::UNUSED_TTL_NS, 10),
        1
    );
    m.check_invariants().unwrap();
}

#[test]
fn a_finished_job_drops_its_input_at_once_and_is_deleted_after_retention() {
    use market_api::matcher::FINISHED_JOB_RETENTION_SECS;
    let mut m = market();
    let mut big = spec(80, 0);
    big.input = vec![7; 1024];
    big.args = vec!["a".into()];
    big.env = vec![("K".into(), "V".into())];
    let id = m.create_job(&P, 0, buyer(), big).unwrap().state.id;
    m.job_funded(&P, 0, id);
    m.cancel(&P, 5, buyer(), id).unwrap();
    let rec = m.job(id).unwrap();
    assert_eq!(rec.state.status, JobStatus::Cancelled);
    assert!(rec.spec.input.is_empty() && rec.spec.args.is_empty() && rec.spec.env.is_empty());
    let retention = FINISHED_JOB_RETENTION_SECS * S;
    // Not before its retention ends, nor while its settle step is pending.
    assert_eq!(m.prune_finished(5 + retention - 1, 10), 0);
    assert_eq!(m.prune_finished(5 + retention, 10), 0, "settle pending");
    steps(&mut m);
    assert_eq!(m.prune_finished(5 + retention, 10), 1);
    assert!(m.job(id).is_none());
    assert!(m.jobs_of(buyer(), buyer(), 0, 10).is_empty());
    assert_eq!(m.prune_finished(u64::MAX, 10), 0);
    m.check_invariants().unwrap();
}
